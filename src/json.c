/* JSON text to Lua values, by calling lua-cjson through the Lua API. Linking
 * cjson's C code instead would clash with the copy Neovim exports. */
#include "json.h"

#include <string.h>

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

/* Only integers a double holds exactly: past 2^53 the text's digits are already lost. */
#define DR_EXACT 9007199254740992LL

/* The integer a decoded number should be, if any: cjson 2.1.0 decodes 25 as 25.0, and
 * tasks count agents. Plain C arithmetic: the API's lua_tointegerx costs twice as much,
 * and the walk calls this for every number. An integer decoder's own integers compare
 * equal and are rewritten unchanged. Returns 0 for non-integral numbers and on 5.1/5.2. */
static int dr_integral(lua_State *L, lua_Integer *out) {
#if LUA_VERSION_NUM >= 503
  lua_Number d = lua_tonumberx(L, -1, NULL);
  if (!(d > -DR_EXACT && d < DR_EXACT) || d != (lua_Number)(lua_Integer)d)
    return 0;
  *out = (lua_Integer)d;
  return 1;
#else
  (void)L;
  (void)out;
  return 0;
#endif
}

/* Nulls out of objects and integers into place, in the table at absolute index t. The
 * array part first by index (cheap), then the rest with lua_next. */
static void dr_strip(lua_State *L, int t, int depth) {
  lua_Integer i, n, v;
  /* Each level holds a key and a value, and pushes two more at most: room for eight
   * levels is made at once. */
  if (depth > 1000 || (depth % 8 == 0 && !lua_checkstack(L, 8 * 2 + 4)))
    return;
  n = (lua_Integer)dr_rawlen(L, t);
  for (i = 1; i <= n; i++) {
    int vt;
    lua_rawgeti(L, t, i);
    vt = lua_type(L, -1);
    if (vt == LUA_TTABLE) {
      dr_strip(L, lua_gettop(L), depth + 1);
    } else if (vt == LUA_TNUMBER && dr_integral(L, &v)) {
      lua_pushinteger(L, v);
      lua_rawseti(L, t, i);
    }
    lua_pop(L, 1);
  }
  if (n > 0)
    lua_pushinteger(L, n);
  else
    lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    int vt = lua_type(L, -1);
    if (vt == LUA_TTABLE) {
      dr_strip(L, lua_gettop(L), depth + 1);
    } else if (vt == LUA_TLIGHTUSERDATA) {
      /* Assigning to an existing field during lua_next is allowed. */
      if (lua_touserdata(L, -1) == NULL && lua_type(L, -2) == LUA_TSTRING) {
        lua_pushvalue(L, -2);
        lua_pushnil(L);
        lua_rawset(L, t);
      }
    } else if (vt == LUA_TNUMBER && dr_integral(L, &v)) {
      lua_pushvalue(L, -2);
      lua_pushinteger(L, v);
      lua_rawset(L, t);
    }
    lua_pop(L, 1);
  }
}

int dr_json_decode(lua_State *L) {
  int status;
  lua_pushlightuserdata(L, (void *)&dr_decoder_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 2);
    lua_pushliteral(L, "no JSON decoder (install lua-cjson)");
    return 0;
  }
  lua_insert(L, -2);
  status = lua_pcall(L, 1, 1, 0);
  if (status != 0) {
    /* Only the decoder's verdict on the text is ours to report. Anything else raised in
     * there, such as lua.c's "interrupted!" from a Ctrl-C hook that fired on the call,
     * or running out of memory, belongs to the caller: -1 says re-raise it. */
    size_t len = 0;
    const char *msg = lua_tolstring(L, -1, &len);
    if (status != LUA_ERRRUN ||
        (msg != NULL && len >= 12 && strcmp(msg + len - 12, "interrupted!") == 0))
      return -1;
    if (msg == NULL) {
      lua_pop(L, 1);
      lua_pushliteral(L, "invalid JSON");
    }
    return 0;
  }
  if (lua_istable(L, -1))
    dr_strip(L, lua_gettop(L), 0);
  return 1;
}
