#ifndef DR_ENGINE_H
#define DR_ENGINE_H

#include <curl/curl.h>

#include "buffer.h"
#include "compat.h"

/* Limits shared by every transfer of one engine (client options). */
typedef struct dr_limits {
  long connect_timeout_ms;
  long timeout_ms;
  long low_speed_limit; /* bytes per second ... */
  long low_speed_time;  /* ... sustained this many seconds aborts */
  size_t max_response;
  long max_connections;
  char *ca_file;
  char *proxy;
  char *user_agent;
} dr_limits;

enum { DR_DEAD, DR_RUNNING, DR_DONE };

/* A transfer and its easy handle. Finished ones go back to the engine's pool with the
 * handle's options as they were last set, so that the next request sets only what differs. */
typedef struct dr_xfer {
  struct dr_xfer *next;
  lua_Integer id;
  CURL *easy;
  struct curl_slist *headers; /* the list the handle was last given; kept while it matches */
  int headers_n;              /* how many of its lines came from the spec */
  int headers_body;           /* it ends with the "Expect:" of a request with a body */
  char *url;                  /* the URL the handle was last given */
  dr_buf body;
  dr_buf head;
  int state;
  int added; /* to the multi handle */
  int decode;
  int get;         /* the handle is set for a plain GET */
  int fresh;       /* CURLOPT_FRESH_CONNECT as last set */
  long timeout_ms; /* CURLOPT_TIMEOUT_MS as last set */
  int head_done;   /* the header block's blank line came */
  int has_send_by; /* the request must not leave after send_by ... */
  double send_by;  /* ... seconds on dr_now_seconds()'s clock */
  int late;        /* 1: it did not (2: cannot be enforced here), so never sent */
  CURLcode result;
  char errbuf[CURL_ERROR_SIZE];
} dr_xfer;

#define DR_POOL_MAX 16

typedef struct dr_engine {
  CURLM *multi;
  dr_xfer *xfers; /* every transfer this engine owns, in any state */
  dr_xfer *pool[DR_POOL_MAX];
  int npool;
  lua_Integer next_id;
  int closed;
  dr_limits limits;
  char accept_encoding[64]; /* the header line, see dr_accept_encoding */
} dr_engine;

/* Reads limits from the options table at idx (absent keys keep defaults). */
void dr_limits_read(lua_State *L, int idx, dr_limits *lim);
int dr_limits_copy(dr_limits *dst, const dr_limits *src);
void dr_limits_free(dr_limits *lim);

int dr_engine_open(dr_engine *e);
void dr_engine_close(dr_engine *e);
/* Starts the request described by the table at idx; returns its id. Raises on bad specs. */
lua_Integer dr_engine_add(lua_State *L, dr_engine *e, int idx);
/* Does ready network work, waiting at most timeout_ms; returns running transfer count. */
int dr_engine_step(dr_engine *e, int timeout_ms);
dr_xfer *dr_engine_find(dr_engine *e, lua_Integer id);
dr_xfer *dr_engine_next_done(dr_engine *e);
/* Pushes the outcome table of a finished transfer, then frees it. */
void dr_engine_push_result(lua_State *L, dr_engine *e, dr_xfer *x);
int dr_engine_cancel(dr_engine *e, lua_Integer id);
int dr_engine_pending(dr_engine *e);
/* Seconds on the monotonic clock (core.now(), a request's send_by). */
double dr_now_seconds(void);
/* Whether this libcurl can keep a request with send_by from leaving late (>= 7.80). */
int dr_engine_has_send_by(void);

#endif
