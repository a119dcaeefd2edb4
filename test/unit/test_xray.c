/* The per-trace decision and the archive's naming (include/xray.h). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rewrite.h"
#include "xray.h"

static void test_seed_example(void)
{
    /* The seed's README: threshold 500 and Root=1-5759e988-bd862e3fe1be46a99427[01F0] is
     * profiled because 0x01F0 <= 500. */
    struct xray_decision d;
    xray_decide("Root=1-5759e988-bd862e3fe1be46a9942701F0", "req", &d);
    CHECK(d.traced);
    CHECK_STR(d.root, "1-5759e988-bd862e3fe1be46a9942701F0");
    CHECK(d.value == 0x01F0);
    CHECK(xray_sampled(&d, 500));
    CHECK(xray_sampled(&d, 496));
    CHECK(!xray_sampled(&d, 495));
    CHECK(!xray_sampled(&d, -1)); /* unset: nothing sampled */
}

static void test_thresholds(void)
{
    struct xray_decision d;
    xray_decide("Root=1-5759e988-bd862e3fe1be46a994270000", "r", &d);
    CHECK(d.value == 0 && xray_sampled(&d, 0)); /* 0 samples 1 in 65,536 */
    xray_decide("Root=1-5759e988-bd862e3fe1be46a99427ffff", "r", &d);
    CHECK(d.value == 65535 && xray_sampled(&d, 65535) && !xray_sampled(&d, 65534));
    xray_decide("Root=1-5759e988-bd862e3fe1be46a99427028f", "r", &d); /* 655 */
    CHECK(xray_sampled(&d, 655) && !xray_sampled(&d, 654));
}

static void test_header_forms(void)
{
    char root[XRAY_ROOT_LEN + 1];
    const char *full = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    CHECK(xray_parse_root(full, root));
    CHECK_STR(root, "1-5759e988-bd862e3fe1be46a994272793");
    CHECK(
        xray_parse_root("Sampled=0; Parent=1 ;  Root=1-5759e988-bd862e3fe1be46a994272793 ", root));
    CHECK_STR(root, "1-5759e988-bd862e3fe1be46a994272793");
    CHECK(xray_parse_root("root=1-5759e988-bd862e3fe1be46a994272793", root)); /* case of the key */
    /* Malformed or missing: the seed panics on some of these; here they are simply "no root". */
    const char *bad[] = {
        "",
        ";;;",
        "Root",
        "Root=",
        "Root=1",
        "Root=abc",
        "Parent=53995c3f42cd8ad8",
        "Root=1-5759e988-bd862e3fe1be46a99427279",   /* 23 hex digits */
        "Root=1-5759e988-bd862e3fe1be46a9942727933", /* 25 */
        "Root=2-5759e988-bd862e3fe1be46a994272793",  /* version 2 */
        "Root=1-5759e98g-bd862e3fe1be46a994272793",  /* not hex */
        "Root=1_5759e988-bd862e3fe1be46a994272793",
        "Root=1-5759e988-bd862e3fe1be46a99427279/",
        "Root=1-5759e988-bd862e3fe1be46a9942../..",
        "=;=;Root==",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!xray_parse_root(bad[i], root));
        CHECK(root[0] == '\0');
    }
    CHECK(!xray_parse_root(NULL, root));
}

static void test_fallback(void)
{
    struct xray_decision a, b;
    xray_decide(NULL, "8476a536-e9f4-11e8-9739-2dfe598c3fcd", &a);
    xray_decide("garbage", "8476a536-e9f4-11e8-9739-2dfe598c3fcd", &b);
    CHECK(!a.traced && !b.traced && a.root[0] == '\0');
    CHECK(a.value == b.value); /* the same requestId, the same decision */
    CHECK(a.value == xray_hash16("8476a536-e9f4-11e8-9739-2dfe598c3fcd"));
    xray_decide("", NULL, &a); /* nothing at all still decides */
    CHECK(!a.traced);
    /* The hash spreads request ids evenly enough for the fraction to hold: over 65,536
     * sequential ids, threshold 6553 keeps about 10%. */
    unsigned kept = 0;
    char id[64];
    for (unsigned i = 0; i < 65536; i++) {
        snprintf(id, sizeof(id), "c0ffee00-0000-4000-8000-%012u", i);
        xray_decide(NULL, id, &a);
        kept += xray_sampled(&a, 6553);
    }
    CHECK(kept > 6000 && kept < 7100);
}

static void test_query_param(void)
{
    char v[64];
    const char *q = "from=1&name=my.app.cpu%7Bregion%3Deu%7D&until=2&format=pprof&x";
    CHECK(query_param(q, strlen(q), "name", v, sizeof(v)));
    CHECK_STR(v, "my.app.cpu{region=eu}");
    CHECK(query_param(q, strlen(q), "format", v, sizeof(v)));
    CHECK_STR(v, "pprof");
    CHECK(query_param(q, strlen(q), "x", v, sizeof(v)));
    CHECK_STR(v, "");
    CHECK(!query_param(q, strlen(q), "nam", v, sizeof(v)));
    CHECK(!query_param(q, strlen(q), "spyName", v, sizeof(v)));
    CHECK(query_param("a=b+c%zz", 8, "a", v, sizeof(v)));
    CHECK_STR(v, "b c%zz");
    char small[4];
    CHECK(query_param("name=abcdef", 11, "name", small, sizeof(small)));
    CHECK_STR(small, "abc");
}

static const char pprof_form[] =
    "--b0undary\r\n"
    "Content-Disposition: form-data; name=\"sample_type_config\"; filename=\"s.json\"\r\n"
    "Content-Type: application/octet-stream\r\n\r\n"
    "{\"cpu\":{}}\r\n"
    "--b0undary\r\n"
    "Content-Disposition: form-data; name=\"prev_profile\"; filename=\"profile.pprof\"\r\n"
    "Content-Type: application/octet-stream\r\n\r\n"
    "PREV\r\n"
    "--b0undary\r\n"
    "Content-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\n"
    "Content-Type: application/octet-stream\r\n\r\n"
    "\x1f\x8b\x08\x00PPROF\r\n--b0undarX\r\nstill the part\r\n"
    "--b0undary--\r\n";

static void test_multipart(void)
{
    char b[80];
    const char *ct = "multipart/form-data; boundary=b0undary";
    CHECK(multipart_boundary(ct, strlen(ct), b, sizeof(b)));
    CHECK_STR(b, "b0undary");
    ct = "Multipart/Form-Data; charset=x; boundary=\"quoted; one\"";
    CHECK(multipart_boundary(ct, strlen(ct), b, sizeof(b)));
    CHECK_STR(b, "quoted; one");
    ct = "multipart/form-data";
    CHECK(!multipart_boundary(ct, strlen(ct), b, sizeof(b)));
    ct = "text/plain; boundary=x";
    CHECK(!multipart_boundary(ct, strlen(ct), b, sizeof(b)));
    ct = "multipart/form-data; boundary=\"unterminated";
    CHECK(!multipart_boundary(ct, strlen(ct), b, sizeof(b)));
    ct = "multipart/form-data; xboundary=nope";
    CHECK(!multipart_boundary(ct, strlen(ct), b, sizeof(b)));

    const char *data;
    size_t n;
    size_t len = sizeof(pprof_form) - 1;
    CHECK(multipart_part(pprof_form, len, "b0undary", "profile", &data, &n));
    const char want[] = "\x1f\x8b\x08\x00PPROF\r\n--b0undarX\r\nstill the part";
    CHECK(n == sizeof(want) - 1 && memcmp(data, want, n) == 0);
    CHECK(multipart_part(pprof_form, len, "b0undary", "prev_profile", &data, &n));
    CHECK(n == 4 && memcmp(data, "PREV", 4) == 0);
    CHECK(!multipart_part(pprof_form, len, "b0undary", "jfr", &data, &n));
    CHECK(!multipart_part(pprof_form, len, "other", "profile", &data, &n));
    /* Truncated bodies: a part that is never closed is not taken. */
    for (size_t cut = 0; cut < len - 16; cut += 7)
        CHECK(!multipart_part(pprof_form, cut, "b0undary", "profile", &data, &n) ||
              (data >= pprof_form && data + n <= pprof_form + cut));
    const char unquoted[] = "--x\r\nContent-Disposition: form-data; name=jfr\r\n\r\nJFR\r\n--x--";
    CHECK(multipart_part(unquoted, sizeof(unquoted) - 1, "x", "jfr", &data, &n));
    CHECK(n == 3 && memcmp(data, "JFR", 3) == 0);
    const char prefixed[] =
        "--x\r\nContent-Disposition: form-data; name=\"jfrx\"\r\n\r\nJ\r\n--x--";
    CHECK(!multipart_part(prefixed, sizeof(prefixed) - 1, "x", "jfr", &data, &n));
}

static void test_archive_select(void)
{
    struct archive_payload pl;
    const char *q = "name=app.cpu&format=pprof";
    const char *ct = "multipart/form-data; boundary=b0undary";
    archive_select(q, strlen(q), ct, strlen(ct), pprof_form, sizeof(pprof_form) - 1, &pl);
    CHECK_STR(pl.ext, "pprof");
    CHECK(pl.len > 4 && memcmp(pl.data, "\x1f\x8b", 2) == 0);

    const char jfr[] =
        "--j\r\nContent-Disposition: form-data; name=\"jfr\"; filename=\"jfr\"\r\n\r\n"
        "FLR\0body\r\n--j\r\nContent-Disposition: form-data; name=\"labels\"\r\n\r\n"
        "L\r\n--j--\r\n";
    q = "name=app&format=jfr";
    ct = "multipart/form-data; boundary=j";
    archive_select(q, strlen(q), ct, strlen(ct), jfr, sizeof(jfr) - 1, &pl);
    CHECK_STR(pl.ext, "jfr");
    CHECK(pl.len == 8 && memcmp(pl.data, "FLR\0body", 8) == 0);

    const char other[] = "--j\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nX\r\n--j--\r\n";
    archive_select(q, strlen(q), ct, strlen(ct), other, sizeof(other) - 1, &pl);
    CHECK_STR(pl.ext, "multipart");
    CHECK(pl.data == other && pl.len == sizeof(other) - 1); /* kept whole */

    const char folded[] = "main;work 10\nmain;idle 2\n";
    q = "name=app.cpu&from=1&until=2";
    archive_select(q, strlen(q), NULL, 0, folded, sizeof(folded) - 1, &pl);
    CHECK_STR(pl.ext, "folded");
    CHECK_STR(pl.content_type, "text/plain");
    CHECK(pl.data == folded && pl.len == sizeof(folded) - 1);
    q = "format=lines";
    archive_select(q, strlen(q), "text/plain", 10, folded, 5, &pl);
    CHECK_STR(pl.ext, "lines");
    q = "format=pprof";
    archive_select(q, strlen(q), "application/octet-stream", 24, "\x1f\x8b", 2, &pl);
    CHECK_STR(pl.ext, "pprof"); /* a raw pprof body */
    q = "format=trie";
    archive_select(q, strlen(q), NULL, 0, "t", 1, &pl);
    CHECK_STR(pl.ext, "trie");
    q = "format=something-new";
    archive_select(q, strlen(q), NULL, 0, "t", 1, &pl);
    CHECK_STR(pl.ext, "bin");
}

static void test_keys_and_urls(void)
{
    struct xray_decision d;
    xray_decide("Root=1-5759e988-bd862e3fe1be46a9942701f0;Sampled=1", "r", &d);
    char *k = archive_key("profiles/", &d, "my-func", "8476a536-e9f4-11e8-9739-2dfe598c3fcd", 1,
                          "my.app.cpu{__session_id__=abc,env=prod}", "pprof");
    CHECK_STR(k, "profiles/1-5759e988-bd862e3fe1be46a9942701f0/my-func/"
                 "8476a536-e9f4-11e8-9739-2dfe598c3fcd/1-my.app.cpu.pprof");
    free(k);
    /* The prefix is percent-encoded as S3 encodes a key; ids are sanitised; no trace. */
    xray_decide("", "../etc/passwd", &d);
    k = archive_key("a b+c/ü/", &d, "", "../etc/passwd", 12, "", "folded");
    CHECK_STR(k, "a%20b%2Bc/%C3%BC/untraced/function/.._etc_passwd/12-profile.folded");
    free(k);
    k = archive_key("", &d, "f", "", 2, "x/y?z", "jfr");
    CHECK_STR(k, "untraced/f/no-request-id/2-x_y_z.jfr");
    free(k);

    char *u = archive_url("", "eu-west-1", "xrayprofile-123456789012-eu-west-1", "p/k.pprof");
    CHECK_STR(u, "https://xrayprofile-123456789012-eu-west-1.s3.eu-west-1.amazonaws.com/p/k.pprof");
    free(u);
    u = archive_url(NULL, "us-east-1", "my.dotted.bucket", "k");
    CHECK_STR(u, "https://s3.us-east-1.amazonaws.com/my.dotted.bucket/k");
    free(u);
    u = archive_url("", "cn-north-1", "b-cn", "k");
    CHECK_STR(u, "https://b-cn.s3.cn-north-1.amazonaws.com.cn/k");
    free(u);
    u = archive_url("http://127.0.0.1:9000/", "us-east-1", "bucket", "a/b");
    CHECK_STR(u, "http://127.0.0.1:9000/bucket/a/b");
    free(u);

    char bucket[64];
    archive_default_bucket("123456789012", "eu-west-1", bucket, sizeof(bucket));
    CHECK_STR(bucket, "xrayprofile-123456789012-eu-west-1");
    char acct[16];
    CHECK(arn_account_id("arn:aws:lambda:eu-west-1:123456789012:function:my-func", acct,
                         sizeof(acct)));
    CHECK_STR(acct, "123456789012");
    CHECK(arn_account_id("arn:aws-cn:lambda:cn-north-1:210987654321:function:f:alias", acct,
                         sizeof(acct)));
    CHECK_STR(acct, "210987654321");
    CHECK(!arn_account_id("", acct, sizeof(acct)));
    CHECK(!arn_account_id(NULL, acct, sizeof(acct)));
    CHECK(!arn_account_id("arn:aws:lambda:eu-west-1:12345:function:f", acct, sizeof(acct)));
    CHECK(!arn_account_id("arn:aws:lambda:eu-west-1", acct, sizeof(acct)));
    CHECK(!arn_account_id("xrn:aws:lambda:eu-west-1:123456789012:function:f", acct, sizeof(acct)));

    CHECK(s3_bucket_name_ok("xrayprofile-123456789012-eu-west-1"));
    CHECK(s3_bucket_name_ok("a.b-c"));
    CHECK(!s3_bucket_name_ok("ab"));
    CHECK(!s3_bucket_name_ok("Upper"));
    CHECK(!s3_bucket_name_ok("-start"));
    CHECK(!s3_bucket_name_ok("end-"));
    CHECK(!s3_bucket_name_ok("has/slash"));
    CHECK(!s3_bucket_name_ok("a234567890123456789012345678901234567890123456789012345678901234"));
}

int main(void)
{
    test_seed_example();
    test_thresholds();
    test_header_forms();
    test_fallback();
    test_query_param();
    test_multipart();
    test_archive_select();
    test_keys_and_urls();
    return check_summary("test_xray");
}
