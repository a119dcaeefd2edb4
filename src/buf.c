/* See include/buf.h. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

int buf_append(struct buf *b, const char *p, size_t n, size_t max)
{
    if (n > max || b->len > max - n)
        return -1;
    size_t need = b->len + n + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

void buf_free(struct buf *b)
{
    free(b->p);
    *b = (struct buf){0};
}
