/* The relay queue: a bounded FIFO of uploads waiting for the remote, plus the uploads in flight.
 *
 * Ownership: the listener allocates a relay_req and gives it to queue_push; from then on the
 * queue owns it. The uploader takes it with queue_pop (it is then "in flight", still counted
 * against the bounds) and gives it back with queue_done, which frees it. Both bounds (count and
 * bytes) cover queued and in-flight requests together, because both hold memory.
 *
 * Waiters: the lifecycle asks to be called back once nothing is queued or in flight
 * (queue_when_idle). That is how flush-on-invoke and the shutdown drain await the uploads
 * without blocking the loop. */
#ifndef PLE_QUEUE_H
#define PLE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

/* Whether the credentials of an aws_sign can sign an attempt now. */
enum aws_sign_state {
    SIGN_READY,   /* access_key, secret_key and session_token hold valid credentials */
    SIGN_PENDING, /* being fetched: the uploader holds the request (still in flight) until the
                     provider kicks the queue (queue_kick) */
    SIGN_FAILED,  /* none could be had (the provider logged why): the upload fails, and is never
                     sent unsigned */
};

/* AWS Signature Version 4 for an upload (the per-trace S3 archive): curl signs each attempt with
 * what the fields hold at that moment, so credentials may be replaced (refreshed) between
 * attempts. The strings belong to whoever filled them (include/credentials.h). */
struct aws_sign {
    char sigv4[96];            /* CURLOPT_AWS_SIGV4: "aws:amz:<region>:s3" */
    const char *access_key;    /* CURLOPT_USERNAME */
    const char *secret_key;    /* CURLOPT_PASSWORD */
    const char *session_token; /* sent (and signed) as x-amz-security-token unless "" */
    /* Asked before every signed attempt; NULL means always SIGN_READY (static credentials). */
    enum aws_sign_state (*check)(void *ud);
    void *check_ud;
};

enum req_kind {
    REQ_RELAY,   /* an upload to the Pyroscope remote */
    REQ_ARCHIVE, /* a copy to the per-trace S3 archive */
};

struct relay_req {
    struct relay_req *next; /* intrusive FIFO link */
    uint64_t id;            /* 1, 2, 3, ... in order of acceptance */
    enum req_kind kind;
    const struct aws_sign *sign; /* REQ_ARCHIVE: how to sign it; NULL otherwise */
    char *method;
    char *url;                  /* the remote URL */
    struct curl_slist *headers; /* the upload's headers, final */
    char *body;
    size_t body_len;
    unsigned attempts;      /* uploads started so far */
    uint64_t not_before_ms; /* a retry waits until this uv_now() */
    bool fresh_connection;  /* the last attempt died in transport: do not reuse a connection */
    bool reserved;          /* may use the queue's reserve (the self-profile) */
};

void relay_req_free(struct relay_req *r);
/* What a request costs against queue_max_bytes beyond its body: its URL, headers and
 * bookkeeping, so that a flood of empty requests is bounded by bytes too. */
#define QUEUE_ENTRY_OVERHEAD 512
/* The bytes a request holds, as counted against queue_max_bytes. */
size_t relay_req_cost(const struct relay_req *r);

typedef void (*queue_cb)(void *ud);

struct queue_waiter {
    struct queue_waiter *next;
    queue_cb cb;
    void *ud;
};

/* REQ_RELAY uploads; the archive's copies are counted apart, so that accepted - relayed -
 * failed - pending is always 0 for what clients sent. */
struct queue_stats {
    uint64_t accepted; /* pushed successfully */
    uint64_t relayed;  /* delivered: the remote answered 2xx */
    uint64_t failed;   /* given up on: the remote refused it or could not be reached */
    uint64_t rejected; /* refused at the door because a bound was reached (client got 503) */
    uint64_t archive_accepted, archived, archive_failed, archive_rejected;
};

struct queue {
    struct relay_req *head, *tail;
    size_t queued, queued_bytes;
    size_t inflight, inflight_bytes;
    size_t max_count, max_bytes;
    /* Kept free of client uploads for the self-profile (queue_reserve): it must not be dropped
     * exactly when the relay is busiest. Part of max_count and max_bytes. */
    size_t reserve_count, reserve_bytes;
    uint64_t next_id;
    struct queue_stats stats;
    struct queue_waiter *waiters;
    queue_cb on_push; /* the uploader's kick */
    void *on_push_ud;
};

void queue_init(struct queue *q, size_t max_count, size_t max_bytes);
/* Frees everything still queued (the caller has already reported it). Waiters are dropped. */
void queue_dispose(struct queue *q);
/* Keeps up to count entries and bytes of the bounds for requests marked reserved: at most half
 * of max_count (none when it is 1) and a quarter of max_bytes. */
void queue_reserve(struct queue *q, size_t count, size_t bytes);
/* Would a request of this cost fit now? reserved: it may use the reserve too. */
bool queue_has_room(const struct queue *q, size_t cost, bool reserved);
/* For a client upload whose size is known before it is read: true when it would fit now; when
 * it would not, it is counted as rejected (stats.rejected), as queue_push counts a refusal. */
bool queue_admit(struct queue *q, size_t body_len);
/* Takes ownership of r and returns 0, or returns -1 without taking it when a bound is reached
 * (stats.rejected counts it). Calls on_push. */
int queue_push(struct queue *q, struct relay_req *r);
/* Tells the uploader to look at the queue again (on_push without a push): a provider of
 * credentials calls it once requests it held back can go. */
void queue_kick(struct queue *q);
/* The oldest queued request, now in flight; NULL when none is queued. */
struct relay_req *queue_pop(struct queue *q);
/* Puts an in-flight request back at the head (a retry); it stays counted. */
void queue_requeue(struct queue *q, struct relay_req *r);
/* An in-flight request is finished: counted as relayed or failed, then freed. Calls the idle
 * waiters once nothing is queued or in flight. */
void queue_done(struct queue *q, struct relay_req *r, bool delivered);
size_t queue_pending(const struct queue *q); /* queued + in flight */
bool queue_idle(const struct queue *q);
/* cb runs once, from queue_done (or at once, synchronously, if the queue is idle already);
 * returns a handle to cancel it with queue_cancel_wait, or NULL if it already ran. */
struct queue_waiter *queue_when_idle(struct queue *q, queue_cb cb, void *ud);
void queue_cancel_wait(struct queue *q, struct queue_waiter *w);

#endif
