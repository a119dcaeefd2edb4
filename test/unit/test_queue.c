/* The queue's bounds, FIFO order, in-flight accounting and idle waiters. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "queue.h"

static struct relay_req *req(size_t body_len)
{
    struct relay_req *r = calloc(1, sizeof(*r));
    r->method = strdup("POST");
    r->url = strdup("http://127.0.0.1/ingest");
    r->body = body_len ? calloc(1, body_len) : NULL;
    r->body_len = body_len;
    return r;
}

static int idle_calls;
static void on_idle(void *ud)
{
    (void)ud;
    idle_calls++;
}

static int pushes;
static void on_push(void *ud)
{
    (void)ud;
    pushes++;
}

static void test_fifo_and_counts(void)
{
    struct queue q;
    queue_init(&q, 3, 1 << 20);
    q.on_push = on_push;
    struct relay_req *a = req(10), *b = req(20), *c = req(30), *d = req(1);
    CHECK(queue_push(&q, a) == 0);
    CHECK(queue_push(&q, b) == 0);
    CHECK(queue_push(&q, c) == 0);
    CHECK(pushes == 3);
    CHECK(a->id == 1 && b->id == 2 && c->id == 3);
    CHECK(queue_push(&q, d) == -1); /* count bound */
    CHECK(q.stats.rejected == 1);
    relay_req_free(d);
    CHECK(queue_pop(&q) == a);
    /* in flight still counts against the bound */
    struct relay_req *e = req(1);
    CHECK(queue_push(&q, e) == -1);
    relay_req_free(e);
    queue_requeue(&q, a);
    CHECK(queue_pop(&q) == a); /* a retry goes back to the head */
    CHECK(queue_pop(&q) == b);
    CHECK(queue_pending(&q) == 3);
    queue_done(&q, a, true);
    queue_done(&q, b, false);
    CHECK(q.stats.relayed == 1 && q.stats.failed == 1 && q.stats.accepted == 3);
    CHECK(queue_pop(&q) == c);
    CHECK(queue_pop(&q) == NULL);
    queue_done(&q, c, true);
    CHECK(queue_idle(&q));
    CHECK(q.queued_bytes == 0 && q.inflight_bytes == 0);
    queue_dispose(&q);
}

static void test_byte_bound(void)
{
    struct queue q;
    queue_init(&q, 100, 4096);
    struct relay_req *a = req(3000), *b = req(3000);
    CHECK(queue_has_room(&q, relay_req_cost(a), false));
    CHECK(queue_push(&q, a) == 0);
    CHECK(queue_push(&q, b) == -1); /* 3512 + 3512 > 4096 */
    relay_req_free(b);
    queue_dispose(&q); /* frees a */
}

static void test_waiters(void)
{
    struct queue q;
    queue_init(&q, 10, 1 << 20);
    idle_calls = 0;
    CHECK(queue_when_idle(&q, on_idle, NULL) == NULL); /* idle: runs at once */
    CHECK(idle_calls == 1);
    struct relay_req *a = req(1), *b = req(1);
    queue_push(&q, a);
    queue_push(&q, b);
    struct queue_waiter *w1 = queue_when_idle(&q, on_idle, NULL);
    struct queue_waiter *w2 = queue_when_idle(&q, on_idle, NULL);
    CHECK(w1 && w2);
    queue_cancel_wait(&q, w2);
    queue_pop(&q);
    queue_done(&q, a, true);
    CHECK(idle_calls == 1); /* b is still queued */
    queue_pop(&q);
    queue_done(&q, b, true);
    CHECK(idle_calls == 2); /* w1 ran, w2 was cancelled */
    CHECK(q.waiters == NULL);
    queue_dispose(&q);
}

/* The reserve: client uploads stop short of it, a reserved request (the self-profile) may use
 * it; it never takes more than half the count or a quarter of the bytes. */
static void test_reserve(void)
{
    struct queue q;
    queue_init(&q, 4, 1 << 20);
    queue_reserve(&q, 2, 4096);
    CHECK(q.reserve_count == 2 && q.reserve_bytes == 4096);
    struct relay_req *c1 = req(10), *c2 = req(10), *c3 = req(10);
    CHECK(queue_push(&q, c1) == 0 && queue_push(&q, c2) == 0);
    CHECK(queue_push(&q, c3) == -1 && q.stats.rejected == 1); /* the clients' share is full */
    CHECK(!queue_admit(&q, 0) && q.stats.rejected == 2);
    struct relay_req *s1 = req(100), *s2 = req(100), *s3 = req(100);
    s1->reserved = s2->reserved = s3->reserved = true;
    CHECK(queue_push(&q, s1) == 0 && queue_push(&q, s2) == 0);
    CHECK(queue_push(&q, s3) == -1); /* the whole queue is full */
    CHECK(q.stats.accepted == 4);
    relay_req_free(c3);
    relay_req_free(s3);
    queue_dispose(&q);
    /* Bytes: a client upload may not eat into the reserved bytes. */
    queue_init(&q, 100, 8192);
    queue_reserve(&q, 1, 1 << 20); /* capped at a quarter: 2048 */
    CHECK(q.reserve_bytes == 2048);
    CHECK(!queue_has_room(&q, 8192 - 2047, false) && queue_has_room(&q, 8192 - 2048, false));
    CHECK(queue_has_room(&q, 8192, true));
    queue_dispose(&q);
    /* A queue of one keeps no reserve: the clients would get nothing. */
    queue_init(&q, 1, 1 << 20);
    queue_reserve(&q, 2, 4096);
    CHECK(q.reserve_count == 0 && queue_has_room(&q, 10, false));
    queue_dispose(&q);
}

int main(void)
{
    test_fifo_and_counts();
    test_byte_bound();
    test_reserve();
    test_waiters();
    return check_summary("test_queue");
}
