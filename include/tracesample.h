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
    uint64_t archive_unplaced; /* uploads not archived: no bucket could be named */
};

struct trace_sampling {
    const struct config *cfg;
    struct queue *q;
    struct upload_hooks hooks;
    bool active; /* either use is configured */
    /* The invoke that uploads belong to. */
    bool have_invoke;
    struct xray_decision decision;
    char request_id[80];
    bool relay, archive;         /* the decisions for this invoke */
    unsigned archived_in_invoke; /* the key's sequence number */
    /* From /register and the INVOKE events. */
    char function_name[128];
    char account_id[16];
    char bucket[64]; /* the bucket in use; "" until it can be named */
    struct aws_sign sign;
    struct trace_sampling_stats stats;
    bool unplaced_logged;
};

/* Sets t up from the configuration; t->active tells whether the relay needs its hooks
 * (relay_server_set_hooks(server, &t->hooks)). */
void trace_sampling_init(struct trace_sampling *t, const struct config *c, struct queue *q);
/* From /register's answer: the function's name and the account id (either may be ""). */
void trace_sampling_registered(struct trace_sampling *t, const char *function_name,
                               const char *account_id);
/* An INVOKE event: decides for it. tracing is tracing.value ("" when absent); arn is the
 * invokedFunctionArn, where the account id is found when /register did not give it. */
void trace_sampling_invoke(struct trace_sampling *t, const char *request_id, const char *tracing,
                           const char *arn);

#endif
