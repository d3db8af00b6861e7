#include "harness.h"

#include <lauxlib.h>
#include <lualib.h>

#include "deepresearch.h"

lua_State *dr_fuzz_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_deepresearch_core);
  lua_setfield(L, -2, "deepresearch.core");
  lua_pop(L, 2);
  (void)luaL_dostring(L, "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path");
  return L;
}
