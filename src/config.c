/* Environment -> struct config. See include/config.h.
 *
 * Every variable is read through one of the get_* helpers below: an unset or empty variable
 * silently means the default (as in the Go extension), an invalid one records one issue and
 * means the default. Secrets never reach an issue. */
#include "config.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "gofmt.h"
#include "queue.h"
#include "rewrite.h"
#include "util.h"
#include "awscreds.h"
#include "xray.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NS_PER_SEC 1000000000LL
#define MAX_WORKERS 64

struct loader {
    struct config *c;
    config_getenv_fn getenv_fn;
    void *ud;
    bool oom;
};

/* ---- issues ---- */

/* Copies src into dst, marking a cut with "..." and never cutting a UTF-8 character in two. */
static void copy_truncated(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n < cap) {
        memcpy(dst, src, n + 1);
        return;
    }
    n = cap - 4;
    while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
        n--; /* back to the start of the character that would be cut */
    memcpy(dst, src, n);
    memcpy(dst + n, "...", 4);
}

static void add_issue(struct config *c, enum log_level level, const char *var, const char *value,
                      const char *default_value, const char *detail)
{
    if (c->n_issues == CONFIG_MAX_ISSUES)
        return;
    if (c->n_issues == CONFIG_MAX_ISSUES - 1) {
        /* The last slot says that some were dropped rather than silently losing them. */
        level = LOG_LEVEL_ERROR;
        var = "configuration";
        value = default_value = "";
        detail = "more configuration problems than can be listed; fix the ones above first";
    }
    struct config_issue *is = &c->issues[c->n_issues++];
    is->level = level;
    is->variable = var;
    copy_truncated(is->value, sizeof(is->value), value ? value : "");
    copy_truncated(is->default_value, sizeof(is->default_value),
                   default_value ? default_value : "");
    copy_truncated(is->detail, sizeof(is->detail), detail);
}

/* Nothing is relayed: every push is answered with a message that names var and the fix. Only
 * the first such problem is told to clients (all of them are logged as issues). */
static void refuse_relay(struct config *c, const char *var, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse_relay(struct config *c, const char *var, const char *fmt, ...)
{
    if (c->refusal_variable)
        return;
    c->refusal_variable = var;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->refusal, sizeof(c->refusal), fmt, ap);
    va_end(ap);
}

#define NOTHING_RELAYED "nothing is relayed until it is fixed"

/* ---- plain values ---- */

/* An unset or empty variable means "use the default", as in the Go extension. */
static const char *get(const struct loader *l, const char *name)
{
    const char *v = l->getenv_fn(l->ud, name);
    return v && *v ? v : NULL;
}

static char *dup(struct loader *l, const char *s)
{
    char *d = strdup(s);
    if (!d)
        l->oom = true;
    return d;
}

static char *get_string(struct loader *l, const char *name, const char *def)
{
    const char *v = get(l, name);
    return dup(l, v ? v : def);
}

/* A value that goes into an HTTP header line as it is (the token, the tenant): a CR or LF would
 * inject headers into every upload and other control characters are not allowed in a header.
 * Such a value is refused; a secret's value is left out of the issue. identity: the value says
 * under whose name profiles are sent (token, tenant): without it they would go out under
 * another one (the client's Authorization, the default tenant), so nothing is relayed. */
static char *get_header_string(struct loader *l, const char *name, bool secret, bool identity)
{
    const char *v = get(l, name);
    for (const char *p = v; p && *p; p++) {
        if (iscntrl((unsigned char)*p) && *p != '\t') {
            add_issue(l->c, LOG_LEVEL_ERROR, name, secret ? NULL : v, "",
                      identity ? "contains CR, LF or another control character (a trailing "
                                 "newline?); " NOTHING_RELAYED
                               : "contains CR, LF or another control character; not used");
            if (identity)
                refuse_relay(l->c, name,
                             "pyroscope-lambda-extension: %s contains CR, LF or another control "
                             "character (a trailing newline?). Remove it from the function's "
                             "environment; " NOTHING_RELAYED ", so that no profile is sent "
                             "under another identity.\n",
                             name);
            v = NULL;
            break;
        }
    }
    return dup(l, v ? v : "");
}

static bool get_bool(struct loader *l, const char *name, bool def)
{
    const char *v = get(l, name);
    bool out = def;
    if (v && !go_parse_bool(v, &out))
        add_issue(l->c, LOG_LEVEL_WARN, name, v, def ? "true" : "false",
                  "not a Go bool (1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False)");
    return out;
}

/* An integer in [min, max]; LLONG_MAX as max means "no upper bound". */
static long long get_int(struct loader *l, const char *name, long long def, long long min,
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
    if (out >= min && out <= max)
        return out;
    if (max == LLONG_MAX)
        snprintf(detail, sizeof(detail), "must be at least %lld", min);
    else
        snprintf(detail, sizeof(detail), "must be between %lld and %lld", min, max);
    add_issue(l->c, LOG_LEVEL_WARN, name, v, dflt, detail);
    return def;
}

/* A Go duration greater than zero. */
static int64_t get_duration(struct loader *l, const char *name, int64_t def_ns,
                            const char *def_text)
{
    const char *v = get(l, name);
    int64_t out;
    if (!v)
        return def_ns;
    if (!go_parse_duration(v, &out)) {
        add_issue(l->c, LOG_LEVEL_WARN, name, v, def_text,
                  "not a Go duration (e.g. 10s, 250ms, 1m30s)");
        return def_ns;
    }
    if (out <= 0) {
        add_issue(l->c, LOG_LEVEL_WARN, name, v, def_text, "must be greater than zero");
        return def_ns;
    }
    return out;
}

/* ---- PYROSCOPE_REMOTE_ADDRESS ---- */

/* The URL for an issue, with any "user:password@" replaced: it may hold credentials. */
static void redact_userinfo(char *out, size_t cap, const char *url)
{
    const char *scheme_end = strstr(url, "://");
    const char *auth = scheme_end ? scheme_end + 3 : url;
    const char *auth_end = auth + strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', (size_t)(auth_end - auth));
    if (!at)
        snprintf(out, cap, "%s", url);
    else
        snprintf(out, cap, "%.*sREDACTED%s", (int)(auth - url), url, at);
}

/* Why url is not usable as the remote, or NULL. */
static const char *remote_problem(const char *url)
{
    size_t scheme = strncasecmp(url, "http://", 7) == 0    ? 7
                    : strncasecmp(url, "https://", 8) == 0 ? 8
                                                           : 0;
    if (!scheme)
        return "not an http:// or https:// URL";
    for (const char *p = url; *p; p++)
        if (iscntrl((unsigned char)*p) || *p == ' ')
            return "contains a space or a control character";
    if (strpbrk(url, "?#"))
        return "has a query or fragment; the relay appends each request's own path and query";
    /* The host is what is left of the authority without "user:password@" and ":port". */
    const char *auth = url + scheme;
    size_t auth_len = strcspn(auth, "/");
    const char *at = memchr(auth, '@', auth_len);
    const char *host = at ? at + 1 : auth;
    if (host == auth + auth_len || *host == ':')
        return "has no host";
    return NULL;
}

/* "host", "host:port" or "host:port/path" with a plausible host name or [IPv6]: what a user who
 * forgot the scheme typed. */
static bool looks_like_host(const char *v)
{
    size_t host_len = v[0] == '[' ? strcspn(v, "]") + 1
                                  : strspn(v, "abcdefghijklmnopqrstuvwxyz"
                                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789.-_");
    if (host_len == 0 || (v[0] == '[' && v[host_len - 1] != ']'))
        return false;
    bool dotted = v[0] == '[' || memchr(v, '.', host_len) || strncasecmp(v, "localhost", 9) == 0;
    const char *p = v + host_len;
    if (*p == ':') {
        size_t digits = strspn(p + 1, "0123456789");
        if (digits == 0 || digits > 5)
            return false;
        p += 1 + digits;
    }
    return dotted && (*p == '\0' || *p == '/') && !strpbrk(p, " \t\r\n@?#");
}

/* An unset variable means the documented default. A value that is set but unusable, empty
 * included, never does: the default would receive the profiles, with the user's token or
 * password, at a host the user did not name. */
static void load_remote(struct loader *l)
{
    static const char *const var = "PYROSCOPE_REMOTE_ADDRESS";
    struct config *c = l->c;
    const char *v = l->getenv_fn(l->ud, var);
    const char *why = !v ? NULL : !*v ? "set but empty" : remote_problem(v);
    if (why) {
        char shown[sizeof(c->issues[0].value) + 16], hint[160] = "";
        redact_userinfo(shown, sizeof(shown), v);
        if (*v && !strstr(v, "://") && looks_like_host(v))
            snprintf(hint, sizeof(hint), " Did you mean https://%.120s ?", shown);
        char detail[sizeof(hint) + 128]; /* add_issue cuts it to fit */
        snprintf(detail, sizeof(detail), "%s;%s %s", why, hint, NOTHING_RELAYED);
        add_issue(c, LOG_LEVEL_ERROR, var, shown, "", detail);
        refuse_relay(c, var,
                     "pyroscope-lambda-extension: %s=\"%.120s\" is not usable: %s.%s Set %s to "
                     "the http:// or https:// URL of your Pyroscope server (for example "
                     "https://profiles-prod-001.grafana.net), or unset it for the default "
                     "%s; " NOTHING_RELAYED ".\n",
                     var, shown, why, hint, var, CONFIG_DEFAULT_REMOTE);
        c->remote_address = dup(l, "");
        return;
    }
    char *addr = dup(l, v ? v : CONFIG_DEFAULT_REMOTE);
    if (!addr)
        return;
    /* The relay appends each request's path, which starts with '/'. */
    size_t n = strlen(addr);
    while (n > 0 && addr[n - 1] == '/')
        addr[--n] = '\0';
    /* "HTTPS://" is valid: store the scheme in lower case for whoever compares it. */
    for (char *p = addr; *p != ':'; p++)
        *p = (char)tolower((unsigned char)*p);
    c->remote_address = addr;
}

/* ---- PYROSCOPE_HTTP_HEADERS ---- */

/* RFC 7230 tchar: what a header name is made of. Returns the offset of the first byte that is
 * not one, or the length when the whole name is a token. */
static size_t token_prefix(const char *s)
{
    size_t i = 0;
    for (; s[i]; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 32 || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch))
            break;
    }
    return i;
}

/* Headers that describe the message or the connection rather than the request: a configured
 * value would corrupt every upload, so curl and the relay own them. */
static bool reserved_header(const char *name)
{
    static const char *const names[] = {"Content-Length", "Host", "Expect"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    return header_is_hop_by_hop(name, strlen(name));
}

static bool has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (iscntrl((unsigned char)s[i]) && s[i] != '\t')
            return true;
    return false;
}

/* What is wrong with one entry, written into why; false when it is fine. The value is never
 * described, and an invalid name is shown only up to its first invalid character (a name like
 * "Authorization: Bearer x" must not leak the rest). */
static bool header_problem(const char *key, json_t *val, char *why, size_t cap)
{
    size_t ok_len = token_prefix(key);
    const char *s = json_string_value(val);
    if (ok_len == 0 || key[ok_len])
        snprintf(why, cap, "header name \"%.*s\"%s is not an RFC 7230 token; entry skipped",
                 (int)(ok_len > 60 ? 60 : ok_len), key, key[ok_len] ? "..." : "");
    else if (reserved_header(key))
        snprintf(why, cap, "header %.60s is set by the relay itself; entry skipped", key);
    else if (!s)
        snprintf(why, cap, "header %.60s has a value that is not a string; entry skipped", key);
    else if (has_control(s, json_string_length(val)))
        snprintf(why, cap,
                 "header %.60s has a value with CR, LF or NUL (or another control "
                 "character); entry skipped",
                 key);
    else
        return false;
    return true;
}

/* jansson's message without its " near '<text>'" part, which may quote a header value. */
static void json_error_detail(char *out, size_t cap, const json_error_t *err)
{
    char text[JSON_ERROR_TEXT_LENGTH];
    snprintf(text, sizeof(text), "%s", err->text);
    char *near = strstr(text, " near ");
    if (near)
        *near = '\0';
    snprintf(out, cap, "invalid JSON at line %d column %d: %.80s; no extra headers are sent",
             err->line, err->column, text);
}

static void add_header(struct loader *l, const char *name, json_t *val)
{
    struct config *c = l->c;
    struct config_header *h = &c->http_headers[c->n_http_headers];
    /* NUL-free (checked), so the C string is the whole value. */
    h->name = dup(l, name);
    h->value = dup(l, json_string_value(val));
    c->n_http_headers++;
}

/* A JSON object of strings. Its values may be secrets: never in an issue. */
static void load_http_headers(struct loader *l)
{
    static const char *const var = "PYROSCOPE_HTTP_HEADERS";
    struct config *c = l->c;
    const char *v = get(l, "PYROSCOPE_HTTP_HEADERS");
    if (!v)
        return;
    char why[160];
    json_error_t err;
    /* JSON_ALLOW_NUL: a "\u0000" in a value is reported as such below, not as bad JSON. */
    json_t *obj = json_loads(v, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!obj || !json_is_object(obj)) {
        if (obj)
            snprintf(why, sizeof(why), "not a JSON object; no extra headers are sent");
        else
            json_error_detail(why, sizeof(why), &err);
        add_issue(c, LOG_LEVEL_ERROR, var, NULL, "{}", why);
        json_decref(obj);
        return;
    }
    if (json_object_size(obj) > 0 &&
        !(c->http_headers = calloc(json_object_size(obj), sizeof(*c->http_headers))))
        l->oom = true;
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        if (!c->http_headers)
            break;
        if (header_problem(key, val, why, sizeof(why)))
            add_issue(c, LOG_LEVEL_ERROR, var, NULL, "", why);
        else
            add_header(l, key, val);
    }
    json_decref(obj);
}

/* ---- logging ---- */

static void load_log_level_and_format(struct loader *l, struct log_options *o)
{
    const char *lv = get(l, "PYROSCOPE_LOG_LEVEL");
    if (lv && !log_level_parse(lv, &o->level))
        add_issue(l->c, LOG_LEVEL_WARN, "PYROSCOPE_LOG_LEVEL", lv, "info",
                  "not a log level (error, warn, info, debug, trace)");
    const char *fmt = get(l, "PYROSCOPE_LOG_FORMAT");
    if (fmt && strcasecmp(fmt, "json") == 0)
        o->format = LOG_FORMAT_JSON;
    else if (fmt && strcasecmp(fmt, "text") != 0)
        add_issue(l->c, LOG_LEVEL_WARN, "PYROSCOPE_LOG_FORMAT", fmt, "text",
                  "not a log format (text or json)");
}

/* The layout and the six field names: copies owned by the config, pointed to by c->log. */
static void load_log_strings(struct loader *l, struct log_options *o)
{
    const struct {
        const char *var, *def;
        const char **field;
    } strings[] = {
        {"PYROSCOPE_LOG_TIMESTAMP_FORMAT", GO_RFC3339, &o->timestamp_layout},
        {"PYROSCOPE_LOG_TIMESTAMP_FIELD_NAME", "time", &o->field_time},
        {"PYROSCOPE_LOG_LEVEL_FIELD_NAME", "level", &o->field_level},
        {"PYROSCOPE_LOG_MSG_FIELD_NAME", "msg", &o->field_msg},
        {"PYROSCOPE_LOG_LOGRUS_ERROR_FIELD_NAME", "logrus_error", &o->field_logrus_error},
        {"PYROSCOPE_LOG_FUNC_FIELD_NAME", "func", &o->field_func},
        {"PYROSCOPE_LOG_FILE_FIELD_NAME", "file", &o->field_file},
    };
    _Static_assert(ARRAY_LEN(strings) == ARRAY_LEN(((struct config *)0)->owned_log_strings),
                   "one owned copy per string");
    for (size_t i = 0; i < ARRAY_LEN(strings); i++) {
        char *s = get_string(l, strings[i].var, strings[i].def);
        l->c->owned_log_strings[i] = s;
        *strings[i].field = s ? s : strings[i].def;
    }
}

static void load_log(struct loader *l)
{
    struct log_options *o = &l->c->log;
    log_options_default(o);
    o->timestamp_utc = true; /* Lambda's clock is UTC; the Go extension prints UTC there too */
    load_log_level_and_format(l, o);
    o->timestamp_disable = get_bool(l, "PYROSCOPE_LOG_TIMESTAMP_DISABLE", false);
    load_log_strings(l, o);
}

/* ---- the seed's table and ours ---- */

static void load_seed_table(struct loader *l)
{
    struct config *c = l->c;
    load_remote(l);
    c->auth_token = get_header_string(l, "PYROSCOPE_AUTH_TOKEN", true, true);
    c->self_profiling = get_bool(l, "PYROSCOPE_SELF_PROFILING", false);
    c->timeout_ns = get_duration(l, "PYROSCOPE_TIMEOUT", 10 * NS_PER_SEC, "10s");
    long long workers = get_int(l, "PYROSCOPE_NUM_WORKERS", 5, 1, LLONG_MAX);
    if (workers > MAX_WORKERS) {
        add_issue(c, LOG_LEVEL_WARN, "PYROSCOPE_NUM_WORKERS", get(l, "PYROSCOPE_NUM_WORKERS"), "64",
                  "more than 64 workers; capped at 64");
        workers = MAX_WORKERS;
    }
    c->num_workers = (int)workers;
    c->flush_on_invoke = get_bool(l, "PYROSCOPE_FLUSH_ON_INVOKE", false);
    load_http_headers(l);
    c->tenant_id = get_header_string(l, "PYROSCOPE_TENANT_ID", false, true);
    /* Basic auth is base64-encoded before it reaches a header: any byte is safe. */
    c->basic_auth_user = get_string(l, "PYROSCOPE_BASIC_AUTH_USER", "");
    c->basic_auth_password = get_string(l, "PYROSCOPE_BASIC_AUTH_PASSWORD", "");
    load_log(l);
}

/* queue.c counts an upload as its body plus QUEUE_ENTRY_OVERHEAD bytes: a body limit above
 * what the queue can hold would accept uploads that can never be queued. */
static void fit_body_to_queue(struct config *c)
{
    if (c->max_body_bytes + QUEUE_ENTRY_OVERHEAD <= c->queue_max_bytes)
        return;
    char v[32], d[32];
    snprintf(v, sizeof(v), "%zu", c->max_body_bytes);
    c->max_body_bytes = c->queue_max_bytes - QUEUE_ENTRY_OVERHEAD;
    snprintf(d, sizeof(d), "%zu", c->max_body_bytes);
    add_issue(c, LOG_LEVEL_WARN, "PYROSCOPE_MAX_BODY_BYTES", v, d,
              "larger than PYROSCOPE_QUEUE_MAX_BYTES minus 512 bytes of overhead; lowered to fit");
}

static const char *const flush_strategy_names[] = {
    [FLUSH_AUTO] = "auto", [FLUSH_END] = "end", [FLUSH_NEXT_INVOKE] = "next-invoke"};

const char *flush_strategy_name(enum flush_strategy s)
{
    return flush_strategy_names[s];
}

static enum flush_strategy get_flush_strategy(struct loader *l)
{
    const char *v = get(l, "PYROSCOPE_FLUSH_STRATEGY");
    if (!v)
        return FLUSH_AUTO;
    for (size_t i = 0; i < PLE_ARRAY_LEN(flush_strategy_names); i++)
        if (strcasecmp(v, flush_strategy_names[i]) == 0)
            return (enum flush_strategy)i;
    add_issue(l->c, LOG_LEVEL_WARN, "PYROSCOPE_FLUSH_STRATEGY", v, "auto",
              "not a flush strategy (end, next-invoke or auto)");
    return FLUSH_AUTO;
}

/* Set by Lambda, not by the user: an unknown value (a model newer than this code) is treated as
 * on-demand, and a register refused for INVOKE still falls back to SHUTDOWN only (lifecycle.c). */
static enum lambda_init_type get_init_type(struct loader *l)
{
    const char *v = get(l, "AWS_LAMBDA_INITIALIZATION_TYPE");
    if (!v || strcmp(v, "on-demand") == 0)
        return INIT_ON_DEMAND;
    if (strcmp(v, "provisioned-concurrency") == 0)
        return INIT_PROVISIONED_CONCURRENCY;
    if (strcmp(v, "snap-start") == 0)
        return INIT_SNAP_START;
    if (strcmp(v, "lambda-managed-instances") == 0)
        return INIT_MANAGED_INSTANCES;
    add_issue(l->c, LOG_LEVEL_WARN, "AWS_LAMBDA_INITIALIZATION_TYPE", v, "on-demand",
              "not an execution model this extension knows; treated as on-demand");
    return INIT_ON_DEMAND;
}

static void load_ours(struct loader *l)
{
    struct config *c = l->c;
    const long long tib = 1LL << 40; /* sanity bound on byte sizes */
    c->dev_mode = get_bool(l, "PYROSCOPE_DEV_MODE", false);
    c->relay_port = (uint16_t)get_int(l, "PYROSCOPE_RELAY_PORT", 4040, 1, 65535);
    c->queue_max_count = (size_t)get_int(l, "PYROSCOPE_QUEUE_MAX_COUNT", 256, 1, 1000000);
    c->queue_max_bytes = (size_t)get_int(l, "PYROSCOPE_QUEUE_MAX_BYTES", 32 << 20, 1024, tib);
    c->max_body_bytes = (size_t)get_int(l, "PYROSCOPE_MAX_BODY_BYTES", 8 << 20, 1, tib);
    c->max_retries = (int)get_int(l, "PYROSCOPE_MAX_RETRIES", 3, 0, 20);
    c->max_header_bytes =
        (size_t)get_int(l, "PYROSCOPE_MAX_HEADER_BYTES", 64 << 10, 1024, 16 << 20);
    c->max_connections = (size_t)get_int(l, "PYROSCOPE_MAX_CONNECTIONS", 128, 1, 100000);
    c->client_timeout_ns = get_duration(l, "PYROSCOPE_CLIENT_TIMEOUT", 10 * NS_PER_SEC, "10s");
    c->self_profiling_interval_ns =
        get_duration(l, "PYROSCOPE_SELF_PROFILING_INTERVAL", 10 * NS_PER_SEC, "10s");
    c->flush_strategy = get_flush_strategy(l);
    c->init_type = get_init_type(l);
    fit_body_to_queue(c);
}

/* ---- trace-sampled profiling ---- */

/* A threshold in 0..65535, or def when unset or invalid (def_text says what def means). */
static int get_threshold(struct loader *l, const char *name, int def, const char *def_text)
{
    const char *v = get(l, name);
    long long out;
    if (!v)
        return def;
    if (go_parse_int(v, &out) && out >= 0 && out <= 65535)
        return (int)out;
    add_issue(l->c, LOG_LEVEL_WARN, name, v, def_text,
              "must be an integer from 0 (1 invoke in 65,536) to 65535 (every invoke)");
    return def;
}

/* Turns the archive off with one error that says why. */
static void archive_off(struct config *c, const char *var, const char *value, const char *why)
{
    add_issue(c, LOG_LEVEL_ERROR, var, value, "", why);
    c->xray.enabled = false;
}

static void load_xray(struct loader *l)
{
    struct config *c = l->c;
    struct xray_archive_config *x = &c->xray;
    c->trace_sample_threshold =
        get_threshold(l, "PYROSCOPE_TRACE_SAMPLE_THRESHOLD", -1, "unset: relay everything");
    /* Set, even to "": the bucket and the endpoint say where the archive goes, so an empty one
     * turns the archive off (below) rather than meaning the default. */
    const char *bucket_raw = l->getenv_fn(l->ud, "XRAYPROFILE_S3_BUCKET");
    const char *endpoint_raw = l->getenv_fn(l->ud, "XRAYPROFILE_S3_ENDPOINT");
    x->enabled = get(l, "XRAYPROFILE_THRESHOLD") || bucket_raw;
    x->threshold = get_threshold(l, "XRAYPROFILE_THRESHOLD", 0, "0");
    x->bucket = get_string(l, "XRAYPROFILE_S3_BUCKET", "");
    const char *prefix = get(l, "XRAYPROFILE_S3_PREFIX");
    if (prefix && prefix[strlen(prefix) - 1] != '/') {
        if (asprintf(&x->prefix, "%s/", prefix) < 0)
            x->prefix = NULL, l->oom = true;
    } else {
        x->prefix = dup(l, prefix ? prefix : "");
    }
    x->endpoint = get_string(l, "XRAYPROFILE_S3_ENDPOINT", "");
    size_t n = x->endpoint ? strlen(x->endpoint) : 0;
    while (n && x->endpoint[n - 1] == '/')
        x->endpoint[--n] = '\0';
    const char *region = get(l, "AWS_REGION");
    x->region = get_header_string(l, region ? "AWS_REGION" : "AWS_DEFAULT_REGION", false, false);
    x->access_key_id = get_header_string(l, "AWS_ACCESS_KEY_ID", true, false);
    x->secret_key = get_header_string(l, "AWS_SECRET_ACCESS_KEY", true, false);
    x->session_token = get_header_string(l, "AWS_SESSION_TOKEN", true, false);
    x->container_uri = get_header_string(l, "AWS_CONTAINER_CREDENTIALS_FULL_URI", false, false);
    x->container_token = get_header_string(l, "AWS_CONTAINER_AUTHORIZATION_TOKEN", true, false);
    x->container_token_file = get_string(l, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "");
    if (!x->enabled || l->oom)
        return;
    bool static_keys = *x->access_key_id && *x->secret_key;
    char why[200];
    if (bucket_raw && !*bucket_raw)
        archive_off(c, "XRAYPROFILE_S3_BUCKET", "",
                    "set but empty: name the bucket, or unset it for "
                    "xrayprofile-<accountId>-<region>; the per-trace archive is off");
    else if (endpoint_raw && !*endpoint_raw)
        archive_off(c, "XRAYPROFILE_S3_ENDPOINT", "",
                    "set but empty: give the endpoint's http(s):// URL, or unset it for AWS S3; "
                    "the per-trace archive is off");
    else if (*x->bucket && !s3_bucket_name_ok(x->bucket))
        archive_off(
            c, "XRAYPROFILE_S3_BUCKET", x->bucket,
            "not a valid S3 bucket name (3-63 of a-z 0-9 . -); the per-trace archive is off");
    else if (*x->endpoint && remote_problem(x->endpoint))
        archive_off(c, "XRAYPROFILE_S3_ENDPOINT", x->endpoint,
                    strncasecmp(x->endpoint, "http", 4) && looks_like_host(x->endpoint)
                        ? "must start with http:// or https:// (did you mean https://...?); the "
                          "per-trace archive is off"
                        : "must be an http:// or https:// URL with a host; the per-trace archive "
                          "is off");
    else if (*x->region &&
             (strspn(x->region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(x->region) ||
              strlen(x->region) > 32))
        /* The region names the AWS host (s3.<region>.amazonaws.com): "x.example.com#" would send
         * the signed PUTs, security token included, to another host. */
        archive_off(c, "AWS_REGION", x->region,
                    "not an AWS region name (a-z, 0-9 and -); the per-trace archive is off");
    else if (!*x->region)
        archive_off(c, "AWS_REGION", "",
                    "unset (and AWS_DEFAULT_REGION too): the per-trace archive needs the region "
                    "to sign its uploads; it is off");
    else if (!static_keys && *x->container_uri &&
             !credentials_uri_ok(x->container_uri, why, sizeof(why)))
        archive_off(c, "AWS_CONTAINER_CREDENTIALS_FULL_URI", x->container_uri,
                    strncat(why, "; the per-trace archive is off", sizeof(why) - strlen(why) - 1));
    else if (!static_keys && !*x->container_uri)
        archive_off(c, "AWS_ACCESS_KEY_ID", "",
                    "AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is unset, and so is "
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI: the per-trace archive cannot sign its "
                    "uploads; it is off");
}

int config_load(struct config *c, config_getenv_fn getenv_fn, void *ud)
{
    *c = (struct config){0};
    struct loader l = {c, getenv_fn ? getenv_fn : config_getenv_process, ud, false};
    load_seed_table(&l);
    load_ours(&l);
    load_xray(&l);
    if (!l.oom)
        return 0;
    config_free(c); /* nothing half-built is left for the caller */
    return -1;
}

const char *config_getenv_process(void *ud, const char *name)
{
    (void)ud;
    return getenv(name);
}

void config_free(struct config *c)
{
    free(c->remote_address);
    free_secret(c->auth_token);
    free(c->tenant_id);
    free(c->basic_auth_user);
    free_secret(c->basic_auth_password);
    for (size_t i = 0; i < c->n_http_headers; i++) {
        free(c->http_headers[i].name);
        free_secret(c->http_headers[i].value);
    }
    free(c->http_headers);
    for (size_t i = 0; i < ARRAY_LEN(c->owned_log_strings); i++)
        free(c->owned_log_strings[i]);
    free(c->xray.bucket);
    free(c->xray.prefix);
    free(c->xray.endpoint);
    free(c->xray.region);
    free_secret(c->xray.access_key_id);
    free_secret(c->xray.secret_key);
    free_secret(c->xray.session_token);
    free(c->xray.container_uri);
    free_secret(c->xray.container_token);
    free(c->xray.container_token_file);
    *c = (struct config){0};
}
