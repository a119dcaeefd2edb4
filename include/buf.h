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

/* Upload bodies are allocated and freed at the request rate, at sizes (16 KiB to MiBs) where a
 * libc may hand each freed block back to the kernel (glibc's mmap threshold, musl's munmap and
 * madvise) and fault every page in again for the next one. body_free keeps up to
 * BODY_CACHE_BYTES of freed blocks of at least 32 KiB for body_alloc to reuse; smaller ones are
 * simply freed. Single-threaded: the loop's thread only. */
#define BODY_CACHE_BYTES (4u << 20)
void *body_alloc(size_t n);
void body_free(void *p);
/* Frees what the cache holds (at exit). */
void body_cache_clear(void);

#endif
