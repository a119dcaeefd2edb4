/* The growable buffer and the body cache (include/buf.h). */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "check.h"

static void test_buf_append(void)
{
    struct buf b = {0};
    CHECK(buf_append(&b, "abc", 3, 10) == 0);
    CHECK(buf_append(&b, "defg", 4, 10) == 0);
    CHECK_STR(b.p, "abcdefg");
    CHECK(buf_append(&b, "xyzw", 4, 10) == -1); /* over max: refused, unchanged */
    CHECK(b.len == 7 && strcmp(b.p, "abcdefg") == 0);
    CHECK(buf_append(&b, "", 0, SIZE_MAX) == 0 && b.len == 7);
    buf_free(&b);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0);
}

static void test_body_cache_reuses_large_blocks(void)
{
    void *a = body_alloc(64 << 10);
    CHECK(a != NULL);
    memset(a, 1, 64 << 10);
    body_free(a);
    void *b = body_alloc(60 << 10); /* fits the cached block: the same memory comes back */
    CHECK(b == a);
    body_free(b);
    void *c = body_alloc(8 << 10); /* small: never from the cache */
    CHECK(c != a);
    body_free(c);
    void *d = body_alloc(200 << 10); /* too big for the cached block */
    CHECK(d != a);
    body_free(d);
    void *e = body_alloc(20 << 10); /* would waste more than half the block: not reused */
    CHECK(e != a && e != d);
    body_free(e);
    body_cache_clear();
    body_free(NULL);
}

static void test_body_cache_is_bounded(void)
{
    /* Far more than BODY_CACHE_BYTES freed at once: the cache keeps at most that much, and what
     * it keeps is still handed out (the leak checker of the sanitizer run sees the rest freed). */
    enum { N = 64 };
    void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = body_alloc(256 << 10);
    for (int i = 0; i < N; i++)
        body_free(p[i]);
    int reused = 0;
    for (int i = 0; i < N; i++) {
        void *q = body_alloc(256 << 10);
        for (int j = 0; j < N; j++)
            reused += q == p[j];
        p[i] = q;
    }
    CHECK(reused > 0);
    CHECK((size_t)reused * (256 << 10) <= BODY_CACHE_BYTES);
    for (int i = 0; i < N; i++)
        free(p[i]); /* any cached block is an ordinary malloc block */
    body_cache_clear();
}

int main(void)
{
    test_buf_append();
    test_body_cache_reuses_large_blocks();
    test_body_cache_is_bounded();
    return check_summary("test_buf");
}
