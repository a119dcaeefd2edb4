/* URL joining, the FlameQL session-id rewrite, the session id, base64 and the header policy. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rewrite.h"

#define SID "0123456789abcdef"
#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- url_join ---- */

static void check_join(const char *base, const char *target, const char *want)
{
    char *got = url_join(base, target, strlen(target));
    CHECK_STR(got, want);
    free(got);
}

static void test_url_join(void)
{
    check_join("https://h/base", "/ingest?x=1", "https://h/base/ingest?x=1");
    check_join("https://h/base/", "/ingest", "https://h/base/ingest");
    check_join("http://127.0.0.1:9", "/a", "http://127.0.0.1:9/a");
    check_join("http://127.0.0.1:9/", "/a", "http://127.0.0.1:9/a");
    check_join("https://h", "/push.v1.PusherService/Push", "https://h/push.v1.PusherService/Push");
    check_join("http://h", "*", "http://h/*");
    check_join("http://h/b", "ingest?name=x", "http://h/b/ingest?name=x");
    check_join("http://h", "", "http://h/");
    /* The query is kept byte for byte, odd encodings included. */
    check_join("http://h/", "/a?%zz&b=+&c=%2B&d=%7b{}", "http://h/a?%zz&b=+&c=%2B&d=%7b{}");
    /* Only target_len bytes of the target are used. */
    char *got = url_join("http://h", "/abc?x", 4);
    CHECK_STR(got, "http://h/abc");
    free(got);
}

/* ---- FlameQL ---- */

static void check_key(const char *key, const char *want)
{
    char *got = flameql_add_session_id(key, strlen(key), SID);
    if (want) {
        CHECK_STR(got, want);
    } else {
        CHECK(got == NULL);
        if (got)
            fprintf(stderr, "  key \"%s\" parsed as %s\n", key, got);
    }
    free(got);
}

static void test_flameql_valid(void)
{
    check_key("app", "app{__session_id__=" SID "}");
    check_key("app{}", "app{__session_id__=" SID "}");
    check_key("app{ }", "app{__session_id__=" SID "}");
    check_key("my.app-1{b=1,a=2}", "my.app-1{__session_id__=" SID ",a=2,b=1}");
    check_key("app{ z = x y , a=1 }", "app{__session_id__=" SID ",a=1,z=x y}");
    check_key(" app {a=1} ", "app{__session_id__=" SID ",a=1}");
    check_key("ns/svc:cpu_1{my-key=v:/@#!}", "ns/svc:cpu_1{__session_id__=" SID ",my-key=v:/@#!}");
    /* Byte order: 'B' < '_' < "__session_id__" (longer) < 'a' < "a.b" < 'b'. */
    check_key("app{b=1,B=2,_=3,a.b=4,a=5}", "app{B=2,_=3,__session_id__=" SID ",a=5,a.b=4,b=1}");
    /* Already labelled: nothing to change. */
    check_key("app{__session_id__=mine,a=1}", NULL);
    check_key("app{ __session_id__ = mine }", NULL);
    /* Only len bytes are read. */
    char *got = flameql_add_session_id("app{a=1}junk", 8, SID);
    CHECK_STR(got, "app{__session_id__=" SID ",a=1}");
    free(got);
}

/* More labels than any fixed table would hold are still sorted and kept. */
static void test_flameql_many_labels(void)
{
    char key[4096] = "app{", want[4096] = "app{__session_id__=" SID;
    for (int i = 199; i >= 100; i--)
        snprintf(key + strlen(key), sizeof(key) - strlen(key), "%sk%d=v", i == 199 ? "" : ",", i);
    strcat(key, "}");
    for (int i = 100; i <= 199; i++)
        snprintf(want + strlen(want), sizeof(want) - strlen(want), ",k%d=v", i);
    strcat(want, "}");
    check_key(key, want);
}

static void test_flameql_invalid(void)
{
    const char *bad[] = {"",           "  ",         "{a=b}",        "app{a}",  "app{a=b",
                         "app{a=b}x",  "app{a=b}}",  "app{a=b,a=c}", "app{=b}", "app{a=}",
                         "ap p",       "app{a=b{}",  "app{a=b,}",    "app{,}",  "app{a=b,,c=d}",
                         "app{a=b=c}", "app{a b=c}", "app}",         "a,b",     "a=b",
                         "app{k!=v}",  "a{pp{a=1}"};
    for (size_t i = 0; i < LEN(bad); i++)
        check_key(bad[i], NULL);
    /* A NUL inside a value cannot be returned in a C string. */
    char *got = flameql_add_session_id("app{a=\0b}", 9, SID);
    CHECK(got == NULL);
    free(got);
}

/* ---- query ---- */

static void check_query(const char *q, const char *want)
{
    char *got = query_add_session_id(q, strlen(q), SID);
    if (want) {
        CHECK_STR(got, want);
    } else {
        CHECK(got == NULL);
        if (got)
            fprintf(stderr, "  query \"%s\" rewritten as %s\n", q, got);
    }
    free(got);
}

#define ENC_SID "__session_id__%3D" SID

static void test_query_rewrite(void)
{
    check_query("name=app", "name=app%7B" ENC_SID "%7D");
    /* name first, middle, last; the other parameters keep their bytes. */
    check_query("name=app%7Ba%3D1%7D&from=1&until=2",
                "name=app%7B" ENC_SID "%2Ca%3D1%7D&from=1&until=2");
    check_query("from=1&name=app%7Bb%3D1%2Ca%3D2%7D&until=2&x=%zz",
                "from=1&name=app%7B" ENC_SID "%2Ca%3D2%2Cb%3D1%7D&until=2&x=%zz");
    check_query("a=%41%2b+&b&=c&name=my.app", "a=%41%2b+&b&=c&name=my.app%7B" ENC_SID "%7D");
    check_query("&&name=app&", "&&name=app%7B" ENC_SID "%7D&");
    /* Unencoded braces decode to themselves; lowercase escapes come back uppercase. */
    check_query("name=app{a=1}&x", "name=app%7B" ENC_SID "%2Ca%3D1%7D&x");
    check_query("name=app%7bk%3dv%7d", "name=app%7B" ENC_SID "%2Ck%3Dv%7D");
    /* '+' is a space and goes back as '+'; an encoded '+' stays encoded. */
    check_query("a=1&name=app%7Bk%3Dv+w%7D", "a=1&name=app%7B" ENC_SID "%2Ck%3Dv+w%7D");
    check_query("name=app%7Bk%3Da%2Bb%7D", "name=app%7B" ENC_SID "%2Ck%3Da%2Bb%7D");
    check_query("name=+app+", "name=app%7B" ENC_SID "%7D");
    /* Unreserved bytes stay, '/' and ':' are escaped as Go's url.QueryEscape does. */
    check_query("name=ns/svc:x%7Bk%3Da~b%7D", "name=ns%2Fsvc%3Ax%7B" ENC_SID "%2Ck%3Da~b%7D");
    /* "username" is not "name". */
    check_query("username=x&name=app", "username=x&name=app%7B" ENC_SID "%7D");
    /* Only len bytes are read. */
    char *got = query_add_session_id("name=app#frag", 8, SID);
    CHECK_STR(got, "name=app%7B" ENC_SID "%7D");
    free(got);
}

static void test_query_unchanged(void)
{
    const char *same[] = {
        "username=app&x=1",
        "x=1",
        "",
        "name",
        "name&x=1",
        "Name=app",
        "name=",
        "name=&name=app", /* the first name parameter counts, as with Go's Query().Get */
        "name=bad%7B%7B",
        "name=app%7B__session_id__%3Dx%7D",
        "name=app%7Ba%3D1%2C__session_id__%3Dx%7D",
        "name=app%zz",
        "name=app%7",
        "name=app%",
        "name=app%7Ba%3D%00%7D",
        "name=app%7Ba%7D",
    };
    for (size_t i = 0; i < LEN(same); i++)
        check_query(same[i], NULL);
}

/* ---- session id, base64 ---- */

static void test_session_id(void)
{
    char a[17], b[17];
    memset(a, 'X', sizeof(a));
    session_id_generate(a);
    session_id_generate(b);
    CHECK(a[16] == '\0');
    CHECK(strlen(a) == 16 && strspn(a, "0123456789abcdef") == 16);
    CHECK(strlen(b) == 16 && strspn(b, "0123456789abcdef") == 16);
    CHECK(strcmp(a, b) != 0);
}

static void test_base64(void)
{
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < LEN(in); i++) {
        char *got = base64_encode((const unsigned char *)in[i], strlen(in[i]));
        CHECK_STR(got, out[i]);
        free(got);
    }
    const unsigned char bin[] = {0xff, 0xfe, 0x00, 0xfb};
    char *got = base64_encode(bin, sizeof(bin));
    CHECK_STR(got, "//4A+w==");
    free(got);
}

/* ---- header policy ---- */

static struct config cfg(const char *token, const char *user, const char *pass, const char *tenant)
{
    struct config c = {0};
    c.auth_token = (char *)token;
    c.basic_auth_user = (char *)user;
    c.basic_auth_password = (char *)pass;
    c.tenant_id = (char *)tenant;
    return c;
}

#define H(n, v)                                                                                    \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }

/* Compares the list with a NULL-terminated array of lines, then frees it. */
static void check_list_at(int line, struct curl_slist *l, const char *const *want)
{
    size_t i = 0;
    int failed_before = check_failed;
    CHECK(l != NULL);
    for (struct curl_slist *p = l; p; p = p->next, i++) {
        CHECK(want[i] != NULL);
        if (!want[i])
            break;
        CHECK_STR(p->data, want[i]);
    }
    CHECK(want[i] == NULL);
    if (check_failed != failed_before) {
        fprintf(stderr, "  (list checked at line %d) got:\n", line);
        for (struct curl_slist *p = l; p; p = p->next)
            fprintf(stderr, "    %s\n", p->data);
    }
    curl_slist_free_all(l);
}
#define check_list(l, want) check_list_at(__LINE__, l, want)

/* Builds the list for headers h under the configuration c and compares it with want. */
#define CHECK_BUILD(c, h, ...)                                                                     \
    do {                                                                                           \
        struct header_policy p_;                                                                   \
        CHECK(header_policy_init(&p_, &(c)) == 0);                                                 \
        const char *want_[] = {__VA_ARGS__, NULL};                                                 \
        check_list(header_policy_build(&p_, h, LEN(h)), want_);                                    \
        header_policy_free(&p_);                                                                   \
    } while (0)

static void test_policy_init(void)
{
    struct header_policy p;
    struct config both = cfg("tok", "u", "p", "");
    CHECK(header_policy_init(&p, &both) == 0);
    CHECK_STR(p.authorization, "Authorization: Bearer tok"); /* the token wins over basic */
    CHECK(p.tenant == NULL && p.n_extra == 0 && p.extra == NULL);
    header_policy_free(&p);

    struct config basic = cfg("", "alice", "s3cret", "t1");
    CHECK(header_policy_init(&p, &basic) == 0);
    CHECK_STR(p.authorization, "Authorization: Basic YWxpY2U6czNjcmV0");
    CHECK_STR(p.tenant, "X-Scope-OrgID: t1");
    header_policy_free(&p);
    CHECK(p.authorization == NULL && p.tenant == NULL); /* freed and zeroed */
    header_policy_free(&p);                             /* so a second free is harmless */

    struct config user_only = cfg("", "alice", "", ""), pass_only = cfg("", "", "pw", "");
    CHECK(header_policy_init(&p, &user_only) == 0);
    CHECK(p.authorization == NULL);
    header_policy_free(&p);
    CHECK(header_policy_init(&p, &pass_only) == 0);
    CHECK(p.authorization == NULL);
    header_policy_free(&p);

    struct config_header extra[] = {{"X-A", "1 2"}, {"X-Empty", ""}};
    struct config c = cfg("", "", "", "");
    c.http_headers = extra;
    c.n_http_headers = LEN(extra);
    CHECK(header_policy_init(&p, &c) == 0);
    CHECK(p.n_extra == 2);
    if (p.n_extra == 2) {
        CHECK_STR(p.extra[0], "X-A: 1 2");
        CHECK_STR(p.extra[1], "X-Empty;"); /* libcurl's spelling of an empty header */
    }
    header_policy_free(&p);
}

static void test_build_passthrough(void)
{
    struct config c = cfg("", "user-only", "", "");
    const struct req_header h[] = {
        H("Host", "localhost:4040"),
        H("Content-Length", "12"),
        H("Connection", "keep-alive, X-Gone"),
        H("X-Gone", "1"),
        H("Keep-Alive", "5"),
        H("Proxy-Authorization", "x"),
        H("Proxy-Connection", "keep-alive"),
        H("TE", "trailers"),
        H("Trailer", "X-T"),
        H("Upgrade", "h2c"),
        H("Transfer-Encoding", "chunked"),
        H("Expect", "100-continue"),
        H("Authorization", "Bearer c"),
        H("X-Scope-OrgID", "client-tenant"),
        H("Content-Type", "multipart/form-data; boundary=x"),
        H("Content-Encoding", "gzip"),
        H("X-Forwarded-Host", "spoof"),
        H("User-Agent", "ua"),
    };
    CHECK_BUILD(c, h, "X-Forwarded-Host: localhost:4040", "Authorization: Bearer c",
                "X-Scope-OrgID: client-tenant", "Content-Type: multipart/form-data; boundary=x",
                "Content-Encoding: gzip", "User-Agent: ua", "Accept:", "Expect:");
}

static void test_build_empty(void)
{
    struct config c = cfg("", "", "", "");
    struct header_policy p;
    CHECK(header_policy_init(&p, &c) == 0);
    const char *want[] = {"Content-Type:", "Accept:", "Expect:", NULL};
    check_list(header_policy_build(&p, NULL, 0), want);
    header_policy_free(&p);

    /* Both sent by the client: only Expect: is added. */
    const struct req_header h[] = {H("accept", "*/*"), H("content-type", "text/plain")};
    CHECK_BUILD(c, h, "accept: */*", "content-type: text/plain", "Expect:");
}

static void test_build_credentials(void)
{
    const struct req_header h[] = {H("Authorization", "Bearer c"), H("authorization", "Basic x"),
                                   H("X-Scope-OrgID", "client-tenant"), H("X-Other", "o")};
    struct config token = cfg("tok", "", "", "t1");
    CHECK_BUILD(token, h, "X-Other: o", "Authorization: Bearer tok", "X-Scope-OrgID: t1",
                "Content-Type:", "Accept:", "Expect:");
    struct config basic = cfg("", "alice", "s3cret", "");
    CHECK_BUILD(basic, h, "X-Scope-OrgID: client-tenant", "X-Other: o",
                "Authorization: Basic YWxpY2U6czNjcmV0", "Content-Type:", "Accept:", "Expect:");
    struct config tenant_only = cfg("", "", "", "t2");
    CHECK_BUILD(tenant_only, h, "Authorization: Bearer c", "authorization: Basic x", "X-Other: o",
                "X-Scope-OrgID: t2", "Content-Type:", "Accept:", "Expect:");
}

static void test_build_extra(void)
{
    struct config_header extra[] = {{"X-Custom", "cfg"},
                                    {"Authorization", "loses"},
                                    {"X-Scope-OrgID", "loses too"},
                                    {"Accept", "application/json"},
                                    {"X-Blank", ""}};
    const struct req_header h[] = {H("x-custom", "client"),
                                   H("Authorization", "Bearer c"),
                                   H("X-Scope-OrgID", "client-tenant"),
                                   H("X-Other", "o"),
                                   H("ACCEPT", "*/*"),
                                   H("x-blank", "client")};
    struct config c = cfg("tok", "u", "p", "t1");
    c.http_headers = extra;
    c.n_http_headers = LEN(extra);
    CHECK_BUILD(c, h, "X-Other: o", "X-Custom: cfg", "Accept: application/json", "X-Blank;",
                "Authorization: Bearer tok", "X-Scope-OrgID: t1", "Content-Type:", "Expect:");

    /* Without token and tenant, the configured Authorization and X-Scope-OrgID apply and
     * replace the client's. */
    struct config plain = cfg("", "", "", "");
    plain.http_headers = extra;
    plain.n_http_headers = LEN(extra);
    CHECK_BUILD(plain, h, "X-Other: o", "X-Custom: cfg", "Authorization: loses",
                "X-Scope-OrgID: loses too", "Accept: application/json", "X-Blank;",
                "Content-Type:", "Expect:");

    /* A configured Content-Type counts as forwarded. */
    struct config_header ct[] = {{"Content-Type", "application/x"}};
    const struct req_header h2[] = {H("Content-Type", "text/plain")};
    struct config c2 = cfg("", "", "", "");
    c2.http_headers = ct;
    c2.n_http_headers = 1;
    CHECK_BUILD(c2, h2, "Content-Type: application/x", "Accept:", "Expect:");
}

static void test_build_connection_and_host(void)
{
    struct config c = cfg("", "", "", "");
    /* Several Connection headers, any case, blanks around tokens, empty tokens. */
    const struct req_header h[] = {
        H("connection", " X-A ,, x-b"),
        H("X-A", "1"),
        H("X-B", "2"),
        H("X-C", "3"),
        H("CONNECTION", "content-type"),
        H("Content-Type", "text/plain"),
        H("Host", "h1"),
        H("Host", "h2"),
        H("x-forwarded-host", "spoof"),
    };
    CHECK_BUILD(c, h, "X-C: 3", "X-Forwarded-Host: h1", "Content-Type:", "Accept:", "Expect:");

    /* An empty Host gives no X-Forwarded-Host. */
    const struct req_header h2[] = {H("Host", ""), H("X-D", "4")};
    CHECK_BUILD(c, h2, "X-D: 4", "Content-Type:", "Accept:", "Expect:");
}

static void test_build_malformed(void)
{
    struct config c = cfg("", "", "", "");
    const struct req_header h[] = {
        H("X-CR", "a\rb"),  H("X-LF", "a\nb"),  {"X-NUL", 5, "a\0b", 3},
        H("Bad Name", "v"), H("X:Y", "v"),      H("X;Y", "v"),
        H("", "v"),         H("Host", "h\r\n"), H("X-Ok", "v  w"),
        H("X-Empty", ""),   H("X-Tok!#$", "v"),
    };
    CHECK_BUILD(c, h, "X-Ok: v  w", "X-Empty;", "X-Tok!#$: v",
                "Content-Type:", "Accept:", "Expect:");
}

static void test_hop_by_hop(void)
{
    const char *hop[] = {"Connection",
                         "keep-alive",
                         "TE",
                         "trailer",
                         "Transfer-Encoding",
                         "UPGRADE",
                         "Proxy-Connection",
                         "proxy-authenticate",
                         "Proxy-Authorization",
                         "Proxy-"};
    for (size_t i = 0; i < LEN(hop); i++)
        CHECK(header_is_hop_by_hop(hop[i], strlen(hop[i])));
    const char *not_hop[] = {
        "Content-Type", "Proxy", "TEE",       "Connections", "Upgrade-Insecure-Requests",
        "Trailers",     "",      "X-Proxy-Id"};
    for (size_t i = 0; i < LEN(not_hop); i++)
        CHECK(!header_is_hop_by_hop(not_hop[i], strlen(not_hop[i])));
    CHECK(header_is_hop_by_hop("TE-and-more", 2)); /* only len bytes count */
}

int main(void)
{
    test_url_join();
    test_flameql_valid();
    test_flameql_many_labels();
    test_flameql_invalid();
    test_query_rewrite();
    test_query_unchanged();
    test_session_id();
    test_base64();
    test_policy_init();
    test_build_passthrough();
    test_build_empty();
    test_build_credentials();
    test_build_extra();
    test_build_connection_and_host();
    test_build_malformed();
    test_hop_by_hop();
    return check_summary("test_rewrite");
}
