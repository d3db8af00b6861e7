#ifndef DR_FUZZ_HARNESS_H
#define DR_FUZZ_HARNESS_H

#include <lua.h>

/* A Lua state with the module linked in (instrumented, not loaded from a .so)
 * preloaded as deepresearch.core and given a cjson decoder, and lua/ on package.path. */
lua_State *dr_fuzz_state(void);

#endif
