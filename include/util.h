/* Small helpers shared by the modules. */
#ifndef PLE_UTIL_H
#define PLE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The struct that holds member at ptr (the intrusive-handle idiom: a uv handle embedded in a
 * context struct). */
#define PLE_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define PLE_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Intrusive lists: a node has `next` and `prevp` (the address of the pointer that points at it),
 * so it can take itself off its list without knowing the head. */
#define PLE_LIST_PUSH(headp, node)                                                                 \
    do {                                                                                           \
        (node)->next = *(headp);                                                                   \
        (node)->prevp = (headp);                                                                   \
        if (*(headp))                                                                              \
            (*(headp))->prevp = &(node)->next;                                                     \
        *(headp) = (node);                                                                         \
    } while (0)

#define PLE_LIST_REMOVE(node)                                                                      \
    do {                                                                                           \
        *(node)->prevp = (node)->next;                                                             \
        if ((node)->next)                                                                          \
            (node)->next->prevp = (node)->prevp;                                                   \
        (node)->next = NULL;                                                                       \
        (node)->prevp = NULL;                                                                      \
    } while (0)

/* Copies at most max characters of s into out (cap bytes, always NUL-terminated), each outside
 * [A-Za-z0-9._-] as '_': a name that is safe in a FlameQL label or an object key. Returns the
 * characters written. */
static inline size_t ple_copy_name(char *out, size_t cap, const char *s, size_t max)
{
    size_t o = 0;
    for (; s && s[o] && o < max && o + 1 < cap; o++) {
        char c = s[o];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        out[o] = ok ? c : '_';
    }
    if (cap)
        out[o] = '\0';
    return o;
}

/* Frees a string that held a secret (a token, a password, a configured header value), wiping it
 * first so that a later core dump or a use-after-free cannot show it. */
static inline void free_secret(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
    free(s);
}

/* One log line at once, then at most one a second with how many there were since. */
struct rate_limit {
    uint64_t unlogged;
    uint64_t logged_ms; /* 0: never */
};

/* Counts an event; returns how many to report now, or 0 to stay quiet. */
static inline uint64_t rate_limit_hit(struct rate_limit *rl, uint64_t now)
{
    rl->unlogged++;
    if (rl->logged_ms && now - rl->logged_ms < 1000)
        return 0;
    uint64_t n = rl->unlogged;
    rl->unlogged = 0;
    rl->logged_ms = now ? now : 1;
    return n;
}

#endif
