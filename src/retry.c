/* See include/retry.h. */
#include "retry.h"

#include <curl/curl.h>

bool retry_is_transport(int curl_code)
{
    switch (curl_code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

bool retry_is_retryable(int curl_code, long status)
{
    if (curl_code != CURLE_OK)
        return retry_is_transport(curl_code);
    return status == 408 || status == 429 || status >= 500;
}

uint64_t retry_delay_ms(unsigned retry, long retry_after_s, uint32_t random)
{
    if (retry_after_s > 0) {
        uint64_t ms = (uint64_t)retry_after_s * 1000;
        return ms < RETRY_AFTER_MAX_MS ? ms : RETRY_AFTER_MAX_MS;
    }
    uint64_t window = RETRY_BASE_MS;
    for (unsigned i = 1; i < retry && window < RETRY_CAP_MS; i++)
        window *= 2;
    if (window > RETRY_CAP_MS)
        window = RETRY_CAP_MS;
    return random % (window + 1);
}

uint32_t retry_random(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}
