/* Trace-sampled profiling at run time. See include/tracesample.h. */
#include "tracesample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

static bool is_ingest(const struct upload_view *u)
{
    static const char tail[] = "/ingest";
    const char *q = memchr(u->target, '?', u->target_len);
    size_t path_len = q ? (size_t)(q - u->target) : u->target_len;
    return strcmp(u->method, "POST") == 0 && path_len >= sizeof(tail) - 1 &&
           memcmp(u->target + path_len - (sizeof(tail) - 1), tail, sizeof(tail) - 1) == 0;
}

static bool hook_relay(void *ud, const struct upload_view *u)
{
    struct trace_sampling *t = ud;
    if (!t->have_invoke || t->relay || !is_ingest(u))
        return true;
    t->stats.sampled_out++;
    log_debug("upload sampled out: not relayed",
              LKS("requestId", t->request_id) LKI("bytes", u->body_len));
    return false;
}

/* The bucket: XRAYPROFILE_S3_BUCKET, or the seed's default once the account id is known. */
static bool name_bucket(struct trace_sampling *t)
{
    if (t->bucket[0])
        return true;
    const struct xray_archive_config *x = &t->cfg->xray;
    if (*x->bucket)
        snprintf(t->bucket, sizeof(t->bucket), "%s", x->bucket);
    else if (strlen(t->account_id) == 12)
        archive_default_bucket(t->account_id, x->region, t->bucket, sizeof(t->bucket));
    if (t->bucket[0])
        log_info("per-trace archive", LKS("bucket", t->bucket) LKS("prefix", x->prefix)
                                          LKS("endpoint", *x->endpoint ? x->endpoint : "AWS"));
    return t->bucket[0] != '\0';
}

static struct curl_slist *archive_headers(const struct trace_sampling *t, const char *type)
{
    char line[256];
    struct curl_slist *h = NULL, *n;
    /* Every header given to curl is signed, so none may be an empty "Name:" line (curl would
     * sign it without sending it). S3 requires x-amz-content-sha256; the payload is not hashed
     * (UNSIGNED-PAYLOAD): TLS protects it on the way to AWS. */
    const char *fixed[] = {"x-amz-acl: bucket-owner-full-control",
                           "x-amz-content-sha256: UNSIGNED-PAYLOAD", line};
    snprintf(line, sizeof(line), "Content-Type: %s", type);
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (!(n = curl_slist_append(h, fixed[i])))
            goto fail;
        h = n;
    }
    /* Bucket names are global: someone else may own xrayprofile-<accountId>-<region>. For the
     * default bucket S3 must refuse (403) rather than store the profile in another account's
     * bucket; a bucket the user named may be another account's on purpose. */
    if (!*t->cfg->xray.bucket && strlen(t->account_id) == 12) {
        snprintf(line, sizeof(line), "x-amz-expected-bucket-owner: %s", t->account_id);
        if (!(n = curl_slist_append(h, line)))
            goto fail;
        h = n;
    }
    return h; /* the uploader adds x-amz-security-token at each attempt: it may be refreshed */
fail:
    curl_slist_free_all(h);
    return NULL;
}

/* Queues the archive's copy of an upload: a PUT of its profile to
 * <bucket>/<prefix><trace>/<function>/<requestId>/<n>-<app>.<ext>. */
static void archive_upload(struct trace_sampling *t, const struct upload_view *u)
{
    const struct xray_archive_config *x = &t->cfg->xray;
    if (!name_bucket(t)) {
        t->stats.archive_dropped++;
        if (!t->no_bucket_logged) {
            t->no_bucket_logged = true;
            log_error("upload not archived: no bucket (set XRAYPROFILE_S3_BUCKET; the account id "
                      "for the default bucket is unknown)",
                      LKS("requestId", t->request_id));
        }
        return;
    }
    const char *q = memchr(u->target, '?', u->target_len);
    const char *query = q ? q + 1 : "";
    size_t query_len = q ? u->target_len - (size_t)(q + 1 - u->target) : 0;
    struct archive_payload pl;
    archive_select(query, query_len, u->content_type, u->content_type_len, u->body, u->body_len,
                   &pl);
    char app[256] = "";
    query_param(query, query_len, "name", app, sizeof(app));
    unsigned seq = t->archived_in_invoke + 1;
    char *key =
        archive_key(x->prefix, &t->decision, t->function_name, t->request_id, seq, app, pl.ext);
    struct relay_req *r = calloc(1, sizeof(*r));
    if (r) {
        r->kind = REQ_ARCHIVE;
        r->sign = t->sign;
        r->method = strdup("PUT");
        r->url = key ? archive_url(x->endpoint, x->region, t->bucket, key) : NULL;
        r->headers = archive_headers(t, pl.content_type);
        r->body = body_alloc(pl.len ? pl.len : 1);
        r->body_len = pl.len;
        if (r->body)
            memcpy(r->body, pl.data, pl.len);
    }
    if (!r || !r->method || !r->url || !r->headers || !r->body) {
        log_error("out of memory: upload not archived", LKS("requestId", t->request_id));
        relay_req_free(r);
        free(key);
        t->stats.archive_dropped++;
        return;
    }
    if (queue_push(t->q, r) != 0) {
        log_warn("relay queue full: upload not archived",
                 LKS("key", key) LKI("bytes", pl.len) LKI("pending", queue_pending(t->q)));
        relay_req_free(r);
    } else {
        t->archived_in_invoke = seq;
        log_debug("archive upload queued", LKS("key", key) LKI("bytes", pl.len));
    }
    free(key);
}

static void hook_accepted(void *ud, const struct upload_view *u)
{
    struct trace_sampling *t = ud;
    if (t->archive && is_ingest(u))
        archive_upload(t, u);
}

void trace_sampling_init(struct trace_sampling *t, const struct config *c, struct queue *q,
                         const struct aws_sign *sign, const char *function_name,
                         const char *account_id, const char *request_id)
{
    *t = (struct trace_sampling){.cfg = c,
                                 .q = q,
                                 .sign = sign,
                                 .function_name = function_name,
                                 .account_id = account_id,
                                 .request_id = request_id};
    t->hooks = (struct upload_hooks){hook_relay, hook_accepted, t};
    t->active = c->trace_sample_threshold >= 0 || c->xray.enabled;
    if (c->trace_sample_threshold >= 0)
        log_info("trace-sampled relay", LKI("threshold", c->trace_sample_threshold)
                                            LKI("per_65536", c->trace_sample_threshold + 1));
    if (c->xray.enabled)
        log_info("per-trace archive to S3",
                 LKI("threshold", c->xray.threshold)
                     LKS("bucket", *c->xray.bucket ? c->xray.bucket : "(default)"));
}

void trace_sampling_invoke(struct trace_sampling *t, const char *tracing)
{
    if (!t->active)
        return;
    t->have_invoke = true;
    xray_decide(tracing, t->request_id, &t->decision);
    t->relay = t->cfg->trace_sample_threshold < 0 ||
               xray_sampled(&t->decision, t->cfg->trace_sample_threshold);
    t->archive = t->cfg->xray.enabled && xray_sampled(&t->decision, t->cfg->xray.threshold);
    t->archived_in_invoke = 0;
    t->stats.invokes_relayed += t->relay;
    t->stats.invokes_archived += t->archive;
    log_debug("invoke sampling decision",
              LKS("requestId", t->request_id)
                  LKS("root", t->decision.traced ? t->decision.root : "")
                      LKI("value", t->decision.value) LKS("relay", t->relay ? "true" : "false")
                          LKS("archive", t->archive ? "true" : "false"));
    if (!t->decision.traced)
        log_debug("no usable X-Ray trace root: sampling on a hash of the requestId",
                  LKS("tracing", tracing));
}
