/* Userdata that own a dr_engine: the client and the poller. Made the liolib
 * way: marked closed and given its metatable before any resource is taken. */
#include "handle.h"

#include <string.h>

dr_engine *dr_handle_new(lua_State *L, const char *tname, int opts_idx, const dr_engine *from) {
  dr_engine *e = dr_newuserdata(L, sizeof *e);
  memset(e, 0, sizeof *e);
  e->closed = 1;
  dr_setmetatable(L, tname);
  lua_newtable(L);
  dr_setuservalue(L, -2);
  if (from != NULL)
    dr_limits_copy(&e->limits, &from->limits);
  else
    dr_limits_read(L, opts_idx, &e->limits);
  if (dr_engine_open(e) != 0) {
    dr_limits_free(&e->limits);
    luaL_error(L, "cannot create a curl multi handle");
  }
  return e;
}

dr_engine *dr_handle_check(lua_State *L, int idx, const char *tname) {
  dr_engine *e = dr_testudata(L, idx, tname);
  if (e == NULL) {
    luaL_argerror(L, idx, lua_pushfstring(L, "%s expected", tname));
    return NULL; /* not reached: luaL_argerror raises */
  }
  if (e->closed)
    luaL_error(L, "attempt to use a closed %s", tname);
  return e;
}

static dr_engine *dr_handle_any(lua_State *L) {
  dr_engine *e = dr_testudata(L, 1, DR_CLIENT);
  if (e == NULL)
    e = dr_testudata(L, 1, DR_POLLER);
  if (e == NULL)
    luaL_argerror(L, 1, "deepresearch handle expected"); /* raises */
  return e;
}

static int dr_handle_close(lua_State *L) {
  dr_engine_close(dr_handle_any(L));
  return 0;
}

static int dr_handle_closed(lua_State *L) {
  lua_pushboolean(L, dr_handle_any(L)->closed);
  return 1;
}

static int dr_handle_data(lua_State *L) {
  dr_handle_any(L);
  dr_getuservalue(L, 1);
  return 1;
}

static int dr_handle_tostring(lua_State *L) {
  dr_engine *e = dr_handle_any(L);
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "__name");
  lua_pushfstring(L, "%s: %p%s", lua_tostring(L, -1), (void *)e, e->closed ? " (closed)" : "");
  return 1;
}

static const luaL_Reg dr_handle_meta[] = {{"__gc", dr_handle_close},
                                          {"__close", dr_handle_close},
                                          {"__tostring", dr_handle_tostring},
                                          {NULL, NULL}};

static const luaL_Reg dr_handle_methods[] = {{"close", dr_handle_close},
                                             {"closed", dr_handle_closed},
                                             {"data", dr_handle_data},
                                             {NULL, NULL}};

void dr_handle_register(lua_State *L, const char *tname, const luaL_Reg *methods) {
  luaL_newmetatable(L, tname);
  lua_pushstring(L, tname);
  lua_setfield(L, -2, "__name");
  dr_setfuncs(L, dr_handle_meta, 0);
  lua_newtable(L);
  dr_setfuncs(L, dr_handle_methods, 0);
  dr_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
}
