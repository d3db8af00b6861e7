#ifndef DR_ENGINE_H
#define DR_ENGINE_H

#include <curl/curl.h>

#include "compat.h"
#include "easy.h"
#include "spec.h"

#define DR_POOL_MAX 16

/* A curl multi handle and the transfers it owns (engine.c); their easy handles and pool
 * (easy.c); what Lua gives it (spec.c) and gets back (result.c). */
typedef struct dr_engine {
  CURLM *multi;
  dr_xfer *xfers; /* every transfer this engine owns, in any state */
  dr_xfer *pool[DR_POOL_MAX];
  int npool;
  lua_Integer next_id;
  int closed;
  dr_limits limits;
  char accept_encoding[64]; /* the header line, see dr_easy_accept_encoding */
} dr_engine;

int dr_engine_open(dr_engine *e);
void dr_engine_close(dr_engine *e);
/* Starts the request described by the table at idx; returns its id. Raises on bad specs. */
lua_Integer dr_engine_add(lua_State *L, dr_engine *e, int idx);
/* Does ready network work, waiting at most timeout_ms; returns running transfer count. */
int dr_engine_step(dr_engine *e, int timeout_ms);
dr_xfer *dr_engine_find(dr_engine *e, lua_Integer id);
dr_xfer *dr_engine_next_done(dr_engine *e);
/* Takes the transfer out of the engine's list and releases it. */
void dr_engine_drop(dr_engine *e, dr_xfer *x);
/* Pushes the outcome table of a finished transfer, then frees it (result.c). */
void dr_engine_push_result(lua_State *L, dr_engine *e, dr_xfer *x);
int dr_engine_cancel(dr_engine *e, lua_Integer id);
int dr_engine_pending(dr_engine *e);
/* Connections opened by every engine's finished transfers so far (core.stats()). */
long dr_engine_connects(void);
/* Seconds on the monotonic clock (core.now(), a request's send_by). */
double dr_now_seconds(void);
/* Whether this libcurl can keep a request with send_by from leaving late (>= 7.80). */
int dr_engine_has_send_by(void);

#endif
