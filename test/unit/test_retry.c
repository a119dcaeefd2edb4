/* The retry policy: what is retried, and the full-jitter delays. */
#include <curl/curl.h>

#include "check.h"
#include "retry.h"

int main(void)
{
    CHECK(retry_is_retryable(CURLE_COULDNT_CONNECT, 0));
    CHECK(retry_is_retryable(CURLE_OPERATION_TIMEDOUT, 0));
    CHECK(retry_is_retryable(CURLE_GOT_NOTHING, 0));
    CHECK(retry_is_retryable(CURLE_RECV_ERROR, 0));
    CHECK(!retry_is_retryable(CURLE_URL_MALFORMAT, 0));
    CHECK(!retry_is_retryable(CURLE_OUT_OF_MEMORY, 0));
    const long yes[] = {408, 429, 500, 502, 503, 504};
    const long no[] = {400, 401, 403, 404, 413, 422};
    for (int i = 0; i < 6; i++) {
        CHECK(retry_is_retryable(CURLE_OK, yes[i]));
        CHECK(!retry_is_retryable(CURLE_OK, no[i]));
    }
    CHECK(retry_is_transport(CURLE_SEND_ERROR) && !retry_is_transport(CURLE_OK));

    /* Full jitter: within [0, min(cap, base * 2^(n-1))], and it does vary. */
    uint32_t state = 12345;
    const uint64_t windows[] = {250, 500, 1000, 2000, 4000, 8000, 8000, 8000};
    for (unsigned retry = 1; retry <= 8; retry++) {
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < 2000; i++) {
            uint64_t d = retry_delay_ms(retry, 0, retry_random(&state));
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        CHECK(hi <= windows[retry - 1]);
        CHECK(lo < windows[retry - 1] / 10 && hi > windows[retry - 1] * 9 / 10);
    }
    CHECK(retry_delay_ms(1, 2, 999) == 2000);                /* Retry-After is followed */
    CHECK(retry_delay_ms(5, 3600, 1) == RETRY_AFTER_MAX_MS); /* within reason */
    CHECK(retry_delay_ms(100, 0, UINT32_MAX) <= RETRY_CAP_MS);
    return check_summary("test_retry");
}
