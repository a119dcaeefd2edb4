/* The Lambda Telemetry API: a listener of its own for Lambda's telemetry POSTs, and the
 * subscription that points Lambda at it. It only reports what it reads (a platform event for a
 * requestId) through one callback; the lifecycle decides what to do about it.
 *
 * The listener is not the relay: it binds an ephemeral port on 127.0.0.1 (where AWS's emulator
 * delivers) and, if /etc/hosts gives `sandbox.localdomain` another address, on that address too
 * (the subscription names `http://sandbox.localdomain:PORT/`). The name is looked up in
 * /etc/hosts only, when the listener starts: no DNS query, nothing that can block the loop.
 * It accepts only `POST /` with a JSON array of records, bounded (TELEMETRY_MAX_BODY bytes,
 * TELEMETRY_MAX_CONNECTIONS connections, TELEMETRY_MAX_HEAD bytes of request line and headers),
 * and answers each batch at once, before its callback work is anything but a few string copies.
 * A request stalled for PYROSCOPE_CLIENT_TIMEOUT is answered 408 and closed, as on the relay.
 *
 * Ownership: telemetry_start allocates the listener; telemetry_close frees it once every handle
 * is closed. Event fields point into the parsed batch and are valid only during the callback. */
#ifndef PLE_TELEMETRY_H
#define PLE_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "extapi.h"

#define TELEMETRY_MAX_BODY (1024 * 1024) /* the largest buffering.maxBytes Lambda allows */
#define TELEMETRY_MAX_HEAD (16 * 1024)
#define TELEMETRY_MAX_CONNECTIONS 8
#define TELEMETRY_BUFFER_TIMEOUT_MS 25 /* Lambda's smallest: runtimeDone reaches us soonest */
#define TELEMETRY_SCHEMA "2025-01-29"  /* the only one Managed Instances accept */

enum telemetry_kind {
    TELEMETRY_START,         /* platform.start: an invoke began */
    TELEMETRY_RUNTIME_DONE,  /* platform.runtimeDone: the runtime finished the invoke */
    TELEMETRY_REPORT,        /* platform.report: the invoke's report (usually during the next) */
    TELEMETRY_RESTORE_START, /* platform.restoreStart: a SnapStart environment is restoring */
};

struct telemetry_event {
    enum telemetry_kind kind;
    const char *request_id; /* "" when the record has none (restoreStart) */
    const char *status;     /* runtimeDone's status ("success", "error", ...), else "" */
    double duration_ms;     /* metrics.durationMs of runtimeDone and report, else -1 */
};

typedef void (*telemetry_event_cb)(void *ud, const struct telemetry_event *ev);

/* Pure. Parses one delivery (a JSON array of {"time","type","record"} objects) and calls cb for
 * each record of a kind above; other types are skipped. Returns how many records the batch held,
 * or -1 with *why saying what is wrong when it is not a telemetry batch. */
int telemetry_parse(const char *body, size_t len, telemetry_event_cb cb, void *ud,
                    const char **why);

/* Pure. The subscription request's body for a listener on port. The caller frees it. */
char *telemetry_subscription_body(unsigned port);

/* Pure. The IPv4 and IPv6 addresses that hosts-file text gives name (case-insensitive), in file
 * order, without duplicates; returns how many were written to out (at most max). */
size_t telemetry_hosts_lookup(const char *text, const char *name, char (*out)[48], size_t max);

struct telemetry;

/* Binds the listener and starts accepting; cb runs for every event read. A connection that sends
 * nothing for stall_ms in the middle of a request is answered 408 and closed. Returns NULL and
 * sets *err (a negative uv error) when 127.0.0.1 cannot be bound. */
struct telemetry *telemetry_start(uv_loop_t *loop, int64_t stall_ms, telemetry_event_cb cb,
                                  void *ud, int *err);

/* PUT /2022-07-01/telemetry through api, with id_header ("Lambda-Extension-Identifier: <id>").
 * done(ud, true) once Lambda accepted the subscription;
 * done(ud, false) after logging one warning that says why (the extension then flushes as it
 * would without telemetry). done does not run if api is closed first. */
void telemetry_subscribe(struct telemetry *t, struct extapi *api, const char *id_header,
                         void (*done)(void *ud, bool ok), void *ud);

/* Closes every handle and frees t. Close the extapi client used by telemetry_subscribe first. */
void telemetry_close(struct telemetry *t);

#endif
