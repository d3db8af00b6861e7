#ifndef DR_BUFFER_H
#define DR_BUFFER_H

#include <stddef.h>

/* A byte buffer that grows geometrically up to a hard limit. */
typedef struct dr_buf {
  char *data;
  size_t len;
  size_t cap;
  size_t limit;
  int overflow; /* set once an append would pass limit */
} dr_buf;

void dr_buf_init(dr_buf *b, size_t limit);
/* Returns 0 on success, -1 when over the limit or out of memory. */
int dr_buf_append(dr_buf *b, const char *p, size_t n);
/* Makes room for n bytes in all (capped at the limit); 0 on success. */
int dr_buf_reserve(dr_buf *b, size_t n);
/* Empties b, keeping its memory. */
void dr_buf_reset(dr_buf *b);
void dr_buf_free(dr_buf *b);
/* Bytes all buffers of the process hold now (their capacity). */
size_t dr_buf_bytes(void);

#endif
