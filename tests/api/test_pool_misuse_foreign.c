/* test_pool_misuse_foreign.c — detected misuse of the pool (API.md "Errors
 * and misuse") with pointers it does not own or no longer owns: pool_free of
 * a stack, malloc or static address, an interior pointer or another pool's
 * object; pool_usable_size and pool_realloc of foreign and freed pointers.
 * Each misuse produces exactly one error-handler call whose `what` starts
 * with the function's name and whose `ptr` is the pointer passed; it is
 * otherwise ignored and the pool stays fully usable. OOM is not misuse.
 *
 * Deterministic (seed from MULCH_TEST_SEED or a fixed default, printed at the
 * start of each test and in every failure message). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d02)
#include <mulch/pool.h>

#include <sys/mman.h>
#include <unistd.h>

#include "pool_misuse_test.h"

/* This file has no quick mode (g_quick stays 0): its sizes are fixed. */

/* ======================================================================== */
/* Pointers the pool does not own                                            */

static void foreign_free(pool_t *pool, void *p)
{
    pool_stats_t s0 = stats_of(pool);
    unsigned long r0 = rec_count();
    pool_free(pool, p);
    EXPECT_ONE_REPORT(r0, "pool_free:", p);
    pool_stats_t s1 = stats_of(pool);
    EXPECT_EQ(s1.frees, s0.frees);
    EXPECT_EQ(s1.live_allocations, s0.live_allocations);
    EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use);
}

static void test_pool_free_stack_address(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    void *live = pool_alloc(pool, 64);
    EXPECT_NONNULL_CTX(live, "pool_alloc(64)");
    _Alignas(64) unsigned char local[256];
    memset(local, 0x11, sizeof local);
    foreign_free(pool, local);
    foreign_free(pool, local + 16);
    foreign_free(pool, local + 1);
    int x = 5;
    foreign_free(pool, &x);
    for (size_t i = 0; i < sizeof local; i++)
        if (local[i] != 0x11) T_FAIL("stack buffer byte %zu changed to 0x%02x", i, local[i]);
    EXPECT_EQ(x, 5);
    pool_free(pool, live);
    check_pool_usable(pool, &r);
    pool_destroy(pool);
}

static void test_pool_free_malloc_pointer(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    void *live = pool_alloc(pool, 64);
    EXPECT_NONNULL_CTX(live, "pool_alloc(64)");
    const size_t sizes[] = { 16, 64, 1000, 200000, 5 * MiB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *m = malloc(sizes[i]);
        assert_non_null(m);
        fill(m, sizes[i], 77);
        foreign_free(pool, m);
        EXPECT_PATTERN(m, sizes[i], 77);
        free(m);
    }
    /* a malloc'd pointer on a 64 KiB boundary, like a pool block start */
    void *am = aligned_alloc(64 * KiB, 64 * KiB);
    assert_non_null(am);
    fill(am, 64 * KiB, 78);
    foreign_free(pool, am);
    foreign_free(pool, (char *)am + 16);
    EXPECT_PATTERN(am, 64 * KiB, 78);
    free(am);
    pool_free(pool, live);
    check_pool_usable(pool, &r);
    pool_destroy(pool);
}

static _Alignas(4096) unsigned char g_static_buf[8192];
static int g_static_int = 3;

static void test_pool_free_static_address(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    memset(g_static_buf, 0x22, sizeof g_static_buf);
    /* addresses in the first 4 MiB: pool_free's fast path guesses the
     * chunk from the address's region, which is NULL here; it must still
     * ask the chunk map before reading anything */
    foreign_free(pool, (void *)(uintptr_t)0x10);
    foreign_free(pool, (void *)(uintptr_t)0x1000);
    foreign_free(pool, (void *)(uintptr_t)0x3ffff0);
    foreign_free(pool, g_static_buf);
    foreign_free(pool, g_static_buf + 16);
    foreign_free(pool, g_static_buf + 4096);
    foreign_free(pool, &g_static_int);
    for (size_t i = 0; i < sizeof g_static_buf; i++)
        if (g_static_buf[i] != 0x22)
            T_FAIL("static buffer byte %zu changed to 0x%02x", i, g_static_buf[i]);
    EXPECT_EQ(g_static_int, 3);
    check_pool_usable(pool, &r);
    pool_destroy(pool);
}

static void interior_case(pool_t *pool, size_t size, const size_t *offs, size_t noffs)
{
    void *before = pool_alloc(pool, size);
    void *p = pool_alloc(pool, size);
    void *after = pool_alloc(pool, size);
    EXPECT_NONNULL_CTX(before, "pool_alloc(%zu)", size);
    EXPECT_NONNULL_CTX(p, "pool_alloc(%zu)", size);
    EXPECT_NONNULL_CTX(after, "pool_alloc(%zu)", size);
    fill(before, size, 1);
    fill(p, size, 2);
    fill(after, size, 3);
    for (size_t i = 0; i < noffs; i++) {
        if (offs[i] >= size) continue;
        void *ip = (char *)p + offs[i];
        foreign_free(pool, ip);
        EXPECT_PATTERN(p, size, 2);
    }
    /* the object itself is still live and frees cleanly */
    unsigned long r0 = rec_count();
    EXPECT_GE(pool_usable_size(pool, p), size);
    pool_free(pool, p);
    pool_free(pool, before);
    EXPECT_PATTERN(after, size, 3);
    pool_free(pool, after);
    EXPECT_NO_REPORTS(r0);
}

static void test_pool_free_interior_pointer(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    const size_t offs[] = { 16, 1, 8, 32, 48, 4096, 16384, 65536, MiB / 2 };
    const size_t noffs = sizeof offs / sizeof offs[0];
    interior_case(pool, 64, offs, noffs);
    interior_case(pool, 128, offs, noffs);
    interior_case(pool, 1000, offs, noffs);
    interior_case(pool, 20 * KiB, offs, noffs);
    interior_case(pool, 200 * KiB, offs, noffs);
    interior_case(pool, 2 * MiB, offs, noffs);
    /* interior pointers into an aligned allocation */
    void *a = pool_alloc_aligned(pool, 256, 4096);
    EXPECT_NONNULL_CTX(a, "pool_alloc_aligned(256, 4096)");
    fill(a, 256, 5);
    foreign_free(pool, (char *)a + 16);
    foreign_free(pool, (char *)a + 128);
    EXPECT_PATTERN(a, 256, 5);
    unsigned long r0 = rec_count();
    pool_free(pool, a);
    EXPECT_NO_REPORTS(r0);
    check_pool_usable(pool, &r);
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.bytes_in_use, 0);
    pool_destroy(pool);
}

static void test_pool_free_pointer_from_other_pool(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *a = pool_create(NULL);
    pool_t *b = pool_create(NULL);
    EXPECT_NONNULL_CTX(a, "pool_create A");
    EXPECT_NONNULL_CTX(b, "pool_create B");
    void *bl = pool_alloc(b, 64); /* B has live memory of its own */
    EXPECT_NONNULL_CTX(bl, "pool_alloc(B, 64)");
    fill(bl, 64, 8);
    const size_t sizes[] = { 0, 16, 64, 1000, 20 * KiB, 200 * KiB, 2 * MiB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = pool_alloc(a, sizes[i]);
        EXPECT_NONNULL_CTX(p, "pool_alloc(A, %zu)", sizes[i]);
        fill(p, sizes[i], 100 + i);
        pool_stats_t sa0 = stats_of(a);
        foreign_free(b, p); /* checks B's stats unchanged */
        pool_stats_t sa1 = stats_of(a);
        EXPECT_EQ(sa1.frees, sa0.frees);
        EXPECT_EQ(sa1.live_allocations, sa0.live_allocations);
        EXPECT_EQ(sa1.bytes_in_use, sa0.bytes_in_use);
        EXPECT_PATTERN(p, sizes[i], 100 + i);
        EXPECT_GE(pool_usable_size(a, p), sizes[i]);
        /* still a valid object of A: frees into A without a report */
        unsigned long r0 = rec_count();
        pool_free(a, p);
        EXPECT_NO_REPORTS(r0);
        pool_stats_t sa2 = stats_of(a);
        EXPECT_EQ(sa2.frees, sa0.frees + 1);
        EXPECT_EQ(sa2.live_allocations + 1, sa0.live_allocations);
    }
    /* the default pool's pointers are foreign to A too */
    void *d = pool_alloc(pool_default(), 64);
    EXPECT_NONNULL_CTX(d, "pool_alloc(default, 64)");
    foreign_free(a, d);
    unsigned long r0 = rec_count();
    pool_free(pool_default(), d);
    EXPECT_NO_REPORTS(r0);
    EXPECT_PATTERN(bl, 64, 8);
    pool_free(b, bl);
    check_pool_usable(a, &r);
    check_pool_usable(b, &r);
    pool_destroy(a);
    pool_destroy(b);
}

/* A foreign page in the rest of a huge object's last 4 MiB region (which
 * the chunk map still attributes to that chunk): pool_free, pool_realloc
 * and pool_usable_size read the huge chunk's header to tell, which faults
 * when another thread is unmapping that object at the same moment. The
 * header's page is made unreadable to stand for that: the foreign page
 * must be reported from the map alone.
 *
 * The object is aligned to 8 MiB: its chunk then starts a region before
 * it (the header alone in the first region), and the slack of a fresh
 * mapping at an alignment above a region is unmapped, so the rest of the
 * object's region is free address space whatever the kernel's placement.
 * (At a region's alignment the slack is retired, which fills that rest.) */
static void test_pool_foreign_beside_huge_object(void **state)
{
    (void)state;
    TEST_START();
    const uintptr_t region = (uintptr_t)4 << 20;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t huge = 200 * KiB; /* past the size classes: a chunk of its own */
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    unsigned char *held[8] = { NULL };
    unsigned char *foreign = MAP_FAILED, *h = NULL;
    for (int t = 0; t < 8 && foreign == MAP_FAILED; t++) {
        h = held[t] = pool_alloc_aligned(pool, huge, 2 * region);
        EXPECT_NONNULL_CTX(h, "pool_alloc_aligned(%zu, 8 MiB)", huge);
        uintptr_t base = (uintptr_t)h & ~(region - 1);
        for (uintptr_t at = base + region - page; at >= (uintptr_t)h + huge + page && foreign == MAP_FAILED;
             at -= page) {
            foreign = mmap((void *)at, page, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            if (foreign != MAP_FAILED && foreign != (unsigned char *)at) {
                munmap(foreign, page); /* an old kernel took the address as a hint */
                foreign = MAP_FAILED;
            }
        }
    }
    if (foreign == MAP_FAILED) T_FAIL("no free page beside a huge object");
    unsigned char *header = (unsigned char *)((uintptr_t)h - region); /* the chunk's start */
    if (mprotect(header, page, PROT_NONE) != 0) T_FAIL("mprotect failed");
    unsigned long r0 = rec_count();
    pool_free(pool, foreign);
    EXPECT_ONE_REPORT(r0, "pool_free: pointer not allocated by mulch", foreign);
    EXPECT_EQ(pool_usable_size(pool, foreign), 0);
    EXPECT_ONE_REPORT(r0 + 1, "pool_usable_size: pointer not allocated by mulch", foreign);
    EXPECT_PTR_EQ(pool_realloc(pool, foreign, 64), NULL);
    EXPECT_ONE_REPORT(r0 + 2, "pool_realloc: pointer not allocated by mulch", foreign);
    if (mprotect(header, page, PROT_READ | PROT_WRITE) != 0) T_FAIL("mprotect failed");
    munmap(foreign, page);
    for (int t = 0; t < 8; t++)
        if (held[t]) pool_free(pool, held[t]);
    EXPECT_NO_REPORTS(r0 + 3);
    pool_destroy(pool);
}

/* ======================================================================== */
/* pool_usable_size / pool_realloc on foreign or freed pointers              */

static void foreign_usable(pool_t *pool, const void *p)
{
    unsigned long r0 = rec_count();
    size_t u = pool_usable_size(pool, p);
    if (u != 0) T_FAIL("pool_usable_size(foreign %p) = %zu, expected 0", p, u);
    EXPECT_ONE_REPORT(r0, "pool_usable_size:", p);
}

static void test_pool_usable_size_foreign_pointer(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    pool_t *other = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    EXPECT_NONNULL_CTX(other, "pool_create");
    void *live = pool_alloc(pool, 64);
    EXPECT_NONNULL_CTX(live, "pool_alloc(64)");
    void *m = malloc(100);
    assert_non_null(m);
    foreign_usable(pool, m);
    free(m);
    _Alignas(16) char local[64];
    memset(local, 0, sizeof local);
    foreign_usable(pool, local);
    foreign_usable(pool, g_static_buf);
    void *o1 = pool_alloc(other, 64), *o2 = pool_alloc(other, 2 * MiB);
    EXPECT_NONNULL_CTX(o1, "pool_alloc(other, 64)");
    EXPECT_NONNULL_CTX(o2, "pool_alloc(other, 2 MiB)");
    foreign_usable(pool, o1);
    foreign_usable(pool, o2);
    foreign_usable(pool, (char *)live + 16);
    /* the real owner still answers */
    unsigned long r0 = rec_count();
    EXPECT_GE(pool_usable_size(other, o1), 64);
    EXPECT_GE(pool_usable_size(other, o2), 2 * MiB);
    EXPECT_GE(pool_usable_size(pool, live), 64);
    EXPECT_NO_REPORTS(r0);
    pool_free(other, o1);
    pool_free(other, o2);
    pool_free(pool, live);
    EXPECT_NO_REPORTS(r0);
    check_pool_usable(pool, &r);
    pool_destroy(pool);
    pool_destroy(other);
}

/* Use after free through pool_usable_size is detected until the cell is
   reused: 0 and one report. */
static void test_pool_usable_size_freed_pointer(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    const size_t sizes[] = { 16, 64, 1000, 20 * KiB, 2 * MiB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *keep = pool_alloc(pool, sizes[i]);
        void *p = pool_alloc(pool, sizes[i]);
        EXPECT_NONNULL_CTX(keep, "pool_alloc(%zu)", sizes[i]);
        EXPECT_NONNULL_CTX(p, "pool_alloc(%zu)", sizes[i]);
        pool_free(pool, p);
        unsigned long r0 = rec_count();
        size_t u = pool_usable_size(pool, p);
        if (u != 0) T_FAIL("pool_usable_size(freed %p) = %zu, expected 0", p, u);
        EXPECT_ONE_REPORT(r0, "pool_usable_size:", p);
        r0 = rec_count();
        EXPECT_GE(pool_usable_size(pool, keep), sizes[i]);
        pool_free(pool, keep);
        EXPECT_NO_REPORTS(r0);
    }
    check_pool_usable(pool, &r);
    pool_destroy(pool);
}

static void bad_realloc(pool_t *pool, void *p, size_t size)
{
    pool_stats_t s0 = stats_of(pool);
    unsigned long r0 = rec_count();
    void *q = pool_realloc(pool, p, size);
    if (q != NULL) T_FAIL("pool_realloc(bad %p, %zu) = %p, expected NULL", p, size, q);
    EXPECT_ONE_REPORT(r0, "pool_realloc:", p);
    pool_stats_t s1 = stats_of(pool);
    EXPECT_EQ(s1.allocs, s0.allocs);
    EXPECT_EQ(s1.frees, s0.frees);
    EXPECT_EQ(s1.live_allocations, s0.live_allocations);
    EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use);
}

static void test_pool_realloc_freed_pointer(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    const size_t sizes[] = { 16, 64, 1000, 20 * KiB, 200 * KiB, 2 * MiB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *keep = pool_alloc(pool, sizes[i]);
        void *p = pool_alloc(pool, sizes[i]);
        EXPECT_NONNULL_CTX(keep, "pool_alloc(%zu)", sizes[i]);
        EXPECT_NONNULL_CTX(p, "pool_alloc(%zu)", sizes[i]);
        fill(keep, sizes[i], 4);
        pool_free(pool, p);
        bad_realloc(pool, p, 100);
        bad_realloc(pool, p, sizes[i] * 2);
        bad_realloc(pool, p, 4 * MiB);
        EXPECT_PATTERN(keep, sizes[i], 4);
        unsigned long r0 = rec_count();
        pool_free(pool, keep);
        EXPECT_NO_REPORTS(r0);
    }
    check_pool_usable(pool, &r);
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, 0);
    pool_destroy(pool);
}

static void test_pool_realloc_foreign_pointer(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = pool_create(NULL);
    pool_t *other = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    EXPECT_NONNULL_CTX(other, "pool_create");
    void *m = malloc(256);
    assert_non_null(m);
    fill(m, 256, 6);
    bad_realloc(pool, m, 512);
    bad_realloc(pool, m, 16);
    EXPECT_PATTERN(m, 256, 6);
    free(m);
    _Alignas(16) unsigned char local[128];
    memset(local, 0x33, sizeof local);
    bad_realloc(pool, local, 64);
    for (size_t i = 0; i < sizeof local; i++)
        if (local[i] != 0x33) T_FAIL("stack byte %zu changed to 0x%02x", i, local[i]);
    const size_t sizes[] = { 64, 20 * KiB, 2 * MiB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *o = pool_alloc(other, sizes[i]);
        EXPECT_NONNULL_CTX(o, "pool_alloc(other, %zu)", sizes[i]);
        fill(o, sizes[i], 7);
        pool_stats_t so0 = stats_of(other);
        bad_realloc(pool, o, sizes[i] * 2);
        bad_realloc(pool, o, 8);
        pool_stats_t so1 = stats_of(other);
        EXPECT_EQ(so1.live_allocations, so0.live_allocations);
        EXPECT_EQ(so1.frees, so0.frees);
        EXPECT_PATTERN(o, sizes[i], 7);
        unsigned long r0 = rec_count();
        void *o2 = pool_realloc(other, o, sizes[i] + 1);
        EXPECT_NONNULL_CTX(o2, "pool_realloc(owner, %zu)", sizes[i] + 1);
        EXPECT_PATTERN(o2, sizes[i], 7);
        pool_free(other, o2);
        EXPECT_NO_REPORTS(r0);
    }
    check_pool_usable(pool, &r);
    check_pool_usable(other, &r);
    pool_destroy(pool);
    pool_destroy(other);
}

/* ======================================================================== */
/* OOM is not misuse                                                         */

static void test_pool_oom_is_not_misuse(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    unsigned long r0 = rec_count();
    pool_options_t o;
    memset(&o, 0, sizeof o);
    o.limit = 4 * MiB;
    pool_t *pool = pool_create(&o);
    EXPECT_NONNULL_CTX(pool, "pool_create(limit 4 MiB)");
    size_t cap = 1 << 16, n = 0;
    void **v = malloc(cap * sizeof *v);
    assert_non_null(v);
    while (n < cap) {
        void *p = pool_alloc(pool, 512);
        if (!p) break;
        v[n++] = p;
    }
    if (n == cap) T_FAIL("%zu allocations of 512 bytes in a 4 MiB-limited pool", n);
    volatile size_t huge = SIZE_MAX, half = SIZE_MAX / 2 + 1, two = 2, over = 5 * MiB;
    void *q = pool_alloc(pool, over);
    if (q) T_FAIL("pool_alloc(5 MiB) = %p in a 4 MiB pool", q);
    q = pool_alloc(pool, huge);
    if (q) T_FAIL("pool_alloc(SIZE_MAX) = %p", q);
    q = pool_calloc(pool, half, two);
    if (q) T_FAIL("pool_calloc overflow = %p", q);
    q = pool_alloc_aligned(pool, over, 4096);
    if (q) T_FAIL("pool_alloc_aligned(5 MiB) = %p in a 4 MiB pool", q);
    q = pool_realloc(pool, v[0], over);
    if (q) T_FAIL("pool_realloc(5 MiB) = %p in a 4 MiB pool", q);
    q = pool_realloc(pool, v[0], huge);
    if (q) T_FAIL("pool_realloc(SIZE_MAX) = %p", q);
    EXPECT_NO_REPORTS(r0);
    for (size_t i = 0; i < n; i++) pool_free(pool, v[i]);
    EXPECT_NO_REPORTS(r0);
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, 0);
    free(v);
    /* unlimited pool: absurd requests */
    pool_t *u = pool_create(NULL);
    EXPECT_NONNULL_CTX(u, "pool_create");
    q = pool_alloc(u, huge);
    if (q) T_FAIL("pool_alloc(SIZE_MAX) = %p", q);
    q = pool_alloc(u, huge - 15);
    if (q) T_FAIL("pool_alloc(SIZE_MAX-15) = %p", q);
    q = pool_alloc(u, (size_t)PTRDIFF_MAX);
    if (q) T_FAIL("pool_alloc(PTRDIFF_MAX) = %p", q);
    EXPECT_NO_REPORTS(r0);
    check_pool_usable(u, &r);
    pool_destroy(u);
    pool_destroy(pool);
}

/* ======================================================================== */

int main(void)
{
    mt_read_seed();
    print_message("test_pool_misuse_foreign: seed=0x%016" PRIx64
                  " (set MULCH_TEST_SEED to reproduce)\n", g_seed);
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_pool_free_stack_address),
        T(test_pool_free_malloc_pointer),
        T(test_pool_free_static_address),
        T(test_pool_free_interior_pointer),
        T(test_pool_free_pointer_from_other_pool),
        T(test_pool_foreign_beside_huge_object),
        T(test_pool_usable_size_foreign_pointer),
        T(test_pool_usable_size_freed_pointer),
        T(test_pool_realloc_freed_pointer),
        T(test_pool_realloc_foreign_pointer),
        T(test_pool_oom_is_not_misuse),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
