/* ple-delay-proxy: a TCP proxy on 127.0.0.1 that makes a loopback remote behave like one that is
 * RTT milliseconds away, for the real-network benchmark (test/bench/realnet.py) and the HTTP/2
 * tests. It is the C twin of test/support/delay_proxy.py, whose scheduling in Python adds a few
 * milliseconds per exchange: at 40 ms RTT that is as large as the differences being measured.
 *
 *   ple-delay-proxy TARGET_PORT ONE_WAY_US
 *
 * prints "listening PORT" on stdout once it accepts, and exits when its standard input ends (the
 * parent's pipe: a parent that dies takes the proxy with it), on SIGTERM, or on a fatal error.
 *
 * The model, the same as the Python one: every chunk read on one side is written to the other
 * side ONE_WAY_US after it was read, in order per direction; an EOF travels the same way (as a
 * shutdown of the write side). The kernel completes the client's TCP handshake locally, so a new
 * connection's first client bytes are held one RTT more: the round trip of the SYN that a real
 * network would charge. It is charged after those bytes were written, not from the accept: on a
 * real network, whatever a client does between its connect and its first write (loading CA
 * certificates, making its TLS context) starts only once the SYN's round trip is over, so it adds
 * to the time; charged from the accept, the round trip would hide up to one RTT of it. Timing is by
 * an absolute CLOCK_MONOTONIC timerfd (nanoseconds), so no millisecond rounding is added per hop.
 * One thread; a test helper, never part of the extension.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_MAX 65536

struct chunk {
    struct chunk *next;
    int64_t due_ns;
    size_t len, off;
    int eof;
    char data[];
};

struct pair;

/* One socket of a pair; the epoll event's pointer. */
struct end {
    struct pair *pair;
    int fd;
    int reading;  /* EPOLLIN wanted: no EOF read yet */
    int want_out; /* EPOLLOUT wanted: a due chunk did not fit */
    int in_epoll; /* 0 once hung up with nothing more to read */
};

/* One direction: read from `from`, written to `to` when due. */
struct dir {
    struct end *from, *to;
    struct chunk *head, *tail;
    int64_t first_extra_ns; /* the SYN's round trip, charged to the client's first bytes */
    int done;               /* its EOF has been passed on (or the pair broke) */
};

struct pair {
    struct end client, server;
    struct dir up, down; /* up: client -> server */
    struct pair *next;
};

static int g_ep = -1, g_timer = -1, g_listen = -1;
static int64_t g_one_way_ns;
static struct pair *g_pairs;
static int g_tag_listen, g_tag_timer, g_tag_stdin; /* addresses as epoll tags */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "ple-delay-proxy: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void set_interest(struct end *e)
{
    if (!e->in_epoll)
        return; /* hung up: a write to it fails, and that closes the pair */
    struct epoll_event ev = {.events = (e->reading ? EPOLLIN : 0) | (e->want_out ? EPOLLOUT : 0),
                             .data.ptr = e};
    if (epoll_ctl(g_ep, EPOLL_CTL_MOD, e->fd, &ev) != 0)
        die("epoll_ctl MOD");
}

/* An end that hung up and has nothing left to read leaves epoll, where EPOLLHUP would be
 * reported at every wait until the pair ends. */
static void forget(struct end *e)
{
    if (e->in_epoll && epoll_ctl(g_ep, EPOLL_CTL_DEL, e->fd, NULL) != 0)
        die("epoll_ctl DEL");
    e->in_epoll = 0;
}

static void free_chunks(struct dir *d)
{
    while (d->head) {
        struct chunk *c = d->head;
        d->head = c->next;
        free(c);
    }
    d->tail = NULL;
}

static void pair_close(struct pair *p)
{
    for (struct pair **pp = &g_pairs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    close(p->client.fd); /* close(2) also takes the fd out of epoll */
    close(p->server.fd);
    free_chunks(&p->up);
    free_chunks(&p->down);
    free(p);
}

static void enqueue(struct dir *d, const char *data, size_t len, int eof)
{
    struct chunk *c = malloc(sizeof *c + len);
    if (!c)
        die("malloc");
    /* In order per direction: a chunk never leaves before the one ahead of it (flush). */
    c->next = NULL;
    c->due_ns = now_ns() + d->first_extra_ns + g_one_way_ns;
    d->first_extra_ns = 0;
    c->len = len;
    c->off = 0;
    c->eof = eof;
    if (len)
        memcpy(c->data, data, len);
    if (d->tail)
        d->tail->next = c;
    else
        d->head = c;
    d->tail = c;
}

/* Writes every due chunk of d; 0, or -1 when the pair broke (the caller closes it). */
static int flush(struct dir *d, int64_t t)
{
    while (d->head && d->head->due_ns <= t) {
        struct chunk *c = d->head;
        if (c->eof) {
            shutdown(d->to->fd, SHUT_WR);
            d->done = 1;
        } else {
            while (c->off < c->len) {
                ssize_t n = send(d->to->fd, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
                if (n > 0) {
                    c->off += (size_t)n;
                    continue;
                }
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    if (!d->to->want_out) {
                        d->to->want_out = 1;
                        set_interest(d->to);
                    }
                    return 0;
                }
                return -1; /* the peer is gone: so is the pair, as a reset would make it */
            }
        }
        d->head = c->next;
        if (!d->head)
            d->tail = NULL;
        free(c);
    }
    if (d->to->want_out) {
        d->to->want_out = 0;
        set_interest(d->to);
    }
    return 0;
}

static void arm_timer(void)
{
    int64_t next = 0;
    for (struct pair *p = g_pairs; p; p = p->next) {
        struct dir *ds[2] = {&p->up, &p->down};
        for (int i = 0; i < 2; i++)
            if (ds[i]->head && !ds[i]->to->want_out && (!next || ds[i]->head->due_ns < next))
                next = ds[i]->head->due_ns;
    }
    struct itimerspec its = {0};
    if (next) {
        its.it_value.tv_sec = next / 1000000000LL;
        its.it_value.tv_nsec = next % 1000000000LL;
        if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
            its.it_value.tv_nsec = 1;
    }
    if (timerfd_settime(g_timer, TFD_TIMER_ABSTIME, &its, NULL) != 0)
        die("timerfd_settime");
}

static int finished(struct pair *p)
{
    return p->up.done && p->down.done;
}

/* Flushes both directions of every pair; closes the pairs that broke or ended. */
static void flush_all(void)
{
    int64_t t = now_ns();
    struct pair *p = g_pairs;
    while (p) {
        struct pair *next = p->next;
        if (flush(&p->up, t) != 0 || flush(&p->down, t) != 0 || finished(p))
            pair_close(p);
        p = next;
    }
}

static void on_readable(struct end *e)
{
    struct pair *p = e->pair;
    struct dir *d = e == &p->client ? &p->up : &p->down;
    static char buf[CHUNK_MAX];
    ssize_t n = recv(e->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n > 0) {
        enqueue(d, buf, (size_t)n, 0);
        return;
    }
    /* EOF or an error (a reset): passed on as an EOF, one way later. */
    enqueue(d, NULL, 0, 1);
    e->reading = 0;
    set_interest(e);
}

static int nonblock_nodelay(int fd)
{
    int one = 1;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return -1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void add_end(struct end *e, struct pair *p, int fd)
{
    e->pair = p;
    e->fd = fd;
    e->reading = 1;
    e->want_out = 0;
    e->in_epoll = 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = e};
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl ADD");
}

static void on_accept(const struct sockaddr_in *target)
{
    for (;;) {
        int c = accept4(g_listen, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN: every pending connection taken */
        }
        /* Loopback: the connect completes at once, so a blocking one is fine in this helper. */
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0 || connect(s, (const struct sockaddr *)target, sizeof *target) != 0 ||
            nonblock_nodelay(s) != 0 || nonblock_nodelay(c) != 0) {
            fprintf(stderr, "ple-delay-proxy: cannot reach the target: %s\n", strerror(errno));
            if (s >= 0)
                close(s);
            close(c);
            continue;
        }
        struct pair *p = calloc(1, sizeof *p);
        if (!p)
            die("calloc");
        add_end(&p->client, p, c);
        add_end(&p->server, p, s);
        p->up =
            (struct dir){.from = &p->client, .to = &p->server, .first_extra_ns = 2 * g_one_way_ns};
        p->down = (struct dir){.from = &p->server, .to = &p->client};
        p->next = g_pairs;
        g_pairs = p;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: ple-delay-proxy TARGET_PORT ONE_WAY_US\n");
        return 2;
    }
    char *end1, *end2;
    long port = strtol(argv[1], &end1, 10);
    long long one_way_us = strtoll(argv[2], &end2, 10);
    if (*end1 || port <= 0 || port > 65535 || *end2 || one_way_us < 0 || one_way_us > 10000000) {
        fprintf(stderr, "ple-delay-proxy: bad TARGET_PORT or ONE_WAY_US\n");
        return 2;
    }
    g_one_way_ns = one_way_us * 1000LL;
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    int one = 1;
    g_listen = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (g_listen < 0 || setsockopt(g_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(g_listen, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(g_listen, 128) != 0 ||
        getsockname(g_listen, (struct sockaddr *)&addr, &alen) != 0)
        die("listen");
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    g_timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (g_ep < 0 || g_timer < 0)
        die("epoll/timerfd");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &g_tag_listen};
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, g_listen, &ev) != 0)
        die("epoll_ctl listen");
    ev.data.ptr = &g_tag_timer;
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, g_timer, &ev) != 0)
        die("epoll_ctl timer");
    ev.data.ptr = &g_tag_stdin;
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev) != 0)
        die("epoll_ctl stdin (it must be a pipe)");
    printf("listening %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(g_ep, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &g_tag_listen) {
                on_accept(&target);
            } else if (tag == &g_tag_timer) {
                uint64_t ticks;
                if (read(g_timer, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
                    die("read timerfd");
            } else if (tag == &g_tag_stdin) {
                char b[256];
                ssize_t r = read(STDIN_FILENO, b, sizeof b);
                if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
                    while (g_pairs)
                        pair_close(g_pairs);
                    return 0;
                }
            } else {
                /* Pairs are closed only in flush_all, after the batch: e is valid here. */
                struct end *e = tag;
                if (e->reading && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                    on_readable(e);
                else if (!e->reading && (evs[i].events & (EPOLLHUP | EPOLLERR)))
                    forget(e); /* reported whatever the interest: it would spin */
                /* EPOLLOUT: the flush below retries what did not fit. */
            }
        }
        flush_all();
        arm_timer();
    }
}
