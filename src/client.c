/* The client: one engine whose transfers run one at a time, to completion. */
#include "client.h"

#include "handle.h"

static int dr_client_request(lua_State *L) {
  dr_engine *e = dr_handle_check(L, 1, DR_CLIENT);
  lua_Integer id = dr_engine_add(L, e, 2);
  dr_xfer *x;
  while ((x = dr_engine_find(e, id)) != NULL && x->state != DR_DONE)
    dr_engine_step(e, 1000);
  if (x == NULL)
    return luaL_error(L, "request vanished (client closed during the call?)");
  dr_engine_push_result(L, e, x);
  return 1;
}

static const luaL_Reg dr_client_methods[] = {{"request", dr_client_request}, {NULL, NULL}};

static int dr_client_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  dr_handle_new(L, DR_CLIENT, 1, NULL);
  return 1;
}

void dr_client_open(lua_State *L) {
  dr_handle_register(L, DR_CLIENT, dr_client_methods);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "client_methods");
  lua_setfield(L, -2, "client_metatable");
  lua_pushcfunction(L, dr_client_new);
  lua_setfield(L, -2, "new_client");
}
