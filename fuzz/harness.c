#include "harness.h"

#include <stdlib.h>

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
  /* What the Lua front hands the core: a private cjson and an array metatable. */
  if (luaL_dostring(L, "local core = require 'deepresearch.core'\n"
                       "local cjson = require('cjson').new()\n"
                       "cjson.decode_invalid_numbers(false)\n"
                       "core.set_decoder(cjson.decode, cjson.null)\n"
                       "core.set_array_metatable({})\n") != 0)
    abort(); /* lua-cjson must be installed for this Lua */
  return L;
}
