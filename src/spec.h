#ifndef DR_SPEC_H
#define DR_SPEC_H

#include <stddef.h>

#include "compat.h"

/* Limits shared by every transfer of one engine (client options). */
typedef struct dr_limits {
  long connect_timeout_ms;
  long timeout_ms;
  long low_speed_limit; /* bytes per second ... */
  long low_speed_time;  /* ... sustained this many seconds aborts */
  size_t max_response;
  long max_connections;
  char *ca_file;
  char *proxy;
  char *user_agent;
  /* Link checks only (report/links.lua): their engine follows up to max_redirects redirects and
   * reports the final URL; a body past max_response ends the transfer as a truncated answer.
   * 0 for the API's engines, which never follow a redirect. */
  long max_redirects;
  int truncate_body;
} dr_limits;

/* One request as the Lua table describes it. The strings point into that table: valid while
 * it is on the stack. Header lines stay in it (see dr_spec_header). */
typedef struct dr_spec {
  const char *method; /* NULL: GET */
  const char *url;
  size_t url_len;
  const char *body; /* NULL: none */
  size_t body_len;
  const char *file; /* NULL: the body comes back to Lua; else a 2xx body goes to this path */
  long timeout_ms;
  int fresh;       /* a new connection, never a reused one */
  int decode;      /* the body is JSON to decode */
  int has_send_by; /* the request must not leave after send_by ... */
  double send_by;  /* ... seconds on dr_now_seconds()'s clock */
} dr_spec;

/* Reads limits from the options table at idx (absent keys keep defaults). Raises on bad ones. */
void dr_limits_read(lua_State *L, int idx, dr_limits *lim);
int dr_limits_copy(dr_limits *dst, const dr_limits *src);
void dr_limits_free(dr_limits *lim);

/* Reads the request table at idx into s (timeout_ms: its default). Raises on a bad field. */
void dr_spec_read(lua_State *L, int idx, long timeout_ms, dr_spec *s);
/* The header line at index i of the table on top, or NULL when it is not a string. */
const char *dr_spec_header(lua_State *L, int i, size_t *len);
/* Whether a header line or URL is free of control characters (no smuggled line, no NUL). */
int dr_header_ok(const char *s, size_t len);

#endif
