/* URL joining, the FlameQL session-id rewrite and the header policy. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rewrite.h"

#define SID "0123456789abcdef"

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
    check_join("http://127.0.0.1:9/", "/a?%zz&b", "http://127.0.0.1:9/a?%zz&b");
    check_join("http://h", "*", "http://h/*");
}

static void check_key(const char *key, const char *want)
{
    char *got = flameql_add_session_id(key, strlen(key), SID);
    if (want)
        CHECK_STR(got, want);
    else
        CHECK(got == NULL);
    if (!want && got)
        fprintf(stderr, "  key %s parsed as %s\n", key, got);
    free(got);
}

static void test_flameql(void)
{
    check_key("app", "app{__session_id__=" SID "}");
    check_key("my.app-1{b=1,a=2}", "my.app-1{__session_id__=" SID ",a=2,b=1}");
    check_key("app{ z = x y , a=1 }", "app{__session_id__=" SID ",a=1,z=x y}");
    check_key("app{}", "app{__session_id__=" SID "}");
    check_key("app{__session_id__=mine,a=1}", NULL); /* present: nothing to change */
    const char *bad[] = {"",        "{a=b}",   "app{a}", "app{a=b",   "app{a=b}x", "app{a=b,a=c}",
                         "app{=b}", "app{a=}", "ap p",   "app{a=b{}", "app{a=b,}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_key(bad[i], NULL);
}

static void check_query(const char *q, const char *want)
{
    char *got = query_add_session_id(q, strlen(q), SID);
    if (want)
        CHECK_STR(got, want);
    else
        CHECK(got == NULL);
    free(got);
}

static void test_query(void)
{
    check_query("name=app", "name=app%7B__session_id__%3D" SID "%7D");
    check_query("from=1&name=app%7Bb%3D1%2Ca%3D2%7D&until=2&x=%zz",
                "from=1&name=app%7B__session_id__%3D" SID "%2Ca%3D2%2Cb%3D1%7D&until=2&x=%zz");
    check_query("a=1&name=app%7Bk%3Dv+w%7D",
                "a=1&name=app%7B__session_id__%3D" SID "%2Ck%3Dv+w%7D");
    check_query("username=app&x=1", NULL);
    check_query("x=1", NULL);
    check_query("name=", NULL);
    check_query("name=bad%7B%7B", NULL);
    check_query("name=app%7B__session_id__%3Dx%7D", NULL);
    check_query("name=app%zz", NULL);
    check_query("name=app%7", NULL);
}

static void test_session_id_and_base64(void)
{
    char a[17], b[17];
    session_id_generate(a);
    session_id_generate(b);
    CHECK(strlen(a) == 16 && strspn(a, "0123456789abcdef") == 16);
    CHECK(strcmp(a, b) != 0);
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *got = base64_encode((const unsigned char *)in[i], strlen(in[i]));
        CHECK_STR(got, out[i]);
        free(got);
    }
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

static void check_list(struct curl_slist *l, const char *const *want)
{
    size_t i = 0;
    for (struct curl_slist *p = l; p; p = p->next, i++) {
        CHECK(want[i] != NULL);
        if (!want[i])
            break;
        CHECK_STR(p->data, want[i]);
    }
    CHECK(want[i] == NULL);
    curl_slist_free_all(l);
}

static void test_policy_passthrough(void)
{
    struct config c = cfg("", "user-only", "", "");
    struct header_policy p;
    CHECK(header_policy_init(&p, &c) == 0);
    CHECK(p.authorization == NULL); /* a user without a password is not basic auth */
    const struct req_header h[] = {
        H("Host", "localhost:4040"),
        H("Content-Length", "12"),
        H("Connection", "keep-alive, X-Gone"),
        H("X-Gone", "1"),
        H("Keep-Alive", "5"),
        H("Proxy-Authorization", "x"),
        H("Transfer-Encoding", "chunked"),
        H("Expect", "100-continue"),
        H("Authorization", "Bearer c"),
        H("Content-Type", "application/octet-stream"),
        H("X-Forwarded-Host", "spoof"),
        H("User-Agent", "ua"),
    };
    const char *want[] = {"X-Forwarded-Host: localhost:4040",
                          "Authorization: Bearer c",
                          "Content-Type: application/octet-stream",
                          "User-Agent: ua",
                          "Accept:",
                          "Expect:",
                          NULL};
    check_list(header_policy_build(&p, h, sizeof(h) / sizeof(h[0])), want);
    header_policy_free(&p);
}

static void test_policy_credentials_and_extra(void)
{
    struct config_header extra[] = {
        {"X-Custom", "cfg"}, {"Authorization", "loses"}, {"Accept", "application/json"}};
    struct config c = cfg("tok", "u", "p", "t1");
    c.http_headers = extra;
    c.n_http_headers = 3;
    struct header_policy p;
    CHECK(header_policy_init(&p, &c) == 0);
    const struct req_header h[] = {H("x-custom", "client"), H("Authorization", "Bearer c"),
                                   H("X-Scope-OrgID", "client-tenant"), H("X-Other", "o")};
    const char *want[] = {"X-Other: o",
                          "X-Custom: cfg",
                          "Accept: application/json",
                          "Authorization: Bearer tok",
                          "X-Scope-OrgID: t1",
                          "Content-Type:",
                          "Expect:",
                          NULL};
    check_list(header_policy_build(&p, h, sizeof(h) / sizeof(h[0])), want);
    header_policy_free(&p);

    struct config basic = cfg("", "alice", "s3cret", "");
    CHECK(header_policy_init(&p, &basic) == 0);
    CHECK_STR(p.authorization, "Authorization: Basic YWxpY2U6czNjcmV0");
    header_policy_free(&p);
}

static void test_hop_by_hop(void)
{
    const char *hop[] = {"Connection",       "keep-alive",        "TE",
                         "trailer",          "Transfer-Encoding", "UPGRADE",
                         "Proxy-Connection", "proxy-authenticate"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        CHECK(header_is_hop_by_hop(hop[i], strlen(hop[i])));
    CHECK(!header_is_hop_by_hop("Content-Type", 12));
    CHECK(!header_is_hop_by_hop("Proxy", 5));
}

int main(void)
{
    test_url_join();
    test_flameql();
    test_query();
    test_session_id_and_base64();
    test_policy_passthrough();
    test_policy_credentials_and_extra();
    test_hop_by_hop();
    return check_summary("test_rewrite");
}
