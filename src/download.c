/* Downloads (a request's spec.file): a 2xx body streams to path ".part" as it arrives and is
 * renamed to path once complete; any other outcome removes the part, so a failed download
 * never leaves a file that looks whole. Only the transfer's own fields are touched here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "easy.h"

int dr_easy_to_file(dr_xfer *x) {
  if (x->to_file < 0) {
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    x->to_file = x->fp != NULL && status >= 200 && status < 300;
  }
  return x->to_file;
}

/* A download's body goes to disk as it comes, under the same max_response_size as a body
 * held in memory: memory stays flat whatever the asset's size. */
size_t dr_easy_file_write(dr_xfer *x, const char *p, size_t n) {
  if (n > x->body.limit - x->file_bytes) {
    x->body.overflow = 1;
    return 0;
  }
  errno = 0;
  if (n > 0 && fwrite(p, 1, n, x->fp) != n) {
    x->file_errno = errno != 0 ? errno : EIO;
    return 0;
  }
  x->file_bytes += n;
  return n;
}

static char *dr_strcat2(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *s = malloc(la + lb + 1);
  if (s != NULL) {
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
  }
  return s;
}

/* Ends a download that did not complete: its .part goes (the path itself was never touched). */
void dr_easy_file_discard(dr_xfer *x) {
  if (x->fp != NULL) {
    fclose(x->fp);
    x->fp = NULL;
    remove(x->part);
  }
  free(x->file);
  free(x->part);
  x->file = x->part = NULL;
}

int dr_easy_file_open(dr_xfer *x, const char *path) {
  x->file = dr_strcat2(path, "");
  x->part = dr_strcat2(path, ".part");
  if (x->file == NULL || x->part == NULL) {
    x->file_errno = ENOMEM;
    return -1;
  }
  errno = 0;
  x->fp = fopen(x->part, "wb");
  if (x->fp == NULL) {
    x->file_errno = errno != 0 ? errno : EIO;
    return -1;
  }
  return 0;
}

int dr_easy_file_commit(dr_xfer *x) {
  int bad;
  errno = 0;
  bad = fclose(x->fp) != 0; /* a full disk may show only now, flushing the last block */
  x->fp = NULL;
  if (!bad)
    bad = rename(x->part, x->file) != 0;
  if (!bad)
    return 0;
  x->file_errno = errno != 0 ? errno : EIO;
  remove(x->part);
  return -1;
}
