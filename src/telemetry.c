/* The Telemetry API listener and subscription. See include/telemetry.h. */
#include "telemetry.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <llhttp.h>

#include "buf.h"
#include "log.h"
#include "util.h"
#include "uvstream.h"

#define SANDBOX_HOST "sandbox.localdomain"
#define HOSTS_FILE "/etc/hosts"
#define HOSTS_FILE_MAX (256 * 1024)
#define MAX_LISTENERS 4 /* 127.0.0.1 and what sandbox.localdomain names */

/* ---- pure parts ---- */

static bool kind_of(const char *type, enum telemetry_kind *kind)
{
    static const struct {
        const char *type;
        enum telemetry_kind kind;
    } kinds[] = {{"platform.start", TELEMETRY_START},
                 {"platform.runtimeDone", TELEMETRY_RUNTIME_DONE},
                 {"platform.report", TELEMETRY_REPORT},
                 {"platform.restoreStart", TELEMETRY_RESTORE_START}};
    for (size_t i = 0; i < PLE_ARRAY_LEN(kinds); i++) {
        if (strcmp(type, kinds[i].type) == 0) {
            *kind = kinds[i].kind;
            return true;
        }
    }
    return false;
}

int telemetry_parse(const char *body, size_t len, telemetry_event_cb cb, void *ud, const char **why)
{
    json_error_t jerr;
    json_t *batch = json_loadb(body, len, 0, &jerr);
    if (!json_is_array(batch)) {
        *why = batch ? "not a JSON array of telemetry records" : "not JSON";
        json_decref(batch);
        return -1;
    }
    size_t i;
    json_t *rec;
    json_array_foreach(batch, i, rec)
    {
        const char *type = json_string_value(json_object_get(rec, "type"));
        if (!type) {
            *why = "a record without a string \"type\"";
            json_decref(batch);
            return -1;
        }
    }
    json_array_foreach(batch, i, rec)
    {
        enum telemetry_kind kind;
        if (!kind_of(json_string_value(json_object_get(rec, "type")), &kind))
            continue;
        json_t *r = json_object_get(rec, "record");
        json_t *dur = json_object_get(json_object_get(r, "metrics"), "durationMs");
        const char *id = json_string_value(json_object_get(r, "requestId"));
        const char *status = json_string_value(json_object_get(r, "status"));
        struct telemetry_event ev = {.kind = kind,
                                     .request_id = id ? id : "",
                                     .status = status ? status : "",
                                     .duration_ms =
                                         json_is_number(dur) ? json_number_value(dur) : -1};
        cb(ud, &ev);
    }
    int n = (int)json_array_size(batch);
    json_decref(batch);
    return n;
}

char *telemetry_subscription_body(unsigned port)
{
    char uri[64];
    snprintf(uri, sizeof(uri), "http://" SANDBOX_HOST ":%u/", port);
    json_t *o = json_pack("{s:s, s:[s], s:{s:i, s:i, s:i}, s:{s:s, s:s}}", "schemaVersion",
                          TELEMETRY_SCHEMA, "types", "platform", "buffering", "maxItems", 1000,
                          "maxBytes", 262144, "timeoutMs", TELEMETRY_BUFFER_TIMEOUT_MS,
                          "destination", "protocol", "HTTP", "URI", uri);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

/* One hosts(5) line: an address, then names; '#' starts a comment. True when one of the names
 * is name and the address parses; addr then holds it. */
static bool line_names(const char *line, size_t len, const char *name, char *addr, size_t cap)
{
    const char *end = memchr(line, '#', len);
    if (!end)
        end = line + len;
    const char *first = NULL;
    size_t first_len = 0;
    bool found = false;
    for (const char *p = line; p < end;) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        const char *s = p;
        while (p < end && !isspace((unsigned char)*p))
            p++;
        size_t n = (size_t)(p - s);
        if (n == 0)
            break;
        if (!first) {
            first = s;
            first_len = n;
        } else if (n == strlen(name) && strncasecmp(s, name, n) == 0) {
            found = true;
        }
    }
    if (!found || first_len >= cap)
        return false;
    memcpy(addr, first, first_len);
    addr[first_len] = '\0';
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    return uv_ip4_addr(addr, 0, &a4) == 0 || uv_ip6_addr(addr, 0, &a6) == 0;
}

size_t telemetry_hosts_lookup(const char *text, const char *name, char (*out)[48], size_t max)
{
    size_t n = 0;
    for (const char *line = text; line && *line && n < max;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char addr[48];
        if (line_names(line, len, name, addr, sizeof(addr))) {
            bool dup = false;
            for (size_t i = 0; i < n; i++)
                dup |= strcmp(out[i], addr) == 0;
            if (!dup)
                snprintf(out[n++], sizeof(out[0]), "%s", addr);
        }
        line = nl ? nl + 1 : NULL;
    }
    return n;
}

/* ---- the listener ---- */

struct tconn {
    uv_tcp_t tcp;
    struct telemetry *t;
    struct tconn *next, **prevp;
    llhttp_t parser;
    struct buf url, body;
    size_t head_bytes;
    int reject;       /* 404, 405, 413, 431: answered at the end of the headers, then closed */
    bool in_message;  /* between the first byte of a request and its end */
    bool progress;    /* bytes arrived since the last sweep */
    unsigned stalled; /* sweeps in a row without a byte while in a request */
};

struct tlistener {
    uv_tcp_t tcp;
    struct telemetry *t;
    bool open;
};

struct telemetry {
    uv_loop_t *loop;
    telemetry_event_cb cb;
    void *ud;
    unsigned port;
    struct tlistener listeners[MAX_LISTENERS];
    size_t n_listeners;
    struct tconn *conns;
    size_t n_conns;
    uv_timer_t sweep;      /* runs only while some request is being read */
    unsigned stall_sweeps; /* PYROSCOPE_CLIENT_TIMEOUT in sweeps */
    llhttp_settings_t settings;
    int open_handles;
    bool closing;
    struct rate_limit rejected; /* refusals are logged at most once a second */
    void (*sub_done)(void *ud, bool ok);
    void *sub_ud;
};

static char read_buf[16 * 1024];

static void handle_closed(struct telemetry *t)
{
    if (--t->open_handles == 0 && t->closing)
        free(t);
}

static void on_tconn_closed(uv_handle_t *h)
{
    struct tconn *c = PLE_CONTAINER_OF(h, struct tconn, tcp);
    struct telemetry *t = c->t;
    buf_free(&c->url);
    buf_free(&c->body);
    free(c);
    t->n_conns--;
    handle_closed(t);
}

static void tconn_close(struct tconn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    PLE_LIST_REMOVE(c);
    uv_close((uv_handle_t *)&c->tcp, on_tconn_closed);
}

static void tconn_close_cb(void *c)
{
    tconn_close(c);
}

static void tconn_respond(struct tconn *c, int status, const char *reason, const char *text,
                          bool close)
{
    char msg[512];
    int n =
        snprintf(msg, sizeof(msg),
                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s",
                 status, reason, strlen(text), close ? "Connection: close\r\n" : "", text);
    stream_write_copy((uv_stream_t *)&c->tcp, msg,
                      (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    if (close)
        stream_finish((uv_stream_t *)&c->tcp, tconn_close_cb, c);
}

/* Whoever sends what is not Lambda's telemetry is told why, and the log says so, at most once a
 * second: the port is reachable by any process in the sandbox. */
static void reject(struct tconn *c, int status, const char *reason, const char *why)
{
    struct telemetry *t = c->t;
    uint64_t n = rate_limit_hit(&t->rejected, uv_now(t->loop));
    if (n)
        log_warn("telemetry listener refused a request",
                 LKI("status", status) LKS("error", why) LKI("refused", n));
    char text[256];
    snprintf(text, sizeof(text), "%s\n", why);
    tconn_respond(c, status, reason, text, true);
}

/* A request that stops in the middle holds one of the few connections: like the relay's clients,
 * it is answered 408 and closed after PYROSCOPE_CLIENT_TIMEOUT without a byte, counted in sweeps
 * of running time (a frozen sandbox does not count). */
static void on_sweep(uv_timer_t *timer)
{
    struct telemetry *t = timer->data;
    bool busy = false;
    for (struct tconn *c = t->conns, *next; c; c = next) {
        next = c->next;
        if (!c->in_message || uv_is_closing((uv_handle_t *)&c->tcp))
            continue;
        if (!stream_stalled(&c->progress, &c->stalled, t->stall_sweeps)) {
            busy = true;
            continue;
        }
        c->in_message = false;
        reject(c, 408, "Request Timeout", "stalled in the middle of a request");
    }
    if (!busy)
        uv_timer_stop(timer);
}

static int on_message_begin(llhttp_t *p)
{
    struct tconn *c = p->data;
    c->in_message = true;
    c->stalled = 0;
    if (!uv_is_active((uv_handle_t *)&c->t->sweep))
        uv_timer_start(&c->t->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    c->url.len = 0;
    c->body.len = 0;
    c->head_bytes = 0;
    c->reject = 0;
    return 0;
}

/* Header names and values are only counted: the request line and headers together stay under
 * TELEMETRY_MAX_HEAD, or the request is refused 431. */
static int on_header_bytes(llhttp_t *p, const char *at, size_t len)
{
    (void)at;
    struct tconn *c = p->data;
    c->head_bytes += len;
    if (c->head_bytes > TELEMETRY_MAX_HEAD) {
        c->reject = 431;
        return -1;
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    if (on_header_bytes(p, at, len) != 0)
        return -1;
    struct tconn *c = p->data;
    return buf_append(&c->url, at, len, TELEMETRY_MAX_HEAD);
}

static int on_headers_complete(llhttp_t *p)
{
    struct tconn *c = p->data;
    size_t path_len = c->url.len;
    const char *q = c->url.p ? memchr(c->url.p, '?', c->url.len) : NULL;
    if (q)
        path_len = (size_t)(q - c->url.p);
    if (llhttp_get_method(p) != HTTP_POST)
        c->reject = 405;
    else if (path_len != 1 || c->url.p[0] != '/')
        c->reject = 404;
    else if ((p->flags & F_CONTENT_LENGTH) && p->content_length > TELEMETRY_MAX_BODY)
        c->reject = 413;
    return c->reject ? -1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct tconn *c = p->data;
    if (c->body.len + len > TELEMETRY_MAX_BODY) {
        c->reject = 413;
        return -1;
    }
    return buf_append(&c->body, at, len, TELEMETRY_MAX_BODY);
}

static int on_message_complete(llhttp_t *p)
{
    struct tconn *c = p->data;
    struct telemetry *t = c->t;
    c->in_message = false;
    const char *why = NULL;
    if (telemetry_parse(c->body.p ? c->body.p : "", c->body.len, t->cb, t->ud, &why) < 0) {
        reject(c, 400, "Bad Request", why);
        return HPE_PAUSED;
    }
    buf_free(&c->body); /* an idle connection holds no batch */
    tconn_respond(c, 200, "OK", "", !llhttp_should_keep_alive(p));
    return llhttp_should_keep_alive(p) ? 0 : HPE_PAUSED;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    *b = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct tconn *c = PLE_CONTAINER_OF((uv_tcp_t *)s, struct tconn, tcp);
    if (nread < 0) {
        tconn_close(c);
        return;
    }
    if (nread == 0)
        return;
    c->progress = true;
    llhttp_errno_t err = llhttp_execute(&c->parser, b->base, (size_t)nread);
    if (err == HPE_OK || err == HPE_PAUSED)
        return;
    switch (c->reject) {
    case 404:
        reject(c, 404, "Not Found", "only POST / takes telemetry here");
        break;
    case 405:
        reject(c, 405, "Method Not Allowed", "only POST / takes telemetry here");
        break;
    case 413:
        reject(c, 413, "Payload Too Large", "telemetry batch over 1 MiB");
        break;
    case 431:
        reject(c, 431, "Request Header Fields Too Large", "request line and headers over 16 KiB");
        break;
    default:
        reject(c, 400, "Bad Request", llhttp_errno_name(err));
    }
    c->in_message = false;
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct tlistener *l = PLE_CONTAINER_OF((uv_tcp_t *)ls, struct tlistener, tcp);
    struct telemetry *t = l->t;
    if (status < 0)
        return;
    struct tconn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->t = t;
    uv_tcp_init(t->loop, &c->tcp);
    t->open_handles++;
    t->n_conns++;
    PLE_LIST_PUSH(&t->conns, c);
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        tconn_close(c);
        return;
    }
    if (t->n_conns > TELEMETRY_MAX_CONNECTIONS) {
        /* Logged like any refusal: at most once a second, with how many since. */
        uint64_t n = rate_limit_hit(&t->rejected, uv_now(t->loop));
        if (n)
            log_warn("telemetry listener: too many connections; new ones closed",
                     LKI("closed", n) LKI("limit", TELEMETRY_MAX_CONNECTIONS));
        tconn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &t->settings);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_listener_closed(uv_handle_t *h)
{
    struct tlistener *l = PLE_CONTAINER_OF((uv_tcp_t *)h, struct tlistener, tcp);
    handle_closed(l->t);
}

static int listen_at(struct telemetry *t, const char *ip, unsigned port)
{
    struct sockaddr_storage ss;
    if (uv_ip4_addr(ip, (int)port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(ip, (int)port, (struct sockaddr_in6 *)&ss) != 0)
        return UV_EINVAL;
    struct tlistener *l = &t->listeners[t->n_listeners];
    l->t = t;
    uv_tcp_init(t->loop, &l->tcp);
    t->open_handles++;
    l->open = true;
    t->n_listeners++;
    int rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, 16, on_connection);
    if (rc != 0) {
        l->open = false;
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    }
    return rc;
}

/* /etc/hosts is a local file of a few lines: read at start, while nothing else is waiting. */
static char *read_hosts_file(void)
{
    FILE *f = fopen(HOSTS_FILE, "r");
    if (!f)
        return NULL;
    char *text = malloc(HOSTS_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, HOSTS_FILE_MAX, f) : 0;
    fclose(f);
    if (text)
        text[n] = '\0';
    return text;
}

static void listen_at_sandbox_host(struct telemetry *t)
{
    char *hosts = read_hosts_file();
    char addrs[MAX_LISTENERS - 1][48];
    size_t n = hosts ? telemetry_hosts_lookup(hosts, SANDBOX_HOST, addrs, PLE_ARRAY_LEN(addrs)) : 0;
    free(hosts);
    if (n == 0)
        log_debug("telemetry: " SANDBOX_HOST " is not in " HOSTS_FILE "; listening on 127.0.0.1 "
                  "only", );
    for (size_t i = 0; i < n; i++) {
        if (strcmp(addrs[i], "127.0.0.1") == 0)
            continue;
        int rc = listen_at(t, addrs[i], t->port);
        if (rc == 0)
            log_debug("telemetry listening", LKS("address", addrs[i]) LKI("port", t->port));
        else
            log_warn("telemetry: cannot listen where " SANDBOX_HOST " points",
                     LKS("address", addrs[i]) LKS("error", uv_strerror(rc)));
    }
}

static void on_sweep_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

struct telemetry *telemetry_start(uv_loop_t *loop, int64_t stall_ms, telemetry_event_cb cb,
                                  void *ud, int *err)
{
    struct telemetry *t = calloc(1, sizeof(*t));
    if (!t) {
        *err = UV_ENOMEM;
        return NULL;
    }
    t->loop = loop;
    t->cb = cb;
    t->ud = ud;
    llhttp_settings_init(&t->settings);
    t->settings.on_message_begin = on_message_begin;
    t->settings.on_url = on_url;
    t->settings.on_header_field = on_header_bytes;
    t->settings.on_header_value = on_header_bytes;
    t->settings.on_headers_complete = on_headers_complete;
    t->settings.on_body = on_body;
    t->settings.on_message_complete = on_message_complete;
    t->open_handles = 2; /* the sweep timer, and held until telemetry_close */
    t->stall_sweeps = STREAM_STALL_SWEEPS(stall_ms);
    if (t->stall_sweeps == 0)
        t->stall_sweeps = 1;
    uv_timer_init(loop, &t->sweep);
    t->sweep.data = t;
    int rc = listen_at(t, "127.0.0.1", 0);
    if (rc == 0) {
        struct sockaddr_in a;
        int len = sizeof(a);
        rc = uv_tcp_getsockname(&t->listeners[0].tcp, (struct sockaddr *)&a, &len);
        t->port = ntohs(a.sin_port);
    }
    if (rc != 0) {
        *err = rc;
        telemetry_close(t);
        return NULL;
    }
    log_debug("telemetry listening", LKS("address", "127.0.0.1") LKI("port", t->port));
    listen_at_sandbox_host(t);
    return t;
}

static void on_subscribed(void *ud, const struct extapi_response *r)
{
    struct telemetry *t = ud;
    bool ok = !r->error && r->status == 200;
    if (!ok)
        log_warn("Telemetry API subscription failed: flushing uploads when the next event "
                 "arrives, as without it",
                 LKI("status", r->status) LKS("error", r->error ? uv_strerror(r->error) : "")
                     LKS("response", r->body));
    else
        log_debug("subscribed to the Telemetry API", LKI("port", t->port));
    t->sub_done(t->sub_ud, ok);
}

void telemetry_subscribe(struct telemetry *t, struct extapi *api, const char *id_header,
                         void (*done)(void *ud, bool ok), void *ud)
{
    t->sub_done = done;
    t->sub_ud = ud;
    const char *headers[] = {id_header, NULL};
    char *body = telemetry_subscription_body(t->port);
    int rc = body ? extapi_call(api, "PUT", "/2022-07-01/telemetry", headers, body, on_subscribed,
                                NULL, t)
                  : UV_ENOMEM;
    free(body);
    if (rc != 0) {
        struct extapi_response r = {.error = rc, .body = ""};
        on_subscribed(t, &r);
    }
}

void telemetry_close(struct telemetry *t)
{
    if (!t || t->closing)
        return;
    t->closing = true;
    for (size_t i = 0; i < t->n_listeners; i++) {
        if (t->listeners[i].open) {
            t->listeners[i].open = false;
            uv_close((uv_handle_t *)&t->listeners[i].tcp, on_listener_closed);
        }
    }
    while (t->conns)
        tconn_close(t->conns);
    uv_timer_stop(&t->sweep);
    uv_close((uv_handle_t *)&t->sweep, on_sweep_closed);
    handle_closed(t);
}
