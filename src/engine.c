/* A curl multi handle and the transfers it owns. Lua never runs while libcurl
 * is on the C stack: callbacks only copy bytes, Lua values are built after. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "json.h"

/* CURLOPT_PREREQFUNCTION (7.80) runs right before a request is written. Without it a
 * request with send_by is never sent at all: failing closed is the only safe answer. */
#if LIBCURL_VERSION_NUM >= 0x075000 && !defined(DR_NO_PREREQ)
#define DR_HAVE_PREREQ 1
#endif

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

static size_t dr_on_body(char *p, size_t size, size_t n, void *ud) {
  dr_xfer *x = ud;
  if (x->body.len == 0) {
    /* Size the buffer once from Content-Length: no regrowth for big bodies. */
    curl_off_t len = -1;
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
    if (len > 0 && (size_t)len > x->body.cap)
      dr_buf_reserve(&x->body, (size_t)len);
  }
  return dr_buf_append(&x->body, p, size * n) == 0 ? size * n : 0;
}

static size_t dr_on_header(char *p, size_t size, size_t n, void *ud) {
  dr_xfer *x = ud;
  /* A new status line (100 Continue, then the real one) starts over. */
  if (n * size >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    x->head.len = 0;
    x->head_done = 0;
  } else if (n * size <= 2 && n * size > 0 && (p[0] == '\r' || p[0] == '\n')) {
    x->head_done = 1;
  }
  return dr_buf_append(&x->head, p, size * n) == 0 ? size * n : 0;
}

#ifdef DR_HAVE_PREREQ
/* Connected (or reusing a connection), about to write the request: the last moment
 * at which not sending it is still certain. */
static int dr_on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port) {
  dr_xfer *x = ud;
  (void)ip;
  (void)local_ip;
  (void)port;
  (void)local_port;
  if (x->has_send_by && !(dr_now_seconds() <= x->send_by)) {
    x->late = 1;
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}
#endif

static char *dr_strdup(const char *s) {
  char *d;
  if (s == NULL)
    return NULL;
  d = malloc(strlen(s) + 1);
  if (d != NULL)
    strcpy(d, s);
  return d;
}

/* Upper bounds of the number options (the Lua front refuses larger ones, see README
 * "Configuration"): durations a day, a response 4 GiB. */
#define DR_MS_MAX 86400000L
#define DR_SECONDS_MAX 86400L
#define DR_RATE_MAX 2147483647L
#define DR_CONNECTIONS_MAX 1024L
#define DR_RESPONSE_MAX (sizeof(size_t) > 4 ? 4294967296.0 : 2147483647.0)

/* The number field k of the table at idx, times scale, as a whole number in [lo, hi].
 * Converting a double that a long cannot hold (inf, 1e19) is undefined behaviour in C, so
 * larger values become hi before any cast; and a positive value below 1 after scaling
 * becomes 1, never 0, which libcurl reads as "no limit" (a 0.4 ms timeout is 1 ms).
 * NaN, negatives and non-numbers raise, naming the field. */
static double dr_num_field(lua_State *L, int idx, const char *what, const char *k, double dflt,
                           double scale, double lo, double hi) {
  double v = dflt;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "%s '%s' must be a number", what, k);
    v = (double)lua_tonumber(L, -1) * scale;
    if (!(v >= 0)) /* NaN too */
      luaL_error(L, "%s '%s' must be a non-negative number", what, k);
    v = v >= hi ? hi : v > 0 && v < 1 ? 1 : (double)(long)v;
    if (v < lo)
      v = lo;
  }
  lua_pop(L, 1);
  return v;
}

static long dr_ms_field(lua_State *L, int idx, const char *what, const char *k, long dflt) {
  return (long)dr_num_field(L, idx, what, k, (double)dflt, 1000.0, 0, (double)DR_MS_MAX);
}

/* Never raises: dr_limits_read type-checks every string field first. */
static char *dr_str_field(lua_State *L, int idx, const char *k) {
  char *v;
  lua_getfield(L, idx, k);
  v = dr_strdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  return v;
}

static int dr_header_ok(const char *s, size_t len);

/* A string option with no control character (libcurl sends user_agent and proxy
 * credentials as they are: a CR/LF would smuggle a header). */
static void dr_check_str_field(lua_State *L, int idx, const char *k) {
  size_t len = 0;
  const char *s;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "option '%s' must be a string", k);
  s = lua_tolstring(L, -1, &len);
  if (s != NULL && !dr_header_ok(s, len))
    luaL_error(L, "option '%s' must not contain control characters", k);
  lua_pop(L, 1);
}

void dr_limits_read(lua_State *L, int idx, dr_limits *lim) {
  idx = dr_absindex(L, idx);
  lim->connect_timeout_ms = dr_ms_field(L, idx, "option", "connect_timeout", 5000);
  lim->timeout_ms = dr_ms_field(L, idx, "option", "timeout", 60000);
  lim->low_speed_limit =
      (long)dr_num_field(L, idx, "option", "low_speed_limit", 1, 1, 0, (double)DR_RATE_MAX);
  lim->low_speed_time =
      (long)dr_num_field(L, idx, "option", "low_speed_time", 30, 1, 0, (double)DR_SECONDS_MAX);
  lim->max_response =
      (size_t)dr_num_field(L, idx, "option", "max_response_size", 64 << 20, 1, 0, DR_RESPONSE_MAX);
  lim->max_connections =
      (long)dr_num_field(L, idx, "option", "max_connections", 8, 1, 1, (double)DR_CONNECTIONS_MAX);
  dr_check_str_field(L, idx, "ca_file");
  dr_check_str_field(L, idx, "proxy");
  dr_check_str_field(L, idx, "user_agent");
  lim->ca_file = dr_str_field(L, idx, "ca_file");
  lim->proxy = dr_str_field(L, idx, "proxy");
  lim->user_agent = dr_str_field(L, idx, "user_agent");
}

int dr_limits_copy(dr_limits *dst, const dr_limits *src) {
  *dst = *src;
  dst->ca_file = dr_strdup(src->ca_file);
  dst->proxy = dr_strdup(src->proxy);
  dst->user_agent = dr_strdup(src->user_agent);
  return 0;
}

void dr_limits_free(dr_limits *lim) {
  free(lim->ca_file);
  free(lim->proxy);
  free(lim->user_agent);
  lim->ca_file = lim->proxy = lim->user_agent = NULL;
}

/* The line libcurl would format on every request for CURLOPT_ACCEPT_ENCODING "" (every
 * encoding it decodes, in its order). Sent among our own lines it costs libcurl ~3 k
 * fewer instructions per request; libcurl still decodes, as the option stays set. */
static void dr_accept_encoding(char *out, size_t size) {
  long f = curl_version_info(CURLVERSION_NOW)->features;
  const char *zlib = (f & CURL_VERSION_LIBZ) ? "deflate, gzip" : "";
  const char *br = (f & CURL_VERSION_BROTLI) ? "br" : "";
  const char *zstd = "";
#ifdef CURL_VERSION_ZSTD
  if (f & CURL_VERSION_ZSTD)
    zstd = "zstd";
#endif
  if (!*zlib && !*br && !*zstd)
    zlib = "identity";
  snprintf(out, size, "Accept-Encoding: %s%s%s%s%s", zlib, *zlib && *br ? ", " : "", br,
           (*zlib || *br) && *zstd ? ", " : "", zstd);
}

int dr_engine_open(dr_engine *e) {
  dr_accept_encoding(e->accept_encoding, sizeof e->accept_encoding);
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

/* Buffers up to these sizes are kept for the transfer's next use: header blocks are a
 * few hundred bytes, a task up to a few hundred KB. Bigger bodies (list pages) are freed
 * as soon as Lua has its copy, which keeps the peak memory of a big list down. */
#define DR_HEAD_KEEP (16 * 1024)
#define DR_HEAD_MAX (256 * 1024)
#define DR_BODY_KEEP (256 * 1024)

static void dr_buf_done(dr_buf *b, size_t keep) {
  if (b->cap > keep)
    dr_buf_free(b);
  else
    dr_buf_reset(b);
}

static void dr_xfer_free(dr_xfer *x) {
  if (x->easy != NULL)
    curl_easy_cleanup(x->easy);
  curl_slist_free_all(x->headers);
  free(x->url);
  dr_buf_free(&x->body);
  dr_buf_free(&x->head);
  free(x);
}

/* Into the pool with its handle, whose options stay as they were last set. */
static void dr_xfer_release(dr_engine *e, dr_xfer *x) {
  if (x->added)
    curl_multi_remove_handle(e->multi, x->easy);
  x->added = 0;
  if (x->easy == NULL || e->npool >= DR_POOL_MAX || e->closed) {
    dr_xfer_free(x);
    return;
  }
  dr_buf_done(&x->body, DR_BODY_KEEP);
  dr_buf_done(&x->head, DR_HEAD_KEEP);
  e->pool[e->npool++] = x;
}

static void dr_engine_unlink(dr_engine *e, dr_xfer *x) {
  dr_xfer **pp = &e->xfers;
  while (*pp != NULL && *pp != x)
    pp = &(*pp)->next;
  if (*pp == x)
    *pp = x->next;
}

void dr_engine_close(dr_engine *e) {
  if (e->closed)
    return;
  e->closed = 1;
  while (e->xfers != NULL) {
    dr_xfer *x = e->xfers;
    e->xfers = x->next;
    dr_xfer_release(e, x);
  }
  while (e->npool > 0)
    dr_xfer_free(e->pool[--e->npool]);
  if (e->multi != NULL)
    curl_multi_cleanup(e->multi);
  e->multi = NULL;
  dr_limits_free(&e->limits);
}

/* Pooled handles keep their options: undo whatever the last request set, unless it
 * was a GET too. */
static void dr_set_method(dr_xfer *x, const char *method, const char *body, size_t len) {
  CURL *c = x->easy;
  int get = strcmp(method, "GET") == 0;
  if (get && x->get)
    return;
  curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, (char *)NULL);
  x->get = get;
  if (get)
    return;
  if (strcmp(method, "POST") != 0)
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (body != NULL || strcmp(method, "POST") == 0) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, body != NULL ? body : "");
  }
}

static void dr_set_limits(CURL *c, const dr_limits *lim) {
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, lim->connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, lim->low_speed_limit);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, lim->low_speed_time);
  if (lim->ca_file != NULL)
    curl_easy_setopt(c, CURLOPT_CAINFO, lim->ca_file);
  if (lim->proxy != NULL)
    curl_easy_setopt(c, CURLOPT_PROXY, lim->proxy);
  if (lim->user_agent != NULL)
    curl_easy_setopt(c, CURLOPT_USERAGENT, lim->user_agent);
}

/* Options that never change for an engine's handles: set once per handle. */
static void dr_set_common(CURL *c) {
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dr_on_body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, dr_on_header);
#ifdef DR_HAVE_PREREQ
  curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, dr_on_prereq);
#endif
}

static void dr_set_xfer(CURL *c, dr_xfer *x) {
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(c, CURLOPT_PRIVATE, (void *)x);
#ifdef DR_HAVE_PREREQ
  curl_easy_setopt(c, CURLOPT_PREREQDATA, (void *)x);
#endif
}

/* Header lines and URLs must not smuggle a second header or request line, nor
 * hide a NUL that C would silently cut the rest of the string at. */
static int dr_header_ok(const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++)
    if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
      return 0;
  return 1;
}

/* The header line at index i of the table on top, or NULL when it is not a string. */
static const char *dr_header_line(lua_State *L, int i, size_t *len) {
  const char *line;
  lua_rawgeti(L, -1, i);
  line = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, len) : NULL;
  lua_pop(L, 1); /* the table keeps the string alive */
  return line;
}

/* Whether the handle's list starts with these n lines: a client sends the same ones on
 * every poll. Lines in the list were checked when it was built, and the lines the engine
 * appends follow from these and has_body. */
static int dr_headers_same(lua_State *L, const dr_xfer *x, int n, int has_body) {
  const struct curl_slist *h = x->headers;
  int i;
  if (x->headers_n != n || x->headers_body != has_body || h == NULL)
    return 0;
  for (i = 1; i <= n; i++, h = h->next) {
    size_t len = 0;
    const char *line = dr_header_line(L, i, &len);
    if (line == NULL || strlen(h->data) != len || memcmp(h->data, line, len) != 0)
      return 0;
  }
  return 1;
}

static struct curl_slist *dr_append(struct curl_slist *list, const char *line, int *bad) {
  struct curl_slist *h = *bad ? NULL : curl_slist_append(list, line);
  if (h == NULL)
    *bad = 1;
  return h != NULL ? h : list;
}

/* The n spec lines, then Accept-Encoding unless the spec has one, then "Expect:" (libcurl's
 * Expect: 100-continue only adds a round trip for our small bodies). */
static struct curl_slist *dr_build_headers(lua_State *L, const dr_engine *e, int n, int has_body,
                                           int *bad) {
  struct curl_slist *list = NULL;
  int i, own_ae = 0;
  for (i = 1; i <= n && !*bad; i++) {
    size_t len = 0;
    const char *line = dr_header_line(L, i, &len);
    if (line == NULL || !dr_header_ok(line, len))
      *bad = 1;
    else
      list = dr_append(list, line, bad);
    own_ae = own_ae || (line != NULL && strncasecmp(line, "Accept-Encoding:", 16) == 0);
  }
  if (!own_ae)
    list = dr_append(list, e->accept_encoding, bad);
  if (has_body)
    list = dr_append(list, "Expect:", bad);
  if (*bad) {
    curl_slist_free_all(list);
    return NULL;
  }
  return list;
}

/* Gives the handle the spec's header lines; -1 on a bad line or out of memory. */
static int dr_add_headers(lua_State *L, const dr_engine *e, dr_xfer *x, int idx, int has_body) {
  int n, bad = 0;
  lua_getfield(L, idx, "headers");
  n = lua_istable(L, -1) ? (int)dr_rawlen(L, -1) : 0;
  if (!dr_headers_same(L, x, n, has_body)) {
    /* The handle must never point at a freed list, even if building the new one fails. */
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    curl_slist_free_all(x->headers);
    x->headers = dr_build_headers(L, e, n, has_body, &bad);
    x->headers_n = n;
    x->headers_body = has_body;
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
  }
  lua_pop(L, 1);
  return bad ? -1 : 0;
}

/* Sets the URL unless the handle has it already (a poll); 0 when libcurl has it. */
static int dr_set_url(dr_xfer *x, const char *url, size_t len) {
  if (x->url != NULL && strncmp(x->url, url, len + 1) == 0)
    return 0;
  free(x->url);
  x->url = malloc(len + 1);
  if (x->url != NULL)
    memcpy(x->url, url, len + 1);
  return curl_easy_setopt(x->easy, CURLOPT_URL, url) == CURLE_OK ? 0 : -1;
}

/* A pooled transfer, or a new one with a handle set up for this engine. */
static dr_xfer *dr_engine_xfer(dr_engine *e) {
  dr_xfer *x;
  if (e->npool > 0)
    return e->pool[--e->npool];
  x = calloc(1, sizeof *x);
  if (x == NULL)
    return NULL;
  dr_buf_init(&x->body, e->limits.max_response);
  dr_buf_init(&x->head, DR_HEAD_MAX);
  x->easy = curl_easy_init();
  if (x->easy == NULL) {
    free(x);
    return NULL;
  }
  dr_set_common(x->easy);
  dr_set_limits(x->easy, &e->limits);
  dr_set_xfer(x->easy, x);
  x->get = 1;         /* libcurl's default method */
  x->timeout_ms = -1; /* not set yet */
  return x;
}

static const char *dr_spec_string(lua_State *L, int idx, const char *k, size_t *len) {
  const char *s;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "request field '%s' must be a string", k);
  s = lua_tolstring(L, -1, len);
  lua_pop(L, 1); /* the spec table keeps the string alive */
  return s;
}

static void dr_engine_sweep(dr_engine *e) {
  dr_xfer **pp = &e->xfers;
  while (*pp != NULL) {
    dr_xfer *x = *pp;
    if (x->state == DR_DEAD) {
      *pp = x->next;
      dr_xfer_release(e, x);
    } else {
      pp = &x->next;
    }
  }
}

/* send_by: seconds on dr_now_seconds()'s clock; absent means no deadline. */
static int dr_spec_deadline(lua_State *L, int idx, double *at) {
  int has;
  lua_getfield(L, idx, "send_by");
  has = !lua_isnil(L, -1);
  if (has && lua_type(L, -1) != LUA_TNUMBER)
    luaL_error(L, "request field 'send_by' must be a number");
  *at = has ? (double)lua_tonumber(L, -1) : 0;
  lua_pop(L, 1);
  if (has && *at != *at)
    luaL_error(L, "request field 'send_by' must not be NaN");
  return has;
}

static int dr_spec_flag(lua_State *L, int idx, const char *k, int dflt) {
  int v;
  lua_getfield(L, idx, k);
  v = lua_isnil(L, -1) ? dflt : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

lua_Integer dr_engine_add(lua_State *L, dr_engine *e, int idx) {
  size_t blen = 0, ulen = 0;
  const char *method, *url, *body;
  long timeout_ms;
  int fresh, decode, has_send_by;
  double send_by;
  dr_xfer *x;
  idx = dr_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  dr_engine_sweep(e);
  method = dr_spec_string(L, idx, "method", NULL);
  url = dr_spec_string(L, idx, "url", &ulen);
  body = dr_spec_string(L, idx, "body", &blen);
  if (url == NULL || !dr_header_ok(url, ulen))
    luaL_error(L, "request needs a url without control characters");
  timeout_ms = dr_ms_field(L, idx, "request field", "timeout", e->limits.timeout_ms);
  has_send_by = dr_spec_deadline(L, idx, &send_by);
  fresh = dr_spec_flag(L, idx, "fresh", 0);
  decode = dr_spec_flag(L, idx, "decode", 1);
  x = dr_engine_xfer(e);
  if (x == NULL)
    luaL_error(L, "cannot prepare request (out of memory)");
  /* Owned by the engine from here on, so any later raise cannot leak it. */
  x->next = e->xfers;
  e->xfers = x;
  x->id = ++e->next_id;
  x->state = DR_DEAD; /* until fully set up: swept, never reported */
  x->decode = decode;
  x->result = CURLE_OK;
  x->errbuf[0] = '\0';
  x->head_done = 0;
  x->has_send_by = has_send_by; /* pooled handles keep PREREQDATA: the deadline is per request */
  x->send_by = send_by;
  x->late = 0;
  dr_buf_reset(&x->body);
  dr_buf_reset(&x->head);
  if (dr_add_headers(L, e, x, idx, body != NULL) != 0 || dr_set_url(x, url, ulen) != 0)
    return luaL_error(L, "cannot prepare request (bad header or out of memory)");
  if (x->timeout_ms != timeout_ms)
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, x->timeout_ms = timeout_ms);
  dr_set_method(x, method != NULL ? method : "GET", body, blen);
  /* On a reused connection that dies before answering, libcurl silently sends the
   * request again: for a create that could make a second (paid) task. */
  if (x->fresh != fresh)
    curl_easy_setopt(x->easy, CURLOPT_FRESH_CONNECT, (long)(x->fresh = fresh));
#ifndef DR_HAVE_PREREQ
  if (has_send_by) { /* cannot be enforced: never sent */
    x->late = 2;
    x->result = CURLE_ABORTED_BY_CALLBACK;
    x->state = DR_DONE;
    return x->id;
  }
#endif
  if (curl_multi_add_handle(e->multi, x->easy) != CURLM_OK)
    return luaL_error(L, "cannot start request");
  x->added = 1;
  x->state = DR_RUNNING;
  return x->id;
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
  dr_engine_unlink(e, x);
  dr_xfer_release(e, x);
  return 1;
}

int dr_engine_pending(dr_engine *e) {
  int n = 0;
  dr_xfer *x;
  for (x = e->xfers; x != NULL; x = x->next)
    n++;
  return n;
}

/* Why a response was refused for its size, into msg; 0 when it was not. Our header
 * buffer (DR_HEAD_MAX) fills before libcurl's own 300 KiB total; libcurl refuses a single
 * header line past CURL_MAX_HTTP_HEADER (100 KiB) as "out of memory" (7.88), recognised
 * here as such a failure after the status line and before the header block's end. */
static int dr_too_large(const dr_xfer *x, char *msg, size_t size) {
  if (x->body.overflow)
    snprintf(msg, size, "response larger than max_response_size (%lu bytes)",
             (unsigned long)x->body.limit);
  else if (x->head.overflow)
    snprintf(msg, size, "response headers larger than %lu bytes", (unsigned long)x->head.limit);
  else if (x->result == CURLE_OUT_OF_MEMORY && x->head.len > 0 && !x->head_done)
    snprintf(msg, size, "a response header line larger than libcurl accepts (%d bytes)",
             CURL_MAX_HTTP_HEADER);
  else if (x->result == CURLE_RECV_ERROR &&
           strncmp(x->errbuf, "Too large response headers", 26) == 0)
    snprintf(msg, size, "%s", x->errbuf);
  else
    return 0;
  return 1;
}

static const char *dr_error_code(CURLcode rc) {
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT:
    return "timeout";
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_WEIRD_SERVER_REPLY:
    return "invalid_response";
  default:
    return "network";
  }
}

static void dr_push_error(lua_State *L, dr_xfer *x) {
  long sent = 0;
  char msg[CURL_ERROR_SIZE];
  int big = dr_too_large(x, msg, sizeof msg);
  curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &sent);
  lua_pushstring(L, big ? "invalid_response" : dr_error_code(x->result));
  lua_setfield(L, -2, "error");
  if (big)
    lua_pushstring(L, msg);
  else if (x->late)
    lua_pushstring(L, x->late == 2 ? "not sent: send_by needs libcurl 7.80 or later"
                                   : "not sent: its send_by deadline passed before it could leave");
  else
    lua_pushstring(L, x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result));
  lua_setfield(L, -2, "message");
  lua_pushboolean(L, sent > 0 && !x->late);
  lua_setfield(L, -2, "sent");
  if (x->late) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "not_sent");
  }
  lua_pushinteger(L, (lua_Integer)x->result);
  lua_setfield(L, -2, "curl_code");
}

/* Returns -1 with an error to re-raise on top of the stack, else 0. */
static int dr_push_response(lua_State *L, dr_xfer *x) {
  long status = 0;
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  /* The raw header block: the Lua side parses it only when it needs a header. */
  lua_pushlstring(L, x->head.data ? x->head.data : "", x->head.len);
  lua_setfield(L, -2, "head");
  lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
  /* The Lua string is the only copy needed from here: free a big one before decoding. */
  dr_buf_done(&x->body, DR_BODY_KEEP);
  if (!x->decode || dr_rawlen(L, -1) == 0) {
    lua_setfield(L, -2, "raw");
    return 0;
  }
  lua_pushvalue(L, -1);
  switch (dr_json_decode(L)) {
  case 1:
    lua_setfield(L, -3, "body");
    lua_pop(L, 1);
    return 0;
  case 0:
    lua_setfield(L, -3, "decode_error");
    lua_setfield(L, -2, "raw");
    return 0;
  default:
    return -1;
  }
}

void dr_engine_push_result(lua_State *L, dr_engine *e, dr_xfer *x) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, x->id);
  lua_setfield(L, -2, "id");
  if (x->result != CURLE_OK) {
    dr_push_error(L, x);
  } else if (dr_push_response(L, x) != 0) {
    dr_engine_unlink(e, x);
    dr_xfer_release(e, x);
    lua_error(L); /* nothing of ours is held past this point */
  }
  dr_engine_unlink(e, x);
  dr_xfer_release(e, x);
}
