/* The uploader: libcurl's multi interface driven by the uv loop (sockets -> uv_poll_t, curl's
 * timer -> one uv_timer_t). It takes requests from the queue while fewer than
 * PYROSCOPE_NUM_WORKERS are in flight, keeps connections to the remote alive for reuse, retries
 * what can succeed later (include/retry.h) after a delay on one more uv_timer_t, and hands each
 * request back to the queue when it is finished. A request waiting for its retry is still counted
 * as in flight, so flushes and the shutdown drain wait for it too (within their deadlines).
 *
 * Threads: none of ours. libcurl may resolve host names in a thread of its own (the threaded
 * resolver of Debian's build); that thread never touches our state.
 *
 * Who owns which descriptor, and the rule for its uv_poll_t (a handle never outlives, and is
 * never confused with, the socket it was made for; the kernel reuses a closed socket's number at
 * once, for example for the relay's next accepted client):
 * - Connection sockets: opened by us in curl's CURLOPT_OPENSOCKETFUNCTION and closed by us in its
 *   CURLOPT_CLOSESOCKETFUNCTION. Their poll is made at the open and closed (uv_close, which
 *   takes the fd out of epoll) before close(2); between two uploads it may stay started on an
 *   idle kept-alive connection, which costs no epoll_ctl on reuse.
 * - Sockets curl makes on its own (the threaded resolver's socketpair, c-ares' sockets): owned by
 *   curl or its resolver. Their poll is closed as soon as curl stops watching them
 *   (CURL_POLL_REMOVE), and after every call into curl any such poll whose socket has gone
 *   (fstat identity) is stopped before the loop runs again.
 * - A poll still named by curl after its socket has gone is kept stopped ("orphan") until curl
 *   names it for the last time or the uploader closes.
 * The shutdown's debug line "upstream sockets" counts them (opened must equal closed). */
#ifndef PLE_UPSTREAM_H
#define PLE_UPSTREAM_H

#include <stddef.h>

#include <uv.h>

#include "config.h"
#include "queue.h"

struct upstream;

/* Returns NULL on failure (logged). Registers itself as the queue's on_push. curl_global_init
 * must have been called. */
struct upstream *upstream_new(uv_loop_t *loop, struct queue *q, const struct config *c);
/* Aborts what is in flight (each is logged as not delivered and counted as failed), then frees
 * everything; done runs once every uv handle is closed. */
void upstream_close(struct upstream *u, void (*done)(void *ud), void *ud);

/* A small GET of our own on the same multi and loop (the archive's credentials endpoint): the
 * uploads' options (CA, timeout, socket callbacks) apply, it takes no worker slot, and it is not
 * an upload (not counted, never retried here). header is one "Name: value" line or NULL; it is
 * copied and wiped after use. cb runs exactly once, from the loop (never from inside this call):
 * curl_code is a CURLcode (CURLE_OK when an answer came, whatever its status), body is the whole
 * answer (at most UPSTREAM_FETCH_MAX_BYTES, NUL-terminated, wiped once cb returns), error says
 * what failed in words ("" when nothing did). Returns 0, or -1 when it could not start (no
 * memory, or the uploader is closing); upstream_close calls cb with CURLE_ABORTED_BY_CALLBACK. */
#define UPSTREAM_FETCH_MAX_BYTES 65536
typedef void (*upstream_fetch_cb)(void *ud, int curl_code, long status, const char *body,
                                  size_t len, const char *error);
int upstream_fetch(struct upstream *u, const char *url, const char *header, upstream_fetch_cb cb,
                   void *ud);

/* After a SnapStart restore (include/snapstart.h): reseeds the retry jitter, shuts every
 * connection made before the snapshot, so that no upload is sent on one, and drops the TLS
 * sessions and names cached with them (a fresh share). Until it is called, an uploader made with
 * AWS_LAMBDA_INITIALIZATION_TYPE=snap-start keeps no connection alive after its transfer, so
 * that none is live in the snapshot. Cheap; harmless when called again. */
void upstream_after_restore(struct upstream *u);

/* Parses the CA bundle now, when the remote is https, into the one store every connection
 * shares, instead of at the first connection, where it would delay the first upload (3-4 ms with
 * the layer's wolfSSL, 25-45 ms with the dev build's OpenSSL 3). Called once the extension is
 * registered (or listening in dev mode), off the cold start's path. Blocks the loop for that
 * long; harmless when called again. */
void upstream_prepare_tls(struct upstream *u);

/* Logs, at error level, an accepted upload that will not be delivered, and why. */
void log_not_delivered(const struct relay_req *r, const char *why);

#endif
