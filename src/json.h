#ifndef DR_JSON_H
#define DR_JSON_H

#include "compat.h"

/* core.set_decoder(decode [, null]): the decoder and the value it gives JSON null, kept in
 * the registry; returns the previous two. The core loads no decoder of its own. */
int dr_json_set_decoder(lua_State *L);
/* Whether a decoder was set. */
int dr_json_has_decoder(lua_State *L);
/* Replaces the JSON text at the top of the stack by its value and returns 1, or by
 * an error message and returns 0 (the text is not JSON), or by an error the caller
 * must re-raise and returns -1 (an interrupt, out of memory). Object keys holding the decoder's
 * null are removed; integral numbers become integers; empty arrays carry the array metatable. */
int dr_json_decode(lua_State *L);
/* core.set_array_metatable(mt): decoded empty JSON arrays get mt from then on (objects
 * stay plain tables), so that an encoder honouring it writes them back as []. */
int dr_json_set_array_metatable(lua_State *L);

#endif
