/* The listener on 127.0.0.1 and [::1] at PYROSCOPE_RELAY_PORT: uv_tcp_t connections parsed by
 * llhttp. Each complete request becomes a relay_req (remote URL, final headers, body) that is
 * pushed on the queue, and the client is answered at once: 200 when queued, 503 with Retry-After
 * when the queue is full, 413 when the body is over the limit, 400 when the request is
 * malformed, 500 with the configuration's refusal text when the configuration refuses relaying
 * (then nothing is ever queued).
 *
 * Descriptors and handles: each listener and each client connection is a uv_tcp_t that owns its
 * socket; the socket is closed only by uv_close, and the connection's memory is freed only in
 * its close callback (a pending uv_shutdown_t holds the connection until then). Nothing else
 * keeps a connection's fd number or pointer: a relay_req is a copy of the request, so a client
 * may go away while its upload is still queued. */
#ifndef PLE_RELAY_SERVER_H
#define PLE_RELAY_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "queue.h"
#include "rewrite.h"

struct relay_server;

/* A request as it was received, for the hooks. Not NUL-terminated, except method. */
struct upload_view {
    const char *method;
    const char *target; /* "/path?query" */
    size_t target_len;
    const char *content_type; /* NULL when the client sent none */
    size_t content_type_len;
    const char *body;
    size_t body_len;
};

/* Trace sampling's say in what is relayed (include/tracesample.h). */
struct upload_hooks {
    /* Whether to relay this request; false: it is answered 200 and not relayed. */
    bool (*relay)(void *ud, const struct upload_view *u);
    /* The request was answered 200 (relayed or not); u is valid only during the call. */
    void (*accepted)(void *ud, const struct upload_view *u);
    void *ud;
};

/* Binds and listens. On failure returns NULL and sets *err to the negative uv error of the IPv4
 * listener (the IPv6 one is optional: a host without ::1 is not an error). */
struct relay_server *relay_server_start(uv_loop_t *loop, const struct config *c, struct queue *q,
                                        const struct header_policy *policy, const char *session_id,
                                        int *err);
/* Pushes answered 500 because the configuration refuses relaying (config.h: refusal); 0 for
 * NULL. */
uint64_t relay_server_refused_config(const struct relay_server *s);
/* Installs hooks (NULL: none); they must outlive the server. */
void relay_server_set_hooks(struct relay_server *s, const struct upload_hooks *hooks);
/* Stops accepting: listeners close, idle connections close, busy ones close after the request
 * they are reading. */
void relay_server_stop_accepting(struct relay_server *s);
/* For the fuzzer: runs bytes through one connection's parser and upload builder, with no socket
 * and no loop, and returns how many uploads were queued. Answers are discarded. */
size_t relay_server_feed(const struct config *c, struct queue *q,
                         const struct header_policy *policy, const char *session_id,
                         const char *data, size_t len);
/* Closes everything; done runs once every handle is closed and the server is freed. */
void relay_server_close(struct relay_server *s, void (*done)(void *ud), void *ud);

#endif
