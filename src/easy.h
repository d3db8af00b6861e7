#ifndef DR_EASY_H
#define DR_EASY_H

#include <stdio.h>

#include <curl/curl.h>

#include "buffer.h"
#include "spec.h"

/* CURLOPT_PREREQFUNCTION (7.80) runs right before a request is written. Without it a
 * request with send_by is never sent at all: failing closed is the only safe answer. */
#if LIBCURL_VERSION_NUM >= 0x075000 && !defined(DR_NO_PREREQ)
#define DR_HAVE_PREREQ 1
#endif

enum { DR_DEAD, DR_RUNNING, DR_DONE };

/* Why a transfer was never sent (its result says so): 0 when it was not held back. */
enum { DR_UNSENT_LATE = 1, DR_UNSENT_NO_PREREQ, DR_UNSENT_NO_DECODER, DR_UNSENT_FILE };

/* A transfer and its easy handle. Finished ones go back to the engine's pool with the
 * handle's options as they were last set, so that the next request sets only what differs. */
typedef struct dr_xfer {
  struct dr_xfer *next;
  lua_Integer id;
  CURL *easy;
  struct curl_slist *headers; /* the list the handle was last given; kept while it matches */
  int headers_n;              /* how many of its lines came from the spec */
  int headers_body;           /* it ends with the "Expect:" of a request with a body */
  char *url;                  /* the URL the handle was last given */
  dr_buf body;
  dr_buf head;
  int state;
  int added; /* to the multi handle */
  int decode;
  int get;         /* the handle is set for a plain GET */
  int nobody;      /* CURLOPT_NOBODY as last set (a HEAD) */
  int follow;      /* its engine follows redirects (link checks): results name the final URL */
  int truncate;    /* its engine keeps a body past max_response as a truncated answer ... */
  int truncated;   /* ... and this answer's was cut there */
  int fresh;       /* CURLOPT_FRESH_CONNECT as last set */
  long timeout_ms; /* CURLOPT_TIMEOUT_MS as last set */
  int head_done;   /* the header block's blank line came */
  int has_send_by; /* the request must not leave after send_by ... */
  double send_by;  /* ... seconds on dr_now_seconds()'s clock */
  int unsent;      /* DR_UNSENT_*: never sent, and why */
  /* A download (spec.file): a 2xx body goes to part (file ".part") as it arrives, renamed to
   * file once complete; any other outcome removes part. Other answers stay in body. */
  char *file;
  char *part;
  FILE *fp;          /* part, while open */
  int to_file;       /* -1: not known yet; 1: this answer's body goes to fp; 0: to body */
  size_t file_bytes; /* written to fp */
  int file_errno;    /* why opening, writing or renaming failed */
  CURLcode result;
  char errbuf[CURL_ERROR_SIZE];
} dr_xfer;

struct dr_engine;

/* The Accept-Encoding line libcurl would send for CURLOPT_ACCEPT_ENCODING "" (once per engine). */
void dr_easy_accept_encoding(char *out, size_t size);
/* A pooled transfer, or a new one with a handle set up for this engine; NULL when out of memory. */
dr_xfer *dr_easy_take(struct dr_engine *e);
/* Sets the handle for request s, whose table is at idx, changing only what differs from the
 * handle's last request; -1 on a bad header line or out of memory. */
int dr_easy_prepare(lua_State *L, const struct dr_engine *e, dr_xfer *x, int idx, const dr_spec *s);
/* Out of the multi handle and into the pool (or freed when the pool is full or closed). */
void dr_easy_release(struct dr_engine *e, dr_xfer *x);
void dr_easy_free(dr_xfer *x);
/* Transfers alive in the process and the bytes of their structs and URL copies. */
void dr_easy_stats(size_t *xfers, size_t *bytes);
/* Opens the .part file of a download at path; -1 (x->file_errno set) when it cannot. */
int dr_easy_file_open(dr_xfer *x, const char *path);
/* Closes the .part file and renames it to the download's path; -1 (file_errno set, the part
 * removed) on failure. */
int dr_easy_file_commit(dr_xfer *x);
/* Whether the answer's body went to the file (a 2xx to a download). */
int dr_easy_to_file(dr_xfer *x);
/* Writes n bytes of a download's body to its part file (libcurl's write callback's share);
 * 0 when over max_response_size or on a write error, which ends the transfer. */
size_t dr_easy_file_write(dr_xfer *x, const char *p, size_t n);
/* Ends a download that did not complete: its part file goes (the path was never touched). */
void dr_easy_file_discard(dr_xfer *x);
/* Lua holds the body now: a big buffer is freed at once, a small one kept for the next use. */
void dr_easy_body_done(dr_xfer *x);

#endif
