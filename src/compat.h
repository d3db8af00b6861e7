/* Lua 5.1-5.4 / LuaJIT shims. Written against the 5.4 API; older ABIs get
 * dr_-prefixed stand-ins so LuaJIT's own 5.2 extensions never clash and the
 * 5.1 build only calls symbols PUC 5.1 exports. */
#ifndef DR_COMPAT_H
#define DR_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM >= 502
#define dr_setfuncs luaL_setfuncs
#define dr_rawlen lua_rawlen
#define dr_absindex lua_absindex
#define dr_testudata luaL_testudata
#else
void dr_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
void *dr_testudata(lua_State *L, int idx, const char *tname);
#define dr_rawlen(L, i) lua_objlen((L), (i))
#define dr_absindex(L, i) (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
#endif

#if LUA_VERSION_NUM >= 504
#define dr_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 1)
#define dr_getuservalue(L, i) ((void)lua_getiuservalue((L), (i), 1))
#define dr_setuservalue(L, i) ((void)lua_setiuservalue((L), (i), 1))
#elif LUA_VERSION_NUM >= 502
#define dr_newuserdata(L, sz) lua_newuserdata((L), (sz))
#define dr_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#define dr_setuservalue(L, i) lua_setuservalue((L), (i))
#else
#define dr_newuserdata(L, sz) lua_newuserdata((L), (sz))
#define dr_getuservalue(L, i) lua_getfenv((L), (i))
#define dr_setuservalue(L, i) ((void)lua_setfenv((L), (i)))
#endif

#if LUA_VERSION_NUM >= 503
#define dr_isinteger(L, i) lua_isinteger((L), (i))
#else
#define dr_isinteger(L, i) 0
#endif

/* Sets the metatable registered under tname on the value at the top. */
void dr_setmetatable(lua_State *L, const char *tname);

#endif
