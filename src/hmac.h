#ifndef DR_HMAC_H
#define DR_HMAC_H

#include "compat.h"

/* Adds hmac_sha256 and equal_constant_time to the module table on top of the stack. */
void dr_hmac_open(lua_State *L);

#endif
