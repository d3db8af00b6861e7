/* The floor: the least any client built on libcurl and lua-cjson can cost per call.
 * One reused easy handle and one reused body buffer; each body is decoded by
 * lua-cjson's decode, called through the Lua C API in one lua_State.
 *
 *   floor [MODE] BASE_URL SMALL_ID BIG_ID N_SMALL N_BIG N_LIST WARMUP BATCHES
 *     prints "<payload> <n> <wall s> <cpu s> <check>" per batch for small, big and list
 *     (small and big in BATCHES batches, the list page one GET per batch)
 *   floor --rss|--rss-lean BASE_URL
 *     GETs the ~5 MB list page (limit=75), holds the decoded table and prints
 *     "rss <body bytes> <VmRSS before kB> <VmHWM kB> <VmRSS after kB> <check>";
 *     --rss-lean frees the body buffer once Lua holds its copy, before decoding: the
 *     least peak any client decoding with cjson can have
 *
 * MODE adds what the module is required to do to the floor's handle, to show how much of
 * the module's cost that is (the rest is the module's own):
 *   --module-headers USER_AGENT  the request headers the module sends, set the way the
 *     module sets them: Authorization, Accept, User-Agent and Accept-Encoding lines, with
 *     CURLOPT_ACCEPT_ENCODING "" so that libcurl would decode a gzip answer;
 *   --module-options USER_AGENT  those headers and every other option the module sets on
 *     its handles: the response header block captured through a header callback, the
 *     connect and total timeouts, the stall check, TCP keep-alive, HTTP(S) only;
 *   --module-conversion USER_AGENT  those options, and each body decoded by the module's
 *     own conversion (src/json.c, linked in): cjson, then nulls out of objects and, on
 *     Lua 5.3+, integral numbers made integers. What any module keeping the contract's
 *     values must do, with none of the module's own code around it.
 * FLOOR_PRELUDE, if set, is Lua code run in the floor's state before the GETs: the harness
 * loads the module there to give the floor the module's live heap, which Lua's collector
 * marks on every cycle.
 *
 * Built against liblua5.4 (floor-5.4) and LuaJIT (floor-luajit) by bench/run. */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/json.h"

#if LUA_VERSION_NUM >= 502
#define floor_rawlen lua_rawlen
#else
#define floor_rawlen lua_objlen
#endif

typedef struct {
  char *data;
  size_t len, cap;
} body_buf;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  body_buf *b = ud;
  size_t add = size * n;
  if (b->len + add > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *d;
    while (cap < b->len + add)
      cap *= 2;
    d = realloc(b->data, cap);
    if (d == NULL)
      return 0;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, add);
  b->len += add;
  return add;
}

static double now(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *detail) {
  fprintf(stderr, "floor: %s: %s\n", what, detail);
  exit(1);
}

/* GETs url into b; exits on anything but HTTP 200. */
static void fetch(CURL *c, body_buf *b, const char *url) {
  long status = 0;
  CURLcode rc;
  b->len = 0;
  curl_easy_setopt(c, CURLOPT_URL, url);
  rc = curl_easy_perform(c);
  if (rc != CURLE_OK)
    die(url, curl_easy_strerror(rc));
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200)
    die(url, "status is not 200");
}

static int conversion; /* --module-conversion */

/* Decodes b with the decode function at stack index 1, or with the module's conversion,
 * leaving the value on top. */
static void decode(lua_State *L, const body_buf *b) {
  if (conversion) {
    lua_pushlstring(L, b->data, b->len);
    if (dr_json_decode(L) != 1)
      die("decode", lua_tostring(L, -1));
    return;
  }
  lua_pushvalue(L, 1);
  lua_pushlstring(L, b->data, b->len);
  if (lua_pcall(L, 1, 1, 0) != 0)
    die("decode", lua_tostring(L, -1));
}

/* What every contender reports, to prove it decoded: small -> agents, big -> number of
 * report sources, list -> number of tasks. Pops the decoded value. */
static long check(lua_State *L, int kind) {
  long v = 0;
  if (kind == 0) {
    lua_getfield(L, -1, "agents");
    v = (long)lua_tonumber(L, -1);
    lua_pop(L, 1);
  } else if (kind == 1) {
    lua_getfield(L, -1, "report");
    lua_getfield(L, -1, "sources");
    v = (long)floor_rawlen(L, -1);
    lua_pop(L, 2);
  } else {
    v = (long)floor_rawlen(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/* Times n GETs of url in batches; prints one line per batch, so that a burst of other work on
 * the machine spoils one batch and not the whole figure. */
static void run(lua_State *L, CURL *c, body_buf *b, const char *name, int kind, const char *url,
                long n, long warm, long batches) {
  long i, k;
  for (i = 0; i < warm; i++) {
    fetch(c, b, url);
    decode(L, b);
    check(L, kind);
  }
  for (k = 0; k < batches; k++) {
    long todo = n / batches + (k < n % batches ? 1 : 0), sum = 0;
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (i = 0; i < todo; i++) {
      fetch(c, b, url);
      decode(L, b);
      sum += check(L, kind);
    }
    printf("%s %ld %.9f %.9f %ld\n", name, todo, now(CLOCK_MONOTONIC) - w0,
           now(CLOCK_PROCESS_CPUTIME_ID) - c0, todo > 0 ? sum / todo : 0);
  }
  fflush(stdout);
}

static long status_kb(const char *field) {
  char line[256];
  long v = -1;
  size_t flen = strlen(field);
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, field, flen) == 0 && line[flen] == ':')
      v = strtol(line + flen + 1, NULL, 10);
  fclose(f);
  return v;
}

enum { PLAIN, HEADERS, OPTIONS, CONVERSION };

/* The module's own Accept-Encoding line: what libcurl would send for "" (src/easy.c). */
static const char *accept_encoding(void) {
  long f = curl_version_info(CURLVERSION_NOW)->features;
  int br = (f & CURL_VERSION_BROTLI) != 0, zstd = 0;
#ifdef CURL_VERSION_ZSTD
  zstd = (f & CURL_VERSION_ZSTD) != 0;
#endif
  if (!(f & CURL_VERSION_LIBZ))
    die("accept_encoding", "libcurl without zlib: write the module's line here");
  return br && zstd ? "Accept-Encoding: deflate, gzip, br, zstd"
         : br       ? "Accept-Encoding: deflate, gzip, br"
         : zstd     ? "Accept-Encoding: deflate, gzip, zstd"
                    : "Accept-Encoding: deflate, gzip";
}

/* The module keeps each response's header block (its Lua side reads it on demand). */
static body_buf head;
static size_t on_head(char *p, size_t size, size_t n, void *ud) {
  if (size * n >= 5 && memcmp(p, "HTTP/", 5) == 0)
    head.len = 0;
  return on_body(p, size, n, ud);
}

static CURL *easy(body_buf *b, struct curl_slist **headers, int mode, const char *ua) {
  CURL *c = curl_easy_init();
  char line[512];
  if (c == NULL)
    die("curl_easy_init", "failed");
  *headers = curl_slist_append(NULL, "Authorization: Bearer t");
  *headers = curl_slist_append(*headers, "Accept: application/json");
  if (mode != PLAIN) {
    snprintf(line, sizeof line, "User-Agent: %s", ua);
    *headers = curl_slist_append(*headers, line);
    *headers = curl_slist_append(*headers, accept_encoding());
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, *headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (mode >= OPTIONS) {
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_head);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &head);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
  }
  return c;
}

static lua_State *lua_with_cjson(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL)
    die("luaL_newstate", "out of memory");
  luaL_openlibs(L);
  if (luaL_dostring(L, "return require('cjson').decode") != 0)
    die("require cjson", lua_tostring(L, -1));
  if (getenv("FLOOR_PRELUDE") != NULL && luaL_dostring(L, getenv("FLOOR_PRELUDE")) != 0)
    die("FLOOR_PRELUDE", lua_tostring(L, -1));
  lua_settop(L, 1);
  /* The module's conversion decodes with what its Lua front hands it: a private cjson. */
  if (conversion) {
    lua_pushcfunction(L, dr_json_set_decoder);
    if (luaL_dostring(L, "local d = require('cjson').new() d.decode_invalid_numbers(false) "
                         "return d.decode, d.null") != 0)
      die("cjson.new", lua_tostring(L, -1));
    lua_call(L, 2, 0);
  }
  return L;
}

int main(int argc, char **argv) {
  char url[3][512];
  body_buf b = {NULL, 0, 0};
  struct curl_slist *headers = NULL;
  lua_State *L;
  CURL *c;
  int lean = argc == 3 && strcmp(argv[1], "--rss-lean") == 0, mode = PLAIN;
  int rss = lean || (argc == 3 && strcmp(argv[1], "--rss") == 0);
  const char *ua = NULL;
  if (argc == 11 && strcmp(argv[1], "--module-headers") == 0)
    mode = HEADERS;
  else if (argc == 11 && strcmp(argv[1], "--module-options") == 0)
    mode = OPTIONS;
  else if (argc == 11 && strcmp(argv[1], "--module-conversion") == 0)
    mode = CONVERSION;
  conversion = mode == CONVERSION;
  if (mode != PLAIN) {
    ua = argv[2];
    argv += 2;
    argc -= 2;
  }
  if (!rss && argc != 9) {
    fprintf(stderr,
            "usage: floor [--module-headers|--module-options|--module-conversion USER_AGENT]\n"
            "             BASE_URL SMALL_ID BIG_ID N_SMALL N_BIG N_LIST WARMUP BATCHES\n"
            "       floor --rss|--rss-lean BASE_URL\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  L = lua_with_cjson();
  c = easy(&b, &headers, mode, ua);
  if (rss) {
    long before = status_kb("VmRSS"), kind = 2;
    snprintf(url[2], sizeof url[2], "%s/v1/deep_research_tasks?limit=75", argv[2]);
    fetch(c, &b, url[2]);
    if (lean) {
      size_t len = b.len;
      lua_pushvalue(L, 1);
      lua_pushlstring(L, b.data, b.len);
      free(b.data);
      b.data = NULL;
      b.len = b.cap = 0;
      if (lua_pcall(L, 1, 1, 0) != 0)
        die("decode", lua_tostring(L, -1));
      b.len = len;
    } else {
      decode(L, &b);
    }
    /* The decoded page stays on the stack while the peak is read. */
    printf("rss %zu %ld %ld %ld", b.len, before, status_kb("VmHWM"), status_kb("VmRSS"));
    printf(" %ld\n", check(L, (int)kind));
  } else {
    long warm = atol(argv[7]), batches = atol(argv[8]), nlist = atol(argv[6]);
    snprintf(url[0], sizeof url[0], "%s/v1/deep_research_tasks/%s", argv[1], argv[2]);
    snprintf(url[1], sizeof url[1], "%s/v1/deep_research_tasks/%s", argv[1], argv[3]);
    snprintf(url[2], sizeof url[2], "%s/v1/deep_research_tasks?limit=50", argv[1]);
    if (batches < 1)
      batches = 1;
    run(L, c, &b, "small", 0, url[0], atol(argv[4]), warm, batches);
    run(L, c, &b, "big", 1, url[1], atol(argv[5]), warm, batches);
    run(L, c, &b, "list", 2, url[2], nlist, warm > 3 ? 3 : warm, nlist > 0 ? nlist : 1);
  }
  curl_easy_cleanup(c);
  curl_slist_free_all(headers);
  free(b.data);
  free(head.data);
  lua_close(L);
  curl_global_cleanup();
  return 0;
}
