/* Extensions API client: connect, write one request, parse one response, close. */
#include "extapi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "buf.h"
#include "log.h"
#include "util.h"

#define EXT_ID_HEADER "Lambda-Extension-Identifier"
#define MAX_RESPONSE (1024 * 1024)

struct call {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    struct extapi *a;
    struct call *next, **prevp;
    llhttp_t parser;
    char *request;
    size_t request_len;
    struct buf body;
    char field[64];
    size_t field_len;
    bool field_is_id;
    char ext_id[128];
    bool done;
    extapi_cb cb;
    void (*written)(void *);
    void *ud;
};

struct extapi {
    uv_loop_t *loop;
    char *host, *port;
    struct sockaddr_storage addr;
    bool resolved;
    uv_getaddrinfo_t gai;
    bool resolving;
    struct call *calls, *waiting; /* connected or connecting; waiting for name resolution */
    llhttp_settings_t settings;
    int open;
    bool closing;
};

static char read_buf[16 * 1024];

static void maybe_free(struct extapi *a)
{
    if (a->closing && a->open == 0 && !a->resolving) {
        free(a->host);
        free(a->port);
        free(a);
    }
}

static void call_unlink(struct call *c)
{
    if (c->prevp)
        PLE_LIST_REMOVE(c);
}

static void call_free(struct call *c)
{
    free(c->request);
    buf_free(&c->body);
    free(c);
}

static void on_call_closed(uv_handle_t *h)
{
    struct call *c = PLE_CONTAINER_OF(h, struct call, tcp);
    struct extapi *a = c->a;
    call_free(c);
    a->open--;
    maybe_free(a);
}

static void call_finish(struct call *c, int error)
{
    if (c->done)
        return;
    c->done = true;
    call_unlink(c);
    struct extapi_response r = {
        .error = error,
        .status = error ? 0 : llhttp_get_status_code(&c->parser),
        .body = c->body.p ? c->body.p : "",
        .body_len = c->body.len,
        .ext_id = c->ext_id[0] ? c->ext_id : NULL,
    };
    if (c->cb)
        c->cb(c->ud, &r);
    uv_close((uv_handle_t *)&c->tcp, on_call_closed);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct call *c = p->data;
    if (c->field_len + len < sizeof(c->field)) {
        memcpy(c->field + c->field_len, at, len);
        c->field_len += len;
    }
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct call *c = p->data;
    c->field[c->field_len] = '\0';
    c->field_is_id = strcasecmp(c->field, EXT_ID_HEADER) == 0;
    c->field_len = 0;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct call *c = p->data;
    if (c->field_is_id) {
        size_t have = strlen(c->ext_id);
        if (have + len < sizeof(c->ext_id)) {
            memcpy(c->ext_id + have, at, len);
            c->ext_id[have + len] = '\0';
        }
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct call *c = p->data;
    return buf_append(&c->body, at, len, MAX_RESPONSE);
}

static int on_message_complete(llhttp_t *p)
{
    call_finish(p->data, 0);
    return HPE_PAUSED;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    *b = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct call *c = PLE_CONTAINER_OF((uv_tcp_t *)s, struct call, tcp);
    if (nread == 0)
        return;
    if (nread < 0) {
        /* A response delimited by the end of the connection is complete at EOF. */
        if (nread == UV_EOF && llhttp_finish(&c->parser) == HPE_OK && !c->done &&
            llhttp_get_status_code(&c->parser) > 0)
            call_finish(c, 0);
        else
            call_finish(c, nread == UV_EOF ? UV_ECONNRESET : (int)nread);
        return;
    }
    llhttp_errno_t err = llhttp_execute(&c->parser, b->base, (size_t)nread);
    if (err != HPE_OK && err != HPE_PAUSED) {
        log_error("malformed response from the Extensions API",
                  LKS("error", llhttp_errno_name(err)));
        call_finish(c, UV_EPROTO);
    }
}

static void on_written(uv_write_t *w, int status)
{
    struct call *c = PLE_CONTAINER_OF(w, struct call, write);
    if (status < 0) {
        call_finish(c, status);
        return;
    }
    if (c->written)
        c->written(c->ud);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct call *c = PLE_CONTAINER_OF(req, struct call, connect);
    if (status < 0) {
        call_finish(c, status);
        return;
    }
    uv_buf_t b = uv_buf_init(c->request, (unsigned)c->request_len);
    int rc = uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0)
        call_finish(c, rc);
}

static void call_connect(struct call *c)
{
    struct extapi *a = c->a;
    PLE_LIST_PUSH(&a->calls, c);
    int rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&a->addr, on_connected);
    if (rc < 0)
        call_finish(c, rc);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct extapi *a = PLE_CONTAINER_OF(req, struct extapi, gai);
    a->resolving = false;
    if (status == 0 && res) {
        memcpy(&a->addr, res->ai_addr, res->ai_addrlen);
        a->resolved = true;
    } else {
        log_error("cannot resolve AWS_LAMBDA_RUNTIME_API host",
                  LKS("host", a->host) LKS("error", uv_strerror(status)));
    }
    uv_freeaddrinfo(res);
    while (a->waiting) {
        struct call *c = a->waiting;
        call_unlink(c);
        if (a->closing)
            call_finish(c, UV_ECANCELED);
        else if (a->resolved)
            call_connect(c);
        else
            call_finish(c, status ? status : UV_EAI_NONAME);
    }
    maybe_free(a);
}

static int split_host_port(const char *api, char **host, char **port)
{
    const char *colon;
    if (api[0] == '[') {
        const char *end = strchr(api, ']');
        if (!end || end[1] != ':')
            return -1;
        *host = strndup(api + 1, (size_t)(end - api - 1));
        colon = end + 1;
    } else {
        colon = strrchr(api, ':');
        if (!colon)
            return -1;
        *host = strndup(api, (size_t)(colon - api));
    }
    *port = strdup(colon + 1);
    return (*host && *port && **host && **port) ? 0 : -1;
}

struct extapi *extapi_new(uv_loop_t *loop, const char *runtime_api)
{
    struct extapi *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->loop = loop;
    if (!runtime_api || split_host_port(runtime_api, &a->host, &a->port) != 0) {
        log_error("AWS_LAMBDA_RUNTIME_API is not host:port",
                  LKS("value", runtime_api ? runtime_api : ""));
        free(a->host);
        free(a->port);
        free(a);
        return NULL;
    }
    int port = atoi(a->port);
    if (uv_ip4_addr(a->host, port, (struct sockaddr_in *)&a->addr) == 0 ||
        uv_ip6_addr(a->host, port, (struct sockaddr_in6 *)&a->addr) == 0)
        a->resolved = true;
    llhttp_settings_init(&a->settings);
    a->settings.on_header_field = on_header_field;
    a->settings.on_header_field_complete = on_header_field_complete;
    a->settings.on_header_value = on_header_value;
    a->settings.on_body = on_body;
    a->settings.on_message_complete = on_message_complete;
    return a;
}

static char *format_request(const struct extapi *a, const char *method, const char *path,
                            const char *const *headers, const char *body, size_t *len)
{
    size_t body_len = body ? strlen(body) : 0;
    size_t cap = strlen(method) + strlen(path) + strlen(a->host) + strlen(a->port) + body_len + 128;
    for (const char *const *h = headers; h && *h; h++)
        cap += strlen(*h) + 2;
    char *req = malloc(cap);
    if (!req)
        return NULL;
    size_t n = (size_t)snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: %s:%s\r\n", method, path,
                                a->host, a->port);
    for (const char *const *h = headers; h && *h; h++)
        n += (size_t)snprintf(req + n, cap - n, "%s\r\n", *h);
    if (body)
        n +=
            (size_t)snprintf(req + n, cap - n,
                             "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
    n += (size_t)snprintf(req + n, cap - n, "Connection: close\r\n\r\n%s", body ? body : "");
    *len = n;
    return req;
}

int extapi_call(struct extapi *a, const char *method, const char *path, const char *const *headers,
                const char *body, extapi_cb cb, void (*written)(void *), void *ud)
{
    struct call *c = calloc(1, sizeof(*c));
    if (!c)
        return UV_ENOMEM;
    c->a = a;
    c->cb = cb;
    c->written = written;
    c->ud = ud;
    c->request = format_request(a, method, path, headers, body, &c->request_len);
    if (!c->request) {
        free(c);
        return UV_ENOMEM;
    }
    llhttp_init(&c->parser, HTTP_RESPONSE, &a->settings);
    c->parser.data = c;
    uv_tcp_init(a->loop, &c->tcp);
    a->open++;
    if (a->resolved) {
        call_connect(c);
        return 0;
    }
    PLE_LIST_PUSH(&a->waiting, c);
    if (!a->resolving) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        int rc = uv_getaddrinfo(a->loop, &a->gai, on_resolved, a->host, a->port, &hints);
        if (rc < 0) {
            call_finish(c, rc);
            return 0;
        }
        a->resolving = true;
    }
    return 0;
}

void extapi_close(struct extapi *a)
{
    a->closing = true;
    if (a->resolving)
        uv_cancel((uv_req_t *)&a->gai);
    struct call **lists[] = {&a->calls, &a->waiting};
    for (size_t i = 0; i < PLE_ARRAY_LEN(lists); i++) {
        while (*lists[i]) {
            struct call *c = *lists[i];
            c->cb = NULL;
            c->written = NULL;
            call_finish(c, UV_ECANCELED);
        }
    }
    maybe_free(a);
}
