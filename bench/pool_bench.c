/* bench/pool_bench.c — the pool benchmark: mulch's pool against glibc malloc,
 * mimalloc and jemalloc, one workload per run, one machine-readable line.
 *
 * What it owns: the workloads (churn, prodcons, frag, realloc), their arguments and the
 * RESULT line. The allocator shim is bench_alloc.h, the clock / RSS / PRNG /
 * thread barrier helpers bench_harness.h. bench/README.md says what each
 * workload stresses and how run_pool_bench.sh turns the lines into a table.
 *
 * One allocator per executable. Linking libjemalloc or libmimalloc replaces
 * malloc for the whole process, so this one source is compiled four times and
 * exactly one of BENCH_ALLOC_MULCH, BENCH_ALLOC_GLIBC, BENCH_ALLOC_MIMALLOC,
 * BENCH_ALLOC_JEMALLOC selects the shim: b_init, b_alloc, b_free, b_realloc,
 * b_trim.
 *
 * Invariants the comparison relies on:
 *  - every allocator sees the same request sequence for a given --seed: the
 *    workloads draw sizes and indices from one xorshift64* generator and never
 *    branch on what the allocator returned;
 *  - harness memory (slot arrays, rings, the frag plan) comes from mmap, never
 *    from the allocator under test, and is touched before the baseline RSS is
 *    read, so `baseline_rss_kib` is the same harness cost for every allocator;
 *  - every object is written at its first and last byte and checked before it
 *    is freed; a mismatch or a misaligned pointer counts in `errors=` and makes
 *    the exit status 2 (a NULL from the allocator exits with 3).
 *
 * Threads: each worker owns its slots and PRNG; the prodcons ring is the only
 * shared structure (single producer, single consumer per ring). The main
 * thread measures RSS and trims while workers wait at a barrier (bench_sync_*).
 *
 * Usage: pool_bench <churn|prodcons|frag|realloc> [--threads N] [--ops N] [--live N]
 *                   [--seed S] [--fill-mib N] [--samples N]
 *
 * --samples N (frag only) records RSS every N allocator calls into a mapped
 * array and prints the series as SAMPLE lines after the RESULT line, for
 * bench/plot.sh. Reading RSS costs a few system calls per sample, so runs
 * with samples are for plots, not for the timing table. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_alloc.h"
#include "bench_harness.h"

/* ------------------------------------------------------------- common -- */

typedef struct bench_args {
    const char *workload;
    unsigned threads;
    uint64_t ops;
    uint64_t live;
    uint64_t seed;
    uint64_t fill_mib;
    uint64_t samples;        /* frag: RSS sample every `samples` calls; 0 = none */
    int live_set, threads_set;
} bench_args_t;

/* What a run reports; rss figures in KiB. */
typedef struct bench_result {
    uint64_t ops;            /* allocator calls counted in mops (see README) */
    double seconds;
    size_t live_bytes;       /* requested bytes live when RSS was measured */
    long rss_before_trim_kib, rss_after_trim_kib;
    uint64_t errors;
} bench_result_t;

/* Object tagging: written at alloc, checked before free. */
static inline uint8_t obj_tag(uint64_t slot, uint32_t size)
{
    return (uint8_t)(slot ^ (size >> 2) ^ 0xA5u);
}

static inline void *obj_new(uint64_t slot, uint32_t size)
{
    unsigned char *p = b_alloc(size);
    if (__builtin_expect(p == NULL, 0))
        bench_oom(size);
    p[0] = obj_tag(slot, size);
    p[size - 1] = (uint8_t)~obj_tag(slot, size);
    return p;
}

/* Returns 1 when the object lost its tags or its 16-byte alignment. */
static inline unsigned obj_bad(const void *obj, uint64_t slot, uint32_t size)
{
    const unsigned char *p = obj;
    uint8_t tag = obj_tag(slot, size), end_tag = (uint8_t)~tag;
    return ((uintptr_t)p & 15u) != 0 || p[0] != tag || p[size - 1] != end_tag;
}

/* A thread's live set: `live` tagged objects in slot[], their sizes in size[]
 * (both bench_map'ed). Filled before the timed loop, released after it. */
static void live_set_fill(void **slot, uint16_t *size, uint32_t live, uint64_t *rng)
{
    for (uint32_t i = 0; i < live; i++) {
        size[i] = (uint16_t)rng_small_size(rng);
        slot[i] = obj_new(i, size[i]);
    }
}

/* Requested bytes held by the live set. */
static size_t live_set_bytes(const uint16_t *size, uint32_t live)
{
    size_t live_bytes = 0;
    for (uint32_t i = 0; i < live; i++)
        live_bytes += size[i];
    return live_bytes;
}

/* Checks and frees every object, unmaps both arrays; returns the bad objects. */
static uint64_t live_set_release(void **slot, uint16_t *size, uint32_t live)
{
    uint64_t errors = 0;
    for (uint32_t i = 0; i < live; i++) {
        errors += obj_bad(slot[i], i, size[i]);
        b_free(slot[i]);
    }
    bench_unmap(slot, live * sizeof *slot);
    bench_unmap(size, live * sizeof *size);
    return errors;
}

/* -------------------------------------------------------------- churn -- */
/* Live set of `live` objects; each op frees a random slot and refills it with
 * a new object of a random size (16..1024 B). One op = one free + one alloc. */

typedef struct churn_arg {
    bench_span_t span; /* first: bench_span_seconds reads it */
    bench_sync_t *sync;
    uint64_t ops, live, seed;
    unsigned id;
    uint64_t errors;
} churn_arg_t;

static void *churn_worker(void *argp)
{
    churn_arg_t *a = argp;
    uint64_t rng = rng_seed(a->seed, a->id);
    uint32_t live = (uint32_t)a->live;
    void **slot = bench_map(live * sizeof *slot);
    uint16_t *size = bench_map(live * sizeof *size);
    uint64_t errors = 0;

    live_set_fill(slot, size, live, &rng);

    bench_sync_start(a->sync);
    a->span.start = bench_now();
    for (uint64_t op = 0; op < a->ops; op++) {
        uint32_t i = rng_below(&rng, live);
        uint32_t n = rng_small_size(&rng);
        errors += obj_bad(slot[i], i, size[i]);
        b_free(slot[i]);
        slot[i] = obj_new(i, n);
        size[i] = (uint16_t)n;
    }
    a->span.end = bench_now();

    bench_sync_mid(a->sync, live_set_bytes(size, live));

    errors += live_set_release(slot, size, live);
    a->errors = errors;
    return NULL;
}

static void run_churn(const bench_args_t *args, bench_result_t *r)
{
    bench_sync_t sync;
    unsigned n = args->threads;
    churn_arg_t *ca = bench_map(n * sizeof *ca);
    for (unsigned i = 0; i < n; i++) {
        ca[i].sync = &sync;
        ca[i].ops = args->ops;
        ca[i].live = args->live;
        ca[i].seed = args->seed;
        ca[i].id = i;
    }
    bench_baseline_kib = bench_rss_kib();
    bench_sync_run(&sync, n, churn_worker, ca, sizeof *ca);
    r->seconds = bench_span_seconds(&ca[0].span, sizeof *ca, n);
    r->ops = args->ops * n;
    for (unsigned i = 0; i < n; i++)
        r->errors += ca[i].errors;
    r->live_bytes = sync.live_bytes;
    r->rss_before_trim_kib = sync.rss_before_kib;
    r->rss_after_trim_kib = sync.rss_after_kib;
    bench_unmap(ca, n * sizeof *ca);
}

/* ----------------------------------------------------------- prodcons -- */
/* Pairs of threads. The producer allocates objects (16..1024 B) and hands
 * them to its consumer in batches of PC_BATCH pointers through a bounded
 * single-producer single-consumer ring of PC_RING batches; the consumer
 * checks and frees them (cross-thread frees). After every PC_LOCAL_EVERY
 * objects sent, the producer also replaces one object of its own local set
 * (free + alloc on the same thread). */

enum { PC_BATCH = 256, PC_RING = 64, PC_LOCAL_EVERY = 4 };

typedef struct pc_ring {
    _Alignas(64) _Atomic uint64_t head; /* written by the producer */
    _Alignas(64) _Atomic uint64_t tail; /* written by the consumer */
    _Alignas(64) uint32_t count[PC_RING]; /* 0 = end of stream */
    void *item[PC_RING][PC_BATCH];
} pc_ring_t;

typedef struct pc_arg {
    bench_span_t span; /* first: bench_span_seconds reads it */
    bench_sync_t *sync;
    pc_ring_t *ring;
    uint64_t ops, live, seed;
    unsigned id;
    int producer;
    uint64_t errors, calls;
} pc_arg_t;

static inline void pc_relax(unsigned *spins)
{
    if (++*spins < 256) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        *spins = 0;
        sched_yield();
    }
}

/* Object layout for transfer: 2-byte size at the front, tag at the end. */
static inline void *pc_obj_new(uint32_t size)
{
    unsigned char *p = b_alloc(size);
    if (__builtin_expect(p == NULL, 0))
        bench_oom(size);
    uint16_t s16 = (uint16_t)size;
    memcpy(p, &s16, sizeof s16);
    p[size - 1] = (uint8_t)(size * 131u);
    return p;
}

static inline unsigned pc_obj_bad(const void *obj)
{
    const unsigned char *p = obj;
    uint16_t size;
    if ((uintptr_t)p & 15u)
        return 1;
    memcpy(&size, p, sizeof size);
    return size < 16 || size > 1024 || p[size - 1] != (uint8_t)(size * 131u);
}

/* Publishes the batch at *head, filled in place; the producer waited for
 * room before filling it (pc_wait_room). */
static void pc_push(pc_ring_t *ring, uint64_t *head, uint32_t count)
{
    ring->count[*head % PC_RING] = count;
    (*head)++;
    atomic_store_explicit(&ring->head, *head, memory_order_release);
}

/* Waits until the ring has a free batch; *tail caches the consumer's index. */
static void pc_wait_room(pc_ring_t *ring, uint64_t head, uint64_t *tail,
                         unsigned *spins)
{
    while (head - *tail >= PC_RING) {
        *tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
        if (head - *tail >= PC_RING)
            pc_relax(spins);
    }
}

static void *pc_producer(void *argp)
{
    pc_arg_t *a = argp;
    pc_ring_t *ring = a->ring;
    uint64_t rng = rng_seed(a->seed, a->id);
    uint32_t live = (uint32_t)a->live;
    void **slot = bench_map(live * sizeof *slot);
    uint16_t *size = bench_map(live * sizeof *size);
    uint64_t errors = 0, calls = 0, head = 0, tail = 0;
    unsigned spins = 0;

    live_set_fill(slot, size, live, &rng);

    bench_sync_start(a->sync);
    a->span.start = bench_now();
    uint64_t sent = 0;
    while (sent < a->ops) {
        pc_wait_room(ring, head, &tail, &spins);
        void **batch = ring->item[head % PC_RING];
        uint32_t n = a->ops - sent < PC_BATCH ? (uint32_t)(a->ops - sent) : PC_BATCH;
        for (uint32_t k = 0; k < n; k++) {
            batch[k] = pc_obj_new(rng_small_size(&rng));
            calls++;
            if ((sent + k + 1) % PC_LOCAL_EVERY == 0 && live) {
                uint32_t i = rng_below(&rng, live);
                uint32_t s = rng_small_size(&rng);
                errors += obj_bad(slot[i], i, size[i]);
                b_free(slot[i]);
                slot[i] = obj_new(i, s);
                size[i] = (uint16_t)s;
                calls += 2;
            }
        }
        sent += n;
        pc_push(ring, &head, n);
    }
    pc_wait_room(ring, head, &tail, &spins);
    pc_push(ring, &head, 0); /* end of stream */
    a->span.end = bench_now();

    size_t live_bytes = live_set_bytes(size, live);
    a->calls = calls;
    bench_sync_mid(a->sync, live_bytes);

    errors += live_set_release(slot, size, live);
    a->errors = errors;
    return NULL;
}

static void *pc_consumer(void *argp)
{
    pc_arg_t *a = argp;
    pc_ring_t *ring = a->ring;
    uint64_t errors = 0, calls = 0, tail = 0, head = 0;
    unsigned spins = 0;

    bench_sync_start(a->sync);
    a->span.start = bench_now();
    for (;;) {
        while (head == tail) {
            head = atomic_load_explicit(&ring->head, memory_order_acquire);
            if (head == tail)
                pc_relax(&spins);
        }
        uint32_t n = ring->count[tail % PC_RING];
        if (n == 0)
            break;
        void **batch = ring->item[tail % PC_RING];
        for (uint32_t k = 0; k < n; k++) {
            errors += pc_obj_bad(batch[k]);
            b_free(batch[k]);
        }
        calls += n;
        tail++;
        atomic_store_explicit(&ring->tail, tail, memory_order_release);
    }
    a->span.end = bench_now();
    a->calls = calls;
    bench_sync_mid(a->sync, 0);
    a->errors = errors;
    return NULL;
}

static void *pc_worker(void *argp)
{
    pc_arg_t *a = argp;
    return a->producer ? pc_producer(a) : pc_consumer(a);
}

static void run_prodcons(const bench_args_t *args, bench_result_t *r)
{
    bench_sync_t sync;
    unsigned pairs = args->threads / 2;
    unsigned n = pairs * 2;
    pc_arg_t *pa = bench_map(n * sizeof *pa);
    pc_ring_t *rings = bench_map(pairs * sizeof *rings);
    for (unsigned i = 0; i < n; i++) {
        pa[i].sync = &sync;
        pa[i].ring = &rings[i / 2];
        pa[i].ops = args->ops;
        pa[i].live = args->live;
        pa[i].seed = args->seed;
        pa[i].id = i / 2;
        pa[i].producer = (i % 2) == 0;
    }
    bench_baseline_kib = bench_rss_kib();
    bench_sync_run(&sync, n, pc_worker, pa, sizeof *pa);
    r->seconds = bench_span_seconds(&pa[0].span, sizeof *pa, n);
    for (unsigned i = 0; i < n; i++) {
        r->errors += pa[i].errors;
        r->ops += pa[i].calls;
    }
    r->live_bytes = sync.live_bytes;
    r->rss_before_trim_kib = sync.rss_before_kib;
    r->rss_after_trim_kib = sync.rss_after_kib;
    bench_unmap(rings, pairs * sizeof *rings);
    bench_unmap(pa, n * sizeof *pa);
}

/* ------------------------------------------------------- time series -- */
/* RSS over the run, for plots: one sample every `every` allocator calls,
 * kept in mapped memory (never the allocator's) and printed after the
 * RESULT line as
 *   SAMPLE allocator=A workload=W op=N phase=P live_kib=L rss_kib=R
 * where op counts allocator calls so far (the same x for every allocator)
 * and live_kib is the requested bytes live at that moment. */

typedef struct bench_sample {
    uint64_t op;
    uint64_t live_bytes;
    long rss_kib;
    const char *phase;
} bench_sample_t;

typedef struct bench_series {
    bench_sample_t *items;
    size_t count, capacity;
    uint64_t every;
} bench_series_t;

static void series_init(bench_series_t *s, uint64_t every, uint64_t total_ops)
{
    s->every = every;
    s->count = 0;
    s->capacity = every ? (size_t)(total_ops / every) + 4 : 0;
    s->items = s->capacity ? bench_map(s->capacity * sizeof *s->items) : NULL;
}

/* Records a sample when op is a multiple of the period (or `force`). */
static inline void series_note(bench_series_t *s, uint64_t op, uint64_t live_bytes,
                               const char *phase, int force)
{
    if (s->every == 0 || (!force && op % s->every != 0) || s->count == s->capacity)
        return;
    s->items[s->count++] = (bench_sample_t){ op, live_bytes, bench_rss_kib(), phase };
}

static void series_print(const bench_series_t *s, const char *workload)
{
    for (size_t i = 0; i < s->count; i++)
        printf("SAMPLE allocator=%s workload=%s op=%llu phase=%s live_kib=%llu rss_kib=%ld\n",
               B_NAME, workload, (unsigned long long)s->items[i].op, s->items[i].phase,
               (unsigned long long)(s->items[i].live_bytes >> 10), s->items[i].rss_kib);
    if (s->items)
        bench_unmap(s->items, s->capacity * sizeof *s->items);
}

/* --------------------------------------------------------------- frag -- */
/* Fill --fill-mib MiB of requested bytes with sizes drawn log-uniformly from
 * 16 B .. 64 KiB (size = 2^(4 + 12u), u uniform in [0,1): every octave gets
 * the same number of objects; mean ~7.9 KiB), writing every byte; free a
 * random 90 % (a seeded Fisher-Yates permutation); measure RSS, trim, measure
 * again. The plan (sizes, free order) is computed and its arrays touched
 * before the baseline RSS is read. */

/* 2^x for x in [0, 1): exp(x ln 2) by its series (no libm needed). */
static double frag_exp2_frac(double x)
{
    double t = x * 0.69314718055994530942, term = 1.0, sum = 1.0;
    for (int k = 1; k < 20; k++) {
        term *= t / k;
        sum += term;
    }
    return sum;
}

static inline uint32_t frag_size(uint64_t *rng)
{
    double u = (double)(rng_next(rng) >> 11) * 0x1.0p-53; /* [0,1) */
    double e = 4.0 + 12.0 * u;                            /* [4,16) */
    int whole = (int)e;
    uint32_t s = (uint32_t)((double)(1u << whole) * frag_exp2_frac(e - whole));
    return s < 16 ? 16 : (s > 65536 ? 65536 : s);
}

static void run_frag(const bench_args_t *args, bench_result_t *r, bench_series_t *series)
{
    const uint64_t target = args->fill_mib << 20;
    uint64_t seed = rng_seed(args->seed, 0);
    uint64_t rng = seed;
    size_t n = 0;
    for (uint64_t sum = 0; sum < target; n++)
        sum += frag_size(&rng);

    uint32_t *size = bench_map(n * sizeof *size);
    uint32_t *order = bench_map(n * sizeof *order);
    void **obj = bench_map(n * sizeof *obj);
    rng = seed;
    for (size_t i = 0; i < n; i++) {
        size[i] = frag_size(&rng);
        order[i] = (uint32_t)i;
    }
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        size_t j = rng_below(&rng, (uint32_t)i);
        uint32_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    size_t nfree = n * 9 / 10;
    series_init(series, args->samples, n + nfree);
    bench_baseline_kib = bench_rss_kib();

    uint64_t live = 0;
    series_note(series, 0, 0, "fill", 1);
    double t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = b_alloc(size[i]);
        if (!p)
            bench_oom(size[i]);
        memset(p, (int)(i & 0xff), size[i]);
        p[0] = obj_tag(i, size[i]);
        p[size[i] - 1] = (uint8_t)~obj_tag(i, size[i]);
        obj[i] = p;
        live += size[i];
        series_note(series, i + 1, live, "fill", i + 1 == n);
    }
    for (size_t k = 0; k < nfree; k++) {
        size_t i = order[k];
        r->errors += obj_bad(obj[i], i, size[i]);
        b_free(obj[i]);
        obj[i] = NULL;
        live -= size[i];
        series_note(series, n + k + 1, live, "free", k + 1 == nfree);
    }
    r->seconds = bench_now() - t0;
    r->ops = n + nfree;

    r->rss_before_trim_kib = bench_rss_kib();
    b_trim();
    r->rss_after_trim_kib = bench_rss_kib();
    series_note(series, n + nfree, live, "trim", 1);

    for (size_t i = 0; i < n; i++) {
        if (!obj[i])
            continue;
        r->live_bytes += size[i];
        r->errors += obj_bad(obj[i], i, size[i]);
    }
    for (size_t i = 0; i < n; i++)
        b_free(obj[i]);
    bench_unmap(obj, n * sizeof *obj);
    bench_unmap(order, n * sizeof *order);
    bench_unmap(size, n * sizeof *size);
}

/* ------------------------------------------------------------ realloc -- */

/* A growing buffer (a string builder, a vector, an interpreter's stack):
 * --ops rounds, each growing one buffer by 1.5x steps from 4 KiB to
 * --fill-mib MiB, writing each new part (memset), then freeing it. ops
 * counts the reallocs; the time is mostly the copies (or their absence)
 * and the page faults of the bytes written. */
static void run_realloc(const bench_args_t *args, bench_result_t *r)
{
    const size_t top = (size_t)args->fill_mib << 20;
    bench_baseline_kib = bench_rss_kib();
    double t0 = bench_now();
    for (uint64_t round = 0; round < args->ops; round++) {
        size_t size = 4096;
        unsigned char *p = b_alloc(size);
        if (!p)
            bench_oom(size);
        memset(p, (int)(round & 0xff), size);
        while (size < top) {
            size_t grown = size + size / 2 < top ? size + size / 2 : top;
            p = b_realloc(p, grown);
            if (!p)
                bench_oom(grown);
            r->errors += p[0] != (unsigned char)(round & 0xff) || p[size - 1] != (unsigned char)(round & 0xff);
            memset(p + size, (int)(round & 0xff), grown - size);
            size = grown;
            r->ops++;
        }
        r->live_bytes = size;
        r->rss_before_trim_kib = bench_rss_kib();
        b_free(p);
    }
    r->seconds = bench_now() - t0;
    b_trim();
    r->rss_after_trim_kib = bench_rss_kib();
}

/* --------------------------------------------------------------- main -- */

static void usage(void)
{
    fprintf(stderr,
            "usage: pool_bench <churn|prodcons|frag|realloc> [--threads N] [--ops N] "
            "[--live N] [--seed S] [--fill-mib N] [--samples N]\n"
            "  churn    : --threads independent churners (default 1), --live objects\n"
            "             each (default 100000), --ops free+alloc pairs each\n"
            "  prodcons : --threads/2 producer->consumer pairs (default 2 threads),\n"
            "             --ops objects sent per pair, --live producer-local set (default 1024)\n"
            "  frag     : single thread, --fill-mib MiB requested (default 512);\n"
            "             --samples N prints RSS every N calls as SAMPLE lines\n"
            "  realloc  : single thread, --ops rounds (default 20) of a buffer grown by\n"
            "             1.5x from 4 KiB to --fill-mib MiB (default 256), each new part written\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s)
        return -1;
    switch (*end) { /* optional k/m/g multiplier (decimal) */
    case 'k': case 'K': v *= 1000ULL; end++; break;
    case 'm': case 'M': v *= 1000000ULL; end++; break;
    case 'g': case 'G': v *= 1000000000ULL; end++; break;
    default: break;
    }
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, bench_args_t *a)
{
    if (argc < 2)
        return -1;
    a->workload = argv[1];
    a->threads = 0;
    a->ops = 0;
    a->live = 0;
    a->seed = 42;
    a->fill_mib = 512;
    int fill_mib_set = 0;
    for (int i = 2; i < argc; i += 2) {
        uint64_t v;
        if (i + 1 >= argc || parse_u64(argv[i + 1], &v) != 0) {
            fprintf(stderr, "pool_bench: bad or missing value for %s\n", argv[i]);
            return -1;
        }
        if (!strcmp(argv[i], "--threads"))
            a->threads = (unsigned)v, a->threads_set = 1;
        else if (!strcmp(argv[i], "--ops"))
            a->ops = v;
        else if (!strcmp(argv[i], "--live"))
            a->live = v, a->live_set = 1;
        else if (!strcmp(argv[i], "--seed"))
            a->seed = v;
        else if (!strcmp(argv[i], "--fill-mib"))
            a->fill_mib = v, fill_mib_set = 1;
        else if (!strcmp(argv[i], "--samples"))
            a->samples = v;
        else {
            fprintf(stderr, "pool_bench: unknown option %s\n", argv[i]);
            return -1;
        }
    }
    if (!strcmp(a->workload, "churn")) {
        if (!a->threads_set) a->threads = 1;
        if (!a->live_set) a->live = 100000;
        if (!a->ops) a->ops = 20000000;
        if (a->live == 0 || a->live > UINT32_MAX) {
            fprintf(stderr, "pool_bench: churn needs 1 <= --live < 2^32\n");
            return -1;
        }
    } else if (!strcmp(a->workload, "prodcons")) {
        if (!a->threads_set) a->threads = 2;
        if (!a->live_set) a->live = 1024;
        if (!a->ops) a->ops = 10000000;
        if (a->threads < 2 || a->threads % 2 || a->live > UINT32_MAX) {
            fprintf(stderr, "pool_bench: prodcons needs an even --threads >= 2\n");
            return -1;
        }
    } else if (!strcmp(a->workload, "realloc")) {
        if (a->threads_set && a->threads != 1) {
            fprintf(stderr, "pool_bench: realloc is single-threaded\n");
            return -1;
        }
        a->threads = 1;
        if (!a->ops) a->ops = 20;
        if (!fill_mib_set) a->fill_mib = 256;
        if (a->fill_mib == 0 || a->fill_mib > 65536) {
            fprintf(stderr, "pool_bench: bad --fill-mib\n");
            return -1;
        }
    } else if (!strcmp(a->workload, "frag")) {
        if (a->threads_set && a->threads != 1) {
            fprintf(stderr, "pool_bench: frag is single-threaded\n");
            return -1;
        }
        a->threads = 1;
        if (a->fill_mib == 0 || a->fill_mib > 65536) {
            fprintf(stderr, "pool_bench: bad --fill-mib\n");
            return -1;
        }
    } else {
        fprintf(stderr, "pool_bench: unknown workload '%s'\n", a->workload);
        return -1;
    }
    if (a->threads == 0 || a->threads > 1024) {
        fprintf(stderr, "pool_bench: bad --threads\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_args_t args = {0};
    if (parse_args(argc, argv, &args) != 0) {
        usage();
        return 64;
    }
    bench_page_kib = sysconf(_SC_PAGESIZE) / 1024;
    if (b_init() != 0)
        return 4;

    if (args.samples && strcmp(args.workload, "frag")) {
        fprintf(stderr, "pool_bench: --samples is implemented for frag only\n");
        return 64;
    }
    bench_result_t r = {0};
    bench_series_t series = {0};
    if (!strcmp(args.workload, "churn"))
        run_churn(&args, &r);
    else if (!strcmp(args.workload, "prodcons"))
        run_prodcons(&args, &r);
    else if (!strcmp(args.workload, "realloc"))
        run_realloc(&args, &r);
    else
        run_frag(&args, &r, &series);

    double mops = r.seconds > 0 ? (double)r.ops / r.seconds / 1e6 : 0.0;
    double net_kib = (double)(r.rss_after_trim_kib - bench_baseline_kib);
    double trim_ratio = r.live_bytes ? net_kib * 1024.0 / (double)r.live_bytes : 0.0;
    double trim_ratio_raw =
        r.live_bytes ? (double)r.rss_after_trim_kib * 1024.0 / (double)r.live_bytes : 0.0;
    printf("RESULT allocator=%s workload=%s threads=%u ops=%llu seconds=%.4f "
           "mops=%.3f peak_rss_kib=%ld rss_before_trim_kib=%ld "
           "rss_after_trim_kib=%ld live_bytes=%zu baseline_rss_kib=%ld "
           "trim_ratio=%.4f trim_ratio_raw=%.4f live=%llu fill_mib=%llu "
           "seed=%llu errors=%llu\n",
           B_NAME, args.workload, args.threads, (unsigned long long)r.ops,
           r.seconds, mops, bench_peak_rss_kib(), r.rss_before_trim_kib,
           r.rss_after_trim_kib, r.live_bytes, bench_baseline_kib, trim_ratio,
           trim_ratio_raw, (unsigned long long)args.live,
           (unsigned long long)(strcmp(args.workload, "frag") && strcmp(args.workload, "realloc") ? 0 : args.fill_mib),
           (unsigned long long)args.seed, (unsigned long long)r.errors);
    series_print(&series, args.workload);
    fflush(stdout);
    if (r.errors) {
        fprintf(stderr, "pool_bench: %llu corrupted or misaligned objects\n",
                (unsigned long long)r.errors);
        return 2;
    }
    return 0;
}
