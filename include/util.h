/* Small helpers shared by the modules. */
#ifndef PLE_UTIL_H
#define PLE_UTIL_H

#include <stddef.h>

/* The struct that holds member at ptr (the intrusive-handle idiom: a uv handle embedded in a
 * context struct). */
#define PLE_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define PLE_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
