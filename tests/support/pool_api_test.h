/* pool_api_test.h — helpers shared by the black-box pool tests
 * tests/api/test_pool_{alloc,lifecycle,limits,leak_report}.c: log-uniform
 * sizes (rng_size), EXPECT_ALIGNED, per-object pattern tags (tag_of),
 * first_nonzero, expect_stats_sane, rss_bytes, new_pool / new_limited_pool,
 * EXPECT_POOL_EMPTY, and the obj_t bookkeeping (alloc_obj, free_obj,
 * expect_disjoint, exercise_small).
 *
 * Include it instead of mulch_test.h, after defining DEFAULT_SEED: it
 * includes mulch_test.h with MULCH_TEST_POOL (stats_of, fill, check and
 * EXPECT_PATTERN come from there). Everything here is static (inline) and
 * belongs to the including file. */
#ifndef MULCH_POOL_API_TEST_H
#define MULCH_POOL_API_TEST_H

#ifdef MULCH_TEST_H
#  error "include pool_api_test.h instead of mulch_test.h"
#endif
#define MULCH_TEST_POOL 1
#include <unistd.h>

#include "mulch_test.h"

/* Log-uniform size in [lo, hi]. */
static inline size_t rng_size(rng_t *r, size_t lo, size_t hi)
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

static inline uint64_t tag_of(const void *p, size_t size, uint64_t salt)
{
    return mix64((uint64_t)(uintptr_t)p ^ mix64(size ^ salt));
}

static inline size_t first_nonzero(const void *p, size_t n)
{
    const unsigned char *b = launder((void *)(uintptr_t)p);
    for (size_t i = 0; i < n; i++)
        if (b[i]) return i;
    return SIZE_MAX;
}

/* ------------------------------------------------------------------------ */
/* Misc helpers                                                              */

static inline void expect_stats_sane(const pool_stats_t *s)
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

static inline size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (!f) return 0;
    if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
    fclose(f);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* A pool with the default options (fails the test when pool_create does). */
static inline pool_t *new_pool(void)
{
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL_CTX(pool, "pool_create");
    return pool;
}

/* A pool whose reservations may not exceed `limit` bytes. */
static inline pool_t *new_limited_pool(size_t limit)
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

static inline void expect_pool_empty_(pool_t *pool, int line)
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

static inline int cmp_obj_addr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const obj_t *)a)->p, y = (uintptr_t)((const obj_t *)b)->p;
    return x < y ? -1 : x > y;
}

/* Sorts a copy of objs by address and checks that [p, p+usable) ranges are
 * pairwise disjoint (so in particular all addresses are distinct). */
static inline void expect_disjoint(const obj_t *objs, size_t n)
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
static inline void alloc_obj(pool_t *pool, obj_t *o, size_t size, uint64_t salt)
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

static inline void free_obj(pool_t *pool, obj_t *o)
{
    EXPECT_PATTERN(o->p, o->usable, o->tag);
    size_t u = pool_usable_size(pool, o->p);
    EXPECT_EQ(u, o->usable);
    pool_free(pool, o->p);
    o->p = NULL;
}

static inline void exercise_small(pool_t *pool, rng_t *r)
{
    enum { N = 64 };
    obj_t o[N];
    for (int i = 0; i < N; i++) alloc_obj(pool, &o[i], rng_size(r, 1, 8192), 1);
    expect_disjoint(o, N);
    for (int i = 0; i < N; i++) free_obj(pool, &o[i]);
}

#endif /* MULCH_POOL_API_TEST_H */
