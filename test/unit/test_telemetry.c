/* The Telemetry API's pure parts: batch parsing, the subscription body, the hosts lookup. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "telemetry.h"

struct seen {
    int n;
    enum telemetry_kind kind[8];
    char id[8][64];
    char status[8][16];
    double dur[8];
};

static void on_event(void *ud, const struct telemetry_event *ev)
{
    struct seen *s = ud;
    if (s->n == 8)
        return;
    s->kind[s->n] = ev->kind;
    snprintf(s->id[s->n], sizeof(s->id[0]), "%s", ev->request_id);
    snprintf(s->status[s->n], sizeof(s->status[0]), "%s", ev->status);
    s->dur[s->n] = ev->duration_ms;
    s->n++;
}

static int parse(const char *body, struct seen *s, const char **why)
{
    memset(s, 0, sizeof(*s));
    *why = NULL;
    return telemetry_parse(body, strlen(body), on_event, s, why);
}

static void test_batch(void)
{
    struct seen s;
    const char *why;
    const char *body =
        "[{\"time\":\"2025-01-01T00:00:00.000Z\",\"type\":\"platform.start\","
        "\"record\":{\"requestId\":\"r1\",\"version\":\"$LATEST\"}},"
        "{\"time\":\"t\",\"type\":\"function\",\"record\":\"hello\"},"
        "{\"time\":\"t\",\"type\":\"platform.runtimeDone\",\"record\":{\"requestId\":\"r1\","
        "\"status\":\"success\",\"metrics\":{\"durationMs\":12.5,\"producedBytes\":3}}},"
        "{\"time\":\"t\",\"type\":\"platform.report\",\"record\":{\"requestId\":\"r0\","
        "\"metrics\":{\"durationMs\":7}}},"
        "{\"time\":\"t\",\"type\":\"platform.restoreStart\",\"record\":{}}]";
    CHECK(parse(body, &s, &why) == 5);
    CHECK(s.n == 4);
    CHECK(s.kind[0] == TELEMETRY_START);
    CHECK_STR(s.id[0], "r1");
    CHECK(s.dur[0] == -1);
    CHECK(s.kind[1] == TELEMETRY_RUNTIME_DONE);
    CHECK_STR(s.status[1], "success");
    CHECK(s.dur[1] == 12.5);
    CHECK(s.kind[2] == TELEMETRY_REPORT && s.dur[2] == 7);
    CHECK_STR(s.id[2], "r0");
    CHECK(s.kind[3] == TELEMETRY_RESTORE_START);
    CHECK_STR(s.id[3], "");
    CHECK(parse("[]", &s, &why) == 0 && s.n == 0);
}

static void test_bad_batches(void)
{
    struct seen s;
    const char *why;
    CHECK(parse("", &s, &why) == -1);
    CHECK_STR(why, "not JSON");
    CHECK(parse("{\"type\":\"platform.start\"}", &s, &why) == -1);
    CHECK_STR(why, "not a JSON array of telemetry records");
    /* One bad record refuses the whole batch before any event is reported. */
    CHECK(parse("[{\"type\":\"platform.start\",\"record\":{\"requestId\":\"a\"}},{\"record\":{}}]",
                &s, &why) == -1);
    CHECK(s.n == 0);
    CHECK(strstr(why, "type") != NULL);
    CHECK(parse("[1]", &s, &why) == -1);
    /* Records of a known type with odd fields are reported with what they have. */
    CHECK(parse("[{\"type\":\"platform.runtimeDone\",\"record\":5}]", &s, &why) == 1);
    CHECK(s.n == 1 && s.id[0][0] == '\0' && s.dur[0] == -1);
}

static void test_subscription_body(void)
{
    char *text = telemetry_subscription_body(43210);
    json_t *o = json_loads(text, 0, NULL);
    CHECK(o != NULL);
    CHECK_STR(json_string_value(json_object_get(o, "schemaVersion")), "2025-01-29");
    json_t *types = json_object_get(o, "types");
    CHECK(json_array_size(types) == 1);
    CHECK_STR(json_string_value(json_array_get(types, 0)), "platform");
    json_t *b = json_object_get(o, "buffering");
    CHECK(json_integer_value(json_object_get(b, "timeoutMs")) == 25);
    CHECK(json_integer_value(json_object_get(b, "maxItems")) == 1000);
    CHECK(json_integer_value(json_object_get(b, "maxBytes")) == 262144);
    json_t *d = json_object_get(o, "destination");
    CHECK_STR(json_string_value(json_object_get(d, "protocol")), "HTTP");
    CHECK_STR(json_string_value(json_object_get(d, "URI")), "http://sandbox.localdomain:43210/");
    json_decref(o);
    free(text);
}

static void test_hosts_lookup(void)
{
    char out[4][48];
    const char *hosts = "127.0.0.1 localhost\n"
                        "# 10.0.0.1 sandbox.localdomain\n"
                        "::1\tlocalhost ip6-localhost\n"
                        "169.254.100.1  sandbox.localdomain sandbox # the sandbox\n"
                        "bogus sandbox.localdomain\n"
                        "169.254.100.1 SANDBOX.LOCALDOMAIN\n"
                        "fd00::5 other sandbox.localdomain\n"
                        "127.0.0.2 sandbox.localdomainx\n"
                        "10.1.1.1 sandbox.localdomain";
    size_t n = telemetry_hosts_lookup(hosts, "sandbox.localdomain", out, 4);
    CHECK(n == 3);
    CHECK_STR(out[0], "169.254.100.1");
    CHECK_STR(out[1], "fd00::5");
    CHECK_STR(out[2], "10.1.1.1");
    CHECK(telemetry_hosts_lookup(hosts, "sandbox.localdomain", out, 1) == 1);
    CHECK(telemetry_hosts_lookup("127.0.0.1 localhost\n", "sandbox.localdomain", out, 4) == 0);
    CHECK(telemetry_hosts_lookup("", "sandbox.localdomain", out, 4) == 0);
}

int main(void)
{
    test_batch();
    test_bad_batches();
    test_subscription_body();
    test_hosts_lookup();
    return check_summary("test_telemetry");
}
