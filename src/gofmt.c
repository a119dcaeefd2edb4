/* Go-compatible parsing and formatting. See include/gofmt.h.
 *
 * Each function follows the algorithm of the Go standard library function it stands for, so that
 * a value the Go extension accepted means the same thing here, and a value it refused is refused
 * here too. */
#include "gofmt.h"

#include <stdio.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- strconv.ParseBool and strconv.Atoi ---- */

bool go_parse_bool(const char *s, bool *out)
{
    static const char *const spellings[] = {"1", "t", "T", "TRUE",  "true",  "True",
                                            "0", "f", "F", "FALSE", "false", "False"};
    if (!s)
        return false;
    for (size_t i = 0; i < ARRAY_LEN(spellings); i++) {
        if (strcmp(s, spellings[i]) == 0) {
            *out = i < ARRAY_LEN(spellings) / 2; /* the first half are the true ones */
            return true;
        }
    }
    return false;
}

bool go_parse_int(const char *s, long long *out)
{
    if (!s)
        return false;
    bool neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return false; /* "", "+" and "-" */
    /* Accumulate the magnitude unsigned: -9223372036854775808 has no positive counterpart. */
    const unsigned long long limit = neg ? (unsigned long long)INT64_MAX + 1 : INT64_MAX;
    unsigned long long v = 0;
    for (; *s; s++) {
        if (!is_digit(*s))
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (v == limit ? INT64_MIN : -(long long)v) : (long long)v;
    return true;
}

/* ---- time.ParseDuration ---- */

/* Go's bound: magnitudes up to 1<<63 are kept while parsing so that "-9223372036854775808ns"
 * (INT64_MIN) is representable. */
#define DUR_LIMIT ((uint64_t)1 << 63)

static const struct {
    const char *name;
    uint64_t ns;
} duration_units[] = {
    {"ns", 1},           {"us", 1000},      {"\xC2\xB5s", 1000}, /* U+00B5 MICRO SIGN */
    {"\xCE\xBCs", 1000},                                         /* U+03BC GREEK SMALL LETTER MU */
    {"ms", 1000000},     {"s", 1000000000}, {"m", 60000000000},  {"h", 3600000000000},
};

/* Go's leadingInt: [0-9]*, refused once past 1<<63. */
static bool leading_int(const char **s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = *s;
    for (; is_digit(*p); p++) {
        if (v > DUR_LIMIT / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > DUR_LIMIT)
            return false;
    }
    *out = v;
    *s = p;
    return true;
}

/* Go's leadingFraction: [0-9]* after the point as value / scale. Digits past what a uint64 can
 * hold are consumed and ignored (they are below a nanosecond), never an error. */
static void leading_fraction(const char **s, uint64_t *out, double *scale)
{
    uint64_t v = 0;
    double sc = 1;
    bool overflow = false;
    const char *p = *s;
    for (; is_digit(*p); p++) {
        if (overflow)
            continue;
        if (v > (DUR_LIMIT - 1) / 10) {
            overflow = true;
            continue;
        }
        uint64_t y = v * 10 + (uint64_t)(*p - '0');
        if (y > DUR_LIMIT) {
            overflow = true;
            continue;
        }
        v = y;
        sc *= 10;
    }
    *out = v;
    *scale = sc;
    *s = p;
}

/* The unit is everything up to the next digit or '.', and must be a known unit exactly. */
static bool parse_unit(const char **s, uint64_t *unit)
{
    size_t n = strcspn(*s, ".0123456789");
    for (size_t i = 0; n > 0 && i < ARRAY_LEN(duration_units); i++) {
        if (strlen(duration_units[i].name) == n && memcmp(*s, duration_units[i].name, n) == 0) {
            *unit = duration_units[i].ns;
            *s += n;
            return true;
        }
    }
    return false;
}

/* One "[0-9]*(.[0-9]*)?unit" group, added to *total. */
static bool parse_duration_group(const char **s, uint64_t *total)
{
    const char *p = *s;
    uint64_t v, f = 0, unit;
    double scale = 1;
    if (!(*p == '.' || is_digit(*p)) || !leading_int(&p, &v))
        return false;
    bool pre = p != *s, post = false;
    if (*p == '.') {
        const char *frac = ++p;
        leading_fraction(&p, &f, &scale);
        post = p != frac;
    }
    if ((!pre && !post) || !parse_unit(&p, &unit) || v > DUR_LIMIT / unit)
        return false; /* ".s": no digits at all; "1": no unit */
    v *= unit;
    if (f > 0) {
        /* Exactly Go's expression: float64(f) * (float64(unit) / scale), truncated. f < scale,
         * so the product is below one unit (at most 3.6e12) and the conversion is exact. */
        v += (uint64_t)((double)f * ((double)unit / scale));
        if (v > DUR_LIMIT)
            return false;
    }
    /* Go adds without this check and can wrap at exactly 2 * (1<<63); we refuse instead. */
    if (v > DUR_LIMIT - *total)
        return false;
    *total += v;
    *s = p;
    return true;
}

bool go_parse_duration(const char *s, int64_t *out_ns)
{
    if (!s)
        return false;
    bool neg = *s == '-';
    if (*s == '-' || *s == '+')
        s++;
    if (strcmp(s, "0") == 0) { /* the only number allowed without a unit */
        *out_ns = 0;
        return true;
    }
    if (!*s)
        return false;
    uint64_t total = 0;
    while (*s)
        if (!parse_duration_group(&s, &total))
            return false;
    if (!neg && total > (uint64_t)INT64_MAX)
        return false;
    *out_ns = neg ? (total == DUR_LIMIT ? INT64_MIN : -(int64_t)total) : (int64_t)total;
    return true;
}

/* ---- time.Time.Format ---- */

/* The layout elements, as Go's nextStdChunk recognises them. */
enum elem {
    E_NONE = 0,
    E_LONG_MONTH,   /* January */
    E_MONTH,        /* Jan */
    E_NUM_MONTH,    /* 1 */
    E_ZERO_MONTH,   /* 01 */
    E_LONG_WEEKDAY, /* Monday */
    E_WEEKDAY,      /* Mon */
    E_DAY,          /* 2 */
    E_UNDER_DAY,    /* _2 */
    E_ZERO_DAY,     /* 02 */
    E_UNDER_YDAY,   /* __2 */
    E_ZERO_YDAY,    /* 002 */
    E_HOUR,         /* 15 */
    E_HOUR12,       /* 3 */
    E_ZERO_HOUR12,  /* 03 */
    E_MINUTE,       /* 4 */
    E_ZERO_MINUTE,  /* 04 */
    E_SECOND,       /* 5 */
    E_ZERO_SECOND,  /* 05 */
    E_LONG_YEAR,    /* 2006 */
    E_YEAR,         /* 06 */
    E_PM,           /* PM */
    E_pm,           /* pm */
    E_ZONE_NAME,    /* MST */
    E_ZONE,         /* Z07:00, -0700, ...: see struct zone_style */
    E_FRACTION,     /* .000 .999 ,000 ,999 */
};

struct zone_style {
    bool z;       /* "Z" for UTC (the ISO 8601 forms) */
    bool colon;   /* "+07:00" rather than "+0700" */
    bool minutes; /* false for the hours-only "-07" and "Z07" */
    bool seconds; /* "+07:00:00" */
};

struct element {
    enum elem kind;
    size_t len; /* layout bytes it spans */
    struct zone_style zone;
    char sep;      /* E_FRACTION: '.' or ',' */
    size_t digits; /* E_FRACTION: 1 to 9 */
    bool trim;     /* E_FRACTION: the .999 form */
};

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Longest first: each table is tried in order and the first prefix wins. */
static bool match_zone(const char *l, struct element *e)
{
    static const struct {
        const char *tok;
        struct zone_style style;
    } zones[] = {
        {"Z070000", {true, false, true, true}},   {"Z07:00:00", {true, true, true, true}},
        {"Z0700", {true, false, true, false}},    {"Z07:00", {true, true, true, false}},
        {"Z07", {true, false, false, false}},     {"-070000", {false, false, true, true}},
        {"-07:00:00", {false, true, true, true}}, {"-0700", {false, false, true, false}},
        {"-07:00", {false, true, true, false}},   {"-07", {false, false, false, false}},
    };
    for (size_t i = 0; i < ARRAY_LEN(zones); i++) {
        if (starts_with(l, zones[i].tok)) {
            *e = (struct element){.kind = E_ZONE, .len = strlen(zones[i].tok)};
            e->zone = zones[i].style;
            return true;
        }
    }
    return false;
}

/* ".000", ",999": a run of one repeated digit (0 or 9) that no other digit follows. */
static bool match_fraction(const char *l, struct element *e)
{
    if (l[1] != '0' && l[1] != '9')
        return false;
    size_t n = 1;
    while (l[n] == l[1])
        n++;
    if (is_digit(l[n]))
        return false;
    *e = (struct element){.kind = E_FRACTION, .len = n, .sep = l[0]};
    e->digits = n - 1 > 9 ? 9 : n - 1; /* Go prints at most nanoseconds */
    e->trim = l[1] == '9';
    return true;
}

static struct element simple(enum elem kind, size_t len)
{
    return (struct element){.kind = kind, .len = len};
}

/* "Jan" and "Mon" count only when no lower-case letter follows: "Janet" and "Month" are text. */
static bool lower_next(const char *l, size_t n)
{
    return l[n] >= 'a' && l[n] <= 'z';
}

/* The element at the start of l; kind E_NONE when l starts with plain text. */
static struct element next_element(const char *l)
{
    static const enum elem zero_x[] = {E_ZERO_MONTH,  E_ZERO_DAY,    E_ZERO_HOUR12,
                                       E_ZERO_MINUTE, E_ZERO_SECOND, E_YEAR};
    struct element e = {0};
    switch (l[0]) {
    case 'J':
        if (starts_with(l, "January"))
            return simple(E_LONG_MONTH, 7);
        if (starts_with(l, "Jan") && !lower_next(l, 3))
            return simple(E_MONTH, 3);
        break;
    case 'M':
        if (starts_with(l, "Monday"))
            return simple(E_LONG_WEEKDAY, 6);
        if (starts_with(l, "Mon") && !lower_next(l, 3))
            return simple(E_WEEKDAY, 3);
        if (starts_with(l, "MST"))
            return simple(E_ZONE_NAME, 3);
        break;
    case '0':
        if (l[1] >= '1' && l[1] <= '6')
            return simple(zero_x[l[1] - '1'], 2);
        if (l[1] == '0' && l[2] == '2')
            return simple(E_ZERO_YDAY, 3);
        break;
    case '1':
        return l[1] == '5' ? simple(E_HOUR, 2) : simple(E_NUM_MONTH, 1);
    case '2':
        return starts_with(l, "2006") ? simple(E_LONG_YEAR, 4) : simple(E_DAY, 1);
    case '_':
        /* "_2006" is a literal '_' and a year: leave the '_' as text, "2006" matches next. */
        if (l[1] == '2' && !starts_with(l + 1, "2006"))
            return simple(E_UNDER_DAY, 2);
        if (l[1] == '_' && l[2] == '2')
            return simple(E_UNDER_YDAY, 3);
        break;
    case '3':
        return simple(E_HOUR12, 1);
    case '4':
        return simple(E_MINUTE, 1);
    case '5':
        return simple(E_SECOND, 1);
    case 'P':
        if (l[1] == 'M')
            return simple(E_PM, 2);
        break;
    case 'p':
        if (l[1] == 'm')
            return simple(E_pm, 2);
        break;
    case 'Z':
    case '-':
        if (match_zone(l, &e))
            return e;
        break;
    case '.':
    case ',':
        if (match_fraction(l, &e))
            return e;
        break;
    }
    return simple(E_NONE, 0);
}

/* A bounded output: len counts every byte offered, only those that fit are stored. */
struct out {
    char *buf;
    size_t cap, len;
};

static void put(struct out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, o->len++)
        if (o->len + 1 < o->cap)
            o->buf[o->len] = s[i];
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* printf-style with one int argument: "%02d", "%3d", ... */
static void put_int(struct out *o, const char *fmt, int v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), fmt, v);
    if (n > 0)
        put(o, tmp, (size_t)n);
}

/* Go's zone offsets: sign, hours, then minutes and seconds as the style asks. */
static void put_zone(struct out *o, long offset, struct zone_style st)
{
    if (st.z && offset == 0) {
        put_str(o, "Z");
        return;
    }
    long a = offset < 0 ? -offset : offset;
    put_str(o, offset < 0 ? "-" : "+");
    put_int(o, "%02d", (int)(a / 3600));
    if (st.minutes) {
        if (st.colon)
            put_str(o, ":");
        put_int(o, "%02d", (int)(a / 60 % 60));
    }
    if (st.seconds) {
        if (st.colon)
            put_str(o, ":");
        put_int(o, "%02d", (int)(a % 60));
    }
}

/* MST: the zone's abbreviation; without one Go prints the offset as -0700. */
static void put_zone_name(struct out *o, const struct tm *t)
{
    if (t->tm_zone && t->tm_zone[0])
        put_str(o, t->tm_zone);
    else
        put_zone(o, t->tm_gmtoff, (struct zone_style){false, false, true, false});
}

/* .000 prints a fixed number of digits; .999 drops trailing zeros, and the separator too when
 * nothing is left. */
static void put_fraction(struct out *o, const struct element *e, long nsec)
{
    char digits[16];
    snprintf(digits, sizeof(digits), "%09ld", nsec);
    size_t n = e->digits;
    if (e->trim)
        while (n > 0 && digits[n - 1] == '0')
            n--;
    if (n == 0 && e->trim)
        return;
    put(o, &e->sep, 1);
    put(o, digits, n);
}

static void put_element(struct out *o, const struct element *e, const struct tm *t, long nsec)
{
    static const char *const months[] = {"January",   "February", "March",    "April",
                                         "May",       "June",     "July",     "August",
                                         "September", "October",  "November", "December"};
    static const char *const days[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                       "Thursday", "Friday", "Saturday"};
    int hour12 = t->tm_hour % 12 == 0 ? 12 : t->tm_hour % 12;
    int yday = t->tm_yday + 1;
    switch (e->kind) {
    case E_NONE:
        break;
    case E_LONG_MONTH:
        put_str(o, months[t->tm_mon]);
        break;
    case E_MONTH:
        put(o, months[t->tm_mon], 3);
        break;
    case E_NUM_MONTH:
        put_int(o, "%d", t->tm_mon + 1);
        break;
    case E_ZERO_MONTH:
        put_int(o, "%02d", t->tm_mon + 1);
        break;
    case E_LONG_WEEKDAY:
        put_str(o, days[t->tm_wday]);
        break;
    case E_WEEKDAY:
        put(o, days[t->tm_wday], 3);
        break;
    case E_DAY:
        put_int(o, "%d", t->tm_mday);
        break;
    case E_UNDER_DAY:
        put_int(o, "%2d", t->tm_mday);
        break;
    case E_ZERO_DAY:
        put_int(o, "%02d", t->tm_mday);
        break;
    case E_UNDER_YDAY:
        put_int(o, "%3d", yday);
        break;
    case E_ZERO_YDAY:
        put_int(o, "%03d", yday);
        break;
    case E_HOUR:
        put_int(o, "%02d", t->tm_hour);
        break;
    case E_HOUR12:
        put_int(o, "%d", hour12);
        break;
    case E_ZERO_HOUR12:
        put_int(o, "%02d", hour12);
        break;
    case E_MINUTE:
        put_int(o, "%d", t->tm_min);
        break;
    case E_ZERO_MINUTE:
        put_int(o, "%02d", t->tm_min);
        break;
    case E_SECOND:
        put_int(o, "%d", t->tm_sec);
        break;
    case E_ZERO_SECOND:
        put_int(o, "%02d", t->tm_sec);
        break;
    case E_LONG_YEAR:
        put_int(o, "%04d", t->tm_year + 1900);
        break;
    case E_YEAR:
        put_int(o, "%02d", (t->tm_year + 1900) % 100);
        break;
    case E_PM:
        put_str(o, t->tm_hour >= 12 ? "PM" : "AM");
        break;
    case E_pm:
        put_str(o, t->tm_hour >= 12 ? "pm" : "am");
        break;
    case E_ZONE_NAME:
        put_zone_name(o, t);
        break;
    case E_ZONE:
        put_zone(o, t->tm_gmtoff, e->zone);
        break;
    case E_FRACTION:
        put_fraction(o, e, nsec);
        break;
    }
}

size_t go_time_format(char *buf, size_t cap, const char *layout, const struct timespec *ts,
                      bool utc)
{
    struct tm t;
    time_t sec = ts->tv_sec;
    if (utc ? !gmtime_r(&sec, &t) : !localtime_r(&sec, &t))
        t = (struct tm){.tm_mday = 1, .tm_year = 70}; /* out of range: print the epoch */
    if (utc) {
        t.tm_zone = "UTC"; /* glibc says "GMT"; Go says "UTC" */
        t.tm_gmtoff = 0;
    }
    long nsec = ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000 ? ts->tv_nsec : 0;
    struct out o = {buf, cap, 0};
    for (const char *l = layout ? layout : GO_RFC3339; *l;) {
        struct element e = next_element(l);
        if (e.kind == E_NONE) {
            put(&o, l++, 1); /* plain text is copied */
            continue;
        }
        put_element(&o, &e, &t, nsec);
        l += e.len;
    }
    if (cap == 0)
        return 0;
    size_t n = o.len < cap ? o.len : cap - 1;
    buf[n] = '\0';
    return n;
}
