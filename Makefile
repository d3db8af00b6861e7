# deepresearch: build, test, install. `make help` lists the targets.
LUA_VERSION ?= 5.4
PREFIX      ?= /usr/local
DESTDIR     ?=
CC          ?= cc
CFLAGS      ?= -O2 -g
BUSTED      ?= busted

ifeq ($(LUA_VERSION),luajit)
  LUA_ABI    := 5.1
  LUA        := luajit
  LUA_INCDIR ?= /usr/include/luajit-2.1
else
  LUA_ABI    := $(LUA_VERSION)
  LUA        := lua$(LUA_VERSION)
  LUA_INCDIR ?= /usr/include/lua$(LUA_VERSION)
endif
LUA_LIBDIR  ?= /usr/lib
BUILD       := build/$(LUA_VERSION)
MODULE      := $(BUILD)/deepresearch/core.so

CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS   := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
# HMAC-SHA256 for webhooks (src/hmac.c): OpenSSL's libcrypto, which libcurl already loads.
CRYPTO_LIBS := $(shell pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto)
WARN        := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
ALL_CFLAGS  := -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(WARN) \
               -Iinclude -I$(LUA_INCDIR) $(CURL_CFLAGS) $(CFLAGS)
# liblua is never linked: the host (lua, luajit, nvim) provides its symbols.
LDFLAGS_SO  := -shared $(LDFLAGS)

SRC   := $(wildcard src/*.c)
HDRS  := $(wildcard src/*.h include/*.h)
BINS  := $(wildcard bin/*)
SPEC_ENV := LUA_PATH='lua/?.lua;lua/?/init.lua;sim/?.lua;sim/?/init.lua;spec/?.lua;;'
RESULTS := build/results

.PHONY: all deps test test-unit test-valgrind test-asan test-all test-nvim lint install clean \
        demo fuzz bench bench-scale help env rock rock-install

all: $(MODULE)

$(MODULE): $(SRC) $(HDRS) Makefile
	@mkdir -p $(dir $@)
	@# Linked beside and renamed into place: a process loading the module meanwhile (a spec
	@# run, another make) never sees a half-written file.
	$(CC) $(ALL_CFLAGS) -o $@.tmp $(SRC) $(LDFLAGS_SO) $(CURL_LIBS) $(CRYPTO_LIBS) -lm
	@mv -f $@.tmp $@

help:
	@echo "make [all|test|test-valgrind|test-asan|test-all|lint|demo|bench|fuzz|install|env|clean]"
	@echo "     LUA_VERSION=5.1|5.2|5.3|5.4|luajit PREFIX=$(PREFIX) DESTDIR= LUA_INCDIR= LUA_LIBDIR="

deps:
	@scripts/deps $(DEPS_FOR)

# The README's test command: specs on Lua $(LUA_VERSION), then memcheck over the C-driving specs.
test: DEPS_FOR = test
test: deps all
	@rm -rf $(RESULTS) && mkdir -p $(RESULTS) && date +%s >$(RESULTS)/started
	@if command -v npm >/dev/null 2>&1; then scripts/prism-install; fi
	@scripts/run-specs $(LUA) build/$(LUA_VERSION) lua$(LUA_VERSION) spec
	@$(MAKE) --no-print-directory test-valgrind
	@if command -v nvim >/dev/null 2>&1; then $(MAKE) --no-print-directory test-nvim; fi
	@scripts/summary $(RESULTS) $(RESULTS)/started

test-unit: all
	@mkdir -p $(RESULTS)
	@if command -v npm >/dev/null 2>&1; then scripts/prism-install; fi
	@scripts/run-specs $(LUA) build/$(LUA_VERSION) lua$(LUA_VERSION) spec
	@scripts/summary $(RESULTS)

VALGRIND_SPECS ?= spec/core_spec.lua spec/client_spec.lua spec/errors_spec.lua spec/wait_spec.lua spec/reliability_spec.lua spec/poller_spec.lua spec/many_spec.lua spec/transport_safety_spec.lua spec/interrupt_spec.lua \
  spec/poller_safety_spec.lua spec/core_decoder_spec.lua spec/valyu_assets_spec.lua spec/webhooks_spec.lua \
  spec/check_links_spec.lua spec/journal_spec.lua
test-valgrind: all
	@mkdir -p $(RESULTS)
	@DR_VALGRIND=1 scripts/run-specs "valgrind -q --error-exitcode=99 --leak-check=full \
	  --errors-for-leak-kinds=definite --show-leak-kinds=definite --suppressions=scripts/valgrind.supp \
	  $(LUA)" build/$(LUA_VERSION) valgrind $(wildcard $(VALGRIND_SPECS))

# The specs that drive the C core inside the spec runner itself (others test subprocesses).
ASAN_SPECS ?= spec/core_spec.lua spec/client_spec.lua spec/errors_spec.lua spec/wait_spec.lua \
  spec/reliability_spec.lua spec/poller_spec.lua spec/many_spec.lua spec/discovery_spec.lua spec/interrupt_spec.lua \
  spec/valyu_spec.lua spec/conformance_spec.lua spec/transport_safety_spec.lua spec/poller_safety_spec.lua \
  spec/core_decoder_spec.lua spec/valyu_assets_spec.lua spec/webhooks_spec.lua spec/check_links_spec.lua
ASAN_RT = $(shell clang -print-file-name=libclang_rt.asan-x86_64.so 2>/dev/null)
test-asan:
	@scripts/deps asan
	@mkdir -p build/asan/deepresearch $(RESULTS)
	clang $(ALL_CFLAGS) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	  -fno-sanitize-recover=undefined -shared-libasan -o build/asan/deepresearch/core.so \
	  $(SRC) $(LDFLAGS_SO) -fsanitize=address,undefined -shared-libasan $(CURL_LIBS) $(CRYPTO_LIBS)
	@LD_PRELOAD=$(ASAN_RT) ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=98 \
	  LSAN_OPTIONS=suppressions=scripts/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  scripts/run-specs lua5.4 build/asan asan $(wildcard $(ASAN_SPECS))

# Every Lua interpreter installed: build for it and run the specs, one line each.
test-all:
	@mkdir -p $(RESULTS)
	@for v in 5.1 5.2 5.3 5.4 luajit; do \
	  l=lua$$v; [ $$v = luajit ] && l=luajit; \
	  if command -v $$l >/dev/null 2>&1 && [ -d $$( [ $$v = luajit ] && echo /usr/include/luajit-2.1 || echo /usr/include/lua$$v ) ]; then \
	    $(MAKE) --no-print-directory LUA_VERSION=$$v all >/dev/null && \
	    DR_QUIET=1 scripts/run-specs $$l build/$$v $$l spec; \
	  else echo "$$l: not installed, skipped"; fi; \
	done

test-nvim:
	@$(MAKE) --no-print-directory LUA_VERSION=luajit all
	@scripts/run-nvim-test

lint: DEPS_FOR = lint
lint: deps
	luacheck lua spec sim bin bench plugin $(BINS)
	clang-format --dry-run --Werror src/*.c src/*.h include/*.h fuzz/*.c fuzz/*.h bench/*.c spec/c/*.c
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --suppress=missingIncludeSystem --inline-suppr -Iinclude -Isrc src

LUA_SHARE = $(DESTDIR)$(PREFIX)/share/lua/$(LUA_ABI)
install: all
	install -d $(DESTDIR)$(PREFIX)/lib/lua/$(LUA_ABI)/deepresearch
	install -m 755 $(MODULE) $(DESTDIR)$(PREFIX)/lib/lua/$(LUA_ABI)/deepresearch/core.so
	@for f in $$(cd lua && find deepresearch -name '*.lua'); do \
	  install -d $(LUA_SHARE)/$$(dirname $$f) && install -m 644 lua/$$f $(LUA_SHARE)/$$f; done
	@# The commands run on this build's Lua (shebang) and find their modules from where they
	@# are installed, so no path is written into them (DESTDIR cannot leak).
	@install -d $(DESTDIR)$(PREFIX)/bin && for b in $(BINS); do \
	  sed '1s|^#!.*|#!/usr/bin/env $(LUA)|' $$b >$(DESTDIR)$(PREFIX)/bin/$${b##*/} && \
	  chmod 755 $(DESTDIR)$(PREFIX)/bin/$${b##*/}; done
	install -d $(DESTDIR)$(PREFIX)/include
	install -m 644 include/deepresearch.h $(DESTDIR)$(PREFIX)/include/
	@scripts/lua-env hint $(LUA) $(PREFIX)/share/lua/$(LUA_ABI) $(PREFIX)/lib/lua/$(LUA_ABI)

# eval "$$(make -s env)": this tree's modules for your own scripts on Lua $(LUA_VERSION).
env:
	@scripts/lua-env env $(CURDIR)/lua $(CURDIR)/$(BUILD)
	@[ -f $(MODULE) ] || echo "make env: $(MODULE) is not built yet; run make LUA_VERSION=$(LUA_VERSION)" >&2

# LuaRocks (rockspec build type make): builds out of tree, in build/<version> as `make` does,
# for the interpreter LuaRocks names (ROCK_LUA), and installs into the rock's own directories.
ROCK_LUA_VERSION = $(if $(findstring luajit,$(ROCK_LUA)),luajit,$(shell $(ROCK_LUA) -e 'io.write(_VERSION:sub(5))'))
rock:
	@$(MAKE) --no-print-directory LUA_VERSION=$(ROCK_LUA_VERSION) all
rock-install:
	install -d $(LIBDIR)/deepresearch $(BINDIR)
	install -m 755 build/$(ROCK_LUA_VERSION)/deepresearch/core.so $(LIBDIR)/deepresearch/core.so
	@for f in $$(cd lua && find deepresearch -name '*.lua'); do \
	  install -d $(LUADIR)/$$(dirname $$f) && install -m 644 lua/$$f $(LUADIR)/$$f; done
	@for b in $(BINS); do install -m 755 $$b $(BINDIR)/; done

# make demo PROVIDER=gemini (or openai, perplexity, valyu): the same run on that provider's
# simulated API; Extruct unless told.
PROVIDER ?= extruct
demo: DEPS_FOR = demo
demo: deps all
	@PROVIDER="$(PROVIDER)" scripts/demo

FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps fuzz
	@scripts/fuzz $(FUZZ_SECONDS)

# The scale benchmark (issue 20): 100 to 10,000 tasks in one process; writes the Scale
# section of bench/RESULTS.md. Not part of make test.
bench-scale: all
	@scripts/deps bench
	@lua5.4 bench/scale.lua

bench: all
	@scripts/deps bench
	@$(MAKE) --no-print-directory LUA_VERSION=luajit all
	@bench/run

clean:
	rm -rf build
