/* Self-profiling: SIGPROF sampler, ring, aggregation, ELF symbols, folded upload. See
 * include/selfprof.h. */
#include "selfprof.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buf.h"
#include "log.h"
#include "util.h"

#if defined(__x86_64__) || defined(__aarch64__)
#define SELFPROF_SUPPORTED 1
#else
#define SELFPROF_SUPPORTED 0
#endif

#define DRAIN_PERIOD_MS 1000 /* the ring holds more than 2 s of samples: drain every second */
#define MIN_INTERVAL_MS 100
#define FRAME_NAME_MAX 256

/* ---- the ring ---- */

int selfprof_ring_init(struct selfprof_ring *r, size_t cap_words)
{
    if (cap_words == 0 || (cap_words & (cap_words - 1)) != 0)
        return -1;
    r->words = calloc(cap_words, sizeof(*r->words));
    if (!r->words)
        return -1;
    r->cap = cap_words;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->lost, 0);
    return 0;
}

void selfprof_ring_free(struct selfprof_ring *r)
{
    free(r->words);
    r->words = NULL;
    r->cap = 0;
}

bool selfprof_ring_put(struct selfprof_ring *r, const uintptr_t *pcs, size_t depth,
                       uintptr_t weight_ns)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t need = depth + 2, mask = r->cap - 1;
    if (depth == 0 || depth > SELFPROF_MAX_DEPTH || r->cap - (head - tail) < need) {
        atomic_fetch_add_explicit(&r->lost, 1, memory_order_relaxed);
        return false;
    }
    r->words[head & mask] = depth;
    r->words[(head + 1) & mask] = weight_ns;
    for (size_t i = 0; i < depth; i++)
        r->words[(head + 2 + i) & mask] = pcs[i];
    /* Publishes the words written above to the consumer. */
    atomic_store_explicit(&r->head, head + need, memory_order_release);
    return true;
}

size_t selfprof_ring_get(struct selfprof_ring *r, uintptr_t *pcs, uintptr_t *weight_ns)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t mask = r->cap - 1;
    if (tail == head)
        return 0;
    size_t depth = r->words[tail & mask];
    if (depth == 0 || depth > SELFPROF_MAX_DEPTH || depth + 2 > head - tail) {
        /* Cannot happen with one producer; if it does, drop everything rather than misread. */
        atomic_store_explicit(&r->tail, head, memory_order_release);
        return 0;
    }
    *weight_ns = r->words[(tail + 1) & mask];
    for (size_t i = 0; i < depth; i++)
        pcs[i] = r->words[(tail + 2 + i) & mask];
    /* Hands the slots back to the producer only once they are read. */
    atomic_store_explicit(&r->tail, tail + depth + 2, memory_order_release);
    return depth;
}

/* ---- the stack walk ---- */

/* The walk reads stack words that ASan may consider poisoned (another frame's slots): it is
 * bounded by the checks below, not by the sanitizers. */
__attribute__((no_sanitize("address", "undefined"))) size_t
selfprof_walk(uintptr_t pc, uintptr_t fp, uintptr_t lo, uintptr_t hi, uintptr_t *out, size_t max)
{
    size_t n = 0;
    if (max == 0)
        return 0;
    out[n++] = pc;
    const uintptr_t record = 2 * sizeof(uintptr_t); /* {saved fp, return address} */
    while (n < max) {
        if (fp % sizeof(uintptr_t) != 0 || fp < lo || hi < record || fp > hi - record)
            break;
        const uintptr_t *frame = (const uintptr_t *)fp;
        uintptr_t next = frame[0], ret = frame[1];
        if (ret < 4096)
            break; /* no code lives in the first page: the walk left the frames */
        out[n++] = ret;
        if (next <= fp)
            break; /* stacks grow down: callers' frames are strictly above */
        fp = next;
    }
    return n;
}

/* ---- the sampler (signal side) ---- */

static struct {
    _Atomic(struct selfprof_ring *) ring; /* NULL: record nothing */
    uintptr_t stack_lo, stack_hi;         /* the main thread's stack */
    pid_t tid;                            /* the main thread (the loop) */
    uint64_t cpu_ns;                      /* the main thread's CPU clock at its last sample */
    atomic_size_t other_thread;           /* samples that hit another thread: not recorded */
} sampler;

static bool context_regs(void *ctx, uintptr_t *pc, uintptr_t *fp)
{
#if defined(__x86_64__)
    const ucontext_t *uc = ctx;
    *pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    *fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
    return true;
#elif defined(__aarch64__)
    const ucontext_t *uc = ctx;
    *pc = (uintptr_t)uc->uc_mcontext.pc;
    *fp = (uintptr_t)uc->uc_mcontext.regs[29];
    return true;
#else
    (void)ctx;
    (void)pc;
    (void)fp;
    return false;
#endif
}

/* The calling thread's CPU time in ns, 0 if unknown. Async-signal-safe (clock_gettime is). */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Async-signal-safe: a syscall, a bounded walk and a ring write; errno is preserved. Samples of
 * other threads (curl's resolver thread in a dynamic build) are counted, not walked: their stack
 * bounds are unknown, and the ring has one producer.
 *
 * Each sample carries the main thread's CPU time since the previous one: the kernel checks
 * ITIMER_PROF on its scheduler tick, so a loop that runs in bursts shorter than a tick gets far
 * fewer than 100 signals per CPU second (0.6x-0.7x measured under load), and counting signals
 * would understate the CPU. Weighted, the profile's total is the thread's CPU time. */
static void on_sigprof(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)si;
    int saved_errno = errno;
    struct selfprof_ring *r = atomic_load_explicit(&sampler.ring, memory_order_acquire);
    uintptr_t pc, fp;
    if ((pid_t)syscall(SYS_gettid) != sampler.tid) {
        atomic_fetch_add_explicit(&sampler.other_thread, 1, memory_order_relaxed);
    } else if (r && context_regs(ctx, &pc, &fp)) {
        uintptr_t pcs[SELFPROF_MAX_DEPTH];
        size_t n =
            selfprof_walk(pc, fp, sampler.stack_lo, sampler.stack_hi, pcs, SELFPROF_MAX_DEPTH);
        uint64_t now = thread_cpu_ns();
        uint64_t weight = now > sampler.cpu_ns && sampler.cpu_ns ? now - sampler.cpu_ns : 0;
        sampler.cpu_ns = now;
        selfprof_ring_put(r, pcs, n, (uintptr_t)weight);
    }
    errno = saved_errno;
}

static void main_stack_bounds(uintptr_t *lo, uintptr_t *hi)
{
    pthread_attr_t a;
    void *addr = NULL;
    size_t size = 0;
    *lo = *hi = 0;
    if (pthread_getattr_np(pthread_self(), &a) != 0)
        return;
    if (pthread_attr_getstack(&a, &addr, &size) == 0) {
        *lo = (uintptr_t)addr;
        *hi = (uintptr_t)addr + size;
    }
    pthread_attr_destroy(&a);
}

/* Returns 0, or a negative errno with nothing left installed. */
static int sampler_start(struct selfprof_ring *r)
{
    main_stack_bounds(&sampler.stack_lo, &sampler.stack_hi);
    sampler.tid = (pid_t)syscall(SYS_gettid);
    sampler.cpu_ns = thread_cpu_ns();
    atomic_store(&sampler.other_thread, 0);
    atomic_store(&sampler.ring, r);
    struct sigaction sa = {.sa_sigaction = on_sigprof, .sa_flags = SA_SIGINFO | SA_RESTART};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPROF, &sa, NULL) != 0) {
        atomic_store(&sampler.ring, NULL);
        return -errno;
    }
    const struct timeval tick = {0, 1000000 / SELFPROF_HZ};
    const struct itimerval it = {tick, tick};
    if (setitimer(ITIMER_PROF, &it, NULL) != 0) {
        int err = -errno;
        signal(SIGPROF, SIG_IGN);
        atomic_store(&sampler.ring, NULL);
        return err;
    }
    return 0;
}

static void sampler_stop(void)
{
    const struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
    /* Ignored, not SIG_DFL: a SIGPROF already pending would otherwise kill the process. */
    signal(SIGPROF, SIG_IGN);
    atomic_store(&sampler.ring, NULL);
}

/* ---- the aggregate ---- */

static uint64_t stack_hash(const uintptr_t *pcs, size_t depth)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < depth; i++) {
        h ^= (uint64_t)pcs[i];
        h *= 0x100000001b3u;
        h ^= h >> 29;
    }
    return h ? h : 1;
}

static struct selfprof_stack *agg_find(struct selfprof_stack *slots, size_t cap, uint64_t h,
                                       const uintptr_t *pcs, size_t depth)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        struct selfprof_stack *s = &slots[i];
        if (!s->hash ||
            (s->hash == h && s->depth == depth && memcmp(s->pcs, pcs, depth * sizeof(*pcs)) == 0))
            return s;
    }
}

static int agg_grow(struct selfprof_agg *a)
{
    size_t cap = a->cap ? a->cap * 2 : 256;
    struct selfprof_stack *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -1;
    for (size_t i = 0; i < a->cap; i++) {
        struct selfprof_stack *s = &a->slots[i];
        if (s->hash)
            *agg_find(slots, cap, s->hash, s->pcs, s->depth) = *s;
    }
    free(a->slots);
    a->slots = slots;
    a->cap = cap;
    return 0;
}

int selfprof_agg_add(struct selfprof_agg *a, const uintptr_t *pcs, size_t depth, uint64_t n)
{
    if ((a->used + 1) * 2 > a->cap && agg_grow(a) != 0) {
        a->lost += n;
        return -1;
    }
    uint64_t h = stack_hash(pcs, depth);
    struct selfprof_stack *s = agg_find(a->slots, a->cap, h, pcs, depth);
    if (!s->hash) {
        uintptr_t *copy = malloc(depth * sizeof(*pcs));
        if (!copy) {
            a->lost += n;
            return -1;
        }
        memcpy(copy, pcs, depth * sizeof(*pcs));
        *s = (struct selfprof_stack){.hash = h, .depth = (uint32_t)depth, .pcs = copy};
        a->used++;
    }
    s->count += n;
    a->samples += n;
    return 0;
}

uint64_t selfprof_agg_weigh(struct selfprof_agg *a, uint64_t weight_ns)
{
    const int64_t period = SELFPROF_PERIOD_NS;
    a->carry_ns += weight_ns ? (int64_t)weight_ns : period;
    int64_t n = (a->carry_ns + period / 2) / period; /* to the nearest; the rest is carried */
    if (n <= 0)
        return 0;
    a->carry_ns -= n * period;
    return (uint64_t)n;
}

void selfprof_agg_drain(struct selfprof_agg *a, struct selfprof_ring *r)
{
    uintptr_t pcs[SELFPROF_MAX_DEPTH], weight;
    size_t depth;
    while ((depth = selfprof_ring_get(r, pcs, &weight)) != 0) {
        uint64_t n = selfprof_agg_weigh(a, weight);
        if (n)
            selfprof_agg_add(a, pcs, depth, n);
    }
    a->lost += atomic_exchange_explicit(&r->lost, 0, memory_order_relaxed);
}

void selfprof_agg_reset(struct selfprof_agg *a)
{
    for (size_t i = 0; i < a->cap; i++) {
        free(a->slots[i].pcs);
        a->slots[i] = (struct selfprof_stack){0};
    }
    a->used = 0;
    a->samples = a->lost = 0;
}

void selfprof_agg_free(struct selfprof_agg *a)
{
    selfprof_agg_reset(a);
    free(a->slots);
    *a = (struct selfprof_agg){0};
}

/* ---- symbols ---- */

struct sym {
    uintptr_t start, size;
    const char *name;
};

struct object {
    uintptr_t lo, hi; /* the loaded segments' span */
    uintptr_t base;   /* load bias: file offsets are relative to it */
    char name[64];    /* basename */
};

struct selfprof_symtab {
    struct sym *syms;
    size_t n;
    char *strtab;
    struct object *objs;
    size_t n_objs, cap_objs;
};

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int add_object(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    struct selfprof_symtab *t = ud;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t s = info->dlpi_addr + ph->p_vaddr;
        lo = s < lo ? s : lo;
        hi = s + ph->p_memsz > hi ? s + ph->p_memsz : hi;
    }
    if (lo >= hi)
        return 0;
    if (t->n_objs == t->cap_objs) {
        size_t cap = t->cap_objs ? t->cap_objs * 2 : 16;
        struct object *objs = realloc(t->objs, cap * sizeof(*objs));
        if (!objs)
            return 1;
        t->objs = objs;
        t->cap_objs = cap;
    }
    struct object *o = &t->objs[t->n_objs];
    *o = (struct object){lo, hi, info->dlpi_addr, ""};
    const char *name = info->dlpi_name;
    char exe[512];
    if (t->n_objs == 0 && (!name || !*name)) { /* the first object is the executable itself */
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[n > 0 ? n : 0] = '\0';
        name = exe;
    }
    snprintf(o->name, sizeof(o->name), "%.63s", name && *name ? base_name(name) : "[anon]");
    t->n_objs++;
    return 0;
}

static bool read_exact(int fd, void *p, size_t n, off_t off)
{
    while (n) {
        ssize_t r = pread(fd, p, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p = (char *)p + r;
        n -= (size_t)r;
        off += r;
    }
    return true;
}

/* A section's bytes, malloc'd with one NUL after them; NULL when unreadable or absurd. */
static void *read_section(int fd, const ElfW(Shdr) * sh)
{
    if (sh->sh_type == SHT_NOBITS || sh->sh_size > (256u << 20))
        return NULL;
    char *p = malloc(sh->sh_size + 1);
    if (p && !read_exact(fd, p, sh->sh_size, (off_t)sh->sh_offset)) {
        free(p);
        return NULL;
    }
    if (p)
        p[sh->sh_size] = '\0';
    return p;
}

#if __ELF_NATIVE_CLASS == 64
#define SYM_TYPE(info) ELF64_ST_TYPE(info)
#else
#define SYM_TYPE(info) ELF32_ST_TYPE(info)
#endif

static void add_symbols(struct selfprof_symtab *t, const ElfW(Sym) * syms, size_t n,
                        size_t strtab_size, uintptr_t bias)
{
    t->syms = malloc((n ? n : 1) * sizeof(*t->syms));
    if (!t->syms)
        return;
    for (size_t i = 0; i < n; i++) {
        const ElfW(Sym) *s = &syms[i];
        int type = SYM_TYPE(s->st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s->st_shndx == SHN_UNDEF ||
            !s->st_value || s->st_name >= strtab_size || !t->strtab[s->st_name])
            continue;
        t->syms[t->n++] = (struct sym){bias + s->st_value, s->st_size, t->strtab + s->st_name};
    }
}

/* Reads .symtab (or .dynsym when stripped) and its string table. */
static void load_elf_symbols(struct selfprof_symtab *t, const char *path, uintptr_t bias)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ElfW(Ehdr) eh;
    ElfW(Shdr) *sh = NULL;
    ElfW(Sym) *syms = NULL;
    if (!read_exact(fd, &eh, sizeof(eh), 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
        eh.e_shentsize != sizeof(*sh) || eh.e_shnum == 0)
        goto out;
    sh = malloc(eh.e_shnum * sizeof(*sh));
    if (!sh || !read_exact(fd, sh, eh.e_shnum * sizeof(*sh), (off_t)eh.e_shoff))
        goto out;
    const ElfW(Shdr) *symsec = NULL;
    for (int want = SHT_SYMTAB; !symsec; want = SHT_DYNSYM) {
        for (size_t i = 0; i < eh.e_shnum && !symsec; i++)
            if (sh[i].sh_type == (ElfW(Word))want && sh[i].sh_link < eh.e_shnum)
                symsec = &sh[i];
        if (want == SHT_DYNSYM)
            break;
    }
    if (!symsec || symsec->sh_entsize != sizeof(ElfW(Sym)))
        goto out;
    syms = read_section(fd, symsec);
    t->strtab = read_section(fd, &sh[symsec->sh_link]);
    if (syms && t->strtab)
        add_symbols(t, syms, symsec->sh_size / sizeof(*syms), sh[symsec->sh_link].sh_size, bias);
out:
    free(syms);
    free(sh);
    close(fd);
}

static int sym_cmp(const void *a, const void *b)
{
    const struct sym *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->size > y->size ? -1 : x->size < y->size; /* the largest alias first */
}

/* Sorted by address, one symbol per address. */
static void sort_symbols(struct selfprof_symtab *t)
{
    if (!t->n)
        return;
    qsort(t->syms, t->n, sizeof(*t->syms), sym_cmp);
    size_t w = 1;
    for (size_t i = 1; i < t->n; i++)
        if (t->syms[i].start != t->syms[w - 1].start)
            t->syms[w++] = t->syms[i];
    t->n = w;
}

/* The vDSO (clock_gettime and friends run there): glibc's dl_iterate_phdr lists it, a static
 * musl binary's does not, so it is added from the auxiliary vector, as object "[vdso]". */
static void add_vdso(struct selfprof_symtab *t)
{
    uintptr_t base = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
    for (size_t i = 0; base && i < t->n_objs; i++)
        if (base >= t->objs[i].lo && base < t->objs[i].hi)
            return; /* listed already */
    if (!base)
        return;
    const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)base;
    struct dl_phdr_info info = {.dlpi_addr = base,
                                .dlpi_name = "[vdso]",
                                .dlpi_phdr = (const ElfW(Phdr) *)(base + eh->e_phoff),
                                .dlpi_phnum = eh->e_phnum};
    for (int i = 0; i < info.dlpi_phnum; i++)
        if (info.dlpi_phdr[i].p_type == PT_LOAD && info.dlpi_phdr[i].p_offset == 0)
            info.dlpi_addr =
                base - info.dlpi_phdr[i].p_vaddr; /* the ELF header is mapped at base */
    add_object(&info, sizeof(info), t);
}

struct selfprof_symtab *selfprof_symtab_load(void)
{
    struct selfprof_symtab *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    dl_iterate_phdr(add_object, t);
    add_vdso(t);
    load_elf_symbols(t, "/proc/self/exe", t->n_objs ? t->objs[0].base : 0);
    sort_symbols(t);
    return t;
}

void selfprof_symtab_free(struct selfprof_symtab *t)
{
    if (!t)
        return;
    free(t->syms);
    free(t->strtab);
    free(t->objs);
    free(t);
}

size_t selfprof_symtab_size(const struct selfprof_symtab *t)
{
    return t ? t->n : 0;
}

static const struct sym *find_sym(const struct selfprof_symtab *t, uintptr_t pc)
{
    size_t lo = 0, hi = t->n; /* the last symbol that starts at or before pc */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->syms[mid].start <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const struct sym *s = &t->syms[lo - 1];
    /* A symbol without a size only covers up to the next one, and only inside the executable. */
    uintptr_t end = s->size ? s->start + s->size : (lo < t->n ? t->syms[lo].start : s->start + 1);
    if (!s->size && t->n_objs && pc >= t->objs[0].hi)
        return NULL;
    return pc < end ? s : NULL;
}

static const struct object *find_object(const struct selfprof_symtab *t, uintptr_t pc)
{
    for (size_t i = 0; i < t->n_objs; i++)
        if (pc >= t->objs[i].lo && pc < t->objs[i].hi)
            return &t->objs[i];
    return NULL;
}

/* ';' separates frames and ' ' the count in the folded format. */
static void clean_name(char *s)
{
    for (; *s; s++)
        if (*s == ';' || *s == ' ' || *s == '\n' || *s == '\t')
            *s = '_';
}

void selfprof_symtab_name(const struct selfprof_symtab *t, uintptr_t pc, char *out, size_t cap)
{
    const struct sym *s = t ? find_sym(t, pc) : NULL;
    const struct object *o = t ? find_object(t, pc) : NULL;
    if (s) {
        snprintf(out, cap, "%s", s->name);
    } else {
#ifdef __GLIBC__
        /* A shared library (the dynamic build): its exported symbols, with their sizes, so that
         * a local function is not named after the exported one before it. */
        Dl_info info;
        const ElfW(Sym) *es = NULL;
        if (dladdr1((void *)pc, &info, (void **)&es, RTLD_DL_SYMENT) && info.dli_sname && es &&
            (uintptr_t)info.dli_saddr <= pc &&
            (es->st_size == 0 || pc < (uintptr_t)info.dli_saddr + es->st_size)) {
            snprintf(out, cap, "%s", info.dli_sname);
            clean_name(out);
            return;
        }
#endif
        if (o)
            snprintf(out, cap, "%s+0x%" PRIxPTR, o->name, pc - o->base);
        else
            snprintf(out, cap, "[unknown]");
    }
    clean_name(out);
}

/* ---- folding ---- */

struct folded {
    char *stack;
    uint64_t count;
};

static int folded_cmp(const void *a, const void *b)
{
    return strcmp(((const struct folded *)a)->stack, ((const struct folded *)b)->stack);
}

/* "root;...;leaf" of one sampled stack (leaf first in pcs). */
static char *fold_stack(const struct selfprof_stack *s, const struct selfprof_symtab *t)
{
    struct buf b = {0};
    char name[FRAME_NAME_MAX];
    for (size_t i = s->depth; i-- > 0;) {
        /* A return address is the instruction after the call: the call is at pc - 1. */
        selfprof_symtab_name(t, i ? s->pcs[i] - 1 : s->pcs[i], name, sizeof(name));
        if ((i + 1 < s->depth && buf_append(&b, ";", 1, SIZE_MAX) != 0) ||
            buf_append(&b, name, strlen(name), SIZE_MAX) != 0) {
            buf_free(&b);
            return NULL;
        }
    }
    return b.p;
}

static char *join_folded(struct folded *f, size_t n, size_t *len)
{
    struct buf out = {0};
    bool ok = buf_append(&out, "", 0, SIZE_MAX) == 0;
    for (size_t i = 0; i < n && ok;) {
        uint64_t count = 0;
        size_t j = i;
        for (; j < n && strcmp(f[j].stack, f[i].stack) == 0; j++)
            count += f[j].count;
        char num[32];
        int nl = snprintf(num, sizeof(num), " %llu\n", (unsigned long long)count);
        ok = buf_append(&out, f[i].stack, strlen(f[i].stack), SIZE_MAX) == 0 &&
             buf_append(&out, num, (size_t)nl, SIZE_MAX) == 0;
        i = j;
    }
    if (!ok) {
        buf_free(&out);
        return NULL;
    }
    *len = out.len;
    return out.p;
}

char *selfprof_fold(const struct selfprof_agg *a, const struct selfprof_symtab *t, size_t *len)
{
    struct folded *f = calloc(a->used ? a->used : 1, sizeof(*f));
    if (!f)
        return NULL;
    size_t n = 0;
    bool ok = true;
    for (size_t i = 0; i < a->cap && ok; i++) {
        const struct selfprof_stack *s = &a->slots[i];
        if (!s->hash)
            continue;
        f[n] = (struct folded){fold_stack(s, t), s->count};
        ok = f[n++].stack != NULL;
    }
    char *out = NULL;
    if (ok) {
        /* Different addresses in the same functions fold to the same line: sort, then merge. */
        qsort(f, n, sizeof(*f), folded_cmp);
        out = join_folded(f, n, len);
    }
    for (size_t i = 0; i < n; i++)
        free(f[i].stack);
    free(f);
    return out;
}

/* ---- the upload ---- */

char *selfprof_target(const char *function, const char *session_id, int64_t from_s, int64_t until_s)
{
    char fn[128], key[256];
    /* Lambda names are [A-Za-z0-9_-]; anything else could break the FlameQL key. */
    ple_copy_name(fn, sizeof(fn), function, SIZE_MAX);
    if (*fn)
        snprintf(key, sizeof(key), SELFPROF_APP_NAME "{function=%s}", fn);
    else
        snprintf(key, sizeof(key), SELFPROF_APP_NAME);
    char *labelled = session_id ? flameql_add_session_id(key, strlen(key), session_id) : NULL;
    char *name = curl_easy_escape(NULL, labelled ? labelled : key, 0);
    free(labelled);
    if (!name)
        return NULL;
    char *out = NULL;
    if (asprintf(&out,
                 "/ingest?name=%s&from=%lld&until=%lld&sampleRate=%d&spyName=" SELFPROF_SPY_NAME
                 "&units=samples&aggregationType=sum&format=folded",
                 name, (long long)from_s, (long long)until_s, SELFPROF_HZ) < 0)
        out = NULL;
    curl_free(name);
    return out;
}

struct selfprof {
    uv_loop_t *loop;
    uv_timer_t timer;
    const struct config *cfg;
    struct queue *q;
    const struct header_policy *policy;
    const char *session_id;
    char function[128];
    struct selfprof_ring ring;
    struct selfprof_agg agg;
    struct selfprof_symtab *syms; /* loaded at the first upload */
    uint64_t interval_ms;
    uint64_t period_start_ms; /* uv_now() */
    int64_t from_s;           /* unix seconds: the start of the profile being gathered */
    bool sampling;
    bool closing;
};

static struct relay_req *build_upload(struct selfprof *sp, char *body, size_t len, int64_t until)
{
    struct relay_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    char *target = selfprof_target(sp->function, sp->session_id, sp->from_s, until);
    const struct req_header ct = {"Content-Type", 12, "text/plain", 10};
    r->method = strdup("POST");
    r->url = target ? url_join(sp->cfg->remote_address, target, strlen(target)) : NULL;
    r->headers = header_policy_build(sp->policy, &ct, 1);
    r->body = body;
    r->body_len = len;
    r->reserved = true; /* the queue keeps room for it when clients have filled the rest */
    free(target);
    if (!r->method || !r->url || !r->headers) {
        r->body = NULL; /* still the caller's */
        relay_req_free(r);
        return NULL;
    }
    return r;
}

void selfprof_flush(struct selfprof *sp, bool final)
{
    if (!sp || sp->closing)
        return;
    if (final && sp->sampling) {
        sampler_stop();
        sp->sampling = false;
        uv_timer_stop(&sp->timer);
    }
    selfprof_agg_drain(&sp->agg, &sp->ring);
    int64_t now = (int64_t)time(NULL);
    int64_t until = now > sp->from_s ? now : sp->from_s + 1;
    sp->period_start_ms = uv_now(sp->loop);
    uint64_t samples = sp->agg.samples, lost = sp->agg.lost;
    size_t other = atomic_exchange(&sampler.other_thread, 0);
    if (lost || other)
        log_debug("self-profile: samples not recorded",
                  LKI("lost_ring_full", lost) LKI("other_thread", other));
    if (!samples) {
        sp->from_s = now;
        selfprof_agg_reset(&sp->agg);
        return;
    }
    if (!sp->syms && (sp->syms = selfprof_symtab_load()))
        log_debug("self-profile: symbols read", LKI("functions", selfprof_symtab_size(sp->syms)));
    size_t len = 0;
    char *body = selfprof_fold(&sp->agg, sp->syms, &len);
    size_t stacks = sp->agg.used;
    selfprof_agg_reset(&sp->agg);
    struct relay_req *r = body ? build_upload(sp, body, len, until) : NULL;
    sp->from_s = now;
    if (!r) {
        free(body);
        log_error("out of memory building the self-profile; dropped", LKI("samples", samples));
        return;
    }
    if (queue_push(sp->q, r) != 0) {
        log_warn("relay queue full: self-profile dropped",
                 LKI("samples", samples) LKI("bytes", len) LKI("pending", queue_pending(sp->q)));
        relay_req_free(r);
        return;
    }
    log_debug("self-profile queued", LKI("samples", samples) LKI("stacks", stacks) LKI("bytes", len)
                                         LKS("final", final ? "true" : "false"));
}

static void on_tick(uv_timer_t *t)
{
    struct selfprof *sp = t->data;
    selfprof_agg_drain(&sp->agg, &sp->ring);
    if (uv_now(sp->loop) - sp->period_start_ms >= sp->interval_ms)
        selfprof_flush(sp, false);
}

static void selfprof_free(struct selfprof *sp)
{
    selfprof_ring_free(&sp->ring);
    selfprof_agg_free(&sp->agg);
    selfprof_symtab_free(sp->syms);
    free(sp);
}

struct selfprof *selfprof_start(uv_loop_t *loop, const struct config *c, struct queue *q,
                                const struct header_policy *policy, const char *session_id)
{
    if (!SELFPROF_SUPPORTED) {
        log_warn("PYROSCOPE_SELF_PROFILING=true: not supported on this architecture", );
        return NULL;
    }
    if (atomic_load(&sampler.ring)) /* one sampler per process: SIGPROF is process-wide */
        return NULL;
    struct selfprof *sp = calloc(1, sizeof(*sp));
    if (!sp || selfprof_ring_init(&sp->ring, SELFPROF_RING_WORDS) != 0) {
        free(sp);
        log_error("out of memory: self-profiling not started", );
        return NULL;
    }
    *sp = (struct selfprof){.loop = loop,
                            .cfg = c,
                            .q = q,
                            .policy = policy,
                            .session_id = session_id,
                            .ring = sp->ring};
    const char *fn = getenv("AWS_LAMBDA_FUNCTION_NAME");
    snprintf(sp->function, sizeof(sp->function), "%s", fn ? fn : "");
    int64_t ms = c->self_profiling_interval_ns / 1000000;
    sp->interval_ms = (uint64_t)(ms < MIN_INTERVAL_MS ? MIN_INTERVAL_MS : ms);
    int err = sampler_start(&sp->ring);
    if (err) {
        log_error("cannot start self-profiling", LKS("error", strerror(-err)));
        selfprof_free(sp);
        return NULL;
    }
    sp->sampling = true;
    /* The reserve never takes from what a client upload of PYROSCOPE_MAX_BODY_BYTES needs:
     * config keeps max_body + overhead <= max_bytes, and a body that size must still fit. */
    size_t spare = q->max_bytes - (c->max_body_bytes + QUEUE_ENTRY_OVERHEAD);
    queue_reserve(q, SELFPROF_RESERVE_COUNT,
                  spare < SELFPROF_RESERVE_BYTES ? spare : SELFPROF_RESERVE_BYTES);
    sp->from_s = (int64_t)time(NULL);
    sp->period_start_ms = uv_now(loop);
    if (!sampler.stack_hi)
        log_warn("self-profiling: main thread stack unknown; only leaf frames are sampled", );
    uv_timer_init(loop, &sp->timer);
    sp->timer.data = sp;
    uint64_t tick = sp->interval_ms < DRAIN_PERIOD_MS ? sp->interval_ms : DRAIN_PERIOD_MS;
    uv_timer_start(&sp->timer, on_tick, tick, tick);
    uv_unref((uv_handle_t *)&sp->timer); /* never what keeps the loop alive */
    log_info("self-profiling", LKS("application", SELFPROF_APP_NAME) LKI("hz", SELFPROF_HZ)
                                   LKI("upload_every_ms", sp->interval_ms));
    return sp;
}

static void on_timer_closed(uv_handle_t *h)
{
    selfprof_free(h->data);
}

void selfprof_close(struct selfprof *sp)
{
    if (!sp || sp->closing)
        return;
    sp->closing = true;
    if (sp->sampling)
        sampler_stop();
    sp->sampling = false;
    uv_close((uv_handle_t *)&sp->timer, on_timer_closed);
}
