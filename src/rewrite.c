/* URL join, FlameQL session-id rewrite and the header policy. See include/rewrite.h. */
#include "rewrite.h"
#include "util.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- URL ---- */

void url_redact(const char *url, char *out, size_t cap)
{
    const char *scheme_end = strstr(url, "://");
    const char *host = scheme_end ? scheme_end + 3 : url;
    size_t authority = strcspn(host, "/?#");
    const char *at = memchr(host, '@', authority);
    if (!at) {
        snprintf(out, cap, "%s", url);
        return;
    }
    snprintf(out, cap, "%.*s***%s", (int)(host - url), url, at);
}

char *url_join(const char *base, const char *target, size_t target_len)
{
    size_t blen = strlen(base);
    /* Config strips the trailing '/', but a stray one must not make "//" in the path. */
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    bool slash = target_len == 0 || target[0] != '/'; /* "*" or a relative target */
    char *out = malloc(blen + slash + target_len + 1);
    if (!out)
        return NULL;
    memcpy(out, base, blen);
    if (slash)
        out[blen] = '/';
    /* memcpy, not printf: the target is kept byte for byte, whatever it holds. */
    memcpy(out + blen + slash, target, target_len);
    out[blen + slash + target_len] = '\0';
    return out;
}

/* ---- FlameQL key ---- */

struct label {
    const char *k, *v;
    size_t klen, vlen;
};

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool app_char(char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '-' || c == '/' || c == ':';
}

static bool key_char(char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '-';
}

/* The set Go's strings.TrimSpace removes (ASCII part), as Pyroscope's key parser trims. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void trim(const char **s, size_t *n)
{
    while (*n && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_space((*s)[*n - 1]))
        (*n)--;
}

static bool all_chars(const char *s, size_t n, bool (*ok)(char))
{
    for (size_t i = 0; i < n; i++)
        if (!ok(s[i]))
            return false;
    return true;
}

/* A value may hold anything but the key syntax. NUL is refused too: the result is a C string. */
static bool value_char(char c)
{
    return c != ',' && c != '{' && c != '}' && c != '=' && c != '\0';
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
    return lb->klen && lb->vlen && all_chars(lb->k, lb->klen, key_char) &&
           all_chars(lb->v, lb->vlen, value_char);
}

/* Byte order of the keys, shorter first on a common prefix (Go's string order). */
static int label_cmp(const void *a, const void *b)
{
    const struct label *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->k, y->k, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* Splits the text between the braces into out (room for every comma + 1 labels); returns the
 * count, or -1 if it does not parse. Blank braces hold no label; an empty label ("a=b,") fails. */
static long parse_labels(const char *s, size_t n, struct label *out)
{
    const char *body = s;
    size_t blen = n;
    trim(&body, &blen);
    if (blen == 0)
        return 0;
    long count = 0;
    for (;;) {
        const char *comma = memchr(s, ',', n);
        size_t part = comma ? (size_t)(comma - s) : n;
        if (!parse_label(s, part, &out[count++]))
            return -1;
        if (!comma)
            return count;
        s = comma + 1;
        n -= part + 1;
    }
}

/* The parsed key: the application name and its labels, which point into the input. */
struct key {
    const char *app;
    size_t app_len;
    struct label *labels; /* malloc'd, one spare slot for the session id */
    long n;
};

/* Splits key into app name and label text; false unless it is "app" or "app{...}" with no other
 * brace and nothing after the closing one. */
static bool split_key(const char *s, size_t len, struct key *k, const char **body, size_t *blen)
{
    trim(&s, &len); /* blanks around the whole key are as harmless as those inside */
    const char *brace = memchr(s, '{', len);
    k->app = s;
    k->app_len = brace ? (size_t)(brace - s) : len;
    trim(&k->app, &k->app_len);
    if (!k->app_len || !all_chars(k->app, k->app_len, app_char))
        return false;
    *body = brace ? brace + 1 : NULL;
    *blen = 0;
    if (!brace)
        return true;
    const char *end = s + len;
    if (end[-1] != '}')
        return false;
    *blen = (size_t)(end - 1 - *body);
    return !memchr(*body, '{', *blen) && !memchr(*body, '}', *blen);
}

static bool parse_key(const char *s, size_t len, struct key *k)
{
    const char *body;
    size_t blen;
    *k = (struct key){0};
    if (!split_key(s, len, k, &body, &blen))
        return false;
    size_t slots = 2; /* one label per comma + 1, plus the session id */
    for (size_t i = 0; i < blen; i++)
        slots += body[i] == ',';
    k->labels = malloc(slots * sizeof(*k->labels));
    if (!k->labels)
        return false;
    k->n = body ? parse_labels(body, blen, k->labels) : 0;
    if (k->n < 0)
        return false;
    qsort(k->labels, (size_t)k->n, sizeof(*k->labels), label_cmp);
    for (long i = 0; i + 1 < k->n; i++)
        if (label_cmp(&k->labels[i], &k->labels[i + 1]) == 0)
            return false; /* a key given twice is ambiguous */
    return true;
}

/* "app{k=v,...}" with the labels in their (sorted) order. */
static char *serialise_key(const struct key *k)
{
    size_t cap = k->app_len + 3;
    for (long i = 0; i < k->n; i++)
        cap += k->labels[i].klen + k->labels[i].vlen + 2;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    char *o = mempcpy(out, k->app, k->app_len);
    *o++ = '{';
    for (long i = 0; i < k->n; i++) {
        if (i)
            *o++ = ',';
        o = mempcpy(o, k->labels[i].k, k->labels[i].klen);
        *o++ = '=';
        o = mempcpy(o, k->labels[i].v, k->labels[i].vlen);
    }
    *o++ = '}';
    *o = '\0';
    return out;
}

/* Adds the session id to a parsed key; NULL when it is already there. */
static char *key_with_session_id(struct key *k, const char *session_id)
{
    struct label sid = {SESSION_ID_LABEL, session_id, strlen(SESSION_ID_LABEL), strlen(session_id)};
    if (bsearch(&sid, k->labels, (size_t)k->n, sizeof(sid), label_cmp))
        return NULL; /* already there: nothing to change */
    k->labels[k->n++] = sid;
    qsort(k->labels, (size_t)k->n, sizeof(sid), label_cmp);
    return serialise_key(k);
}

char *flameql_add_session_id(const char *key, size_t len, const char *session_id)
{
    struct key k;
    char *out = parse_key(key, len, &k) ? key_with_session_id(&k, session_id) : NULL;
    free(k.labels);
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

/* Go's url.QueryUnescape ('+' is a space) into out, which has room for n + 1 bytes; returns the
 * length, or -1 on a bad escape. lenient keeps a bad escape as it is instead. */
static long unescape_into(const char *s, size_t n, char *out, bool lenient)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = s[i] == '%' && i + 2 < n ? hexval(s[i + 1]) : -1;
        int lo = s[i] == '%' && i + 2 < n ? hexval(s[i + 2]) : -1;
        if (s[i] != '%' || ((hi < 0 || lo < 0) && lenient)) {
            out[o++] = s[i] == '+' ? ' ' : s[i];
        } else if (hi < 0 || lo < 0) {
            return -1;
        } else {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        }
    }
    out[o] = '\0';
    return (long)o;
}

/* Go's url.QueryUnescape into a malloc'd string; NULL on a bad escape. */
static char *query_unescape(const char *s, size_t n, size_t *out_len)
{
    char *out = malloc(n + 1);
    long len = out ? unescape_into(s, n, out, false) : -1;
    if (len < 0) {
        free(out);
        return NULL;
    }
    *out_len = (size_t)len;
    return out;
}

/* Go's url.QueryEscape: unreserved bytes stay, a space becomes '+', the rest %XX. */
static char *query_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_alnum((char)c) || c == '-' || c == '.' || c == '_' || c == '~') {
            *o++ = (char)c;
        } else if (c == ' ') {
            *o++ = '+';
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

/* Finds the value of the first parameter named exactly key (so "name" is not "username"); a
 * parameter without '=' has an empty value. */
static bool find_param(const char *q, size_t len, const char *key, size_t *vstart, size_t *vend)
{
    size_t klen = strlen(key), pos = 0;
    for (;;) {
        const char *amp = memchr(q + pos, '&', len - pos);
        size_t end = amp ? (size_t)(amp - q) : len;
        if (end - pos >= klen && memcmp(q + pos, key, klen) == 0 &&
            (pos + klen == end || q[pos + klen] == '=')) {
            *vstart = pos + klen + (pos + klen < end);
            *vend = end;
            return true;
        }
        if (!amp)
            return false;
        pos = end + 1;
    }
}

bool query_param(const char *query, size_t len, const char *key, char *out, size_t cap)
{
    size_t vs, ve;
    if (!find_param(query, len, key, &vs, &ve))
        return false;
    char *v = malloc(ve - vs + 1);
    if (v)
        unescape_into(query + vs, ve - vs, v, true);
    snprintf(out, cap, "%s", v ? v : "");
    free(v);
    return true;
}

/* The rewritten, re-escaped value of one name parameter, or NULL. */
static char *rewrite_name_value(const char *v, size_t n, const char *session_id)
{
    size_t raw_len = 0;
    char *raw = query_unescape(v, n, &raw_len);
    char *key = raw && raw_len ? flameql_add_session_id(raw, raw_len, session_id) : NULL;
    char *enc = key ? query_escape(key) : NULL;
    free(raw);
    free(key);
    return enc;
}

char *query_add_session_id(const char *query, size_t len, const char *session_id)
{
    size_t vstart, vend;
    if (!find_param(query, len, "name", &vstart, &vend))
        return NULL;
    char *enc = rewrite_name_value(query + vstart, vend - vstart, session_id);
    if (!enc)
        return NULL;
    size_t elen = strlen(enc);
    char *out = malloc(vstart + elen + (len - vend) + 1);
    if (out) {
        /* Every byte around the value is kept as received, odd encodings included. */
        char *o = mempcpy(out, query, vstart);
        o = mempcpy(o, enc, elen);
        o = mempcpy(o, query + vend, len - vend);
        *o = '\0';
    }
    free(enc);
    return out;
}

/* ---- session id, base64 ---- */

static bool read_urandom(unsigned char *b, size_t n)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t got = read(fd, b, n);
    close(fd);
    return got == (ssize_t)n;
}

/* No entropy source at all: clock, pid and a counter still tell sessions and calls apart. */
static void weak_random(unsigned char b[8])
{
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
                 (++counter * 0x9e3779b97f4a7c15ULL);
    x ^= x >> 33; /* a 64-bit finaliser, so that close inputs give unrelated ids */
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    memcpy(b, &x, 8);
}

void session_id_generate(char out[17])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[8];
    /* GRND_NONBLOCK: never stall the start on an uninitialised pool; urandom does not block. */
    if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b) && !read_urandom(b, sizeof(b)))
        weak_random(b);
    for (size_t i = 0; i < sizeof(b); i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[16] = '\0';
}

char *base64_encode(const unsigned char *in, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        *o++ = tbl[v >> 18 & 63];
        *o++ = tbl[v >> 12 & 63];
        *o++ = i + 1 < len ? tbl[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? tbl[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* ---- header policy ---- */

/* One curl_slist line. An empty value is written "Name;": libcurl reads "Name:" as "remove this
 * header" and would drop it, while "Name;" sends it with an empty value. */
static char *header_line(const char *name, size_t nlen, const char *value, size_t vlen)
{
    char *line = malloc(nlen + vlen + 3);
    if (!line)
        return NULL;
    char *o = mempcpy(line, name, nlen);
    if (vlen) {
        *o++ = ':';
        *o++ = ' ';
        o = mempcpy(o, value, vlen);
    } else {
        *o++ = ';';
    }
    *o = '\0';
    return line;
}

static char *cstr_line(const char *name, const char *value)
{
    return header_line(name, strlen(name), value, strlen(value));
}

/* "Basic base64(user:password)"; the intermediate copies of the secret are wiped. */
static char *basic_line(const char *user, const char *password)
{
    char *pair, *line = NULL;
    int n = asprintf(&pair, "%s:%s", user, password);
    if (n < 0)
        return NULL;
    char *b64 = base64_encode((const unsigned char *)pair, (size_t)n);
    explicit_bzero(pair, (size_t)n);
    free(pair);
    if (b64 && asprintf(&line, "Authorization: Basic %s", b64) < 0)
        line = NULL;
    if (b64)
        explicit_bzero(b64, strlen(b64));
    free(b64);
    return line;
}

static int policy_fill(struct header_policy *p, const struct config *c)
{
    if (c->auth_token[0]) {
        if (asprintf(&p->authorization, "Authorization: Bearer %s", c->auth_token) < 0) {
            p->authorization = NULL;
            return -1;
        }
    } else if (c->basic_auth_user[0] && c->basic_auth_password[0]) {
        if (!(p->authorization = basic_line(c->basic_auth_user, c->basic_auth_password)))
            return -1;
    }
    if (c->tenant_id[0] && !(p->tenant = cstr_line("X-Scope-OrgID", c->tenant_id)))
        return -1;
    if (c->n_http_headers && !(p->extra = calloc(c->n_http_headers, sizeof(char *))))
        return -1;
    for (; p->n_extra < c->n_http_headers; p->n_extra++) {
        const struct config_header *h = &c->http_headers[p->n_extra];
        if (!(p->extra[p->n_extra] = cstr_line(h->name, h->value)))
            return -1;
    }
    return 0;
}

int header_policy_init(struct header_policy *p, const struct config *c)
{
    *p = (struct header_policy){0};
    if (policy_fill(p, c) == 0)
        return 0;
    header_policy_free(p); /* nothing half-built is left for the caller */
    return -1;
}

void header_policy_free(struct header_policy *p)
{
    free_secret(p->authorization);
    free_secret(p->tenant);
    for (size_t i = 0; i < p->n_extra; i++)
        free_secret(p->extra[i]);
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

/* RFC 9110 tchar: anything else (':', ';', space, CR, LF, NUL) would corrupt the curl line. */
static bool tchar(char c)
{
    return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool header_well_formed(const struct req_header *x)
{
    return x->name_len && all_chars(x->name, x->name_len, tchar) &&
           !memchr(x->value, '\r', x->value_len) && !memchr(x->value, '\n', x->value_len) &&
           !memchr(x->value, '\0', x->value_len);
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

/* Does the curl line ("Name: value" or "Name;") carry this header name? */
static bool line_has_name(const char *line, const char *name, size_t len)
{
    return strncasecmp(line, name, len) == 0 && (line[len] == ':' || line[len] == ';');
}

static bool extra_has(const struct header_policy *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->n_extra; i++)
        if (line_has_name(p->extra[i], name, len))
            return true;
    return false;
}

/* The list being built; ok turns false at the first allocation failure and stays so. */
struct builder {
    struct curl_slist *list;
    bool ok, content_type, accept, forwarded_host, has_connection;
};

static void add_line(struct builder *b, const char *line)
{
    struct curl_slist *l = b->ok && line ? curl_slist_append(b->list, line) : NULL;
    if (l)
        b->list = l;
    else
        b->ok = false;
}

static void add_header(struct builder *b, const char *name, size_t nlen, const char *value,
                       size_t vlen)
{
    char *line = b->ok ? header_line(name, nlen, value, vlen) : NULL;
    add_line(b, line);
    free(line);
}

/* Should the client's header x go to the remote under its own name? */
static bool client_header_kept(const struct header_policy *p, const struct builder *b,
                               const struct req_header *h, size_t n, const struct req_header *x)
{
    static const char *const ours[] = {"Host", "Content-Length", "Expect", "X-Forwarded-Host"};
    const char *name = x->name;
    size_t len = x->name_len;
    if (header_is_hop_by_hop(name, len) ||
        (b->has_connection && listed_in_connection(h, n, name, len)))
        return false;
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
        if (name_is(name, len, ours[i]))
            return false;
    if (p->authorization && name_is(name, len, "Authorization"))
        return false;
    if (p->tenant && name_is(name, len, "X-Scope-OrgID"))
        return false;
    return !extra_has(p, name, len);
}

static void add_client_header(struct builder *b, const struct header_policy *p,
                              const struct req_header *h, size_t n, const struct req_header *x)
{
    if (!header_well_formed(x))
        return;
    if (name_is(x->name, x->name_len, "Host")) {
        /* The remote sees our Host; the client's is kept here (once, if it sent several). */
        if (x->value_len && !b->forwarded_host)
            add_header(b, "X-Forwarded-Host", 16, x->value, x->value_len);
        b->forwarded_host = true;
        return;
    }
    if (!client_header_kept(p, b, h, n, x))
        return;
    b->content_type |= name_is(x->name, x->name_len, "Content-Type");
    b->accept |= name_is(x->name, x->name_len, "Accept");
    add_header(b, x->name, x->name_len, x->value, x->value_len);
}

static void add_policy_headers(struct builder *b, const struct header_policy *p)
{
    for (size_t i = 0; i < p->n_extra; i++) {
        const char *line = p->extra[i];
        /* The dedicated settings win over the same header in PYROSCOPE_HTTP_HEADERS. */
        if ((p->authorization && line_has_name(line, "Authorization", 13)) ||
            (p->tenant && line_has_name(line, "X-Scope-OrgID", 13)))
            continue;
        b->content_type |= line_has_name(line, "Content-Type", 12);
        b->accept |= line_has_name(line, "Accept", 6);
        add_line(b, line);
    }
    if (p->authorization)
        add_line(b, p->authorization);
    if (p->tenant)
        add_line(b, p->tenant);
}

struct curl_slist *header_policy_build(const struct header_policy *p, const struct req_header *h,
                                       size_t n)
{
    struct builder b = {.ok = true};
    for (size_t i = 0; i < n && !b.has_connection; i++)
        b.has_connection = name_is(h[i].name, h[i].name_len, "Connection");
    for (size_t i = 0; i < n && b.ok; i++)
        add_client_header(&b, p, h, n, &h[i]);
    add_policy_headers(&b, p);
    /* Empty values tell libcurl not to add a header of its own. */
    if (!b.content_type)
        add_line(&b, "Content-Type:");
    if (!b.accept)
        add_line(&b, "Accept:");
    add_line(&b, "Expect:");
    if (!b.ok) {
        curl_slist_free_all(b.list);
        return NULL;
    }
    return b.list;
}
