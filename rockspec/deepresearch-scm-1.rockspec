-- Offline install from a checkout: luarocks --lua-version=5.4 make rockspec/deepresearch-scm-1.rockspec
-- The build is the Makefile's (targets rock and rock-install): the C module is built out of
-- tree in build/<lua version>, so the checkout is left as it was, and every Lua module under
-- lua/ is installed without a list here to keep up to date.
-- lua-cjson comes from Debian (lua-cjson package) and is found at run time, so it is not a
-- rock dependency here: LuaRocks' online repository is not needed to build.
rockspec_format = "3.0"
package = "deepresearch"
version = "scm-1"
source = {
  url = "git+file:///dev/null",
}
description = {
  summary = "Run deep research tasks (Extruct, Valyu) from Lua: C core on libcurl, cited reports",
  detailed = [[
deepresearch creates long-running research tasks on hosted deep-research APIs, waits on them
(one or hundreds at once, blocking or from an event loop), and renders their cited reports.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",
}
-- libcurl (Debian: libcurl4-openssl-dev) and libcrypto (libssl-dev) are found on the
-- compiler's default paths, which include Debian's multiarch directories; LuaRocks' own
-- header lookup does not. ROCK_LUA is the interpreter LuaRocks builds for (its version picks
-- the build directory and headers); LUADIR, LIBDIR and BINDIR are the rock's directories.
build = {
  type = "make",
  build_target = "rock",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    ROCK_LUA = "$(LUA)",
  },
  install_target = "rock-install",
  install_variables = {
    ROCK_LUA = "$(LUA)",
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
    BINDIR = "$(BINDIR)",
  },
}
