/* Easy handles: their setup, the per-handle caches and the reuse pool. A pooled handle keeps
 * every option as its last request set it (headers, URL, method, timeout, fresh connection),
 * so that a client polling one task sets almost nothing per request. libcurl's callbacks
 * here only copy bytes: Lua never runs while libcurl is on the C stack. */
#include "easy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine.h"

static size_t dr_on_body(char *p, size_t size, size_t n, void *ud) {
  dr_xfer *x = ud;
  if (x->fp != NULL && dr_easy_to_file(x))
    return dr_easy_file_write(x, p, size * n);
  if (x->body.len == 0) {
    /* Size the buffer once from Content-Length: no regrowth for big bodies. */
    curl_off_t len = -1;
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
    if (len > 0 && (size_t)len > x->body.cap)
      dr_buf_reserve(&x->body, (size_t)len);
  }
  if (dr_buf_append(&x->body, p, size * n) == 0)
    return size * n;
  /* A link check needs the status, not the page: the transfer ends here as an answer. */
  if (x->truncate && x->body.overflow)
    x->truncated = 1;
  return 0;
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
    x->unsent = DR_UNSENT_LATE;
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}
#endif

/* The line libcurl would format on every request for CURLOPT_ACCEPT_ENCODING "" (every
 * encoding it decodes, in its order). Sent among our own lines it costs libcurl ~3 k
 * fewer instructions per request; libcurl still decodes, as the option stays set. */
void dr_easy_accept_encoding(char *out, size_t size) {
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

void dr_easy_body_done(dr_xfer *x) {
  dr_buf_done(&x->body, DR_BODY_KEEP);
}

/* Transfers (with their easy handles) alive in the process, and the bytes of their own
 * structs and URL copies (core.stats()); buffers are counted by buffer.c. */
static size_t dr_xfers_live = 0, dr_xfers_bytes = 0;

void dr_easy_stats(size_t *xfers, size_t *bytes) {
  *xfers = dr_xfers_live;
  *bytes = dr_xfers_bytes;
}

void dr_easy_free(dr_xfer *x) {
  dr_easy_file_discard(x);
  dr_xfers_live--;
  dr_xfers_bytes -= sizeof *x + (x->url != NULL ? strlen(x->url) + 1 : 0);
  if (x->easy != NULL)
    curl_easy_cleanup(x->easy);
  curl_slist_free_all(x->headers);
  free(x->url);
  dr_buf_free(&x->body);
  dr_buf_free(&x->head);
  free(x);
}

/* Into the pool with its handle, whose options stay as they were last set. */
void dr_easy_release(dr_engine *e, dr_xfer *x) {
  if (x->added)
    curl_multi_remove_handle(e->multi, x->easy);
  x->added = 0;
  dr_easy_file_discard(x);
  if (x->easy == NULL || e->npool >= DR_POOL_MAX || e->closed) {
    dr_easy_free(x);
    return;
  }
  dr_buf_done(&x->body, DR_BODY_KEEP);
  dr_buf_done(&x->head, DR_HEAD_KEEP);
  e->pool[e->npool++] = x;
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
  if (x->nobody)
    curl_easy_setopt(c, CURLOPT_NOBODY, (long)(x->nobody = 0));
  x->get = get;
  if (get)
    return;
  if (strcmp(method, "HEAD") == 0) { /* libcurl reads no body after a HEAD's header block */
    curl_easy_setopt(c, CURLOPT_NOBODY, (long)(x->nobody = 1));
    return;
  }
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
  /* Third-party pages only (link checks); the API's engines keep FOLLOWLOCATION 0. No
   * credential can follow a redirect: none is set, and the protocols stay http and https. */
  if (lim->max_redirects > 0) {
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, lim->max_redirects);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  }
}

/* Options that never change for an engine's handles: set once per handle. */
static void dr_set_common(CURL *c, dr_xfer *x) {
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
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(c, CURLOPT_PRIVATE, (void *)x);
#ifdef DR_HAVE_PREREQ
  curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, dr_on_prereq);
  curl_easy_setopt(c, CURLOPT_PREREQDATA, (void *)x);
#endif
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
    const char *line = dr_spec_header(L, i, &len);
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
    const char *line = dr_spec_header(L, i, &len);
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
static int dr_set_headers(lua_State *L, const dr_engine *e, dr_xfer *x, int idx, int has_body) {
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
  if (x->url != NULL)
    dr_xfers_bytes -= strlen(x->url) + 1;
  free(x->url);
  x->url = malloc(len + 1);
  if (x->url != NULL) {
    memcpy(x->url, url, len + 1);
    dr_xfers_bytes += len + 1;
  }
  return curl_easy_setopt(x->easy, CURLOPT_URL, url) == CURLE_OK ? 0 : -1;
}

dr_xfer *dr_easy_take(dr_engine *e) {
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
  dr_xfers_live++;
  dr_xfers_bytes += sizeof *x;
  dr_set_common(x->easy, x);
  dr_set_limits(x->easy, &e->limits);
  x->follow = e->limits.max_redirects > 0;
  x->truncate = e->limits.truncate_body;
  x->get = 1;         /* libcurl's default method */
  x->timeout_ms = -1; /* not set yet */
  return x;
}

int dr_easy_prepare(lua_State *L, const dr_engine *e, dr_xfer *x, int idx, const dr_spec *s) {
  x->decode = s->decode;
  x->result = CURLE_OK;
  x->errbuf[0] = '\0';
  x->head_done = 0;
  x->has_send_by = s->has_send_by; /* pooled handles keep PREREQDATA: the deadline is per request */
  x->send_by = s->send_by;
  x->unsent = 0;
  x->truncated = 0;
  x->to_file = -1;
  x->file_bytes = 0;
  x->file_errno = 0;
  dr_buf_reset(&x->body);
  dr_buf_reset(&x->head);
  if (dr_set_headers(L, e, x, idx, s->body != NULL) != 0 || dr_set_url(x, s->url, s->url_len) != 0)
    return -1;
  if (x->timeout_ms != s->timeout_ms)
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, x->timeout_ms = s->timeout_ms);
  dr_set_method(x, s->method != NULL ? s->method : "GET", s->body, s->body_len);
  /* On a reused connection that dies before answering, libcurl silently sends the
   * request again: for a create that could make a second (paid) task. */
  if (x->fresh != s->fresh)
    curl_easy_setopt(x->easy, CURLOPT_FRESH_CONNECT, (long)(x->fresh = s->fresh));
  return 0;
}
