/* test_pool_review_s20.c — pool statistics stay exact (session 20 review):
 * a seeded mix of small, large, aligned and zeroed allocations, reallocs
 * into and out of large objects, frees by other threads, allocations by
 * threads that then exit, and trims; after each step pool_get_stats must
 * agree with a model of the live allocations (count, and bytes_in_use as
 * the sum of their usable sizes) and its figures with each other.
 *
 * Deterministic: every random choice comes from the seed, printed at
 * start (MULCH_TEST_SEED overrides it). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d20)
#include <pthread.h>

#include <mulch/pool.h>

#include "pool_api_test.h"

enum { MAX_LIVE = 400 };

typedef struct {
    pool_t *pool;
    void *p[MAX_LIVE];
    size_t usable[MAX_LIVE];
    size_t n;
} model_t;

static void model_add(model_t *m, void *p)
{
    assert_non_null(p);
    m->p[m->n] = p;
    m->usable[m->n] = pool_usable_size(m->pool, p);
    m->n++;
}

static void model_remove(model_t *m, size_t i)
{
    m->p[i] = m->p[m->n - 1];
    m->usable[i] = m->usable[m->n - 1];
    m->n--;
}

static void model_check(const model_t *m, const char *step, unsigned round)
{
    pool_stats_t st = stats_of(m->pool);
    size_t bytes = 0;
    for (size_t i = 0; i < m->n; i++) bytes += m->usable[i];
    if (st.live_allocations != m->n || st.bytes_in_use != bytes)
        T_FAIL("round %u, after %s: live %zu in_use %zu, the model has %zu allocations of %zu bytes", round,
               step, st.live_allocations, st.bytes_in_use, m->n, bytes);
    expect_stats_sane(&st);
    EXPECT_LE(st.free_block_bytes, st.bytes_reserved);
    EXPECT_LE(st.bytes_reserved, st.bytes_mapped);
    EXPECT_LE(st.large_objects, m->n);
}

static size_t random_size(rng_t *r)
{
    switch (rng_below(r, 4)) {
    case 0: return (size_t)rng_below(r, 257);
    case 1: return 256 + (size_t)rng_below(r, 8 * KiB);
    case 2: return 8 * KiB + (size_t)rng_below(r, 200 * KiB);
    default: return 200 * KiB + (size_t)rng_below(r, 3 * MiB);
    }
}

static void *random_alloc(pool_t *pool, rng_t *r)
{
    size_t size = random_size(r);
    switch (rng_below(r, 3)) {
    case 0: return pool_alloc(pool, size);
    case 1: return pool_calloc(pool, 1, size);
    default: return pool_alloc_aligned(pool, size, (size_t)16 << rng_below(r, 17));
    }
}

typedef struct {
    model_t *m;
    size_t from, to; /* frees m->p[from..to) */
    void *made[32];  /* or allocates these */
    size_t make;
    uint64_t seed;
} job_t;

static void *free_some(void *arg)
{
    job_t *job = arg;
    for (size_t i = job->from; i < job->to; i++) pool_free(job->m->pool, job->m->p[i]);
    return NULL;
}

static void *alloc_some(void *arg)
{
    job_t *job = arg;
    rng_t r = test_rng("alloc_some", job->seed);
    for (size_t i = 0; i < job->make; i++) job->made[i] = random_alloc(job->m->pool, &r);
    return NULL;
}

static void run_thread(void *(*fn)(void *), job_t *job)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fn, job), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

static void test_pool_stats_exact_seeded(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    static model_t m;
    memset(&m, 0, sizeof m);
    m.pool = new_pool();
    rng_t r = test_rng_named("test_pool_stats_exact_seeded");
    unsigned rounds = (unsigned)scaled(3000, 600);
    for (unsigned round = 0; round < rounds; round++) {
        unsigned op = (unsigned)rng_below(&r, 100);
        const char *step;
        if (op < 40 && m.n < MAX_LIVE) {
            step = "alloc";
            model_add(&m, random_alloc(m.pool, &r));
        } else if (op < 60 && m.n > 0) {
            step = "free";
            size_t i = (size_t)rng_below(&r, m.n);
            pool_free(m.pool, m.p[i]);
            model_remove(&m, i);
        } else if (op < 80 && m.n > 0) {
            step = "realloc";
            size_t i = (size_t)rng_below(&r, m.n);
            void *q = pool_realloc(m.pool, m.p[i], 1 + random_size(&r));
            assert_non_null(q);
            m.p[i] = q;
            m.usable[i] = pool_usable_size(m.pool, q);
        } else if (op < 88 && m.n > 0) {
            step = "free by another thread";
            job_t job = { &m, 0, 0, { 0 }, 0, 0 };
            job.from = (size_t)rng_below(&r, m.n);
            job.to = job.from + 1 + (size_t)rng_below(&r, m.n - job.from);
            run_thread(free_some, &job);
            for (size_t i = job.to; i-- > job.from;) model_remove(&m, i);
        } else if (op < 95 && m.n + 32 <= MAX_LIVE) {
            step = "alloc by a thread that exits";
            job_t job = { &m, 0, 0, { 0 }, 1 + (size_t)rng_below(&r, 32), rng_next(&r) };
            run_thread(alloc_some, &job);
            for (size_t i = 0; i < job.make; i++) model_add(&m, job.made[i]);
        } else {
            step = "trim";
            pool_trim(m.pool);
        }
        model_check(&m, step, round);
    }
    while (m.n > 0) {
        pool_free(m.pool, m.p[m.n - 1]);
        m.n--;
    }
    pool_trim(m.pool);
    EXPECT_POOL_EMPTY(m.pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(m.pool);
}

/* Under valgrind (the CI's memcheck stage runs this file): a block the
 * program never wrote, realloc'd, then freed or asked its size. The copy
 * carried its undefined bytes into the new cell's second word, which the
 * pool's checks read: memcheck reported a jump on uninitialised data in
 * pool_free and pool_usable_size of a correct program. Elsewhere it checks
 * that those calls work and report nothing. */
static void test_realloc_unwritten_then_free(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    static const size_t from[] = { 300000, 48, 4000, 200 };
    static const size_t to[] = { 48, 100, 24, 70000 };
    for (size_t k = 0; k < sizeof from / sizeof *from; k++) {
        void *p = pool_alloc(pool, from[k]);
        EXPECT_NONNULL(p);
        void *q = pool_realloc(pool, p, to[k]);
        EXPECT_NONNULL(q);
        EXPECT_GE(pool_usable_size(pool, q), to[k]);
        pool_free(pool, q);
    }
    pool_destroy(pool);
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_pool_review_s20");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_pool_stats_exact_seeded),
        T(test_realloc_unwritten_then_free),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
