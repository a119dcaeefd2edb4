/* The flush strategy's decisions. See include/flush_policy.h. */
#include "flush_policy.h"

#include <stdio.h>
#include <string.h>

void flush_policy_init(struct flush_policy *p, enum flush_strategy s)
{
    *p = (struct flush_policy){.strategy = s, .auto_end = true};
}

/* AUTO: END for the first invoke and while the smoothed gap stays at or above the threshold. */
static bool auto_wants_end(struct flush_policy *p, uint64_t now_ms, bool *switched)
{
    bool was = p->auto_end;
    if (p->have_prev) {
        uint64_t gap = now_ms - p->prev_invoke_ms;
        p->gap_ewma_ms = p->gap_ewma_ms ? (3 * p->gap_ewma_ms + gap) / 4 : gap;
        p->auto_end = p->gap_ewma_ms >= FLUSH_AUTO_SPARSE_MS;
    }
    *switched = was != p->auto_end;
    return p->auto_end;
}

enum flush_when flush_policy_invoke(struct flush_policy *p, const char *request_id, uint64_t now_ms,
                                    bool *end, bool *switched)
{
    *switched = false;
    bool want_end = p->strategy == FLUSH_END ||
                    (p->strategy == FLUSH_AUTO && auto_wants_end(p, now_ms, switched));
    p->have_prev = true;
    p->prev_invoke_ms = now_ms;
    snprintf(p->request_id, sizeof(p->request_id), "%s", request_id);
    p->started = strcmp(p->early_start, request_id) == 0;
    p->done = strcmp(p->early_done, request_id) == 0;
    p->early_start[0] = p->early_done[0] = '\0';
    *end = want_end && p->telemetry && !p->stream_failed;
    if (!*end || p->done)
        return FLUSH_WHEN_NOW;
    return p->runtime_dones > 0 || p->started ? FLUSH_WHEN_RUNTIME_DONE : FLUSH_WHEN_STREAM_ALIVE;
}

bool flush_policy_event(struct flush_policy *p, const struct telemetry_event *ev)
{
    bool current = ev->request_id[0] && strcmp(ev->request_id, p->request_id) == 0;
    switch (ev->kind) {
    case TELEMETRY_RUNTIME_DONE:
        p->runtime_dones++;
        if (current) {
            p->done = true;
            return true;
        }
        /* The runtime may finish before the extension has read its INVOKE. */
        snprintf(p->early_done, sizeof(p->early_done), "%s", ev->request_id);
        return false;
    case TELEMETRY_START:
        if (current)
            p->started = true;
        else /* read before its INVOKE */
            snprintf(p->early_start, sizeof(p->early_start), "%s", ev->request_id);
        return current;
    default:
        return false;
    }
}

bool flush_policy_runtime_done(const struct flush_policy *p)
{
    return p->done;
}

bool flush_policy_gave_up(struct flush_policy *p)
{
    bool first = !p->stream_failed;
    p->stream_failed = true;
    return first;
}
