/* Trace-sampled profiling at run time: which invoke an upload belongs to, whether it is relayed
 * (PYROSCOPE_TRACE_SAMPLE_THRESHOLD), and its copy to the per-trace S3 archive (XRAYPROFILE_*).
 * The decisions are include/xray.h's; this module holds the current invoke and queues the
 * archive's PUTs on the relay queue, where the uploader signs them (SigV4) and gives them the
 * same retries, flush and shutdown rules as any upload.
 *
 * An upload belongs to the most recent INVOKE: the current one, or the last one when it arrives
 * after the runtime has answered and before the freeze. Before the first INVOKE (the function's
 * init) and in dev mode there is no invoke: everything is relayed and nothing is archived. Only
 * POST …/ingest requests are sampled or archived; any other request is relayed as it is. */
#ifndef PLE_TRACESAMPLE_H
#define PLE_TRACESAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "queue.h"
#include "relay_server.h"
#include "xray.h"

struct trace_sampling_stats {
    uint64_t sampled_out;      /* uploads answered 200 and deliberately not relayed */
    uint64_t invokes_relayed;  /* invokes whose uploads are relayed */
    uint64_t invokes_archived; /* invokes whose uploads are archived */
    uint64_t archive_dropped;  /* uploads not archived: no bucket could be named, or no memory */
};

struct trace_sampling {
    const struct config *cfg;
    struct queue *q;
    struct upload_hooks hooks;
    bool active; /* either use is configured */
    /* The invoke that uploads belong to. */
    bool have_invoke;
    struct xray_decision decision;
    bool relay, archive;         /* the decisions for this invoke */
    unsigned archived_in_invoke; /* the key's sequence number */
    /* The lifecycle's own strings, filled by /register and the INVOKE events. */
    const char *function_name, *account_id, *request_id;
    char bucket[64];             /* the bucket in use; "" until it can be named */
    const struct aws_sign *sign; /* the archive's credentials (include/credentials.h) */
    struct trace_sampling_stats stats;
    bool no_bucket_logged;
};

/* Sets t up from the configuration; t->active tells whether the relay needs its hooks
 * (relay_server_set_hooks(server, &t->hooks)). sign signs the archive's PUTs. function_name,
 * account_id and request_id are the lifecycle's strings (the function's name and account from
 * /register or the invoked ARN, the current invoke's requestId), read when needed: they and sign
 * must outlive t. */
void trace_sampling_init(struct trace_sampling *t, const struct config *c, struct queue *q,
                         const struct aws_sign *sign, const char *function_name,
                         const char *account_id, const char *request_id);
/* An INVOKE event, once request_id holds its requestId: decides for it. tracing is tracing.value
 * ("" when absent). */
void trace_sampling_invoke(struct trace_sampling *t, const char *tracing);

#endif
