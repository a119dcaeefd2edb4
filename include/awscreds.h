/* The pure half of include/credentials.h: which credentials endpoint may be used, its answer
 * parsed, and when credentials are refreshed. No I/O; unit-tested (test/unit/test_awscreds.c). */
#ifndef PLE_AWSCREDS_H
#define PLE_AWSCREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One answer of the endpoint, parsed. The strings are malloc'ed (free with
 * credentials_clear_parsed). */
struct aws_credentials {
    char *access_key, *secret_key, *token;
    int64_t expiration_s; /* epoch seconds */
};

/* Whether AWS_CONTAINER_CREDENTIALS_FULL_URI may be used, as the AWS SDKs decide: https to any
 * host; http only to a loopback address (127.0.0.0/8, ::1, localhost) or to the container
 * credential hosts 169.254.170.2, 169.254.170.23 and fd00:ec2::23. Else why says why. */
bool credentials_uri_ok(const char *uri, char *why, size_t cap);
/* Parses the endpoint's answer. Returns 0, or -1 with why saying what is wrong (never quoting the
 * body). */
int credentials_parse(const char *body, size_t len, struct aws_credentials *out, char *why,
                      size_t cap);
void credentials_clear_parsed(struct aws_credentials *a);
/* "2026-11-30T08:00:00Z" (fraction and offset allowed) -> epoch seconds, or -1. */
int64_t credentials_parse_time(const char *s);
/* When to refresh credentials fetched at now_s that expire at expiration_s, and from when they
 * are no longer used: 5 minutes and 1 minute before they expire, or, when they live shorter than
 * that, half and a quarter of their life before. */
void credentials_schedule(int64_t now_s, int64_t expiration_s, int64_t *refresh_at_s,
                          int64_t *stale_at_s);

#endif
