/* The AWS credentials that sign the per-trace archive's PUTs (include/tracesample.h).
 *
 * Static: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, as Lambda sets them
 * for on-demand functions. They win when present, as in every AWS SDK.
 *
 * From an endpoint: when they are absent (SnapStart, where Lambda leaves them out) and
 * AWS_CONTAINER_CREDENTIALS_FULL_URI is set, they are fetched from that URI with the header
 * "Authorization: <token>", the token being the content of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
 * (read at each fetch, since it may be rotated) or else AWS_CONTAINER_AUTHORIZATION_TOKEN. The
 * answer is JSON: AccessKeyId, SecretAccessKey, Token, Expiration (ISO 8601). The fetch is lazy,
 * on the loop, through the uploader's multi (upstream_fetch): an environment that archives
 * nothing never asks. Before their Expiration they are refreshed in the background; an upload
 * never uses them within the last part of their life (stale_at) and waits for new ones instead.
 *
 * The uploader asks before every signed attempt (aws_sign.check): SIGN_READY, SIGN_PENDING (it
 * holds the upload; credentials_* kicks the queue once the fetch is over) or SIGN_FAILED (the
 * fetch failed for a reason logged once at error level; the upload is not sent). A transport
 * error or a 5xx/429 is tried again twice; after a failed round, uploads fail at once for
 * CREDENTIALS_RETRY_MS, then the next one asks again. Every wait is bounded by the fetch's
 * timeout (PYROSCOPE_TIMEOUT) times its attempts.
 *
 * Secrets (the token, the keys, the answer's body) are never logged, and are wiped when freed.
 * Owns: its copies of the keys, one uv_timer_t (closed by credentials_close). */
#ifndef PLE_CREDENTIALS_H
#define PLE_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "awscreds.h"
#include "config.h"
#include "queue.h"
#include "upstream.h"

#define CREDENTIALS_ATTEMPTS 3
#define CREDENTIALS_RETRY_MS 10000

struct credentials {
    uv_loop_t *loop;
    const struct xray_archive_config *x;
    struct queue *q;
    struct upstream *up; /* NULL until the uploader exists */
    struct aws_sign sign;
    bool from_endpoint;
    struct aws_credentials cur; /* valid when have */
    bool have;
    int64_t refresh_at_s, stale_at_s;
    bool busy;             /* a round of attempts is under way: a fetch awaits, or retry_due */
    bool retry_due;        /* the timer starts the round's next attempt */
    bool in_check;         /* inside aws_sign.check: the uploader is not kicked from there */
    unsigned attempts;     /* in the current round */
    uint64_t failed_at_ms; /* uv_now of the last failed round; 0 when none */
    bool failure_logged;
    unsigned gen;     /* restores seen: a fetch made before one is not used after it */
    uv_timer_t timer; /* the refresh, or the next attempt */
    bool closed;
};

/* Sets c up for c->x (the archive's configuration); c->sign is what archive PUTs are signed
 * with. The loop's timer is initialised only for credentials from an endpoint. */
void credentials_init(struct credentials *c, uv_loop_t *loop, const struct config *cfg,
                      struct queue *q);
/* The uploader exists: fetches may start (one is started if an upload already waits). */
void credentials_attach(struct credentials *c, struct upstream *up);
/* After a SnapStart restore: what was fetched before the snapshot is dropped (every restored
 * copy holds the same, and it may have expired while the snapshot waited); the next archive
 * upload fetches anew. */
void credentials_after_restore(struct credentials *c);
/* Stops the timer and forgets the keys; a fetch still in flight is ended by upstream_close. */
void credentials_close(struct credentials *c);

#endif
