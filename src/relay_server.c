/* The :4040 listener. Bytes -> llhttp -> one relay_req per message -> queue, and an immediate
 * answer to the client. Nothing here waits for the remote. */
#include "relay_server.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "buf.h"
#include "log.h"
#include "util.h"
#include "uvstream.h"

#define READ_BUF_SIZE (64 * 1024)
#define LISTEN_BACKLOG 511

struct hdr_ref {
    size_t name_off, name_len, value_off, value_len;
};

struct conn {
    uv_tcp_t tcp;
    struct relay_server *s;
    struct conn *next, **prevp;
    llhttp_t parser;
    /* The request being read. */
    bool in_message;
    bool last_was_value;
    struct buf url;
    struct buf hbytes; /* header names and values, back to back */
    struct hdr_ref *hdrs;
    size_t n_hdrs, cap_hdrs;
    struct buf body;
    int reject_status; /* set by a callback that refuses the request: 413, 431 */
    bool queue_full;   /* refused with 503 at its headers: its body is read and dropped */
    bool progress;     /* bytes arrived since the last sweep */
    unsigned stalled;  /* sweeps in a row without a byte while in a request */
    bool closing;      /* answer with Connection: close and shut down after it */
    bool detached;     /* no socket: relay_server_feed's; answers are discarded */
};

struct listener {
    uv_tcp_t tcp;
    bool open;
};

struct relay_server {
    uv_loop_t *loop;
    const struct config *c;
    struct queue *q;
    const struct header_policy *policy;
    const char *session_id;
    const struct upload_hooks *hooks; /* trace sampling; NULL: relay everything */
    llhttp_settings_t settings;
    struct listener l4, l6;
    struct conn *conns;
    struct rate_limit refused, turned_away, timed_out, accept_failed, misconfigured;
    uint64_t refused_config; /* pushes answered 500 because the configuration refuses relaying */
    size_t n_conns;
    uv_timer_t sweep; /* runs only while some request is being read */
    int open_handles;
    bool accepting;
    bool closing;
    void (*done)(void *);
    void *done_ud;
};

/* One shared read buffer: the loop is single-threaded and every read is consumed (copied where
 * it must be kept) before the next one, so connections need no buffer of their own. */
static char read_buf[READ_BUF_SIZE];

static void request_reset(struct conn *c)
{
    c->in_message = false;
    c->last_was_value = false;
    c->url.len = 0;
    c->hbytes.len = 0;
    c->n_hdrs = 0;
    body_free(c->body.p); /* the body moved into the relay_req (NULL here), or is dropped */
    c->body = (struct buf){0};
    c->reject_status = 0;
    c->queue_full = false;
}

/* ---- answering ---- */

static void conn_write(struct conn *c, const char *data, size_t len)
{
    if (!c->detached)
        stream_write_copy((uv_stream_t *)&c->tcp, data, len);
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 413:
        return "Payload Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

static void conn_respond(struct conn *c, int status, const char *body)
{
    char head[256 + sizeof(((struct config *)0)->refusal)];
    size_t body_len = body ? strlen(body) : 0;
    bool http10 = llhttp_get_http_major(&c->parser) == 1 && llhttp_get_http_minor(&c->parser) == 0;
    const char *conn_hdr = c->closing ? "Connection: close\r\n"
                           : http10   ? "Connection: keep-alive\r\n"
                                      : "";
    const char *retry = status == 503 ? "Retry-After: 1\r\n" : "";
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n%s%sContent-Length: %zu\r\n%s\r\n%s",
                     status, reason(status), conn_hdr, retry, body_len,
                     body_len ? "Content-Type: text/plain\r\n" : "", body ? body : "");
    conn_write(c, head, (size_t)n < sizeof(head) ? (size_t)n : sizeof(head) - 1);
}

/* ---- closing ---- */

static void server_handle_closed(struct relay_server *s)
{
    if (--s->open_handles == 0 && s->closing) {
        void (*done)(void *) = s->done;
        void *ud = s->done_ud;
        free(s);
        if (done)
            done(ud);
    }
}

/* What a connection holds for the request it is reading. */
static void conn_free_buffers(struct conn *c)
{
    buf_free(&c->url);
    buf_free(&c->hbytes);
    buf_free(&c->body);
    free(c->hdrs);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = PLE_CONTAINER_OF(h, struct conn, tcp);
    struct relay_server *s = c->s;
    s->n_conns--;
    conn_free_buffers(c);
    free(c);
    server_handle_closed(s);
}

static void conn_close(struct conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    PLE_LIST_REMOVE(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void conn_close_cb(void *c)
{
    conn_close(c);
}

/* Close once the answers already written have left. */
static void conn_finish(struct conn *c)
{
    if (!c->detached)
        stream_finish((uv_stream_t *)&c->tcp, conn_close_cb, c);
}

/* ---- slow clients ---- */

/* A request must make progress: a client that sends nothing for PYROSCOPE_CLIENT_TIMEOUT in the
 * middle of a request is answered 408 and disconnected. Time is counted in sweeps that found no
 * new bytes, not on the clock: when Lambda freezes the sandbox, the client is frozen too, and
 * the clock jumps on thaw; a frozen second is not a stalled one. Idle keep-alive connections are
 * left alone: closing them would make a client's next POST fail. */
static void on_sweep(uv_timer_t *t)
{
    struct relay_server *s = t->data;
    unsigned limit = STREAM_STALL_SWEEPS(s->c->client_timeout_ns / 1000000);
    bool busy = false;
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (!c->in_message || uv_is_closing((uv_handle_t *)&c->tcp))
            continue;
        if (!stream_stalled(&c->progress, &c->stalled, limit)) {
            busy = true;
            continue;
        }
        uint64_t n = rate_limit_hit(&s->timed_out, uv_now(s->loop));
        if (n)
            log_warn("client stalled in the middle of a request: answered 408, nothing relayed",
                     LKI("clients", n) LKI("body_bytes_read", c->body.len));
        c->closing = true;
        c->in_message = false;
        conn_respond(c, 408, "request timeout\n");
        conn_finish(c);
    }
    if (!busy)
        uv_timer_stop(t);
}

/* ---- llhttp callbacks ---- */

static struct conn *conn_of(llhttp_t *p)
{
    return p->data;
}

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = conn_of(p);
    request_reset(c);
    c->in_message = true;
    c->stalled = 0;
    if (!c->detached && !uv_is_active((uv_handle_t *)&c->s->sweep))
        uv_timer_start(&c->s->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (c->url.len + len > c->s->c->max_header_bytes) {
        c->reject_status = 431;
        return -1;
    }
    return buf_append(&c->url, at, len, SIZE_MAX);
}

static int header_bytes_ok(struct conn *c, size_t more)
{
    if (c->hbytes.len + c->url.len + more > c->s->c->max_header_bytes) {
        c->reject_status = 431;
        return 0;
    }
    return 1;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (!header_bytes_ok(c, len))
        return -1;
    if (c->n_hdrs == 0 || c->last_was_value) {
        if (c->n_hdrs == c->cap_hdrs) {
            size_t cap = c->cap_hdrs ? c->cap_hdrs * 2 : 16;
            struct hdr_ref *h = realloc(c->hdrs, cap * sizeof(*h));
            if (!h)
                return -1;
            c->hdrs = h;
            c->cap_hdrs = cap;
        }
        c->hdrs[c->n_hdrs++] = (struct hdr_ref){.name_off = c->hbytes.len};
        c->last_was_value = false;
    }
    c->hdrs[c->n_hdrs - 1].name_len += len;
    return buf_append(&c->hbytes, at, len, SIZE_MAX);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (!header_bytes_ok(c, len))
        return -1;
    struct hdr_ref *h = &c->hdrs[c->n_hdrs - 1];
    if (!c->last_was_value) {
        h->value_off = c->hbytes.len;
        c->last_was_value = true;
    }
    h->value_len += len;
    return buf_append(&c->hbytes, at, len, SIZE_MAX);
}

static bool header_is(const struct conn *c, const struct hdr_ref *h, const char *name)
{
    return h->name_len == strlen(name) &&
           strncasecmp(c->hbytes.p + h->name_off, name, h->name_len) == 0;
}

static bool wants_continue(const struct conn *c)
{
    for (size_t i = 0; i < c->n_hdrs; i++) {
        const struct hdr_ref *h = &c->hdrs[i];
        if (header_is(c, h, "Expect") && h->value_len == 12 &&
            strncasecmp(c->hbytes.p + h->value_off, "100-continue", 12) == 0)
            return true;
    }
    return false;
}

/* A configuration that refuses relaying (config.h: refusal) refuses every request, its body
 * read and dropped. */
static bool refusing(const struct conn *c)
{
    return c->s->c->refusal_variable != NULL;
}

static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = conn_of(p);
    size_t max = c->s->c->max_body_bytes;
    bool has_length = p->flags & F_CONTENT_LENGTH;
    if (has_length && p->content_length > max) {
        /* Refuse before reading a byte of the body. */
        c->reject_status = 413;
        return -1;
    }
    /* A configuration that refuses relaying (config.h: refusal) answers every push 500 with its
     * text. A full queue is told at once too. Either way the body is then read without being
     * kept, and without building an upload that cannot be queued (under a flood, most requests
     * take this path). Not with trace sampling, which may answer 200 without queueing
     * anything. */
    if (refusing(c)) {
        /* answered 500 once the request has been read */
    } else if (!c->s->hooks && !queue_admit(c->s->q, has_length ? p->content_length : 0)) {
        c->queue_full = true;
    } else if (has_length && p->content_length > 0) {
        c->body.p = body_alloc(p->content_length + 1);
        if (!c->body.p)
            return -1;
        c->body.cap = p->content_length + 1;
    }
    if (llhttp_get_http_minor(p) >= 1 && wants_continue(c))
        conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (c->queue_full || refusing(c)) {
        c->body.len += len; /* counted for the log, not kept */
        return 0;
    }
    if (c->body.len + len > c->s->c->max_body_bytes) {
        c->reject_status = 413; /* a chunked body that grew past the limit */
        return -1;
    }
    return buf_append(&c->body, at, len, SIZE_MAX);
}

/* A burst against a full queue must not become a burst of log lines: the first refusal is
 * logged at once, then at most one line a second says how many there were since. */
static void log_refusal(struct relay_server *s, size_t bytes)
{
    uint64_t n = rate_limit_hit(&s->refused, s->loop ? uv_now(s->loop) : 0);
    if (n)
        log_warn("relay queue full: uploads refused with 503",
                 LKI("refused", n) LKI("bytes", bytes) LKI("pending", queue_pending(s->q))
                     LKI("rejected_total", s->q->stats.rejected));
}

/* 500, not 503: a retry cannot succeed until the function's environment is changed (which starts
 * a new sandbox), and not a 4xx: the client's request is fine. Clients log the status and the
 * body, which names the variable and the fix. Logged at most once a second. */
static void log_misconfigured(struct relay_server *s)
{
    s->refused_config++;
    uint64_t n = rate_limit_hit(&s->misconfigured, s->loop ? uv_now(s->loop) : 0);
    if (n)
        log_error("upload refused with 500: the configuration is invalid, nothing is relayed",
                  LKS("variable", s->c->refusal_variable) LKI("refused", n)
                      LKI("refused_total", s->refused_config));
}

/* Builds the upload from the request just read; NULL on allocation failure. */
static struct relay_req *build_upload(struct conn *c)
{
    struct relay_server *s = c->s;
    struct relay_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    const char *target = c->url.p ? c->url.p : "/";
    size_t target_len = c->url.p ? c->url.len : 1;
    const char *q = memchr(target, '?', target_len);
    char *rewritten = NULL;
    if (q) {
        char *new_query =
            query_add_session_id(q + 1, target_len - (size_t)(q + 1 - target), s->session_id);
        if (new_query && asprintf(&rewritten, "%.*s?%s", (int)(q - target), target, new_query) < 0)
            rewritten = NULL;
        free(new_query);
    }
    r->url = rewritten ? url_join(s->c->remote_address, rewritten, strlen(rewritten))
                       : url_join(s->c->remote_address, target, target_len);
    free(rewritten);

    struct req_header stack_hdrs[32];
    struct req_header *hdrs =
        c->n_hdrs <= PLE_ARRAY_LEN(stack_hdrs) ? stack_hdrs : malloc(c->n_hdrs * sizeof(*hdrs));
    if (hdrs) {
        for (size_t i = 0; i < c->n_hdrs; i++) {
            const struct hdr_ref *h = &c->hdrs[i];
            size_t vlen = h->value_len;
            const char *v = c->hbytes.p + h->value_off;
            while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                vlen--;
            hdrs[i] = (struct req_header){c->hbytes.p + h->name_off, h->name_len, v, vlen};
        }
        r->headers = header_policy_build(s->policy, hdrs, c->n_hdrs);
        if (hdrs != stack_hdrs)
            free(hdrs);
    }
    r->method = strdup(llhttp_method_name(llhttp_get_method(&c->parser)));
    r->body = c->body.p;
    r->body_len = c->body.len;
    c->body = (struct buf){0};
    if (!r->url || !r->headers || !r->method) {
        relay_req_free(r);
        return NULL;
    }
    return r;
}

/* What the hooks see of the request just read; the body is c->body until build_upload. */
static struct upload_view view_of(struct conn *c)
{
    struct upload_view v = {.method = llhttp_method_name(llhttp_get_method(&c->parser)),
                            .target = c->url.p ? c->url.p : "/",
                            .target_len = c->url.p ? c->url.len : 1,
                            .body = c->body.p,
                            .body_len = c->body.len};
    for (size_t i = 0; i < c->n_hdrs; i++) {
        const struct hdr_ref *h = &c->hdrs[i];
        if (header_is(c, h, "Content-Type")) {
            v.content_type = c->hbytes.p + h->value_off;
            v.content_type_len = h->value_len;
        }
    }
    return v;
}

/* Queues the upload; returns the status for the client. When v is given (hooks), its body is
 * pointed at the queued copy: the queue frees a request only in queue_done, never from inside
 * queue_push, so it stays readable for the rest of this callback. */
static int relay_upload(struct conn *c, struct upload_view *v)
{
    struct relay_server *s = c->s;
    struct relay_req *r = build_upload(c);
    if (!r) {
        log_error("out of memory building an upload; request dropped", );
        return 500;
    }
    size_t bytes = r->body_len;
    log_trace("request received", LKS("method", r->method) LKI("bytes", bytes));
    if (v)
        v->body = r->body;
    if (queue_push(s->q, r) == 0)
        return 200;
    log_refusal(s, bytes);
    relay_req_free(r);
    return 503;
}

/* With trace sampling: the hooks decide whether to relay, and see what was answered 200. */
static int hooked_upload(struct conn *c, const struct upload_hooks *hooks)
{
    struct upload_view v = view_of(c);
    int status = hooks->relay(hooks->ud, &v) ? relay_upload(c, &v) : 200;
    if (status == 200)
        hooks->accepted(hooks->ud, &v);
    return status;
}

static int on_message_complete(llhttp_t *p)
{
    struct conn *c = conn_of(p);
    struct relay_server *s = c->s;
    if (!llhttp_should_keep_alive(p) || !s->accepting)
        c->closing = true;
    int status;
    if (refusing(c)) {
        log_misconfigured(s);
        c->body.len = 0;
        status = 500;
    } else if (c->queue_full) { /* refused at its headers, already counted */
        log_refusal(s, c->body.len);
        c->body.len = 0;
        status = 503;
    } else {
        status = s->hooks ? hooked_upload(c, s->hooks) : relay_upload(c, NULL);
    }
    conn_respond(c, status,
                 refusing(c)     ? s->c->refusal
                 : status == 503 ? "relay queue full, retry later\n"
                 : status == 500 ? "out of memory\n"
                                 : NULL);
    request_reset(c);
    if (c->closing) {
        conn_finish(c);
        return HPE_PAUSED; /* stop parsing: what follows on this connection is not read */
    }
    return 0;
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    *b = uv_buf_init(read_buf, sizeof(read_buf));
}

static void fail_request(struct conn *c, llhttp_errno_t err)
{
    c->closing = true;
    if (c->reject_status == 413) {
        log_warn("upload refused: body over PYROSCOPE_MAX_BODY_BYTES",
                 LKI("limit", c->s->c->max_body_bytes));
        conn_respond(c, 413, "body too large\n");
    } else if (c->reject_status == 431) {
        log_warn("request refused: headers over PYROSCOPE_MAX_HEADER_BYTES",
                 LKI("limit", c->s->c->max_header_bytes));
        conn_respond(c, 431, "headers too large\n");
    } else {
        const char *why = llhttp_get_error_reason(&c->parser);
        log_warn("malformed request: answered 400",
                 LKS("error", llhttp_errno_name(err)) LKS("reason", why ? why : ""));
        conn_respond(c, 400, "malformed request\n");
    }
    conn_finish(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = PLE_CONTAINER_OF((uv_tcp_t *)stream, struct conn, tcp);
    if (nread < 0) {
        if (nread != UV_EOF && nread != UV_ECONNRESET)
            log_debug("client read error", LKS("error", uv_strerror((int)nread)));
        else if (c->in_message)
            log_warn("client closed the connection in the middle of a request; nothing relayed",
                     LKI("body_bytes_read", c->body.len));
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    c->progress = true;
    llhttp_errno_t err = llhttp_execute(&c->parser, b->base, (size_t)nread);
    if (err == HPE_OK || err == HPE_PAUSED)
        return; /* HPE_PAUSED: on_message_complete already began closing */
    fail_request(c, err);
}

/* ---- accepting ---- */

static void on_connection(uv_stream_t *ls, int status)
{
    struct relay_server *s = ls->data;
    if (status < 0) {
        /* EMFILE and friends: libuv has already accepted and dropped the pending connection
         * with its reserve descriptor, so there is nothing to spin on; just do not flood. */
        uint64_t n = rate_limit_hit(&s->accept_failed, uv_now(s->loop));
        if (n)
            log_warn("accept failed", LKS("error", uv_strerror(status)) LKI("failures", n));
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->s = s;
    uv_tcp_init(s->loop, &c->tcp);
    s->open_handles++;
    s->n_conns++;
    PLE_LIST_PUSH(&s->conns, c);
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (s->n_conns > s->c->max_connections) {
        /* Accepted and closed at once: leaving it in the backlog would wake us forever. */
        uint64_t n = rate_limit_hit(&s->turned_away, uv_now(s->loop));
        if (n)
            log_warn("too many client connections: new ones closed",
                     LKI("closed", n) LKI("limit", s->c->max_connections));
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static int listen_on(struct relay_server *s, struct listener *l, const struct sockaddr *addr,
                     unsigned flags)
{
    uv_tcp_init(s->loop, &l->tcp);
    l->tcp.data = s;
    l->open = true;
    s->open_handles++;
    int rc = uv_tcp_bind(&l->tcp, addr, flags);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, LISTEN_BACKLOG, on_connection);
    return rc;
}

static void on_owned_handle_closed(uv_handle_t *h)
{
    server_handle_closed(h->data);
}

static void listener_close(struct listener *l)
{
    if (l->open) {
        l->open = false;
        uv_close((uv_handle_t *)&l->tcp, on_owned_handle_closed);
    }
}

static void settings_init(llhttp_settings_t *st)
{
    llhttp_settings_init(st);
    st->on_message_begin = on_message_begin;
    st->on_url = on_url;
    st->on_header_field = on_header_field;
    st->on_header_value = on_header_value;
    st->on_headers_complete = on_headers_complete;
    st->on_body = on_body;
    st->on_message_complete = on_message_complete;
}

size_t relay_server_feed(const struct config *c, struct queue *q,
                         const struct header_policy *policy, const char *session_id,
                         const char *data, size_t len)
{
    struct relay_server s = {
        .c = c, .q = q, .policy = policy, .session_id = session_id, .accepting = true};
    settings_init(&s.settings);
    struct conn conn = {.s = &s, .detached = true};
    llhttp_init(&conn.parser, HTTP_REQUEST, &s.settings);
    conn.parser.data = &conn;
    uint64_t before = q->stats.accepted;
    llhttp_errno_t err = llhttp_execute(&conn.parser, data, len);
    if (err != HPE_OK && err != HPE_PAUSED)
        fail_request(&conn, err);
    conn_free_buffers(&conn);
    return (size_t)(q->stats.accepted - before);
}

struct relay_server *relay_server_start(uv_loop_t *loop, const struct config *c, struct queue *q,
                                        const struct header_policy *policy, const char *session_id,
                                        int *err)
{
    struct relay_server *s = calloc(1, sizeof(*s));
    if (!s) {
        *err = UV_ENOMEM;
        return NULL;
    }
    *s = (struct relay_server){.loop = loop,
                               .c = c,
                               .q = q,
                               .policy = policy,
                               .session_id = session_id,
                               .accepting = true};
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    s->open_handles++;
    settings_init(&s->settings);

    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    uv_ip4_addr("127.0.0.1", c->relay_port, &a4);
    uv_ip6_addr("::1", c->relay_port, &a6);
    int rc = listen_on(s, &s->l4, (const struct sockaddr *)&a4, 0);
    if (rc != 0) {
        *err = rc;
        relay_server_close(s, NULL, NULL);
        return NULL;
    }
    char where[64];
    snprintf(where, sizeof(where), "127.0.0.1:%u", (unsigned)c->relay_port);
    log_info("relay listening", LKS("address", where));
    /* ::1 is optional: some sandboxes have no IPv6 loopback at all. */
    rc = listen_on(s, &s->l6, (const struct sockaddr *)&a6, UV_TCP_IPV6ONLY);
    if (rc == 0) {
        snprintf(where, sizeof(where), "[::1]:%u", (unsigned)c->relay_port);
        log_info("relay listening", LKS("address", where));
    } else {
        log_info("relay not listening on [::1]", LKS("error", uv_strerror(rc)));
        listener_close(&s->l6);
    }
    return s;
}

uint64_t relay_server_refused_config(const struct relay_server *s)
{
    return s ? s->refused_config : 0;
}

void relay_server_set_hooks(struct relay_server *s, const struct upload_hooks *hooks)
{
    s->hooks = hooks;
}

void relay_server_stop_accepting(struct relay_server *s)
{
    s->accepting = false;
    listener_close(&s->l4);
    listener_close(&s->l6);
    struct conn *c = s->conns;
    while (c) {
        struct conn *next = c->next;
        if (c->in_message)
            c->closing = true; /* finish reading this request, answer it, then close */
        else
            conn_close(c);
        c = next;
    }
}

void relay_server_close(struct relay_server *s, void (*done)(void *ud), void *ud)
{
    s->closing = true;
    s->done = done;
    s->done_ud = ud;
    s->open_handles++; /* hold the server while closing everything below */
    relay_server_stop_accepting(s);
    while (s->conns)
        conn_close(s->conns);
    uv_timer_stop(&s->sweep);
    uv_close((uv_handle_t *)&s->sweep, on_owned_handle_closed);
    server_handle_closed(s);
}
