/* libFuzzer target: bytes from a client, through the listener's real llhttp callbacks and the
 * upload builder (URL join, session-id rewrite, header policy), into the queue. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "queue.h"
#include "relay_server.h"
#include "rewrite.h"

static const char *fuzz_env(void *ud, const char *name)
{
    (void)ud;
    if (strcmp(name, "PYROSCOPE_REMOTE_ADDRESS") == 0)
        return "https://remote.invalid/base";
    if (strcmp(name, "PYROSCOPE_AUTH_TOKEN") == 0)
        return "fuzz-token";
    if (strcmp(name, "PYROSCOPE_HTTP_HEADERS") == 0)
        return "{\"X-Extra\":\"1\"}";
    if (strcmp(name, "PYROSCOPE_MAX_BODY_BYTES") == 0)
        return "65536";
    if (strcmp(name, "PYROSCOPE_LOG_LEVEL") == 0)
        return "error";
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config c;
    static struct header_policy p;
    static bool ready;
    if (!ready) {
        config_load(&c, fuzz_env, NULL);
        log_configure(&c.log);
        header_policy_init(&p, &c);
        ready = true;
    }
    struct queue q;
    queue_init(&q, 1000, 64 << 20);
    relay_server_feed(&c, &q, &p, "0123456789abcdef", (const char *)data, size);
    struct relay_req *r;
    while ((r = queue_pop(&q)))
        queue_done(&q, r, true);
    queue_dispose(&q);
    return 0;
}
