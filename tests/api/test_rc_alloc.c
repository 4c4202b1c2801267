/* test_rc_alloc.c — black-box tests of reference-counted objects
 * (<mulch/rc.h>; docs: shared/API.md "RC" and "Errors and misuse",
 * docs/rc.md), allocation:
 *   - rc_alloc / rc_alloc_in: zeroed, 16-byte aligned, count 1; the cell is
 *     visible in the pool's statistics and goes back when destroyed; OOM is
 *     not misuse; pool_destroy does not run destroy callbacks.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. MULCH_TEST_QUICK=1
 * (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372630c01)
#include <mulch/rc.h>

#include "rc_test.h"

/* ======================================================================== */
/* rc_alloc / rc_alloc_in                                                    */

static void test_rc_alloc_zeroed_aligned(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    unsigned long r0 = rec_count();
    size_t sizes[40] = { 0, 1, 7, 15, 16, 17, 31, 32, 33, 48, 63, 64, 100, 255, 1000, 4096,
                         4097, 16 * KiB, 20000, 64 * KiB, 100 * KiB, MiB, 3 * MiB + 7 };
    size_t n = 23;
    while (n < sizeof sizes / sizeof sizes[0]) sizes[n++] = (size_t)rng_below(&r, 9000);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < n; i++) {
            unsigned char *p = rc_alloc(sizes[i], NULL);
            if (p == NULL) T_FAIL("rc_alloc(%zu) returned NULL", sizes[i]);
            if ((uintptr_t)p % 16 != 0) T_FAIL("rc_alloc(%zu) = %p is not 16-byte aligned", sizes[i], (void *)p);
            for (size_t k = 0; k < sizes[i]; k++)
                if (p[k] != 0) T_FAIL("rc_alloc(%zu) = %p: byte %zu is 0x%02x, not 0 (round %d)", sizes[i],
                                      (void *)p, k, p[k], round);
            EXPECT_EQ(rc_count(p), 1);
            fill(p, sizes[i], 0xabcdef00u + i); /* dirty the cell: the next round may reuse it */
            EXPECT_PATTERN(p, sizes[i], 0xabcdef00u + i);
            rc_release(p);
        }
    }
    /* Same in a pool of our own, several objects alive at once. */
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    void *live[40];
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < n; i++) {
            unsigned char *p = rc_alloc_in(pool, sizes[i], NULL);
            if (p == NULL) T_FAIL("rc_alloc_in(%zu) returned NULL", sizes[i]);
            if ((uintptr_t)p % 16 != 0) T_FAIL("rc_alloc_in(%zu) = %p is not 16-byte aligned", sizes[i], (void *)p);
            for (size_t k = 0; k < sizes[i]; k++)
                if (p[k] != 0) T_FAIL("rc_alloc_in(%zu) = %p: byte %zu is 0x%02x, not 0", sizes[i], (void *)p, k, p[k]);
            fill(p, sizes[i], i);
            live[i] = p;
        }
        for (size_t i = 0; i < n; i++) {
            EXPECT_PATTERN(live[i], sizes[i], i); /* neighbours did not overlap */
            EXPECT_EQ(rc_count(live[i]), 1);
        }
        for (size_t i = 0; i < n; i++) rc_release(live[i]);
        EXPECT_EQ(stats_of(pool).live_allocations, 0);
    }
    pool_destroy(pool);
    EXPECT_NO_REPORTS(r0);
}

static void test_rc_alloc_oom_is_not_misuse(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    volatile size_t huge = SIZE_MAX;
    void *p = rc_alloc(huge, NULL);
    if (p) T_FAIL("rc_alloc(SIZE_MAX) = %p", p);
    p = rc_alloc(huge - 64, NULL);
    if (p) T_FAIL("rc_alloc(SIZE_MAX - 64) = %p", p);
    pool_options_t o;
    memset(&o, 0, sizeof o);
    o.limit = 4 * MiB;
    pool_t *pool = pool_create(&o);
    EXPECT_NONNULL(pool);
    p = rc_alloc_in(pool, 8 * MiB, NULL);
    if (p) T_FAIL("rc_alloc_in(8 MiB) = %p in a 4 MiB-limited pool", p);
    size_t cap = 1 << 15, got = 0;
    void **v = malloc(cap * sizeof *v);
    assert_non_null(v);
    while (got < cap && (v[got] = rc_alloc_in(pool, 200, NULL)) != NULL) got++;
    if (got == cap) T_FAIL("%zu rc objects of 200 bytes fit in a 4 MiB-limited pool", got);
    EXPECT_NO_REPORTS(r0);
    /* still fully usable once room is made */
    for (size_t i = 0; i < got; i++) rc_release(v[i]);
    EXPECT_EQ(stats_of(pool).live_allocations, 0);
    p = rc_alloc_in(pool, 200, NULL);
    EXPECT_NONNULL(p);
    EXPECT_EQ(rc_count(p), 1);
    rc_release(p);
    free(v);
    pool_destroy(pool);
    EXPECT_NO_REPORTS(r0);
}

/* Resident bytes of this process (VmRSS), 0 when unknown. */
static size_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) return 0;
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %zu kB", &kib) == 1) break;
    fclose(f);
    return kib * KiB;
}

/* A big object is zeroed the way a big calloc is, lazily: its pages are
 * not all touched at rc_alloc (a huge request under overcommit would run
 * the machine out of memory). */
static void test_rc_alloc_huge_is_lazy(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    const size_t size = 512 * MiB;
    size_t before = resident_bytes();
    unsigned char *p = rc_alloc(size, NULL);
    if (p == NULL) {
        print_message("  rc_alloc(512 MiB) = NULL here: nothing to check\n");
        return;
    }
    size_t after = resident_bytes();
    EXPECT_EQ(p[0], 0);
    EXPECT_EQ(p[size / 2], 0);
    EXPECT_EQ(p[size - 1], 0);
    /* sanitizers and memcheck touch shadow memory of their own */
    if (!MT_SANITIZED && !MT_ON_VALGRIND() && before && after > before + 64 * MiB)
        T_FAIL("rc_alloc(512 MiB) made %zu MiB resident", (after - before) / MiB);
    EXPECT_EQ(rc_count(p), 1);
    rc_release(p);
    EXPECT_NO_REPORTS(r0);
}

static void test_rc_alloc_in_custom_pool(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    pool_stats_t s0 = stats_of(pool);
    EXPECT_EQ(s0.live_allocations, 0);

    recobj_t *o = mk_rec(pool, 1);
    pool_stats_t s1 = stats_of(pool);
    EXPECT_EQ(s1.live_allocations, 1);
    EXPECT_EQ(s1.allocs, s0.allocs + 1);
    EXPECT_GE(s1.bytes_in_use, sizeof(recobj_t));
    rc_retain(o);
    rc_retain(o);
    EXPECT_EQ(rc_count(o), 3);
    EXPECT_EQ(stats_of(pool).live_allocations, 1); /* counting allocates nothing */
    rc_release(o);
    rc_release(o);
    EXPECT_DESTROYS(0);
    EXPECT_EQ(stats_of(pool).live_allocations, 1);
    rc_release(o);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(1, 1);
    pool_stats_t s2 = stats_of(pool);
    EXPECT_EQ(s2.live_allocations, 0);
    EXPECT_EQ(s2.bytes_in_use, 0);
    EXPECT_EQ(s2.frees, s0.frees + 1);

    /* many objects of random sizes: every one is a cell of this pool */
    enum { N = 500 };
    void *v[N];
    size_t in_use_before = stats_of(pool).bytes_in_use;
    pool_stats_t sd0 = stats_of(pool_default());
    for (size_t i = 0; i < N; i++) {
        v[i] = rc_alloc_in(pool, (size_t)rng_below(&r, 3000), NULL);
        EXPECT_NONNULL(v[i]);
    }
    pool_stats_t s3 = stats_of(pool);
    EXPECT_EQ(s3.live_allocations, N);
    EXPECT_GE(s3.bytes_in_use, in_use_before + N * 16);
    pool_stats_t sd1 = stats_of(pool_default());
    if (sd1.allocs != sd0.allocs)
        T_FAIL("rc_alloc_in(pool) made %" PRIu64 " allocation(s) in the default pool",
               sd1.allocs - sd0.allocs);
    for (size_t i = 0; i < N; i++) rc_release(v[i]);
    EXPECT_EQ(stats_of(pool).live_allocations, 0);

    /* pool_destroy does not run destroy callbacks */
    destroy_reset();
    recobj_t *left = mk_rec(pool, 2);
    rc_retain(left);
    (void)left;
    pool_destroy(pool);
    EXPECT_DESTROYS(0);
    EXPECT_SHADOW_RUNS(2, 0);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_rc_alloc");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_alloc_zeroed_aligned),
        T(test_rc_alloc_oom_is_not_misuse),
        T(test_rc_alloc_huge_is_lazy),
        T(test_rc_alloc_in_custom_pool),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
