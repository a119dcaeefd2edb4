/* What the two HTTP listeners (the relay, include/relay_server.h, and the Telemetry API listener,
 * include/telemetry.h) do alike with a client connection: write an answer, close after the
 * answers have left, and tell a stalled request from a frozen sandbox. The connection and its
 * uv_tcp_t stay owned by the listener; these helpers only borrow the stream. */
#ifndef PLE_UVSTREAM_H
#define PLE_UVSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

/* Writes len bytes on s: at once when the socket takes them all, else from a copy that lives until
 * the write completes. A failed write drops the answer: its connection is going away. */
void stream_write_copy(uv_stream_t *s, const char *data, size_t len);

/* Stops reading, then calls close_cb(ud) once the answers already written have left (a
 * uv_shutdown), or at once when no shutdown can start. close_cb closes the connection. */
void stream_finish(uv_stream_t *s, void (*close_cb)(void *ud), void *ud);

/* How often the listeners look for stalled requests, and a timeout in such sweeps (rounded up). */
#define SWEEP_MS 1000
#define STREAM_STALL_SWEEPS(ms) ((unsigned)(((ms) + SWEEP_MS - 1) / SWEEP_MS))

/* One sweep over a connection in the middle of a request: a sweep counts only when no byte came
 * since the previous one (*progress, set by the reader, is cleared here), and sweeps are counted
 * on the loop's running time, so a frozen sandbox stalls nobody. True once `limit` sweeps in a
 * row found nothing: the request is answered 408 and closed. */
bool stream_stalled(bool *progress, unsigned *stalled, unsigned limit);

#endif
