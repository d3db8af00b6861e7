/* JSON text to Lua values, by calling lua-cjson through the Lua API. Linking
 * cjson's C code instead would clash with the copy Neovim exports. */
#include "json.h"

#include <math.h>

static const char dr_decoder_key = 'j';

static int dr_load_cjson(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "decode");
  return 1;
}

static int dr_load_vim_json(lua_State *L) {
  lua_getglobal(L, "vim");
  if (!lua_istable(L, -1))
    return 0;
  lua_getfield(L, -1, "json");
  if (!lua_istable(L, -1))
    return 0;
  lua_getfield(L, -1, "decode");
  return lua_isfunction(L, -1);
}

int dr_json_init(lua_State *L) {
  int top = lua_gettop(L);
  lua_pushcfunction(L, dr_load_cjson);
  if (lua_pcall(L, 0, 1, 0) != 0 || !lua_isfunction(L, -1)) {
    lua_settop(L, top);
    if (!dr_load_vim_json(L)) {
      lua_settop(L, top);
      return 0;
    }
  }
  lua_pushlightuserdata(L, (void *)&dr_decoder_key);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
  lua_settop(L, top);
  return 1;
}

static void dr_fix_number(lua_State *L, int t) {
#if LUA_VERSION_NUM >= 503
  /* cjson 2.1.0 decodes 25 as 25.0; tasks count agents, so give integers back. */
  lua_Number n = lua_tonumber(L, -1);
  if (!lua_isinteger(L, -1) && n == floor(n) && fabs(n) < 9007199254740992.0) {
    lua_pushvalue(L, -2);
    lua_pushinteger(L, (lua_Integer)n);
    lua_rawset(L, t);
  }
#else
  (void)L;
  (void)t;
#endif
}

/* The array part first by index (cheap), then the rest with lua_next. */
static void dr_strip(lua_State *L, int t, int depth) {
  int i, n;
  t = dr_absindex(L, t);
  if (depth > 1000 || !lua_checkstack(L, 4))
    return;
  n = (int)dr_rawlen(L, t);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, t, i);
    if (lua_type(L, -1) == LUA_TNUMBER) {
      lua_pushinteger(L, i);
      lua_insert(L, -2);
      dr_fix_number(L, t);
      lua_pop(L, 2);
      continue;
    }
    if (lua_type(L, -1) == LUA_TTABLE)
      dr_strip(L, -1, depth + 1);
    lua_pop(L, 1);
  }
  if (n > 0)
    lua_pushinteger(L, n);
  else
    lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    int vt = lua_type(L, -1);
    if (vt == LUA_TTABLE) {
      dr_strip(L, -1, depth + 1);
    } else if (vt == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL &&
               lua_type(L, -2) == LUA_TSTRING) {
      /* Assigning nil to an existing field during lua_next is allowed. */
      lua_pushvalue(L, -2);
      lua_pushnil(L);
      lua_rawset(L, t);
    } else if (vt == LUA_TNUMBER) {
      dr_fix_number(L, t);
    }
    lua_pop(L, 1);
  }
}

int dr_json_decode(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&dr_decoder_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 2);
    lua_pushliteral(L, "no JSON decoder (install lua-cjson)");
    return 0;
  }
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 1, 0) != 0) {
    if (!lua_isstring(L, -1)) {
      lua_pop(L, 1);
      lua_pushliteral(L, "invalid JSON");
    }
    return 0;
  }
  if (lua_istable(L, -1))
    dr_strip(L, -1, 0);
  return 1;
}
