/* Go-compatible parsing and formatting. See include/gofmt.h. */
#include "gofmt.h"

#include <stdio.h>
#include <string.h>

bool go_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    if (!s)
        return false;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

bool go_parse_int(const char *s, long long *out)
{
    if (!s || !*s)
        return false;
    bool neg = *s == '-';
    if (*s == '+' || *s == '-')
        s++;
    if (!*s)
        return false;
    unsigned long long v = 0, limit = neg ? 9223372036854775808ULL : 9223372036854775807ULL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (long long)(0 - v) : (long long)v;
    return true;
}

/* Units of time.ParseDuration, longest spellings first where one is a prefix of another. */
static const struct {
    const char *name;
    uint64_t ns;
} duration_units[] = {
    {"ns", 1ULL},           {"us", 1000ULL},      {"\xC2\xB5s", 1000ULL}, /* U+00B5 micro sign */
    {"\xCE\xBCs", 1000ULL}, /* U+03BC Greek small letter mu */
    {"ms", 1000000ULL},     {"s", 1000000000ULL}, {"m", 60000000000ULL},  {"h", 3600000000000ULL},
};

static const char *parse_unit(const char *s, uint64_t *unit)
{
    size_t n = 0;
    while (s[n] && s[n] != '.' && (s[n] < '0' || s[n] > '9'))
        n++;
    for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
        if (strlen(duration_units[i].name) == n && strncmp(s, duration_units[i].name, n) == 0) {
            *unit = duration_units[i].ns;
            return s + n;
        }
    }
    return NULL;
}

/* Adds one "<int>[.<frac>]<unit>" group to *total, the way Go does: the integer part is scaled
 * exactly, the fraction is scaled as a float of at most 19 significant digits. */
static const char *parse_group(const char *s, uint64_t *total, bool *ok)
{
    uint64_t whole = 0, frac = 0, scale = 1;
    bool pre = false, post = false, overflow = false;
    const uint64_t limit = 1ULL << 63; /* Go's bound: -1<<63 is the only value past INT64_MAX */
    for (; *s >= '0' && *s <= '9'; s++, pre = true) {
        if (overflow || whole > limit / 10) {
            overflow = true;
            continue;
        }
        whole = whole * 10 + (uint64_t)(*s - '0');
        overflow = whole > limit;
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, post = true) {
            if (scale < 10000000000000000000ULL / 10 && !overflow) {
                frac = frac * 10 + (uint64_t)(*s - '0');
                scale *= 10;
            }
        }
    }
    uint64_t unit;
    const char *after = parse_unit(s, &unit);
    if ((!pre && !post) || overflow || !after) {
        *ok = false;
        return s;
    }
    s = after;
    if (whole > limit / unit) {
        *ok = false;
        return s;
    }
    uint64_t v = whole * unit;
    if (frac)
        v += (uint64_t)((double)frac * ((double)unit / (double)scale));
    *total += v;
    if (*total > limit)
        *ok = false;
    return s;
}

bool go_parse_duration(const char *s, int64_t *out_ns)
{
    if (!s || !*s)
        return false;
    bool neg = false;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    if (strcmp(s, "0") == 0) {
        *out_ns = 0;
        return true;
    }
    if (!*s)
        return false;
    uint64_t total = 0;
    bool ok = true;
    while (ok && *s) {
        if (*s != '.' && (*s < '0' || *s > '9'))
            return false;
        s = parse_group(s, &total, &ok);
    }
    if (!ok || (!neg && total > (uint64_t)INT64_MAX))
        return false;
    *out_ns = neg ? (int64_t)(0 - total) : (int64_t)total;
    return true;
}

/* ---- time.Time.Format ---- */

static const char *const month_names[] = {"January",   "February", "March",    "April",
                                          "May",       "June",     "July",     "August",
                                          "September", "October",  "November", "December"};
static const char *const day_names[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};

struct out {
    char *buf;
    size_t cap, len;
};

static void put(struct out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (o->len + 1 < o->cap)
            o->buf[o->len] = s[i];
        o->len++;
    }
}

static void putf(struct out *o, const char *fmt, int v)
{
    char tmp[16];
    int n = snprintf(tmp, sizeof(tmp), fmt, v);
    put(o, tmp, (size_t)n);
}

/* Zone offset in Go's styles: colons between fields, seconds optional, 'Z' for UTC. */
static void put_zone(struct out *o, long off, bool z, bool colon, bool hours_only, bool seconds)
{
    if (z && off == 0) {
        put(o, "Z", 1);
        return;
    }
    char sign = off < 0 ? '-' : '+';
    long a = off < 0 ? -off : off;
    put(o, &sign, 1);
    putf(o, "%02d", (int)(a / 3600));
    if (hours_only)
        return;
    if (colon)
        put(o, ":", 1);
    putf(o, "%02d", (int)(a / 60 % 60));
    if (seconds) {
        if (colon)
            put(o, ":", 1);
        putf(o, "%02d", (int)(a % 60));
    }
}

/* ".000" / ",999" and friends; returns the layout length consumed, or 0. */
static size_t put_fraction(struct out *o, const char *l, long nsec)
{
    if ((l[0] != '.' && l[0] != ',') || (l[1] != '0' && l[1] != '9'))
        return 0;
    size_t n = 1;
    while (l[n] == l[1])
        n++;
    if (l[n] >= '0' && l[n] <= '9')
        return 0; /* Go: a fraction must not be followed by a digit */
    size_t digits = n - 1 > 9 ? 9 : n - 1;
    char frac[10];
    snprintf(frac, sizeof(frac), "%09ld", nsec);
    frac[digits] = '\0';
    if (l[1] == '9') {
        size_t k = digits;
        while (k > 0 && frac[k - 1] == '0')
            k--;
        if (k == 0)
            return n;
        frac[k] = '\0';
    }
    put(o, &l[0], 1);
    put(o, frac, strlen(frac));
    return n;
}

static bool starts(const char *l, const char *tok)
{
    return strncmp(l, tok, strlen(tok)) == 0;
}

/* One element at l, if any; returns the layout length consumed (0: not an element). */
static size_t put_element(struct out *o, const char *l, const struct tm *t, long nsec)
{
    int hour12 = t->tm_hour % 12 == 0 ? 12 : t->tm_hour % 12;
    const char *zone = t->tm_zone ? t->tm_zone : "UTC";
    static const struct {
        const char *tok;
        int kind;
    } elems[] = {
        {"January", 1}, {"Jan", 2},     {"Monday", 3},   {"Mon", 4},        {"MST", 5},
        {"2006", 6},    {"002", 7},     {"__2", 8},      {"_2", 9},         {"01", 10},
        {"02", 11},     {"03", 12},     {"04", 13},      {"05", 14},        {"06", 15},
        {"15", 16},     {"PM", 17},     {"pm", 18},      {"Z07:00:00", 19}, {"-07:00:00", 20},
        {"Z07:00", 21}, {"-07:00", 22}, {"Z070000", 23}, {"-070000", 24},   {"Z0700", 25},
        {"-0700", 26},  {"Z07", 27},    {"-07", 28},     {"1", 29},         {"2", 30},
        {"3", 31},      {"4", 32},      {"5", 33},
    };
    for (size_t i = 0; i < sizeof(elems) / sizeof(elems[0]); i++) {
        if (!starts(l, elems[i].tok))
            continue;
        switch (elems[i].kind) {
        case 1:
            put(o, month_names[t->tm_mon], strlen(month_names[t->tm_mon]));
            break;
        case 2:
            put(o, month_names[t->tm_mon], 3);
            break;
        case 3:
            put(o, day_names[t->tm_wday], strlen(day_names[t->tm_wday]));
            break;
        case 4:
            put(o, day_names[t->tm_wday], 3);
            break;
        case 5:
            put(o, zone, strlen(zone));
            break;
        case 6:
            putf(o, "%04d", t->tm_year + 1900);
            break;
        case 7:
            putf(o, "%03d", t->tm_yday + 1);
            break;
        case 8:
            putf(o, "%3d", t->tm_yday + 1);
            break;
        case 9:
            putf(o, "%2d", t->tm_mday);
            break;
        case 10:
            putf(o, "%02d", t->tm_mon + 1);
            break;
        case 11:
            putf(o, "%02d", t->tm_mday);
            break;
        case 12:
            putf(o, "%02d", hour12);
            break;
        case 13:
            putf(o, "%02d", t->tm_min);
            break;
        case 14:
            putf(o, "%02d", t->tm_sec);
            break;
        case 15:
            putf(o, "%02d", (t->tm_year + 1900) % 100);
            break;
        case 16:
            putf(o, "%02d", t->tm_hour);
            break;
        case 17:
            put(o, t->tm_hour >= 12 ? "PM" : "AM", 2);
            break;
        case 18:
            put(o, t->tm_hour >= 12 ? "pm" : "am", 2);
            break;
        case 19:
            put_zone(o, t->tm_gmtoff, true, true, false, true);
            break;
        case 20:
            put_zone(o, t->tm_gmtoff, false, true, false, true);
            break;
        case 21:
            put_zone(o, t->tm_gmtoff, true, true, false, false);
            break;
        case 22:
            put_zone(o, t->tm_gmtoff, false, true, false, false);
            break;
        case 23:
            put_zone(o, t->tm_gmtoff, true, false, false, true);
            break;
        case 24:
            put_zone(o, t->tm_gmtoff, false, false, false, true);
            break;
        case 25:
            put_zone(o, t->tm_gmtoff, true, false, false, false);
            break;
        case 26:
            put_zone(o, t->tm_gmtoff, false, false, false, false);
            break;
        case 27:
            put_zone(o, t->tm_gmtoff, true, false, true, false);
            break;
        case 28:
            put_zone(o, t->tm_gmtoff, false, false, true, false);
            break;
        case 29:
            putf(o, "%d", t->tm_mon + 1);
            break;
        case 30:
            putf(o, "%d", t->tm_mday);
            break;
        case 31:
            putf(o, "%d", hour12);
            break;
        case 32:
            putf(o, "%d", t->tm_min);
            break;
        case 33:
            putf(o, "%d", t->tm_sec);
            break;
        }
        return strlen(elems[i].tok);
    }
    return put_fraction(o, l, nsec);
}

size_t go_time_format(char *buf, size_t cap, const char *layout, const struct timespec *ts,
                      bool utc)
{
    struct tm t;
    time_t sec = ts->tv_sec;
    if (utc)
        gmtime_r(&sec, &t);
    else
        localtime_r(&sec, &t);
    if (utc)
        t.tm_zone = "UTC";
    struct out o = {buf, cap, 0};
    for (const char *l = layout; *l;) {
        size_t n = put_element(&o, l, &t, ts->tv_nsec);
        if (n == 0) {
            put(&o, l, 1);
            n = 1;
        }
        l += n;
    }
    if (cap > 0)
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    return o.len < cap ? o.len : (cap ? cap - 1 : 0);
}
