/* libFuzzer harness: the request builder. Fuzz bytes become a task id, a query
 * value and a header line; the Lua side must escape or refuse them so that
 * nothing reaches another endpoint and no header is smuggled. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "harness.h"

static lua_State *L;

static const char *script =
    "local http = require 'deepresearch.runtime.http'\n"
    "local V = require 'deepresearch.base.validate'\n"
    "local core = require 'deepresearch.core'\n"
    "local c = core.new_client{}\n"
    "return function(s)\n"
    "  local seg = http.escape(s)\n"
    "  assert(not seg:find('[/?#%.%c ]'), 'unescaped byte in path segment')\n"
    "  local st = { base_url = 'http://127.0.0.1:9', provider = {} }\n"
    "  local url = http.url(st, '/v1/deep_research_tasks/' .. seg, { limit = s, offset = 1 })\n"
    "  assert(not url:find('%c'), 'control character in URL')\n"
    "  local ok, id = pcall(V.id, 'get', s)\n"
    "  if ok and id then assert(not id:find('%c')) end\n"
    "  -- the C side refuses any header line with CR/LF instead of sending it\n"
    "  local sent, err = pcall(c.request, c, { url = url, headers = { 'X-Fuzz: ' .. s }, timeout = "
    "0.001,\n"
    "    method = 'GET' })\n"
    "  if s:find('[\\r\\n]') then assert(not sent, 'header with CR/LF accepted') end\n"
    "end\n";

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (L == NULL) {
    L = dr_fuzz_state();
    if (luaL_loadstring(L, script) != 0 || lua_pcall(L, 0, 1, 0) != 0)
      abort();
    lua_setglobal(L, "check");
  }
  lua_getglobal(L, "check");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != 0) {
    const char *msg = lua_tostring(L, -1);
    if (msg && strstr(msg, "bad argument") == NULL)
      abort();
    lua_pop(L, 1);
  }
  return 0;
}
