/* libFuzzer target: the configuration parsers — Go durations, bools and ints, the
 * PYROSCOPE_HTTP_HEADERS JSON, Go time layouts, the container credentials URI — the FlameQL name
 * and query rewrites, and the credentials endpoint's answer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "awscreds.h"
#include "config.h"
#include "gofmt.h"
#include "rewrite.h"

static const char *input;

static const char *fuzz_env(void *ud, const char *name)
{
    (void)ud;
    if (strcmp(name, "PYROSCOPE_HTTP_HEADERS") == 0 || strcmp(name, "PYROSCOPE_TIMEOUT") == 0 ||
        strcmp(name, "PYROSCOPE_REMOTE_ADDRESS") == 0 ||
        strcmp(name, "PYROSCOPE_NUM_WORKERS") == 0 ||
        strcmp(name, "AWS_CONTAINER_CREDENTIALS_FULL_URI") == 0)
        return input;
    if (strcmp(name, "XRAYPROFILE_THRESHOLD") == 0 || strcmp(name, "AWS_REGION") == 0)
        return "1"; /* the archive on, so that the credentials URI is checked */
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    input = s;

    int64_t ns;
    long long n;
    bool b;
    go_parse_duration(s, &ns);
    go_parse_int(s, &n);
    go_parse_bool(s, &b);
    char out[256];
    struct timespec ts = {1704207845, 123456789};
    go_time_format(out, sizeof(out), s, &ts, true);

    struct config c;
    config_load(&c, fuzz_env, NULL);
    struct header_policy p;
    if (header_policy_init(&p, &c) == 0) {
        struct req_header h = {"X-A", 3, s, strlen(s)};
        curl_slist_free_all(header_policy_build(&p, &h, 1));
    }
    header_policy_free(&p);
    config_free(&c);

    struct aws_credentials creds;
    char why[200];
    if (credentials_parse((const char *)data, size, &creds, why, sizeof(why)) == 0)
        credentials_clear_parsed(&creds);
    credentials_parse_time(s);
    credentials_uri_ok(s, why, sizeof(why));

    free(flameql_add_session_id((const char *)data, size, "0123456789abcdef"));
    free(query_add_session_id((const char *)data, size, "0123456789abcdef"));
    free(s);
    return 0;
}
