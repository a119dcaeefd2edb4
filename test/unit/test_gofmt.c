/* Go bools, ints, durations and time layouts, against what Go itself returns. */
#include <stdint.h>

#include "check.h"
#include "gofmt.h"

static void test_bools(void)
{
    const char *yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    const char *no[] = {"0", "f", "F", "FALSE", "false", "False"};
    const char *bad[] = {"", "yes", "TRue", "on", " true", "2"};
    for (size_t i = 0; i < 6; i++) {
        bool v = false;
        CHECK(go_parse_bool(yes[i], &v) && v);
        v = true;
        CHECK(go_parse_bool(no[i], &v) && !v);
        v = true;
        CHECK(!go_parse_bool(bad[i], &v) && v); /* untouched */
    }
}

static void test_ints(void)
{
    long long v = 7;
    CHECK(go_parse_int("42", &v) && v == 42);
    CHECK(go_parse_int("-3", &v) && v == -3);
    CHECK(go_parse_int("+5", &v) && v == 5);
    CHECK(go_parse_int("9223372036854775807", &v) && v == INT64_MAX);
    CHECK(go_parse_int("-9223372036854775808", &v) && v == INT64_MIN);
    v = 7;
    CHECK(!go_parse_int("9223372036854775808", &v) && v == 7);
    CHECK(!go_parse_int("", &v) && !go_parse_int(" 1", &v) && !go_parse_int("1x", &v));
    CHECK(!go_parse_int("-", &v) && !go_parse_int("1.0", &v));
}

static void test_durations(void)
{
    struct {
        const char *s;
        int64_t ns;
    } ok[] = {
        {"0", 0},
        {"300ms", 300000000},
        {"-1.5h", -5400000000000},
        {"2h45m", 9900000000000},
        {"1m30s", 90000000000},
        {"1.5h", 5400000000000},
        {"10s", 10000000000},
        {"1µs", 1000},
        {"1μs", 1000},
        {"1us", 1000},
        {"1ns", 1},
        {".5s", 500000000},
        {"1.s", 1000000000},
        {"1.0000000001s", 1000000000},
        {"9223372036854775807ns", INT64_MAX},
        {"+250ms", 250000000},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t v = -42;
        bool parsed = go_parse_duration(ok[i].s, &v);
        CHECK(parsed && v == ok[i].ns);
        if (!parsed || v != ok[i].ns)
            fprintf(stderr, "  duration %s -> %lld\n", ok[i].s, (long long)v);
    }
    const char *bad[] = {"",    "1",  "s",   "1x",      "--1s", "9223372036854775808ns",
                         "1.5", ".s", "1 s", "3000000h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = -42;
        CHECK(!go_parse_duration(bad[i], &v) && v == -42);
    }
}

static void check_format(const char *layout, const char *want)
{
    /* 2024-01-02T15:04:05.123456789Z, a Tuesday, day 2 of the year */
    struct timespec ts = {1704207845, 123456789};
    char buf[128];
    go_time_format(buf, sizeof(buf), layout, &ts, true);
    CHECK_STR(buf, want);
}

static void test_time_layouts(void)
{
    check_format(GO_RFC3339, "2024-01-02T15:04:05Z");
    check_format("2006-01-02T15:04:05.999999999Z07:00", "2024-01-02T15:04:05.123456789Z");
    check_format("2006-01-02 15:04:05.000", "2024-01-02 15:04:05.123");
    check_format("15:04:05,000000", "15:04:05,123456");
    check_format("Jan _2 Mon PM 03:04", "Jan  2 Tue PM 03:04");
    check_format("January Monday pm", "January Tuesday pm");
    check_format("3:04PM", "3:04PM");                                 /* time.Kitchen */
    check_format("Jan _2 15:04:05.000000", "Jan  2 15:04:05.123456"); /* time.StampMicro */
    check_format("-0700 Z0700 -07:00 Z07 MST", "+0000 Z +00:00 Z UTC");
    check_format("002 __2 06 1/2", "002   2 24 1/2");
    check_format("literal text", "literal text");
    struct timespec whole = {1704207845, 0};
    char buf[64];
    go_time_format(buf, sizeof(buf), "05.999", &whole, true);
    CHECK_STR(buf, "05"); /* .999 drops a zero fraction, dot included */
    go_time_format(buf, 6, GO_RFC3339, &whole, true);
    CHECK_STR(buf, "2024-"); /* truncated, still terminated */
}

int main(void)
{
    test_bools();
    test_ints();
    test_durations();
    test_time_layouts();
    return check_summary("test_gofmt");
}
