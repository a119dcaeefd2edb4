/* logrus-compatible lines, formatted with a fixed clock. */
#include <string.h>

#include "check.h"
#include "log.h"

static const struct timespec T = {1704207845, 123456789}; /* 2024-01-02T15:04:05.123Z */

static const char *fmt(const struct log_options *o, enum log_level lvl, const char *msg,
                       const struct log_kv *kvs)
{
    static char buf[1024];
    log_format_line(buf, sizeof(buf), o, lvl, "do_thing", "/src/x/relay.c", 42, msg, kvs, &T);
    return buf;
}

static void test_text(void)
{
    struct log_options o;
    log_options_default(&o);
    CHECK_STR(fmt(&o, LOG_LEVEL_INFO, "relay listening",
                  (const struct log_kv[]){LKS("address", "127.0.0.1:4040") LKI("n", -3) LKS(
                      "path", "/ingest") LKS("empty", "") LKS("q", "say \"hi\"\n"){0}}),
              "time=\"2024-01-02T15:04:05Z\" level=info msg=\"relay listening\" "
              "address=\"127.0.0.1:4040\" n=-3 path=/ingest empty=\"\" q=\"say \\\"hi\\\"\\n\"\n");
    CHECK_STR(fmt(&o, LOG_LEVEL_WARN, "draining", (const struct log_kv[]){{0}}),
              "time=\"2024-01-02T15:04:05Z\" level=warning msg=draining\n");
}

static void test_field_names_and_timestamps(void)
{
    struct log_options o;
    log_options_default(&o);
    o.field_time = "ts";
    o.field_level = "severity";
    o.field_msg = "message";
    o.timestamp_layout = "2006-01-02 15:04:05.000";
    CHECK_STR(fmt(&o, LOG_LEVEL_ERROR, "x", (const struct log_kv[]){{0}}),
              "ts=\"2024-01-02 15:04:05.123\" severity=error message=x\n");
    o.timestamp_disable = true;
    CHECK_STR(fmt(&o, LOG_LEVEL_DEBUG, "x", (const struct log_kv[]){{0}}),
              "severity=debug message=x\n");
}

static void test_caller_only_at_trace(void)
{
    struct log_options o;
    log_options_default(&o);
    o.timestamp_disable = true;
    o.level = LOG_LEVEL_DEBUG;
    CHECK_STR(fmt(&o, LOG_LEVEL_DEBUG, "x", (const struct log_kv[]){{0}}), "level=debug msg=x\n");
    o.level = LOG_LEVEL_TRACE;
    o.field_func = "fn";
    CHECK_STR(fmt(&o, LOG_LEVEL_DEBUG, "x", (const struct log_kv[]){{0}}),
              "level=debug msg=x fn=do_thing file=\"relay.c:42\"\n");
}

static void test_json(void)
{
    struct log_options o;
    log_options_default(&o);
    o.format = LOG_FORMAT_JSON;
    CHECK_STR(fmt(&o, LOG_LEVEL_INFO, "upload \"failed\"",
                  (const struct log_kv[]){LKI("status", 503) LKS("ctl", "a\x01\tb"){0}}),
              "{\"time\":\"2024-01-02T15:04:05Z\",\"level\":\"info\",\"msg\":\"upload "
              "\\\"failed\\\"\",\"status\":503,\"ctl\":\"a\\u0001\\tb\"}\n");
}

static void test_invalid_utf8_and_truncation(void)
{
    struct log_options o;
    log_options_default(&o);
    o.format = LOG_FORMAT_JSON;
    o.timestamp_disable = true;
    CHECK_STR(fmt(&o, LOG_LEVEL_INFO, "m",
                  (const struct log_kv[]){LKS("path", "a\xff"
                                                      "b"){0}}),
              "{\"level\":\"info\",\"msg\":\"m\",\"path\":\"a\xEF\xBF\xBD"
              "b\","
              "\"logrus_error\":\"invalid UTF-8 in field path; bad bytes replaced\"}\n");
    char small[16];
    size_t n = log_format_line(small, sizeof(small), &o, LOG_LEVEL_INFO, NULL, NULL, 0,
                               "a long message", (const struct log_kv[]){{0}}, &T);
    CHECK(n == 15 && small[14] == '\n' && small[15] == '\0');
}

static void test_levels(void)
{
    enum log_level l;
    CHECK(log_level_parse("WARN", &l) && l == LOG_LEVEL_WARN);
    CHECK(log_level_parse("warning", &l) && l == LOG_LEVEL_WARN);
    CHECK(log_level_parse("fatal", &l) && l == LOG_LEVEL_ERROR);
    CHECK(log_level_parse("Trace", &l) && l == LOG_LEVEL_TRACE);
    CHECK(!log_level_parse("verbose", &l));
    struct log_options o;
    log_options_default(&o);
    log_configure(&o);
    CHECK(log_enabled(LOG_LEVEL_INFO) && !log_enabled(LOG_LEVEL_DEBUG));
}

int main(void)
{
    test_text();
    test_field_names_and_timestamps();
    test_caller_only_at_trace();
    test_json();
    test_invalid_utf8_and_truncation();
    test_levels();
    return check_summary("test_log");
}
