/* The extension's states, on the one loop:
 *
 *   listening -> registered -> (next <-> invoke/[await runtimeDone]/flush)* -> shutdown/drain
 *   -> exit
 *
 * Under Lambda Managed Instances there are no INVOKE events: registered -> next (until SHUTDOWN)
 * -> drain -> exit, relaying all along.
 *
 * In dev mode (PYROSCOPE_DEV_MODE) there is no Extensions API: listening -> (SIGINT|SIGTERM) ->
 * drain -> exit. The lifecycle never touches sockets of the relay or the uploader: it asks the
 * queue to tell it when nothing is queued or in flight, and it asks the listener to stop
 * accepting. */
#ifndef PLE_LIFECYCLE_H
#define PLE_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "credentials.h"
#include "extapi.h"
#include "flush_policy.h"
#include "queue.h"
#include "relay_server.h"
#include "rewrite.h"
#include "selfprof.h"
#include "snapstart.h"
#include "telemetry.h"
#include "tracesample.h"
#include "upstream.h"

/* How long before a deadline we stop waiting: the process must be gone before Lambda's SIGKILL
 * (shutdown), and the next event must be polled before the invoke's deadline (flush). */
#define SHUTDOWN_MARGIN_MS 200
#define FLUSH_MARGIN_MS 100

struct invoke {
    uint64_t seq; /* 1, 2, 3, ... */
    char request_id[80];
    int64_t deadline_ms; /* epoch milliseconds */
    char tracing[256];   /* the X-Amzn-Trace-Id value, or "" */
};

enum app_state {
    APP_STARTING,
    APP_REGISTERING,
    APP_WAITING_EVENT,
    APP_AWAIT_RUNTIME, /* flush strategy end: waiting for platform.runtimeDone of the invoke */
    APP_FLUSHING,
    APP_DRAINING,
    APP_EXITING,
};

struct app {
    uv_loop_t *loop;
    const struct config *cfg;
    struct queue q;
    struct header_policy policy;
    char session_id[17];
    struct relay_server *server;
    int listen_error; /* negative uv error when binding failed */
    struct upstream *upstream;
    struct selfprof *selfprof; /* PYROSCOPE_SELF_PROFILING, else NULL */
    struct extapi *api;
    const char *ext_name; /* basename of argv[0] */
    char id_header[192];  /* "Lambda-Extension-Identifier: <id>", once registered */
    char function_name[128];
    char function_version[64];
    char account_id[32];
    struct invoke invoke;
    struct telemetry *telemetry; /* with PYROSCOPE_FLUSH_ON_INVOKE outside Managed Instances */
    struct flush_policy flush;
    uint64_t runtime_done_ms;      /* uv_now() when runtimeDone of the current invoke arrived */
    uint64_t last_runtime_done_ms; /* uv_now() of the latest runtimeDone, whichever invoke */
    uint64_t polled_seq;           /* the invoke after which /event/next was last polled */
    uint64_t post_runtime_ms;      /* summed over invokes: runtimeDone to /event/next */
    struct trace_sampling sampling;
    struct credentials creds; /* what the archive's PUTs are signed with */
    struct snapstart snap;
    bool managed_instances; /* Lambda Managed Instances: SHUTDOWN only, relay continuously */
    enum app_state state;
    uv_signal_t sigterm, sigint;
    uv_timer_t timer; /* the flush or drain deadline, and the deferred exit */
    struct queue_waiter *waiter;
    void (*await_then)(struct app *app, bool idle); /* what a flush or the drain does next */
    uint64_t wait_started_ms;
    int exit_code;
};

/* Installs the SIGTERM/SIGINT handlers: called before the listener is bound, so that a signal
 * that arrives as soon as a client can see the relay still leads to a clean drain. */
void lifecycle_init(struct app *app);

/* Starts the lifecycle once the listener is bound (or has failed: listen_error). The caller
 * then runs the loop; it returns once everything is closed, with app->exit_code set. */
void lifecycle_start(struct app *app);

#endif
