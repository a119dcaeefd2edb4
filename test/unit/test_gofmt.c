/* Go bools, ints, durations and time layouts, against what Go itself returns. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "gofmt.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void test_bools(void)
{
    const char *yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    const char *no[] = {"0", "f", "F", "FALSE", "false", "False"};
    const char *bad[] = {"", "yes", "TRue", "tRUE", "on", " true", "true ", "2", "01", "y"};
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        bool v = false;
        CHECK(go_parse_bool(yes[i], &v) && v);
        v = true;
        CHECK(go_parse_bool(no[i], &v) && !v);
    }
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        bool v = true;
        CHECK(!go_parse_bool(bad[i], &v) && v); /* refused, *out untouched */
    }
    bool v = true;
    CHECK(!go_parse_bool(NULL, &v) && v);
}

static void test_ints(void)
{
    struct {
        const char *s;
        long long v;
    } ok[] = {
        {"42", 42},
        {"-3", -3},
        {"+5", 5},
        {"0", 0},
        {"-0", 0},
        {"007", 7},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        long long v = 12345;
        CHECK(go_parse_int(ok[i].s, &v) && v == ok[i].v);
    }
    const char *bad[] = {"",
                         "+",
                         "-",
                         " 1",
                         "1 ",
                         "1x",
                         "0x10",
                         "1.0",
                         "1e3",
                         "--1",
                         "+-1",
                         "1_000",
                         "9223372036854775808",
                         "-9223372036854775809",
                         "99999999999999999999"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        long long v = 7;
        CHECK(!go_parse_int(bad[i], &v) && v == 7);
    }
}

static void test_durations_valid(void)
{
    struct {
        const char *s;
        int64_t ns;
    } ok[] = {
        {"0", 0},
        {"-0", 0},
        {"+0", 0},
        {"300ms", 300000000},
        {"-1.5h", -5400000000000},
        {"2h45m", 9900000000000},
        {"1m30s", 90000000000},
        {"1m30.5s", 90500000000},
        {"1.5h", 5400000000000},
        {"10s", 10000000000},
        {"1µs", 1000},        /* U+00B5 */
        {"1\xCE\xBCs", 1000}, /* U+03BC */
        {"1us", 1000},
        {"1ns", 1},
        {".5s", 500000000},
        {"1.s", 1000000000},
        {"0s", 0},
        {"+250ms", 250000000},
        {"1h1m1s1ms1us1ns", 3661001001001},
        {"0.1µs1ns", 101},
        {"1h15m30.918273645s", 4530918273645},
        {"1.0000000001s", 1000000000}, /* below a nanosecond: truncated */
        {"9223372036854775807ns", INT64_MAX},
        {"-9223372036854775808ns", INT64_MIN},
        {"2562047h47m16.854775807s", INT64_MAX},
        /* 19 fraction digits fill a uint64; Go ignores the ones after. */
        {"0.50000000000000000000000001h", 1800000000000},
        /* Go scales fractions in float64, which is 1 ns below the exact 1707457108860 here. */
        {"0.47429364135000h", 1707457108859},
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        int64_t v = -42;
        bool parsed = go_parse_duration(ok[i].s, &v);
        CHECK(parsed && v == ok[i].ns);
        if (!parsed || v != ok[i].ns)
            fprintf(stderr, "  duration %s -> %d %lld\n", ok[i].s, parsed, (long long)v);
    }
}

static void test_durations_invalid(void)
{
    const char *bad[] = {
        "",
        "1",
        "s",
        "1x",
        "--1s",
        "9223372036854775808ns",
        "1.5",
        ".s",
        "-.s",
        "1 s",
        " 1s",
        "1s ",
        "+",
        "-",
        "00",
        "1e3s",
        "1.5.5s",
        "1hh",
        "1Ms",
        "1µ",
        "µs",
        "3000000h",
        "9223372036854775807ns1ns",
        "-9223372036854775809ns",
        "9223372036854775808ns9223372036854775808ns", /* Go wraps this to 0 */
        "100000000000000000000ns",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t v = -42;
        bool parsed = go_parse_duration(bad[i], &v);
        CHECK(!parsed && v == -42);
        if (parsed || v != -42)
            fprintf(stderr, "  duration \"%s\" accepted as %lld\n", bad[i], (long long)v);
    }
    int64_t v = -42;
    CHECK(!go_parse_duration(NULL, &v) && v == -42);
}

/* 2024-01-02T15:04:05.123456789Z, a Tuesday, day 2 of the year. */
static const struct timespec T = {1704207845, 123456789};

static void check_format_at(const struct timespec *ts, bool utc, const char *layout,
                            const char *want)
{
    char buf[160];
    size_t n = go_time_format(buf, sizeof(buf), layout, ts, utc);
    CHECK_STR(buf, want);
    CHECK(n == strlen(buf));
}

static void check_format(const char *layout, const char *want)
{
    check_format_at(&T, true, layout, want);
}

static void test_layouts(void)
{
    check_format(GO_RFC3339, "2024-01-02T15:04:05Z");
    check_format("2006-01-02T15:04:05.999999999Z07:00", "2024-01-02T15:04:05.123456789Z");
    check_format("2006-01-02 15:04:05.000", "2024-01-02 15:04:05.123");
    check_format("05.000000000000", "05.123456789"); /* more than 9 digits: nanoseconds */
    check_format("05.9 05.99 05.9999", "05.1 05.12 05.1234");
    check_format("15:04:05,000000", "15:04:05,123456");
    check_format("15:04:05,999", "15:04:05,123");
    check_format("Jan _2 Mon PM 03:04", "Jan  2 Tue PM 03:04");
    check_format("January Monday pm", "January Tuesday pm");
    check_format("3:04PM", "3:04PM");                                 /* time.Kitchen */
    check_format("Jan _2 15:04:05.000000", "Jan  2 15:04:05.123456"); /* time.StampMicro */
    check_format("Mon Jan _2 15:04:05 MST 2006", "Tue Jan  2 15:04:05 UTC 2024"); /* UnixDate */
    check_format("02 Jan 06 15:04 -0700", "02 Jan 24 15:04 +0000");               /* RFC822Z */
    check_format("Z0700", "Z");
    check_format("-0700 Z0700 -07:00 Z07:00 -07 Z07 MST", "+0000 Z +00:00 Z +00 Z UTC");
    check_format("-070000 Z070000 -07:00:00 Z07:00:00", "+000000 Z +00:00:00 Z");
    check_format("002 __2", "002   2");
    check_format("06 1/2 3:4:5", "24 1/2 3:4:5");
    check_format("_2006", "_2024"); /* a literal '_' and the year */
    /* "Jan" and "Mon" followed by a lower-case letter are text, as in Go. */
    check_format("Janet Month MSTx", "Janet Month UTCx");
    check_format("literal text: yes", "literal text: yes");
    check_format("15.0009", "15.0009"); /* a digit after the run: not a fraction */
    check_format("", "");
}

static void test_layout_edges(void)
{
    struct timespec whole = {1704207845, 0};
    check_format_at(&whole, true, "05.999", "05"); /* .999 of zero: the dot goes too */
    check_format_at(&whole, true, "05,999", "05");
    check_format_at(&whole, true, "05.000", "05.000");
    struct timespec tenth = {1704207845, 100000000};
    check_format_at(&tenth, true, "05.999999", "05.1");
    /* 2024-12-31T00:04:05Z: midnight is 12 AM, day 366 of a leap year. */
    struct timespec last = {1735603445, 0};
    check_format_at(&last, true, "3:04PM pm 03 15", "12:04AM am 12 00");
    check_format_at(&last, true, "002 __2 _2 2 Monday", "366 366 31 31 Tuesday");
    /* Day 45: __2 pads to three columns. */
    struct timespec feb = {1707868800, 0}; /* 2024-02-14 */
    check_format_at(&feb, true, "__2|002|January", " 45|045|February");

    char buf[64];
    CHECK(go_time_format(buf, 6, GO_RFC3339, &whole, true) == 5);
    CHECK_STR(buf, "2024-"); /* truncated, still terminated */
    buf[0] = 'x';
    CHECK(go_time_format(buf, 0, GO_RFC3339, &whole, true) == 0 && buf[0] == 'x');
    CHECK(go_time_format(buf, 1, GO_RFC3339, &whole, true) == 0 && buf[0] == '\0');
    CHECK(go_time_format(buf, sizeof(buf), NULL, &whole, true) == 20); /* NULL: RFC 3339 */
}

static void test_local_zones(void)
{
    /* POSIX TZ strings need no zone database. XST is 5:30 east of UTC. */
    setenv("TZ", "XST-05:30", 1);
    tzset();
    check_format_at(&T, false, "15:04 MST -07:00 Z07:00 -0700 Z070000 -07:00:00 -07",
                    "20:34 XST +05:30 +05:30 +0530 +053000 +05:30:00 +05");
    /* ABC is 3:15:30 west: offsets with seconds. */
    setenv("TZ", "ABC+03:15:30", 1);
    tzset();
    check_format_at(&T, false, "15:04:05 MST Z07:00:00 -070000 Z0700",
                    "11:48:35 ABC -03:15:30 -031530 -0315");
    /* UTC output ignores TZ. */
    check_format_at(&T, true, "15:04 MST Z07:00", "15:04 UTC Z");
    unsetenv("TZ");
    tzset();
}

int main(void)
{
    test_bools();
    test_ints();
    test_durations_valid();
    test_durations_invalid();
    test_layouts();
    test_layout_edges();
    test_local_zones();
    return check_summary("test_gofmt");
}
