/* See include/buf.h. */
#include "buf.h"

#include <malloc.h>
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

#define BODY_CACHE_SLOTS 16
#define BODY_CACHE_MIN (32u << 10)

static struct {
    void *p[BODY_CACHE_SLOTS];
    size_t size[BODY_CACHE_SLOTS]; /* malloc_usable_size */
    size_t n, bytes;
} cache;

void *body_alloc(size_t n)
{
    if (n >= BODY_CACHE_MIN / 2) {
        /* The smallest cached block that fits, unless it would waste more than it holds. */
        size_t best = cache.n;
        for (size_t i = 0; i < cache.n; i++)
            if (cache.size[i] >= n && cache.size[i] / 2 <= n &&
                (best == cache.n || cache.size[i] < cache.size[best]))
                best = i;
        if (best < cache.n) {
            void *p = cache.p[best];
            cache.bytes -= cache.size[best];
            cache.n--;
            cache.p[best] = cache.p[cache.n];
            cache.size[best] = cache.size[cache.n];
            return p;
        }
    }
    return malloc(n);
}

void body_free(void *p)
{
    if (!p)
        return;
    size_t size = malloc_usable_size(p);
    if (size < BODY_CACHE_MIN || size > BODY_CACHE_BYTES) {
        free(p);
        return;
    }
    /* Full: the oldest-looking entry (slot 0) makes room, so the cache follows current sizes. */
    while (cache.n && (cache.n == BODY_CACHE_SLOTS || cache.bytes + size > BODY_CACHE_BYTES)) {
        free(cache.p[0]);
        cache.bytes -= cache.size[0];
        cache.n--;
        cache.p[0] = cache.p[cache.n];
        cache.size[0] = cache.size[cache.n];
    }
    cache.p[cache.n] = p;
    cache.size[cache.n] = size;
    cache.n++;
    cache.bytes += size;
}

void body_cache_clear(void)
{
    while (cache.n)
        free(cache.p[--cache.n]);
    cache.bytes = 0;
}
