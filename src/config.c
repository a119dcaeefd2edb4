/* Environment -> struct config. See include/config.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "gofmt.h"
#include "rewrite.h"

struct loader {
    struct config *c;
    config_getenv_fn getenv_fn;
    void *ud;
};

/* An unset or empty variable means "use the default", as in the Go extension. */
static const char *get(const struct loader *l, const char *name)
{
    const char *v = l->getenv_fn(l->ud, name);
    return v && *v ? v : NULL;
}

static void add_issue(struct config *c, enum log_level level, const char *var, const char *value,
                      const char *default_value, const char *detail)
{
    if (c->n_issues == CONFIG_MAX_ISSUES)
        return;
    struct config_issue *is = &c->issues[c->n_issues++];
    is->level = level;
    is->variable = var;
    snprintf(is->value, sizeof(is->value), "%s", value ? value : "");
    snprintf(is->default_value, sizeof(is->default_value), "%s",
             default_value ? default_value : "");
    snprintf(is->detail, sizeof(is->detail), "%s", detail);
}

static char *get_string(const struct loader *l, const char *name, const char *def)
{
    const char *v = get(l, name);
    return strdup(v ? v : def);
}

static bool get_bool(const struct loader *l, const char *name, bool def)
{
    const char *v = get(l, name);
    bool out = def;
    if (v && !go_parse_bool(v, &out))
        add_issue(l->c, LOG_LEVEL_WARN, name, v, def ? "true" : "false",
                  "not a bool (1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False)");
    return out;
}

static long long get_int(const struct loader *l, const char *name, long long def, long long min,
                         long long max)
{
    const char *v = get(l, name);
    long long out;
    if (!v)
        return def;
    char dflt[32], detail[96];
    snprintf(dflt, sizeof(dflt), "%lld", def);
    if (!go_parse_int(v, &out)) {
        add_issue(l->c, LOG_LEVEL_WARN, name, v, dflt, "not an integer");
        return def;
    }
    if (out < min || out > max) {
        snprintf(detail, sizeof(detail), "out of range %lld..%lld", min, max);
        add_issue(l->c, LOG_LEVEL_WARN, name, v, dflt, detail);
        return def;
    }
    return out;
}

static int64_t get_duration(const struct loader *l, const char *name, int64_t def_ns,
                            const char *def_text)
{
    const char *v = get(l, name);
    int64_t out;
    if (!v)
        return def_ns;
    if (!go_parse_duration(v, &out)) {
        add_issue(l->c, LOG_LEVEL_WARN, name, v, def_text,
                  "not a Go duration (for example 10s, 250ms, 1m30s)");
        return def_ns;
    }
    if (out <= 0) {
        add_issue(l->c, LOG_LEVEL_WARN, name, v, def_text, "must be greater than zero");
        return def_ns;
    }
    return out;
}

static void load_remote(const struct loader *l)
{
    struct config *c = l->c;
    const char *v = get(l, "PYROSCOPE_REMOTE_ADDRESS");
    const char *addr = v ? v : CONFIG_DEFAULT_REMOTE;
    const char *host = strncmp(addr, "http://", 7) == 0    ? addr + 7
                       : strncmp(addr, "https://", 8) == 0 ? addr + 8
                                                           : NULL;
    if (!host || !*host || *host == '/' || strpbrk(addr, " \t\r\n")) {
        add_issue(c, LOG_LEVEL_ERROR, "PYROSCOPE_REMOTE_ADDRESS", addr, CONFIG_DEFAULT_REMOTE,
                  "not an http:// or https:// URL with a host");
        addr = CONFIG_DEFAULT_REMOTE;
    }
    c->remote_address = strdup(addr);
    size_t n = c->remote_address ? strlen(c->remote_address) : 0;
    while (n > 0 && c->remote_address[n - 1] == '/')
        c->remote_address[--n] = '\0';
}

/* RFC 7230 token characters: what a header name may hold. */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!(*s > 32 && *s < 127 && !strchr("\"(),/:;<=>?@[\\]{}", *s)))
            return false;
    return true;
}

/* Headers that describe the message or the connection, not the request: a configured value
 * would corrupt every upload. */
static bool reserved_header(const char *name)
{
    static const char *const names[] = {"Content-Length", "Host", "Expect"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    return header_is_hop_by_hop(name, strlen(name));
}

/* PYROSCOPE_HTTP_HEADERS: a JSON object of strings. Values may be secrets: never in an issue. */
static void load_http_headers(const struct loader *l)
{
    struct config *c = l->c;
    const char *v = get(l, "PYROSCOPE_HTTP_HEADERS");
    if (!v)
        return;
    char detail[160];
    json_error_t err;
    json_t *obj = json_loads(v, JSON_REJECT_DUPLICATES, &err);
    if (!obj || !json_is_object(obj)) {
        if (obj)
            snprintf(detail, sizeof(detail), "not a JSON object of strings");
        else
            snprintf(detail, sizeof(detail), "invalid JSON at line %d column %d: %.80s", err.line,
                     err.column, err.text);
        add_issue(c, LOG_LEVEL_ERROR, "PYROSCOPE_HTTP_HEADERS", NULL, "{}", detail);
        json_decref(obj);
        return;
    }
    c->http_headers = calloc(json_object_size(obj) + 1, sizeof(*c->http_headers));
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        const char *s = json_string_value(val);
        const char *why = !is_token(key)         ? "is not a valid header name"
                          : reserved_header(key) ? "is set by the relay itself"
                          : !s                   ? "has a value that is not a string"
                          : strpbrk(s, "\r\n") || strlen(s) != json_string_length(val)
                              ? "has a value with CR, LF or NUL"
                              : NULL;
        if (why) {
            snprintf(detail, sizeof(detail), "header %.60s %s; skipped", key, why);
            add_issue(c, LOG_LEVEL_ERROR, "PYROSCOPE_HTTP_HEADERS", NULL, "", detail);
            continue;
        }
        if (!c->http_headers)
            break;
        struct config_header *h = &c->http_headers[c->n_http_headers++];
        h->name = strdup(key);
        h->value = strdup(s);
    }
    json_decref(obj);
}

static void load_log(const struct loader *l)
{
    struct config *c = l->c;
    struct log_options *o = &c->log;
    log_options_default(o);
    const char *lv = get(l, "PYROSCOPE_LOG_LEVEL");
    if (lv && !log_level_parse(lv, &o->level))
        add_issue(c, LOG_LEVEL_WARN, "PYROSCOPE_LOG_LEVEL", lv, "info",
                  "not a level (error, warn, info, debug, trace)");
    const char *fmt = get(l, "PYROSCOPE_LOG_FORMAT");
    if (fmt && strcasecmp(fmt, "json") == 0)
        o->format = LOG_FORMAT_JSON;
    else if (fmt && strcasecmp(fmt, "text") != 0)
        add_issue(c, LOG_LEVEL_WARN, "PYROSCOPE_LOG_FORMAT", fmt, "text", "not text or json");
    o->timestamp_disable = get_bool(l, "PYROSCOPE_LOG_TIMESTAMP_DISABLE", false);
    static const struct {
        const char *var, *def;
        size_t offset;
    } strings[] = {
        {"PYROSCOPE_LOG_TIMESTAMP_FORMAT", GO_RFC3339,
         offsetof(struct log_options, timestamp_layout)},
        {"PYROSCOPE_LOG_TIMESTAMP_FIELD_NAME", "time", offsetof(struct log_options, field_time)},
        {"PYROSCOPE_LOG_LEVEL_FIELD_NAME", "level", offsetof(struct log_options, field_level)},
        {"PYROSCOPE_LOG_MSG_FIELD_NAME", "msg", offsetof(struct log_options, field_msg)},
        {"PYROSCOPE_LOG_LOGRUS_ERROR_FIELD_NAME", "logrus_error",
         offsetof(struct log_options, field_logrus_error)},
        {"PYROSCOPE_LOG_FUNC_FIELD_NAME", "func", offsetof(struct log_options, field_func)},
        {"PYROSCOPE_LOG_FILE_FIELD_NAME", "file", offsetof(struct log_options, field_file)},
    };
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        c->owned_log_strings[i] = get_string(l, strings[i].var, strings[i].def);
        *(const char **)((char *)o + strings[i].offset) = c->owned_log_strings[i];
    }
}

int config_load(struct config *c, config_getenv_fn getenv_fn, void *ud)
{
    *c = (struct config){0};
    struct loader l = {c, getenv_fn, ud};
    load_remote(&l);
    c->auth_token = get_string(&l, "PYROSCOPE_AUTH_TOKEN", "");
    c->self_profiling = get_bool(&l, "PYROSCOPE_SELF_PROFILING", false);
    c->timeout_ns = get_duration(&l, "PYROSCOPE_TIMEOUT", 10000000000LL, "10s");
    c->num_workers = (int)get_int(&l, "PYROSCOPE_NUM_WORKERS", 5, 1, 64);
    c->flush_on_invoke = get_bool(&l, "PYROSCOPE_FLUSH_ON_INVOKE", false);
    load_http_headers(&l);
    c->tenant_id = get_string(&l, "PYROSCOPE_TENANT_ID", "");
    c->basic_auth_user = get_string(&l, "PYROSCOPE_BASIC_AUTH_USER", "");
    c->basic_auth_password = get_string(&l, "PYROSCOPE_BASIC_AUTH_PASSWORD", "");
    load_log(&l);

    c->dev_mode = get_bool(&l, "PYROSCOPE_DEV_MODE", false);
    c->relay_port = (uint16_t)get_int(&l, "PYROSCOPE_RELAY_PORT", 4040, 1, 65535);
    c->queue_max_count = (size_t)get_int(&l, "PYROSCOPE_QUEUE_MAX_COUNT", 256, 1, 1000000);
    c->queue_max_bytes =
        (size_t)get_int(&l, "PYROSCOPE_QUEUE_MAX_BYTES", 32 << 20, 1024, (long long)1 << 40);
    c->max_body_bytes =
        (size_t)get_int(&l, "PYROSCOPE_MAX_BODY_BYTES", 8 << 20, 1, (long long)1 << 40);
    c->max_retries = (int)get_int(&l, "PYROSCOPE_MAX_RETRIES", 3, 0, 20);
    c->max_header_bytes =
        (size_t)get_int(&l, "PYROSCOPE_MAX_HEADER_BYTES", 64 << 10, 1024, 16 << 20);
    c->max_connections = (size_t)get_int(&l, "PYROSCOPE_MAX_CONNECTIONS", 128, 1, 100000);
    c->client_timeout_ns = get_duration(&l, "PYROSCOPE_CLIENT_TIMEOUT", 10000000000LL, "10s");
    if (c->max_body_bytes + 512 > c->queue_max_bytes) {
        char v[32], d[32];
        snprintf(v, sizeof(v), "%zu", c->max_body_bytes);
        c->max_body_bytes = c->queue_max_bytes - 512;
        snprintf(d, sizeof(d), "%zu", c->max_body_bytes);
        add_issue(c, LOG_LEVEL_WARN, "PYROSCOPE_MAX_BODY_BYTES", v, d,
                  "larger than PYROSCOPE_QUEUE_MAX_BYTES allows; lowered to fit");
    }
    if (!c->remote_address || !c->auth_token || !c->tenant_id || !c->basic_auth_user ||
        !c->basic_auth_password)
        return -1;
    return 0;
}

const char *config_getenv_process(void *ud, const char *name)
{
    (void)ud;
    return getenv(name);
}

void config_free(struct config *c)
{
    free(c->remote_address);
    free(c->auth_token);
    free(c->tenant_id);
    free(c->basic_auth_user);
    free(c->basic_auth_password);
    for (size_t i = 0; i < c->n_http_headers; i++) {
        free(c->http_headers[i].name);
        free(c->http_headers[i].value);
    }
    free(c->http_headers);
    for (size_t i = 0; i < sizeof(c->owned_log_strings) / sizeof(c->owned_log_strings[0]); i++)
        free(c->owned_log_strings[i]);
    *c = (struct config){0};
}
