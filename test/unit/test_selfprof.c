/* The self-profiler's pure parts: the ring (order, full ring, lost samples), the frame-pointer
 * walk on synthetic and real stacks, the aggregation, symbolisation and folded output, and the
 * upload's request target. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <string.h>

#include <uv.h>

#include "check.h"
#include "selfprof.h"

/* Neither inlined nor cloned (a clone would be named "f.constprop.0"). */
#ifdef __clang__
#define NOINLINE __attribute__((noinline, used))
#else
#define NOINLINE __attribute__((noipa, used))
#endif

/* Functions of this binary whose addresses stand for sampled program counters. */
NOINLINE int sp_root(int x)
{
    return x * 3 + 1;
}
NOINLINE int sp_mid(int x)
{
    return x * 5 + 2;
}
NOINLINE int sp_leaf(int x)
{
    return x * 7 + 3;
}

#define PC(f, off) ((uintptr_t)(void *)(f) + (off))

static void test_ring_order_and_full(void)
{
    struct selfprof_ring r;
    CHECK(selfprof_ring_init(&r, 3) == -1); /* not a power of two */
    CHECK(selfprof_ring_init(&r, 16) == 0);
    uintptr_t a[] = {1, 2, 3}, b[] = {9}, out[SELFPROF_MAX_DEPTH], w = 0;
    CHECK(selfprof_ring_get(&r, out, &w) == 0);
    CHECK(selfprof_ring_put(&r, a, 3, 12345));
    CHECK(selfprof_ring_put(&r, b, 1, 0));
    CHECK(selfprof_ring_get(&r, out, &w) == 3 && out[0] == 1 && out[1] == 2 && out[2] == 3);
    CHECK(w == 12345);
    CHECK(selfprof_ring_get(&r, out, &w) == 1 && out[0] == 9 && w == 0);
    CHECK(selfprof_ring_get(&r, out, &w) == 0);
    /* 16 words hold three samples of depth 3 (5 words each); the fourth is lost, never
     * blocks. */
    for (int i = 0; i < 3; i++)
        CHECK(selfprof_ring_put(&r, a, 3, 0));
    CHECK(!selfprof_ring_put(&r, a, 3, 0));
    CHECK(!selfprof_ring_put(&r, b, 1, 0));
    CHECK(atomic_load(&r.lost) == 2);
    /* Depths out of range are refused and counted. */
    CHECK(!selfprof_ring_put(&r, a, 0, 0));
    uintptr_t deep[SELFPROF_MAX_DEPTH + 1] = {0};
    CHECK(!selfprof_ring_put(&r, deep, SELFPROF_MAX_DEPTH + 1, 0));
    CHECK(atomic_load(&r.lost) == 4);
    /* Reading frees room, across the wrap-around. */
    CHECK(selfprof_ring_get(&r, out, &w) == 3);
    CHECK(selfprof_ring_put(&r, b, 1, 0));
    struct selfprof_agg agg = {0};
    selfprof_agg_drain(&agg, &r); /* weight 0: one period each */
    CHECK(agg.samples == 3 && agg.lost == 4 && agg.used == 2);
    CHECK(atomic_load(&r.lost) == 0);
    CHECK(selfprof_ring_get(&r, out, &w) == 0);
    selfprof_agg_free(&agg);
    selfprof_ring_free(&r);
}

/* Samples weighed by CPU time add up to the CPU time: a signal that came late (a 35 ms burst
 * caught at one tick) stands for 3.5 periods, carried to the nearest whole sample. */
static void test_weights_add_up_to_cpu_time(void)
{
    const uint64_t P = SELFPROF_PERIOD_NS;
    struct selfprof_agg agg = {0};
    CHECK(selfprof_agg_weigh(&agg, P) == 1);
    CHECK(selfprof_agg_weigh(&agg, 0) == 1);           /* unknown: one period */
    CHECK(selfprof_agg_weigh(&agg, 35 * P / 10) == 4); /* 3.5 rounds up; -0.5 carried */
    CHECK(selfprof_agg_weigh(&agg, 35 * P / 10) == 3); /* 3.0 */
    CHECK(selfprof_agg_weigh(&agg, P / 10) == 0);      /* 0.1: carried */
    CHECK(selfprof_agg_weigh(&agg, P / 2) == 1);       /* 0.6 */
    /* Through the ring: 1000 samples of uneven weights (7 to 31 ms) total their CPU time to
     * within one period, and every stack keeps its share. */
    struct selfprof_ring r;
    CHECK(selfprof_ring_init(&r, 1 << 14) == 0);
    selfprof_agg_reset(&agg);
    agg.carry_ns = 0;
    uintptr_t s1[] = {0x1000, 0x2000}, s2[] = {0x3000};
    uint64_t total = 0, on_s1 = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t w = (uint64_t)(7 + (i * 37) % 25) * 1000000u;
        total += w;
        if (i % 4 == 0)
            on_s1 += w;
        CHECK(selfprof_ring_put(&r, i % 4 == 0 ? s1 : s2, i % 4 == 0 ? 2 : 1, (uintptr_t)w));
    }
    selfprof_agg_drain(&agg, &r);
    int64_t diff = (int64_t)(agg.samples * P) - (int64_t)total;
    CHECK(diff <= (int64_t)P && diff >= -(int64_t)P);
    uint64_t got_s1 = 0;
    for (size_t i = 0; i < agg.cap; i++)
        if (agg.slots[i].hash && agg.slots[i].depth == 2)
            got_s1 = agg.slots[i].count;
    CHECK(got_s1 * P + 250 * P / 2 >= on_s1 && got_s1 * P <= on_s1 + 250 * P / 2);
    selfprof_agg_free(&agg);
    selfprof_ring_free(&r);
}

static void test_walk_synthetic(void)
{
    /* A fake stack: frame records {saved fp, return address} at increasing addresses. */
    _Alignas(16) uintptr_t st[32] = {0};
    uintptr_t lo = (uintptr_t)&st[0], hi = (uintptr_t)&st[32];
    st[0] = (uintptr_t)&st[4], st[1] = 0x1111;
    st[4] = (uintptr_t)&st[10], st[5] = 0x2222;
    st[10] = 0, st[11] = 0x3333; /* the outermost frame: saved fp 0 */
    uintptr_t out[SELFPROF_MAX_DEPTH];
    size_t n = selfprof_walk(0xabc0, (uintptr_t)&st[0], lo, hi, out, SELFPROF_MAX_DEPTH);
    CHECK(n == 4 && out[0] == 0xabc0 && out[1] == 0x1111 && out[2] == 0x2222 && out[3] == 0x3333);
    /* The depth is bounded. */
    CHECK(selfprof_walk(0xabc0, (uintptr_t)&st[0], lo, hi, out, 2) == 2);
    CHECK(selfprof_walk(0xabc0, (uintptr_t)&st[0], lo, hi, out, 0) == 0);
    /* A misaligned, out-of-bounds or null frame pointer: the pc alone. */
    CHECK(selfprof_walk(0xabc0, (uintptr_t)&st[0] + 3, lo, hi, out, 8) == 1);
    CHECK(selfprof_walk(0xabc0, hi, lo, hi, out, 8) == 1);
    CHECK(selfprof_walk(0xabc0, (uintptr_t)&st[31], lo, hi, out, 8) == 1); /* record crosses hi */
    CHECK(selfprof_walk(0xabc0, 0, lo, hi, out, 8) == 1);
    CHECK(selfprof_walk(0xabc0, lo - 16, lo, hi, out, 8) == 1);
    /* A frame pointing down (or to itself) ends the walk after its return address. */
    st[4] = (uintptr_t)&st[0];
    CHECK(selfprof_walk(0xabc0, (uintptr_t)&st[0], lo, hi, out, 8) == 3);
    st[4] = (uintptr_t)&st[4];
    CHECK(selfprof_walk(0xabc0, (uintptr_t)&st[0], lo, hi, out, 8) == 3);
    /* A return address in the first page is not code. */
    st[4] = (uintptr_t)&st[10], st[5] = 12;
    CHECK(selfprof_walk(0xabc0, (uintptr_t)&st[0], lo, hi, out, 8) == 2);
    /* A loop can only go up, so it cannot spin: bounded by hi. */
    st[5] = 0x2222, st[10] = (uintptr_t)&st[20], st[20] = (uintptr_t)&st[24], st[21] = 0x4444;
    st[24] = (uintptr_t)&st[30], st[25] = 0x5555, st[30] = (uintptr_t)&st[31], st[31] = 0x6666;
    n = selfprof_walk(0xabc0, (uintptr_t)&st[0], lo, hi, out, SELFPROF_MAX_DEPTH);
    CHECK(n == 7 && out[5] == 0x5555 && out[6] == 0x6666);
}

static struct selfprof_symtab *syms;

/* A real walk from inside a call chain of this binary, folded and symbolised. */
static char walked[1024];

NOINLINE static int chain_leaf(int depth)
{
    pthread_attr_t a;
    void *addr;
    size_t size;
    pthread_getattr_np(pthread_self(), &a);
    pthread_attr_getstack(&a, &addr, &size);
    pthread_attr_destroy(&a);
    uintptr_t out[SELFPROF_MAX_DEPTH];
    size_t n = selfprof_walk(PC(chain_leaf, 1), (uintptr_t)__builtin_frame_address(0),
                             (uintptr_t)addr, (uintptr_t)addr + size, out, SELFPROF_MAX_DEPTH);
    struct selfprof_agg agg = {0};
    selfprof_agg_add(&agg, out, n, 1);
    size_t len;
    char *folded = selfprof_fold(&agg, syms, &len);
    snprintf(walked, sizeof(walked), "%s", folded ? folded : "");
    free(folded);
    selfprof_agg_free(&agg);
    return depth + (int)n;
}

NOINLINE static int chain_mid(int depth)
{
    return chain_leaf(depth + 1) + 1; /* + 1: not a tail call, so this frame stays */
}

NOINLINE static int chain_root(int depth)
{
    return chain_mid(depth + 1) + 1;
}

static void test_walk_real_stack(void)
{
    CHECK(chain_root(0) > 3);
    CHECK(strstr(walked, ";chain_root;chain_mid;chain_leaf 1\n") != NULL);
    CHECK(strstr(walked, "main;") != NULL);
    if (getenv("SELFPROF_VERBOSE"))
        fprintf(stderr, "walked: %s", walked);
}

static void test_symbols(void)
{
    CHECK(selfprof_symtab_size(syms) > 50);
    char name[256];
    selfprof_symtab_name(syms, PC(sp_mid, 0), name, sizeof(name));
    CHECK_STR(name, "sp_mid");
    selfprof_symtab_name(syms, PC(sp_mid, 2), name, sizeof(name));
    CHECK_STR(name, "sp_mid");
    /* A function of ple_core (static: only in .symtab). */
    selfprof_symtab_name(syms, PC(selfprof_walk, 1), name, sizeof(name));
    CHECK_STR(name, "selfprof_walk");
    /* A function of a shared library (libuv in the dynamic build; in .symtab when static). */
    selfprof_symtab_name(syms, PC(uv_version, 0), name, sizeof(name));
    CHECK_STR(name, "uv_version");
    selfprof_symtab_name(syms, 0x10, name, sizeof(name));
    CHECK_STR(name, "[unknown]");
    selfprof_symtab_name(NULL, PC(sp_mid, 0), name, sizeof(name));
    CHECK_STR(name, "[unknown]");
    /* A heap address is no code. */
    char *heap = malloc(16);
    selfprof_symtab_name(syms, (uintptr_t)heap, name, sizeof(name));
    CHECK_STR(name, "[unknown]");
    free(heap);
}

/* clock_gettime runs in the vDSO: its frames are named after it, never "[unknown]" (a static
 * musl binary's dl_iterate_phdr does not list it). */
static void test_vdso_named(void)
{
    uintptr_t vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
    if (!vdso)
        return; /* no vDSO on this system */
    char name[128];
    selfprof_symtab_name(syms, vdso + 0x100, name, sizeof(name));
    CHECK(strncmp(name, "[unknown]", 9) != 0);
}

static void test_fold(void)
{
    struct selfprof_agg agg = {0};
    size_t len = 99;
    char *out = selfprof_fold(&agg, syms, &len);
    CHECK_STR(out, "");
    CHECK(len == 0);
    free(out);

    /* Leaf first, as sampled; return addresses point after a call (pc - 1 is looked up). */
    uintptr_t s1[] = {PC(sp_leaf, 1), PC(sp_mid, 1), PC(sp_root, 1)};
    uintptr_t s2[] = {PC(sp_leaf, 2), PC(sp_mid, 3), PC(sp_root, 2)}; /* same functions */
    uintptr_t s3[] = {PC(sp_mid, 1), PC(sp_root, 1)};
    uintptr_t s4[] = {0x10, PC(sp_root, 1)}; /* an unknown leaf */
    uintptr_t s5[] = {PC(sp_leaf, 1)};
    CHECK(selfprof_agg_add(&agg, s1, 3, 1) == 0);
    CHECK(selfprof_agg_add(&agg, s1, 3, 2) == 0); /* the same addresses: one entry */
    CHECK(selfprof_agg_add(&agg, s2, 3, 4) == 0);
    CHECK(selfprof_agg_add(&agg, s3, 2, 1) == 0);
    CHECK(selfprof_agg_add(&agg, s4, 2, 1) == 0);
    CHECK(selfprof_agg_add(&agg, s5, 1, 5) == 0);
    CHECK(agg.used == 5 && agg.samples == 14);
    out = selfprof_fold(&agg, syms, &len);
    CHECK_STR(out, "sp_leaf 5\n"
                   "sp_root;[unknown] 1\n"
                   "sp_root;sp_mid 1\n"
                   "sp_root;sp_mid;sp_leaf 7\n");
    CHECK(out && len == strlen(out));
    free(out);

    /* Many distinct stacks: the table grows and keeps every count. */
    selfprof_agg_reset(&agg);
    CHECK(agg.used == 0 && agg.samples == 0);
    for (uintptr_t i = 0; i < 2000; i++) {
        uintptr_t s[] = {0x100000 + i, PC(sp_root, 1)};
        selfprof_agg_add(&agg, s, 2, 1);
        selfprof_agg_add(&agg, s, 2, 1);
    }
    CHECK(agg.used == 2000 && agg.samples == 4000);
    out = selfprof_fold(&agg, syms, &len);
    CHECK_STR(out, "sp_root;[unknown] 4000\n"); /* unknown leaves all merge */
    free(out);
    selfprof_agg_free(&agg);
}

static void test_target(void)
{
    char *t = selfprof_target("my-fn", "0123456789abcdef", 10, 20);
    CHECK_STR(t, "/ingest?name=pyroscope.lambda.extension%7B__session_id__%3D0123456789abcdef%2C"
                 "function%3Dmy-fn%7D&from=10&until=20&sampleRate=100&spyName=ple-selfprof"
                 "&units=samples&aggregationType=sum&format=folded");
    free(t);
    t = selfprof_target(NULL, "0123456789abcdef", 1, 2);
    CHECK(t && strncmp(t,
                       "/ingest?name=pyroscope.lambda.extension%7B__session_id__%3D"
                       "0123456789abcdef%7D&from=1&until=2&",
                       86) == 0);
    free(t);
    t = selfprof_target("", NULL, 1, 2);
    CHECK(t && strncmp(t, "/ingest?name=pyroscope.lambda.extension&from=1&", 47) == 0);
    free(t);
    /* Characters that would break the key are replaced. */
    t = selfprof_target("a b{c},d=e", NULL, 1, 2);
    CHECK(t && strstr(t, "name=pyroscope.lambda.extension%7Bfunction%3Da_b_c__d_e%7D&") != NULL);
    free(t);
}

int main(void)
{
    syms = selfprof_symtab_load();
    CHECK(syms != NULL);
    test_ring_order_and_full();
    test_weights_add_up_to_cpu_time();
    test_walk_synthetic();
    test_walk_real_stack();
    test_symbols();
    test_vdso_named();
    test_fold();
    test_target();
    selfprof_symtab_free(syms);
    return check_summary("test_selfprof");
}
