#include "buffer.h"

#include <stdlib.h>
#include <string.h>

/* Bytes of buffer memory held by every dr_buf in the process (core.stats()): the scale
 * benchmark counts the C side's own allocations with it, not RSS alone. */
static size_t dr_buf_held = 0;

size_t dr_buf_bytes(void) {
  return dr_buf_held;
}

void dr_buf_init(dr_buf *b, size_t limit) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->limit = limit;
  b->overflow = 0;
}

static int dr_buf_grow(dr_buf *b, size_t need) {
  size_t cap = b->cap ? b->cap : 1024;
  char *p;
  if (cap < need && b->cap == 0)
    cap = need; /* first allocation: exactly what is asked (Content-Length) */
  while (cap < need)
    cap = cap > b->limit / 2 ? b->limit : cap * 2;
  p = realloc(b->data, cap);
  if (p == NULL)
    return -1;
  b->data = p;
  dr_buf_held += cap - b->cap;
  b->cap = cap;
  return 0;
}

int dr_buf_reserve(dr_buf *b, size_t n) {
  if (n > b->limit)
    n = b->limit;
  return n > b->cap ? dr_buf_grow(b, n) : 0;
}

int dr_buf_append(dr_buf *b, const char *p, size_t n) {
  if (n > b->limit - b->len) {
    b->overflow = 1;
    return -1;
  }
  if (b->len + n > b->cap && dr_buf_grow(b, b->len + n) != 0)
    return -1;
  if (n > 0)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

void dr_buf_reset(dr_buf *b) {
  b->len = 0;
  b->overflow = 0;
}

void dr_buf_free(dr_buf *b) {
  dr_buf_held -= b->cap;
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
