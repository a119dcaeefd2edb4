/* A minimal HTTP/1.1 client for the Lambda Extensions API on the uv loop: one TCP connection per
 * call (the API is on the sandbox's loopback; a fresh connection also survives freezes), the
 * response parsed with llhttp. It exists apart from the curl uploader so that nothing heavy
 * (TLS, curl's global init) stands between exec and the /register request, and so that the
 * event long-poll never competes with uploads for PYROSCOPE_NUM_WORKERS. No timeouts: /event/next
 * must be allowed to block for as long as the function is idle.
 *
 * Descriptors and handles: each call owns one uv_tcp_t (its socket is closed only by uv_close;
 * the call's memory is freed in the close callback). The uv_getaddrinfo_t of the one-time
 * resolution belongs to the client and is cancelled by extapi_close; libuv's worker thread never
 * touches our state. */
#ifndef PLE_EXTAPI_H
#define PLE_EXTAPI_H

#include <stddef.h>

#include <uv.h>

struct extapi;

struct extapi_response {
    int error;        /* 0, or a negative uv error when no HTTP answer was read */
    int status;       /* HTTP status */
    const char *body; /* NUL-terminated */
    size_t body_len;
    const char *ext_id; /* Lambda-Extension-Identifier, or NULL */
};

typedef void (*extapi_cb)(void *ud, const struct extapi_response *r);

/* runtime_api is AWS_LAMBDA_RUNTIME_API: "host:port", "[v6]:port". Returns NULL if it does not
 * parse (logged). A host name is resolved with uv_getaddrinfo once, on first use. */
struct extapi *extapi_new(uv_loop_t *loop, const char *runtime_api);

/* Sends one request. headers is a NULL-terminated array of "Name: value" lines; body may be
 * NULL. cb runs exactly once (unless extapi_close runs first). written, if not NULL, runs once
 * the request has been handed to the kernel. Returns 0 or a negative uv error (then cb will not
 * run). */
int extapi_call(struct extapi *a, const char *method, const char *path, const char *const *headers,
                const char *body, extapi_cb cb, void (*written)(void *), void *ud);

/* Cancels every call without running its callbacks and frees the client once every handle is
 * closed. */
void extapi_close(struct extapi *a);

#endif
