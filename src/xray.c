/* Trace-sampled profiling, the pure part. See include/xray.h. */
#include "xray.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rewrite.h"
#include "util.h"

/* ---- the decision ---- */

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

static bool root_ok(const char *v, size_t n)
{
    return n == XRAY_ROOT_LEN && v[0] == '1' && v[1] == '-' && all_hex(v + 2, 8) && v[10] == '-' &&
           all_hex(v + 11, 24);
}

bool xray_parse_root(const char *tracing, char out[XRAY_ROOT_LEN + 1])
{
    out[0] = '\0';
    for (const char *p = tracing; p && *p;) {
        size_t n = strcspn(p, ";");
        const char *f = p, *end = p + n;
        while (f < end && (*f == ' ' || *f == '\t'))
            f++;
        while (end > f && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - f) > 5 && strncasecmp(f, "Root=", 5) == 0 &&
            root_ok(f + 5, (size_t)(end - f - 5))) {
            memcpy(out, f + 5, XRAY_ROOT_LEN);
            out[XRAY_ROOT_LEN] = '\0';
            return true;
        }
        p += n;
        if (*p == ';')
            p++;
    }
    return false;
}

uint16_t xray_hash16(const char *s)
{
    uint32_t h = 2166136261u;
    for (; s && *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return (uint16_t)(h ^ (h >> 16));
}

void xray_decide(const char *tracing, const char *request_id, struct xray_decision *d)
{
    d->traced = xray_parse_root(tracing, d->root);
    if (d->traced)
        d->value = (uint16_t)strtoul(d->root + XRAY_ROOT_LEN - 4, NULL, 16);
    else
        d->value = xray_hash16(request_id);
}

/* ---- multipart bodies ---- */

bool multipart_boundary(const char *ct, size_t len, char *out, size_t cap)
{
    static const char mt[] = "multipart/form-data";
    if (len < sizeof(mt) - 1 || strncasecmp(ct, mt, sizeof(mt) - 1) != 0)
        return false;
    for (size_t i = sizeof(mt) - 1; i + 9 <= len; i++) {
        if (strncasecmp(ct + i, "boundary=", 9) != 0 || (ct[i - 1] != ';' && ct[i - 1] != ' '))
            continue;
        const char *v = ct + i + 9, *end = ct + len;
        size_t n;
        if (v < end && *v == '"') {
            const char *q = memchr(v + 1, '"', (size_t)(end - v - 1));
            if (!q)
                return false;
            v++;
            n = (size_t)(q - v);
        } else {
            n = 0;
            while (v + n < end && v[n] != ';' && v[n] != ' ')
                n++;
        }
        if (n == 0 || n > 70 || n + 1 > cap) /* RFC 2046: 1 to 70 characters */
            return false;
        memcpy(out, v, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

/* Whether a Content-Disposition value [v, end) has the parameter name="want" (or name=want). */
static bool disposition_named(const char *v, const char *end, const char *want)
{
    size_t wlen = strlen(want);
    for (const char *q = v + 1; q + 5 <= end; q++) {
        if ((q[-1] != ';' && q[-1] != ' ') || strncasecmp(q, "name=", 5) != 0)
            continue;
        const char *n = q + 5;
        bool quoted = n < end && *n == '"';
        n += quoted;
        if ((size_t)(end - n) < wlen + quoted || memcmp(n, want, wlen) != 0)
            continue;
        const char *after = n + wlen;
        if (quoted ? *after == '"' : (after == end || *after == ';' || *after == ' '))
            return true;
    }
    return false;
}

/* Whether the part headers [h, h+n) hold a form-data disposition with the name want. */
static bool part_named(const char *h, size_t n, const char *want)
{
    static const char cd[] = "content-disposition:";
    for (const char *p = h, *end = h + n; p < end;) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        const char *le = eol ? eol : end;
        if ((size_t)(le - p) > sizeof(cd) - 1 && strncasecmp(p, cd, sizeof(cd) - 1) == 0 &&
            disposition_named(p + sizeof(cd) - 1, le, want))
            return true;
        p = eol ? eol + 2 : end;
    }
    return false;
}

bool multipart_part(const char *body, size_t len, const char *boundary, const char *name,
                    const char **data, size_t *data_len)
{
    char delim[80];
    int dn = snprintf(delim, sizeof(delim), "--%s", boundary);
    if (dn < 0 || (size_t)dn >= sizeof(delim))
        return false;
    const char *end = body + len;
    const char *p = memmem(body, len, delim, (size_t)dn); /* the first delimiter */
    while (p) {
        p += dn;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return false; /* the closing delimiter */
        const char *hdr_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hdr_end)
            return false;
        const char *content = hdr_end + 4;
        char next_delim[84];
        int nn = snprintf(next_delim, sizeof(next_delim), "\r\n%s", delim);
        const char *next = memmem(content, (size_t)(end - content), next_delim, (size_t)nn);
        if (!next)
            return false; /* a part that is never closed is not trusted */
        if (part_named(p, (size_t)(hdr_end - p) + 2, name)) {
            *data = content;
            *data_len = (size_t)(next - content);
            return true;
        }
        p = next + 2;
    }
    return false;
}

void archive_select(const char *query, size_t query_len, const char *content_type,
                    size_t content_type_len, const char *body, size_t body_len,
                    struct archive_payload *out)
{
    char format[32] = "", boundary[80];
    query_param(query, query_len, "format", format, sizeof(format));
    *out = (struct archive_payload){body, body_len, "bin", "application/octet-stream"};
    if (content_type &&
        multipart_boundary(content_type, content_type_len, boundary, sizeof(boundary))) {
        if (multipart_part(body, body_len, boundary, "profile", &out->data, &out->len)) {
            out->ext = "pprof";
            return;
        }
        if (multipart_part(body, body_len, boundary, "jfr", &out->data, &out->len)) {
            out->ext = "jfr";
            return;
        }
        out->ext = "multipart"; /* an unknown form: kept whole, as received */
        return;
    }
    static const struct {
        const char *format, *ext, *type;
    } by_format[] = {
        {"", "folded", "text/plain"}, /* the ingest API's default format */
        {"folded", "folded", "text/plain"},
        {"lines", "lines", "text/plain"},
        {"pprof", "pprof", "application/octet-stream"},
        {"jfr", "jfr", "application/octet-stream"},
        {"trie", "trie", "application/octet-stream"},
        {"tree", "tree", "application/octet-stream"},
        {"speedscope", "speedscope.json", "application/json"},
    };
    for (size_t i = 0; i < sizeof(by_format) / sizeof(by_format[0]); i++) {
        if (strcmp(format, by_format[i].format) == 0) {
            out->ext = by_format[i].ext;
            out->content_type = by_format[i].type;
            return;
        }
    }
}

/* ---- keys and URLs ---- */

/* Appends s with every character outside [A-Za-z0-9._-] as '_', at most max characters. */
static void append_sanitised(char *out, size_t *o, size_t cap, const char *s, size_t max)
{
    *o += ple_copy_name(out + *o, cap - *o, s, max);
}

/* Appends s percent-encoded as S3 does (everything but [A-Za-z0-9._~-] and '/'). */
static void append_uri_encoded(char *out, size_t *o, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s && *o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
            out[(*o)++] = (char)c;
        } else {
            out[(*o)++] = '%';
            out[(*o)++] = hex[c >> 4];
            out[(*o)++] = hex[c & 15];
        }
    }
    out[*o] = '\0';
}

char *archive_key(const char *prefix, const struct xray_decision *d, const char *function,
                  const char *request_id, unsigned seq, const char *app, const char *ext)
{
    char tail[512];
    size_t o = 0;
    size_t app_len = strcspn(app ? app : "", "{");
    if (app_len > 100)
        app_len = 100;
    append_sanitised(tail, &o, sizeof(tail), d->traced ? d->root : "untraced", XRAY_ROOT_LEN);
    tail[o++] = '/';
    append_sanitised(tail, &o, sizeof(tail), function && *function ? function : "function", 140);
    tail[o++] = '/';
    append_sanitised(tail, &o, sizeof(tail),
                     request_id && *request_id ? request_id : "no-request-id", 80);
    o += (size_t)snprintf(tail + o, sizeof(tail) - o, "/%u-", seq);
    append_sanitised(tail, &o, sizeof(tail), app_len ? app : "profile", app_len ? app_len : 7);
    snprintf(tail + o, sizeof(tail) - o, ".%s", ext);

    size_t cap = strlen(prefix) * 3 + strlen(tail) + 1;
    char *key = malloc(cap);
    if (!key)
        return NULL;
    size_t k = 0;
    key[0] = '\0';
    append_uri_encoded(key, &k, cap, prefix);
    memcpy(key + k, tail, strlen(tail) + 1); /* tail holds only safe characters */
    return key;
}

void archive_default_bucket(const char *account_id, const char *region, char *out, size_t cap)
{
    snprintf(out, cap, "xrayprofile-%s-%s", account_id, region);
}

bool arn_account_id(const char *arn, char *out, size_t cap)
{
    /* arn:partition:service:region:account:resource */
    const char *p = arn;
    for (int field = 0; p && field < 4; field++) {
        p = strchr(p, ':');
        if (p)
            p++;
    }
    if (!p || strncmp(arn ? arn : "", "arn:", 4) != 0)
        return false;
    size_t n = strcspn(p, ":");
    if (n != 12 || p[n] != ':')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)p[i]))
            return false;
    snprintf(out, cap, "%.*s", (int)n, p);
    return true;
}

bool s3_bucket_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n < 3 || n > 63 || !isalnum((unsigned char)name[0]) || !isalnum((unsigned char)name[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '.' || c == '-'))
            return false;
    }
    return true;
}

char *archive_url(const char *endpoint, const char *region, const char *bucket, const char *key)
{
    char *url = NULL;
    int rc;
    if (endpoint && *endpoint) {
        size_t n = strlen(endpoint);
        while (n && endpoint[n - 1] == '/')
            n--;
        rc = asprintf(&url, "%.*s/%s/%s", (int)n, endpoint, bucket, key);
    } else {
        const char *domain = strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn" : "amazonaws.com";
        if (strchr(bucket, '.'))
            rc = asprintf(&url, "https://s3.%s.%s/%s/%s", region, domain, bucket, key);
        else
            rc = asprintf(&url, "https://%s.s3.%s.%s/%s", bucket, region, domain, key);
    }
    return rc < 0 ? NULL : url;
}
