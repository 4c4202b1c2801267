/* bench/bench_harness.h — measurement helpers of pool_bench.c: clock, RSS
 * (/proc/self/statm and ru_maxrss), harness memory from mmap, the seeded
 * xorshift64* generator, and the barrier protocol between worker threads and
 * the main thread (bench_sync_*), which measures RSS around b_trim().
 *
 * Harness memory never comes from the allocator under test: bench_map() maps
 * and touches it, so it is part of the baseline RSS for every allocator.
 * Needs b_trim() from bench_alloc.h; included by pool_bench.c only. */
#ifndef MULCH_BENCH_HARNESS_H
#define MULCH_BENCH_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static long bench_page_kib;
static long bench_baseline_kib;

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Current RSS from /proc/self/statm (read(2): no stdio buffer to allocate). */
static long bench_rss_kib(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    unsigned long size = 0, resident = 0;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
        return -1;
    return (long)resident * bench_page_kib;
}

static long bench_peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss; /* KiB on Linux */
}

/* Harness memory: mmap'd and touched, never from the allocator under test. */
static void *bench_map(size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "pool_bench: mmap(%zu): %s\n", bytes, strerror(errno));
        exit(3);
    }
    memset(p, 0, bytes);
    return p;
}

static void bench_unmap(void *p, size_t bytes)
{
    munmap(p, bytes ? bytes : 1);
}

static void bench_oom(size_t size)
{
    fprintf(stderr, "pool_bench: allocator returned NULL for %zu bytes\n", size);
    exit(3);
}

/* xorshift64* (Vigna): same sequence for every allocator. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Seeds a generator from (seed, stream) with splitmix64; never zero. */
static uint64_t rng_seed(uint64_t seed, uint64_t stream)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z ? z : 0x1234567ULL;
}

/* Uniform in [0, n) (Lemire's multiply-shift on the high 32 bits). */
static inline uint32_t rng_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((rng_next(s) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform object size 16..1024 bytes. */
static inline uint32_t rng_small_size(uint64_t *s)
{
    return 16u + rng_below(s, 1024u - 16u + 1u);
}

/* Barrier protocol between workers and the main thread. With one thread the
 * worker runs on the main thread (glibc then uses its main arena, as a
 * single-threaded program would) and the mid-point measurement runs inline.
 *   worker: setup; start(); timed work; mid(); teardown
 *   main:   wait A; wait B; measure; wait C; join */
typedef struct bench_sync {
    pthread_barrier_t barrier;
    unsigned nthreads;
    size_t live_bytes; /* summed by workers before mid() */
    pthread_mutex_t lock;
    long rss_before_kib, rss_after_kib;
} bench_sync_t;

static void bench_sync_measure(bench_sync_t *s)
{
    s->rss_before_kib = bench_rss_kib();
    b_trim();
    s->rss_after_kib = bench_rss_kib();
}

static void bench_sync_start(bench_sync_t *s)
{
    if (s->nthreads > 1)
        pthread_barrier_wait(&s->barrier); /* A: all set up */
}

static void bench_sync_mid(bench_sync_t *s, size_t live_bytes)
{
    pthread_mutex_lock(&s->lock);
    s->live_bytes += live_bytes;
    pthread_mutex_unlock(&s->lock);
    if (s->nthreads == 1) {
        bench_sync_measure(s);
        return;
    }
    pthread_barrier_wait(&s->barrier); /* B: timed work done */
    pthread_barrier_wait(&s->barrier); /* C: main has measured */
}

/* Runs fn(arg_i) on n threads (inline when n == 1) with the protocol above. */
static void bench_sync_run(bench_sync_t *s, unsigned n, void *(*fn)(void *),
                           void *args, size_t arg_size)
{
    s->nthreads = n;
    s->live_bytes = 0;
    pthread_mutex_init(&s->lock, NULL);
    if (n == 1) {
        fn(args);
        return;
    }
    pthread_barrier_init(&s->barrier, NULL, n + 1);
    pthread_t *tid = bench_map(n * sizeof *tid);
    for (unsigned i = 0; i < n; i++) {
        if (pthread_create(&tid[i], NULL, fn, (char *)args + i * arg_size) != 0) {
            fprintf(stderr, "pool_bench: pthread_create failed\n");
            exit(3);
        }
    }
    pthread_barrier_wait(&s->barrier); /* A */
    pthread_barrier_wait(&s->barrier); /* B */
    bench_sync_measure(s);
    pthread_barrier_wait(&s->barrier); /* C */
    for (unsigned i = 0; i < n; i++)
        pthread_join(tid[i], NULL);
    bench_unmap(tid, n * sizeof *tid);
    pthread_barrier_destroy(&s->barrier);
}

/* Wall time of the timed section: earliest start to latest end. */
typedef struct bench_span {
    double start, end;
} bench_span_t;

static double bench_span_seconds(const bench_span_t *spans, size_t stride,
                                 unsigned n)
{
    double lo = 0, hi = 0;
    for (unsigned i = 0; i < n; i++) {
        const bench_span_t *sp =
            (const bench_span_t *)((const char *)spans + i * stride);
        if (i == 0 || sp->start < lo)
            lo = sp->start;
        if (i == 0 || sp->end > hi)
            hi = sp->end;
    }
    return hi - lo;
}

#endif /* MULCH_BENCH_HARNESS_H */
