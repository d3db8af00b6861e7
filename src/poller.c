/* The poller: many transfers in flight on one multi handle, advanced by step()
 * from the host's event loop. Results are handed back as values; the Lua side
 * runs callbacks after step() returns, so no Lua error crosses libcurl. */
#include "poller.h"

#include <sys/select.h>

#include "handle.h"
#include "json.h"

static int dr_poller_add(lua_State *L) {
  dr_engine *e = dr_handle_check(L, 1, DR_POLLER);
  lua_pushinteger(L, dr_engine_add(L, e, 2));
  return 1;
}

/* The longest one step may wait inside libcurl: lua.c's Ctrl-C hook runs only between Lua
 * instructions, so the Lua side loops over steps of at most this many milliseconds. */
#define DR_STEP_MAX_MS 100
#define DR_MAX_CONNECTIONS 1024

/* Appends x's result to the table at out (as item n), then decodes its body there. lua.c's
 * Ctrl-C hook can fire on the decoder's call: the error is re-raised, and the result stays in
 * out with its raw body and undecoded = true, for the Lua side to decode. */
static void dr_poller_take(lua_State *L, dr_engine *e, dr_xfer *x, int out, lua_Integer n) {
  int decode = x->decode;
  size_t len = 0;
  x->decode = 0; /* the result comes back with its raw body; x is released */
  dr_engine_push_result(L, e, x);
  lua_pushvalue(L, -1);
  lua_rawseti(L, out, n);
  lua_getfield(L, -1, "raw");
  if (!decode || lua_tolstring(L, -1, &len) == NULL || len == 0) {
    lua_pop(L, 2);
    return;
  }
  lua_pushboolean(L, 1);
  lua_setfield(L, -3, "undecoded");
  switch (dr_json_decode(L)) {
  case 1:
    lua_setfield(L, -2, "body");
    lua_pushnil(L);
    lua_setfield(L, -2, "raw");
    break;
  case 0:
    lua_setfield(L, -2, "decode_error");
    break;
  default:
    lua_error(L); /* x is released; the result is in out */
  }
  lua_pushnil(L);
  lua_setfield(L, -2, "undecoded");
  lua_pop(L, 1);
}

/* step(ms [, out]): the results of the transfers that ended, appended to out (a table the
 * caller keeps, so that an error raised as step returns, such as lua.c's "interrupted!",
 * loses none of them) or to a new table; returns that table. */
static int dr_poller_step(lua_State *L) {
  dr_engine *e = dr_handle_check(L, 1, DR_POLLER);
  lua_Integer ms = luaL_optinteger(L, 2, 0), n;
  dr_xfer *x;
  luaL_argcheck(L, ms >= 0, 2, "must not be negative");
  if (lua_isnoneornil(L, 3)) {
    lua_settop(L, 2);
    lua_newtable(L);
  } else {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
  }
  n = (lua_Integer)dr_rawlen(L, 3);
  dr_engine_step(e, ms > DR_STEP_MAX_MS ? DR_STEP_MAX_MS : (int)ms);
  while ((x = dr_engine_next_done(e)) != NULL)
    dr_poller_take(L, e, x, 3, ++n);
  return 1;
}

static int dr_poller_next_timeout(lua_State *L) {
  dr_engine *e = dr_handle_check(L, 1, DR_POLLER);
  long ms = -1;
  curl_multi_timeout(e->multi, &ms);
  if (ms < 0)
    lua_pushnil(L);
  else
    lua_pushinteger(L, ms);
  return 1;
}

/* The sockets libcurl waits on, as integers, for loops that watch descriptors; and a
 * second table fd -> "r", "w" or "rw" saying what it waits for on each. */
static int dr_poller_fds(lua_State *L) {
  dr_engine *e = dr_handle_check(L, 1, DR_POLLER);
  fd_set r, w, x;
  int maxfd = -1, fd, n = 0;
  FD_ZERO(&r);
  FD_ZERO(&w);
  FD_ZERO(&x);
  curl_multi_fdset(e->multi, &r, &w, &x, &maxfd);
  lua_newtable(L);
  lua_newtable(L);
  for (fd = 0; fd <= maxfd; fd++) {
    int rd = FD_ISSET(fd, &r), wr = FD_ISSET(fd, &w);
    if (!rd && !wr)
      continue;
    lua_pushinteger(L, fd);
    lua_rawseti(L, -3, ++n);
    lua_pushstring(L, rd && wr ? "rw" : rd ? "r" : "w");
    lua_rawseti(L, -2, fd);
  }
  return 2;
}

static int dr_poller_pending(lua_State *L) {
  lua_pushinteger(L, dr_engine_pending(dr_handle_check(L, 1, DR_POLLER)));
  return 1;
}

static int dr_poller_cancel(lua_State *L) {
  dr_engine *e = dr_handle_check(L, 1, DR_POLLER);
  lua_pushboolean(L, dr_engine_cancel(e, luaL_checkinteger(L, 2)));
  return 1;
}

static const luaL_Reg dr_poller_methods[] = {{"add", dr_poller_add},
                                             {"step", dr_poller_step},
                                             {"next_timeout", dr_poller_next_timeout},
                                             {"fds", dr_poller_fds},
                                             {"pending", dr_poller_pending},
                                             {"cancel", dr_poller_cancel},
                                             {NULL, NULL}};

/* new_poller(client [, max_connections]): the client's limits, its own connections. */
static int dr_poller_new(lua_State *L) {
  dr_engine *from = dr_handle_check(L, 1, DR_CLIENT);
  lua_Integer maxc = luaL_optinteger(L, 2, from->limits.max_connections);
  dr_engine *e;
  luaL_argcheck(L, maxc >= 1 && maxc <= DR_MAX_CONNECTIONS, 2,
                "max_connections must be an integer from 1 to 1024");
  e = dr_handle_new(L, DR_POLLER, 0, from);
  e->limits.max_connections = (long)maxc;
  curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)maxc);
  curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)maxc);
  curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)maxc);
  return 1;
}

void dr_poller_open(lua_State *L) {
  dr_handle_register(L, DR_POLLER, dr_poller_methods);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "poller_methods");
  lua_setfield(L, -2, "poller_metatable");
  lua_pushcfunction(L, dr_poller_new);
  lua_setfield(L, -2, "new_poller");
}
