/* deepresearch.core: module entry and small process-wide utilities. */
#include <errno.h>
#include <time.h>

#include <curl/curl.h>

#include "client.h"
#include "compat.h"
#include "deepresearch.h"
#include "engine.h"
#include "hmac.h"
#include "json.h"
#include "poller.h"

/* src/journal.c: append_line and mkdir_private. */
void dr_journal_open(lua_State *L);

static int dr_decode(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_settop(L, 1);
  switch (dr_json_decode(L)) {
  case 1:
    return 1;
  case 0:
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  default:
    return lua_error(L);
  }
}

/* Returns true when the full time passed, false when a signal cut it short. */
static int dr_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  struct timespec ts;
  if (!(s > 0)) { /* NaN too */
    lua_pushboolean(L, 1);
    return 1;
  }
  if (s > 1e9) /* a time_t cannot hold inf: a sleep of 30 years is forever enough */
    s = 1e9;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  lua_pushboolean(L, nanosleep(&ts, NULL) == 0 || errno != EINTR);
  return 1;
}

static int dr_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)dr_now_seconds());
  return 1;
}

/* core.stats(): what the C side holds now, process-wide: transfers (easy handles, pooled or
 * in flight), bytes of its own allocations (transfer structs, URL copies, body and header
 * buffers; not libcurl's internals), and connections opened so far. */
static int dr_stats(lua_State *L) {
  size_t xfers = 0, bytes = 0;
  dr_easy_stats(&xfers, &bytes);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)xfers);
  lua_setfield(L, -2, "transfers");
  lua_pushinteger(L, (lua_Integer)(bytes + dr_buf_bytes()));
  lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, (lua_Integer)dr_engine_connects());
  lua_setfield(L, -2, "connects");
  return 1;
}

static const luaL_Reg dr_functions[] = {{"stats", dr_stats},
                                        {"decode", dr_decode},
                                        {"sleep", dr_sleep},
                                        {"now", dr_now},
                                        {"set_decoder", dr_json_set_decoder},
                                        {"set_array_metatable", dr_json_set_array_metatable},
                                        {NULL, NULL}};

static void dr_global_init(void) {
  static int done = 0;
  if (!done && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
    done = 1;
}

DEEPRESEARCH_API int luaopen_deepresearch_core(lua_State *L) {
  dr_global_init();
  lua_newtable(L);
  dr_setfuncs(L, dr_functions, 0);
  lua_pushliteral(L, DEEPRESEARCH_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
  lua_setfield(L, -2, "curl_version");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pushboolean(L, dr_engine_has_send_by());
  lua_setfield(L, -2, "has_send_by");
  dr_client_open(L);
  dr_poller_open(L);
  dr_hmac_open(L);
  dr_journal_open(L);
  return 1;
}
