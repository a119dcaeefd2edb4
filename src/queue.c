/* Bounded FIFO of uploads plus in-flight accounting and idle waiters. See include/queue.h. */
#include "queue.h"

#include "buf.h"

#include <assert.h>
#include <stdlib.h>

void relay_req_free(struct relay_req *r)
{
    if (!r)
        return;
    free(r->method);
    free(r->url);
    curl_slist_free_all(r->headers);
    body_free(r->body);
    free(r);
}

size_t relay_req_cost(const struct relay_req *r)
{
    /* The body dominates; a fixed overhead stands for the URL, headers and bookkeeping so that a
     * flood of empty requests is still bounded by bytes too. */
    return r->body_len + QUEUE_ENTRY_OVERHEAD;
}

void queue_init(struct queue *q, size_t max_count, size_t max_bytes)
{
    *q = (struct queue){.max_count = max_count, .max_bytes = max_bytes, .next_id = 1};
}

void queue_dispose(struct queue *q)
{
    struct relay_req *r = q->head;
    while (r) {
        struct relay_req *next = r->next;
        relay_req_free(r);
        r = next;
    }
    q->head = q->tail = NULL;
    q->queued = q->queued_bytes = 0;
    struct queue_waiter *w = q->waiters;
    while (w) {
        struct queue_waiter *next = w->next;
        free(w);
        w = next;
    }
    q->waiters = NULL;
}

void queue_reserve(struct queue *q, size_t count, size_t bytes)
{
    q->reserve_count = count < q->max_count / 2 ? count : q->max_count / 2;
    q->reserve_bytes = bytes < q->max_bytes / 4 ? bytes : q->max_bytes / 4;
}

bool queue_has_room(const struct queue *q, size_t cost, bool reserved)
{
    size_t count = q->queued + q->inflight;
    size_t bytes = q->queued_bytes + q->inflight_bytes;
    size_t max_count = reserved ? q->max_count : q->max_count - q->reserve_count;
    size_t max_bytes = reserved ? q->max_bytes : q->max_bytes - q->reserve_bytes;
    return count < max_count && bytes + cost <= max_bytes;
}

bool queue_admit(struct queue *q, size_t body_len)
{
    if (queue_has_room(q, body_len + QUEUE_ENTRY_OVERHEAD, false))
        return true;
    q->stats.rejected++;
    return false;
}

int queue_push(struct queue *q, struct relay_req *r)
{
    size_t cost = relay_req_cost(r);
    bool archive = r->kind == REQ_ARCHIVE;
    if (!queue_has_room(q, cost, r->reserved)) {
        (*(archive ? &q->stats.archive_rejected : &q->stats.rejected))++;
        return -1;
    }
    r->id = q->next_id++;
    r->next = NULL;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->queued++;
    q->queued_bytes += cost;
    (*(archive ? &q->stats.archive_accepted : &q->stats.accepted))++;
    if (q->on_push)
        q->on_push(q->on_push_ud);
    return 0;
}

void queue_kick(struct queue *q)
{
    if (q->on_push)
        q->on_push(q->on_push_ud);
}

struct relay_req *queue_pop(struct queue *q)
{
    struct relay_req *r = q->head;
    if (!r)
        return NULL;
    q->head = r->next;
    if (!q->head)
        q->tail = NULL;
    r->next = NULL;
    size_t cost = relay_req_cost(r);
    q->queued--;
    q->queued_bytes -= cost;
    q->inflight++;
    q->inflight_bytes += cost;
    return r;
}

void queue_requeue(struct queue *q, struct relay_req *r)
{
    assert(q->inflight > 0);
    size_t cost = relay_req_cost(r);
    q->inflight--;
    q->inflight_bytes -= cost;
    r->next = q->head;
    q->head = r;
    if (!q->tail)
        q->tail = r;
    q->queued++;
    q->queued_bytes += cost;
}

static void notify_idle(struct queue *q)
{
    /* Detach the list first: a waiter may add a new waiter from its callback. */
    struct queue_waiter *w = q->waiters;
    q->waiters = NULL;
    while (w) {
        struct queue_waiter *next = w->next;
        w->cb(w->ud);
        free(w);
        w = next;
    }
}

void queue_done(struct queue *q, struct relay_req *r, bool delivered)
{
    assert(q->inflight > 0);
    q->inflight--;
    q->inflight_bytes -= relay_req_cost(r);
    if (r->kind == REQ_ARCHIVE)
        (*(delivered ? &q->stats.archived : &q->stats.archive_failed))++;
    else
        (*(delivered ? &q->stats.relayed : &q->stats.failed))++;
    relay_req_free(r);
    if (queue_idle(q))
        notify_idle(q);
}

size_t queue_pending(const struct queue *q)
{
    return q->queued + q->inflight;
}

bool queue_idle(const struct queue *q)
{
    return queue_pending(q) == 0;
}

struct queue_waiter *queue_when_idle(struct queue *q, queue_cb cb, void *ud)
{
    if (queue_idle(q)) {
        cb(ud);
        return NULL;
    }
    struct queue_waiter *w = malloc(sizeof(*w));
    if (!w) {
        /* Out of memory: waiting is impossible, so answer now rather than never. */
        cb(ud);
        return NULL;
    }
    *w = (struct queue_waiter){.next = q->waiters, .cb = cb, .ud = ud};
    q->waiters = w;
    return w;
}

void queue_cancel_wait(struct queue *q, struct queue_waiter *w)
{
    for (struct queue_waiter **p = &q->waiters; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            free(w);
            return;
        }
    }
}
