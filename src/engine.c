/* The multi engine: a curl multi handle, the transfers it owns and their ids. Requests come
 * in as Lua tables (spec.c), run on pooled easy handles (easy.c) and go back to Lua as result
 * tables (result.c). Lua never runs while libcurl is on the C stack. */
#include "engine.h"

#include <time.h>

#include "json.h"

double dr_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int dr_engine_has_send_by(void) {
#ifdef DR_HAVE_PREREQ
  return 1;
#else
  return 0;
#endif
}

int dr_engine_open(dr_engine *e) {
  dr_easy_accept_encoding(e->accept_encoding, sizeof e->accept_encoding);
  e->multi = curl_multi_init();
  if (e->multi == NULL)
    return -1;
  curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, e->limits.max_connections);
  curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, e->limits.max_connections);
  curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  /* The idle cache, else libcurl keeps 4 per added handle and a wait_all of 200
   * tasks opens ~200 connections instead of reusing max_connections of them. */
  curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, e->limits.max_connections);
  e->closed = 0;
  return 0;
}

static void dr_engine_unlink(dr_engine *e, dr_xfer *x) {
  dr_xfer **pp = &e->xfers;
  while (*pp != NULL && *pp != x)
    pp = &(*pp)->next;
  if (*pp == x)
    *pp = x->next;
}

void dr_engine_drop(dr_engine *e, dr_xfer *x) {
  dr_engine_unlink(e, x);
  dr_easy_release(e, x);
}

void dr_engine_close(dr_engine *e) {
  if (e->closed)
    return;
  e->closed = 1;
  while (e->xfers != NULL) {
    dr_xfer *x = e->xfers;
    e->xfers = x->next;
    dr_easy_release(e, x);
  }
  while (e->npool > 0)
    dr_easy_free(e->pool[--e->npool]);
  if (e->multi != NULL)
    curl_multi_cleanup(e->multi);
  e->multi = NULL;
  dr_limits_free(&e->limits);
}

static void dr_engine_sweep(dr_engine *e) {
  dr_xfer **pp = &e->xfers;
  while (*pp != NULL) {
    dr_xfer *x = *pp;
    if (x->state == DR_DEAD) {
      *pp = x->next;
      dr_easy_release(e, x);
    } else {
      pp = &x->next;
    }
  }
}

/* Marks x finished without sending it, for reason (its result says why). */
static lua_Integer dr_engine_hold(dr_xfer *x, int reason) {
  x->unsent = reason;
  x->result = CURLE_ABORTED_BY_CALLBACK;
  x->state = DR_DONE;
  return x->id;
}

lua_Integer dr_engine_add(lua_State *L, dr_engine *e, int idx) {
  dr_spec s;
  dr_xfer *x;
  idx = dr_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  dr_engine_sweep(e);
  dr_spec_read(L, idx, e->limits.timeout_ms, &s);
  x = dr_easy_take(e);
  if (x == NULL)
    luaL_error(L, "cannot prepare request (out of memory)");
  /* Owned by the engine from here on, so any later raise cannot leak it. */
  x->next = e->xfers;
  e->xfers = x;
  x->id = ++e->next_id;
  x->state = DR_DEAD; /* until fully set up: swept, never reported */
  if (dr_easy_prepare(L, e, x, idx, &s) != 0)
    return luaL_error(L, "cannot prepare request (bad header or out of memory)");
#ifndef DR_HAVE_PREREQ
  if (s.has_send_by) /* cannot be enforced */
    return dr_engine_hold(x, DR_UNSENT_NO_PREREQ);
#endif
  /* An answer nothing could read: for a create, a paid task whose id is lost. */
  if (s.decode && !dr_json_has_decoder(L))
    return dr_engine_hold(x, DR_UNSENT_NO_DECODER);
  if (s.file != NULL && dr_easy_file_open(x, s.file) != 0)
    return dr_engine_hold(x, DR_UNSENT_FILE);
  if (curl_multi_add_handle(e->multi, x->easy) != CURLM_OK)
    return luaL_error(L, "cannot start request");
  x->added = 1;
  x->state = DR_RUNNING;
  return x->id;
}

/* Connections libcurl opened for this process's transfers (CURLINFO_NUM_CONNECTS summed as
 * each ends; core.stats()): the scale benchmark's count of sockets opened. */
static long dr_connects = 0;

long dr_engine_connects(void) {
  return dr_connects;
}

static int dr_engine_collect(dr_engine *e) {
  CURLMsg *m;
  int left, done = 0;
  while ((m = curl_multi_info_read(e->multi, &left)) != NULL) {
    dr_xfer *x = NULL;
    if (m->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    if (x != NULL) {
      long n = 0;
      if (curl_easy_getinfo(m->easy_handle, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK && n > 0)
        dr_connects += n;
      x->result = m->data.result;
      x->state = DR_DONE;
      done++;
    }
  }
  return done;
}

int dr_engine_step(dr_engine *e, int timeout_ms) {
  int running = 0, done;
  curl_multi_perform(e->multi, &running);
  done = dr_engine_collect(e);
  if (running > 0 && timeout_ms > 0 && done == 0) {
    curl_multi_poll(e->multi, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(e->multi, &running);
    dr_engine_collect(e);
  }
  return running;
}

dr_xfer *dr_engine_find(dr_engine *e, lua_Integer id) {
  dr_xfer *x;
  for (x = e->xfers; x != NULL; x = x->next)
    if (x->id == id)
      return x;
  return NULL;
}

dr_xfer *dr_engine_next_done(dr_engine *e) {
  dr_xfer *x, *found = NULL;
  /* The list is newest first; hand results back oldest first. */
  for (x = e->xfers; x != NULL; x = x->next)
    if (x->state == DR_DONE)
      found = x;
  return found;
}

int dr_engine_cancel(dr_engine *e, lua_Integer id) {
  dr_xfer *x = dr_engine_find(e, id);
  if (x == NULL)
    return 0;
  dr_engine_drop(e, x);
  return 1;
}

int dr_engine_pending(dr_engine *e) {
  int n = 0;
  dr_xfer *x;
  for (x = e->xfers; x != NULL; x = x->next)
    n++;
  return n;
}
