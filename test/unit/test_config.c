/* The seed's table and ours: defaults, Go parsing, one clear issue per invalid value, no
 * secrets in issues. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct env {
    const char *kv[40]; /* "NAME=value", NULL-terminated */
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

/* Loads from a single "NAME=value". */
static void load1(struct config *c, const char *kv)
{
    struct env e = {{kv, NULL}};
    CHECK(config_load(c, lookup, &e) == 0);
}

static const struct config_issue *issue_for(const struct config *c, const char *var)
{
    for (size_t i = 0; i < c->n_issues; i++)
        if (strcmp(c->issues[i].variable, var) == 0)
            return &c->issues[i];
    return NULL;
}

/* No issue field holds needle. */
static bool issues_free_of(const struct config *c, const char *needle)
{
    for (size_t i = 0; i < c->n_issues; i++) {
        const struct config_issue *is = &c->issues[i];
        if (strstr(is->value, needle) || strstr(is->default_value, needle) ||
            strstr(is->detail, needle))
            return false;
    }
    return true;
}

static void check_defaults(const struct config *c)
{
    CHECK_STR(c->remote_address, "https://ingest.pyroscope.cloud");
    CHECK_STR(c->auth_token, "");
    CHECK(!c->self_profiling && !c->flush_on_invoke && !c->dev_mode);
    CHECK(c->flush_strategy == FLUSH_AUTO && c->init_type == INIT_ON_DEMAND);
    CHECK(c->timeout_ns == 10000000000LL);
    CHECK(c->num_workers == 5);
    CHECK(c->n_http_headers == 0);
    CHECK_STR(c->tenant_id, "");
    CHECK_STR(c->basic_auth_user, "");
    CHECK_STR(c->basic_auth_password, "");
    CHECK(c->log.level == LOG_LEVEL_INFO && c->log.format == LOG_FORMAT_TEXT);
    CHECK_STR(c->log.timestamp_layout, "2006-01-02T15:04:05Z07:00");
    CHECK(!c->log.timestamp_disable && c->log.timestamp_utc);
    CHECK_STR(c->log.field_time, "time");
    CHECK_STR(c->log.field_level, "level");
    CHECK_STR(c->log.field_msg, "msg");
    CHECK_STR(c->log.field_logrus_error, "logrus_error");
    CHECK_STR(c->log.field_func, "func");
    CHECK_STR(c->log.field_file, "file");
    CHECK(c->relay_port == 4040 && c->queue_max_count == 256);
    CHECK(c->queue_max_bytes == 33554432 && c->max_body_bytes == 8388608);
    CHECK(c->max_retries == 3);
    CHECK(c->max_header_bytes == 65536 && c->max_connections == 128);
    CHECK(c->client_timeout_ns == 10000000000LL);
}

static void test_defaults(void)
{
    struct env e = {{NULL}};
    struct config c;
    CHECK(config_load(&c, lookup, &e) == 0);
    check_defaults(&c);
    CHECK(c.n_issues == 0);
    config_free(&c);
}

/* The Go extension treats an empty variable as unset: silently the default. Not the remote
 * address (test_remote_refusal). */
static void test_empty_means_default(void)
{
    static const char *const names[] = {
        "PYROSCOPE_AUTH_TOKEN",
        "PYROSCOPE_SELF_PROFILING",
        "PYROSCOPE_LOG_LEVEL",
        "PYROSCOPE_TIMEOUT",
        "PYROSCOPE_NUM_WORKERS",
        "PYROSCOPE_FLUSH_ON_INVOKE",
        "PYROSCOPE_HTTP_HEADERS",
        "PYROSCOPE_TENANT_ID",
        "PYROSCOPE_BASIC_AUTH_USER",
        "PYROSCOPE_BASIC_AUTH_PASSWORD",
        "PYROSCOPE_LOG_FORMAT",
        "PYROSCOPE_LOG_TIMESTAMP_FORMAT",
        "PYROSCOPE_LOG_TIMESTAMP_DISABLE",
        "PYROSCOPE_LOG_TIMESTAMP_FIELD_NAME",
        "PYROSCOPE_LOG_LEVEL_FIELD_NAME",
        "PYROSCOPE_LOG_MSG_FIELD_NAME",
        "PYROSCOPE_LOG_LOGRUS_ERROR_FIELD_NAME",
        "PYROSCOPE_LOG_FUNC_FIELD_NAME",
        "PYROSCOPE_LOG_FILE_FIELD_NAME",
        "PYROSCOPE_DEV_MODE",
        "PYROSCOPE_RELAY_PORT",
        "PYROSCOPE_QUEUE_MAX_COUNT",
        "PYROSCOPE_QUEUE_MAX_BYTES",
        "PYROSCOPE_MAX_BODY_BYTES",
        "PYROSCOPE_MAX_RETRIES",
        "PYROSCOPE_MAX_HEADER_BYTES",
        "PYROSCOPE_MAX_CONNECTIONS",
        "PYROSCOPE_CLIENT_TIMEOUT",
    };
    static char storage[ARRAY_LEN(names)][64];
    struct env e = {{NULL}};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        snprintf(storage[i], sizeof(storage[i]), "%s=", names[i]);
        e.kv[i] = storage[i];
    }
    struct config c;
    CHECK(config_load(&c, lookup, &e) == 0);
    check_defaults(&c);
    CHECK(c.n_issues == 0);
    config_free(&c);
}

static void test_values(void)
{
    struct env e = {{"PYROSCOPE_REMOTE_ADDRESS=http://127.0.0.1:9/base//",
                     "PYROSCOPE_AUTH_TOKEN=tok",
                     "PYROSCOPE_SELF_PROFILING=T",
                     "PYROSCOPE_LOG_LEVEL=Debug",
                     "PYROSCOPE_TIMEOUT=1m30s",
                     "PYROSCOPE_NUM_WORKERS=12",
                     "PYROSCOPE_FLUSH_ON_INVOKE=1",
                     "PYROSCOPE_HTTP_HEADERS={\"X-A\":\"1\",\"X-B\":\"two words\",\"X-E\":\"\"}",
                     "PYROSCOPE_TENANT_ID=t1",
                     "PYROSCOPE_BASIC_AUTH_USER=u",
                     "PYROSCOPE_BASIC_AUTH_PASSWORD=p\r\nw", /* base64-encoded later: allowed */
                     "PYROSCOPE_LOG_FORMAT=JSON",
                     "PYROSCOPE_LOG_TIMESTAMP_FORMAT=15:04",
                     "PYROSCOPE_LOG_TIMESTAMP_DISABLE=true",
                     "PYROSCOPE_LOG_TIMESTAMP_FIELD_NAME=ts",
                     "PYROSCOPE_LOG_LEVEL_FIELD_NAME=severity",
                     "PYROSCOPE_LOG_MSG_FIELD_NAME=message",
                     "PYROSCOPE_LOG_LOGRUS_ERROR_FIELD_NAME=encoding_error",
                     "PYROSCOPE_LOG_FUNC_FIELD_NAME=fn",
                     "PYROSCOPE_LOG_FILE_FIELD_NAME=src",
                     "PYROSCOPE_DEV_MODE=True",
                     "PYROSCOPE_RELAY_PORT=5050",
                     "PYROSCOPE_QUEUE_MAX_COUNT=10",
                     "PYROSCOPE_QUEUE_MAX_BYTES=1048576",
                     "PYROSCOPE_MAX_BODY_BYTES=1024",
                     "PYROSCOPE_MAX_RETRIES=0",
                     "PYROSCOPE_MAX_HEADER_BYTES=2048",
                     "PYROSCOPE_MAX_CONNECTIONS=7",
                     "PYROSCOPE_CLIENT_TIMEOUT=250ms",
                     "PYROSCOPE_TIMEOUT_UNUSED=x",
                     NULL}};
    struct config c;
    CHECK(config_load(&c, lookup, &e) == 0);
    CHECK_STR(c.remote_address, "http://127.0.0.1:9/base");
    CHECK_STR(c.auth_token, "tok");
    CHECK(c.self_profiling && c.flush_on_invoke && c.dev_mode);
    CHECK(c.log.level == LOG_LEVEL_DEBUG && c.log.format == LOG_FORMAT_JSON);
    CHECK(c.timeout_ns == 90000000000LL && c.num_workers == 12);
    CHECK(c.n_http_headers == 3);
    if (c.n_http_headers == 3) { /* in the order given */
        CHECK_STR(c.http_headers[0].name, "X-A");
        CHECK_STR(c.http_headers[0].value, "1");
        CHECK_STR(c.http_headers[1].name, "X-B");
        CHECK_STR(c.http_headers[1].value, "two words");
        CHECK_STR(c.http_headers[2].name, "X-E");
        CHECK_STR(c.http_headers[2].value, "");
    }
    CHECK_STR(c.tenant_id, "t1");
    CHECK_STR(c.basic_auth_user, "u");
    CHECK_STR(c.basic_auth_password, "p\r\nw");
    CHECK_STR(c.log.timestamp_layout, "15:04");
    CHECK(c.log.timestamp_disable && c.log.timestamp_utc);
    CHECK_STR(c.log.field_time, "ts");
    CHECK_STR(c.log.field_level, "severity");
    CHECK_STR(c.log.field_msg, "message");
    CHECK_STR(c.log.field_logrus_error, "encoding_error");
    CHECK_STR(c.log.field_func, "fn");
    CHECK_STR(c.log.field_file, "src");
    CHECK(c.relay_port == 5050 && c.queue_max_count == 10);
    CHECK(c.queue_max_bytes == 1048576 && c.max_body_bytes == 1024);
    CHECK(c.max_retries == 0 && c.max_header_bytes == 2048 && c.max_connections == 7);
    CHECK(c.client_timeout_ns == 250000000);
    CHECK(c.n_issues == 0);
    config_free(&c);
}

/* The log strings belong to the config: they are not the environment's and outlive it. */
static void test_log_strings_owned(void)
{
    char var[] = "PYROSCOPE_LOG_MSG_FIELD_NAME=message";
    struct env e = {{var, NULL}};
    struct config c;
    CHECK(config_load(&c, lookup, &e) == 0);
    memset(var, 'x', sizeof(var) - 1);
    CHECK_STR(c.log.field_msg, "message");
    const char *const *fields[] = {
        &c.log.timestamp_layout,   &c.log.field_time, &c.log.field_level, &c.log.field_msg,
        &c.log.field_logrus_error, &c.log.field_func, &c.log.field_file};
    for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
        bool owned = false;
        for (size_t k = 0; k < ARRAY_LEN(c.owned_log_strings); k++)
            owned |= *fields[i] == c.owned_log_strings[k];
        CHECK(owned);
    }
    log_configure(&c.log);
    CHECK(log_enabled(LOG_LEVEL_INFO) && !log_enabled(LOG_LEVEL_DEBUG));
    struct log_options d;
    log_options_default(&d);
    log_configure(&d);
    config_free(&c);
}

/* One invalid value: exactly one issue naming it, and the default applies. */
struct bad_case {
    const char *kv;
    const char *var;
    enum log_level level;
    const char *value;
    const char *default_value;
    const char *detail_has;
};

static const struct bad_case bad_cases[] = {
    {"PYROSCOPE_SELF_PROFILING=maybe", "PYROSCOPE_SELF_PROFILING", LOG_LEVEL_WARN, "maybe", "false",
     "not a Go bool"},
    {"PYROSCOPE_FLUSH_ON_INVOKE=yes", "PYROSCOPE_FLUSH_ON_INVOKE", LOG_LEVEL_WARN, "yes", "false",
     "not a Go bool"},
    {"PYROSCOPE_LOG_TIMESTAMP_DISABLE=TRue", "PYROSCOPE_LOG_TIMESTAMP_DISABLE", LOG_LEVEL_WARN,
     "TRue", "false", "not a Go bool"},
    {"PYROSCOPE_DEV_MODE=on", "PYROSCOPE_DEV_MODE", LOG_LEVEL_WARN, "on", "false", "not a Go bool"},
    {"PYROSCOPE_TIMEOUT=10", "PYROSCOPE_TIMEOUT", LOG_LEVEL_WARN, "10", "10s",
     "not a Go duration (e.g. 10s, 250ms, 1m30s)"},
    {"PYROSCOPE_TIMEOUT=0s", "PYROSCOPE_TIMEOUT", LOG_LEVEL_WARN, "0s", "10s", "greater than zero"},
    {"PYROSCOPE_TIMEOUT=-1s", "PYROSCOPE_TIMEOUT", LOG_LEVEL_WARN, "-1s", "10s",
     "greater than zero"},
    {"PYROSCOPE_NUM_WORKERS=0", "PYROSCOPE_NUM_WORKERS", LOG_LEVEL_WARN, "0", "5", "at least 1"},
    {"PYROSCOPE_NUM_WORKERS=five", "PYROSCOPE_NUM_WORKERS", LOG_LEVEL_WARN, "five", "5",
     "not an integer"},
    {"PYROSCOPE_NUM_WORKERS=-2", "PYROSCOPE_NUM_WORKERS", LOG_LEVEL_WARN, "-2", "5", "at least 1"},
    {"PYROSCOPE_LOG_LEVEL=loud", "PYROSCOPE_LOG_LEVEL", LOG_LEVEL_WARN, "loud", "info",
     "not a log level"},
    {"PYROSCOPE_LOG_FORMAT=xml", "PYROSCOPE_LOG_FORMAT", LOG_LEVEL_WARN, "xml", "text",
     "not a log format"},
    {"PYROSCOPE_RELAY_PORT=70000", "PYROSCOPE_RELAY_PORT", LOG_LEVEL_WARN, "70000", "4040",
     "between 1 and 65535"},
    {"PYROSCOPE_RELAY_PORT=0", "PYROSCOPE_RELAY_PORT", LOG_LEVEL_WARN, "0", "4040",
     "between 1 and 65535"},
    {"PYROSCOPE_RELAY_PORT=80x", "PYROSCOPE_RELAY_PORT", LOG_LEVEL_WARN, "80x", "4040",
     "not an integer"},
    {"PYROSCOPE_QUEUE_MAX_COUNT=0", "PYROSCOPE_QUEUE_MAX_COUNT", LOG_LEVEL_WARN, "0", "256",
     "between 1 and"},
    {"PYROSCOPE_QUEUE_MAX_BYTES=1023", "PYROSCOPE_QUEUE_MAX_BYTES", LOG_LEVEL_WARN, "1023",
     "33554432", "between 1024 and"},
    {"PYROSCOPE_MAX_BODY_BYTES=0", "PYROSCOPE_MAX_BODY_BYTES", LOG_LEVEL_WARN, "0", "8388608",
     "between 1 and"},
    {"PYROSCOPE_MAX_RETRIES=21", "PYROSCOPE_MAX_RETRIES", LOG_LEVEL_WARN, "21", "3",
     "between 0 and 20"},
    {"PYROSCOPE_MAX_HEADER_BYTES=10", "PYROSCOPE_MAX_HEADER_BYTES", LOG_LEVEL_WARN, "10", "65536",
     "between 1024 and"},
    {"PYROSCOPE_MAX_CONNECTIONS=0", "PYROSCOPE_MAX_CONNECTIONS", LOG_LEVEL_WARN, "0", "128",
     "between 1 and"},
    {"PYROSCOPE_CLIENT_TIMEOUT=fast", "PYROSCOPE_CLIENT_TIMEOUT", LOG_LEVEL_WARN, "fast", "10s",
     "not a Go duration"},
    {"PYROSCOPE_FLUSH_STRATEGY=periodically", "PYROSCOPE_FLUSH_STRATEGY", LOG_LEVEL_WARN,
     "periodically", "auto", "not a flush strategy (end, next-invoke or auto)"},
    {"AWS_LAMBDA_INITIALIZATION_TYPE=on-the-moon", "AWS_LAMBDA_INITIALIZATION_TYPE", LOG_LEVEL_WARN,
     "on-the-moon", "on-demand", "treated as on-demand"},
    {"PYROSCOPE_TENANT_ID=t\r\nX-Evil: 1", "PYROSCOPE_TENANT_ID", LOG_LEVEL_ERROR, "t\r\nX-Evil: 1",
     "", "control character"},
};

static void test_flush_strategy_and_init_type(void)
{
    const struct {
        const char *kv;
        enum flush_strategy want;
    } strategies[] = {{"PYROSCOPE_FLUSH_STRATEGY=end", FLUSH_END},
                      {"PYROSCOPE_FLUSH_STRATEGY=next-invoke", FLUSH_NEXT_INVOKE},
                      {"PYROSCOPE_FLUSH_STRATEGY=AUTO", FLUSH_AUTO},
                      {"PYROSCOPE_FLUSH_STRATEGY=End", FLUSH_END}};
    for (size_t i = 0; i < ARRAY_LEN(strategies); i++) {
        struct config c;
        load1(&c, strategies[i].kv);
        CHECK(c.n_issues == 0 && c.flush_strategy == strategies[i].want);
        config_free(&c);
    }
    const struct {
        const char *kv;
        enum lambda_init_type want;
    } types[] = {
        {"AWS_LAMBDA_INITIALIZATION_TYPE=on-demand", INIT_ON_DEMAND},
        {"AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency", INIT_PROVISIONED_CONCURRENCY},
        {"AWS_LAMBDA_INITIALIZATION_TYPE=snap-start", INIT_SNAP_START},
        {"AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances", INIT_MANAGED_INSTANCES}};
    for (size_t i = 0; i < ARRAY_LEN(types); i++) {
        struct config c;
        load1(&c, types[i].kv);
        CHECK(c.n_issues == 0 && c.init_type == types[i].want);
        config_free(&c);
    }
}

static void test_each_invalid_value(void)
{
    for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
        const struct bad_case *b = &bad_cases[i];
        struct config c;
        load1(&c, b->kv);
        CHECK(c.n_issues == 1);
        const struct config_issue *is = &c.issues[0];
        CHECK_STR(is->variable, b->var);
        CHECK(is->level == b->level);
        CHECK_STR(is->value, b->value);
        CHECK_STR(is->default_value, b->default_value);
        CHECK(strstr(is->detail, b->detail_has) != NULL);
        if (c.n_issues != 1 || !strstr(is->detail, b->detail_has))
            fprintf(stderr, "  case %s: %zu issues, detail \"%s\"\n", b->kv, c.n_issues,
                    is->detail);
        check_defaults(&c); /* the default applies */
        config_free(&c);
    }
}

static void test_all_invalid_at_once(void)
{
    struct env e = {{NULL}};
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
        bool seen = false; /* one value per variable */
        for (size_t k = 0; k < n; k++)
            seen |= strncmp(e.kv[k], bad_cases[i].var, strlen(bad_cases[i].var)) == 0;
        if (!seen)
            e.kv[n++] = bad_cases[i].kv;
    }
    struct config c;
    CHECK(config_load(&c, lookup, &e) == 0);
    CHECK(c.n_issues == n);
    for (size_t k = 0; k < n; k++) {
        const char *eq = strchr(e.kv[k], '=');
        char var[64];
        snprintf(var, sizeof(var), "%.*s", (int)(eq - e.kv[k]), e.kv[k]);
        CHECK(issue_for(&c, var) != NULL);
    }
    check_defaults(&c);
    config_free(&c);
}

static void test_workers_capped(void)
{
    struct config c;
    load1(&c, "PYROSCOPE_NUM_WORKERS=100");
    CHECK(c.num_workers == 64 && c.n_issues == 1);
    CHECK(c.n_issues == 1 && c.issues[0].level == LOG_LEVEL_WARN);
    CHECK_STR(c.issues[0].variable, "PYROSCOPE_NUM_WORKERS");
    CHECK_STR(c.issues[0].value, "100");
    CHECK_STR(c.issues[0].default_value, "64");
    config_free(&c);
    load1(&c, "PYROSCOPE_NUM_WORKERS=64");
    CHECK(c.num_workers == 64 && c.n_issues == 0);
    config_free(&c);
    load1(&c, "PYROSCOPE_NUM_WORKERS=99999999999999999999"); /* past int64: not an integer */
    CHECK(c.num_workers == 5 && c.n_issues == 1);
    config_free(&c);
}

static void test_remote_address(void)
{
    struct config c;
    load1(&c, "PYROSCOPE_REMOTE_ADDRESS=https://profiles.example.com/");
    CHECK_STR(c.remote_address, "https://profiles.example.com");
    CHECK(c.n_issues == 0);
    config_free(&c);
    load1(&c, "PYROSCOPE_REMOTE_ADDRESS=HTTP://[::1]:4100///");
    CHECK_STR(c.remote_address, "http://[::1]:4100"); /* scheme in lower case */
    CHECK(c.n_issues == 0);
    config_free(&c);
    load1(&c, "PYROSCOPE_REMOTE_ADDRESS=https://user:pw@h.example/base");
    CHECK_STR(c.remote_address, "https://user:pw@h.example/base");
    config_free(&c);
    /* An invalid address may still hold credentials: they stay out of the issue and out of
     * the answer to clients. */
    load1(&c, "PYROSCOPE_REMOTE_ADDRESS=ftp://user:s3cr3t@h.example/x");
    CHECK(c.n_issues == 1 && issues_free_of(&c, "s3cr3t"));
    CHECK_STR(c.issues[0].value, "ftp://REDACTED@h.example/x");
    CHECK(c.refusal_variable && !strstr(c.refusal, "s3cr3t"));
    CHECK_STR(c.remote_address, "");
    config_free(&c);
}

/* An invalid remote address never falls back to the default: nothing is relayed, and the
 * refusal text names the variable, what is wrong and the fix. Only an unset variable means the
 * default. */
static void test_remote_refusal(void)
{
    static const struct {
        const char *kv, *why, *hint; /* hint: the "did you mean", or NULL for none */
    } cases[] = {
        {"PYROSCOPE_REMOTE_ADDRESS=profiles-prod-001.grafana.net", "not an http:// or https:// URL",
         "Did you mean https://profiles-prod-001.grafana.net ?"},
        {"PYROSCOPE_REMOTE_ADDRESS=ingest.example.com:4040", "not an http:// or https:// URL",
         "Did you mean https://ingest.example.com:4040 ?"},
        {"PYROSCOPE_REMOTE_ADDRESS=localhost:4100/base", "not an http:// or https:// URL",
         "Did you mean https://localhost:4100/base ?"},
        {"PYROSCOPE_REMOTE_ADDRESS=ftp://x", "not an http:// or https:// URL", NULL},
        {"PYROSCOPE_REMOTE_ADDRESS=htps://profiles.example.com", "not an http:// or https:// URL",
         NULL},
        {"PYROSCOPE_REMOTE_ADDRESS=garbage", "not an http:// or https:// URL", NULL},
        {"PYROSCOPE_REMOTE_ADDRESS=https://", "has no host", NULL},
        {"PYROSCOPE_REMOTE_ADDRESS=http:///base", "has no host", NULL},
        {"PYROSCOPE_REMOTE_ADDRESS=http://:4100", "has no host", NULL},
        {"PYROSCOPE_REMOTE_ADDRESS=http://h/?x=1", "query or fragment", NULL},
        {"PYROSCOPE_REMOTE_ADDRESS=http://a b", "space or a control character", NULL},
        {"PYROSCOPE_REMOTE_ADDRESS=", "set but empty", NULL},
        {"PYROSCOPE_REMOTE_ADDRESS=[::1]:4100", "not an http:// or https:// URL",
         "Did you mean https://[::1]:4100 ?"},
        {"PYROSCOPE_REMOTE_ADDRESS=user:s3cr3t@h.example", "not an http:// or https:// URL", NULL},
        {"PYROSCOPE_REMOTE_ADDRESS=h.example:99999999", "not an http:// or https:// URL", NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct config c;
        load1(&c, cases[i].kv);
        const struct config_issue *is = issue_for(&c, "PYROSCOPE_REMOTE_ADDRESS");
        CHECK(c.n_issues == 1 && is && is->level == LOG_LEVEL_ERROR);
        CHECK(is && strstr(is->detail, cases[i].why) && strstr(is->detail, "nothing is relayed"));
        CHECK(is && is->default_value[0] == '\0'); /* no default applies */
        CHECK_STR(c.remote_address, "");
        CHECK(c.refusal_variable && strcmp(c.refusal_variable, "PYROSCOPE_REMOTE_ADDRESS") == 0);
        CHECK(strstr(c.refusal, "PYROSCOPE_REMOTE_ADDRESS=\"") && strstr(c.refusal, cases[i].why));
        CHECK(strstr(c.refusal, "nothing is relayed until it is fixed"));
        CHECK(c.refusal[strlen(c.refusal) - 1] == '\n');
        if (cases[i].hint) {
            CHECK(strstr(c.refusal, cases[i].hint) && strstr(is->detail, cases[i].hint));
        } else {
            CHECK(!strstr(c.refusal, "Did you mean"));
        }
        CHECK(!strstr(c.refusal, "s3cr3t") && issues_free_of(&c, "s3cr3t"));
        if (!c.refusal_variable || !strstr(c.refusal, cases[i].why))
            fprintf(stderr, "  case %s: refusal \"%s\"\n", cases[i].kv, c.refusal);
        config_free(&c);
    }
    /* Unset: the documented default, and the relay works. */
    struct config c;
    struct env none = {{NULL}};
    CHECK(config_load(&c, lookup, &none) == 0);
    CHECK_STR(c.remote_address, CONFIG_DEFAULT_REMOTE);
    CHECK(c.refusal_variable == NULL && c.refusal[0] == '\0');
    config_free(&c);
    /* A long value is cut in the text, which still fits and ends with the fix. */
    char kv[700] = "PYROSCOPE_REMOTE_ADDRESS=";
    memset(kv + strlen(kv), 'h', 600);
    load1(&c, kv);
    CHECK(c.refusal_variable && strstr(c.refusal, "nothing is relayed until it is fixed.\n"));
    config_free(&c);
}

/* A token or tenant that cannot be sent is not dropped silently (the upload would go out under
 * the client's Authorization, or to the default tenant): nothing is relayed. */
static void test_identity_refusal(void)
{
    static const char *const kvs[] = {"PYROSCOPE_AUTH_TOKEN=tok-s3cr3t\n",
                                      "PYROSCOPE_TENANT_ID=tenant\r\nX-Evil: 1"};
    for (size_t i = 0; i < ARRAY_LEN(kvs); i++) {
        struct config c;
        load1(&c, kvs[i]);
        size_t var_len = (size_t)(strchr(kvs[i], '=') - kvs[i]);
        CHECK(c.refusal_variable && strncmp(c.refusal_variable, kvs[i], var_len) == 0);
        CHECK(strncmp(c.refusal, "pyroscope-lambda-extension: ", 28) == 0);
        CHECK(strstr(c.refusal, c.refusal_variable) && strstr(c.refusal, "nothing is relayed"));
        CHECK(!strstr(c.refusal, "s3cr3t") && !strstr(c.refusal, "Evil"));
        CHECK(strcmp(c.remote_address, CONFIG_DEFAULT_REMOTE) == 0);
        config_free(&c);
    }
    /* The first refusal is the one told to clients; every problem is an issue. */
    struct env e = {{"PYROSCOPE_REMOTE_ADDRESS=h.example", "PYROSCOPE_TENANT_ID=t\n", NULL}};
    struct config c;
    CHECK(config_load(&c, lookup, &e) == 0);
    CHECK_STR(c.refusal_variable, "PYROSCOPE_REMOTE_ADDRESS");
    CHECK(issue_for(&c, "PYROSCOPE_TENANT_ID") && c.n_issues == 2);
    config_free(&c);
    /* Values that only shape the uploads keep the relay working. */
    struct env ok = {
        {"PYROSCOPE_TIMEOUT=bad", "PYROSCOPE_HTTP_HEADERS={bad", "AWS_REGION=r\n", NULL}};
    CHECK(config_load(&c, lookup, &ok) == 0);
    CHECK(c.n_issues == 3 && c.refusal_variable == NULL);
    config_free(&c);
}

static void test_long_value_truncated(void)
{
    char kv[400] = "PYROSCOPE_LOG_LEVEL=";
    size_t n = strlen(kv);
    memset(kv + n, 'v', 300);
    kv[n + 300] = '\0';
    struct config c;
    load1(&c, kv);
    CHECK(c.n_issues == 1);
    CHECK(strlen(c.issues[0].value) == sizeof(c.issues[0].value) - 1);
    CHECK(strcmp(c.issues[0].value + sizeof(c.issues[0].value) - 4, "...") == 0);
    config_free(&c);
}

/* ---- PYROSCOPE_HTTP_HEADERS ---- */

static void load_headers(struct config *c, const char *json)
{
    char kv[512];
    snprintf(kv, sizeof(kv), "PYROSCOPE_HTTP_HEADERS=%s", json);
    load1(c, kv);
}

/* Every issue is an ERROR about PYROSCOPE_HTTP_HEADERS with no value shown and no secret. */
static void check_header_issues(const struct config *c, size_t n)
{
    CHECK(c->n_issues == n);
    for (size_t i = 0; i < c->n_issues; i++) {
        CHECK(c->issues[i].level == LOG_LEVEL_ERROR);
        CHECK_STR(c->issues[i].variable, "PYROSCOPE_HTTP_HEADERS");
        CHECK_STR(c->issues[i].value, "");
        CHECK(c->issues[i].detail[0] != '\0');
    }
    CHECK(issues_free_of(c, "s3cr3t"));
}

static void test_headers_invalid_json(void)
{
    struct config c;
    load_headers(&c, "{\"X-A\": \"s3cr3t"); /* jansson would quote the value near the error */
    check_header_issues(&c, 1);
    CHECK(c.n_http_headers == 0);
    CHECK(strstr(c.issues[0].detail, "invalid JSON at line 1 column") != NULL);
    CHECK_STR(c.issues[0].default_value, "{}");
    config_free(&c);

    load_headers(&c, "{\"X-A\": s3cr3t}");
    check_header_issues(&c, 1);
    CHECK(c.n_http_headers == 0 && strstr(c.issues[0].detail, "invalid JSON") != NULL);
    config_free(&c);

    const char *not_objects[] = {"[1,2]", "\"s3cr3t\"", "5", "null"};
    for (size_t i = 0; i < ARRAY_LEN(not_objects); i++) {
        load_headers(&c, not_objects[i]);
        check_header_issues(&c, 1);
        CHECK(c.n_http_headers == 0 && strstr(c.issues[0].detail, "not a JSON object") != NULL);
        config_free(&c);
    }

    load_headers(&c, "{}");
    CHECK(c.n_http_headers == 0 && c.n_issues == 0);
    config_free(&c);
}

static void test_headers_bad_entries_skipped(void)
{
    struct config c;
    load_headers(&c, "{\"Good\":\"v1\",\"bad name\":\"s3cr3t\",\"X-Num\":5,\"X-Null\":null,"
                     "\"X-Obj\":{\"k\":\"s3cr3t\"},\"X-Crlf\":\"a\\r\\nInjected: s3cr3t\","
                     "\"X-Lf\":\"s3cr3t\\n\",\"X-Nul\":\"s3cr3t\\u0000b\",\"Also-Good\":\"v2\"}");
    CHECK(c.n_http_headers == 2);
    if (c.n_http_headers == 2) {
        CHECK_STR(c.http_headers[0].name, "Good");
        CHECK_STR(c.http_headers[0].value, "v1");
        CHECK_STR(c.http_headers[1].name, "Also-Good");
        CHECK_STR(c.http_headers[1].value, "v2");
    }
    check_header_issues(&c, 7);
    CHECK(strstr(c.issues[0].detail, "\"bad\"... is not an RFC 7230 token") != NULL);
    CHECK(strstr(c.issues[1].detail, "X-Num has a value that is not a string") != NULL);
    CHECK(strstr(c.issues[2].detail, "X-Null") != NULL);
    CHECK(strstr(c.issues[3].detail, "X-Obj") != NULL);
    for (size_t i = 4; i < 7 && i < c.n_issues; i++)
        CHECK(strstr(c.issues[i].detail, "CR, LF or NUL") != NULL);
    config_free(&c);
}

static void test_headers_names(void)
{
    struct config c;
    /* A name shown only up to its first invalid character: the rest may be a secret. */
    load_headers(&c, "{\"Authorization: Bearer s3cr3t\":\"x\",\"\":\"x\",\"X(1)\":\"x\","
                     "\"X\\u00e9\":\"x\",\"X-Ok_1.~!#$%&'*+^`|\":\"x\"}");
    CHECK(c.n_http_headers == 1);
    if (c.n_http_headers == 1)
        CHECK_STR(c.http_headers[0].name, "X-Ok_1.~!#$%&'*+^`|");
    check_header_issues(&c, 4);
    CHECK(strstr(c.issues[0].detail, "\"Authorization\"...") != NULL);
    config_free(&c);

    /* Headers that describe the message or the connection belong to the relay. */
    load_headers(&c, "{\"Content-Length\":\"1\",\"host\":\"h\",\"Transfer-Encoding\":\"chunked\","
                     "\"Connection\":\"close\",\"Proxy-X\":\"p\",\"expect\":\"100-continue\","
                     "\"X-Ok\":\"v\"}");
    CHECK(c.n_http_headers == 1);
    if (c.n_http_headers == 1)
        CHECK_STR(c.http_headers[0].name, "X-Ok");
    check_header_issues(&c, 6);
    for (size_t i = 0; i < c.n_issues; i++)
        CHECK(strstr(c.issues[i].detail, "set by the relay itself") != NULL);
    config_free(&c);

    /* A repeated key: the last one wins, as in Go's map. */
    load_headers(&c, "{\"X-A\":\"1\",\"X-A\":\"2\"}");
    CHECK(c.n_http_headers == 1 && c.n_issues == 0);
    if (c.n_http_headers == 1)
        CHECK_STR(c.http_headers[0].value, "2");
    config_free(&c);
}

/* More problems than issue slots: the last slot says so. */
static void test_too_many_issues(void)
{
    char json[512] = "{";
    for (int i = 0; i < 30; i++)
        snprintf(json + strlen(json), sizeof(json) - strlen(json), "%s\"X-%d\":%d", i ? "," : "", i,
                 i);
    strcat(json, "}");
    struct config c;
    load_headers(&c, json);
    CHECK(c.n_issues == CONFIG_MAX_ISSUES && c.n_http_headers == 0);
    CHECK_STR(c.issues[CONFIG_MAX_ISSUES - 2].variable, "PYROSCOPE_HTTP_HEADERS");
    CHECK_STR(c.issues[CONFIG_MAX_ISSUES - 1].variable, "configuration");
    CHECK(strstr(c.issues[CONFIG_MAX_ISSUES - 1].detail, "more configuration problems") != NULL);
    config_free(&c);
}

static void test_secrets_absent_from_issues(void)
{
    struct env e = {{"PYROSCOPE_AUTH_TOKEN=tok-s3cr3t\r\n",
                     "PYROSCOPE_BASIC_AUTH_PASSWORD=pw-s3cr3t",
                     "PYROSCOPE_HTTP_HEADERS={\"X\":\"s3cr3t\",\"X-Y\":1,\"X\\nZ\":\"s3cr3t\"}",
                     "PYROSCOPE_TIMEOUT=bad", NULL}};
    struct config c;
    config_load(&c, lookup, &e);
    const struct config_issue *tok = issue_for(&c, "PYROSCOPE_AUTH_TOKEN");
    CHECK(tok && tok->level == LOG_LEVEL_ERROR && tok->value[0] == '\0');
    CHECK_STR(c.auth_token, ""); /* a token that would inject header lines is not used */
    CHECK(issue_for(&c, "PYROSCOPE_BASIC_AUTH_PASSWORD") == NULL);
    CHECK_STR(c.basic_auth_password, "pw-s3cr3t");
    CHECK(c.n_issues == 4 && issues_free_of(&c, "s3cr3t"));
    config_free(&c);
}

static void test_body_limit_fits_queue(void)
{
    struct env e = {{"PYROSCOPE_QUEUE_MAX_BYTES=4096", "PYROSCOPE_MAX_BODY_BYTES=100000", NULL}};
    struct config c;
    config_load(&c, lookup, &e);
    /* The queue counts each upload as its body plus 512 bytes. */
    CHECK(c.queue_max_bytes == 4096 && c.max_body_bytes == 4096 - 512);
    CHECK(c.n_issues == 1);
    const struct config_issue *is = issue_for(&c, "PYROSCOPE_MAX_BODY_BYTES");
    CHECK(is && is->level == LOG_LEVEL_WARN);
    CHECK(is && strcmp(is->value, "100000") == 0 && strcmp(is->default_value, "3584") == 0);
    config_free(&c);

    struct env small = {{"PYROSCOPE_QUEUE_MAX_BYTES=1024", NULL}}; /* default body: 8 MiB */
    config_load(&c, lookup, &small);
    CHECK(c.max_body_bytes == 512 && c.n_issues == 1);
    config_free(&c);
}

static void test_process_environment(void)
{
    setenv("PYROSCOPE_RELAY_PORT", "4555", 1);
    setenv("PYROSCOPE_TIMEOUT", "", 1);
    struct config c;
    CHECK(config_load(&c, config_getenv_process, NULL) == 0);
    CHECK(c.relay_port == 4555 && c.timeout_ns == 10000000000LL && c.n_issues == 0);
    config_free(&c);
    unsetenv("PYROSCOPE_RELAY_PORT");
    unsetenv("PYROSCOPE_TIMEOUT");
    CHECK(c.remote_address == NULL && c.n_issues == 0); /* config_free leaves it zeroed */
    config_free(&c);                                    /* and a second free is harmless */
}

static void test_trace_sampling(void)
{
    struct config c;
    load1(&c, "HOME=/");
    CHECK(c.trace_sample_threshold == -1); /* unset: relay everything */
    CHECK(!c.xray.enabled && c.xray.threshold == 0);
    CHECK_STR(c.xray.prefix, "");
    config_free(&c);

    load1(&c, "PYROSCOPE_TRACE_SAMPLE_THRESHOLD=655");
    CHECK(c.trace_sample_threshold == 655 && c.n_issues == 0);
    config_free(&c);
    const char *bad[] = {
        "PYROSCOPE_TRACE_SAMPLE_THRESHOLD=65536", "PYROSCOPE_TRACE_SAMPLE_THRESHOLD=-1",
        "PYROSCOPE_TRACE_SAMPLE_THRESHOLD=10%", "PYROSCOPE_TRACE_SAMPLE_THRESHOLD=0.1"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        load1(&c, bad[i]);
        const struct config_issue *is = issue_for(&c, "PYROSCOPE_TRACE_SAMPLE_THRESHOLD");
        CHECK(c.trace_sample_threshold == -1 && is && is->level == LOG_LEVEL_WARN);
        CHECK(is && strstr(is->detail, "65535") && strstr(is->default_value, "relay everything"));
        config_free(&c);
    }

    /* The archive: on with the threshold or the bucket, and the values are used (the seed reads
     * them and then ignores them). */
    struct env e = {{"XRAYPROFILE_THRESHOLD=6553", "XRAYPROFILE_S3_PREFIX=profiles",
                     "AWS_REGION=eu-west-1", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
                     "AWS_SECRET_ACCESS_KEY=s3cr3t", "AWS_SESSION_TOKEN=tok",
                     "XRAYPROFILE_S3_ENDPOINT=http://127.0.0.1:9000//", NULL}};
    CHECK(config_load(&c, lookup, &e) == 0);
    CHECK(c.xray.enabled && c.xray.threshold == 6553 && c.n_issues == 0);
    CHECK_STR(c.xray.prefix, "profiles/");
    CHECK_STR(c.xray.bucket, "");
    CHECK_STR(c.xray.region, "eu-west-1");
    CHECK_STR(c.xray.endpoint, "http://127.0.0.1:9000");
    CHECK_STR(c.xray.session_token, "tok");
    config_free(&c);

    struct env e2 = {{"XRAYPROFILE_S3_BUCKET=my-bucket", "XRAYPROFILE_S3_PREFIX=p/",
                      "AWS_DEFAULT_REGION=us-west-2", "AWS_ACCESS_KEY_ID=A",
                      "AWS_SECRET_ACCESS_KEY=S", NULL}};
    CHECK(config_load(&c, lookup, &e2) == 0);
    CHECK(c.xray.enabled && c.xray.threshold == 0 && c.n_issues == 0);
    CHECK_STR(c.xray.bucket, "my-bucket");
    CHECK_STR(c.xray.prefix, "p/");
    CHECK_STR(c.xray.region, "us-west-2");
    CHECK_STR(c.xray.session_token, "");
    config_free(&c);

    /* Each reason the archive cannot work turns it off with one error naming the variable. */
    struct {
        const char *kv[8];
        const char *var;
    } off[] = {
        {{"XRAYPROFILE_S3_BUCKET=Bad_Bucket", "AWS_REGION=r", "AWS_ACCESS_KEY_ID=A",
          "AWS_SECRET_ACCESS_KEY=S", NULL},
         "XRAYPROFILE_S3_BUCKET"},
        {{"XRAYPROFILE_THRESHOLD=1", "XRAYPROFILE_S3_ENDPOINT=127.0.0.1:9000", "AWS_REGION=r",
          "AWS_ACCESS_KEY_ID=A", "AWS_SECRET_ACCESS_KEY=S", NULL},
         "XRAYPROFILE_S3_ENDPOINT"},
        {{"XRAYPROFILE_THRESHOLD=1", "AWS_ACCESS_KEY_ID=A", "AWS_SECRET_ACCESS_KEY=S", NULL},
         "AWS_REGION"},
        {{"XRAYPROFILE_THRESHOLD=1", "AWS_REGION=r", "AWS_ACCESS_KEY_ID=A", NULL},
         "AWS_ACCESS_KEY_ID"},
        {{"XRAYPROFILE_THRESHOLD=1", "AWS_REGION=r", "AWS_SECRET_ACCESS_KEY=S", NULL},
         "AWS_ACCESS_KEY_ID"},
        {{"XRAYPROFILE_THRESHOLD=1", "AWS_REGION=r",
          "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://10.1.2.3/creds", NULL},
         "AWS_CONTAINER_CREDENTIALS_FULL_URI"},
        {{"XRAYPROFILE_THRESHOLD=1", "AWS_REGION=r",
          "AWS_CONTAINER_CREDENTIALS_FULL_URI=file:///etc/creds", NULL},
         "AWS_CONTAINER_CREDENTIALS_FULL_URI"},
        /* Set but empty is not the default: it says where the archive goes. */
        {{"XRAYPROFILE_THRESHOLD=1", "XRAYPROFILE_S3_BUCKET=", "AWS_REGION=r",
          "AWS_ACCESS_KEY_ID=A", "AWS_SECRET_ACCESS_KEY=S", NULL},
         "XRAYPROFILE_S3_BUCKET"},
        {{"XRAYPROFILE_S3_BUCKET=", "AWS_REGION=r", "AWS_ACCESS_KEY_ID=A",
          "AWS_SECRET_ACCESS_KEY=S", NULL},
         "XRAYPROFILE_S3_BUCKET"},
        {{"XRAYPROFILE_THRESHOLD=1", "XRAYPROFILE_S3_ENDPOINT=", "AWS_REGION=r",
          "AWS_ACCESS_KEY_ID=A", "AWS_SECRET_ACCESS_KEY=S", NULL},
         "XRAYPROFILE_S3_ENDPOINT"},
        {{"XRAYPROFILE_THRESHOLD=1", "XRAYPROFILE_S3_ENDPOINT=https://", "AWS_REGION=r",
          "AWS_ACCESS_KEY_ID=A", "AWS_SECRET_ACCESS_KEY=S", NULL},
         "XRAYPROFILE_S3_ENDPOINT"},
        {{"XRAYPROFILE_THRESHOLD=1", "XRAYPROFILE_S3_ENDPOINT=s3.example.com", "AWS_REGION=r",
          "AWS_ACCESS_KEY_ID=A", "AWS_SECRET_ACCESS_KEY=S", NULL},
         "XRAYPROFILE_S3_ENDPOINT"},
        /* The region is part of the AWS host name. */
        {{"XRAYPROFILE_THRESHOLD=1", "AWS_REGION=eu-west-1.evil.example#", "AWS_ACCESS_KEY_ID=A",
          "AWS_SECRET_ACCESS_KEY=S", NULL},
         "AWS_REGION"},
        {{"XRAYPROFILE_THRESHOLD=1", "AWS_DEFAULT_REGION=x/", "AWS_ACCESS_KEY_ID=A",
          "AWS_SECRET_ACCESS_KEY=S", NULL},
         "AWS_REGION"},
    };
    for (size_t i = 0; i < ARRAY_LEN(off); i++) {
        struct env oe = {{0}};
        memcpy(oe.kv, off[i].kv, sizeof(off[i].kv));
        CHECK(config_load(&c, lookup, &oe) == 0);
        const struct config_issue *is = issue_for(&c, off[i].var);
        CHECK(!c.xray.enabled && is && is->level == LOG_LEVEL_ERROR);
        CHECK(is && strstr(is->detail, "archive"));
        config_free(&c);
    }

    /* An invalid threshold keeps the archive on at the seed's default (1 in 65,536). */
    struct env e3 = {{"XRAYPROFILE_THRESHOLD=lots", "AWS_REGION=r", "AWS_ACCESS_KEY_ID=A",
                      "AWS_SECRET_ACCESS_KEY=S", NULL}};
    CHECK(config_load(&c, lookup, &e3) == 0);
    CHECK(c.xray.enabled && c.xray.threshold == 0 && issue_for(&c, "XRAYPROFILE_THRESHOLD"));
    config_free(&c);

    /* Without keys (SnapStart), the container credentials endpoint; keys win when both are set;
     * its token never reaches an issue. */
    struct env e5 = {{"XRAYPROFILE_THRESHOLD=1", "AWS_REGION=r",
                      "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9001/2021-04-23/creds",
                      "AWS_CONTAINER_AUTHORIZATION_TOKEN=secret-auth",
                      "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/run/token", NULL}};
    CHECK(config_load(&c, lookup, &e5) == 0);
    CHECK(c.xray.enabled && c.n_issues == 0);
    CHECK_STR(c.xray.container_uri, "http://127.0.0.1:9001/2021-04-23/creds");
    CHECK_STR(c.xray.container_token, "secret-auth");
    CHECK_STR(c.xray.container_token_file, "/run/token");
    config_free(&c);
    struct env e6 = {{"XRAYPROFILE_THRESHOLD=1", "AWS_REGION=r", "AWS_ACCESS_KEY_ID=A",
                      "AWS_SECRET_ACCESS_KEY=S", "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://x/",
                      "AWS_CONTAINER_AUTHORIZATION_TOKEN=bad\nsecret-auth", NULL}};
    CHECK(config_load(&c, lookup, &e6) == 0);
    CHECK(c.xray.enabled && issue_for(&c, "AWS_CONTAINER_AUTHORIZATION_TOKEN"));
    CHECK(issues_free_of(&c, "secret-auth") &&
          !issue_for(&c, "AWS_CONTAINER_CREDENTIALS_FULL_URI"));
    config_free(&c);

    /* Credentials never reach an issue, and a token with a line break is refused. */
    struct env e4 = {{"XRAYPROFILE_THRESHOLD=1", "AWS_REGION=r", "AWS_ACCESS_KEY_ID=A",
                      "AWS_SECRET_ACCESS_KEY=S", "AWS_SESSION_TOKEN=to\r\nX-Evil: 1", NULL}};
    CHECK(config_load(&c, lookup, &e4) == 0);
    CHECK(issue_for(&c, "AWS_SESSION_TOKEN") && issues_free_of(&c, "Evil"));
    CHECK_STR(c.xray.session_token, "");
    config_free(&c);
}

int main(void)
{
    test_defaults();
    test_empty_means_default();
    test_values();
    test_log_strings_owned();
    test_flush_strategy_and_init_type();
    test_each_invalid_value();
    test_all_invalid_at_once();
    test_workers_capped();
    test_remote_address();
    test_remote_refusal();
    test_identity_refusal();
    test_long_value_truncated();
    test_headers_invalid_json();
    test_headers_bad_entries_skipped();
    test_headers_names();
    test_too_many_issues();
    test_secrets_absent_from_issues();
    test_body_limit_fits_queue();
    test_process_environment();
    test_trace_sampling();
    return check_summary("test_config");
}
