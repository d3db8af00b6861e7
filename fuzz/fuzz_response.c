/* libFuzzer harness: response bytes (headers + body) to Lua values and error
 * objects, through the same code a finished transfer goes through. Input:
 * byte 0 picks the curl result (0: success), then headers, "\n\n", body. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "harness.h"

#include "../src/engine.h"

static lua_State *L;
static dr_engine engine;

static void setup(void) {
  L = dr_fuzz_state();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  memset(&engine, 0, sizeof engine);
  engine.limits.max_response = 1 << 20;
  engine.limits.max_connections = 1;
  if (dr_engine_open(&engine) != 0)
    abort();
}

static const CURLcode results[] = {
    CURLE_OK,         CURLE_OPERATION_TIMEDOUT, CURLE_WRITE_ERROR,         CURLE_COULDNT_CONNECT,
    CURLE_RECV_ERROR, CURLE_PARTIAL_FILE,       CURLE_BAD_CONTENT_ENCODING};

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  const char *split;
  size_t hlen;
  dr_xfer *x;
  int top, overflow;
  if (L == NULL)
    setup();
  if (size < 1)
    return 0;
  x = calloc(1, sizeof *x);
  x->easy = curl_easy_init();
  x->decode = 1;
  x->state = DR_DONE;
  x->result = results[(data[0] & 0x7f) % (sizeof results / sizeof results[0])];
  x->body.overflow = 0;
  dr_buf_init(&x->body, engine.limits.max_response);
  dr_buf_init(&x->head, 1 << 16);
  overflow = (data[0] & 0x80) && x->result == CURLE_WRITE_ERROR;
  data++, size--;
  split = memmem(data, size, "\n\n", 2);
  hlen = split ? (size_t)(split - (const char *)data) : size;
  dr_buf_append(&x->head, (const char *)data, hlen);
  if (split)
    dr_buf_append(&x->body, split + 2, size - hlen - 2);
  x->body.overflow = overflow;
  x->next = engine.xfers;
  engine.xfers = x;
  top = lua_gettop(L);
  dr_engine_push_result(L, &engine, x);
  if (!lua_istable(L, -1))
    abort();
  lua_settop(L, top);
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}
