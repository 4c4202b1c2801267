/* test_pool_alloc.c — black-box tests of the public pool contract
 * (<mulch/pool.h>, <mulch/common.h>, docs: shared/API.md "Pool" and
 * "Errors and misuse"), the allocation calls: pool_create (options, block
 * sizes), pool_default, pool_alloc (every size to 4096, powers of two,
 * random sizes, size 0), pool_calloc (zeroing, overflow), pool_realloc and
 * pool_alloc_aligned.
 *
 * Deterministic: every random choice comes from a splitmix64 generator seeded
 * from MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is
 * printed at the start of each test and in every failure message.
 * MULCH_TEST_QUICK=1 (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d01)
#include <mulch/pool.h>

#include "pool_api_test.h"

/* ======================================================================== */
/* Creation                                                                  */

static void test_pool_create_defaults(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *a = pool_create(NULL);
    EXPECT_NONNULL_CTX(a, "pool_create(NULL)");
    pool_options_t z;
    memset(&z, 0, sizeof z);
    pool_t *b = pool_create(&z);
    EXPECT_NONNULL_CTX(b, "pool_create(zeroed)");
    EXPECT_NE((uintptr_t)a, (uintptr_t)b);

    pool_stats_t s = stats_of(a);
    EXPECT_EQ(s.allocs, 0);
    EXPECT_EQ(s.frees, 0);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.bytes_in_use, 0);
    expect_stats_sane(&s);

    exercise_small(a, &r);
    exercise_small(b, &r);
    s = stats_of(a);
    EXPECT_EQ(s.allocs, 64);
    EXPECT_EQ(s.frees, 64);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.bytes_in_use, 0);
    pool_destroy(a);
    pool_destroy(b);
}

static void test_pool_create_each_block_size(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    for (size_t bs = 16 * KiB; bs <= 4 * MiB; bs *= 2) {
        pool_options_t o;
        memset(&o, 0, sizeof o);
        o.block_size = bs;
        pool_t *pool = pool_create(&o);
        EXPECT_NONNULL_CTX(pool, "pool_create(block_size=%zu)", bs);
        const size_t sizes[] = { 0, 1, 16, 100, 1000, 4096, bs / 4, bs / 2 - 1, bs / 2,
                                 bs - 64, bs, bs + 1, 2 * bs, 1 * MiB + 1, 3 * MiB };
        enum { NS = sizeof sizes / sizeof sizes[0] };
        obj_t objs[NS * 3];
        size_t n = 0, sum = 0;
        for (int rep = 0; rep < 3; rep++)
            for (size_t i = 0; i < NS; i++) {
                alloc_obj(pool, &objs[n], sizes[i], bs);
                sum += objs[n].usable;
                n++;
            }
        expect_disjoint(objs, n);
        pool_stats_t s = stats_of(pool);
        EXPECT_EQ(s.live_allocations, n);
        EXPECT_EQ(s.bytes_in_use, sum);
        expect_stats_sane(&s);
        for (size_t i = 0; i < n; i++) free_obj(pool, &objs[i]);
        exercise_small(pool, &r);
        EXPECT_POOL_EMPTY(pool);
        pool_destroy(pool);
    }
}

static void test_pool_create_invalid_block_size(void **state)
{
    (void)state;
    TEST_START();
    const size_t bad[] = { 1, 2, 1000, 4096, 8 * KiB, 16 * KiB - 1, 16 * KiB + 1, 24 * KiB,
                           48 * KiB, 65 * KiB, 3 * MiB, 4 * MiB + 1, 4 * MiB - 1, 8 * MiB,
                           64 * MiB, SIZE_MAX, SIZE_MAX / 2 + 1 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pool_options_t o;
        memset(&o, 0, sizeof o);
        o.block_size = bad[i];
        pool_t *pool = pool_create(&o);
        if (pool != NULL) {
            pool_destroy(pool);
            T_FAIL("pool_create(block_size=%zu) returned a pool, expected NULL", bad[i]);
        }
    }
    /* Reports are allowed ("invalid options are reported"); nothing else to
       check about them here. */
    print_message("  invalid-option reports: %lu\n", rec_count());
}

static void test_pool_default_same_pool(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *a = pool_default();
    pool_t *b = pool_default();
    EXPECT_NONNULL_CTX(a, "pool_default()");
    if (a != b) T_FAIL("pool_default() returned %p then %p", (void *)a, (void *)b);
    pool_stats_t s0 = stats_of(a);
    exercise_small(a, &r);
    pool_stats_t s1 = stats_of(a);
    EXPECT_EQ(s1.allocs - s0.allocs, 64);
    EXPECT_EQ(s1.frees - s0.frees, 64);
    EXPECT_EQ(s1.live_allocations, s0.live_allocations);
}

/* ======================================================================== */
/* pool_alloc                                                                */

static void test_pool_alloc_every_size_to_4096(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    enum { N = 4097 };
    obj_t *o = calloc(N, sizeof *o);
    assert_non_null(o);
    size_t sum = 0;
    for (size_t s = 0; s < N; s++) {
        alloc_obj(pool, &o[s], s, 7);
        sum += o[s].usable;
    }
    expect_disjoint(o, N);
    for (size_t s = 0; s < N; s++) EXPECT_PATTERN(o[s].p, o[s].usable, o[s].tag);
    pool_stats_t st = stats_of(pool);
    EXPECT_EQ(st.live_allocations, N);
    EXPECT_EQ(st.bytes_in_use, sum);
    EXPECT_EQ(st.allocs, N);
    /* free in an interleaved order */
    for (size_t s = 0; s < N; s += 2) free_obj(pool, &o[s]);
    for (size_t s = 1; s < N; s += 2) free_obj(pool, &o[s]);
    st = stats_of(pool);
    EXPECT_EQ(st.live_allocations, 0);
    EXPECT_EQ(st.bytes_in_use, 0);
    EXPECT_EQ(st.frees, N);
    free(o);
    pool_destroy(pool);
}

static void test_pool_alloc_powers_of_two(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    obj_t o[3 * 24];
    size_t n = 0, sum = 0;
    for (unsigned k = 0; k <= 23; k++) {
        size_t p2 = (size_t)1 << k;
        size_t cand[3] = { p2 - 1, p2, p2 + 1 };
        for (int j = 0; j < 3; j++) {
            if (k == 0 && j == 0) continue; /* size 0 covered elsewhere */
            alloc_obj(pool, &o[n], cand[j], 11);
            sum += o[n].usable;
            n++;
        }
    }
    expect_disjoint(o, n);
    pool_stats_t st = stats_of(pool);
    EXPECT_EQ(st.live_allocations, n);
    EXPECT_EQ(st.bytes_in_use, sum);
    expect_stats_sane(&st);
    for (size_t i = n; i-- > 0;) free_obj(pool, &o[i]);
    EXPECT_POOL_EMPTY(pool);
    pool_destroy(pool);
}

static void test_pool_alloc_random_sizes(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = new_pool();
    enum { SLOTS = 256 };
    obj_t o[SLOTS];
    memset(o, 0, sizeof o);
    size_t ops = scaled(20000, 3000), live = 0;
    for (size_t i = 0; i < ops; i++) {
        obj_t *x = &o[rng_below(&r, SLOTS)];
        if (x->p) {
            free_obj(pool, x);
            live--;
        } else {
            size_t sz = rng_below(&r, 50) == 0 ? rng_size(&r, 64 * KiB, 6 * MiB)
                                                : rng_size(&r, 0, 64 * KiB);
            alloc_obj(pool, x, sz, i);
            live++;
        }
    }
    obj_t lv[SLOTS];
    size_t n = 0, sum = 0;
    for (size_t i = 0; i < SLOTS; i++)
        if (o[i].p) {
            lv[n++] = o[i];
            sum += o[i].usable;
        }
    EXPECT_EQ(n, live);
    expect_disjoint(lv, n);
    pool_stats_t st = stats_of(pool);
    EXPECT_EQ(st.live_allocations, n);
    EXPECT_EQ(st.bytes_in_use, sum);
    for (size_t i = 0; i < SLOTS; i++)
        if (o[i].p) free_obj(pool, &o[i]);
    EXPECT_POOL_EMPTY(pool);
    pool_destroy(pool);
}

static void test_pool_alloc_zero_unique(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    enum { N = 2000 };
    obj_t *o = calloc(N, sizeof *o);
    assert_non_null(o);
    for (size_t i = 0; i < N; i++) alloc_obj(pool, &o[i], 0, 3);
    expect_disjoint(o, N);
    pool_stats_t st = stats_of(pool);
    EXPECT_EQ(st.live_allocations, N);
    for (size_t i = 0; i < N; i++) free_obj(pool, &o[i]);
    EXPECT_POOL_EMPTY(pool);
    free(o);
    pool_destroy(pool);
}

/* ======================================================================== */
/* pool_calloc                                                               */

static void test_pool_calloc_zeroes_reused_memory(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    const size_t sizes[] = { 1, 8, 16, 24, 48, 100, 256, 1000, 4000, 8192, 20000, 65536,
                             300000, 1 * MiB, 2 * MiB + 17 };
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t sz = sizes[si];
        size_t n = sz >= MiB ? 4 : sz >= 65536 ? 16 : 512;
        void **v = calloc(n, sizeof *v);
        assert_non_null(v);
        for (size_t i = 0; i < n; i++) {
            v[i] = pool_alloc(pool, sz);
            EXPECT_NONNULL_CTX(v[i], "pool_alloc(%zu)", sz);
            memset(launder(v[i]), 0xA5, pool_usable_size(pool, v[i]));
        }
        for (size_t i = 0; i < n; i++) pool_free(pool, v[i]);
        for (int form = 0; form < 2; form++) {
            for (size_t i = 0; i < n; i++) {
                /* (1, sz) and, when it divides, (sz/8, 8) */
                size_t cn = 1, cs = sz;
                if (form == 1 && sz % 8 == 0) { cn = sz / 8; cs = 8; }
                v[i] = pool_calloc(pool, cn, cs);
                EXPECT_NONNULL_CTX(v[i], "pool_calloc(%zu, %zu)", cn, cs);
                EXPECT_ALIGNED(v[i], 16);
                EXPECT_GE(pool_usable_size(pool, v[i]), sz);
                size_t nz = first_nonzero(v[i], sz);
                if (nz != SIZE_MAX)
                    T_FAIL("pool_calloc(%zu, %zu) = %p: byte %zu is 0x%02x, not zero", cn, cs,
                           v[i], nz, ((unsigned char *)launder(v[i]))[nz]);
                memset(launder(v[i]), 0x5A, pool_usable_size(pool, v[i]));
            }
            for (size_t i = 0; i < n; i++) pool_free(pool, v[i]);
        }
        free(v);
    }
    EXPECT_POOL_EMPTY(pool);
    pool_destroy(pool);
}

static void test_pool_calloc_overflow_returns_null(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    unsigned long r0 = rec_count();
    pool_stats_t s0 = stats_of(pool);
    volatile size_t big = SIZE_MAX / 2 + 1, two = 2, max = SIZE_MAX, k32 = (size_t)1 << 32,
                    k33 = (size_t)1 << 33, three = 3, third = SIZE_MAX / 3 + 1;
    struct { size_t n, s; } cases[] = {
        { big, two }, { two, big }, { max, max }, { max, two }, { k32, k32 },
        { k33, k32 }, { three, third }, { third, three }, { max, 1 + two },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        void *p = pool_calloc(pool, cases[i].n, cases[i].s);
        if (p) T_FAIL("pool_calloc(%zu, %zu) = %p, expected NULL (overflow)", cases[i].n,
                      cases[i].s, p);
    }
    EXPECT_NO_REPORTS(r0);
    pool_stats_t s1 = stats_of(pool);
    EXPECT_EQ(s1.live_allocations, s0.live_allocations);
    /* still usable */
    void *p = pool_calloc(pool, 10, 10);
    EXPECT_NONNULL_CTX(p, "pool_calloc(10,10) after overflow");
    EXPECT_EQ(first_nonzero(p, 100), SIZE_MAX);
    pool_free(pool, p);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* ======================================================================== */
/* pool_realloc                                                              */

static void test_pool_realloc_null_and_zero(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    unsigned long r0 = rec_count();
    const size_t sizes[] = { 1, 100, 5000, 70000, 2 * MiB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        pool_stats_t s0 = stats_of(pool);
        void *p = pool_realloc(pool, NULL, sizes[i]);
        EXPECT_NONNULL_CTX(p, "pool_realloc(NULL, %zu)", sizes[i]);
        EXPECT_ALIGNED(p, 16);
        size_t u = pool_usable_size(pool, p);
        EXPECT_GE(u, sizes[i]);
        fill(p, u, 99);
        pool_stats_t s1 = stats_of(pool);
        EXPECT_EQ(s1.live_allocations, s0.live_allocations + 1);
        EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use + u);
        void *q = pool_realloc(pool, p, 0);
        EXPECT_NULL(q);
        pool_stats_t s2 = stats_of(pool);
        EXPECT_EQ(s2.live_allocations, s0.live_allocations);
        EXPECT_EQ(s2.bytes_in_use, s0.bytes_in_use);
        EXPECT_EQ(s2.frees, s1.frees + 1);
    }
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

static void realloc_step(pool_t *pool, void **pp, size_t *cur, size_t newsz, uint64_t *tag)
{
    void *p = *pp;
    size_t keep = *cur < newsz ? *cur : newsz;
    void *q = pool_realloc(pool, p, newsz);
    EXPECT_NONNULL_CTX(q, "pool_realloc(%p, %zu -> %zu)", p, *cur, newsz);
    EXPECT_ALIGNED(q, 16);
    size_t u = pool_usable_size(pool, q);
    if (u < newsz) T_FAIL("usable %zu < %zu after realloc", u, newsz);
    size_t bad = check(q, keep, *tag);
    if (bad != SIZE_MAX)
        T_FAIL("realloc %zu -> %zu (%p -> %p) lost contents at offset %zu of %zu", *cur, newsz,
               p, q, bad, keep);
    *tag = mix64(*tag + newsz);
    fill(q, newsz, *tag);
    *pp = q;
    *cur = newsz;
}

static void test_pool_realloc_ladder(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    const size_t ladder[] = { 1, 8, 15, 16, 17, 24, 32, 33, 48, 64, 65, 96, 100, 128, 129,
                              200, 256, 500, 512, 1000, 1024, 2000, 2048, 3000, 4096, 5000,
                              8192, 12000, 16384, 20000, 32768, 50000, 65536, 65537, 100000,
                              131072, 262144, 500000, MiB - 1, MiB, MiB + 1, 3 * MiB,
                              5 * MiB + 3 };
    enum { NL = sizeof ladder / sizeof ladder[0] };
    /* a neighbour on each side in the same class to catch overruns */
    void *p = pool_alloc(pool, 1);
    EXPECT_NONNULL_CTX(p, "pool_alloc(1)");
    size_t cur = 1;
    uint64_t tag = 1234;
    fill(p, 1, tag);
    for (size_t i = 1; i < NL; i++) realloc_step(pool, &p, &cur, ladder[i], &tag);
    for (size_t i = NL - 1; i-- > 0;) realloc_step(pool, &p, &cur, ladder[i], &tag);
    /* big jumps both ways */
    for (size_t i = 0; i < NL; i++) {
        realloc_step(pool, &p, &cur, ladder[NL - 1 - i], &tag);
        realloc_step(pool, &p, &cur, ladder[i], &tag);
    }
    pool_stats_t st = stats_of(pool);
    EXPECT_EQ(st.live_allocations, 1);
    EXPECT_EQ(st.bytes_in_use, pool_usable_size(pool, p));
    pool_free(pool, p);
    EXPECT_POOL_EMPTY(pool);
    pool_destroy(pool);
}

static void test_pool_realloc_random_walk(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = new_pool();
    enum { K = 8 };
    void *p[K];
    size_t cur[K];
    uint64_t tag[K];
    for (int i = 0; i < K; i++) {
        p[i] = NULL;
        cur[i] = 0;
        tag[i] = (uint64_t)i;
    }
    size_t steps = scaled(4000, 600);
    for (size_t s = 0; s < steps; s++) {
        int i = (int)rng_below(&r, K);
        size_t nsz = rng_below(&r, 40) == 0 ? rng_size(&r, 512 * KiB, 4 * MiB)
                                             : rng_size(&r, 1, 200000);
        if (!p[i]) {
            p[i] = pool_realloc(pool, NULL, nsz);
            EXPECT_NONNULL_CTX(p[i], "pool_realloc(NULL, %zu)", nsz);
            cur[i] = nsz;
            fill(p[i], nsz, tag[i]);
        } else {
            realloc_step(pool, &p[i], &cur[i], nsz, &tag[i]);
        }
    }
    size_t sum = 0;
    for (int i = 0; i < K; i++) sum += pool_usable_size(pool, p[i]);
    pool_stats_t st = stats_of(pool);
    EXPECT_EQ(st.live_allocations, K);
    EXPECT_EQ(st.bytes_in_use, sum);
    for (int i = 0; i < K; i++) {
        EXPECT_PATTERN(p[i], cur[i], tag[i]);
        pool_free(pool, p[i]);
    }
    EXPECT_POOL_EMPTY(pool);
    pool_destroy(pool);
}

static void test_pool_realloc_failure_keeps_block(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *lim = new_limited_pool(8 * MiB);
    pool_t *unl = new_pool();
    const size_t sizes[] = { 40, 3000, 40000, 2 * MiB };
    volatile size_t huge[] = { SIZE_MAX, SIZE_MAX - 15, (size_t)PTRDIFF_MAX, 9 * MiB,
                               64 * MiB };
    for (int which = 0; which < 2; which++) {
        pool_t *pool = which ? lim : unl;
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = pool_alloc(pool, sizes[i]);
            EXPECT_NONNULL_CTX(p, "pool_alloc(%zu)", sizes[i]);
            fill(p, sizes[i], 555 + i);
            pool_stats_t s0 = stats_of(pool);
            for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++) {
                size_t hs = huge[h];
                if (!which && hs < (size_t)1 << 40) continue; /* unlimited pool: only absurd */
                void *q = pool_realloc(pool, p, hs);
                if (q) T_FAIL("pool_realloc(%p, %zu) = %p on %s pool, expected NULL", p, hs, q,
                              which ? "8 MiB-limited" : "unlimited");
                EXPECT_PATTERN(p, sizes[i], 555 + i);
            }
            pool_stats_t s1 = stats_of(pool);
            EXPECT_EQ(s1.live_allocations, s0.live_allocations);
            EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use);
            EXPECT_EQ(s1.frees, s0.frees);
            /* p still works: grow it for real */
            void *q = pool_realloc(pool, p, sizes[i] * 2);
            EXPECT_NONNULL_CTX(q, "pool_realloc(%p, %zu)", p, sizes[i] * 2);
            EXPECT_PATTERN(q, sizes[i], 555 + i);
            pool_free(pool, q);
        }
        pool_stats_t st = stats_of(pool);
        EXPECT_EQ(st.live_allocations, 0);
    }
    EXPECT_NO_REPORTS(r0);
    pool_destroy(lim);
    pool_destroy(unl);
}

/* ======================================================================== */
/* pool_alloc_aligned                                                        */

static void test_pool_alloc_aligned(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    unsigned long r0 = rec_count();
    size_t aligns[32];
    size_t na = 0;
    for (size_t a = 1; a <= 65536; a *= 2) aligns[na++] = a;
    aligns[na++] = 256 * KiB;
    aligns[na++] = 1 * MiB;
    aligns[na++] = 2 * MiB;
    enum { MAXO = 32 * 12 };
    obj_t objs[MAXO];
    size_t n = 0;
    for (size_t ai = 0; ai < na; ai++) {
        size_t al = aligns[ai];
        size_t sizes[] = { 0, 1, 16, al > 1 ? al - 1 : 1, al, al + 1, 3 * al, 100, 5000,
                           100000 };
        size_t first = n, sum = 0;
        pool_stats_t s0 = stats_of(pool);
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t sz = sizes[si];
            if (sz > 8 * MiB) continue;
            obj_t *o = &objs[n++];
            o->size = sz;
            o->p = pool_alloc_aligned(pool, sz, al);
            EXPECT_NONNULL_CTX(o->p, "pool_alloc_aligned(size %zu, align %zu)", sz, al);
            EXPECT_ALIGNED(o->p, al);
            o->usable = pool_usable_size(pool, o->p);
            if (o->usable < sz)
                T_FAIL("pool_usable_size = %zu < %zu for align %zu", o->usable, sz, al);
            o->tag = tag_of(o->p, sz, al);
            fill(o->p, o->usable, o->tag);
            sum += o->usable;
        }
        pool_stats_t s1 = stats_of(pool);
        EXPECT_EQ(s1.live_allocations - s0.live_allocations, n - first);
        EXPECT_EQ(s1.bytes_in_use - s0.bytes_in_use, sum);
        /* free every other one now, the rest at the end */
        for (size_t i = first; i < n; i += 2) {
            free_obj(pool, &objs[i]);
        }
    }
    obj_t live[MAXO];
    size_t nl = 0;
    for (size_t i = 0; i < n; i++)
        if (objs[i].p) live[nl++] = objs[i];
    expect_disjoint(live, nl);
    for (size_t i = 0; i < n; i++)
        if (objs[i].p) free_obj(pool, &objs[i]);
    EXPECT_POOL_EMPTY(pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_pool_alloc");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_pool_create_defaults),
        T(test_pool_create_each_block_size),
        T(test_pool_create_invalid_block_size),
        T(test_pool_default_same_pool),
        T(test_pool_alloc_every_size_to_4096),
        T(test_pool_alloc_powers_of_two),
        T(test_pool_alloc_random_sizes),
        T(test_pool_alloc_zero_unique),
        T(test_pool_calloc_zeroes_reused_memory),
        T(test_pool_calloc_overflow_returns_null),
        T(test_pool_realloc_null_and_zero),
        T(test_pool_realloc_ladder),
        T(test_pool_realloc_random_walk),
        T(test_pool_realloc_failure_keeps_block),
        T(test_pool_alloc_aligned),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
