/* The pure half of the archive's credentials: which endpoint may be used, the answer parsed,
 * the refresh schedule. */
#include <stdlib.h>

#include "awscreds.h"
#include "check.h"

static void test_uri(void)
{
    char why[200];
    const char *ok[] = {"http://127.0.0.1:9001/2021-04-23/credentials",
                        "http://127.1.2.3/creds",
                        "http://localhost:8080/x",
                        "http://LOCALHOST/x",
                        "http://[::1]:80/x",
                        "http://169.254.170.2/v2/credentials/abc",
                        "http://169.254.170.23/v1/credentials",
                        "http://[fd00:ec2::23]/v1/credentials",
                        "https://creds.example.com/x",
                        "https://10.0.0.5:8443"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        why[0] = '\0';
        CHECK(credentials_uri_ok(ok[i], why, sizeof(why)));
        CHECK_STR(why, "");
    }
    const char *bad[] = {"ftp://127.0.0.1/x",
                         "127.0.0.1:9001/x",
                         "http://10.0.0.5/creds",
                         "http://128.0.0.1/x",
                         "http://127.0.0.1.evil.com/x",
                         "http://localhost.evil.com/x",
                         "http://user:pw@127.0.0.1/x",
                         "http:///x",
                         "https://",
                         "http://[::1/x",
                         "http://169.254.169.254/latest/meta-data"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        CHECK(!credentials_uri_ok(bad[i], why, sizeof(why)));
        CHECK(why[0] != '\0');
    }
}

static void test_time(void)
{
    CHECK(credentials_parse_time("1970-01-01T00:00:00Z") == 0);
    CHECK(credentials_parse_time("2026-11-30T08:00:00Z") == 1796025600);
    CHECK(credentials_parse_time("2026-11-30T08:00:00.123456Z") == 1796025600);
    CHECK(credentials_parse_time("2026-11-30T09:00:00+01:00") == 1796025600);
    CHECK(credentials_parse_time("2026-11-30T07:30:00-00:30") == 1796025600);
    CHECK(credentials_parse_time("2026-11-30 08:00:00Z") == -1);
    CHECK(credentials_parse_time("2026-11-30T08:00:00") == -1);
    CHECK(credentials_parse_time("2026-02-31T08:00:00Z") == -1);
    CHECK(credentials_parse_time("2026-13-01T08:00:00Z") == -1);
    CHECK(credentials_parse_time("2026-11-30T08:00:00Zjunk") == -1);
    CHECK(credentials_parse_time("2026-11-30T08:00:00.Z") == -1);
    CHECK(credentials_parse_time("") == -1);
    CHECK(credentials_parse_time(NULL) == -1);
}

static void test_parse(void)
{
    struct aws_credentials a;
    char why[200];
    const char *good = "{\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":\"s/ecret+key\","
                       "\"Token\":\"tok==\",\"Expiration\":\"2026-11-30T08:00:00Z\"}";
    CHECK(credentials_parse(good, strlen(good), &a, why, sizeof(why)) == 0);
    CHECK_STR(a.access_key, "ASIAEXAMPLE");
    CHECK_STR(a.secret_key, "s/ecret+key");
    CHECK_STR(a.token, "tok==");
    CHECK(a.expiration_s == 1796025600);
    credentials_clear_parsed(&a);
    CHECK(a.access_key == NULL);

    struct {
        const char *body, *why;
    } bad[] = {
        {"not json", "the answer is not a JSON object (8 bytes)"},
        {"[1,2]", "the answer is not a JSON object (5 bytes)"},
        {"{\"SecretAccessKey\":\"s\",\"Token\":\"t\",\"Expiration\":\"2026-11-30T08:00:00Z\"}",
         "the answer has no AccessKeyId"},
        {"{\"AccessKeyId\":\"A\",\"Token\":\"t\",\"Expiration\":\"2026-11-30T08:00:00Z\"}",
         "the answer has no SecretAccessKey"},
        {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Expiration\":\"2026-11-30T08:00:"
         "00Z\"}",
         "the answer has no Token"},
        {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Token\":\"t\"}",
         "the answer has no Expiration"},
        {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Token\":\"t\",\"Expiration\":"
         "\"soon\"}",
         "the answer's Expiration is not an ISO 8601 time"},
        {"{\"AccessKeyId\":\"\",\"SecretAccessKey\":\"s\",\"Token\":\"t\",\"Expiration\":\"x\"}",
         "the answer's AccessKeyId is not a non-empty string"},
        {"{\"AccessKeyId\":7,\"SecretAccessKey\":\"s\",\"Token\":\"t\",\"Expiration\":\"x\"}",
         "the answer's AccessKeyId is not a non-empty string"},
        {"{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\\r\\nX: y\",\"Token\":\"t\","
         "\"Expiration\":\"2026-11-30T08:00:00Z\"}",
         "the answer's SecretAccessKey holds a line break"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        CHECK(credentials_parse(bad[i].body, strlen(bad[i].body), &a, why, sizeof(why)) == -1);
        CHECK_STR(why, bad[i].why);
        CHECK(a.access_key == NULL && a.secret_key == NULL && a.token == NULL);
    }
}

static void test_schedule(void)
{
    int64_t refresh, stale;
    /* An hour of life (the container endpoint's usual): 5 and 1 minutes before. */
    credentials_schedule(1000, 1000 + 3600, &refresh, &stale);
    CHECK(refresh == 1000 + 3600 - 300 && stale == 1000 + 3600 - 60);
    /* Short-lived: half and a quarter of the life before it ends. */
    credentials_schedule(1000, 1008, &refresh, &stale);
    CHECK(refresh == 1004 && stale == 1006);
    /* Already expired: refresh now, never used. */
    credentials_schedule(1000, 990, &refresh, &stale);
    CHECK(refresh == 1000 && stale == 1000);
    credentials_schedule(1000, 1000, &refresh, &stale);
    CHECK(refresh == 1000 && stale == 1000);
    /* Always refreshed before it goes stale, and stale before it expires. */
    for (int64_t life = 1; life < 5000; life += 7) {
        credentials_schedule(0, life, &refresh, &stale);
        CHECK(refresh <= stale && stale <= life);
    }
}

int main(void)
{
    test_uri();
    test_time();
    test_parse();
    test_schedule();
    return check_summary("test_awscreds");
}
