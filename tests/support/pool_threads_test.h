/* pool_threads_test.h — the harness shared by the multi-threaded pool
 * stress tests tests/stress/test_pool_threads_{churn,exit,pools}.c:
 *
 *   - seed_for(test, k): a thread's seed; scaled(): full in Release, a
 *     quarter under sanitizers, the quick size with MULCH_TEST_QUICK=1 or
 *     under valgrind; pool_threads_init() sets that up and prints the seed;
 *   - a watchdog (armed by TEST_START) that aborts a hung test with its name
 *     and the seed instead of running into the ctest timeout;
 *   - TFAIL / SOFT_EQ: failures recorded off the cmocka path, checked with
 *     EXPECT_NO_ASYNC_FAILURES() after the threads are joined;
 *   - setup / teardown installing an error handler that fails the test on
 *     any report (nothing here is misuse; g_reports counts them);
 *   - item_t objects carrying a pattern derived from (pointer, size, owner
 *     seed), verified before they are freed (item_alloc, item_free);
 *   - expect_quiescent_empty: the pool's statistics once all is freed.
 *
 * Include it instead of mulch_test.h, after defining DEFAULT_SEED: it
 * includes mulch_test.h with MULCH_TEST_POOL (stats_of, report_count,
 * pat_word) and MT_LOCAL_SCALED (scaled() is the one here). Everything here
 * is static (inline) and belongs to the including file. */
#ifndef MULCH_POOL_THREADS_TEST_H
#define MULCH_POOL_THREADS_TEST_H

#ifdef MULCH_TEST_H
#  error "include pool_threads_test.h instead of mulch_test.h"
#endif
#define MULCH_TEST_POOL 1
#define MT_LOCAL_SCALED 1 /* scaled() below: sanitizer builds run a quarter */
#include <signal.h>
#include <unistd.h>

#include "mulch_test.h"

/* ------------------------------------------------------------------------ */
/* Seed / scaling                                                            */

static inline uint64_t seed_for(const char *name, uint64_t k) { return test_rng(name, k).s; }

static int g_sanitized;

/* Release: full; sanitizers: a quarter; MULCH_TEST_QUICK / valgrind: quick. */
static inline size_t scaled(size_t full, size_t quick)
{
    if (g_quick) return quick;
    if (g_sanitized) return full / 4 > quick ? full / 4 : quick;
    return full;
}

/* Watchdog: a hung test (deadlock, livelock in the pool) aborts with its
   name and the seed instead of silently running into the ctest timeout. */
#ifndef WATCHDOG_SECONDS
#  define WATCHDOG_SECONDS 200
#endif
static char g_watchdog_msg[256];

static inline void watchdog_fired(int sig)
{
    (void)sig;
    ssize_t r = write(2, g_watchdog_msg, strlen(g_watchdog_msg));
    (void)r;
    abort();
}

static inline void watchdog_arm(const char *test)
{
    snprintf(g_watchdog_msg, sizeof g_watchdog_msg,
             "\nWATCHDOG: %s did not finish within %d s (hang?) [seed=0x%016" PRIx64 "]\n", test,
             WATCHDOG_SECONDS, g_seed);
    signal(SIGALRM, watchdog_fired);
    alarm(WATCHDOG_SECONDS);
}

#undef TEST_START
#define TEST_START() \
    do { \
        watchdog_arm(__func__); \
        print_message("[%s] seed=0x%016" PRIx64 "%s\n", __func__, g_seed, \
                      g_quick ? " (quick)" : g_sanitized ? " (sanitizer scale)" : ""); \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Failure reporting: cmocka asserts only on the main thread; worker threads */
/* record their first failure with TFAIL (the header's AFAIL) and the main   */
/* thread checks EXPECT_NO_ASYNC_FAILURES() after joining them.              */

#define TFAIL(...) AFAIL(__VA_ARGS__)

/* For checks made on the main thread while helpers wait at a barrier: a
   cmocka failure there would strand them, so record and assert after join. */
#define SOFT_EQ(a, b) \
    do { \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b); \
        if (a_ != b_) TFAIL("%s == %s: %ju != %ju", #a, #b, a_, b_); \
    } while (0)

static inline void reset_failures(void)
{
    atomic_store(&g_failures, 0);
    g_fail_msg[0] = 0;
}

/* Error handler: in these tests nothing is misuse, so any call is a failure. */
static atomic_ulong g_reports;
static inline void counting_handler(const char *what, const void *ptr, void *ctx)
{
    (void)ctx;
    if (atomic_fetch_add(&g_reports, 1) == 0)
        TFAIL("unexpected error-handler call: \"%s\" ptr %p", what ? what : "(null)", ptr);
}

static inline int setup(void **state)
{
    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &g_t0);
    reset_failures();
    atomic_store(&g_reports, 0);
    g_prev_handler = mulch_set_error_handler(counting_handler, NULL);
    return 0;
}

static inline int teardown(void **state)
{
    (void)state;
    mulch_set_error_handler(g_prev_handler, NULL);
    alarm(0);
    print_message("  (%.2f s)\n", elapsed_s());
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Patterns: full for small objects; head, tail and one word per 4 KiB for   */
/* bigger ones (pat_word comes from mulch_test.h).                          */

static inline uint64_t obj_tag(const void *p, size_t size, uint64_t owner_seed)
{
    return mix64((uint64_t)(uintptr_t)p ^ mix64((uint64_t)size * 31 + owner_seed));
}

/* [off, end) with off a multiple of 8 */
static inline void fill_range(unsigned char *b, size_t off, size_t end, uint64_t tag)
{
    size_t i = off;
    for (; i + 8 <= end; i += 8) {
        uint64_t w = pat_word(tag, i / 8);
        memcpy(b + i, &w, 8);
    }
    if (i < end) {
        uint64_t w = pat_word(tag, i / 8);
        memcpy(b + i, &w, end - i);
    }
}

static inline size_t check_range(const unsigned char *b, size_t off, size_t end, uint64_t tag)
{
    size_t i = off;
    for (; i + 8 <= end; i += 8) {
        uint64_t w = pat_word(tag, i / 8), got;
        memcpy(&got, b + i, 8);
        if (got != w)
            for (size_t k = 0; k < 8; k++)
                if (b[i + k] != ((const unsigned char *)&w)[k]) return i + k;
    }
    if (i < end) {
        uint64_t w = pat_word(tag, i / 8);
        for (size_t k = 0; i + k < end; k++)
            if (b[i + k] != ((const unsigned char *)&w)[k]) return i + k;
    }
    return SIZE_MAX;
}

static inline void sfill(void *p, size_t n, uint64_t tag)
{
    unsigned char *b = launder(p);
    if (n <= 512) {
        fill_range(b, 0, n, tag);
        return;
    }
    fill_range(b, 0, 256, tag);
    size_t tail = (n - 256) & ~(size_t)7;
    fill_range(b, tail, n, tag);
    for (size_t off = 4096; off + 8 <= tail; off += 4096) fill_range(b, off, off + 8, tag);
}

static inline size_t scheck(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *b = launder((void *)(uintptr_t)p);
    size_t bad;
    if (n <= 512) return check_range(b, 0, n, tag);
    if ((bad = check_range(b, 0, 256, tag)) != SIZE_MAX) return bad;
    size_t tail = (n - 256) & ~(size_t)7;
    if ((bad = check_range(b, tail, n, tag)) != SIZE_MAX) return bad;
    for (size_t off = 4096; off + 8 <= tail; off += 4096)
        if ((bad = check_range(b, off, off + 8, tag)) != SIZE_MAX) return bad;
    return SIZE_MAX;
}

typedef struct {
    void *p;
    size_t size;
    uint64_t seed; /* owner (allocating thread) seed */
} item_t;

static inline int item_alloc(pool_t *pool, item_t *it, size_t size, uint64_t owner_seed)
{
    it->p = pool_alloc(pool, size);
    it->size = size;
    it->seed = owner_seed;
    if (!it->p) {
        TFAIL("pool_alloc(%zu) returned NULL", size);
        return -1;
    }
    if ((uintptr_t)it->p % 16 != 0) TFAIL("pool_alloc(%zu) = %p is not 16-aligned", size, it->p);
    sfill(it->p, size, obj_tag(it->p, size, owner_seed));
    return 0;
}

/* Verifies then frees. */
static inline void item_free(pool_t *pool, item_t *it)
{
    size_t bad = scheck(it->p, it->size, obj_tag(it->p, it->size, it->seed));
    if (bad != SIZE_MAX)
        TFAIL("object %p (size %zu, owner seed %016" PRIx64 ") corrupted at offset %zu", it->p,
              it->size, it->seed, bad);
    size_t u = pool_usable_size(pool, it->p);
    if (u < it->size) TFAIL("pool_usable_size(%p) = %zu < %zu", it->p, u, it->size);
    pool_free(pool, it->p);
    it->p = NULL;
}

static inline void expect_quiescent_empty(pool_t *pool, uint64_t allocs)
{
    pool_stats_t s = stats_of(pool);
    print_message("  stats: allocs %" PRIu64 " frees %" PRIu64 " live %zu in_use %zu reserved %zu"
                  " peak %zu\n", s.allocs, s.frees, s.live_allocations, s.bytes_in_use,
                  s.bytes_reserved, s.peak_reserved);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.bytes_in_use, 0);
    EXPECT_EQ(s.allocs, allocs);
    EXPECT_EQ(s.frees, allocs);
    EXPECT_LE(s.bytes_reserved, s.peak_reserved);
    if (!(s.fragmentation >= 0.0 && s.fragmentation <= 1.0))
        T_FAIL("fragmentation %g outside [0,1]", s.fragmentation);
}

/* The start of main(): seed from MULCH_TEST_SEED, quick mode from
 * MULCH_TEST_QUICK or valgrind, sanitizer scale, and the banner. */
static inline void pool_threads_init(const char *prog)
{
    mt_read_seed();
    g_quick = env_flag("MULCH_TEST_QUICK") || MT_ON_VALGRIND(); /* not sanitizers: g_sanitized */
    g_sanitized = MT_SANITIZED;
    print_message("%s: seed=0x%016" PRIx64
                  " (set MULCH_TEST_SEED to reproduce)%s\n", prog, g_seed,
                  g_quick ? ", quick mode" : g_sanitized ? ", sanitizer scale" : "");
}

#endif /* MULCH_POOL_THREADS_TEST_H */
