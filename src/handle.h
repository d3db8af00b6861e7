#ifndef DR_HANDLE_H
#define DR_HANDLE_H

#include "engine.h"

#define DR_CLIENT "deepresearch.client"
#define DR_POLLER "deepresearch.poller"

/* Pushes a new userdata of type tname owning an engine with the limits in
 * the options table at opts_idx (0: copy from the engine `from`). */
dr_engine *dr_handle_new(lua_State *L, const char *tname, int opts_idx, const dr_engine *from);
/* Returns the open engine at idx (of either type); raises on a closed one. */
dr_engine *dr_handle_check(lua_State *L, int idx, const char *tname);
void dr_handle_register(lua_State *L, const char *tname, const luaL_Reg *methods);

#endif
