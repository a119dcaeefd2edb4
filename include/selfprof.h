/* Self-profiling (PYROSCOPE_SELF_PROFILING): the extension samples its own CPU and uploads the
 * profile as application "pyroscope.lambda.extension", like the Go extension does with
 * pyroscope-go.
 *
 *   SIGPROF (100 Hz of process CPU) -> frame-pointer walk + CPU time since the last one -> ring
 *   uv timer (1 s) -> ring -> aggregate;  every interval -> symbols -> folded text -> queue
 *
 * The SIGPROF handler only writes into a preallocated single-producer/single-consumer ring (no
 * malloc, no lock, no stdio); the loop is the consumer. The upload is an ordinary relay_req: the
 * same header policy, queue bounds, retries, flush and drain as any client upload.
 *
 * Off (the default), none of this exists: no signal handler, no timer, no memory. The pure parts
 * (ring, stack walk, aggregation, symbols, folding) are exposed for the unit tests.
 *
 * Descriptors and handles: the ELF files read for symbols are opened and closed within one call;
 * the profiler keeps no descriptor. Its one uv_timer_t is closed by selfprof_close, which frees
 * the profiler in the timer's close callback. */
#ifndef PLE_SELFPROF_H
#define PLE_SELFPROF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "queue.h"
#include "rewrite.h"

#define SELFPROF_APP_NAME "pyroscope.lambda.extension"
#define SELFPROF_SPY_NAME "ple-selfprof"
#define SELFPROF_HZ 100
#define SELFPROF_PERIOD_NS (1000000000 / SELFPROF_HZ) /* what one uploaded sample stands for */
#define SELFPROF_MAX_DEPTH 64
#define SELFPROF_RING_WORDS (1u << 14) /* 128 KiB: > 2 s of samples at full depth */
/* Queue room kept for the self-profile (queue_reserve): the last periodic one and the final one
 * at shutdown, which is when the client uploads fill the queue. */
#define SELFPROF_RESERVE_COUNT 2
#define SELFPROF_RESERVE_BYTES (512u * 1024u)

/* ---- the ring: the SIGPROF handler produces, the loop consumes ----
 * A sample is one word holding its depth, one holding its weight (the main thread's CPU ns since
 * the previous sample; 0: unknown, one period), then that many program counters, leaf first.
 * head and tail only grow; the slot of index i is words[i & (cap - 1)]. */
struct selfprof_ring {
    atomic_size_t head; /* written by the producer only */
    atomic_size_t tail; /* written by the consumer only */
    atomic_size_t lost; /* samples dropped because the ring was full */
    size_t cap;         /* words, a power of two */
    uintptr_t *words;
};

/* cap_words must be a power of two. Returns 0, or -1 on allocation failure. */
int selfprof_ring_init(struct selfprof_ring *r, size_t cap_words);
void selfprof_ring_free(struct selfprof_ring *r);
/* Async-signal-safe. Appends one sample (1 <= depth <= SELFPROF_MAX_DEPTH) or, when it does not
 * fit, counts it in lost and returns false. Never blocks. */
bool selfprof_ring_put(struct selfprof_ring *r, const uintptr_t *pcs, size_t depth,
                       uintptr_t weight_ns);
/* The oldest sample, copied into pcs[SELFPROF_MAX_DEPTH] and *weight_ns; returns its depth, 0
 * when empty. */
size_t selfprof_ring_get(struct selfprof_ring *r, uintptr_t *pcs, uintptr_t *weight_ns);

/* Async-signal-safe. Walks frame records {saved fp, return address} from fp, after pc (the
 * interrupted instruction). A frame is followed only while it is aligned, strictly above the
 * previous one and inside [lo, hi); anything odd ends the walk. Returns the depth written to out
 * (at least 1: pc itself). */
size_t selfprof_walk(uintptr_t pc, uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t *out,
                     size_t max);

/* ---- the aggregate: distinct stacks (by address) and their counts ---- */
struct selfprof_stack {
    uint64_t hash; /* 0: empty slot */
    uint64_t count;
    uint32_t depth;
    uintptr_t *pcs; /* leaf first, as sampled */
};

struct selfprof_agg {
    struct selfprof_stack *slots;
    size_t cap, used; /* open addressing; cap is a power of two or 0 */
    uint64_t samples; /* sum of the counts */
    uint64_t lost;    /* samples the sampler could not record (ring full) */
    int64_t carry_ns; /* CPU time weighed but not yet a whole sample; kept across resets */
};

/* How many uploaded samples (of SELFPROF_PERIOD_NS) a sample of this weight stands for (0:
 * unknown, one period), rounded to the nearest with the rest carried to the next one, so that the
 * samples of a profile add up to the CPU time sampled. */
uint64_t selfprof_agg_weigh(struct selfprof_agg *a, uint64_t weight_ns);

/* Adds n samples of one stack. Returns 0, or -1 on allocation failure (the sample is counted as
 * lost). */
int selfprof_agg_add(struct selfprof_agg *a, const uintptr_t *pcs, size_t depth, uint64_t n);
/* Moves every sample of the ring (and its lost count) into the aggregate, weighed. */
void selfprof_agg_drain(struct selfprof_agg *a, struct selfprof_ring *r);
/* Empties the aggregate, keeping its memory. */
void selfprof_agg_reset(struct selfprof_agg *a);
void selfprof_agg_free(struct selfprof_agg *a);

/* ---- symbols ---- */
struct selfprof_symtab;

/* Reads the function symbols of the running executable (.symtab, else .dynsym) and the map of
 * loaded objects. Never NULL unless out of memory: a stripped or unreadable binary gives an
 * empty table, and names fall back to dladdr(), then "object+0xoffset", then "[unknown]". */
struct selfprof_symtab *selfprof_symtab_load(void);
void selfprof_symtab_free(struct selfprof_symtab *t);
size_t selfprof_symtab_size(const struct selfprof_symtab *t); /* function symbols read */
/* The name of the function that holds pc, written into out (always NUL-terminated, never with
 * ';' or ' ', which the folded format reserves). */
void selfprof_symtab_name(const struct selfprof_symtab *t, uintptr_t pc, char *out, size_t cap);

/* The aggregate as folded text: "root;...;leaf count\n" per distinct symbolised stack, stacks
 * that symbolise the same merged, lines sorted. A return address is looked up at pc - 1 (the
 * call instruction), the leaf at pc. Returns a malloc'd string (length in *len), or NULL on
 * allocation failure; "" (not NULL) when the aggregate is empty. */
char *selfprof_fold(const struct selfprof_agg *a, const struct selfprof_symtab *t, size_t *len);

/* The upload's request target: "/ingest?name=...&from=...&until=...&sampleRate=100&..." with the
 * name "pyroscope.lambda.extension{__session_id__=<id>,function=<function>}" URL-encoded; the
 * function label is left out when function is NULL or "". Returns a malloc'd string. */
char *selfprof_target(const char *function, const char *session_id, int64_t from_s,
                      int64_t until_s);

/* ---- the profiler on the loop ---- */
struct selfprof;

/* Installs the SIGPROF handler, starts the 100 Hz CPU timer and the upload timer (every
 * c->self_profiling_interval_ns). Returns NULL (and logs why) when it cannot. */
struct selfprof *selfprof_start(uv_loop_t *loop, const struct config *c, struct queue *q,
                                const struct header_policy *policy, const char *session_id);
/* Aggregates what was sampled so far and queues it as one upload now. final: stop sampling
 * first (the shutdown drain: what is sampled after it could never be sent). */
void selfprof_flush(struct selfprof *sp, bool final);
/* Stops sampling (SIGPROF is ignored from then on), closes the timer; memory is freed in the
 * close callback. */
void selfprof_close(struct selfprof *sp);

#endif
