/* libFuzzer target: what trace sampling reads from outside — the tracing value of an INVOKE
 * event, the upload's query and Content-Type, and its (multipart) body. The input is split at
 * its first two newlines: line 1 is the tracing value and the Content-Type, line 2 the query, the
 * rest the body. Every slice archive_select returns must lie inside the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite.h"
#include "xray.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    const char *nl1 = memchr(p, '\n', size);
    const char *l1_end = nl1 ? nl1 : end;
    const char *l2 = nl1 ? nl1 + 1 : end;
    const char *nl2 = memchr(l2, '\n', (size_t)(end - l2));
    const char *l2_end = nl2 ? nl2 : end;
    const char *body = nl2 ? nl2 + 1 : end;
    size_t body_len = (size_t)(end - body);

    char *line1 = strndup(p, (size_t)(l1_end - p));
    if (!line1)
        return 0;
    struct xray_decision d;
    xray_decide(line1, line1, &d);
    if (d.traced && strlen(d.root) != XRAY_ROOT_LEN)
        abort();

    struct archive_payload pl;
    archive_select(l2, (size_t)(l2_end - l2), line1, strlen(line1), body, body_len, &pl);
    if (pl.data < body || pl.data + pl.len > end)
        abort();
    char app[128], acct[16];
    query_param(l2, (size_t)(l2_end - l2), "name", app, sizeof(app));
    char *key = archive_key(line1, &d, line1, line1, 7, app, pl.ext);
    if (key) {
        for (const char *k = key; *k; k++)
            if (*k <= ' ' || *k == '?' || *k == '#' || (unsigned char)*k >= 0x7f)
                abort(); /* the key goes into a URL path as it is */
        char *url = archive_url(line1, "us-east-1", "bucket", key);
        free(url);
    }
    free(key);
    arn_account_id(line1, acct, sizeof(acct));
    s3_bucket_name_ok(line1);
    free(line1);
    return 0;
}
