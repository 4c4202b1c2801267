/* mulch_test.h — the harness shared by the cmocka tests under tests/api/ and
 * tests/stress/ (public mulch headers only, so API-tier tests may use it).
 *
 *   - build flavour: MT_SANITIZED, MT_ON_VALGRIND(), MT_UNUSED, KiB / MiB;
 *   - seed and PRNG: g_seed (MULCH_TEST_SEED, decimal or 0x-hex, else the
 *     file's DEFAULT_SEED), splitmix64 (mix64, rng_t, rng_next, rng_below,
 *     test_rng, test_rng_named), g_quick / scaled() (MULCH_TEST_QUICK=1,
 *     sanitizer and valgrind builds scale the work down; define
 *     MT_LOCAL_SCALED to supply your own scaled()), mt_read_seed(), mt_init();
 *   - TEST_START, T_FAIL and EXPECT_* checks that print both values and the
 *     seed (main thread only; EXPECT_NONNULL_CTX adds a context line);
 *   - failures recorded off the cmocka path (AFAIL, EXPECT_NO_ASYNC_FAILURES);
 *   - with _GNU_SOURCE: mt_finishes_within (a call on a thread, joined
 *     with a time limit);
 *   - an error-handler recorder (setup_rec / teardown_rec, rec_count,
 *     rec_last, EXPECT_NO_REPORTS, EXPECT_ONE_REPORT);
 *   - with MULCH_TEST_GC defined before inclusion: gc helpers (stats_of,
 *     heap_new, EXPECT_VERIFY (gc_verify and gc_verify_untraced),
 *     EXPECT_VERIFY_ONLY, EXPECT_GC_REPORTS), and with
 *     MULCH_TEST_GC_OBJECTS also the test object type tobj_t (mk, mk_async,
 *     mk_child, set_slot, finalizer bookkeeping, EXPECT_OBJ, EXPECT_FIN,
 *     k_modes);
 *   - with MULCH_TEST_POOL defined before inclusion: pool helpers (stats_of
 *     for a pool_t, report_count, and the fill / check / EXPECT_PATTERN byte
 *     patterns).
 *
 * Each test file is one executable: define _GNU_SOURCE and DEFAULT_SEED,
 * include the mulch header(s) it tests, then this header. Everything here is
 * static (inline) and belongs to the including file. */
#ifndef MULCH_TEST_H
#define MULCH_TEST_H

#ifndef DEFAULT_SEED
#  error "define DEFAULT_SEED (the file's default MULCH_TEST_SEED) before including mulch_test.h"
#endif

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <mulch/common.h>

#if defined(__GNUC__)
#  define MT_UNUSED __attribute__((unused))
#else
#  define MT_UNUSED
#endif

/* ------------------------------------------------------------------------ */
/* Build flavour detection                                                   */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#  define MT_SANITIZED 1
#endif
#if !defined(MT_SANITIZED) && defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
      __has_feature(memory_sanitizer)
#    define MT_SANITIZED 1
#  endif
#endif
#ifndef MT_SANITIZED
#  define MT_SANITIZED 0
#endif
#if defined(__has_include)
#  if __has_include(<valgrind/valgrind.h>)
#    include <valgrind/valgrind.h>
#    define MT_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#  endif
#endif
#ifndef MT_ON_VALGRIND
#  define MT_ON_VALGRIND() 0
#endif

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* ------------------------------------------------------------------------ */
/* Seed, PRNG, scaling                                                       */

static uint64_t g_seed = DEFAULT_SEED;
static int g_quick;

static inline uint64_t mix64(uint64_t z)
{
    z += UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

typedef struct { uint64_t s; } rng_t;

static inline uint64_t rng_next(rng_t *r)
{
    r->s += UINT64_C(0x9e3779b97f4a7c15);
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static inline uint64_t rng_below(rng_t *r, uint64_t n) { return n ? rng_next(r) % n : 0; }

static inline rng_t test_rng(const char *name, uint64_t k)
{
    uint64_t h = g_seed;
    for (const char *c = name; *c; c++) h = mix64(h ^ (unsigned char)*c);
    rng_t r = { mix64(h ^ k) };
    return r;
}

/* The pool tests' generator: the name hash itself, without a stream number
 * (a different sequence from test_rng(name, 0)). */
static inline rng_t test_rng_named(const char *name)
{
    uint64_t h = g_seed;
    for (const char *c = name; *c; c++) h = mix64(h ^ (unsigned char)*c);
    rng_t r = { h };
    return r;
}

static inline int env_flag(const char *name)
{
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

/* A file with its own scaling policy defines MT_LOCAL_SCALED and its own scaled(). */
#ifndef MT_LOCAL_SCALED
static inline size_t scaled(size_t full, size_t quick) { return g_quick ? quick : full; }
#endif

static struct timespec g_t0;

static inline double elapsed_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - g_t0.tv_sec) + (double)(t.tv_nsec - g_t0.tv_nsec) / 1e9;
}

#define TEST_START() \
    do { \
        clock_gettime(CLOCK_MONOTONIC, &g_t0); \
        print_message("[%s] seed=0x%016" PRIx64 "%s\n", __func__, g_seed, \
                      g_quick ? " (quick)" : ""); \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Assertion helpers that print both values and the seed (main thread only)  */

#define T_FAIL(...) \
    do { \
        print_error("FAIL %s:%d [seed=0x%016" PRIx64 "]: ", __FILE__, __LINE__, g_seed); \
        print_error(__VA_ARGS__); \
        print_error("\n"); \
        fail(); \
    } while (0)

/* The checks compare by value whatever the operands' types: each side is
 * kept as uintmax_t (evaluated once) with whether its (promoted) type is
 * signed, which _Generic tells without evaluating it (pointers count as
 * unsigned). uintmax_t alone put
 * a negative value above every non-negative one (EXPECT_GE(pid, 0) passed
 * for a failed fork's -1) and made -1 equal to SIZE_MAX. Negative values
 * print as such. */
#define MT_SIGNED(x) \
    _Generic((x), char: CHAR_MIN < 0, signed char: 1, short: 1, int: 1, long: 1, long long: 1, default: 0)
static inline int mt_neg(uintmax_t v, int is_signed) { return is_signed && (intmax_t)v < 0; }
/* -1, 0 or 1 as a is below, equal to or above b. */
static inline int mt_order(uintmax_t a, int a_signed, uintmax_t b, int b_signed)
{
    int an = mt_neg(a, a_signed), bn = mt_neg(b, b_signed);
    if (an != bn) return an ? -1 : 1;
    return (a > b) - (a < b);   /* same sign: two's complement keeps the order */
}
#define MT_FMT_INT(v, s) (mt_neg((v), (s)) ? "-" : ""), (mt_neg((v), (s)) ? (uintmax_t)0 - (v) : (v))
#define MT_EXPECT_ORDER(a, b, ok, op, notop) \
    do { \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b); \
        int o_ = mt_order(a_, MT_SIGNED(a), b_, MT_SIGNED(b)); \
        if (!(ok)) \
            T_FAIL("%s " op " %s: %s%ju " notop " %s%ju", #a, #b, MT_FMT_INT(a_, MT_SIGNED(a)), \
                   MT_FMT_INT(b_, MT_SIGNED(b))); \
    } while (0)
#define EXPECT_EQ(a, b) MT_EXPECT_ORDER(a, b, o_ == 0, "==", "!=")
#define EXPECT_NE(a, b) MT_EXPECT_ORDER(a, b, o_ != 0, "!=", "==")
#define EXPECT_GE(a, b) MT_EXPECT_ORDER(a, b, o_ >= 0, ">=", "<")
#define EXPECT_LE(a, b) MT_EXPECT_ORDER(a, b, o_ <= 0, "<=", ">")
#define EXPECT_LT(a, b) MT_EXPECT_ORDER(a, b, o_ < 0, "<", ">=")
#define EXPECT_PTR_EQ(a, b) \
    do { \
        const void *a_ = (const void *)(a), *b_ = (const void *)(b); \
        if (a_ != b_) T_FAIL("%s == %s: %p != %p", #a, #b, a_, b_); \
    } while (0)
#define EXPECT_NONNULL(p) \
    do { \
        if ((p) == NULL) T_FAIL("%s is NULL", #p); \
    } while (0)
/* EXPECT_NONNULL with a printf-style context line printed before the failure. */
#define EXPECT_NONNULL_CTX(p, ...) \
    do { \
        if ((p) == NULL) { \
            print_error("context: "); print_error(__VA_ARGS__); print_error("\n"); \
            T_FAIL("%s is NULL", #p); \
        } \
    } while (0)
#define EXPECT_NULL(p) \
    do { \
        const void *p_ = (const void *)(p); \
        if (p_ != NULL) T_FAIL("%s is %p, expected NULL", #p, p_); \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Failures recorded off the cmocka path (worker threads, finalizers, which   */
/* must not longjmp out of the collector).                                   */

static atomic_ulong g_failures;
static pthread_mutex_t g_fail_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_fail_msg[1024];

static inline void async_fail(int line, const char *fmt, ...)
{
    if (atomic_fetch_add(&g_failures, 1) == 0) {
        va_list ap;
        pthread_mutex_lock(&g_fail_mu);
        int n = snprintf(g_fail_msg, sizeof g_fail_msg, "line %d: ", line);
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof g_fail_msg)
            vsnprintf(g_fail_msg + n, sizeof g_fail_msg - (size_t)n, fmt, ap);
        va_end(ap);
        pthread_mutex_unlock(&g_fail_mu);
    }
}
#define AFAIL(...) async_fail(__LINE__, __VA_ARGS__)

#define EXPECT_NO_ASYNC_FAILURES() \
    do { \
        unsigned long n_ = atomic_load(&g_failures); \
        if (n_) { \
            pthread_mutex_lock(&g_fail_mu); \
            print_error("first recorded failure: %s\n", g_fail_msg); \
            pthread_mutex_unlock(&g_fail_mu); \
            T_FAIL("%lu failure(s) recorded in finalizers / worker threads", n_); \
        } \
    } while (0)

/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Error handler recorder (thread-safe: it may be called inside a collection  */
/* or a destroy callback on any thread). Keeps the last REC_KEEP reports      */
/* (what, ptr, ctx), so that a failing check can list every report a call     */
/* produced.                                                                 */

#define REC_KEEP 8

static struct {
    pthread_mutex_t mu;
    unsigned long count;
    char what[REC_KEEP][256];
    const void *ptr[REC_KEEP];
    void *ctx[REC_KEEP];
} g_rec = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int g_ctx_token; /* the ctx setup_rec installs rec_handler with */

static inline void rec_handler(const char *what, const void *ptr, void *ctx)
{
    pthread_mutex_lock(&g_rec.mu);
    unsigned long i = g_rec.count++ % REC_KEEP;
    snprintf(g_rec.what[i], sizeof g_rec.what[i], "%s", what ? what : "(null)");
    g_rec.ptr[i] = ptr;
    g_rec.ctx[i] = ctx;
    pthread_mutex_unlock(&g_rec.mu);
}

static inline unsigned long rec_count(void)
{
    pthread_mutex_lock(&g_rec.mu);
    unsigned long n = g_rec.count;
    pthread_mutex_unlock(&g_rec.mu);
    return n;
}

/* Copies the last report's text (and ptr); "" and NULL when none. */
static inline void rec_last(char *what, size_t n, const void **ptr)
{
    pthread_mutex_lock(&g_rec.mu);
    unsigned long last = (g_rec.count + REC_KEEP - 1) % REC_KEEP;
    snprintf(what, n, "%s", g_rec.count ? g_rec.what[last] : "");
    if (ptr) *ptr = g_rec.count ? g_rec.ptr[last] : NULL;
    pthread_mutex_unlock(&g_rec.mu);
}

/* Prints the reports made since `since` (at most REC_KEEP of them). */
static inline void rec_print_since(unsigned long since)
{
    pthread_mutex_lock(&g_rec.mu);
    unsigned long first = since;
    if (g_rec.count - first > REC_KEEP) first = g_rec.count - REC_KEEP;
    for (unsigned long k = first; k < g_rec.count; k++)
        print_error("    report %lu: \"%s\" ptr %p\n", k - since + 1, g_rec.what[k % REC_KEEP],
                    g_rec.ptr[k % REC_KEEP]);
    pthread_mutex_unlock(&g_rec.mu);
}

static mulch_error_fn g_prev_handler;

static inline int setup_rec(void **state)
{
    (void)state;
    pthread_mutex_lock(&g_rec.mu);
    g_rec.count = 0;
    for (size_t i = 0; i < REC_KEEP; i++) {
        g_rec.what[i][0] = 0;
        g_rec.ptr[i] = NULL;
        g_rec.ctx[i] = NULL;
    }
    pthread_mutex_unlock(&g_rec.mu);
    atomic_store(&g_failures, 0);
    g_fail_msg[0] = 0;
    g_prev_handler = mulch_set_error_handler(rec_handler, &g_ctx_token);
    clock_gettime(CLOCK_MONOTONIC, &g_t0); /* teardown_rec's time, TEST_START or not */
    return 0;
}

static inline int teardown_rec(void **state)
{
    (void)state;
    mulch_error_fn mine = mulch_set_error_handler(g_prev_handler, NULL);
    print_message("  (%.2f s)\n", elapsed_s());
    if (mine != rec_handler) {
        print_error("teardown: the installed handler was %p, not rec_handler\n",
                    (void *)(uintptr_t)mine);
        return -1;
    }
    return 0;
}

#define EXPECT_NO_REPORTS(since) \
    do { \
        unsigned long s_ = (since); \
        unsigned long n_ = rec_count() - s_; \
        if (n_ != 0) { \
            rec_print_since(s_); \
            T_FAIL("expected no error-handler call, got %lu", n_); \
        } \
    } while (0)

/* Exactly one report since `before`, `what` starting with `prefix`, naming
   `ptr`, with setup_rec's ctx. */
#define EXPECT_ONE_REPORT(before, prefix, p) \
    expect_one_report_((before), (prefix), (const void *)(p), #p, __LINE__)

static inline void expect_one_report_(unsigned long before, const char *prefix, const void *ptr,
                                      const char *expr, int line)
{
    pthread_mutex_lock(&g_rec.mu);
    unsigned long n = g_rec.count - before;
    unsigned long last = (g_rec.count + REC_KEEP - 1) % REC_KEEP;
    char what[256];
    memcpy(what, g_rec.what[last], sizeof what);
    const void *got = g_rec.ptr[last];
    void *ctx = g_rec.ctx[last];
    pthread_mutex_unlock(&g_rec.mu);
    if (n != 1) {
        rec_print_since(before);
        T_FAIL("(line %d) misuse with %s = %p: %lu error-handler calls, expected 1 starting "
               "with \"%s\"", line, expr, ptr, n, prefix);
    }
    if (strncmp(what, prefix, strlen(prefix)) != 0)
        T_FAIL("(line %d) report \"%s\" does not start with \"%s\"", line, what, prefix);
    if (got != ptr)
        T_FAIL("(line %d) report \"%s\" names ptr %p, the caller passed %s = %p", line, what,
               got, expr, ptr);
    if (ctx != &g_ctx_token)
        T_FAIL("(line %d) handler ctx %p, expected %p", line, ctx, (void *)&g_ctx_token);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* Hides a pointer's provenance from the optimizer. */
static inline void *launder(void *p)
{
#if defined(__GNUC__)
    __asm__ volatile("" : "+r"(p) : : "memory");
#endif
    return p;
}

/* The usual start of main(): seed from MULCH_TEST_SEED, quick mode from
 * MULCH_TEST_QUICK (or a sanitizer / valgrind build), and the banner. */
static inline void mt_read_seed(void)
{
    const char *e = getenv("MULCH_TEST_SEED");
    if (e && *e) g_seed = strtoull(e, NULL, 0);
}

static inline void mt_init(const char *prog)
{
    mt_read_seed();
    g_quick = env_flag("MULCH_TEST_QUICK") || MT_SANITIZED || MT_ON_VALGRIND();
    print_message("%s: seed=0x%016" PRIx64 " (set MULCH_TEST_SEED to reproduce)%s\n", prog,
                  g_seed, g_quick ? ", quick mode" : "");
}

/* A test of an option's own behaviour drops the caller's override of it
 * (the MULCH_GC_* variables of docs/tuning.md, read by gc_heap_create):
 * `MULCH_GC_GENERATIONAL=1 ctest` would otherwise test another mode. Call
 * from main, before any thread starts. */
static inline void mt_env_ignore(const char *name)
{
    if (getenv(name) == NULL) return;
    print_message("[note] %s is set; this test checks that option itself and ignores it\n", name);
    unsetenv(name);
}

/* A test whose forked children collect drops MULCH_GC_MARKERS under
 * ThreadSanitizer: a child of a multithreaded process that starts helper
 * markers is ended by TSan's runtime ("starting new threads after
 * multi-threaded fork is not supported"), which is TSan's limit, not
 * mulch's (test_gc_fork_parallel_marking tests that case in other
 * builds). Call from main, before any thread starts. */
static inline void mt_env_ignore_markers_under_tsan(void)
{
#if defined(__SANITIZE_THREAD__)
    mt_env_ignore("MULCH_GC_MARKERS");
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
    mt_env_ignore("MULCH_GC_MARKERS");
#  endif
#endif
}

/* ... and a test that counts collections or checks when they come drops
 * every override of the heap policy (the mode overrides stay: those tests
 * run in each mode on purpose). */
static inline void mt_env_ignore_policy(void)
{
    mt_env_ignore("MULCH_GC_HEAP_GROWTH");
    mt_env_ignore("MULCH_GC_HEAP_KEEP");
    mt_env_ignore("MULCH_GC_INITIAL_HEAP");
    mt_env_ignore("MULCH_GC_MAX_HEAP");
    mt_env_ignore("MULCH_GC_STRESS");
    mt_env_ignore("MULCH_GC_EVACUATE_BELOW");
}

#if defined(_GNU_SOURCE)
/* Runs fn(arg) on a new thread and joins it; false when it has not
 * returned within `seconds` (the thread is then left behind, detached).
 * For calls that once hung: a regression fails the test instead of
 * stalling it. */
static inline bool mt_finishes_within(void *(*fn)(void *), void *arg, int seconds)
{
    pthread_t thread;
    if (pthread_create(&thread, NULL, fn, arg) != 0) T_FAIL("pthread_create failed");
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    if (pthread_timedjoin_np(thread, NULL, &until) == 0) return true;
    pthread_detach(thread);
    return false;
}
#endif

/* ======================================================================== */
/* Collector helpers (define MULCH_TEST_GC before including)                 */

#if defined(MULCH_TEST_GC) || defined(MULCH_TEST_GC_OBJECTS)
#include <mulch/gc.h>

/* At least one report since `since`, the last one's text starting with "gc_". */
#define EXPECT_GC_REPORTS(since) \
    do { \
        unsigned long n_ = rec_count() - (since); \
        char w_[256]; const void *p_; \
        rec_last(w_, sizeof w_, &p_); \
        if (n_ == 0) T_FAIL("expected an error-handler call, got none"); \
        else if (strncmp(w_, "gc_", 3) != 0) \
            T_FAIL("report \"%s\" does not start with a gc_ function name", w_); \
    } while (0)

static inline gc_stats_t stats_of(gc_heap_t *heap)
{
    gc_stats_t s;
    memset(&s, 0xCD, sizeof s);
    gc_get_stats(heap, &s);
    return s;
}

/* gc_verify finds nothing, and neither does gc_verify_untraced: every test
 * that checks its heap with EXPECT_VERIFY also checks that the heuristic
 * reports no word of a sound program (EXPECT_VERIFY_ONLY for a heap that
 * has an untraced field on purpose). Tests that call gc_verify directly on
 * a quiet heap call gc_verify_untraced next to it; the calls made while
 * other threads run (stress and model tests) check gc_verify alone. */
#define EXPECT_VERIFY_WITH(heap, fn) \
    do { \
        unsigned long r_ = rec_count(); \
        size_t v_ = fn(heap); \
        if (v_ != 0) { \
            char w_[256]; const void *p_; \
            rec_last(w_, sizeof w_, &p_); \
            T_FAIL(#fn " found %zu problem(s) (last report: \"%s\" ptr %p)", v_, w_, p_); \
        } \
        EXPECT_NO_REPORTS(r_); \
    } while (0)
#define EXPECT_VERIFY_ONLY(heap) EXPECT_VERIFY_WITH(heap, gc_verify)
#define EXPECT_VERIFY(heap) \
    do { \
        gc_heap_t *h_ = (heap); \
        EXPECT_VERIFY_WITH(h_, gc_verify); \
        EXPECT_VERIFY_WITH(h_, gc_verify_untraced); \
    } while (0)

static inline gc_heap_t *heap_new(size_t initial, size_t max, int compaction)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.initial_heap = initial;
    o.max_heap = max;
    o.compaction = compaction;
    gc_heap_t *h = gc_heap_create(&o);
    if (!h) {
        print_error("gc_heap_create(initial %zu, max %zu, compaction %d) returned NULL\n",
                    initial, max, compaction);
        fail();
    }
    return h;
}

#endif /* MULCH_TEST_GC */

#if defined(MULCH_TEST_GC_OBJECTS)

/* ------------------------------------------------------------------------ */
/* Test objects: NSLOTS reference slots, a magic word, an id and `nwords`     */
/* payload words derived from the id. Finalizers record the id.              */

#define OBJ_MAGIC UINT64_C(0x6f626a2d6d756c63)
#define NSLOTS 4
#define MAX_IDS 4096

typedef struct tobj {
    void *slot[NSLOTS];
    uint64_t magic;
    uint64_t id;
    uint64_t nwords;
    uint64_t words[];
} tobj_t;

static inline uint64_t payload_word(uint64_t id, uint64_t i) { return mix64(id * 0x100000001b3u + i); }

static atomic_uint g_fin[MAX_IDS];     /* finalizer runs per id */
static atomic_ulong g_fin_total;        /* all finalizer runs of tobj types */

static inline void fin_reset(void)
{
    for (size_t i = 0; i < MAX_IDS; i++) atomic_store(&g_fin[i], 0);
    atomic_store(&g_fin_total, 0);
}

static inline unsigned fin_of(uint64_t id) { return id < MAX_IDS ? atomic_load(&g_fin[id]) : 0; }

/* NULL when o holds object `id` intact, else a description. */
static inline const char *obj_problem(const tobj_t *o, uint64_t id)
{
    if (o == NULL) return "NULL";
    if (((uintptr_t)o & 7u) != 0) return "misaligned";
    if (o->magic != OBJ_MAGIC) return "magic word damaged";
    if (o->id != id) return "wrong id";
    if (o->nwords > ((uint64_t)1 << 28)) return "payload length damaged";
    for (uint64_t i = 0; i < o->nwords; i++)
        if (o->words[i] != payload_word(id, i)) return "payload damaged";
    return NULL;
}

#define EXPECT_OBJ(p, want_id) \
    do { \
        const tobj_t *o_ = (const tobj_t *)(p); \
        uint64_t w_ = (uint64_t)(want_id); \
        const char *why_ = obj_problem(o_, w_); \
        if (why_) \
            T_FAIL("object %s = %p should be id %" PRIu64 ": %s (id there %" PRIu64 ")", #p, \
                   (const void *)o_, w_, why_, o_ && ((uintptr_t)o_ & 7u) == 0 ? o_->id : 0); \
    } while (0)

#define EXPECT_FIN(id, n) \
    do { \
        uint64_t i_ = (uint64_t)(id); \
        unsigned got_ = fin_of(i_), want_ = (unsigned)(n); \
        if (got_ != want_) \
            T_FAIL("object id %" PRIu64 " (%s) finalized %u time(s), expected %u", i_, #id, got_, \
                   want_); \
    } while (0)

static inline void trace_tobj(void *obj, gc_tracer_t *tracer)
{
    tobj_t *o = obj;
    gc_trace_range(tracer, o->slot, NSLOTS);
}

static inline void fin_tobj(void *obj)
{
    tobj_t *o = obj;
    const char *why = obj_problem(o, o->id);
    if (why) AFAIL("finalizer got a damaged object %p: %s", obj, why);
    if (o->id < MAX_IDS) {
        if (atomic_fetch_add(&g_fin[o->id], 1) != 0)
            AFAIL("object id %" PRIu64 " finalized twice", o->id);
    }
    atomic_fetch_add(&g_fin_total, 1);
}

MT_UNUSED static const gc_type_t T_PLAIN = { "test.plain", trace_tobj, NULL };
MT_UNUSED static const gc_type_t T_FIN   = { "test.fin", trace_tobj, fin_tobj };
MT_UNUSED static const gc_type_t T_RAW   = { "test.raw", NULL, NULL };

static inline size_t tobj_size(size_t nwords) { return sizeof(tobj_t) + nwords * sizeof(uint64_t); }

/* A GC point: the caller must have rooted whatever it still needs. */
static inline tobj_t *mk(gc_thread_t *t, const gc_type_t *type, uint64_t id, size_t nwords)
{
    tobj_t *o = gc_alloc(t, type, tobj_size(nwords));
    if (!o) {
        print_error("gc_alloc(%s, %zu) returned NULL\n", type->name, tobj_size(nwords));
        fail();
    }
    for (size_t i = 0; i < NSLOTS; i++)
        if (o->slot[i] != NULL) {
            print_error("gc_alloc returned an object whose slot %zu is %p, not zeroed\n", i,
                        o->slot[i]);
            fail();
        }
    o->magic = OBJ_MAGIC;
    o->id = id;
    o->nwords = nwords;
    for (size_t i = 0; i < nwords; i++) o->words[i] = payload_word(id, i);
    return o;
}

/* mk for threads other than main: a NULL is recorded (AFAIL), not raised,
 * and returned; the caller checks EXPECT_NO_ASYNC_FAILURES. */
static inline tobj_t *mk_async(gc_thread_t *t, const gc_type_t *type, uint64_t id, size_t nwords)
{
    tobj_t *o = gc_alloc(t, type, tobj_size(nwords));
    if (o == NULL) {
        AFAIL("gc_alloc(%s, %zu) returned NULL", type->name, tobj_size(nwords));
        return NULL;
    }
    o->magic = OBJ_MAGIC;
    o->id = id;
    o->nwords = nwords;
    for (size_t i = 0; i < nwords; i++) o->words[i] = payload_word(id, i);
    return o;
}

static inline void set_slot(gc_thread_t *t, void *obj, size_t k, void *value)
{
    tobj_t *o = obj;
    gc_write(t, o, &o->slot[k], value);
}

static inline void *slot_of(void *obj, size_t k) { return ((tobj_t *)obj)->slot[k]; }

/* Allocates a new object (a GC point) and only then stores it into slot k of
 * the object held in the rooted slot *parent. */
static inline void *mk_child(gc_thread_t *t, void **parent, size_t k, const gc_type_t *type, uint64_t id,
                      size_t nwords)
{
    void *n = mk(t, type, id, nwords);
    set_slot(t, *parent, k, n);
    return n;
}

MT_UNUSED static const int k_modes[] = { GC_COMPACT_AUTO, GC_COMPACT_ALWAYS, GC_COMPACT_NEVER };
MT_UNUSED static const char *const k_mode_names[] = { "auto", "always", "never" };
#define N_MODES (sizeof k_modes / sizeof k_modes[0])

#endif /* MULCH_TEST_GC_OBJECTS */

/* ======================================================================== */
/* Pool helpers (define MULCH_TEST_POOL before including)                    */

#if defined(MULCH_TEST_POOL)
#if defined(MULCH_TEST_GC) || defined(MULCH_TEST_GC_OBJECTS)
#  error "MULCH_TEST_POOL and MULCH_TEST_GC both define stats_of()"
#endif
#include <mulch/pool.h>

static inline pool_stats_t stats_of(pool_t *pool)
{
    pool_stats_t s;
    memset(&s, 0xCD, sizeof s);
    pool_get_stats(pool, &s);
    return s;
}

/* pool_report_leaks's count, the report itself written to /dev/null. */
static inline size_t report_count(pool_t *pool)
{
    FILE *f = fopen("/dev/null", "w");
    assert_non_null(f);
    size_t n = pool_report_leaks(pool, f);
    fclose(f);
    return n;
}

/* Byte patterns: word i of the pattern `tag`. Pointers are laundered so that
 * alloc_size-based object-size tracking (_FORTIFY_SOURCE, -Warray-bounds,
 * UBSan object-size) does not object to a test using the whole usable size,
 * which the contract allows. */
static inline uint64_t pat_word(uint64_t tag, size_t i)
{
    return tag ^ ((uint64_t)(i + 1) * UINT64_C(0x9e3779b97f4a7c15));
}

static inline void fill(void *p, size_t n, uint64_t tag)
{
    unsigned char *b = launder(p);
    size_t words = n / 8, i;
    for (i = 0; i < words; i++) {
        uint64_t w = pat_word(tag, i);
        memcpy(b + i * 8, &w, 8);
    }
    if (n % 8) {
        uint64_t w = pat_word(tag, i);
        memcpy(b + i * 8, &w, n % 8);
    }
}

/* SIZE_MAX when the n bytes at p hold the pattern, else the offset of the
 * first bad byte. */
static inline size_t check(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *b = launder((void *)(uintptr_t)p);
    size_t words = n / 8, i;
    for (i = 0; i < words; i++) {
        uint64_t w = pat_word(tag, i), got;
        memcpy(&got, b + i * 8, 8);
        if (got != w) {
            for (size_t k = 0; k < 8; k++)
                if (((const unsigned char *)&w)[k] != b[i * 8 + k]) return i * 8 + k;
        }
    }
    if (n % 8) {
        uint64_t w = pat_word(tag, i);
        for (size_t k = 0; k < n % 8; k++)
            if (((const unsigned char *)&w)[k] != b[i * 8 + k]) return i * 8 + k;
    }
    return SIZE_MAX;
}

#define EXPECT_PATTERN(p, n, tag) \
    do { \
        size_t bad_ = check((p), (n), (tag)); \
        if (bad_ != SIZE_MAX) \
            T_FAIL("pattern of %s (%p, %zu bytes) damaged at offset %zu", #p, \
                   (const void *)(p), (size_t)(n), bad_); \
    } while (0)

#endif /* MULCH_TEST_POOL */

#endif /* MULCH_TEST_H */
