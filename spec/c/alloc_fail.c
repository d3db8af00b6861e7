/* Runs a script that drives the C core in a Lua state whose allocator fails
 * after N successful allocations, for every N up to the script's total. Each
 * run must end with a Lua error or success, never a crash; under valgrind or
 * ASan, with nothing leaked. Usage: alloc_fail URL */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "deepresearch.h"

static long budget; /* allocations left before failing; < 0: unlimited */
static long used;

static void *failing_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (budget >= 0 && nsize > osize) {
    if (budget == 0)
      return NULL;
    budget--;
  }
  used++;
  return realloc(ptr, nsize);
}

static const char *script =
    "local url = ...\n"
    "local core = require 'deepresearch.core'\n"
    "local cj = require('cjson').new()\n"
    "core.set_decoder(cj.decode, cj.null)\n"
    "local v = core.decode('{\"a\":[1,2,{\"b\":null,\"c\":\"x\"}],\"n\":25}')\n"
    "local c = core.new_client{ timeout = 2 }\n"
    "local r = c:request{ method = 'GET', url = url .. '/v1/user',\n"
    "  headers = { 'Authorization: Bearer test-token', 'Accept: application/json' } }\n"
    "local f = 'build/alloc_fail.download'\n"
    "local d = c:request{ method = 'GET', url = url .. '/v1/user', file = f,\n"
    "  headers = { 'Authorization: Bearer test-token' } }\n"
    "assert(d.status ~= 200 or d.file == f); os.remove(f)\n"
    "assert(#core.hmac_sha256('key', 'data') == 32)\n"
    "local p = core.new_poller(c, 2)\n"
    "for i = 1, 3 do p:add{ method = 'GET', url = url .. '/v1/user',\n"
    "  headers = { 'Authorization: Bearer test-token' } } end\n"
    "local got = 0\n"
    "for _ = 1, 200 do got = got + #p:step(20); if got == 3 then break end end\n"
    "p:add{ method = 'POST', url = url .. '/v1/deep_research_tasks', body = '{}' }\n"
    "p:close(); c:close()\n"
    "return r.status\n";

static int run(const char *url, long limit) {
  int rc;
  lua_State *L;
  budget = -1;
  L = lua_newstate(failing_alloc, NULL);
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_deepresearch_core);
  lua_setfield(L, -2, "deepresearch.core");
  lua_pop(L, 2);
  if (luaL_loadstring(L, script) != 0)
    abort();
  lua_pushstring(L, url);
  used = 0;
  budget = limit;
  rc = lua_pcall(L, 1, 1, 0);
  budget = -1;
  lua_close(L);
  return rc;
}

int main(int argc, char **argv) {
  long n, total, failures = 0, step;
  const char *url = argc > 1 ? argv[1] : "http://127.0.0.1:1";
  if (run(url, -1) != 0) {
    fprintf(stderr, "alloc_fail: the script fails even without allocation failures\n");
    return 2;
  }
  total = used;
  step = total > 400 ? total / 400 : 1; /* bounded: about 400 runs */
  for (n = 0; n < total; n += step)
    if (run(url, n) != 0)
      failures++;
  printf("alloc_fail: %ld allocations, %ld runs failed cleanly\n", total, failures);
  return 0;
}
