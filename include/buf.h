/* A growable, always NUL-terminated byte buffer. */
#ifndef PLE_BUF_H
#define PLE_BUF_H

#include <stddef.h>

struct buf {
    char *p;
    size_t len, cap;
};

/* Appends n bytes, growing by doubling; refuses (-1) to grow past max bytes or on allocation
 * failure, leaving the buffer as it was. */
int buf_append(struct buf *b, const char *p, size_t n, size_t max);
/* Frees the storage and empties the buffer. */
void buf_free(struct buf *b);

#endif
