/* test_pool_api.c — black-box tests of the public pool contract
 * (<mulch/pool.h>, <mulch/common.h>, docs: shared/API.md "Pool" and
 * "Errors and misuse").
 *
 * Deterministic: every random choice comes from a splitmix64 generator seeded
 * from MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is
 * printed at the start of each test and in every failure message.
 * MULCH_TEST_QUICK=1 (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d01)
#define MULCH_TEST_POOL 1
#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include <mulch/pool.h>

#include "mulch_test.h"

/* Log-uniform size in [lo, hi]. */
static size_t rng_size(rng_t *r, size_t lo, size_t hi)
{
    unsigned bits_hi = 0;
    while (bits_hi < 63 && ((size_t)1 << bits_hi) <= hi) bits_hi++;
    for (;;) {
        unsigned b = (unsigned)rng_below(r, bits_hi + 1);
        size_t top = b == 0 ? 1 : ((size_t)1 << b);
        size_t v = (size_t)rng_below(r, top);
        if (v >= lo && v <= hi) return v;
    }
}

/* ------------------------------------------------------------------------ */
/* Assertion helpers beyond the shared ones                                  */

#define EXPECT_ALIGNED(p, al) \
    do { \
        uintptr_t p_ = (uintptr_t)(p); size_t al_ = (al); \
        if (p_ % al_ != 0) \
            T_FAIL("%s = %p is not %zu-aligned (misaligned by %zu)", #p, (void *)p_, \
                   al_, (size_t)(p_ % al_)); \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Patterns (fill / check / EXPECT_PATTERN come from mulch_test.h)           */

static uint64_t tag_of(const void *p, size_t size, uint64_t salt)
{
    return mix64((uint64_t)(uintptr_t)p ^ mix64(size ^ salt));
}

static size_t first_nonzero(const void *p, size_t n)
{
    const unsigned char *b = launder((void *)(uintptr_t)p);
    for (size_t i = 0; i < n; i++)
        if (b[i]) return i;
    return SIZE_MAX;
}

/* ------------------------------------------------------------------------ */
/* Misc helpers                                                              */

static void expect_stats_sane(const pool_stats_t *s)
{
    EXPECT_GE(s->bytes_reserved, s->bytes_in_use);
    EXPECT_GE(s->peak_reserved, s->bytes_reserved);
    EXPECT_GE(s->allocs, s->frees);
    EXPECT_EQ(s->allocs - s->frees, s->live_allocations);
    if (!(s->fragmentation >= 0.0 && s->fragmentation <= 1.0))
        T_FAIL("fragmentation %g outside [0,1]", s->fragmentation);
    if (s->bytes_reserved > 0) {
        double want = 1.0 - (double)s->bytes_in_use / (double)s->bytes_reserved;
        double d = s->fragmentation - want;
        if (d < -1e-9 || d > 1e-9)
            T_FAIL("fragmentation %.12f != 1 - in_use/reserved = %.12f (in_use %zu reserved %zu)",
                   s->fragmentation, want, s->bytes_in_use, s->bytes_reserved);
    }
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (!f) return 0;
    if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
    fclose(f);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* A pool with the default options (fails the test when pool_create does). */
static pool_t *new_pool(void)
{
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    return pool;
}

/* A pool whose reservations may not exceed `limit` bytes. */
static pool_t *new_limited_pool(size_t limit)
{
    pool_options_t o;
    memset(&o, 0, sizeof o);
    o.limit = limit;
    pool_t *pool = pool_create(&o);
    EXPECT_NONNULL_CTX(pool, "pool_create(limit=%zu)", limit);
    return pool;
}

/* The pool holds no live allocation: live_allocations and bytes_in_use are 0
 * (failures name the caller's line). */
#define EXPECT_POOL_EMPTY(pool) expect_pool_empty_((pool), __LINE__)

static void expect_pool_empty_(pool_t *pool, int line)
{
    pool_stats_t st = stats_of(pool);
    if (st.live_allocations != 0)
        T_FAIL("(line %d) st.live_allocations == 0: %zu != 0", line, st.live_allocations);
    if (st.bytes_in_use != 0)
        T_FAIL("(line %d) st.bytes_in_use == 0: %zu != 0", line, st.bytes_in_use);
}

typedef struct {
    void *p;
    size_t size;   /* requested */
    size_t usable;
    uint64_t tag;
} obj_t;

static int cmp_obj_addr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const obj_t *)a)->p, y = (uintptr_t)((const obj_t *)b)->p;
    return x < y ? -1 : x > y;
}

/* Sorts a copy of objs by address and checks that [p, p+usable) ranges are
 * pairwise disjoint (so in particular all addresses are distinct). */
static void expect_disjoint(const obj_t *objs, size_t n)
{
    obj_t *c = malloc(n * sizeof *c);
    assert_non_null(c);
    memcpy(c, objs, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_obj_addr);
    for (size_t i = 1; i < n; i++) {
        uintptr_t prev_end = (uintptr_t)c[i - 1].p + (c[i - 1].usable ? c[i - 1].usable : 1);
        if ((uintptr_t)c[i].p < prev_end) {
            void *a = c[i - 1].p, *b = c[i].p;
            size_t ua = c[i - 1].usable, ub = c[i].usable;
            free(c);
            T_FAIL("live allocations overlap: %p (usable %zu) and %p (usable %zu)", a, ua, b,
                   ub);
        }
    }
    free(c);
}

/* Allocates, checks alignment / usable size, fills the whole usable size. */
static void alloc_obj(pool_t *pool, obj_t *o, size_t size, uint64_t salt)
{
    o->size = size;
    o->p = pool_alloc(pool, size);
    EXPECT_NONNULL_CTX(o->p, "pool_alloc(%zu)", size);
    EXPECT_ALIGNED(o->p, 16);
    o->usable = pool_usable_size(pool, o->p);
    if (o->usable < size) T_FAIL("pool_usable_size(%p) = %zu < requested %zu", o->p, o->usable, size);
    o->tag = tag_of(o->p, size, salt);
    fill(o->p, o->usable, o->tag);
}

static void free_obj(pool_t *pool, obj_t *o)
{
    EXPECT_PATTERN(o->p, o->usable, o->tag);
    size_t u = pool_usable_size(pool, o->p);
    EXPECT_EQ(u, o->usable);
    pool_free(pool, o->p);
    o->p = NULL;
}

/* ======================================================================== */
/* Creation                                                                  */

static void exercise_small(pool_t *pool, rng_t *r)
{
    enum { N = 64 };
    obj_t o[N];
    for (int i = 0; i < N; i++) alloc_obj(pool, &o[i], rng_size(r, 1, 8192), 1);
    expect_disjoint(o, N);
    for (int i = 0; i < N; i++) free_obj(pool, &o[i]);
}

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
/* pool_free(NULL), stats                                                    */

static void test_pool_free_null_is_noop(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    unsigned long r0 = rec_count();
    void *keep = pool_alloc(pool, 10);
    EXPECT_NONNULL_CTX(keep, "pool_alloc(10)");
    pool_stats_t s0 = stats_of(pool);
    for (int i = 0; i < 100; i++) pool_free(pool, NULL);
    pool_free(pool_default(), NULL);
    pool_stats_t s1 = stats_of(pool);
    EXPECT_EQ(s1.frees, s0.frees);
    EXPECT_EQ(s1.allocs, s0.allocs);
    EXPECT_EQ(s1.live_allocations, s0.live_allocations);
    EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use);
    EXPECT_NO_REPORTS(r0);
    pool_free(pool, keep);
    pool_destroy(pool);
}

static void test_pool_stats_exact(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = new_pool();
    enum { SLOTS = 1024 };
    obj_t *o = calloc(SLOTS, sizeof *o);
    assert_non_null(o);
    uint64_t allocs = 0, frees = 0;
    size_t live = 0, in_use = 0, ops = scaled(60000, 8000);
    for (size_t i = 0; i < ops; i++) {
        obj_t *x = &o[rng_below(&r, SLOTS)];
        if (x->p) {
            in_use -= x->usable;
            free_obj(pool, x);
            frees++;
            live--;
        } else {
            unsigned kind = (unsigned)rng_below(&r, 100);
            size_t sz = kind < 2 ? rng_size(&r, 256 * KiB, 3 * MiB) : rng_size(&r, 0, 40000);
            if (kind < 70) {
                x->p = pool_alloc(pool, sz);
            } else if (kind < 85) {
                x->p = pool_calloc(pool, 1, sz);
            } else {
                x->p = pool_alloc_aligned(pool, sz, (size_t)1 << rng_below(&r, 13));
            }
            EXPECT_NONNULL_CTX(x->p, "allocation kind %u size %zu", kind, sz);
            x->size = sz;
            x->usable = pool_usable_size(pool, x->p);
            EXPECT_GE(x->usable, sz);
            x->tag = tag_of(x->p, sz, i);
            fill(x->p, x->usable, x->tag);
            in_use += x->usable;
            allocs++;
            live++;
        }
        if (i % 997 == 0 || i == ops - 1) {
            pool_stats_t s = stats_of(pool);
            EXPECT_EQ(s.allocs, allocs);
            EXPECT_EQ(s.frees, frees);
            EXPECT_EQ(s.live_allocations, live);
            EXPECT_EQ(s.bytes_in_use, in_use);
            expect_stats_sane(&s);
        }
    }
    for (size_t i = 0; i < SLOTS; i++)
        if (o[i].p) {
            free_obj(pool, &o[i]);
            frees++;
        }
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.allocs, allocs);
    EXPECT_EQ(s.frees, frees);
    EXPECT_EQ(s.allocs, s.frees);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.bytes_in_use, 0);
    expect_stats_sane(&s);
    free(o);
    pool_destroy(pool);
}

/* ======================================================================== */
/* pool_trim, pool_destroy                                                   */

static void test_pool_trim_releases_memory(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    const size_t nsmall = 64 * MiB / KiB, nbig = 16;
    void **small = malloc(nsmall * sizeof *small);
    void *big[16];
    assert_non_null(small);
    for (size_t i = 0; i < nsmall; i++) {
        small[i] = pool_alloc(pool, KiB);
        EXPECT_NONNULL_CTX(small[i], "pool_alloc(1 KiB) #%zu", i);
        memset(launder(small[i]), (int)(i | 1), KiB);
    }
    for (size_t i = 0; i < nbig; i++) {
        big[i] = pool_alloc(pool, MiB);
        EXPECT_NONNULL_CTX(big[i], "pool_alloc(1 MiB) #%zu", i);
        memset(launder(big[i]), 0x77, MiB);
    }
    const size_t freed = nsmall * KiB + nbig * MiB;
    pool_stats_t s_full = stats_of(pool);
    size_t rss_full = rss_bytes();
    for (size_t i = 0; i < nsmall; i++) pool_free(pool, small[i]);
    for (size_t i = 0; i < nbig; i++) pool_free(pool, big[i]);
    pool_stats_t s_freed = stats_of(pool);
    EXPECT_EQ(s_freed.live_allocations, 0);
    EXPECT_EQ(s_freed.bytes_in_use, 0);
    size_t released = pool_trim(pool);
    pool_stats_t s_trim = stats_of(pool);
    size_t rss_trim = rss_bytes();
    print_message("  reserved: full %zu, after free %zu, after trim %zu; trim returned %zu\n",
                  s_full.bytes_reserved, s_freed.bytes_reserved, s_trim.bytes_reserved,
                  released);
    print_message("  rss: full %zu, after trim %zu (freed %zu)\n", rss_full, rss_trim, freed);
    EXPECT_GE(s_full.bytes_reserved, freed);
    if (released == 0) T_FAIL("pool_trim returned 0 after freeing %zu bytes", freed);
    EXPECT_LT(s_trim.bytes_reserved, s_freed.bytes_reserved);
    EXPECT_EQ(s_freed.bytes_reserved - s_trim.bytes_reserved, released);
    /* Everything that was freed must have left the process (at least half
       of it, to leave room for metadata and allocator caches). */
    EXPECT_LE(s_trim.bytes_reserved, s_full.bytes_reserved - freed / 2);
    if (rss_full > 0) {
        if (rss_trim > rss_full || rss_full - rss_trim < freed / 2)
            T_FAIL("RSS only dropped from %zu to %zu after freeing %zu bytes and trimming",
                   rss_full, rss_trim, freed);
    }
    expect_stats_sane(&s_trim);
    /* still usable after trim */
    for (size_t i = 0; i < 1000; i++) {
        small[i] = pool_alloc(pool, KiB);
        EXPECT_NONNULL_CTX(small[i], "pool_alloc after trim");
        fill(small[i], KiB, i);
    }
    big[0] = pool_alloc(pool, MiB);
    EXPECT_NONNULL_CTX(big[0], "pool_alloc(1 MiB) after trim");
    fill(big[0], MiB, 1);
    for (size_t i = 0; i < 1000; i++) {
        EXPECT_PATTERN(small[i], KiB, i);
        pool_free(pool, small[i]);
    }
    EXPECT_PATTERN(big[0], MiB, 1);
    pool_free(pool, big[0]);
    /* trimming an empty pool twice is harmless */
    (void)pool_trim(pool);
    size_t again = pool_trim(pool);
    EXPECT_EQ(again, 0);
    free(small);
    pool_destroy(pool);
}

static void test_pool_destroy_releases_memory(void **state)
{
    (void)state;
    TEST_START();
    size_t rounds = 50, rss_warm = 0;
    for (size_t round = 0; round < rounds; round++) {
        pool_t *pool = pool_create(NULL);
        EXPECT_NONNULL_CTX(pool, "pool_create round %zu", round);
        /* ~8 MiB: small objects, medium and large; some left live */
        for (size_t i = 0; i < 4096; i++) {
            void *p = pool_alloc(pool, KiB);
            EXPECT_NONNULL_CTX(p, "pool_alloc(1 KiB)");
            memset(launder(p), 0x3c, KiB);
            if (i % 3 == 0) pool_free(pool, p);
        }
        for (size_t i = 0; i < 8; i++) {
            void *p = pool_alloc(pool, 100 * KiB);
            EXPECT_NONNULL_CTX(p, "pool_alloc(100 KiB)");
            memset(launder(p), 0x3d, 100 * KiB);
        }
        for (size_t i = 0; i < 2; i++) {
            void *p = pool_alloc(pool, 2 * MiB);
            EXPECT_NONNULL_CTX(p, "pool_alloc(2 MiB)");
            memset(launder(p), 0x3e, 2 * MiB);
        }
        pool_destroy(pool);
        if (round == 4) rss_warm = rss_bytes();
    }
    size_t rss_end = rss_bytes();
    print_message("  rss after warm-up %zu, after %zu rounds %zu\n", rss_warm, rounds, rss_end);
    if (rss_warm && rss_end > rss_warm + 8 * MiB)
        T_FAIL("RSS grew by %zu bytes over %zu create/fill/destroy rounds (%zu -> %zu)",
               rss_end - rss_warm, rounds - 5, rss_warm, rss_end);
}

/* "A new pool created at the address of a destroyed one shares nothing
   with it": this thread's cached heap of the old pool must not be reused. */
static void test_pool_destroy_and_recreate(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    int same_address = 0;
    for (int round = 0; round < 20; round++) {
        pool_t *a = pool_create(NULL);
        EXPECT_NONNULL_CTX(a, "pool_create A");
        void *pa[64];
        for (int i = 0; i < 64; i++) {
            pa[i] = pool_alloc(a, 48);
            EXPECT_NONNULL_CTX(pa[i], "pool_alloc(A, 48)");
        }
        for (int i = 0; i < 32; i++) pool_free(a, pa[i]); /* A's heap has free cells */
        pool_destroy(a);
        pool_t *b = pool_create(NULL);
        EXPECT_NONNULL_CTX(b, "pool_create B");
        if (b == a) same_address++;
        pool_stats_t s = stats_of(b);
        EXPECT_EQ(s.allocs, 0);
        EXPECT_EQ(s.live_allocations, 0);
        EXPECT_EQ(s.bytes_in_use, 0);
        obj_t o[100];
        size_t sum = 0;
        for (int i = 0; i < 100; i++) {
            alloc_obj(b, &o[i], 48, (uint64_t)round);
            sum += o[i].usable;
        }
        expect_disjoint(o, 100);
        s = stats_of(b);
        EXPECT_EQ(s.allocs, 100);
        EXPECT_EQ(s.live_allocations, 100);
        EXPECT_EQ(s.bytes_in_use, sum);
        EXPECT_EQ(report_count(b), 100);
        for (int i = 0; i < 100; i++) free_obj(b, &o[i]);
        s = stats_of(b);
        EXPECT_EQ(s.frees, 100);
        EXPECT_EQ(s.live_allocations, 0);
        EXPECT_EQ(s.bytes_in_use, 0);
        pool_destroy(b);
    }
    print_message("  the new pool reused the old one's address in %d of 20 rounds\n",
                  same_address);
    EXPECT_NO_REPORTS(r0);
}

/* ======================================================================== */
/* Version, error handler                                                    */

static void test_pool_version_matches_header(void **state)
{
    (void)state;
    TEST_START();
    const char *v = mulch_version();
    EXPECT_NONNULL_CTX(v, "mulch_version()");
    if (strcmp(v, MULCH_VERSION_STRING) != 0)
        T_FAIL("mulch_version() = \"%s\", header says \"%s\"", v, MULCH_VERSION_STRING);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", MULCH_VERSION_MAJOR, MULCH_VERSION_MINOR,
             MULCH_VERSION_PATCH);
    if (strcmp(v, buf) != 0) T_FAIL("mulch_version() = \"%s\", macros say \"%s\"", v, buf);
    EXPECT_EQ(MULCH_VERSION, (MULCH_VERSION_MAJOR << 16) | (MULCH_VERSION_MINOR << 8) |
                                 MULCH_VERSION_PATCH);
}

static int g_h1_calls, g_h2_calls;
static void *g_h_ctx;
static void handler1(const char *w, const void *p, void *ctx)
{
    (void)w; (void)p;
    g_h1_calls++;
    g_h_ctx = ctx;
}
static void handler2(const char *w, const void *p, void *ctx)
{
    (void)w; (void)p;
    g_h2_calls++;
    g_h_ctx = ctx;
}

static void test_pool_set_error_handler_returns_previous(void **state)
{
    (void)state;
    TEST_START();
    /* setup_rec installed rec_handler */
    mulch_error_fn prev = mulch_set_error_handler(handler1, &g_h1_calls);
    if (prev != rec_handler) T_FAIL("first swap returned %p, expected rec_handler %p",
                                    (void *)(uintptr_t)prev, (void *)(uintptr_t)rec_handler);
    prev = mulch_set_error_handler(handler2, &g_h2_calls);
    if (prev != handler1) T_FAIL("second swap returned %p, expected handler1 %p",
                                 (void *)(uintptr_t)prev, (void *)(uintptr_t)handler1);
    /* handler2 gets its own ctx on a detected misuse */
    pool_t *pool = new_pool();
    void *p = pool_alloc(pool, 64);
    EXPECT_NONNULL_CTX(p, "pool_alloc(64)");
    pool_free(pool, p);
    g_h1_calls = g_h2_calls = 0;
    g_h_ctx = NULL;
    pool_free(pool, p); /* double free */
    EXPECT_EQ(g_h1_calls, 0);
    EXPECT_EQ(g_h2_calls, 1);
    if (g_h_ctx != &g_h2_calls) T_FAIL("handler ctx %p, expected %p", g_h_ctx,
                                       (void *)&g_h2_calls);
    prev = mulch_set_error_handler(rec_handler, &g_ctx_token);
    if (prev != handler2) T_FAIL("third swap returned %p, expected handler2 %p",
                                 (void *)(uintptr_t)prev, (void *)(uintptr_t)handler2);
    pool_destroy(pool);
}

/* ======================================================================== */
/* Limit / OOM                                                               */

static void test_pool_limit_oom_recovers(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    const size_t limit = 8 * MiB;
    pool_t *pool = new_limited_pool(limit);
    size_t cap = 2 * limit / KiB + 16, n = 0;
    obj_t *v = calloc(cap, sizeof *v);
    assert_non_null(v);
    for (;;) {
        if (n == cap) T_FAIL("allocated %zu KiB in a pool limited to %zu bytes", n, limit);
        void *p = pool_alloc(pool, KiB);
        if ((n & 63) == 0 || !p) {
            pool_stats_t s = stats_of(pool);
            if (s.bytes_reserved > limit)
                T_FAIL("bytes_reserved %zu > limit %zu after %zu allocations", s.bytes_reserved,
                       limit, n);
        }
        if (!p) break;
        v[n].p = p;
        v[n].size = KiB;
        v[n].usable = KiB;
        v[n].tag = tag_of(p, KiB, 1);
        fill(p, KiB, v[n].tag);
        n++;
    }
    const size_t first_n = n;
    print_message("  1 KiB allocations before OOM: %zu\n", n);
    EXPECT_NO_REPORTS(r0);
    EXPECT_GE(n, limit / 2 / KiB); /* at least half of the limit is usable */
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, n);
    EXPECT_LE(s.bytes_reserved, limit);
    EXPECT_LE(s.peak_reserved, limit);
    /* a failed allocation did not count */
    EXPECT_EQ(s.allocs, n);

    /* free one: an allocation of the same size succeeds again */
    size_t victim = n / 2;
    EXPECT_PATTERN(v[victim].p, KiB, v[victim].tag);
    pool_free(pool, v[victim].p);
    void *again = pool_alloc(pool, KiB);
    EXPECT_NONNULL_CTX(again, "pool_alloc(1 KiB) after freeing one at the limit");
    v[victim].p = again;
    v[victim].tag = tag_of(again, KiB, 2);
    fill(again, KiB, v[victim].tag);

    /* everything else intact; free all */
    for (size_t i = 0; i < n; i++) {
        EXPECT_PATTERN(v[i].p, KiB, v[i].tag);
        pool_free(pool, v[i].p);
    }
    s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.bytes_in_use, 0);
    EXPECT_LE(s.bytes_reserved, limit);

    /* big allocations now succeed (the free small-object memory must be
       usable for them, or given back, without an explicit trim) */
    void *big[4];
    for (int i = 0; i < 4; i++) {
        big[i] = pool_alloc(pool, MiB);
        EXPECT_NONNULL_CTX(big[i], "pool_alloc(1 MiB) #%d after freeing everything", i);
        fill(big[i], MiB, (uint64_t)i);
        s = stats_of(pool);
        EXPECT_LE(s.bytes_reserved, limit);
    }
    void *big6 = NULL;
    for (int i = 0; i < 4; i++) {
        EXPECT_PATTERN(big[i], MiB, (uint64_t)i);
        pool_free(pool, big[i]);
    }
    big6 = pool_alloc(pool, 6 * MiB);
    EXPECT_NONNULL_CTX(big6, "pool_alloc(6 MiB) in an empty 8 MiB-limited pool");
    fill(big6, 6 * MiB, 6);
    EXPECT_PATTERN(big6, 6 * MiB, 6);
    pool_free(pool, big6);

    /* and the small-object capacity is all still there */
    n = 0;
    for (;;) {
        if (n == cap) T_FAIL("allocated %zu KiB in a pool limited to %zu bytes", n, limit);
        void *p = pool_alloc(pool, KiB);
        if (!p) break;
        v[n++].p = p;
    }
    print_message("  1 KiB allocations on the second fill: %zu\n", n);
    EXPECT_GE(n, first_n - first_n / 10);
    s = stats_of(pool);
    EXPECT_LE(s.bytes_reserved, limit);
    for (size_t i = 0; i < n; i++) pool_free(pool, v[i].p);
    s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_NO_REPORTS(r0);
    free(v);
    pool_destroy(pool);
}

static void test_pool_limit_single_request_over_limit(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *pool = new_limited_pool(8 * MiB);
    volatile size_t over[] = { 8 * MiB + 1, 9 * MiB, 16 * MiB, 1024 * MiB };
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
        size_t sz = over[i];
        void *p = pool_alloc(pool, sz);
        if (p) T_FAIL("pool_alloc(%zu) = %p in an 8 MiB-limited pool", sz, p);
        p = pool_alloc_aligned(pool, sz, 4096);
        if (p) T_FAIL("pool_alloc_aligned(%zu, 4096) = %p in an 8 MiB-limited pool", sz, p);
        p = pool_calloc(pool, 1, sz);
        if (p) T_FAIL("pool_calloc(1, %zu) = %p in an 8 MiB-limited pool", sz, p);
        p = pool_calloc(pool, sz / 16 + 1, 16);
        if (p) T_FAIL("pool_calloc(%zu, 16) = %p in an 8 MiB-limited pool", sz / 16 + 1, p);
    }
    pool_stats_t s = stats_of(pool);
    EXPECT_LE(s.bytes_reserved, 8 * MiB);
    EXPECT_LE(s.peak_reserved, 8 * MiB);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.allocs, 0);
    void *p = pool_alloc(pool, 4 * MiB);
    EXPECT_NONNULL_CTX(p, "pool_alloc(4 MiB) in an 8 MiB-limited pool");
    fill(p, 4 * MiB, 4);
    EXPECT_PATTERN(p, 4 * MiB, 4);
    pool_free(pool, p);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

static void test_pool_absurd_sizes_return_null(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *pool = new_pool();
    volatile size_t absurd[] = { SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 15, SIZE_MAX - 4095,
                                 SIZE_MAX / 2, SIZE_MAX / 2 + 1, (size_t)PTRDIFF_MAX,
                                 (size_t)PTRDIFF_MAX + 1, (size_t)1 << 62, (size_t)1 << 56,
                                 (size_t)1 << 50 };
    for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++) {
        size_t sz = absurd[i];
        void *p = pool_alloc(pool, sz);
        if (p) T_FAIL("pool_alloc(%zu) = %p, expected NULL", sz, p);
        p = pool_alloc_at(pool, sz, __FILE__, __LINE__);
        if (p) T_FAIL("pool_alloc_at(%zu) = %p, expected NULL", sz, p);
        p = pool_calloc(pool, 1, sz);
        if (p) T_FAIL("pool_calloc(1, %zu) = %p, expected NULL", sz, p);
        p = pool_alloc_aligned(pool, sz, 16);
        if (p) T_FAIL("pool_alloc_aligned(%zu, 16) = %p, expected NULL", sz, p);
        p = pool_alloc_aligned(pool, sz, 2 * MiB);
        if (p) T_FAIL("pool_alloc_aligned(%zu, 2 MiB) = %p, expected NULL", sz, p);
        p = pool_realloc(pool, NULL, sz);
        if (p) T_FAIL("pool_realloc(NULL, %zu) = %p, expected NULL", sz, p);
    }
    /* absurd alignment */
    volatile size_t huge_align = (size_t)1 << 62;
    void *p = pool_alloc_aligned(pool, 16, huge_align);
    if (p) T_FAIL("pool_alloc_aligned(16, 2^62) = %p, expected NULL", p);
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.allocs, 0);
    EXPECT_EQ(s.bytes_in_use, 0);
    expect_stats_sane(&s);
    EXPECT_NO_REPORTS(r0);
    /* still usable */
    rng_t r = test_rng_named(__func__);
    exercise_small(pool, &r);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* ======================================================================== */
/* Leak report                                                               */

static char *read_all(FILE *f)
{
    long len;
    fflush(f);
    if (fseek(f, 0, SEEK_END) != 0) return NULL;
    len = ftell(f);
    if (len < 0) return NULL;
    rewind(f);
    char *buf = malloc((size_t)len + 1);
    if (!buf) return NULL;
    size_t got = fread(buf, 1, (size_t)len, f);
    buf[got] = 0;
    return buf;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static int is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Does [line, end) contain the address p printed in hex (any case, optional
   0x, optional leading zeros)? */
static int line_has_addr(const char *line, const char *end, const void *p)
{
    char hex[32];
    snprintf(hex, sizeof hex, "%" PRIxPTR, (uintptr_t)p);
    size_t hl = strlen(hex);
    for (const char *c = line; c + hl <= end; c++) {
        size_t k = 0;
        while (k < hl && (c[k] == hex[k] || c[k] == (hex[k] - 'a' + 'A'))) k++;
        if (k != hl) continue;
        if (c + hl < end && is_hex(c[hl])) continue;
        const char *b = c;
        while (b > line && b[-1] == '0') b--;
        if (b > line && is_hex(b[-1])) continue;
        return 1;
    }
    return 0;
}

/* Does [line, end) contain the decimal number v as a whole token? */
static int line_has_number(const char *line, const char *end, size_t v)
{
    char dec[32];
    snprintf(dec, sizeof dec, "%zu", v);
    size_t dl = strlen(dec);
    for (const char *c = line; c + dl <= end; c++) {
        if (memcmp(c, dec, dl) != 0) continue;
        if (c > line && is_alnum(c[-1])) continue;
        if (c + dl < end && is_alnum(c[dl])) continue;
        return 1;
    }
    return 0;
}

static int line_has_str(const char *line, const char *end, const char *s)
{
    size_t sl = strlen(s);
    for (const char *c = line; c + sl <= end; c++)
        if (memcmp(c, s, sl) == 0) return 1;
    return 0;
}

/* Finds the unique line of the report mentioning p; fails unless exactly
   one line does. */
static void find_line(const char *text, const void *p, const char **ls, const char **le)
{
    int found = 0;
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        if (line_has_addr(line, end, p)) {
            found++;
            *ls = line;
            *le = end;
        }
        line = *end ? end + 1 : end;
    }
    if (found != 1) {
        print_error("---- report ----\n%s---- end ----\n", text);
        T_FAIL("leak report: %d lines mention %p, expected exactly 1", found, p);
    }
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Writes pool_report_leaks into a temporary file; it must count `want`
 * allocations. Returns the report's text (the caller frees it). */
static char *leak_report_text(pool_t *pool, size_t want)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    size_t n = pool_report_leaks(pool, f);
    char *text = read_all(f);
    fclose(f);
    assert_non_null(text);
    if (n != want) {
        print_error("---- report ----\n%s---- end ----\n", text);
        T_FAIL("pool_report_leaks returned %zu, expected %zu", n, want);
    }
    return text;
}

static void expect_size_on_line(pool_t *pool, const char *text, const void *p, size_t req)
{
    const char *ls = NULL, *le = NULL;
    find_line(text, p, &ls, &le);
    size_t usable = pool_usable_size(pool, p);
    if (!line_has_number(ls, le, req) && !line_has_number(ls, le, usable))
        T_FAIL("leak report line for %p \"%.*s\" shows neither size %zu nor usable %zu", p,
               (int)(le - ls), ls, req, usable);
}

static void test_pool_leak_report_tracked(void **state)
{
    (void)state;
    TEST_START();
    pool_options_t o;
    memset(&o, 0, sizeof o);
    o.track_leaks = 1;
    pool_t *pool = pool_create(&o);
    EXPECT_NONNULL_CTX(pool, "pool_create(track_leaks=1)");
    const size_t site_sizes[3] = { 777, 33333, 2 * MiB + 5 }; /* small, medium, large */
    const size_t plain_sizes[2] = { 4444, 99999 };
    void *site[3], *plain[2];
    /* the three POOL_ALLOC calls share this one line: */
    for (int i = 0; i < 3; i++) { site[i] = POOL_ALLOC(pool, site_sizes[i]); } const int site_line = __LINE__;
    for (int i = 0; i < 2; i++) plain[i] = pool_alloc(pool, plain_sizes[i]);
    for (int i = 0; i < 3; i++) EXPECT_NONNULL_CTX(site[i], "POOL_ALLOC(%zu)", site_sizes[i]);
    for (int i = 0; i < 2; i++) EXPECT_NONNULL_CTX(plain[i], "pool_alloc(%zu)", plain_sizes[i]);

    char *text = leak_report_text(pool, 5);
    char site_str[256];
    snprintf(site_str, sizeof site_str, "%s:%d", base_name(__FILE__), site_line);
    for (int i = 0; i < 3; i++) {
        const char *ls = NULL, *le = NULL;
        find_line(text, site[i], &ls, &le);
        if (!line_has_str(ls, le, site_str)) {
            print_error("---- report ----\n%s---- end ----\n", text);
            T_FAIL("leak line for POOL_ALLOC'd %p does not name \"%s\": \"%.*s\"", site[i],
                   site_str, (int)(le - ls), ls);
        }
        expect_size_on_line(pool, text, site[i], site_sizes[i]);
    }
    for (int i = 0; i < 2; i++) expect_size_on_line(pool, text, plain[i], plain_sizes[i]);
    free(text);

    for (int i = 0; i < 3; i++) pool_free(pool, site[i]);
    EXPECT_EQ(report_count(pool), 2);
    for (int i = 0; i < 2; i++) pool_free(pool, plain[i]);
    EXPECT_EQ(report_count(pool), 0);
    pool_destroy(pool);
}

static void test_pool_leak_report_untracked(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    const size_t sizes[7] = { 0, 1, 100, 3000, 70000, 300000, 2 * MiB };
    void *p[7];
    for (int i = 0; i < 7; i++) {
        p[i] = pool_alloc(pool, sizes[i]);
        EXPECT_NONNULL_CTX(p[i], "pool_alloc(%zu)", sizes[i]);
    }
    char *text = leak_report_text(pool, 7);
    for (int i = 0; i < 7; i++)
        if (sizes[i] >= 100) expect_size_on_line(pool, text, p[i], sizes[i]);
    free(text);
    for (int i = 0; i < 7; i += 2) pool_free(pool, p[i]);
    EXPECT_EQ(report_count(pool), 3);
    /* out = NULL: stderr */
    print_message("  (a leak report of 3 allocations on stderr follows)\n");
    size_t n = pool_report_leaks(pool, NULL);
    EXPECT_EQ(n, 3);
    for (int i = 1; i < 7; i += 2) pool_free(pool, p[i]);
    n = pool_report_leaks(pool, NULL);
    EXPECT_EQ(n, 0);
    pool_destroy(pool);
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_pool_api");
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
        T(test_pool_free_null_is_noop),
        T(test_pool_stats_exact),
        T(test_pool_trim_releases_memory),
        T(test_pool_destroy_releases_memory),
        T(test_pool_destroy_and_recreate),
        T(test_pool_version_matches_header),
        T(test_pool_set_error_handler_returns_previous),
        T(test_pool_limit_oom_recovers),
        T(test_pool_limit_single_request_over_limit),
        T(test_pool_absurd_sizes_return_null),
        T(test_pool_leak_report_tracked),
        T(test_pool_leak_report_untracked),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
