/* When and how soon a failed upload is tried again. Pure, unit-tested.
 *
 * Retried: what can succeed later — a transport failure (refused, reset, timed out, nothing
 * received), and the answers 408, 429 and 5xx. Not retried: every other 4xx (bad request, bad
 * credentials: trying again cannot help, the user must see it) and errors of our own making.
 * Delays: full jitter, uniform in [0, min(cap, base * 2^(n-1))] before retry n, unless the remote
 * said Retry-After, which is followed (up to RETRY_AFTER_MAX_MS). */
#ifndef PLE_RETRY_H
#define PLE_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#define RETRY_BASE_MS 250
#define RETRY_CAP_MS 8000
#define RETRY_AFTER_MAX_MS 60000

/* curl_code is a CURLcode; status is the HTTP status, 0 when none was received. */
bool retry_is_retryable(int curl_code, long status);
/* The failure happened on the connection itself: the retry must use a fresh one. */
bool retry_is_transport(int curl_code);
/* The delay before retry number `retry` (1 for the first), given a uniform random number and the
 * remote's Retry-After in seconds (<= 0 when absent). */
uint64_t retry_delay_ms(unsigned retry, long retry_after_s, uint32_t random);
/* xorshift32: cheap, good enough for jitter; state must not be 0. */
uint32_t retry_random(uint32_t *state);

#endif
