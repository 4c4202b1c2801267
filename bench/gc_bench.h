/* bench/gc_bench.h — the shared harness of the collector benchmarks
 * (gcbench.c, binary_trees.c): one source, three memory managers.
 *
 * Exactly one of these selects the variant at compile time:
 *   BENCH_GC_MULCH   mulch's precise collector: gc_heap_create(NULL),
 *                    gc_thread_attach, gc_alloc with a gc_type_t whose trace
 *                    function calls gc_trace_slot on every child field; live
 *                    pointers held in C locals across an allocation are rooted
 *                    with gc_push_root / gc_pop_roots; stores into heap
 *                    objects go through gc_write.
 *   BENCH_GC_MULCH with BENCH_GC_MULCH_CONSERVATIVE
 *                    the same collector with conservative_stack set, as a
 *                    program ported from Boehm would use it: the stacks
 *                    are scanned, so roots are no-ops (objects are still
 *                    typed and traced precisely; stores still gc_write).
 *   BENCH_GC_BOEHM   Boehm-Demers-Weiser (libgc, default settings): GC_INIT,
 *                    GC_start_mark_threads (parallel marking, as mulch's
 *                    default), GC_MALLOC, GC_MALLOC_ATOMIC for pointer-free data. The
 *                    stack is scanned conservatively, so roots are no-ops.
 *   BENCH_GC_MALLOC  the C library's malloc and free: the programs free every
 *                    tree explicitly when they are done with it.
 *
 * What a benchmark writes once and gets in every variant:
 *   bench_kind_t           a gc_type_t under mulch, a look-alike otherwise;
 *                          trace functions take a bench_tracer_t * and call
 *                          bench_trace_slot / bench_trace_range (no-ops
 *                          outside mulch);
 *   bench_alloc(kind, n)   zeroed object of n bytes (n a constant: inlined);
 *   bench_alloc_atomic(n)  n bytes that will never hold a GC pointer
 *                          (not zeroed under Boehm);
 *   bench_free(p)          free(p) under malloc, nothing otherwise;
 *   BENCH_EXPLICIT_FREE    1 under malloc: `if (BENCH_EXPLICIT_FREE)` guards
 *                          the tree-freeing walks, which stay type-checked;
 *   BENCH_ROOT(var)        push &var (a local pointer variable) on this
 *                          thread's root stack; BENCH_UNROOT(n) pops n;
 *   BENCH_STORE(o, f, v)   o->f = v for a GC pointer v (gc_write under mulch);
 *   BENCH_INIT(o, f, v)    the same into an object o allocated after the
 *                          last GC point (gc_write_init under mulch: no
 *                          barrier needed, as with Boehm's plain store).
 *
 * Rules the sources follow so that they stay correct if the collector moves
 * objects (it does not yet, but only rooted slots are guaranteed to survive):
 * every pointer used after a GC point (bench_alloc*) lives in a rooted local
 * and is re-read from it after the call, never kept in a temporary; the value
 * stored by BENCH_STORE is a local computed before the statement (C does not
 * order `o->f = alloc()`'s address computation against the call).
 *
 * Measurement: bench_now() is CLOCK_MONOTONIC; bench_report() prints the one
 * machine-readable line
 *   RESULT bench=<b> variant=<v> seconds=<s> peak_rss_kib=<k> collections=<n>
 *          max_pause_ms=<ms> cpu_seconds=<s> <extra fields>
 * (on one line). peak_rss_kib is getrusage(RUSAGE_SELF).ru_maxrss. mulch:
 * collections and max pause from gc_get_stats. Boehm: GC_get_gc_no() and the
 * longest GC_EVENT_START..GC_EVENT_END interval seen by a
 * GC_set_on_collection_event callback. malloc: collections=0,
 * max_pause_ms=-1 (there is no collector). */
#ifndef MULCH_BENCH_GC_BENCH_H
#define MULCH_BENCH_GC_BENCH_H

#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#  define _POSIX_C_SOURCE 200809L
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#if (defined(BENCH_GC_MULCH) + defined(BENCH_GC_BOEHM) + defined(BENCH_GC_MALLOC)) != 1
#  error "define exactly one of BENCH_GC_MULCH, BENCH_GC_BOEHM, BENCH_GC_MALLOC"
#endif

/* ---------------------------------------- Boehm and malloc: shared -- */
#if !defined(BENCH_GC_MULCH)
/* No precise collector: a look-alike of gc_type_t whose trace functions are
 * never called, and no roots, barriers or heap verification. */
typedef struct bench_tracer bench_tracer_t;
typedef struct bench_kind {
    const char *name;
    void (*trace)(void *obj, bench_tracer_t *tracer);
    void (*finalize)(void *obj);
} bench_kind_t;

static inline void bench_trace_slot(bench_tracer_t *t, void **slot) { (void)t; (void)slot; }
static inline void bench_trace_range(bench_tracer_t *t, void **slots, size_t n) { (void)t; (void)slots; (void)n; }

#define BENCH_ROOT(var)      ((void)0)
#define BENCH_UNROOT(n)      ((void)0)
#define BENCH_STORE(o, f, v) ((void)((o)->f = (v)))
#define BENCH_INIT(o, f, v)  BENCH_STORE(o, f, v)

static size_t bench_verify_heap(void) { return 0; }

static void bench_gc_shutdown(void) {}

/* `what` (GC_MALLOC, malloc, ...) returned NULL for n bytes. */
static void bench_alloc_failed(const char *what, size_t n)
{
    fprintf(stderr, "bench: %s(%zu) returned NULL\n", what, n);
    exit(3);
}
#endif

/* ------------------------------------------------------------- mulch -- */
#if defined(BENCH_GC_MULCH)
#include <mulch.h>
#include <mulch/gc.h>

#if defined(BENCH_GC_MULCH_CONSERVATIVE)
#  define BENCH_VARIANT "mulch_conservative"
#else
#  define BENCH_VARIANT "mulch"
#endif
#define BENCH_EXPLICIT_FREE 0

typedef gc_type_t   bench_kind_t;
typedef gc_tracer_t bench_tracer_t;

static gc_heap_t   *bench_heap;
static gc_thread_t *bench_thread;
static const gc_type_t bench_atomic_kind = { "bench_atomic", NULL, NULL };

static inline void bench_trace_slot(bench_tracer_t *t, void **slot)
{
    gc_trace_slot(t, slot);
}

static inline void bench_trace_range(bench_tracer_t *t, void **slots, size_t n)
{
    gc_trace_range(t, slots, n);
}

static void bench_gc_init(void)
{
    gc_options_t options;
    memset(&options, 0, sizeof options);
#if defined(BENCH_GC_MULCH_CONSERVATIVE)
    options.conservative_stack = 1;
#endif
    bench_heap = gc_heap_create(&options);
    if (!bench_heap) {
        fprintf(stderr, "bench: gc_heap_create failed\n");
        exit(3);
    }
    bench_thread = gc_thread_attach(bench_heap);
    if (!bench_thread) {
        fprintf(stderr, "bench: gc_thread_attach failed\n");
        exit(3);
    }
}

static void bench_oom(size_t n)
{
    fprintf(stderr, "bench: gc_alloc(%zu) returned NULL\n", n);
    exit(3);
}

static inline void *bench_alloc(const bench_kind_t *kind, size_t n)
{
    void *p = gc_alloc(bench_thread, kind, n);
    if (!p) bench_oom(n);
    return p;
}

static inline void *bench_alloc_atomic(size_t n)
{
    return bench_alloc(&bench_atomic_kind, n);
}

static inline void bench_free(void *p) { (void)p; }

#if defined(BENCH_GC_MULCH_CONSERVATIVE)
/* the stack is scanned: a local keeps its object alive (and in place) */
#  define BENCH_ROOT(var)   ((void)0)
#  define BENCH_UNROOT(n)   ((void)0)
#else
#  define BENCH_ROOT(var)   gc_push_root(bench_thread, (void **)&(var))
#  define BENCH_UNROOT(n)   gc_pop_roots(bench_thread, (n))
#endif
#define BENCH_STORE(o, f, v) \
    gc_write(bench_thread, (void *)(o), (void **)&(o)->f, (void *)(v))
#define BENCH_INIT(o, f, v) \
    gc_write_init(bench_thread, (void *)(o), (void **)&(o)->f, (void *)(v))

/* Heap problems found by gc_verify (each reported through the error handler). */
static size_t bench_verify_heap(void) { return gc_verify(bench_heap); }

static int bench_gc_stats(uint64_t *collections, double *max_pause_ms, char *extra, size_t cap)
{
    gc_stats_t s;
    memset(&s, 0, sizeof s);
    gc_get_stats(bench_heap, &s);
    *collections = s.collections;
    *max_pause_ms = (double)s.pause_ns_max / 1e6;
    return snprintf(extra, cap,
                    "pause_total_ms=%.3f heap_kib=%zu live_kib=%zu allocated_mib=%.1f"
                    " moved_mib=%.1f lib=mulch-%s link=static",
                    (double)s.pause_ns_total / 1e6, s.heap_bytes / 1024, s.live_bytes / 1024,
                    (double)s.bytes_allocated / (1024.0 * 1024.0),
                    (double)s.bytes_moved / (1024.0 * 1024.0), mulch_version());
}

static void bench_gc_shutdown(void)
{
    gc_thread_detach(bench_thread);
    gc_heap_destroy(bench_heap);
    bench_thread = NULL;
    bench_heap = NULL;
}

/* ------------------------------------------------------------- Boehm -- */
#elif defined(BENCH_GC_BOEHM)
/* Debian's libgc is the threaded build; GC_THREADS declares its thread API
 * (GC_get_parallel, GC_start_mark_threads). */
#ifndef GC_THREADS
#  define GC_THREADS
#endif
#include <gc/gc.h>

#define BENCH_VARIANT "boehm"
/* How libgc was linked (bench/CMakeLists.txt): "static" or "shared". */
#ifndef BENCH_GC_LINK
#  define BENCH_GC_LINK "shared"
#endif
#define BENCH_EXPLICIT_FREE 0

/* Collection pauses, from the collector's own event callback (called with
 * the allocation lock held; the program is single-threaded). */
static struct timespec bench_boehm_start;
static double bench_boehm_pause_max_ms, bench_boehm_pause_total_ms;

static void GC_CALLBACK bench_boehm_event(GC_EventType e)
{
    struct timespec now;
    if (e == GC_EVENT_START) {
        clock_gettime(CLOCK_MONOTONIC, &bench_boehm_start);
    } else if (e == GC_EVENT_END) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        double ms = (double)(now.tv_sec - bench_boehm_start.tv_sec) * 1e3 +
                    (double)(now.tv_nsec - bench_boehm_start.tv_nsec) / 1e6;
        bench_boehm_pause_total_ms += ms;
        if (ms > bench_boehm_pause_max_ms) bench_boehm_pause_max_ms = ms;
    }
}

static void bench_gc_init(void)
{
    GC_INIT();
    /* libgc starts its parallel marker threads lazily, at the first
     * GC_pthread_create: a single-threaded client marks alone unless it asks.
     * mulch's heap marks with one thread per online CPU by default, so give
     * Boehm its default marker count too (GC_MARKERS=1 turns it off). */
    GC_start_mark_threads();
    GC_set_on_collection_event(bench_boehm_event);
}

static inline void *bench_alloc(const bench_kind_t *kind, size_t n)
{
    (void)kind;
    void *p = GC_MALLOC(n);
    if (!p) bench_alloc_failed("GC_MALLOC", n);
    return p;
}

static inline void *bench_alloc_atomic(size_t n)
{
    void *p = GC_MALLOC_ATOMIC(n);
    if (!p) bench_alloc_failed("GC_MALLOC_ATOMIC", n);
    return p;
}

static inline void bench_free(void *p) { (void)p; }

static int bench_gc_stats(uint64_t *collections, double *max_pause_ms, char *extra, size_t cap)
{
    *collections = (uint64_t)GC_get_gc_no();
    *max_pause_ms = bench_boehm_pause_max_ms;
    unsigned v = GC_get_version();
    return snprintf(extra, cap,
                    "pause_total_ms=%.3f heap_kib=%zu markers=%d lib=bdwgc-%u.%u.%u link=%s",
                    bench_boehm_pause_total_ms, (size_t)GC_get_heap_size() / 1024,
                    1 + GC_get_parallel(),
                    v >> 16, (v >> 8) & 0xff, v & 0xff, BENCH_GC_LINK);
}

/* ------------------------------------------------------------ malloc -- */
#else /* BENCH_GC_MALLOC */

#define BENCH_VARIANT "malloc"
#define BENCH_EXPLICIT_FREE 1

static void bench_gc_init(void) {}

static inline void *bench_alloc(const bench_kind_t *kind, size_t n)
{
    (void)kind;
    void *p = malloc(n);
    if (!p) bench_alloc_failed("malloc", n);
    memset(p, 0, n); /* same contract as gc_alloc / GC_MALLOC */
    return p;
}

static inline void *bench_alloc_atomic(size_t n)
{
    void *p = malloc(n);
    if (!p) bench_alloc_failed("malloc", n);
    return p;
}

static inline void bench_free(void *p) { free(p); }

static int bench_gc_stats(uint64_t *collections, double *max_pause_ms, char *extra, size_t cap)
{
    *collections = 0;
    *max_pause_ms = -1;
    return snprintf(extra, cap, "lib=libc");
}

#endif /* variants */

/* ------------------------------------------------------------ common -- */

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long bench_peak_rss_kib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return ru.ru_maxrss; /* KiB on Linux */
}

/* User + system CPU time of the whole process so far (all threads): less
 * sensitive than wall time to other load on a shared machine. */
static double bench_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* Prints the RESULT line; `fmt` adds benchmark-specific key=value fields. */
static void bench_report(const char *bench, double seconds, const char *fmt, ...)
{
    uint64_t collections = 0;
    double max_pause_ms = -1;
    char gc_extra[256] = "";
    char extra[256] = "";
    long peak = bench_peak_rss_kib();
    double cpu = bench_cpu_seconds();
    bench_gc_stats(&collections, &max_pause_ms, gc_extra, sizeof gc_extra);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(extra, sizeof extra, fmt, ap);
        va_end(ap);
    }
    char pause[32] = "-1"; /* unknown / no collector */
    if (max_pause_ms >= 0) snprintf(pause, sizeof pause, "%.3f", max_pause_ms);
    fflush(stdout);
    printf("RESULT bench=%s variant=%s seconds=%.3f peak_rss_kib=%ld collections=%llu "
           "max_pause_ms=%s cpu_seconds=%.3f %s%s%s\n",
           bench, BENCH_VARIANT, seconds, peak, (unsigned long long)collections, pause, cpu,
           extra, extra[0] ? " " : "", gc_extra);
    fflush(stdout);
}

#endif /* MULCH_BENCH_GC_BENCH_H */
