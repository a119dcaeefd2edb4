/* libFuzzer target: what the Telemetry API listener parses (a delivery's JSON batch) and the
 * /etc/hosts lookup of sandbox.localdomain. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry.h"

static void on_event(void *ud, const struct telemetry_event *ev)
{
    size_t *n = ud;
    *n += strlen(ev->request_id) + strlen(ev->status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t n = 0;
    const char *why = NULL;
    if (telemetry_parse(s, size, on_event, &n, &why) < 0 && !why)
        abort(); /* a refusal always says why */
    char addrs[4][48];
    size_t k = telemetry_hosts_lookup(s, "sandbox.localdomain", addrs, 4);
    for (size_t i = 0; i < k; i++)
        if (!memchr(addrs[i], '\0', sizeof(addrs[i])))
            abort();
    free(s);
    return 0;
}
