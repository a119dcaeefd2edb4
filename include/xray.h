/* Trace-sampled profiling, the pure part: the per-trace decision from the go-xrayprofile seed, and
 * how an upload is stored in the per-trace S3 archive (which bytes, under which key and URL).
 * No I/O; every function is unit-tested (test/unit/test_xray.c).
 *
 * The decision: the last four hex digits of the X-Ray trace root, as a uint16, are compared with
 * a threshold; the invoke is sampled when value <= threshold. So 0 samples 1 in 65,536 invokes,
 * 655 about 1%, 6553 about 10% and 65535 all, and every function of one trace decides the same.
 * When the tracing value is missing or malformed, the same 16-bit test runs on a hash of the
 * requestId, so the configured fraction still holds (but functions of one request no longer
 * agree). */
#ifndef PLE_XRAY_H
#define PLE_XRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "1-" + 8 hex digits (epoch seconds) + "-" + 24 hex digits. */
#define XRAY_ROOT_LEN 35

struct xray_decision {
    bool traced;                  /* a well-formed Root= was found */
    char root[XRAY_ROOT_LEN + 1]; /* the root when traced, else "" */
    uint16_t value;               /* what the threshold is compared with */
};

/* Extracts Root= from an X-Amzn-Trace-Id value ("Root=1-…;Parent=…;Sampled=1"; fields in any
 * order, blanks around them ignored). False when absent or not of the form above. */
bool xray_parse_root(const char *tracing, char out[XRAY_ROOT_LEN + 1]);

/* 16 bits of FNV-1a over s, folded: the fallback when there is no usable root. */
uint16_t xray_hash16(const char *s);

/* Decides for one invoke. tracing and request_id may be NULL or "". */
void xray_decide(const char *tracing, const char *request_id, struct xray_decision *d);

/* Whether a decision is "sampled" at threshold (0..65535); a negative threshold samples nothing. */
static inline bool xray_sampled(const struct xray_decision *d, int threshold)
{
    return threshold >= 0 && d->value <= (unsigned)threshold;
}

/* The boundary of a "multipart/form-data; boundary=…" content type (quoted or not). */
bool multipart_boundary(const char *content_type, size_t len, char *out, size_t cap);

/* Finds the form-data part named name in a multipart body; points *data and *data_len at its
 * content. */
bool multipart_part(const char *body, size_t len, const char *boundary, const char *name,
                    const char **data, size_t *data_len);

/* What of an upload goes to the archive: a slice of its body, and how to name it. */
struct archive_payload {
    const char *data; /* into the upload's body */
    size_t len;
    const char *ext;          /* "pprof", "jfr", "folded", … */
    const char *content_type; /* of the stored object */
};

/* A multipart pprof upload stores its `profile` part (gzipped pprof, which `go tool pprof` opens
 * as it is); a multipart JFR upload its `jfr` part; anything else is stored as received, named
 * after its `format` parameter. query is the raw query string (no '?'). */
void archive_select(const char *query, size_t query_len, const char *content_type,
                    size_t content_type_len, const char *body, size_t body_len,
                    struct archive_payload *out);

/* The object key, percent-encoded for a URL path (S3's own encoding, so that the SigV4 canonical
 * URI is the path as sent):
 *   <prefix><trace root or "untraced">/<function>/<requestId>/<seq>-<app>.<ext>
 * where app is the upload's `name` parameter without its {labels}. Characters outside
 * [A-Za-z0-9._-] in function, requestId and app become '_'. Returns a malloc'd string. */
char *archive_key(const char *prefix, const struct xray_decision *d, const char *function,
                  const char *request_id, unsigned seq, const char *app, const char *ext);

/* The default bucket of the seed: "xrayprofile-<accountId>-<region>". */
void archive_default_bucket(const char *account_id, const char *region, char *out, size_t cap);

/* The account id (12 digits) of an ARN "arn:aws:lambda:<region>:<account>:function:…", into out;
 * false when it has none. */
bool arn_account_id(const char *arn, char *out, size_t cap);

/* The PUT URL of key in bucket: path style under endpoint when one is set
 * ("<endpoint>/<bucket>/<key>"), else virtual-hosted style on AWS
 * ("https://<bucket>.s3.<region>.amazonaws.com/<key>", ".amazonaws.com.cn" in China regions,
 * path style when the bucket name has a dot, which the wildcard certificate would not cover).
 * Returns a malloc'd string. */
char *archive_url(const char *endpoint, const char *region, const char *bucket, const char *key);

/* True for a valid S3 bucket name: 3-63 of [a-z0-9.-], starting and ending with a letter or
 * digit. */
bool s3_bucket_name_ok(const char *name);

#endif
