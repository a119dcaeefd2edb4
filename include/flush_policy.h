/* When flush-on-invoke flushes (PYROSCOPE_FLUSH_STRATEGY), as pure logic: the lifecycle feeds it
 * INVOKE events and the Telemetry API's events, and asks what to do for the current invoke.
 *
 *   END          after INVOKE N, wait for platform.runtimeDone of N, then await the uploads and
 *                poll /event/next: N's profiles leave before the freeze.
 *   NEXT_INVOKE  await the uploads and poll /event/next at once: N's profiles leave when N+1
 *                thaws the sandbox (the Go extension's behaviour).
 *   AUTO         END while invokes are sparse, NEXT_INVOKE while they come often (see
 *                FLUSH_AUTO_SPARSE_MS).
 *
 * END is tried only while the telemetry stream is known to work: subscribed, and either an earlier
 * runtimeDone arrived or this invoke's platform.start did. Without either, the lifecycle waits
 * FLUSH_START_GRACE_MS for one of them. A wait that ends without runtimeDone marks the stream
 * failed: from then on every invoke flushes as NEXT_INVOKE. No allocation; nothing to free. */
#ifndef PLE_FLUSH_POLICY_H
#define PLE_FLUSH_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "telemetry.h"

/* AUTO uses END when the smoothed gap between INVOKEs (an average weighing the newest gap 1/4) is
 * at least this; see the README's "Lambda execution models" for the measurements behind it. */
#define FLUSH_AUTO_SPARSE_MS 10000
/* How long to wait for a sign of life (this invoke's platform.start or runtimeDone) before the
 * first runtimeDone has ever been seen: Lambda buffers telemetry for 25 ms, then delivers. */
#define FLUSH_START_GRACE_MS 300

enum flush_when {
    FLUSH_WHEN_NOW,          /* await the uploads, then poll /event/next */
    FLUSH_WHEN_RUNTIME_DONE, /* wait for runtimeDone of this invoke (bounded by its deadline) */
    FLUSH_WHEN_STREAM_ALIVE, /* wait FLUSH_START_GRACE_MS for platform.start or runtimeDone */
};

struct flush_policy {
    enum flush_strategy strategy;
    bool telemetry;     /* the subscription was accepted */
    bool stream_failed; /* a runtimeDone did not come: END is not tried again */
    uint64_t runtime_dones;
    bool have_prev;
    uint64_t prev_invoke_ms;
    uint64_t gap_ewma_ms;
    bool auto_end; /* AUTO's current choice */
    char request_id[80];
    bool started, done;   /* platform.start / runtimeDone of request_id arrived */
    char early_start[80]; /* a platform.start that arrived before its INVOKE was read */
    char early_done[80];  /* a runtimeDone that arrived before its INVOKE was read */
};

void flush_policy_init(struct flush_policy *p, enum flush_strategy s);
/* INVOKE request_id at now_ms (monotonic): what to do. *switched tells that AUTO changed its
 * choice with this invoke (for a debug line); *end whether END applies to it. */
enum flush_when flush_policy_invoke(struct flush_policy *p, const char *request_id, uint64_t now_ms,
                                    bool *end, bool *switched);
/* A telemetry event. Returns true when it is what the current wait is for: runtimeDone of the
 * current invoke (or its platform.start, while waiting for the stream to show life). */
bool flush_policy_event(struct flush_policy *p, const struct telemetry_event *ev);
/* The runtimeDone of the current invoke has arrived. */
bool flush_policy_runtime_done(const struct flush_policy *p);
/* The wait for runtimeDone ended without it: stop trying END. Returns true the first time (the
 * caller logs one warning). */
bool flush_policy_gave_up(struct flush_policy *p);

#endif
