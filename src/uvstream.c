#include "uvstream.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct write_req {
    uv_write_t req;
    char data[];
};

static void on_written(uv_write_t *w, int status)
{
    (void)status; /* a client that went away is not an error worth a line */
    free(PLE_CONTAINER_OF(w, struct write_req, req));
}

void stream_write_copy(uv_stream_t *s, const char *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write(s, &b, 1);
    if (n == (int)len)
        return;
    size_t done = n > 0 ? (size_t)n : 0;
    struct write_req *w = malloc(sizeof(*w) + len - done);
    if (!w)
        return;
    memcpy(w->data, data + done, len - done);
    b = uv_buf_init(w->data, (unsigned)(len - done));
    if (uv_write(&w->req, s, &b, 1, on_written) != 0)
        free(w);
}

struct finish_req {
    uv_shutdown_t req;
    void (*close_cb)(void *ud);
    void *ud;
};

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    struct finish_req *f = PLE_CONTAINER_OF(req, struct finish_req, req);
    void (*close_cb)(void *) = f->close_cb;
    void *ud = f->ud;
    free(f);
    close_cb(ud);
}

void stream_finish(uv_stream_t *s, void (*close_cb)(void *ud), void *ud)
{
    uv_read_stop(s);
    struct finish_req *f = malloc(sizeof(*f));
    if (f) {
        f->close_cb = close_cb;
        f->ud = ud;
    }
    if (!f || uv_shutdown(&f->req, s, on_shutdown) != 0) {
        free(f);
        close_cb(ud);
    }
}

bool stream_stalled(bool *progress, unsigned *stalled, unsigned limit)
{
    *stalled = *progress ? 0 : *stalled + 1;
    *progress = false;
    return *stalled >= limit;
}
