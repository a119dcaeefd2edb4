/* logrus-compatible text and JSON lines. See include/log.h.
 *
 * The line layout follows logrus's TextFormatter (without a TTY) and JSONFormatter, with two
 * documented differences: fields keep the order they were given in (logrus sorts them), and a
 * value that is not valid UTF-8 has its bad bytes replaced by U+FFFD and is named in the
 * logrus_error field, so that every line is valid UTF-8 (and valid JSON in the JSON format). */
#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "gofmt.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LOG_LINE_MAX 4096
#define REPLACEMENT_CHAR "\xEF\xBF\xBD" /* U+FFFD in UTF-8 */

/* Info, text, RFC 3339 timestamps in UTC, logrus's field names. */
#define LOG_DEFAULTS                                                                               \
    {                                                                                              \
        .level = LOG_LEVEL_INFO, .format = LOG_FORMAT_TEXT, .timestamp_layout = GO_RFC3339,        \
        .timestamp_disable = false, .timestamp_utc = true, .field_time = "time",                   \
        .field_level = "level", .field_msg = "msg", .field_logrus_error = "logrus_error",          \
        .field_func = "func", .field_file = "file",                                                \
    }

static const struct log_options defaults = LOG_DEFAULTS;
/* Statically initialised, so that lines logged before log_configure use the defaults. */
static struct log_options current = LOG_DEFAULTS;
static void (*sink_fn)(const char *line, size_t len, void *ud);
static void *sink_ud;

void log_options_default(struct log_options *o)
{
    *o = defaults;
}

void log_configure(const struct log_options *o)
{
    current = o ? *o : defaults;
}

bool log_enabled(enum log_level level)
{
    return level <= current.level;
}

const char *log_level_name(enum log_level level)
{
    static const char *const names[] = {"error", "warning", "info", "debug", "trace"};
    return (unsigned)level < ARRAY_LEN(names) ? names[level] : "unknown";
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
    for (size_t i = 0; s && i < ARRAY_LEN(names); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return true;
        }
    }
    return false;
}

/* ---- UTF-8 ---- */

/* Length (1 to 4) of the well-formed UTF-8 sequence at s, or 0 when s[0] starts none (stray
 * continuation byte, overlong form, surrogate, past U+10FFFF, cut short). *cp gets the code
 * point. */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t n = s[0] >= 0xC2 && s[0] <= 0xDF   ? 2
               : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
               : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
                                              : 0;
    uint32_t v = n == 2 ? s[0] & 0x1Fu : n == 3 ? s[0] & 0x0Fu : s[0] & 0x07u;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0; /* also stops at the terminating NUL */
        v = v << 6 | (s[i] & 0x3Fu);
    }
    bool bad = n == 0 || (n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
               (v >= 0xD800 && v <= 0xDFFF);
    *cp = v;
    return bad ? 0 : n;
}

static bool utf8_valid(const char *s)
{
    uint32_t cp;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_decode(p, &cp);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

/* ---- the bounded line ---- */

struct line {
    char *buf;
    size_t cap; /* bytes usable for content: the caller's cap minus the '\n' and the NUL */
    size_t len;
    bool full; /* something did not fit: the line is truncated */
};

/* Appends what fits of s; the first byte that does not fit marks the line truncated. */
static void put(struct line *l, const char *s, size_t n)
{
    size_t room = l->cap - l->len;
    if (n > room) {
        n = room;
        l->full = true;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* ---- value encoding ---- */

/* Runes Go's %q does not print as they are (unicode.IsPrint is false): C1 controls and the
 * invisible format characters most likely to show up. */
static bool go_unprintable(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0xAD || (cp >= 0x200B && cp <= 0x200F) ||
           (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2064) || cp == 0xFEFF;
}

/* Go's one-letter escapes of strconv.Quote, or 0. */
static char go_short_escape(uint32_t cp)
{
    switch (cp) {
    case '\a':
        return 'a';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    case '\v':
        return 'v';
    case '"':
        return '"';
    case '\\':
        return '\\';
    }
    return 0;
}

/* One rune of a text-format quoted value, escaped as Go's strconv.Quote (%q) does. */
static void put_text_rune(struct line *l, const char *p, size_t n, uint32_t cp)
{
    char esc[12];
    char letter = go_short_escape(cp);
    if (letter)
        snprintf(esc, sizeof(esc), "\\%c", letter);
    else if (cp < 0x20 || cp == 0x7F)
        snprintf(esc, sizeof(esc), "\\x%02x", (unsigned)cp);
    else if (go_unprintable(cp))
        snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
    else {
        put(l, p, n);
        return;
    }
    put_str(l, esc);
}

/* One rune of a JSON string, escaped as Go's encoding/json does with HTML escaping on (the
 * logrus JSONFormatter default): <, > and & too, and U+2028/U+2029 for JavaScript. */
static void put_json_rune(struct line *l, const char *p, size_t n, uint32_t cp)
{
    char esc[12];
    if (cp == '"' || cp == '\\') {
        snprintf(esc, sizeof(esc), "\\%c", (char)cp);
    } else if (cp == '\n' || cp == '\r' || cp == '\t') {
        snprintf(esc, sizeof(esc), "\\%c", cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't');
    } else if (cp < 0x20 || cp == '<' || cp == '>' || cp == '&' || cp == 0x2028 || cp == 0x2029) {
        snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
    } else {
        put(l, p, n);
        return;
    }
    put_str(l, esc);
}

/* A double-quoted string; bytes that are not UTF-8 become U+FFFD. */
static void put_quoted(struct line *l, const char *s, bool json)
{
    put_str(l, "\"");
    for (const char *p = s; *p;) {
        uint32_t cp;
        size_t n = utf8_decode((const unsigned char *)p, &cp);
        if (n == 0) {
            put_str(l, REPLACEMENT_CHAR);
            p++;
            continue;
        }
        if (json)
            put_json_rune(l, p, n, cp);
        else
            put_text_rune(l, p, n, cp);
        p += n;
    }
    put_str(l, "\"");
}

/* s as it is (a text-format key), except that bytes that are not UTF-8 become U+FFFD. */
static void put_raw_utf8(struct line *l, const char *s)
{
    for (const char *p = s; *p;) {
        uint32_t cp;
        size_t n = utf8_decode((const unsigned char *)p, &cp);
        put(l, n ? p : REPLACEMENT_CHAR, n ? n : 3);
        p += n ? n : 1;
    }
}

/* logrus's TextFormatter writes a value bare when it is made only of these characters; we
 * also quote the empty value, so that "key=" never appears. */
static bool text_bare(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (c && strchr("-._/@^+", c));
        if (!ok)
            return false;
    }
    return true;
}

/* ---- fields ---- */

struct fmt_ctx {
    struct line *l;
    const struct log_options *o;
    bool json;
    bool first;
};

/* "key=value" or "key":"value", with the separator the format needs. */
static void put_key(struct fmt_ctx *c, const char *key, const char *prefix)
{
    if (!c->first)
        put_str(c->l, c->json ? "," : " ");
    c->first = false;
    if (c->json) {
        char full[256];
        snprintf(full, sizeof(full), "%s%s", prefix, key);
        put_quoted(c->l, full, true);
        put_str(c->l, ":");
    } else {
        put_str(c->l, prefix);
        put_raw_utf8(c->l, key);
        put_str(c->l, "=");
    }
}

static void put_string_field(struct fmt_ctx *c, const char *key, const char *prefix,
                             const char *value)
{
    put_key(c, key, prefix);
    if (!c->json && text_bare(value))
        put_str(c->l, value);
    else
        put_quoted(c->l, value, c->json);
}

static void put_int_field(struct fmt_ctx *c, const char *key, const char *prefix, long long v)
{
    char num[24];
    snprintf(num, sizeof(num), "%lld", v);
    put_key(c, key, prefix);
    put_str(c->l, num); /* a JSON number; bare in text ('-' and digits need no quotes) */
}

static const char *or_default(const char *name, const char *def)
{
    return name && *name ? name : def;
}

/* logrus renames a field that would collide with one of its own keys to "fields.<key>". */
static const char *clash_prefix(const struct log_options *o, const char *key, bool caller)
{
    const char *fixed[] = {
        or_default(o->field_time, "time"),
        or_default(o->field_level, "level"),
        or_default(o->field_msg, "msg"),
        or_default(o->field_logrus_error, "logrus_error"),
        caller ? or_default(o->field_func, "func") : NULL,
        caller ? or_default(o->field_file, "file") : NULL,
    };
    for (size_t i = 0; i < ARRAY_LEN(fixed); i++)
        if (fixed[i] && strcmp(key, fixed[i]) == 0)
            return "fields.";
    return "";
}

/* The logrus_error text when msg or a string field is not valid UTF-8, naming them; "" when all
 * is well. */
static void describe_bad_utf8(char *out, size_t cap, const struct log_options *o, const char *msg,
                              const struct log_kv *kvs)
{
    size_t n = 0;
    out[0] = '\0';
    if (!utf8_valid(msg))
        n += (size_t)snprintf(out, cap, "invalid UTF-8 replaced by U+FFFD in: %s",
                              or_default(o->field_msg, "msg"));
    for (const struct log_kv *kv = kvs; kv && kv->kind != LOG_KV_END && n < cap; kv++) {
        if (kv->kind != LOG_KV_STR || !kv->str || utf8_valid(kv->str))
            continue;
        n += (size_t)snprintf(
            out + n, cap - n, "%s%s",
            n ? ", " : "invalid UTF-8 replaced by U+FFFD in: ", kv->key ? kv->key : "");
    }
}

/* A line cut short may end inside a multi-byte character: drop that partial character so that
 * the line stays valid UTF-8. Returns the new length. */
static size_t utf8_trim_tail(const char *buf, size_t len)
{
    size_t start = len;
    while (start > 0 && len - start < 4 && ((unsigned char)buf[start - 1] & 0xC0) == 0x80)
        start--;
    if (start == 0 || ((unsigned char)buf[start - 1] & 0xC0) != 0xC0)
        return len; /* ends in ASCII or a stray continuation byte run: leave it */
    unsigned char lead = (unsigned char)buf[start - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    return len - start + 1 < want ? start - 1 : len;
}

static void put_fields(struct fmt_ctx *c, const struct log_kv *kvs, bool caller)
{
    for (const struct log_kv *kv = kvs; kv && kv->kind != LOG_KV_END; kv++) {
        const char *key = kv->key ? kv->key : "";
        const char *prefix = clash_prefix(c->o, key, caller);
        if (kv->kind == LOG_KV_INT)
            put_int_field(c, key, prefix, kv->num);
        else
            put_string_field(c, key, prefix, kv->str ? kv->str : "");
    }
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
    if (cap < 2) {
        if (cap == 1)
            buf[0] = '\0';
        return 0;
    }
    o = o ? o : &defaults;
    msg = msg ? msg : "";
    struct line l = {buf, cap - 2, 0, false};
    struct fmt_ctx c = {&l, o, o->format == LOG_FORMAT_JSON, true};
    /* The caller is reported only when the logger is at trace level (our documented meaning of
     * the func and file field names). */
    bool caller = o->level >= LOG_LEVEL_TRACE && func && file;
    char ts[128], bad[256], where[256];
    if (c.json)
        put_str(&l, "{");
    if (!o->timestamp_disable) {
        go_time_format(ts, sizeof(ts), o->timestamp_layout, now, o->timestamp_utc);
        put_string_field(&c, or_default(o->field_time, "time"), "", ts);
    }
    put_string_field(&c, or_default(o->field_level, "level"), "", log_level_name(level));
    if (*msg || c.json) /* logrus's text format leaves out an empty message */
        put_string_field(&c, or_default(o->field_msg, "msg"), "", msg);
    put_fields(&c, kvs, caller);
    describe_bad_utf8(bad, sizeof(bad), o, msg, kvs);
    if (bad[0])
        put_string_field(&c, or_default(o->field_logrus_error, "logrus_error"), "", bad);
    if (caller) {
        snprintf(where, sizeof(where), "%s:%d", base_name(file), line_no);
        put_string_field(&c, or_default(o->field_func, "func"), "", func);
        put_string_field(&c, or_default(o->field_file, "file"), "", where);
    }
    if (c.json)
        put_str(&l, "}");
    size_t n = l.full ? utf8_trim_tail(buf, l.len) : l.len;
    buf[n++] = '\n';
    buf[n] = '\0';
    return n;
}

/* One write(2) per line: lines from this process never interleave in CloudWatch. */
static void write_stderr(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere left to report it */
        p += w;
        n -= (size_t)w;
    }
}

void log_emit(enum log_level level, const char *func, const char *file, int line, const char *msg,
              const struct log_kv *kvs)
{
    char buf[LOG_LINE_MAX];
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        now = (struct timespec){0};
    size_t n = log_format_line(buf, sizeof(buf), &current, level, func, file, line, msg, kvs, &now);
    if (sink_fn)
        sink_fn(buf, n, sink_ud);
    else
        write_stderr(buf, n);
}

void log_set_sink(void (*sink)(const char *line, size_t len, void *ud), void *ud)
{
    sink_fn = sink;
    sink_ud = ud;
}
