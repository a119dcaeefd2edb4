/* logrus-compatible text and JSON lines. See include/log.h. */
#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "gofmt.h"

#define LINE_MAX_BYTES 4096

static struct log_options current;
static bool configured;
static void (*sink_fn)(const char *, size_t, void *);
static void *sink_ud;

void log_options_default(struct log_options *o)
{
    *o = (struct log_options){
        .level = LOG_LEVEL_INFO,
        .format = LOG_FORMAT_TEXT,
        .timestamp_layout = GO_RFC3339,
        .timestamp_utc = true,
        .field_time = "time",
        .field_level = "level",
        .field_msg = "msg",
        .field_logrus_error = "logrus_error",
        .field_func = "func",
        .field_file = "file",
    };
}

static const struct log_options *opts(void)
{
    if (!configured) {
        log_options_default(&current);
        configured = true;
    }
    return &current;
}

void log_configure(const struct log_options *o)
{
    current = *o;
    configured = true;
}

bool log_enabled(enum log_level level)
{
    return level <= opts()->level;
}

const char *log_level_name(enum log_level level)
{
    static const char *const names[] = {"error", "warning", "info", "debug", "trace"};
    return level <= LOG_LEVEL_TRACE ? names[level] : "info";
}

bool log_level_parse(const char *s, enum log_level *out)
{
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {
        {"panic", LOG_LEVEL_ERROR}, {"fatal", LOG_LEVEL_ERROR},  {"error", LOG_LEVEL_ERROR},
        {"warn", LOG_LEVEL_WARN},   {"warning", LOG_LEVEL_WARN}, {"info", LOG_LEVEL_INFO},
        {"debug", LOG_LEVEL_DEBUG}, {"trace", LOG_LEVEL_TRACE},
    };
    for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return true;
        }
    }
    return false;
}

/* ---- a bounded line buffer ---- */

struct line {
    char *buf;
    size_t cap, len; /* len may exceed cap: the excess is dropped */
};

static void put(struct line *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, l->len++)
        if (l->len < l->cap)
            l->buf[l->len] = s[i];
}

static void puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 if the byte starts no valid sequence. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (s[0] >= 0xF8)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if (n == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0)))
        return 0; /* overlong, surrogate */
    if (n == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90)))
        return 0;
    return n;
}

static bool valid_utf8(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        if (!n)
            return false;
        p += n;
    }
    return true;
}

/* Writes s quoted and escaped (JSON string rules; Go's %q agrees on everything we emit), with
 * invalid UTF-8 bytes replaced by U+FFFD. */
static void put_quoted(struct line *l, const char *s)
{
    put(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        char esc[8];
        if (n == 0) {
            puts_(l, "\xEF\xBF\xBD");
            p++;
            continue;
        }
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            put(l, esc, 2);
        } else if (*p == '\n') {
            puts_(l, "\\n");
        } else if (*p == '\t') {
            puts_(l, "\\t");
        } else if (*p == '\r') {
            puts_(l, "\\r");
        } else if (*p < 0x20 || *p == 0x7F) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            puts_(l, esc);
        } else {
            put(l, (const char *)p, n);
        }
        p += n;
    }
    put(l, "\"", 1);
}

/* logrus's TextFormatter leaves a value bare when it has only these characters. */
static bool needs_quoting(const char *s)
{
    if (!*s)
        return true;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_' || c == '/' || c == '@' || c == '^' || c == '+';
        if (!ok)
            return true;
    }
    return false;
}

struct field {
    const char *key;
    const char *str;
    long long num;
    bool is_num;
};

static void put_field(struct line *l, const struct log_options *o, const struct field *f,
                      bool first)
{
    char num[32];
    const char *v = f->str;
    if (f->is_num) {
        snprintf(num, sizeof(num), "%lld", f->num);
        v = num;
    }
    if (o->format == LOG_FORMAT_JSON) {
        if (!first)
            put(l, ",", 1);
        put_quoted(l, f->key);
        put(l, ":", 1);
        if (f->is_num)
            puts_(l, v);
        else
            put_quoted(l, v);
        return;
    }
    if (!first)
        put(l, " ", 1);
    puts_(l, f->key);
    put(l, "=", 1);
    if (f->is_num || !needs_quoting(v))
        puts_(l, v);
    else
        put_quoted(l, v);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

size_t log_format_line(char *buf, size_t cap, const struct log_options *o, enum log_level level,
                       const char *func, const char *file, int line_no, const char *msg,
                       const struct log_kv *kvs, const struct timespec *now)
{
    struct line l = {buf, cap > 1 ? cap - 2 : 0, 0}; /* room for the final newline and NUL */
    char ts[96], where[160], bad[160] = "";
    bool first = true;
    if (o->format == LOG_FORMAT_JSON)
        put(&l, "{", 1);
    if (!o->timestamp_disable) {
        go_time_format(ts, sizeof(ts), o->timestamp_layout ? o->timestamp_layout : GO_RFC3339, now,
                       o->timestamp_utc);
        put_field(&l, o, &(struct field){o->field_time, ts, 0, false}, first);
        first = false;
    }
    put_field(&l, o, &(struct field){o->field_level, log_level_name(level), 0, false}, first);
    put_field(&l, o, &(struct field){o->field_msg, msg ? msg : "", 0, false}, false);
    for (const struct log_kv *kv = kvs; kv && kv->kind != LOG_KV_END; kv++) {
        const char *s = kv->str ? kv->str : "";
        if (kv->kind == LOG_KV_STR && !bad[0] && !valid_utf8(s))
            snprintf(bad, sizeof(bad), "invalid UTF-8 in field %s; bad bytes replaced", kv->key);
        put_field(&l, o, &(struct field){kv->key, s, kv->num, kv->kind == LOG_KV_INT}, false);
    }
    if (bad[0])
        put_field(&l, o, &(struct field){o->field_logrus_error, bad, 0, false}, false);
    if (func && file && o->level >= LOG_LEVEL_TRACE) {
        snprintf(where, sizeof(where), "%s:%d", base_name(file), line_no);
        put_field(&l, o, &(struct field){o->field_func, func, 0, false}, false);
        put_field(&l, o, &(struct field){o->field_file, where, 0, false}, false);
    }
    if (o->format == LOG_FORMAT_JSON)
        put(&l, "}", 1);
    if (cap < 2)
        return 0;
    size_t n = l.len < l.cap ? l.len : l.cap;
    buf[n++] = '\n';
    buf[n] = '\0';
    return n;
}

void log_emit(enum log_level level, const char *func, const char *file, int line, const char *msg,
              const struct log_kv *kvs)
{
    char buf[LINE_MAX_BYTES];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    size_t n = log_format_line(buf, sizeof(buf), opts(), level, func, file, line, msg, kvs, &now);
    if (sink_fn) {
        sink_fn(buf, n, sink_ud);
        return;
    }
    /* One write per line: lines from one process never interleave in CloudWatch. */
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(2, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

void log_set_sink(void (*sink)(const char *line, size_t len, void *ud), void *ud)
{
    sink_fn = sink;
    sink_ud = ud;
}
