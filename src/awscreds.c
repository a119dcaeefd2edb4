/* See include/awscreds.h. */
#include "awscreds.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "util.h"

static bool host_allowed_for_http(const char *h, size_t n)
{
    static const char *const named[] = {"localhost", "169.254.170.2", "169.254.170.23", "::1",
                                        "fd00:ec2::23"};
    for (size_t i = 0; i < PLE_ARRAY_LEN(named); i++)
        if (strlen(named[i]) == n && strncasecmp(h, named[i], n) == 0)
            return true;
    /* 127.0.0.0/8: four dotted decimals, the first 127 */
    unsigned a, b, c, d;
    char tail;
    char ip[16];
    if (n >= sizeof(ip))
        return false;
    memcpy(ip, h, n);
    ip[n] = '\0';
    return sscanf(ip, "%3u.%3u.%3u.%3u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256;
}

bool credentials_uri_ok(const char *uri, char *why, size_t cap)
{
    bool https = strncmp(uri, "https://", 8) == 0;
    if (!https && strncmp(uri, "http://", 7) != 0) {
        snprintf(why, cap, "must start with http:// or https://");
        return false;
    }
    const char *auth = uri + (https ? 8 : 7);
    size_t alen = strcspn(auth, "/?#");
    if (memchr(auth, '@', alen)) {
        snprintf(why, cap, "must not hold a user name or password");
        return false;
    }
    const char *host = auth;
    size_t hlen;
    if (*host == '[') {
        const char *close = memchr(host, ']', alen);
        if (!close) {
            snprintf(why, cap, "has an unterminated [IPv6] host");
            return false;
        }
        host++;
        hlen = (size_t)(close - host);
    } else {
        hlen = strcspn(host, ":/?#");
    }
    if (hlen == 0) {
        snprintf(why, cap, "has no host");
        return false;
    }
    if (!https && !host_allowed_for_http(host, hlen)) {
        snprintf(why, cap,
                 "http:// only to loopback, 169.254.170.2, 169.254.170.23 or "
                 "fd00:ec2::23 (as in the AWS SDKs)");
        return false;
    }
    return true;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int64_t credentials_parse_time(const char *s)
{
    /* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
    if (!s || strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = digits(s + 11, 2),
        mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        sec < 0 || sec > 60)
        return -1;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    int64_t offset = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        offset = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        offset = (*p == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
    } else {
        return -1;
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != d) /* 31 February and the like */
        return -1;
    return (int64_t)t - offset;
}

void credentials_clear_parsed(struct aws_credentials *a)
{
    free_secret(a->access_key);
    free_secret(a->secret_key);
    free_secret(a->token);
    *a = (struct aws_credentials){0};
}

/* A non-empty string member, copied; else why names it. */
static char *member(json_t *o, const char *key, char *why, size_t cap)
{
    json_t *v = json_object_get(o, key);
    const char *s = json_string_value(v);
    if (!v)
        snprintf(why, cap, "the answer has no %s", key);
    else if (!s || !*s)
        snprintf(why, cap, "the answer's %s is not a non-empty string", key);
    else if (strpbrk(s, "\r\n"))
        snprintf(why, cap, "the answer's %s holds a line break", key);
    else
        return strdup(s);
    return NULL;
}

int credentials_parse(const char *body, size_t len, struct aws_credentials *out, char *why,
                      size_t cap)
{
    *out = (struct aws_credentials){0};
    json_error_t jerr;
    json_t *o = json_loadb(body, len, 0, &jerr);
    if (!json_is_object(o)) {
        snprintf(why, cap, "the answer is not a JSON object (%zu bytes)", len);
        json_decref(o);
        return -1;
    }
    /* jansson keeps its own copies of the secrets: wiped before it frees them. */
    int rc = -1;
    if ((out->access_key = member(o, "AccessKeyId", why, cap)) &&
        (out->secret_key = member(o, "SecretAccessKey", why, cap)) &&
        (out->token = member(o, "Token", why, cap))) {
        const char *exp = json_string_value(json_object_get(o, "Expiration"));
        out->expiration_s = credentials_parse_time(exp);
        if (!exp)
            snprintf(why, cap, "the answer has no Expiration");
        else if (out->expiration_s < 0)
            snprintf(why, cap, "the answer's Expiration is not an ISO 8601 time");
        else
            rc = 0;
    }
    const char *keys[] = {"SecretAccessKey", "Token"};
    for (size_t i = 0; i < PLE_ARRAY_LEN(keys); i++) {
        json_t *v = json_object_get(o, keys[i]);
        const char *s = json_string_value(v);
        if (s)
            explicit_bzero((char *)s, strlen(s));
    }
    json_decref(o);
    if (rc != 0)
        credentials_clear_parsed(out);
    return rc;
}

void credentials_schedule(int64_t now_s, int64_t expiration_s, int64_t *refresh_at_s,
                          int64_t *stale_at_s)
{
    int64_t life = expiration_s - now_s;
    if (life <= 0) {
        *refresh_at_s = *stale_at_s = now_s;
        return;
    }
    int64_t refresh = life / 2 < 300 ? life / 2 : 300;
    int64_t stale = life / 4 < 60 ? life / 4 : 60;
    *refresh_at_s = expiration_s - refresh;
    *stale_at_s = expiration_s - stale;
}
