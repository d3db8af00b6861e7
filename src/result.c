/* Building results: the Lua table a finished transfer becomes, either a response (status,
 * raw header block, decoded body) or an error (code, message, whether it was sent). Runs
 * after libcurl returned; the decoder is the only Lua it calls. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "json.h"

/* Why a response was refused for its size, into msg; 0 when it was not. Our header
 * buffer fills before libcurl's own 300 KiB total; libcurl refuses a single header line
 * past CURL_MAX_HTTP_HEADER (100 KiB) as "out of memory" (7.88), recognised here as such
 * a failure after the status line and before the header block's end. */
static int dr_too_large(const dr_xfer *x, char *msg, size_t size) {
  if (x->body.overflow)
    snprintf(msg, size, "response larger than max_response_size (%lu bytes)",
             (unsigned long)x->body.limit);
  else if (x->head.overflow)
    snprintf(msg, size, "response headers larger than %lu bytes", (unsigned long)x->head.limit);
  else if (x->result == CURLE_OUT_OF_MEMORY && x->head.len > 0 && !x->head_done)
    snprintf(msg, size, "a response header line larger than libcurl accepts (%d bytes)",
             CURL_MAX_HTTP_HEADER);
  else if (x->result == CURLE_RECV_ERROR &&
           strncmp(x->errbuf, "Too large response headers", 26) == 0)
    snprintf(msg, size, "%s", x->errbuf);
  else
    return 0;
  return 1;
}

static const char *dr_error_code(CURLcode rc) {
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT:
    return "timeout";
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_WEIRD_SERVER_REPLY:
    return "invalid_response";
  default:
    return "network";
  }
}

/* The message of a transfer held back before sending (x->unsent). */
static const char *dr_unsent_message(const dr_xfer *x) {
  switch (x->unsent) {
  case DR_UNSENT_NO_PREREQ:
    return "not sent: send_by needs libcurl 7.80 or later";
  case DR_UNSENT_NO_DECODER:
    return "not sent: no JSON decoder to read its answer (install lua-cjson)";
  case DR_UNSENT_FILE:
    return "not sent: cannot open the download's file";
  default:
    return "not sent: its send_by deadline passed before it could leave";
  }
}

/* A download's file could not be opened, written or renamed: the local disk, not the network. */
static int dr_file_failed(const dr_xfer *x, char *msg, size_t size) {
  if (x->file_errno == 0)
    return 0;
  snprintf(msg, size, "%s: cannot %s %s: %s", x->unsent ? "not sent" : "download failed",
           x->unsent ? "open" : "write", x->part != NULL ? x->part : "the file",
           strerror(x->file_errno));
  return 1;
}

/* A link check's redirects: where they ended and how many there were (engines that follow). */
static void dr_push_final(lua_State *L, dr_xfer *x) {
  char *url = NULL;
  long n = 0;
  curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
  curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_COUNT, &n);
  if (url != NULL) {
    lua_pushstring(L, url);
    lua_setfield(L, -2, "final_url");
  }
  lua_pushinteger(L, (lua_Integer)n);
  lua_setfield(L, -2, "redirects");
  if (x->truncated) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "truncated");
  }
}

static void dr_push_error(lua_State *L, dr_xfer *x) {
  long sent = 0;
  char msg[CURL_ERROR_SIZE + 512];
  int big = dr_too_large(x, msg, sizeof msg);
  int io = !big && dr_file_failed(x, msg, sizeof msg);
  int unreadable = big || x->unsent == DR_UNSENT_NO_DECODER;
  curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &sent);
  lua_pushstring(L, io ? "io" : unreadable ? "invalid_response" : dr_error_code(x->result));
  lua_setfield(L, -2, "error");
  if (big || io)
    lua_pushstring(L, msg);
  else if (x->unsent)
    lua_pushstring(L, dr_unsent_message(x));
  else
    lua_pushstring(L, x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result));
  lua_setfield(L, -2, "message");
  lua_pushboolean(L, sent > 0 && !x->unsent);
  lua_setfield(L, -2, "sent");
  if (x->unsent) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "not_sent");
  }
  lua_pushinteger(L, (lua_Integer)x->result);
  lua_setfield(L, -2, "curl_code");
  if (x->follow) /* link checks only: the API path pays one test */
    dr_push_final(L, x);
}

/* Returns -1 with an error to re-raise on top of the stack, else 0. */
static int dr_push_response(lua_State *L, dr_xfer *x) {
  long status = 0;
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  if (x->follow) /* link checks only: the API path pays one test */
    dr_push_final(L, x);
  /* The raw header block: the Lua side parses it only when it needs a header. */
  lua_pushlstring(L, x->head.data ? x->head.data : "", x->head.len);
  lua_setfield(L, -2, "head");
  if (x->file != NULL && x->to_file == 1) {
    lua_pushstring(L, x->file);
    lua_setfield(L, -2, "file");
    lua_pushinteger(L, (lua_Integer)x->file_bytes);
    lua_setfield(L, -2, "bytes");
  }
  lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
  /* The Lua string is the only copy needed from here: free a big one before decoding. */
  dr_easy_body_done(x);
  if (!x->decode || dr_rawlen(L, -1) == 0) {
    lua_setfield(L, -2, "raw");
    return 0;
  }
  lua_pushvalue(L, -1);
  switch (dr_json_decode(L)) {
  case 1:
    lua_setfield(L, -3, "body");
    lua_pop(L, 1);
    return 0;
  case 0:
    lua_setfield(L, -3, "decode_error");
    lua_setfield(L, -2, "raw");
    return 0;
  default:
    return -1;
  }
}

void dr_engine_push_result(lua_State *L, dr_engine *e, dr_xfer *x) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, x->id);
  lua_setfield(L, -2, "id");
  /* A complete 2xx download takes its path now; anything else leaves no file (release). */
  if (x->result == CURLE_OK && x->fp != NULL && dr_easy_to_file(x) && dr_easy_file_commit(x) != 0)
    x->result = CURLE_WRITE_ERROR;
  if (x->truncated && x->result == CURLE_WRITE_ERROR)
    x->result = CURLE_OK; /* the answer, cut at max_response (truncate_body engines) */
  if (x->result != CURLE_OK) {
    dr_push_error(L, x);
  } else if (dr_push_response(L, x) != 0) {
    dr_engine_drop(e, x);
    lua_error(L); /* nothing of ours is held past this point */
  }
  dr_engine_drop(e, x);
}
