#ifndef DR_CLIENT_H
#define DR_CLIENT_H

#include "compat.h"

/* Registers the client type; sets new_client and client_metatable on the table at the top. */
void dr_client_open(lua_State *L);

#endif
