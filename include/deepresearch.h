/* deepresearch: run deep-research tasks from Lua.
 * Public C interface for hosts that embed Lua and want to preload the core
 * module (e.g. luaL_requiref(L, "deepresearch.core", luaopen_deepresearch_core, 0)). */
#ifndef DEEPRESEARCH_H
#define DEEPRESEARCH_H

#include <lua.h>

#define DEEPRESEARCH_VERSION "0.1.0"
#define DEEPRESEARCH_VERSION_NUM 100

#if defined(__GNUC__)
#define DEEPRESEARCH_API __attribute__((visibility("default")))
#else
#define DEEPRESEARCH_API
#endif

/* Opens deepresearch.core and leaves its table on the stack. */
DEEPRESEARCH_API int luaopen_deepresearch_core(lua_State *L);

#endif
