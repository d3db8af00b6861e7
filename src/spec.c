/* Reading what Lua describes: a client's options (the limits of its engine) and one request's
 * table. Every check raises naming the field; nothing here touches libcurl. */
#include "spec.h"

#include <stdlib.h>
#include <string.h>

static char *dr_strdup(const char *s) {
  char *d;
  if (s == NULL)
    return NULL;
  d = malloc(strlen(s) + 1);
  if (d != NULL)
    strcpy(d, s);
  return d;
}

/* Upper bounds of the number options (the Lua front refuses larger ones, see README
 * "Configuration"): durations a day, a response 4 GiB. */
#define DR_MS_MAX 86400000L
#define DR_SECONDS_MAX 86400L
#define DR_RATE_MAX 2147483647L
#define DR_CONNECTIONS_MAX 1024L
#define DR_REDIRECTS_MAX 20L
#define DR_RESPONSE_MAX (sizeof(size_t) > 4 ? 4294967296.0 : 2147483647.0)

/* The number field k of the table at idx, times scale, as a whole number in [lo, hi].
 * Converting a double that a long cannot hold (inf, 1e19) is undefined behaviour in C, so
 * larger values become hi before any cast; and a positive value below 1 after scaling
 * becomes 1, never 0, which libcurl reads as "no limit" (a 0.4 ms timeout is 1 ms).
 * NaN, negatives and non-numbers raise, naming the field. */
static double dr_num_field(lua_State *L, int idx, const char *what, const char *k, double dflt,
                           double scale, double lo, double hi) {
  double v = dflt;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "%s '%s' must be a number", what, k);
    v = (double)lua_tonumber(L, -1) * scale;
    if (!(v >= 0)) /* NaN too */
      luaL_error(L, "%s '%s' must be a non-negative number", what, k);
    v = v >= hi ? hi : v > 0 && v < 1 ? 1 : (double)(long)v;
    if (v < lo)
      v = lo;
  }
  lua_pop(L, 1);
  return v;
}

static long dr_ms_field(lua_State *L, int idx, const char *what, const char *k, long dflt) {
  return (long)dr_num_field(L, idx, what, k, (double)dflt, 1000.0, 0, (double)DR_MS_MAX);
}

static int dr_truthy_field(lua_State *L, int idx, const char *k) {
  int v;
  lua_getfield(L, idx, k);
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Never raises: dr_limits_read type-checks every string field first. */
static char *dr_str_field(lua_State *L, int idx, const char *k) {
  char *v;
  lua_getfield(L, idx, k);
  v = dr_strdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  return v;
}

/* A string option with no control character (libcurl sends user_agent and proxy
 * credentials as they are: a CR/LF would smuggle a header). */
static void dr_check_str_field(lua_State *L, int idx, const char *k) {
  size_t len = 0;
  const char *s;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "option '%s' must be a string", k);
  s = lua_tolstring(L, -1, &len);
  if (s != NULL && !dr_header_ok(s, len))
    luaL_error(L, "option '%s' must not contain control characters", k);
  lua_pop(L, 1);
}

void dr_limits_read(lua_State *L, int idx, dr_limits *lim) {
  idx = dr_absindex(L, idx);
  lim->connect_timeout_ms = dr_ms_field(L, idx, "option", "connect_timeout", 5000);
  lim->timeout_ms = dr_ms_field(L, idx, "option", "timeout", 60000);
  lim->low_speed_limit =
      (long)dr_num_field(L, idx, "option", "low_speed_limit", 1, 1, 0, (double)DR_RATE_MAX);
  lim->low_speed_time =
      (long)dr_num_field(L, idx, "option", "low_speed_time", 30, 1, 0, (double)DR_SECONDS_MAX);
  lim->max_response =
      (size_t)dr_num_field(L, idx, "option", "max_response_size", 64 << 20, 1, 0, DR_RESPONSE_MAX);
  lim->max_connections =
      (long)dr_num_field(L, idx, "option", "max_connections", 8, 1, 1, (double)DR_CONNECTIONS_MAX);
  lim->max_redirects =
      (long)dr_num_field(L, idx, "option", "follow_redirects", 0, 1, 0, (double)DR_REDIRECTS_MAX);
  lim->truncate_body = dr_truthy_field(L, idx, "truncate_body");
  dr_check_str_field(L, idx, "ca_file");
  dr_check_str_field(L, idx, "proxy");
  dr_check_str_field(L, idx, "user_agent");
  lim->ca_file = dr_str_field(L, idx, "ca_file");
  lim->proxy = dr_str_field(L, idx, "proxy");
  lim->user_agent = dr_str_field(L, idx, "user_agent");
}

int dr_limits_copy(dr_limits *dst, const dr_limits *src) {
  *dst = *src;
  dst->ca_file = dr_strdup(src->ca_file);
  dst->proxy = dr_strdup(src->proxy);
  dst->user_agent = dr_strdup(src->user_agent);
  return 0;
}

void dr_limits_free(dr_limits *lim) {
  free(lim->ca_file);
  free(lim->proxy);
  free(lim->user_agent);
  lim->ca_file = lim->proxy = lim->user_agent = NULL;
}

/* Header lines and URLs must not smuggle a second header or request line, nor
 * hide a NUL that C would silently cut the rest of the string at. */
int dr_header_ok(const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++)
    if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
      return 0;
  return 1;
}

const char *dr_spec_header(lua_State *L, int i, size_t *len) {
  const char *line;
  lua_rawgeti(L, -1, i);
  line = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, len) : NULL;
  lua_pop(L, 1); /* the table keeps the string alive */
  return line;
}

static const char *dr_spec_string(lua_State *L, int idx, const char *k, size_t *len) {
  const char *s;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "request field '%s' must be a string", k);
  s = lua_tolstring(L, -1, len);
  lua_pop(L, 1); /* the spec table keeps the string alive */
  return s;
}

/* send_by: seconds on dr_now_seconds()'s clock; absent means no deadline. */
static int dr_spec_deadline(lua_State *L, int idx, double *at) {
  int has;
  lua_getfield(L, idx, "send_by");
  has = !lua_isnil(L, -1);
  if (has && lua_type(L, -1) != LUA_TNUMBER)
    luaL_error(L, "request field 'send_by' must be a number");
  *at = has ? (double)lua_tonumber(L, -1) : 0;
  lua_pop(L, 1);
  if (has && *at != *at)
    luaL_error(L, "request field 'send_by' must not be NaN");
  return has;
}

static int dr_spec_flag(lua_State *L, int idx, const char *k, int dflt) {
  int v;
  lua_getfield(L, idx, k);
  v = lua_isnil(L, -1) ? dflt : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

void dr_spec_read(lua_State *L, int idx, long timeout_ms, dr_spec *s) {
  size_t file_len = 0;
  s->url_len = s->body_len = 0;
  s->method = dr_spec_string(L, idx, "method", NULL);
  s->url = dr_spec_string(L, idx, "url", &s->url_len);
  s->body = dr_spec_string(L, idx, "body", &s->body_len);
  s->file = dr_spec_string(L, idx, "file", &file_len);
  if (s->file != NULL && (file_len == 0 || strlen(s->file) != file_len))
    luaL_error(L, "request field 'file' must be a non-empty path without NUL");
  if (s->url == NULL || !dr_header_ok(s->url, s->url_len))
    luaL_error(L, "request needs a url without control characters");
  s->timeout_ms = dr_ms_field(L, idx, "request field", "timeout", timeout_ms);
  s->has_send_by = dr_spec_deadline(L, idx, &s->send_by);
  s->fresh = dr_spec_flag(L, idx, "fresh", 0);
  s->decode = dr_spec_flag(L, idx, "decode", 1);
}
