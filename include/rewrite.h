/* The pure transformations between a request received on :4040 and the request sent to the
 * remote: URL joining, the FlameQL session-id rewrite of the `name` query parameter, and the
 * header policy. No I/O; every function is unit-tested. */
#ifndef PLE_REWRITE_H
#define PLE_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "config.h"

#define SESSION_ID_LABEL "__session_id__"

/* base (the remote address, "https://host[:port][/base][/]") joined with target (the request
 * target as received, "/path[?query]"). A base path is kept: "https://h/base" + "/ingest?x=1" is
 * "https://h/base/ingest?x=1"; exactly one '/' joins them. Returns a malloc'd string. */
char *url_join(const char *base, const char *target, size_t target_len);

/* Writes url into out with any user:password@ part replaced by "***@", for logs. */
void url_redact(const char *url, char *out, size_t cap);

/* Parses a FlameQL application key "app.name{k=v,k2=v2}" (labels optional: "app.name" alone is
 * valid), adds SESSION_ID_LABEL=session_id unless a label of that name is present, and
 * re-serialises it with the labels sorted by name. Returns a malloc'd key, or NULL when the key
 * does not parse (the caller then forwards it unchanged). */
char *flameql_add_session_id(const char *key, size_t len, const char *session_id);

/* Rewrites the `name` parameter of a raw query string (no leading '?') with
 * flameql_add_session_id: it is URL-decoded, rewritten and URL-encoded back in place; every other
 * byte of the query is kept as it is. Returns a malloc'd query, or NULL when there is nothing to
 * change (no name parameter, a name that does not parse, or one that already has the label). */
char *query_add_session_id(const char *query, size_t len, const char *session_id);

/* The value of query parameter key, decoded as Go's url.QueryUnescape does (a bad escape is kept
 * as it is), into out (truncated to cap - 1). False when the parameter is absent. */
bool query_param(const char *query, size_t len, const char *key, char *out, size_t cap);

/* 16 lowercase hex digits from 8 random bytes, NUL-terminated. */
void session_id_generate(char out[17]);

/* RFC 4648 base64 of in; returns a malloc'd NUL-terminated string. */
char *base64_encode(const unsigned char *in, size_t len);

/* A request header as the listener received it (not NUL-terminated). */
struct req_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* The part of the header policy that depends only on the configuration, computed once. */
struct header_policy {
    char *authorization; /* "Authorization: Bearer …" / "Authorization: Basic …", or NULL */
    char *tenant;        /* "X-Scope-OrgID: …", or NULL */
    char **extra;        /* "Name: value" lines from PYROSCOPE_HTTP_HEADERS */
    size_t n_extra;
};

int header_policy_init(struct header_policy *p, const struct config *c);
void header_policy_free(struct header_policy *p);

/* True for the headers a proxy must not forward: Connection, Keep-Alive, TE, Trailer,
 * Transfer-Encoding, Upgrade, Proxy-* (case-insensitive). */
bool header_is_hop_by_hop(const char *name, size_t len);

/* Builds the header list of one upload:
 * - the client's headers, minus hop-by-hop ones, the headers named in the client's Connection
 *   header, Host, Content-Length and Expect (curl writes its own);
 * - X-Forwarded-Host: the client's Host, when it sent one;
 * - the client's Authorization only when the policy has none; X-Scope-OrgID from the policy
 *   replaces the client's; PYROSCOPE_HTTP_HEADERS replace client headers of the same name, and
 *   the policy's Authorization and X-Scope-OrgID win over PYROSCOPE_HTTP_HEADERS;
 * - empty "Content-Type:", "Accept:" and "Expect:" lines that stop curl from inventing those
 *   headers when the client did not send them.
 * Returns the list (the caller frees it with curl_slist_free_all), or NULL on allocation
 * failure. */
struct curl_slist *header_policy_build(const struct header_policy *p, const struct req_header *h,
                                       size_t n);

#endif
