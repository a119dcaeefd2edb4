/* The seed's table: defaults, Go parsing, one clear issue per invalid value, no secrets. */
#include <string.h>

#include "check.h"
#include "config.h"

struct env {
    const char *kv[40];
};

static const char *lookup(void *ud, const char *name)
{
    struct env *e = ud;
    size_t n = strlen(name);
    for (size_t i = 0; e->kv[i]; i++)
        if (strncmp(e->kv[i], name, n) == 0 && e->kv[i][n] == '=')
            return e->kv[i] + n + 1;
    return NULL;
}

static const struct config_issue *issue_for(const struct config *c, const char *var)
{
    for (size_t i = 0; i < c->n_issues; i++)
        if (strcmp(c->issues[i].variable, var) == 0)
            return &c->issues[i];
    return NULL;
}

static void test_defaults(void)
{
    struct env e = {{NULL}};
    struct config c;
    CHECK(config_load(&c, lookup, &e) == 0);
    CHECK_STR(c.remote_address, "https://ingest.pyroscope.cloud");
    CHECK_STR(c.auth_token, "");
    CHECK(!c.self_profiling && !c.flush_on_invoke && !c.dev_mode);
    CHECK(c.timeout_ns == 10000000000LL);
    CHECK(c.num_workers == 5);
    CHECK(c.n_http_headers == 0);
    CHECK_STR(c.tenant_id, "");
    CHECK_STR(c.basic_auth_user, "");
    CHECK_STR(c.basic_auth_password, "");
    CHECK(c.log.level == LOG_LEVEL_INFO && c.log.format == LOG_FORMAT_TEXT);
    CHECK_STR(c.log.timestamp_layout, "2006-01-02T15:04:05Z07:00");
    CHECK(!c.log.timestamp_disable);
    CHECK_STR(c.log.field_time, "time");
    CHECK_STR(c.log.field_level, "level");
    CHECK_STR(c.log.field_msg, "msg");
    CHECK_STR(c.log.field_logrus_error, "logrus_error");
    CHECK_STR(c.log.field_func, "func");
    CHECK_STR(c.log.field_file, "file");
    CHECK(c.relay_port == 4040 && c.queue_max_count == 256);
    CHECK(c.queue_max_bytes == 32u << 20 && c.max_body_bytes == 8u << 20);
    CHECK(c.max_retries == 3);
    CHECK(c.max_header_bytes == 64u << 10 && c.max_connections == 128);
    CHECK(c.client_timeout_ns == 10000000000LL);
    CHECK(c.n_issues == 0);
    config_free(&c);
}

static void test_values(void)
{
    struct env e = {{"PYROSCOPE_REMOTE_ADDRESS=http://127.0.0.1:9/base//",
                     "PYROSCOPE_AUTH_TOKEN=tok", "PYROSCOPE_SELF_PROFILING=T",
                     "PYROSCOPE_LOG_LEVEL=Debug", "PYROSCOPE_TIMEOUT=1m30s",
                     "PYROSCOPE_NUM_WORKERS=12", "PYROSCOPE_FLUSH_ON_INVOKE=1",
                     "PYROSCOPE_HTTP_HEADERS={\"X-A\":\"1\",\"X-B\":\"two\"}",
                     "PYROSCOPE_TENANT_ID=t1", "PYROSCOPE_LOG_FORMAT=json",
                     "PYROSCOPE_LOG_TIMESTAMP_FORMAT=15:04", "PYROSCOPE_LOG_TIMESTAMP_DISABLE=true",
                     "PYROSCOPE_LOG_MSG_FIELD_NAME=message", "PYROSCOPE_LOG_FILE_FIELD_NAME=src",
                     "PYROSCOPE_RELAY_PORT=5050", "PYROSCOPE_TIMEOUT_UNUSED=x", NULL}};
    struct config c;
    CHECK(config_load(&c, lookup, &e) == 0);
    CHECK_STR(c.remote_address, "http://127.0.0.1:9/base");
    CHECK_STR(c.auth_token, "tok");
    CHECK(c.self_profiling && c.flush_on_invoke);
    CHECK(c.log.level == LOG_LEVEL_DEBUG && c.log.format == LOG_FORMAT_JSON);
    CHECK(c.timeout_ns == 90000000000LL && c.num_workers == 12);
    CHECK(c.n_http_headers == 2);
    CHECK(c.relay_port == 5050);
    CHECK_STR(c.log.timestamp_layout, "15:04");
    CHECK(c.log.timestamp_disable);
    CHECK_STR(c.log.field_msg, "message");
    CHECK_STR(c.log.field_file, "src");
    CHECK(c.n_issues == 0);
    config_free(&c);
}

static void test_invalid_values_fall_back_with_one_issue_each(void)
{
    struct env e = {{"PYROSCOPE_TIMEOUT=10", "PYROSCOPE_NUM_WORKERS=0",
                     "PYROSCOPE_FLUSH_ON_INVOKE=yes", "PYROSCOPE_LOG_LEVEL=loud",
                     "PYROSCOPE_LOG_FORMAT=xml", "PYROSCOPE_RELAY_PORT=70000",
                     "PYROSCOPE_REMOTE_ADDRESS=ftp://x", "PYROSCOPE_SELF_PROFILING=maybe", NULL}};
    struct config c;
    config_load(&c, lookup, &e);
    CHECK(c.n_issues == 8);
    const struct config_issue *t = issue_for(&c, "PYROSCOPE_TIMEOUT");
    CHECK(t && t->level == LOG_LEVEL_WARN);
    CHECK(t && strcmp(t->value, "10") == 0 && strcmp(t->default_value, "10s") == 0);
    CHECK(c.timeout_ns == 10000000000LL);
    CHECK(c.num_workers == 5 && issue_for(&c, "PYROSCOPE_NUM_WORKERS"));
    CHECK(!c.flush_on_invoke && issue_for(&c, "PYROSCOPE_FLUSH_ON_INVOKE"));
    CHECK(c.log.level == LOG_LEVEL_INFO && issue_for(&c, "PYROSCOPE_LOG_LEVEL"));
    CHECK(c.log.format == LOG_FORMAT_TEXT && issue_for(&c, "PYROSCOPE_LOG_FORMAT"));
    CHECK(c.relay_port == 4040 && issue_for(&c, "PYROSCOPE_RELAY_PORT"));
    CHECK_STR(c.remote_address, "https://ingest.pyroscope.cloud");
    CHECK(issue_for(&c, "PYROSCOPE_SELF_PROFILING") != NULL);
    config_free(&c);
}

static void test_http_headers_errors_never_show_values(void)
{
    struct env bad_json = {{"PYROSCOPE_HTTP_HEADERS={\"X-A\": \"s3cr3t\"", NULL}};
    struct config c;
    config_load(&c, lookup, &bad_json);
    CHECK(c.n_http_headers == 0 && c.n_issues == 1);
    CHECK(c.issues[0].level == LOG_LEVEL_ERROR);
    CHECK(strstr(c.issues[0].detail, "invalid JSON") != NULL);
    CHECK(strstr(c.issues[0].detail, "s3cr3t") == NULL && c.issues[0].value[0] == '\0');
    config_free(&c);

    struct env mixed = {{"PYROSCOPE_HTTP_HEADERS={\"Good\":\"v1\",\"bad name\":\"s3cr3t\","
                         "\"X-Num\":5,\"X-Crlf\":\"a\\r\\nInjected: s3cr3t\"}",
                         NULL}};
    config_load(&c, lookup, &mixed);
    CHECK(c.n_http_headers == 1);
    CHECK_STR(c.http_headers[0].name, "Good");
    CHECK_STR(c.http_headers[0].value, "v1");
    CHECK(c.n_issues == 3);
    for (size_t i = 0; i < c.n_issues; i++)
        CHECK(strstr(c.issues[i].detail, "s3cr3t") == NULL && c.issues[i].value[0] == '\0');
    config_free(&c);

    struct env reserved = {{"PYROSCOPE_HTTP_HEADERS={\"Content-Length\":\"1\",\"host\":\"h\","
                            "\"Transfer-Encoding\":\"chunked\",\"Proxy-X\":\"p\",\"X-Ok\":\"v\"}",
                            NULL}};
    config_load(&c, lookup, &reserved);
    CHECK(c.n_http_headers == 1 && c.n_issues == 4);
    CHECK_STR(c.http_headers[0].name, "X-Ok");
    CHECK(strstr(c.issues[0].detail, "set by the relay itself") != NULL);
    config_free(&c);

    struct env nul = {{"PYROSCOPE_HTTP_HEADERS={\"X-Nul\":\"a\\u0000b\"}", NULL}};
    config_load(&c, lookup, &nul);
    CHECK(c.n_http_headers == 0 && c.n_issues == 1);
    /* jansson refuses a NUL escape outright: the whole variable is rejected, with the reason. */
    CHECK(c.n_issues == 1 && strstr(c.issues[0].detail, "u0000 is not allowed") != NULL);
    config_free(&c);

    struct env array = {{"PYROSCOPE_HTTP_HEADERS=[1,2]", NULL}};
    config_load(&c, lookup, &array);
    CHECK(c.n_http_headers == 0 && c.n_issues == 1);
    config_free(&c);
}

static void test_secrets_absent_from_issues(void)
{
    struct env e = {{"PYROSCOPE_AUTH_TOKEN=tok-secret", "PYROSCOPE_BASIC_AUTH_PASSWORD=pw-secret",
                     "PYROSCOPE_TIMEOUT=bad", NULL}};
    struct config c;
    config_load(&c, lookup, &e);
    for (size_t i = 0; i < c.n_issues; i++) {
        CHECK(strstr(c.issues[i].value, "secret") == NULL);
        CHECK(strstr(c.issues[i].detail, "secret") == NULL);
    }
    config_free(&c);
}

static void test_body_limit_fits_queue(void)
{
    struct env e = {{"PYROSCOPE_QUEUE_MAX_BYTES=4096", "PYROSCOPE_MAX_BODY_BYTES=100000", NULL}};
    struct config c;
    config_load(&c, lookup, &e);
    CHECK(c.max_body_bytes == 4096 - 512);
    CHECK(issue_for(&c, "PYROSCOPE_MAX_BODY_BYTES") != NULL);
    config_free(&c);
}

int main(void)
{
    test_defaults();
    test_values();
    test_invalid_values_fall_back_with_one_issue_each();
    test_http_headers_errors_never_show_values();
    test_secrets_absent_from_issues();
    test_body_limit_fits_queue();
    return check_summary("test_config");
}
