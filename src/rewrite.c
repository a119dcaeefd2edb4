/* URL join, FlameQL session-id rewrite and the header policy. See include/rewrite.h. */
#include "rewrite.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- URL ---- */

char *url_join(const char *base, const char *target, size_t target_len)
{
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    const char *sep = target_len > 0 && target[0] == '/' ? "" : "/";
    char *out;
    if (asprintf(&out, "%.*s%s%.*s", (int)blen, base, sep, (int)target_len, target) < 0)
        return NULL;
    return out;
}

/* ---- FlameQL key ---- */

struct label {
    const char *k, *v;
    size_t klen, vlen;
};

static bool app_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '/' || c == ':';
}

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* Parses "k=v" (whitespace around k and v allowed) into *lb. */
static bool parse_label(const char *s, size_t n, struct label *lb)
{
    const char *eq = memchr(s, '=', n);
    if (!eq)
        return false;
    lb->k = s;
    lb->klen = (size_t)(eq - s);
    lb->v = eq + 1;
    lb->vlen = n - lb->klen - 1;
    trim(&lb->k, &lb->klen);
    trim(&lb->v, &lb->vlen);
    if (!lb->klen || !lb->vlen)
        return false;
    for (size_t i = 0; i < lb->klen; i++)
        if (!key_char(lb->k[i]))
            return false;
    for (size_t i = 0; i < lb->vlen; i++)
        if (strchr(",{}=", lb->v[i]))
            return false;
    return true;
}

static int label_cmp(const void *a, const void *b)
{
    const struct label *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->k, y->k, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* Splits the label list between the braces; returns the count, or -1 if it does not parse. */
static long parse_labels(const char *s, size_t n, struct label *out, size_t max)
{
    size_t count = 0;
    const char *body = s;
    size_t blen = n;
    trim(&body, &blen);
    if (blen == 0)
        return 0;
    for (;;) { /* an empty label, as in "a=b,", fails in parse_label */
        const char *comma = memchr(s, ',', n);
        size_t part = comma ? (size_t)(comma - s) : n;
        if (count == max || !parse_label(s, part, &out[count]))
            return -1;
        count++;
        if (!comma)
            break;
        s = comma + 1;
        n -= part + 1;
    }
    return (long)count;
}

char *flameql_add_session_id(const char *key, size_t len, const char *session_id)
{
    const char *brace = memchr(key, '{', len);
    size_t app_len = brace ? (size_t)(brace - key) : len;
    const char *app = key;
    trim(&app, &app_len);
    if (app_len == 0)
        return NULL;
    for (size_t i = 0; i < app_len; i++)
        if (!app_char(app[i]))
            return NULL;
    struct label labels[64];
    long n = 0;
    if (brace) {
        const char *end = key + len;
        if (end[-1] != '}' || memchr(brace + 1, '{', (size_t)(end - brace - 1)) ||
            memchr(brace + 1, '}', (size_t)(end - brace - 2)))
            return NULL;
        n = parse_labels(brace + 1, (size_t)(end - brace - 2), labels, 63);
        if (n < 0)
            return NULL;
    }
    qsort(labels, (size_t)n, sizeof(labels[0]), label_cmp);
    for (long i = 0; i + 1 < n; i++)
        if (label_cmp(&labels[i], &labels[i + 1]) == 0)
            return NULL; /* a key given twice is ambiguous */
    struct label sid = {SESSION_ID_LABEL, session_id, strlen(SESSION_ID_LABEL), strlen(session_id)};
    if (bsearch(&sid, labels, (size_t)n, sizeof(labels[0]), label_cmp))
        return NULL; /* already there: nothing to change */
    labels[n++] = sid;
    qsort(labels, (size_t)n, sizeof(labels[0]), label_cmp);

    size_t cap = app_len + 3;
    for (long i = 0; i < n; i++)
        cap += labels[i].klen + labels[i].vlen + 2;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t o = 0;
    memcpy(out + o, app, app_len);
    o += app_len;
    out[o++] = '{';
    for (long i = 0; i < n; i++) {
        if (i)
            out[o++] = ',';
        memcpy(out + o, labels[i].k, labels[i].klen);
        o += labels[i].klen;
        out[o++] = '=';
        memcpy(out + o, labels[i].v, labels[i].vlen);
        o += labels[i].vlen;
    }
    out[o++] = '}';
    out[o] = '\0';
    return out;
}

/* ---- query ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Query-unescapes s into a malloc'd string ('+' is a space); NULL on a bad escape. */
static char *query_unescape(const char *s, size_t n, size_t *out_len)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int h = i + 2 < n ? hexval(s[i + 1]) : -1;
            int l = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (h < 0 || l < 0) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            out[o++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* Go's url.QueryEscape: unreserved bytes stay, a space becomes '+', the rest %XX. */
static char *query_escape(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[o++] = (char)c;
        } else if (c == ' ') {
            out[o++] = '+';
        } else {
            o += (size_t)sprintf(out + o, "%%%02X", c);
        }
    }
    out[o] = '\0';
    return out;
}

char *query_add_session_id(const char *query, size_t len, const char *session_id)
{
    size_t pos = 0;
    while (pos <= len) {
        const char *amp = memchr(query + pos, '&', len - pos);
        size_t end = amp ? (size_t)(amp - query) : len;
        if (end - pos >= 5 && memcmp(query + pos, "name=", 5) == 0) {
            size_t vstart = pos + 5, raw_len;
            char *raw = query_unescape(query + vstart, end - vstart, &raw_len);
            char *key = raw && raw_len ? flameql_add_session_id(raw, raw_len, session_id) : NULL;
            char *enc = key ? query_escape(key) : NULL;
            char *out = NULL;
            if (enc && asprintf(&out, "%.*s%s%.*s", (int)vstart, query, enc, (int)(len - end),
                                query + end) < 0)
                out = NULL;
            free(raw);
            free(key);
            free(enc);
            return out;
        }
        if (!amp)
            break;
        pos = end + 1;
    }
    return NULL;
}

/* ---- session id, base64 ---- */

void session_id_generate(char out[17])
{
    unsigned char b[8];
    ssize_t got = getrandom(b, sizeof(b), GRND_NONBLOCK);
    if (got != (ssize_t)sizeof(b)) {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        got = fd >= 0 ? read(fd, b, sizeof(b)) : -1;
        if (fd >= 0)
            close(fd);
    }
    if (got != (ssize_t)sizeof(b)) {
        /* No entropy source: still unique enough per process to tell sessions apart. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x =
            (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        memcpy(b, &x, sizeof(b));
    }
    for (size_t i = 0; i < sizeof(b); i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    out[16] = '\0';
}

char *base64_encode(const unsigned char *in, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = tbl[v >> 18 & 63];
        out[o++] = tbl[v >> 12 & 63];
        out[o++] = i + 1 < len ? tbl[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* ---- header policy ---- */

int header_policy_init(struct header_policy *p, const struct config *c)
{
    *p = (struct header_policy){0};
    if (c->auth_token[0]) {
        if (asprintf(&p->authorization, "Authorization: Bearer %s", c->auth_token) < 0)
            return -1;
    } else if (c->basic_auth_user[0] && c->basic_auth_password[0]) {
        char *pair, *b64;
        if (asprintf(&pair, "%s:%s", c->basic_auth_user, c->basic_auth_password) < 0)
            return -1;
        b64 = base64_encode((const unsigned char *)pair, strlen(pair));
        explicit_bzero(pair, strlen(pair));
        free(pair);
        if (!b64 || asprintf(&p->authorization, "Authorization: Basic %s", b64) < 0) {
            free(b64);
            return -1;
        }
        free(b64);
    }
    if (c->tenant_id[0] && asprintf(&p->tenant, "X-Scope-OrgID: %s", c->tenant_id) < 0)
        return -1;
    if (c->n_http_headers) {
        p->extra = calloc(c->n_http_headers, sizeof(char *));
        if (!p->extra)
            return -1;
        for (size_t i = 0; i < c->n_http_headers; i++, p->n_extra++)
            if (asprintf(&p->extra[i], "%s: %s", c->http_headers[i].name,
                         c->http_headers[i].value) < 0)
                return -1;
    }
    return 0;
}

void header_policy_free(struct header_policy *p)
{
    free(p->authorization);
    free(p->tenant);
    for (size_t i = 0; i < p->n_extra; i++)
        free(p->extra[i]);
    free(p->extra);
    *p = (struct header_policy){0};
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

bool header_is_hop_by_hop(const char *name, size_t len)
{
    static const char *const hop[] = {"Connection", "Keep-Alive",        "TE",
                                      "Trailer",    "Transfer-Encoding", "Upgrade"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (name_is(name, len, hop[i]))
            return true;
    return len >= 6 && strncasecmp(name, "Proxy-", 6) == 0;
}

/* Is name one of the comma-separated tokens of a Connection header value? */
static bool listed_in_connection(const struct req_header *h, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (!name_is(h[i].name, h[i].name_len, "Connection"))
            continue;
        const char *v = h[i].value, *end = v + h[i].value_len;
        while (v < end) {
            const char *comma = memchr(v, ',', (size_t)(end - v));
            const char *tok = v;
            size_t tlen = (size_t)((comma ? comma : end) - v);
            trim(&tok, &tlen);
            if (tlen == len && strncasecmp(tok, name, len) == 0)
                return true;
            v = comma ? comma + 1 : end;
        }
    }
    return false;
}

/* Does the "Name: value" line have this header name? */
static bool line_has_name(const char *line, const char *name, size_t len)
{
    return strncasecmp(line, name, len) == 0 && line[len] == ':';
}

static bool extra_has(const struct header_policy *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->n_extra; i++)
        if (line_has_name(p->extra[i], name, len))
            return true;
    return false;
}

static bool client_header_forwarded(const struct header_policy *p, const struct req_header *h,
                                    size_t n, const struct req_header *x)
{
    const char *name = x->name;
    size_t len = x->name_len;
    if (memchr(name, '\r', len) || memchr(name, '\n', len) ||
        memchr(x->value, '\r', x->value_len) || memchr(x->value, '\n', x->value_len))
        return false;
    if (header_is_hop_by_hop(name, len) || listed_in_connection(h, n, name, len))
        return false;
    static const char *const ours[] = {"Host", "Content-Length", "Expect", "X-Forwarded-Host"};
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
        if (name_is(name, len, ours[i]))
            return false;
    if (p->authorization && name_is(name, len, "Authorization"))
        return false;
    if (p->tenant && name_is(name, len, "X-Scope-OrgID"))
        return false;
    return !extra_has(p, name, len);
}

static struct curl_slist *append(struct curl_slist *list, const char *line, bool *ok)
{
    struct curl_slist *l = *ok ? curl_slist_append(list, line) : NULL;
    if (!l)
        *ok = false;
    return l ? l : list;
}

static struct curl_slist *append_header(struct curl_slist *list, const char *name, size_t nlen,
                                        const char *value, size_t vlen, bool *ok)
{
    char *line;
    if (!*ok || asprintf(&line, "%.*s: %.*s", (int)nlen, name, (int)vlen, value) < 0) {
        *ok = false;
        return list;
    }
    list = append(list, line, ok);
    free(line);
    return list;
}

struct curl_slist *header_policy_build(const struct header_policy *p, const struct req_header *h,
                                       size_t n)
{
    struct curl_slist *list = NULL;
    bool ok = true, content_type = false, accept = false;
    for (size_t i = 0; i < n && ok; i++) {
        const struct req_header *x = &h[i];
        if (name_is(x->name, x->name_len, "Host")) {
            if (x->value_len && !memchr(x->value, '\r', x->value_len) &&
                !memchr(x->value, '\n', x->value_len))
                list = append_header(list, "X-Forwarded-Host", 16, x->value, x->value_len, &ok);
            continue;
        }
        if (!client_header_forwarded(p, h, n, x))
            continue;
        content_type |= name_is(x->name, x->name_len, "Content-Type");
        accept |= name_is(x->name, x->name_len, "Accept");
        list = append_header(list, x->name, x->name_len, x->value, x->value_len, &ok);
    }
    for (size_t i = 0; i < p->n_extra; i++) {
        if ((p->authorization && line_has_name(p->extra[i], "Authorization", 13)) ||
            (p->tenant && line_has_name(p->extra[i], "X-Scope-OrgID", 13)))
            continue;
        content_type |= line_has_name(p->extra[i], "Content-Type", 12);
        accept |= line_has_name(p->extra[i], "Accept", 6);
        list = append(list, p->extra[i], &ok);
    }
    if (p->authorization)
        list = append(list, p->authorization, &ok);
    if (p->tenant)
        list = append(list, p->tenant, &ok);
    /* Empty values tell libcurl not to add a header of its own. */
    if (!content_type)
        list = append(list, "Content-Type:", &ok);
    if (!accept)
        list = append(list, "Accept:", &ok);
    list = append(list, "Expect:", &ok);
    if (!ok) {
        curl_slist_free_all(list);
        return NULL;
    }
    return list;
}
