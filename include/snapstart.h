/* SnapStart (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start): init runs once, the sandbox is then
 * snapshotted, and every new environment resumes from that snapshot. Everything unique made
 * during init is shared by every restored copy, so at restore this renews it: a new session id
 * (the __session_id__ label, rewritten in place where the relay and the self-profiler read it),
 * the uploader's retry jitter reseeded and its pre-snapshot connections shut
 * (upstream_after_restore), and the archive's credentials fetched anew
 * (credentials_after_restore).
 *
 * Lambda sends extensions no RESTORE event. A restore is known from the first event after init
 * (the pending /event/next answers with the first INVOKE, or SHUTDOWN) when the initialization
 * type is snap-start, or from the Telemetry API's platform.restoreStart, whichever comes first.
 * A process is restored at most once (a snapshot is taken of a process not yet restored), so
 * renewing is done once; later calls do nothing. */
#ifndef PLE_SNAPSTART_H
#define PLE_SNAPSTART_H

#include <stdbool.h>

struct app;

struct snapstart {
    bool restored; /* renewed already */
};

/* The lifecycle received an event from /event/next (before handling it). */
void snapstart_on_event(struct app *app);
/* The environment was restored from a snapshot (source: what told, for the log). Idempotent. */
void snapstart_restored(struct app *app, const char *source);

#endif
