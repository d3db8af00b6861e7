#ifndef DR_JSON_H
#define DR_JSON_H

#include "compat.h"

/* Keeps a private decoder (cjson.new(), or vim.json inside Neovim) in the registry. */
int dr_json_init(lua_State *L);
/* Replaces the JSON text at the top of the stack by its value and returns 1, or by
 * an error message and returns 0 (the text is not JSON), or by an error the caller
 * must re-raise and returns -1 (an interrupt, out of memory). Object keys holding JSON null are
 * removed; integral numbers become integers; empty arrays carry the array metatable. */
int dr_json_decode(lua_State *L);
/* core.set_array_metatable(mt): decoded empty JSON arrays get mt from then on (objects
 * stay plain tables), so that an encoder honouring it writes them back as []. */
int dr_json_set_array_metatable(lua_State *L);

#endif
