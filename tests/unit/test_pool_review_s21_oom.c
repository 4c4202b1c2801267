/* test_pool_review_s21_oom.c — systematic OOM injection over one scripted
 * sequence of pool operations that involves threads: for k = 1, 2, ...
 * the kth OS mapping from the start of the sequence fails (os_fail_after),
 * until a run no longer reaches its kth mapping. The sequence: pool_create,
 * small, large, aligned (small and large) allocations, calloc, realloc
 * growing across the large threshold and shrinking back, a thread that
 * frees some of them (cross-thread frees) and allocates (its heap, then its
 * exit), pool_trim, more allocations after the trim. Each step either
 * succeeds or returns NULL, with no report; then, with the injection off,
 * the pool must be fully usable, the statistics must match the live set
 * (live_allocations, bytes_in_use = the sum of the usable sizes, the leak
 * report's count), contents must be intact, and freeing everything must
 * leave it empty before pool_destroy. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x6f6f6d2d73323161)
#include <mulch.h>

#include <pthread.h>
#include <stdio.h>

#include "mulch_test.h"
#include "pool_internal.h"

#define SLOTS 24

static const char *g_name = ""; /* the options of the sweep running */

typedef struct live {
    unsigned char *p[SLOTS];
    size_t size[SLOTS];
} live_t;

static void put(live_t *l, unsigned i, void *p, size_t size) {
    l->p[i] = p;
    l->size[i] = p ? size : 0;
    if (p) memset(p, (int)(0x40 + i), size < 256 ? size : 256);
}

static void check_contents(const live_t *l, unsigned k) {
    for (unsigned i = 0; i < SLOTS; i++) {
        if (l->p[i] == NULL) continue;
        size_t n = l->size[i] < 256 ? l->size[i] : 256;
        for (size_t j = 0; j < n; j++)
            if (l->p[i][j] != (unsigned char)(0x40 + i)) {
                T_FAIL("%s k=%u: slot %u byte %zu changed", g_name, k, i, j);
                return;
            }
    }
}

typedef struct remote {
    pool_t *pool;
    live_t *live;
    unsigned first, last; /* slots the thread frees */
    void *kept;           /* allocated by the thread, left to the main thread */
} remote_t;

static void *remote_thread(void *arg) {
    remote_t *r = arg;
    for (unsigned i = r->first; i <= r->last; i++) {
        pool_free(r->pool, r->live->p[i]);
        r->live->p[i] = NULL;
        r->live->size[i] = 0;
    }
    /* its own heap, spans and a large object; some stay after it exits */
    void *tmp[8];
    for (unsigned i = 0; i < 8; i++) tmp[i] = pool_alloc(r->pool, 24 + 40 * i);
    void *big = pool_alloc(r->pool, 200 * KiB);
    for (unsigned i = 0; i < 8; i += 2) pool_free(r->pool, tmp[i]);
    pool_free(r->pool, big);
    r->kept = tmp[1];
    for (unsigned i = 3; i < 8; i += 2) pool_free(r->pool, tmp[i]);
    return NULL;
}

/* The sequence; returns the pool (NULL when pool_create failed). */
static pool_t *run_sequence(live_t *l, const pool_options_t *opts) {
    memset(l, 0, sizeof *l);
    pool_t *pool = pool_create(opts);
    if (pool == NULL) return NULL;
    for (unsigned i = 0; i < 6; i++) put(l, i, pool_alloc(pool, 16 + 48 * i), 16 + 48 * i);
    put(l, 6, pool_alloc(pool, 300 * KiB), 300 * KiB);
    put(l, 7, pool_alloc_aligned(pool, 100, 4096), 100);
    put(l, 8, pool_alloc_aligned(pool, 200 * KiB, 1 * MiB), 200 * KiB);
    unsigned char *z = pool_calloc(pool, 100, 40);
    if (z) {
        for (size_t j = 0; j < 4000; j++)
            if (z[j]) T_FAIL("calloc byte %zu is %u", j, z[j]);
    }
    put(l, 9, z, 4000);
    unsigned char *zl = pool_calloc(pool, 1, 160 * KiB);
    if (zl && (zl[0] || zl[160 * KiB - 1])) T_FAIL("large calloc not zeroed");
    put(l, 10, zl, 160 * KiB);
    /* realloc across the large threshold, then back */
    for (unsigned i = 11; i < 14; i++) put(l, i, pool_alloc(pool, 1000), 1000);
    for (unsigned i = 11; i < 14; i++) {
        if (l->p[i] == NULL) continue;
        unsigned char *q = pool_realloc(pool, l->p[i], 150 * KiB + i * 8 * KiB);
        if (q) {
            l->p[i] = q;
            l->size[i] = 150 * KiB + i * 8 * KiB;
            memset(q, 0x40 + (int)i, 256);
        }
    }
    if (l->p[6]) {
        unsigned char *q = pool_realloc(pool, l->p[6], 500);
        if (q) {
            l->p[6] = q;
            l->size[6] = 500;
        }
    }
    /* a thread frees slots 0..3 and 11 (small and large), allocates, exits */
    remote_t r = { pool, l, 0, 3, NULL };
    pthread_t t;
    if (pthread_create(&t, NULL, remote_thread, &r) == 0) {
        pthread_join(t, NULL);
        put(l, 14, r.kept, 64); /* (its size is at least 64) */
    }
    pool_trim(pool);
    for (unsigned i = 15; i < SLOTS; i++) put(l, i, pool_alloc(pool, 32 + 100 * i), 32 + 100 * i);
    return pool;
}

static void check_stats(pool_t *pool, const live_t *l, unsigned k) {
    size_t count = 0, bytes = 0;
    for (unsigned i = 0; i < SLOTS; i++) {
        if (l->p[i] == NULL) continue;
        count++;
        bytes += pool_usable_size(pool, l->p[i]);
    }
    pool_stats_t st;
    pool_get_stats(pool, &st);
    if (st.live_allocations != count || st.bytes_in_use != bytes)
        T_FAIL("%s k=%u: %zu live allocations, %zu bytes in use; the pool says %zu and %zu", g_name, k, count, bytes,
               st.live_allocations, st.bytes_in_use);
    FILE *devnull = fopen("/dev/null", "w");
    size_t leaks = pool_report_leaks(pool, devnull);
    if (devnull) fclose(devnull);
    if (leaks != count) T_FAIL("%s k=%u: the leak report counts %zu, %zu are live", g_name, k, leaks, count);
    if (st.bytes_reserved > st.bytes_mapped) T_FAIL("%s k=%u: reserved %zu > mapped %zu", g_name, k, st.bytes_reserved, st.bytes_mapped);
    if (st.peak_reserved < st.bytes_reserved) T_FAIL("%s k=%u: peak below reserved", g_name, k);
}

static void sweep(const pool_options_t *opts, const char *name) {
    g_name = name;
    live_t l;
    /* warm-up: the thread heap records and chunk-map leaves exist */
    pool_t *warm = run_sequence(&l, opts);
    EXPECT_NONNULL(warm);
    pool_destroy(warm);
    unsigned k;
    for (k = 1;; k++) {
        unsigned long r0 = rec_count();
        os_fail_after(k);
        pool_t *pool = run_sequence(&l, opts);
        uint64_t left = os_fail_after(0);
        EXPECT_NO_REPORTS(r0);
        if (pool == NULL) continue;
        check_contents(&l, k);
        check_stats(pool, &l, k);
        /* fully usable: every kind of allocation succeeds now */
        void *a = pool_alloc(pool, 40), *b = pool_alloc(pool, 300 * KiB), *c = pool_alloc_aligned(pool, 64, 4096);
        void *d = pool_calloc(pool, 10, 1000);
        if (!a || !b || !c || !d) T_FAIL("%s k=%u: the pool no longer allocates", g_name, k);
        pool_free(pool, a);
        pool_free(pool, b);
        pool_free(pool, c);
        pool_free(pool, d);
        for (unsigned i = 0; i < SLOTS; i++) pool_free(pool, l.p[i]);
        pool_trim(pool);
        pool_stats_t st;
        pool_get_stats(pool, &st);
        if (st.live_allocations != 0 || st.bytes_in_use != 0 || st.large_objects != 0)
            T_FAIL("%s k=%u: after freeing everything: %zu live, %zu bytes in use, %zu large", g_name, k,
                   st.live_allocations, st.bytes_in_use, st.large_objects);
        EXPECT_NO_REPORTS(r0);
        pool_destroy(pool);
        if (left != 0) break; /* the run did not reach its kth mapping */
        if (k > 2000) {
            T_FAIL("the sequence never completes");
            break;
        }
    }
    print_message("%s: %u injection points\n", name, k);
}

static void test_every_mapping_failure_leaves_the_pool_usable(void **state) {
    (void)state;
    TEST_START();
    pool_options_t opts = { 0 };
    sweep(&opts, "default");
    opts.track_leaks = 1;
    sweep(&opts, "track_leaks");
    opts.track_leaks = 0;
    opts.secure = 1;
    sweep(&opts, "secure");
    opts.secure = 0;
    opts.block_size = 16 * KiB;
    opts.limit = 8 * MiB;
    sweep(&opts, "16 KiB blocks, 8 MiB limit");
}

int main(void) {
    mt_init("test_pool_review_s21_oom");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_every_mapping_failure_leaves_the_pool_usable),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
