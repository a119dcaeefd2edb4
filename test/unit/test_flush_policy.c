/* The flush strategy's decisions, without a loop. */
#include "check.h"
#include "flush_policy.h"

static struct telemetry_event ev(enum telemetry_kind k, const char *id)
{
    return (struct telemetry_event){.kind = k, .request_id = id, .status = "", .duration_ms = -1};
}

static void test_end_waits_for_a_live_stream(void)
{
    struct flush_policy p;
    bool end, sw;
    flush_policy_init(&p, FLUSH_END);
    /* Not subscribed: today's behaviour. */
    CHECK(flush_policy_invoke(&p, "a", 0, &end, &sw) == FLUSH_WHEN_NOW && !end);
    p.telemetry = true;
    /* platform.start read before its INVOKE: the stream is alive. */
    struct telemetry_event s0 = ev(TELEMETRY_START, "a2");
    CHECK(!flush_policy_event(&p, &s0));
    CHECK(flush_policy_invoke(&p, "a2", 5, &end, &sw) == FLUSH_WHEN_RUNTIME_DONE && end);
    /* No runtimeDone seen yet: first wait for a sign of life. */
    CHECK(flush_policy_invoke(&p, "b", 10, &end, &sw) == FLUSH_WHEN_STREAM_ALIVE && end);
    struct telemetry_event e = ev(TELEMETRY_START, "other");
    CHECK(!flush_policy_event(&p, &e));
    e = ev(TELEMETRY_START, "b");
    CHECK(flush_policy_event(&p, &e) && !flush_policy_runtime_done(&p));
    e = ev(TELEMETRY_RUNTIME_DONE, "b");
    CHECK(flush_policy_event(&p, &e) && flush_policy_runtime_done(&p));
    /* The stream has delivered a runtimeDone: wait for the next one directly. */
    CHECK(flush_policy_invoke(&p, "c", 20, &end, &sw) == FLUSH_WHEN_RUNTIME_DONE);
    CHECK(!flush_policy_runtime_done(&p));
    /* A runtimeDone read before its INVOKE: nothing to wait for. */
    e = ev(TELEMETRY_RUNTIME_DONE, "d");
    CHECK(!flush_policy_event(&p, &e));
    CHECK(flush_policy_invoke(&p, "d", 30, &end, &sw) == FLUSH_WHEN_NOW && end);
    CHECK(flush_policy_runtime_done(&p));
    /* A wait that ended without runtimeDone: END is off for good, one warning. */
    CHECK(flush_policy_invoke(&p, "e", 40, &end, &sw) == FLUSH_WHEN_RUNTIME_DONE);
    CHECK(flush_policy_gave_up(&p));
    CHECK(!flush_policy_gave_up(&p));
    CHECK(flush_policy_invoke(&p, "f", 50, &end, &sw) == FLUSH_WHEN_NOW && !end);
}

static void test_next_invoke_never_waits(void)
{
    struct flush_policy p;
    bool end, sw;
    flush_policy_init(&p, FLUSH_NEXT_INVOKE);
    p.telemetry = true;
    struct telemetry_event e = ev(TELEMETRY_RUNTIME_DONE, "x");
    flush_policy_event(&p, &e);
    CHECK(flush_policy_invoke(&p, "a", 0, &end, &sw) == FLUSH_WHEN_NOW && !end && !sw);
    CHECK(flush_policy_invoke(&p, "b", 100000, &end, &sw) == FLUSH_WHEN_NOW && !end && !sw);
}

static void test_auto_follows_the_invoke_rate(void)
{
    struct flush_policy p;
    bool end, sw;
    flush_policy_init(&p, FLUSH_AUTO);
    p.telemetry = true;
    p.runtime_dones = 1;
    uint64_t t = 1000;
    CHECK(flush_policy_invoke(&p, "1", t, &end, &sw) == FLUSH_WHEN_RUNTIME_DONE && end && !sw);
    /* Frequent invokes: next-invoke, one switch. */
    t += 100;
    CHECK(flush_policy_invoke(&p, "2", t, &end, &sw) == FLUSH_WHEN_NOW && !end && sw);
    t += 100;
    CHECK(flush_policy_invoke(&p, "3", t, &end, &sw) == FLUSH_WHEN_NOW && !end && !sw);
    /* One long gap is not enough to call invokes sparse ... */
    t += 20000;
    CHECK(flush_policy_invoke(&p, "4", t, &end, &sw) == FLUSH_WHEN_NOW && !end);
    /* ... a few are. */
    int n = 0;
    do {
        t += 20000;
        flush_policy_invoke(&p, "5", t, &end, &sw);
        n++;
    } while (!end && n < 10);
    CHECK(end && sw && n <= 3);
    CHECK(p.gap_ewma_ms >= FLUSH_AUTO_SPARSE_MS);
}

int main(void)
{
    test_end_waits_for_a_live_stream();
    test_next_invoke_never_waits();
    test_auto_follows_the_invoke_rate();
    return check_summary("test_flush_policy");
}
