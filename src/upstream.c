/* curl multi on the uv loop. The shape follows libcurl's documented socket interface:
 * CURLMOPT_SOCKETFUNCTION maps each socket to a uv_poll_t, CURLMOPT_TIMERFUNCTION to one
 * uv_timer_t, and every uv event ends in curl_multi_socket_action + drain_finished. curl is never
 * called from inside those two callbacks. */
#include "upstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#if defined(PLE_CURL_WOLFSSL) /* the layer: libcurl.a built with wolfSSL */
#include <wolfssl/options.h>  /* first: the options wolfSSL was built with */
#include <wolfssl/ssl.h>
typedef WOLFSSL_X509_STORE ca_store_t;
#elif defined(PLE_CURL_OPENSSL) /* the dev build: Debian's libcurl with OpenSSL 3 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
typedef X509_STORE ca_store_t;
#else
#error "PLE_CURL_WOLFSSL (the layer) or PLE_CURL_OPENSSL (the dev build): cmake/FindPleDeps.cmake"
#endif

#include "buf.h"
#include "log.h"
#include "retry.h"
#include "rewrite.h"
#include "util.h"

#define RESPONSE_SNIPPET 200

/* One per socket curl watches, never per descriptor number: the kernel hands a closed socket's
 * number to the next socket, ours (a client accepted by the relay) or curl's, at once.
 *
 * Two kinds, because we know the lifetime of one and not of the other:
 * - owned: a connection socket curl opened through open_socket and closes through close_socket.
 *   Its poll lives from the open to the close, so a kept-alive connection that curl stops
 *   watching between two uploads keeps its started read watch: reuse costs no epoll_ctl.
 * - foreign: a socket curl makes on its own (the threaded resolver's socketpair, c-ares' UDP
 *   sockets). curl closes it first and says CURL_POLL_REMOVE afterwards, within the same call.
 *   Its poll is stopped and closed at REMOVE, and after every call into curl any foreign poll
 *   whose socket is gone (fstat: closed, or the number now names another socket) is stopped
 *   before control returns to the loop, where an accept could take the number.
 * A poll whose socket is gone but that curl may still name (its socketp) is an orphan: stopped,
 * off the lookup list, freed when curl next names it or at upstream_close. */
struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    int events; /* what uv is polling for; 0 when stopped */
    bool owned;
    bool idle;   /* owned, and curl does not watch it now (CURL_POLL_REMOVE) */
    bool orphan; /* its socket is gone; on u->orphans */
    dev_t dev;   /* foreign: the socket it was made for */
    ino_t ino;
    struct upstream *u;
    struct poll_ctx *next, **prevp; /* u->polls (by fd) or u->orphans */
};

/* Counted for the shutdown summary's debug line, and for the tests: every socket opened must be
 * closed through close_socket, and vanished foreign sockets show the mechanism at work. */
struct socket_stats {
    uint64_t opened, closed, foreign, vanished, reused_number;
};

struct transfer {
    struct transfer *next; /* free list or active list */
    struct transfer **prevp;
    CURL *easy;
    struct relay_req *req;
    struct upstream *u;
    uint64_t started_ms;
    size_t body_sent; /* how much of req->body curl has read */
    size_t resp_len;
    char resp[RESPONSE_SNIPPET];
    char err[CURL_ERROR_SIZE];
    struct curl_slist *sign_headers; /* a signed request's headers plus its session token */
    struct fetch *fetch;             /* an upstream_fetch, not an upload: t->req is its own */
    unsigned gen;                    /* u->gen when its easy handle was made */
};

/* A small GET of our own (upstream_fetch) riding on the uploader's multi. */
struct fetch {
    struct buf body;
    upstream_fetch_cb cb;
    void *ud;
};

struct upstream {
    uv_loop_t *loop;
    struct queue *q;
    const struct config *c;
    CURLM *multi;
    CURLSH *share;         /* one TLS session cache and one DNS cache for every transfer */
    CURLSH *retired_share; /* the pre-snapshot one: freed at close, after its last easy handle */
    uv_timer_t timer;
    struct poll_ctx *polls;   /* one per live socket, looked up by fd */
    struct poll_ctx *orphans; /* see struct poll_ctx */
    size_t n_foreign;         /* foreign polls on u->polls: checked after each call into curl */
    struct socket_stats sockets;
    struct transfer *active_list;
    struct transfer *spare;    /* finished transfers kept with their easy handle for reuse */
    struct relay_req *waiting; /* failed uploads waiting to be retried, soonest first */
    struct relay_req *held;    /* signed uploads waiting for their credentials (SIGN_PENDING) */
    struct transfer *fetches;  /* upstream_fetch transfers in flight */
    uv_timer_t retry_timer;
    uint32_t rng;
    unsigned gen; /* SnapStart restores seen: easy handles made before one are not kept */
    size_t active, max_active;
    size_t burst_bytes; /* body bytes of this burst's transfers that wait for one connection */
    const char *ca_file, *ca_path;
    long dns_cache_timeout_s; /* PLE_TEST_DNS_CACHE_TIMEOUT, test-only; -1: curl's default */
    bool snapshot_pending; /* SnapStart, not yet restored: keep no connection after its transfer */
    ca_store_t *ca_store;  /* the CA bundle, parsed once (ssl_ctx_setup) */
    bool ca_store_failed;  /* logged once; not parsed again */
    bool tls_hooks;        /* libcurl's TLS library is the one this build links */
    int open_handles;      /* uv handles not yet closed; the struct is freed when it reaches 0 */
    bool closing;
    void (*done)(void *);
    void *done_ud;
};

static void drain_finished(struct upstream *u);
static void on_poll(uv_poll_t *h, int status, int events);
static void start_transfers(struct upstream *u);
static void on_retry_timer(uv_timer_t *timer);

static const char *req_destination(const struct relay_req *r)
{
    return r->kind == REQ_ARCHIVE ? "s3" : "remote";
}

/* S3 answers errors as XML: its <Code> (SignatureDoesNotMatch, AccessDenied, NoSuchBucket...)
 * is what a user needs to see. */
static void s3_error_code(const char *resp, char *out, size_t cap)
{
    const char *b = strstr(resp, "<Code>");
    const char *e = b ? strstr(b, "</Code>") : NULL;
    out[0] = '\0';
    if (e)
        snprintf(out, cap, "%.*s", (int)(e - b - 6), b + 6);
}

void log_not_delivered(const struct relay_req *r, const char *why)
{
    char url[512];
    url_redact(r->url, url, sizeof(url));
    log_error(why, LKI("id", r->id) LKS("to", req_destination(r)) LKS("url", url)
                       LKI("bytes", r->body_len) LKI("attempts", r->attempts));
}

/* Frees a header list that held a secret (a session token, a credentials endpoint's token),
 * wiping each line first, as free_secret does for a string. */
static void slist_free_secret(struct curl_slist *l)
{
    for (struct curl_slist *n = l; n; n = n->next)
        if (n->data)
            explicit_bzero(n->data, strlen(n->data));
    curl_slist_free_all(l);
}

static void handle_closed(uv_handle_t *h)
{
    struct upstream *u = h->data;
    if (h != (uv_handle_t *)&u->timer && h != (uv_handle_t *)&u->retry_timer)
        free(PLE_CONTAINER_OF(h, struct poll_ctx, poll));
    if (--u->open_handles == 0 && u->closing) {
        void (*done)(void *) = u->done;
        void *ud = u->done_ud;
        free(u);
        if (done)
            done(ud);
    }
}

/* Off its list (polls or orphans) and no longer watching. */
static void poll_detach(struct poll_ctx *p)
{
    if (!p->owned && !p->orphan)
        p->u->n_foreign--;
    PLE_LIST_REMOVE(p);
    uv_poll_stop(&p->poll);
}

static void poll_close(struct poll_ctx *p)
{
    poll_detach(p);
    uv_close((uv_handle_t *)&p->poll, handle_closed);
}

/* Its socket is gone: stop watching the number now (libuv drops it from epoll and from its fd
 * table), keep the struct for as long as curl may name it. */
static void poll_orphan(struct poll_ctx *p)
{
    poll_detach(p);
    p->events = 0;
    p->orphan = true;
    PLE_LIST_PUSH(&p->u->orphans, p);
}

static void poll_set(struct poll_ctx *p, int events)
{
    if (events == p->events)
        return;
    p->events = events;
    if (events)
        uv_poll_start(&p->poll, events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct poll_ctx *p = PLE_CONTAINER_OF(h, struct poll_ctx, poll);
    struct upstream *u = p->u;
    if (p->idle) { /* an idle kept-alive connection woke up (the remote closed it): curl will
                      notice when it next looks at the connection */
        poll_set(p, 0);
        return;
    }
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else
        flags = (events & UV_READABLE ? CURL_CSELECT_IN : 0) |
                (events & UV_WRITABLE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(u->multi, p->fd, flags, &running);
    drain_finished(u);
}

static struct poll_ctx *poll_find(struct upstream *u, curl_socket_t s)
{
    for (struct poll_ctx *p = u->polls; p; p = p->next)
        if (p->fd == s)
            return p;
    return NULL;
}

static bool socket_identity(curl_socket_t s, dev_t *dev, ino_t *ino)
{
    struct stat st;
    if (fstat(s, &st) != 0)
        return false;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return true;
}

static struct poll_ctx *poll_new(struct upstream *u, curl_socket_t s, bool owned)
{
    struct poll_ctx *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    if (!owned && !socket_identity(s, &p->dev, &p->ino)) {
        free(p);
        return NULL;
    }
    if (uv_poll_init_socket(u->loop, &p->poll, s) != 0) {
        free(p);
        return NULL;
    }
    p->fd = s;
    p->u = u;
    p->owned = owned;
    p->poll.data = u;
    u->open_handles++;
    if (!owned) {
        u->n_foreign++;
        u->sockets.foreign++;
    }
    PLE_LIST_PUSH(&u->polls, p);
    return p;
}

/* After every call into curl, before the loop runs again: a foreign socket that curl has closed
 * must not stay watched, or the next socket given its number (a relay client) would be. */
static void reap_vanished(struct upstream *u)
{
    for (struct poll_ctx *p = u->polls, *next; u->n_foreign && p; p = next) {
        next = p->next;
        dev_t dev;
        ino_t ino;
        if (p->owned || (socket_identity(p->fd, &dev, &ino) && dev == p->dev && ino == p->ino))
            continue;
        u->sockets.vanished++;
        poll_orphan(p);
    }
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    struct upstream *u = userp;
    struct poll_ctx *p = socketp;
    if (p && p->orphan) { /* curl still names a socket that is gone: this is its last word */
        poll_close(p);
        if (!u->closing)
            curl_multi_assign(u->multi, s, NULL);
        if (what == CURL_POLL_REMOVE)
            return 0;
        p = NULL;
        socketp = NULL;
    }
    if (what == CURL_POLL_REMOVE) {
        if (!p)
            return 0;
        if (!u->closing) /* during curl_multi_cleanup the multi is being torn down */
            curl_multi_assign(u->multi, s, NULL);
        if (!p->owned) {
            poll_close(p);
            return 0;
        }
        /* Stopped lazily: a read watch on an idle connection only fires when the remote closes
         * it, and stopping now would cost two epoll_ctl calls on the next reuse. Safe because
         * close_socket stops it before the descriptor is closed. */
        p->idle = true;
        if (p->events & UV_WRITABLE)
            poll_set(p, 0);
        return 0;
    }
    if (!p && !(p = poll_find(u, s)) && !(p = poll_new(u, s, false)))
        return -1;
    if (!p->owned) { /* the number may name another socket than when its poll was made */
        dev_t dev;
        ino_t ino;
        if (!socket_identity(s, &dev, &ino))
            return -1;
        if (dev != p->dev || ino != p->ino) { /* make libuv register the new socket */
            uv_poll_stop(&p->poll);
            p->events = 0;
            p->dev = dev;
            p->ino = ino;
        }
    }
    if (p != socketp) /* new, or idle: curl forgot the assignment at CURL_POLL_REMOVE */
        curl_multi_assign(u->multi, s, p);
    p->idle = false;
    poll_set(p, (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0));
    return 0;
}

/* curl opens a connection socket: from here to close_socket it is ours to watch. A poll still
 * filed under this number stands for a socket that is gone (the kernel gave the number out
 * again), typically the resolver's socketpair that curl closed a moment ago in this same call. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct upstream *u = clientp;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s < 0)
        return CURL_SOCKET_BAD;
    struct poll_ctx *stale = poll_find(u, s);
    if (stale) {
        u->sockets.reused_number++;
        if (stale->owned) /* curl closed one of its connections without close_socket */
            log_warn("upstream socket closed behind our back; its watch is dropped", LKI("fd", s));
        poll_orphan(stale);
    }
    if (!poll_new(u, s, true)) {
        close(s);
        return CURL_SOCKET_BAD;
    }
    u->sockets.opened++;
    return s;
}

/* curl closes a connection socket: its handle goes first, so that libuv drops the fd from epoll
 * while the fd is still open. */
static int on_close_socket(void *clientp, curl_socket_t s)
{
    struct upstream *u = clientp;
    struct poll_ctx *p = poll_find(u, s);
    if (p)
        poll_close(p);
    u->sockets.closed++;
    return close(s);
}

static void on_timer(uv_timer_t *t)
{
    struct upstream *u = t->data;
    int running;
    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain_finished(u);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    struct upstream *u = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&u->timer);
    else
        uv_timer_start(&u->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static size_t on_response_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct transfer *t = ud;
    size_t n = size * nmemb;
    if (t->fetch) /* refused past the bound: curl then fails the transfer (CURLE_WRITE_ERROR) */
        return buf_append(&t->fetch->body, data, n, UPSTREAM_FETCH_MAX_BYTES) == 0 ? n : 0;
    size_t room = sizeof(t->resp) - 1 - t->resp_len;
    size_t keep = n < room ? n : room;
    memcpy(t->resp + t->resp_len, data, keep);
    t->resp_len += keep;
    t->resp[t->resp_len] = '\0';
    return n; /* the rest is read and discarded: only the first bytes help a user */
}

/* curl reads the body from the request in place (CURLOPT_POSTFIELDS would make it copy a body
 * under 64 KiB into a fresh request buffer, allocated and freed for every upload). */
static size_t read_body(char *buf, size_t size, size_t nitems, void *ud)
{
    struct transfer *t = ud;
    size_t left = t->req->body_len - t->body_sent;
    size_t n = size * nitems < left ? size * nitems : left;
    memcpy(buf, t->req->body + t->body_sent, n);
    t->body_sent += n;
    return n;
}

static int seek_body(void *ud, curl_off_t offset, int origin)
{
    struct transfer *t = ud;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > t->req->body_len)
        return CURL_SEEKFUNC_FAIL;
    t->body_sent = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static void set_method_and_body(CURL *e, struct transfer *t)
{
    const struct relay_req *r = t->req;
    if (strcmp(r->method, "GET") == 0 && r->body_len == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        return;
    }
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        return;
    }
    t->body_sent = 0;
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_body);
    curl_easy_setopt(e, CURLOPT_READDATA, t);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_body);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, t);
    if (strcmp(r->method, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
}

/* The credentials are read at each attempt: they may have been refreshed since the request was
 * queued. The session token is a header, and must be signed with the keys it belongs to, so the
 * request's headers are copied with it (archive PUTs only, a few a minute at most). */
static void set_signature(struct transfer *t)
{
    const struct aws_sign *s = t->req->sign;
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(e, CURLOPT_USERNAME, s->access_key);
    curl_easy_setopt(e, CURLOPT_PASSWORD, s->secret_key);
    if (!s->session_token || !*s->session_token)
        return;
    struct curl_slist *h = NULL, *n;
    bool ok = true;
    for (const struct curl_slist *l = t->req->headers; l && ok; l = l->next)
        if ((ok = (n = curl_slist_append(h, l->data)) != NULL))
            h = n;
    char *line = NULL;
    if (ok && asprintf(&line, "x-amz-security-token: %s", s->session_token) >= 0) {
        if ((ok = (n = curl_slist_append(h, line)) != NULL))
            h = n;
        free_secret(line);
    } else {
        ok = false;
    }
    if (!ok) { /* out of memory: without its token the PUT is refused (403), never mis-signed */
        curl_slist_free_all(h);
        return;
    }
    t->sign_headers = h;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->sign_headers);
}

/* The CA bundle, parsed once into one store that every connection's TLS context shares.
 *
 * - The layer (wolfSSL): curl 7.88 gives wolfSSL a fresh context per connection and would parse
 *   the whole bundle into each: about 3 ms of CPU for a system bundle of 145 certificates, on
 *   every reconnect after a thaw, more than the handshake itself.
 * - The dev build (Debian's libcurl with OpenSSL 3): curl keeps the store it parsed in the multi
 *   handle, but parses it at the first connection, inside its TLS round trip: 25-45 ms of CPU for
 *   the same bundle (OpenSSL 3 decodes certificates slowly), which a near remote cannot hide.
 *
 * Either way the store is parsed early, by upstream_prepare_tls once the extension is registered
 * (so that cold start stays free of it and the parse overlaps the runtime's own init), else at
 * the first https connection; the TLS library counts the references. */
static bool is_https(const char *url)
{
    return strncmp(url, "https:", 6) == 0;
}

static ca_store_t *store_parse(const char *file, const char *dir)
{
#ifdef PLE_CURL_WOLFSSL
    WOLFSSL_X509_STORE *s = wolfSSL_X509_STORE_new();
    if (s && wolfSSL_X509_STORE_load_locations(s, file, dir) != WOLFSSL_SUCCESS) {
        wolfSSL_X509_STORE_free(s);
        s = NULL;
    }
#else
    X509_STORE *s = X509_STORE_new();
    if (s && ((file && !X509_STORE_load_file(s, file)) || (dir && !X509_STORE_load_path(s, dir)))) {
        X509_STORE_free(s);
        s = NULL;
        ERR_clear_error();
    }
    /* OpenSSL 3 loads its providers and fetches its algorithms at the first context: 3-4 ms that
     * the first connection would otherwise pay, once per process. */
    SSL_CTX_free(SSL_CTX_new(TLS_client_method()));
#endif
    return s;
}

static void store_free(ca_store_t *s)
{
#ifdef PLE_CURL_WOLFSSL
    wolfSSL_X509_STORE_free(s);
#else
    X509_STORE_free(s);
#endif
}

/* ssl_ctx holds a reference to s from now on; false: out of memory. */
static bool store_attach(void *ssl_ctx, ca_store_t *s)
{
#ifdef PLE_CURL_WOLFSSL
    if (wolfSSL_X509_STORE_up_ref(s) != WOLFSSL_SUCCESS)
        return false;
    wolfSSL_CTX_set_cert_store(ssl_ctx, s); /* takes the reference just made */
    if (wolfSSL_CTX_get_cert_store(ssl_ctx) != s) {
        wolfSSL_X509_STORE_free(s);
        return false;
    }
#else
    SSL_CTX_set1_cert_store(ssl_ctx, s); /* takes a reference of its own */
#endif
    return true;
}

/* Whether the libcurl we run with uses the TLS library this build links, whose contexts
 * ssl_ctx_setup may touch. Debian's libcurl4 is OpenSSL 3's, but the same libcurl.so.4 may be
 * another flavour, or built on another OpenSSL major version, on another system; the layer links
 * its own libcurl.a. */
static bool tls_hooks_apply(void)
{
    char lib[32];
#ifdef PLE_CURL_WOLFSSL
    snprintf(lib, sizeof(lib), "wolfSSL/");
#else
    snprintf(lib, sizeof(lib), "OpenSSL/%d.", OPENSSL_VERSION_MAJOR);
#endif
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    bool ok = v && v->ssl_version && strncmp(v->ssl_version, lib, strlen(lib)) == 0;
    if (!ok)
        log_debug("libcurl's TLS library is not the one linked: its own CA handling is used",
                  LKS("tls", v && v->ssl_version ? v->ssl_version : ""));
    return ok;
}

/* CURLE_OK, or the error the connection fails with (logged once). */
static CURLcode ca_store_load(struct upstream *u)
{
    if (u->ca_store)
        return CURLE_OK;
    if (u->ca_store_failed) /* a bundle that failed once is not parsed again for each upload */
        return CURLE_SSL_CACERT_BADFILE;
    uint64_t t0 = uv_hrtime();
    u->ca_store = store_parse(u->ca_file, u->ca_path);
    if (!u->ca_store) {
        log_error("CA certificates cannot be loaded; https uploads will fail",
                  LKS("file", u->ca_file ? u->ca_file : "")
                      LKS("dir", u->ca_path ? u->ca_path : ""));
        u->ca_store_failed = true;
        return CURLE_SSL_CACERT_BADFILE;
    }
    log_debug("CA certificates parsed", LKI("us", (int64_t)((uv_hrtime() - t0) / 1000)));
    return CURLE_OK;
}

#ifdef PLE_CURL_OPENSSL
/* curl 7.88 caches the very SSL_SESSION that OpenSSL hands its new-session callback, which is
 * also the connection's current session. When curl frees an HTTP/2 connection that the remote
 * has closed, it skips SSL_shutdown, and OpenSSL then marks the connection's current session
 * not resumable (ssl_clear_bad_session): curl goes on offering it and OpenSSL leaves it out of
 * the ClientHello, so no HTTP/2 reconnect ever resumed (HTTP/1.1 connections are shut down and
 * kept theirs). curl is handed a copy instead, which that marking cannot reach. */
static int (*curl_new_session)(SSL *, SSL_SESSION *);

static int new_session_copy(SSL *ssl, SSL_SESSION *session)
{
    SSL_SESSION *copy = SSL_SESSION_dup(session);
    if (copy && curl_new_session(ssl, copy) != 1)
        SSL_SESSION_free(copy); /* curl did not keep it */
    return 0;                   /* the original stays OpenSSL's alone */
}

/* A resumed connection runs on the session curl offered, its cached one, until the server sends
 * a new one; over TLS 1.2 (or from a server that sends no ticket on resumption) it never does,
 * and that connection's end would mark curl's copy not resumable in turn: the next reconnect
 * would do a full handshake. So curl gets a copy of it too once the handshake is done. */
static void on_handshake_info(const SSL *ssl, int where, int ret)
{
    (void)ret;
    if ((where & SSL_CB_HANDSHAKE_DONE) && SSL_session_reused(ssl)) {
        SSL_SESSION *current = SSL_get0_session(ssl);
        if (current)
            new_session_copy((SSL *)ssl, current);
    }
}
#endif

static CURLcode ssl_ctx_setup(CURL *e, void *ssl_ctx, void *ud)
{
    struct upstream *u = ud;
    (void)e;
#ifdef PLE_CURL_OPENSSL
    int (*cb)(SSL *, SSL_SESSION *) = SSL_CTX_sess_get_new_cb(ssl_ctx);
    if (cb && cb != new_session_copy) {
        curl_new_session = cb;
        SSL_CTX_sess_set_new_cb(ssl_ctx, new_session_copy);
        if (!SSL_CTX_get_info_callback(ssl_ctx)) /* curl 7.88 sets none */
            SSL_CTX_set_info_callback(ssl_ctx, on_handshake_info);
    }
#endif
    if (!u->ca_file && !u->ca_path)
        return CURLE_OK; /* curl's built-in CA file and directory, if it has them */
    CURLcode rc = ca_store_load(u);
    if (rc != CURLE_OK)
        return rc;
    return store_attach(ssl_ctx, u->ca_store) ? CURLE_OK : CURLE_OUT_OF_MEMORY;
}

void upstream_prepare_tls(struct upstream *u)
{
    if (u && u->tls_hooks && (u->ca_file || u->ca_path) && is_https(u->c->remote_address))
        ca_store_load(u);
}

static void set_ca(CURL *e, struct upstream *u)
{
    if (u->tls_hooks) {
        curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_setup);
        curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, u);
        /* No file and no directory of curl's own: the store is ours. Debian's libcurl would
         * otherwise add its default bundle and directory and parse them into the store again.
         * The same for an https proxy from the environment, whose context curl sets up through
         * the same callback: it is verified with the same store, which nothing may widen. */
        if (u->ca_file || u->ca_path) {
            curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
            curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
            curl_easy_setopt(e, CURLOPT_PROXY_CAINFO, NULL);
            curl_easy_setopt(e, CURLOPT_PROXY_CAPATH, NULL);
        }
        return;
    }
    /* Without our store (a libcurl whose TLS library is not the one this build links): libcurl
     * with OpenSSL keeps its parsed bundle in the multi handle only when no CA directory is set,
     * and Debian's default adds one (/etc/ssl/certs); it would then parse the whole bundle again
     * for every connection. So the directory is set too, to NULL unless SSL_CERT_DIR names one. */
    if (u->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, u->ca_file);
    curl_easy_setopt(e, CURLOPT_CAPATH, u->ca_path);
}

/* A transfer that finds a connection to the remote still connecting waits for its ALPN answer
 * and then shares it (HTTP/2) instead of opening its own: a burst after a thaw pays one handshake.
 * But a new HTTP/2 connection may carry only 64 KiB of bodies until the server's first window
 * update arrives, one round trip after the handshake (RFC 9113, 6.9.2). So the first 64 KiB of a
 * burst wait for the first connection, and the uploads past it open a connection of their own
 * (resuming the TLS session) rather than wait that round trip: measured with five 17 KiB uploads
 * 40 ms away, 4.2 RTT on one connection, against 2.76 RTT (the floor: 2.69). Once the remote is
 * known to speak HTTP/2, curl multiplexes on the live connections whether or not a transfer
 * waits. */
#define H2_FIRST_WINDOW 65535

static bool pipewait(struct upstream *u, size_t body_len)
{
    if (u->active == 0) /* nothing in flight: a new burst */
        u->burst_bytes = 0;
    if (u->burst_bytes + body_len > H2_FIRST_WINDOW)
        return false;
    u->burst_bytes += body_len;
    return true;
}

static void configure_easy(struct upstream *u, struct transfer *t)
{
    CURL *e = t->easy;
    const struct relay_req *r = t->req;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    set_method_and_body(e, t);
    long timeout_ms = (long)(u->c->timeout_ns / 1000000);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_response_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->err);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_SHARE, u->share);
    if (is_https(r->url)) {
        /* HTTP/2 if the remote offers it in ALPN, else HTTP/1.1. */
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, pipewait(u, r->body_len) ? 1L : 0L);
    } else {
        /* Cleartext: no ALPN to ask, and a waiting transfer would queue behind a whole
         * HTTP/1.1 exchange. */
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    }
    if (r->fresh_connection)
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    set_ca(e, u);
    if (u->dns_cache_timeout_s >= 0)
        curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, u->dns_cache_timeout_s);
    /* SnapStart: the snapshot may be taken at any moment after init, with no event to tell. A
     * connection kept alive into it would be continued by every restored copy (the same TLS keys
     * and sequence numbers) until the restore is noticed; so, until then, none is kept. */
    if (u->snapshot_pending)
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, u);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, u);
    if (r->sign)
        set_signature(t);
}

static struct transfer *transfer_get(struct upstream *u)
{
    struct transfer *t = u->spare;
    if (t) {
        u->spare = t->next;
        curl_easy_reset(t->easy);
    } else {
        t = calloc(1, sizeof(*t));
        if (!t)
            return NULL;
        t->easy = curl_easy_init();
        if (!t->easy) {
            free(t);
            return NULL;
        }
        t->u = u;
        t->gen = u->gen;
    }
    t->resp_len = 0;
    t->resp[0] = t->err[0] = '\0';
    t->fetch = NULL;
    return t;
}

/* What failed, in words: curl's error buffer, else its text for rc; "" when nothing did. */
static const char *transfer_error(const struct transfer *t, CURLcode rc)
{
    /* curl's own words would be "error signaled by ssl ctx callback" */
    if (rc == CURLE_SSL_CACERT_BADFILE && t->u->ca_store_failed)
        return "the CA certificates (SSL_CERT_FILE, SSL_CERT_DIR) cannot be loaded";
    return rc == CURLE_OK ? "" : t->err[0] ? t->err : curl_easy_strerror(rc);
}

static void transfer_free(struct transfer *t)
{
    curl_easy_cleanup(t->easy);
    free(t);
}

/* Frees every kept transfer (and its easy handle). */
static void spares_free(struct upstream *u)
{
    while (u->spare) {
        struct transfer *t = u->spare;
        u->spare = t->next;
        transfer_free(t);
    }
}

/* Keeps a finished transfer, with its easy handle, for the next upload. */
static void transfer_spare(struct upstream *u, struct transfer *t)
{
    slist_free_secret(t->sign_headers);
    t->sign_headers = NULL;
    t->req = NULL;
    if (t->gen != u->gen) { /* in flight at a restore: its TLS sessions predate the snapshot */
        transfer_free(t);
        return;
    }
    t->next = u->spare;
    u->spare = t;
}

/* Puts the uploads held for their credentials back at the head of the queue, in their order:
 * start_transfers asks again whether they can be signed. */
static void release_held(struct upstream *u)
{
    struct relay_req *rev = NULL;
    while (u->held) {
        struct relay_req *r = u->held;
        u->held = r->next;
        r->next = rev;
        rev = r;
    }
    while (rev) {
        struct relay_req *r = rev;
        rev = r->next;
        queue_requeue(u->q, r);
    }
}

/* Whether r may be sent now. A signed request whose credentials are being fetched is held (still
 * in flight for the queue, so flushes and the drain wait for it, within their deadlines); one
 * whose credentials could not be had fails: it is never sent unsigned. */
static bool can_send(struct upstream *u, struct relay_req *r)
{
    enum aws_sign_state st =
        r->sign && r->sign->check ? r->sign->check(r->sign->check_ud) : SIGN_READY;
    if (st == SIGN_READY)
        return true;
    if (st == SIGN_PENDING) {
        struct relay_req **p = &u->held;
        while (*p)
            p = &(*p)->next;
        r->next = NULL;
        *p = r;
        return false;
    }
    log_not_delivered(r, "upload not archived: no AWS credentials to sign it");
    queue_done(u->q, r, false);
    return false;
}

static void start_transfers(struct upstream *u)
{
    if (!u->closing)
        release_held(u);
    while (!u->closing && u->active < u->max_active && u->q->head) {
        struct relay_req *r = queue_pop(u->q);
        if (!can_send(u, r))
            continue;
        struct transfer *t = transfer_get(u);
        if (!t) { /* out of memory: the request stays queued and is tried on the next kick */
            queue_requeue(u->q, r);
            return;
        }
        t->req = r;
        t->req->attempts++;
        t->started_ms = uv_now(u->loop);
        configure_easy(u, t);
        if (curl_multi_add_handle(u->multi, t->easy) != CURLM_OK) {
            queue_requeue(u->q, t->req);
            transfer_spare(u, t);
            return;
        }
        PLE_LIST_PUSH(&u->active_list, t);
        u->active++;
    }
}

static void on_kick(void *ud)
{
    start_transfers(ud);
}

enum outcome { DELIVERED, RETRYING, FAILED };

static const char *http_version(CURL *e)
{
    long v = 0;
    curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &v);
    switch (v) {
    case CURL_HTTP_VERSION_1_0:
        return "1.0";
    case CURL_HTTP_VERSION_1_1:
        return "1.1";
    case CURL_HTTP_VERSION_2_0:
        return "2";
    default:
        return "?";
    }
}

static void log_outcome(struct transfer *t, CURLcode rc, long status, enum outcome how,
                        uint64_t retry_in_ms)
{
    const struct relay_req *r = t->req;
    char url[512];
    url_redact(r->url, url, sizeof(url));
    uint64_t ms = uv_now(t->u->loop) - t->started_ms;
    if (how == DELIVERED) {
        log_debug("upload relayed", LKI("id", r->id) LKS("to", req_destination(r)) LKS("url", url)
                                        LKI("status", status) LKS("http", http_version(t->easy))
                                            LKI("duration_ms", ms) LKI("bytes", r->body_len)
                                                LKI("attempts", r->attempts));
        return;
    }
    const char *error = transfer_error(t, rc);
    char s3_code[64] = "";
    if (r->kind == REQ_ARCHIVE)
        s3_error_code(t->resp, s3_code, sizeof(s3_code));
    if (how == RETRYING)
        log_warn("upload failed; will retry",
                 LKI("id", r->id) LKS("to", req_destination(r)) LKS("url", url)
                     LKI("status", status) LKS("error", s3_code[0] ? s3_code : error)
                         LKS("response", t->resp) LKI("attempt", r->attempts)
                             LKI("retry_in_ms", retry_in_ms));
    else
        log_error("upload failed",
                  LKI("id", r->id) LKS("to", req_destination(r)) LKS("url", url)
                      LKI("status", status) LKS("error", s3_code[0] ? s3_code : error)
                          LKS("response", t->resp) LKI("attempts", r->attempts)
                              LKI("duration_ms", ms) LKI("bytes", r->body_len));
}

static void arm_retry_timer(struct upstream *u)
{
    if (!u->waiting) {
        uv_timer_stop(&u->retry_timer);
        return;
    }
    uint64_t now = uv_now(u->loop);
    uint64_t due = u->waiting->not_before_ms;
    uv_timer_start(&u->retry_timer, on_retry_timer, due > now ? due - now : 0, 0);
}

static void on_retry_timer(uv_timer_t *timer)
{
    struct upstream *u = timer->data;
    uint64_t now = uv_now(u->loop);
    while (u->waiting && u->waiting->not_before_ms <= now) {
        struct relay_req *r = u->waiting;
        u->waiting = r->next;
        queue_requeue(u->q, r); /* ahead of newer uploads: it has waited longest */
    }
    arm_retry_timer(u);
    start_transfers(u);
}

/* Keeps r (still counted as in flight by the queue) until its delay has passed. */
static void schedule_retry(struct upstream *u, struct relay_req *r, uint64_t delay_ms)
{
    r->not_before_ms = uv_now(u->loop) + delay_ms;
    struct relay_req **p = &u->waiting;
    while (*p && (*p)->not_before_ms <= r->not_before_ms)
        p = &(*p)->next;
    r->next = *p;
    *p = r;
    arm_retry_timer(u);
}

/* Takes t off the multi and the active list, keeps it for reuse, and returns its request. */
static struct relay_req *transfer_release(struct upstream *u, struct transfer *t)
{
    curl_multi_remove_handle(u->multi, t->easy);
    PLE_LIST_REMOVE(t);
    u->active--;
    struct relay_req *r = t->req;
    transfer_spare(u, t);
    return r;
}

static void finish_transfer(struct upstream *u, struct transfer *t, CURLcode rc)
{
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    struct relay_req *r = t->req;
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        log_outcome(t, rc, status, DELIVERED, 0);
        queue_done(u->q, transfer_release(u, t), true);
        return;
    }
    if (!u->closing && retry_is_retryable(rc, status) &&
        r->attempts <= (unsigned)u->c->max_retries) {
        curl_off_t retry_after = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &retry_after);
        uint64_t delay = retry_delay_ms(r->attempts, (long)retry_after, retry_random(&u->rng));
        r->fresh_connection = retry_is_transport(rc);
        log_outcome(t, rc, status, RETRYING, delay);
        schedule_retry(u, transfer_release(u, t), delay);
        return;
    }
    log_outcome(t, rc, status, FAILED, 0);
    queue_done(u->q, transfer_release(u, t), false);
}

static void finish_fetch(struct upstream *u, struct transfer *t, CURLcode rc)
{
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(u->multi, t->easy);
    PLE_LIST_REMOVE(t);
    struct fetch *f = t->fetch;
    const char *error = transfer_error(t, rc);
    f->cb(f->ud, (int)rc, status, f->body.p ? f->body.p : "", f->body.len, error);
    if (f->body.p) /* it may have held credentials */
        explicit_bzero(f->body.p, f->body.len);
    buf_free(&f->body);
    free(f);
    slist_free_secret(t->req->headers); /* the endpoint's Authorization */
    t->req->headers = NULL;
    relay_req_free(t->req);
    transfer_spare(u, t);
}

static void drain_finished(struct upstream *u)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(u->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct transfer *t;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        if (t->fetch)
            finish_fetch(u, t, m->data.result);
        else
            finish_transfer(u, t, m->data.result);
    }
    start_transfers(u);
    reap_vanished(u); /* curl may have closed a foreign socket in any call above */
}

/* Where libcurl finds the CA certificates that verify the remote (verification is never turned
 * off): SSL_CERT_FILE and SSL_CERT_DIR first, then Amazon Linux's bundle, then Debian's, then two
 * other common places. Probed once, at start. */
static void probe_ca(struct upstream *u)
{
    static const char *const bundles[] = {
        "/etc/pki/tls/certs/ca-bundle.crt",   /* Amazon Linux, RHEL */
        "/etc/ssl/certs/ca-certificates.crt", /* Debian, Ubuntu */
        "/etc/ssl/cert.pem",                  /* Alpine */
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    };
    bool https = is_https(u->c->remote_address);
    const char *file = getenv("SSL_CERT_FILE");
    const char *dir = getenv("SSL_CERT_DIR");
    u->ca_file = file && *file ? file : NULL;
    u->ca_path = dir && *dir ? dir : NULL;
    if (u->ca_file && access(u->ca_file, R_OK) != 0 && https)
        log_error("SSL_CERT_FILE cannot be read; https uploads will fail",
                  LKS("path", u->ca_file) LKS("error", strerror(errno)));
    for (size_t i = 0; !u->ca_file && !u->ca_path && i < PLE_ARRAY_LEN(bundles); i++)
        if (access(bundles[i], R_OK) == 0)
            u->ca_file = bundles[i];
    if (u->ca_file || u->ca_path)
        log_debug("CA certificates", LKS("file", u->ca_file ? u->ca_file : "")
                                         LKS("dir", u->ca_path ? u->ca_path : ""));
    else if (https)
        log_error("no CA certificates found: set SSL_CERT_FILE; https uploads will fail",
                  LKS("tried", "/etc/pki/tls/certs/ca-bundle.crt /etc/ssl/certs/ca-certificates.crt"
                               " /etc/ssl/cert.pem"));
}

/* Without a share, curl keeps the TLS sessions of each easy handle apart: of five transfers
 * reconnecting after a thaw, only the one that made the session could resume it. The loop is our
 * only thread, so the share needs no lock callbacks. */
static CURLSH *share_new(void)
{
    CURLSH *s = curl_share_init();
    if (!s)
        return NULL;
    if (curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
        curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
        curl_share_cleanup(s);
        return NULL;
    }
    return s;
}

struct upstream *upstream_new(uv_loop_t *loop, struct queue *q, const struct config *c)
{
    struct upstream *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->loop = loop;
    u->q = q;
    u->c = c;
    u->max_active = (size_t)c->num_workers;
    u->multi = curl_multi_init();
    if (!u->multi) {
        log_error("curl_multi_init failed", );
        free(u);
        return NULL;
    }
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)c->num_workers);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, (long)c->num_workers);
    u->share = share_new();
    if (!u->share) {
        log_error("curl_share_init failed", );
        curl_multi_cleanup(u->multi);
        free(u);
        return NULL;
    }
    uv_timer_init(loop, &u->timer);
    u->timer.data = u;
    uv_timer_init(loop, &u->retry_timer);
    u->retry_timer.data = u;
    u->open_handles = 2;
    u->rng = (uint32_t)uv_hrtime() | 1;
    u->snapshot_pending = c->init_type == INIT_SNAP_START;
    /* Test-only: how long curl keeps a resolved name (its default is 60 s). The host-name tests
     * set 0 so that every new connection runs the resolver and its sockets come and go. */
    const char *dns = getenv("PLE_TEST_DNS_CACHE_TIMEOUT");
    u->dns_cache_timeout_s = dns && *dns ? strtol(dns, NULL, 10) : -1;
    probe_ca(u);
    u->tls_hooks = tls_hooks_apply();
    q->on_push = on_kick;
    q->on_push_ud = u;
    start_transfers(u); /* uploads may have queued before the uploader existed */
    return u;
}

int upstream_fetch(struct upstream *u, const char *url, const char *header, upstream_fetch_cb cb,
                   void *ud)
{
    if (u->closing)
        return -1;
    struct relay_req *r = calloc(1, sizeof(*r));
    struct fetch *f = calloc(1, sizeof(*f));
    struct transfer *t = r && f ? transfer_get(u) : NULL;
    if (t && (r->method = strdup("GET")) && (r->url = strdup(url)) &&
        (!header || (r->headers = curl_slist_append(NULL, header)))) {
        *f = (struct fetch){.cb = cb, .ud = ud};
        t->req = r;
        t->fetch = f;
        t->started_ms = uv_now(u->loop);
        configure_easy(u, t); /* the uploads' options: CA, timeouts, socket callbacks */
        if (curl_multi_add_handle(u->multi, t->easy) == CURLM_OK) {
            PLE_LIST_PUSH(&u->fetches, t);
            return 0;
        }
        t->fetch = NULL;
    }
    if (t) {
        t->req = NULL;
        transfer_spare(u, t);
    }
    if (r) {
        slist_free_secret(r->headers); /* the header line may hold a token */
        r->headers = NULL;
    }
    relay_req_free(r);
    free(f);
    return -1;
}

void upstream_after_restore(struct upstream *u)
{
    /* The jitter of every restored copy would otherwise follow the same sequence. */
    uint32_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = (uint32_t)uv_hrtime();
    u->rng = seed ? seed : 1;
    u->snapshot_pending = false; /* connections made from now on are this copy's own */
    /* Every connection curl holds was made before the snapshot, and every restored copy holds the
     * same one (same TLS keys, same sequence numbers) to a remote that has long forgotten it.
     * shutdown() leaves the descriptor open, so the poll bookkeeping is untouched: curl finds an
     * idle one dead (readable at EOF) before it would reuse it and closes it, and an upload still
     * in flight on one fails as a transport error and is retried on a fresh connection. */
    size_t n = 0;
    for (struct poll_ctx *p = u->polls; p; p = p->next)
        if (p->owned) { /* connections only: the resolver's sockets are not ours to shut */
            shutdown(p->fd, SHUT_RDWR);
            n++;
        }
    /* The easy handles hold the TLS sessions cached before the snapshot: the spare ones go now,
     * those in flight when they finish (transfer_spare). */
    u->gen++;
    /* So does the share (TLS sessions and resolved names from before the snapshot): new easy
     * handles take a fresh one. The old one may still be used by transfers in flight; it goes at
     * upstream_close, once every easy handle is gone (a process is restored once at most). */
    CURLSH *fresh = u->retired_share ? NULL : share_new();
    if (fresh) {
        u->retired_share = u->share;
        u->share = fresh;
    }
    spares_free(u);
    log_debug("after restore: pre-snapshot connections shut, jitter reseeded",
              LKI("connections", n));
}

static void abort_active(struct upstream *u)
{
    while (u->active_list) {
        struct transfer *t = u->active_list;
        log_not_delivered(t->req, "upload not delivered: aborted at shutdown");
        queue_done(u->q, transfer_release(u, t), false);
    }
    while (u->waiting) {
        struct relay_req *r = u->waiting;
        u->waiting = r->next;
        log_not_delivered(r, "upload not delivered: still waiting to retry at shutdown");
        queue_done(u->q, r, false);
    }
    while (u->held) {
        struct relay_req *r = u->held;
        u->held = r->next;
        log_not_delivered(r, "upload not archived: still waiting for credentials at shutdown");
        queue_done(u->q, r, false);
    }
    while (u->fetches) {
        struct transfer *t = u->fetches;
        t->err[0] = '\0';
        snprintf(t->err, sizeof(t->err), "the uploader is closing");
        finish_fetch(u, t, CURLE_ABORTED_BY_CALLBACK);
    }
}

void upstream_close(struct upstream *u, void (*done)(void *ud), void *ud)
{
    u->closing = true;
    u->done = done;
    u->done_ud = ud;
    if (u->q->on_push_ud == u)
        u->q->on_push = NULL;
    abort_active(u);
    spares_free(u);
    /* Cleanup closes the kept-alive connections; curl may report their sockets as removed. */
    curl_multi_cleanup(u->multi);
    u->multi = NULL;
    curl_share_cleanup(u->share); /* after every easy handle that used it is gone */
    u->share = NULL;
    if (u->retired_share)
        curl_share_cleanup(u->retired_share);
    u->retired_share = NULL;
    if (u->ca_store) /* every connection's context, which held a reference, is freed */
        store_free(u->ca_store);
    u->ca_store = NULL;
    while (u->polls)
        poll_close(u->polls);
    while (u->orphans)
        poll_close(u->orphans);
    log_debug("upstream sockets",
              LKI("opened", u->sockets.opened) LKI("closed", u->sockets.closed)
                  LKI("foreign", u->sockets.foreign) LKI("vanished", u->sockets.vanished)
                      LKI("number_reused", u->sockets.reused_number));
    uv_timer_stop(&u->timer);
    uv_close((uv_handle_t *)&u->timer, handle_closed);
    uv_timer_stop(&u->retry_timer);
    uv_close((uv_handle_t *)&u->retry_timer, handle_closed);
}
