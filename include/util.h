/* Small helpers shared by the modules. */
#ifndef PLE_UTIL_H
#define PLE_UTIL_H

#include <stddef.h>
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

/* Frees a string that held a secret (a token, a password, a configured header value), wiping it
 * first so that a later core dump or a use-after-free cannot show it. */
static inline void free_secret(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
    free(s);
}

#endif
