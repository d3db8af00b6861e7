#ifndef DR_POLLER_H
#define DR_POLLER_H

#include "compat.h"

/* Registers the poller type; sets new_poller and poller_metatable on the table at the top. */
void dr_poller_open(lua_State *L);

#endif
