/* logrus-compatible lines, formatted with a fixed clock, and the emit path. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"

static const struct timespec T = {1704207845, 123456789}; /* 2024-01-02T15:04:05.123Z */

#define KVS(...) ((const struct log_kv[]){__VA_ARGS__{NULL, NULL, 0, LOG_KV_END}})
#define NO_KVS KVS()

static const char *fmt_at(const struct log_options *o, enum log_level lvl, const char *msg,
                          const struct log_kv *kvs)
{
    static char buf[2048];
    log_format_line(buf, sizeof(buf), o, lvl, "do_thing", "/src/x/relay.c", 42, msg, kvs, &T);
    return buf;
}

static struct log_options text_opts(void)
{
    struct log_options o;
    log_options_default(&o);
    return o;
}

static struct log_options json_opts(void)
{
    struct log_options o;
    log_options_default(&o);
    o.format = LOG_FORMAT_JSON;
    return o;
}

/* Every byte sequence in s is well-formed UTF-8. */
static bool valid_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = p[i] < 0x80 ? 1 : p[i] >= 0xF0 ? 4 : p[i] >= 0xE0 ? 3 : p[i] >= 0xC2 ? 2 : 0;
        if (len == 0 || i + len > n)
            return false;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

static void test_defaults(void)
{
    struct log_options o;
    log_options_default(&o);
    CHECK(o.level == LOG_LEVEL_INFO && o.format == LOG_FORMAT_TEXT);
    CHECK_STR(o.timestamp_layout, "2006-01-02T15:04:05Z07:00");
    CHECK(!o.timestamp_disable && o.timestamp_utc);
    CHECK_STR(o.field_time, "time");
    CHECK_STR(o.field_level, "level");
    CHECK_STR(o.field_msg, "msg");
    CHECK_STR(o.field_logrus_error, "logrus_error");
    CHECK_STR(o.field_func, "func");
    CHECK_STR(o.field_file, "file");
}

static void test_text_quoting(void)
{
    struct log_options o = text_opts();
    CHECK_STR(fmt_at(&o, LOG_LEVEL_INFO, "relay listening",
                     KVS(LKS("address", "127.0.0.1:4040") LKI("count", 3))),
              "time=\"2024-01-02T15:04:05Z\" level=info msg=\"relay listening\" "
              "address=\"127.0.0.1:4040\" count=3\n");
    /* Bare: only [A-Za-z0-9-._/@^+]; everything else, and the empty value, is quoted. */
    CHECK_STR(fmt_at(&o, LOG_LEVEL_WARN, "draining",
                     KVS(LKS("bare", "a-b._/@^+Z9") LKS("empty", "") LKS("space", "a b")
                             LKS("eq", "a=b") LKS("colon", "a:b") LKS("u", "\xC3\xBC")
                                 LKI("neg", -3) LKS("path", "/ingest"))),
              "time=\"2024-01-02T15:04:05Z\" level=warning msg=draining bare=a-b._/@^+Z9 "
              "empty=\"\" space=\"a b\" eq=\"a=b\" colon=\"a:b\" u=\"\xC3\xBC\" neg=-3 "
              "path=/ingest\n");
}

static void test_text_escaping(void)
{
    struct log_options o = text_opts();
    o.timestamp_disable = true;
    /* Go's %q: \" \\ and the one-letter escapes, \xNN for other controls and DEL, \uNNNN for
     * unprintable runes. */
    CHECK_STR(fmt_at(&o, LOG_LEVEL_INFO, "m",
                     KVS(LKS("q", "say \"hi\"\\\n") LKS("c", "\a\b\f\r\t\v\x01\x1f\x7f")
                             LKS("u", "\xC2\x85|\xE2\x80\xA8|\xEF\xBB\xBF"))),
              "level=info msg=m q=\"say \\\"hi\\\"\\\\\\n\" "
              "c=\"\\a\\b\\f\\r\\t\\v\\x01\\x1f\\x7f\" u=\"\\u0085|\\u2028|\\ufeff\"\n");
    /* logrus leaves out an empty message in the text format. */
    CHECK_STR(fmt_at(&o, LOG_LEVEL_INFO, "", NO_KVS), "level=info\n");
    CHECK_STR(fmt_at(&o, LOG_LEVEL_INFO, NULL, NO_KVS), "level=info\n");
}

static void test_field_names_and_timestamps(void)
{
    struct log_options o = text_opts();
    o.field_time = "ts";
    o.field_level = "severity";
    o.field_msg = "message";
    o.timestamp_layout = "2006-01-02 15:04:05.000";
    CHECK_STR(fmt_at(&o, LOG_LEVEL_ERROR, "x", NO_KVS),
              "ts=\"2024-01-02 15:04:05.123\" severity=error message=x\n");
    o.timestamp_layout = "20060102";
    CHECK_STR(fmt_at(&o, LOG_LEVEL_ERROR, "x", NO_KVS), "ts=20240102 severity=error message=x\n");
    o.timestamp_disable = true;
    CHECK_STR(fmt_at(&o, LOG_LEVEL_DEBUG, "x", NO_KVS), "severity=debug message=x\n");
    /* A field named like one of the logger's own keys is renamed, as logrus does. */
    CHECK_STR(fmt_at(&o, LOG_LEVEL_DEBUG, "x", KVS(LKS("message", "m") LKS("msg", "ok"))),
              "severity=debug message=x fields.message=m msg=ok\n");
    o.timestamp_layout = NULL; /* NULL: RFC 3339 */
    o.timestamp_disable = false;
    CHECK_STR(fmt_at(&o, LOG_LEVEL_TRACE, "x", NO_KVS),
              "ts=\"2024-01-02T15:04:05Z\" severity=trace message=x\n");
}

static void test_caller_only_at_trace(void)
{
    struct log_options o = text_opts();
    o.timestamp_disable = true;
    o.level = LOG_LEVEL_DEBUG;
    CHECK_STR(fmt_at(&o, LOG_LEVEL_DEBUG, "x", NO_KVS), "level=debug msg=x\n");
    CHECK_STR(fmt_at(&o, LOG_LEVEL_ERROR, "x", NO_KVS), "level=error msg=x\n");
    o.level = LOG_LEVEL_TRACE;
    CHECK_STR(fmt_at(&o, LOG_LEVEL_DEBUG, "x", KVS(LKI("n", 1))),
              "level=debug msg=x n=1 func=do_thing file=\"relay.c:42\"\n");
    o.field_func = "fn";
    o.field_file = "src";
    CHECK_STR(fmt_at(&o, LOG_LEVEL_ERROR, "x", NO_KVS),
              "level=error msg=x fn=do_thing src=\"relay.c:42\"\n");
    o.format = LOG_FORMAT_JSON;
    CHECK_STR(fmt_at(&o, LOG_LEVEL_TRACE, "x", NO_KVS),
              "{\"level\":\"trace\",\"msg\":\"x\",\"fn\":\"do_thing\",\"src\":\"relay.c:42\"}\n");
    char buf[256];
    log_format_line(buf, sizeof(buf), &o, LOG_LEVEL_TRACE, NULL, NULL, 0, "x", NO_KVS, &T);
    CHECK_STR(buf, "{\"level\":\"trace\",\"msg\":\"x\"}\n"); /* no caller known: none printed */
}

static void test_json(void)
{
    struct log_options o = json_opts();
    CHECK_STR(fmt_at(&o, LOG_LEVEL_INFO, "upload \"failed\"",
                     KVS(LKI("status", 503) LKS("ctl", "a\x01\tb\n\r\\") LKS("empty", ""))),
              "{\"time\":\"2024-01-02T15:04:05Z\",\"level\":\"info\",\"msg\":\"upload "
              "\\\"failed\\\"\",\"status\":503,\"ctl\":\"a\\u0001\\tb\\n\\r\\\\\",\"empty\":\"\"}"
              "\n");
    /* encoding/json with HTML escaping (the logrus default); other non-ASCII is kept. */
    o.timestamp_disable = true;
    CHECK_STR(fmt_at(&o, LOG_LEVEL_WARN, "",
                     KVS(LKS("url", "/ingest?a=<1>&b") LKS("u", "\xE2\x80\xA8\xC3\xBC\x7f"))),
              "{\"level\":\"warning\",\"msg\":\"\",\"url\":\"/ingest?a=\\u003c1\\u003e\\u0026b\","
              "\"u\":\"\\u2028\xC3\xBC\x7f\"}\n");
    o.field_level = "lvl";
    o.field_msg = "message";
    CHECK_STR(fmt_at(&o, LOG_LEVEL_ERROR, "m", KVS(LKS("lvl", "clash") LKI("n", -9))),
              "{\"lvl\":\"error\",\"message\":\"m\",\"fields.lvl\":\"clash\",\"n\":-9}\n");
}

static void test_invalid_utf8(void)
{
    struct log_options o = json_opts();
    o.timestamp_disable = true;
    CHECK_STR(fmt_at(&o, LOG_LEVEL_INFO, "m",
                     KVS(LKS("path", "a\xff"
                                     "b") LKS("ok", "\xC3\xBC"))),
              "{\"level\":\"info\",\"msg\":\"m\",\"path\":\"a\xEF\xBF\xBD"
              "b\",\"ok\":\"\xC3\xBC\","
              "\"logrus_error\":\"invalid UTF-8 replaced by U+FFFD in: path\"}\n");
    /* Overlong, surrogate, truncated sequence; every key named; the name is configurable. */
    o.field_logrus_error = "encoding_error";
    CHECK_STR(fmt_at(&o, LOG_LEVEL_INFO, "m\xC0\xAF",
                     KVS(LKS("s", "\xED\xA0\x80") LKS("t", "x\xE2\x82"))),
              "{\"level\":\"info\",\"msg\":\"m\xEF\xBF\xBD\xEF\xBF\xBD\",\"s\":\"\xEF\xBF\xBD"
              "\xEF\xBF\xBD\xEF\xBF\xBD\",\"t\":\"x\xEF\xBF\xBD\xEF\xBF\xBD\","
              "\"encoding_error\":\"invalid UTF-8 replaced by U+FFFD in: msg, s, t\"}\n");
    o = text_opts();
    o.timestamp_disable = true;
    CHECK_STR(fmt_at(&o, LOG_LEVEL_INFO, "m", KVS(LKS("path", "\xfe"))),
              "level=info msg=m path=\"\xEF\xBF\xBD\" "
              "logrus_error=\"invalid UTF-8 replaced by U+FFFD in: path\"\n");
}

static void test_truncation(void)
{
    struct log_options o = json_opts();
    o.timestamp_disable = true;
    char small[16];
    size_t n = log_format_line(small, sizeof(small), &o, LOG_LEVEL_INFO, NULL, NULL, 0,
                               "a long message", NO_KVS, &T);
    CHECK(n == 15 && small[14] == '\n' && small[15] == '\0');
    CHECK(memcmp(small, "{\"level\":\"info\n", 15) == 0);
    /* A cut inside a multi-byte character drops the partial character. */
    o = text_opts();
    o.timestamp_disable = true;
    char buf[21]; /* 19 bytes of room: the second character would be cut after its first byte */
    n = log_format_line(buf, sizeof(buf), &o, LOG_LEVEL_INFO, NULL, NULL, 0,
                        "\xC3\xBC\xC3\xBC\xC3\xBC", NO_KVS, &T);
    CHECK_STR(buf, "level=info msg=\"\xC3\xBC\n");
    CHECK(n == strlen(buf) && valid_utf8(buf, n));
    /* Degenerate buffers. */
    char tiny[2] = {'x', 'x'};
    CHECK(log_format_line(tiny, 2, &o, LOG_LEVEL_INFO, NULL, NULL, 0, "m", NO_KVS, &T) == 1);
    CHECK(tiny[0] == '\n' && tiny[1] == '\0');
    CHECK(log_format_line(tiny, 1, &o, LOG_LEVEL_INFO, NULL, NULL, 0, "m", NO_KVS, &T) == 0);
    CHECK(tiny[0] == '\0');
    /* Every size from 2 up: always a terminated line ending in '\n', valid UTF-8. */
    char big[200];
    for (size_t cap = 2; cap < sizeof(big); cap++) {
        n = log_format_line(big, cap, &o, LOG_LEVEL_INFO, "f", "f.c", 1, "\xE2\x82\xAC x",
                            KVS(LKS("k", "\xF0\x9F\x98\x80 \"q\"")), &T);
        CHECK(n < cap && big[n] == '\0' && big[n - 1] == '\n' && valid_utf8(big, n));
    }
}

static void test_levels(void)
{
    struct {
        const char *s;
        enum log_level l;
    } ok[] = {{"panic", LOG_LEVEL_ERROR}, {"FATAL", LOG_LEVEL_ERROR},  {"error", LOG_LEVEL_ERROR},
              {"WARN", LOG_LEVEL_WARN},   {"warning", LOG_LEVEL_WARN}, {"Info", LOG_LEVEL_INFO},
              {"debug", LOG_LEVEL_DEBUG}, {"Trace", LOG_LEVEL_TRACE}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        enum log_level l = LOG_LEVEL_INFO;
        CHECK(log_level_parse(ok[i].s, &l) && l == ok[i].l);
    }
    enum log_level l = LOG_LEVEL_DEBUG;
    CHECK(!log_level_parse("verbose", &l) && !log_level_parse("", &l) &&
          !log_level_parse(" info", &l) && !log_level_parse(NULL, &l) && l == LOG_LEVEL_DEBUG);
    CHECK_STR(log_level_name(LOG_LEVEL_ERROR), "error");
    CHECK_STR(log_level_name(LOG_LEVEL_WARN), "warning");
    CHECK_STR(log_level_name(LOG_LEVEL_INFO), "info");
    CHECK_STR(log_level_name(LOG_LEVEL_DEBUG), "debug");
    CHECK_STR(log_level_name(LOG_LEVEL_TRACE), "trace");
}

/* ---- the emit path ---- */

static char captured[4096];
static int captured_lines;

static void capture(const char *line, size_t len, void *ud)
{
    (void)ud;
    memcpy(captured, line, len < sizeof(captured) ? len : sizeof(captured) - 1);
    captured[len < sizeof(captured) ? len : sizeof(captured) - 1] = '\0';
    captured_lines++;
}

/* Runs before anything calls log_configure: the defaults apply. */
static void test_unconfigured_defaults(void)
{
    CHECK(log_enabled(LOG_LEVEL_ERROR) && log_enabled(LOG_LEVEL_INFO));
    CHECK(!log_enabled(LOG_LEVEL_DEBUG) && !log_enabled(LOG_LEVEL_TRACE));
    log_set_sink(capture, NULL);
    log_info("hello", LKS("k", "v"));
    /* time="YYYY-MM-DDTHH:MM:SSZ" level=info msg=hello k=v */
    CHECK(captured_lines == 1 && strncmp(captured, "time=\"", 6) == 0);
    CHECK(strlen(captured) == 53 && captured[16] == 'T' && captured[25] == 'Z');
    CHECK_STR(captured + 27, " level=info msg=hello k=v\n");
    log_debug("hidden", );
    CHECK(captured_lines == 1);
    log_set_sink(NULL, NULL);
}

static void test_emit_configured(void)
{
    struct log_options o = text_opts();
    o.level = LOG_LEVEL_TRACE;
    o.timestamp_disable = true;
    log_configure(&o);
    log_set_sink(capture, NULL);
    int line = __LINE__ + 1;
    log_trace("traced", LKI("n", 7));
    char want[128];
    snprintf(want, sizeof(want),
             "level=trace msg=traced n=7 func=test_emit_configured file=\"test_log.c:%d\"\n", line);
    CHECK_STR(captured, want);
    o.level = LOG_LEVEL_WARN;
    log_configure(&o);
    log_info("hidden", );
    log_warn("shown", );
    CHECK_STR(captured, "level=warning msg=shown\n");
    log_set_sink(NULL, NULL);
}

/* Without a sink, a line goes to fd 2 in one write. */
static void test_emit_to_stderr(void)
{
    struct log_options o = text_opts();
    o.timestamp_disable = true;
    log_configure(&o);
    int fds[2];
    CHECK(pipe(fds) == 0);
    int saved = dup(2);
    dup2(fds[1], 2);
    log_error("to stderr", LKS("k", "v w"));
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char buf[256];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    buf[n > 0 ? n : 0] = '\0';
    CHECK_STR(buf, "level=error msg=\"to stderr\" k=\"v w\"\n");
    log_options_default(&o);
    log_configure(&o);
}

int main(void)
{
    test_unconfigured_defaults(); /* first: nothing has configured the logger yet */
    test_defaults();
    test_text_quoting();
    test_text_escaping();
    test_field_names_and_timestamps();
    test_caller_only_at_trace();
    test_json();
    test_invalid_utf8();
    test_truncation();
    test_levels();
    test_emit_configured();
    test_emit_to_stderr();
    return check_summary("test_log");
}
