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
    CHECK(queue_has_room(&q, relay_req_cost(a)));
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

int main(void)
{
    test_fifo_and_counts();
    test_byte_bound();
    test_waiters();
    return check_summary("test_queue");
}
