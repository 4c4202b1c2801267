/* test_pool_threads_churn.c — multi-threaded stress of the pool, objects
 * passed between threads: churn with cross-thread frees, producer/consumer,
 * and pool-wide calls (statistics, trim, leak report) racing allocation.
 * Every object carries a pattern derived from (pointer, size, owner seed)
 * that is verified before it is freed; at the end the statistics must be
 * exact.
 *
 * Deterministic per thread (seed from MULCH_TEST_SEED or a fixed default,
 * printed at the start); interleavings of course vary. MULCH_TEST_QUICK=1
 * and sanitizer / valgrind builds scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d03)
#include <mulch/pool.h>

#include "pool_threads_test.h"

/* ------------------------------------------------------------------------ */
/* Bounded lock-protected exchange queue                                     */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t nonempty, nonfull;
    item_t *items;
    size_t cap, head, count;
    int closed;
} queue_t;

static void queue_init(queue_t *q, size_t cap)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->nonempty, NULL);
    pthread_cond_init(&q->nonfull, NULL);
    q->items = malloc(cap * sizeof *q->items);
    assert_non_null(q->items);
    q->cap = cap;
    q->head = q->count = 0;
    q->closed = 0;
}

static void queue_fini(queue_t *q)
{
    free(q->items);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->nonempty);
    pthread_cond_destroy(&q->nonfull);
}

static int queue_try_push(queue_t *q, const item_t *it)
{
    int ok = 0;
    pthread_mutex_lock(&q->mu);
    if (q->count < q->cap) {
        q->items[(q->head + q->count) % q->cap] = *it;
        q->count++;
        ok = 1;
        pthread_cond_signal(&q->nonempty);
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

static int queue_try_pop(queue_t *q, item_t *it)
{
    int ok = 0;
    pthread_mutex_lock(&q->mu);
    if (q->count) {
        *it = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        ok = 1;
        pthread_cond_signal(&q->nonfull);
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

static void queue_push_wait(queue_t *q, const item_t *it)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap) pthread_cond_wait(&q->nonfull, &q->mu);
    q->items[(q->head + q->count) % q->cap] = *it;
    q->count++;
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->mu);
}

/* 1 = got one, 0 = closed and empty */
static int queue_pop_wait(queue_t *q, item_t *it)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && !q->closed) pthread_cond_wait(&q->nonempty, &q->mu);
    int ok = 0;
    if (q->count) {
        *it = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        ok = 1;
        pthread_cond_signal(&q->nonfull);
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

static void queue_close(queue_t *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->mu);
}


/* ======================================================================== */
/* 1. Churn with cross-thread frees                                          */

static size_t churn_size(rng_t *r)
{
    uint64_t x = rng_below(r, 1000);
    if (x == 0) return 256 * KiB;
    if (x < 4) return 64 * KiB;
    return 16 + (size_t)rng_below(r, 2048 - 16 + 1);
}

#define CHURN_SLOTS 512

typedef struct churn {
    pool_t *pool;
    int id, nthreads;
    uint64_t seed;
    size_t ops_target;
    queue_t *queues; /* one inbox per thread */
    pthread_barrier_t *barrier;
    /* results */
    uint64_t allocs, frees, cross_frees;
} churn_t;

static void *churn_thread(void *arg)
{
    churn_t *c = arg;
    rng_t r = { c->seed };
    item_t *slots = calloc(CHURN_SLOTS, sizeof *slots);
    size_t n = 0, ops = 0;
    item_t it;
    if (!slots) {
        TFAIL("calloc failed");
        pthread_barrier_wait(c->barrier);
        return NULL;
    }
    while (ops < c->ops_target && atomic_load(&g_failures) == 0) {
        /* drain the inbox at least as fast as the others fill it */
        for (int k = 0; k < 2 && queue_try_pop(&c->queues[c->id], &it); k++) {
            item_free(c->pool, &it);
            c->frees++;
            c->cross_frees++;
            ops++;
        }
        uint64_t x = rng_below(&r, 100);
        if (n == 0 || (x < 50 && n < CHURN_SLOTS)) {
            if (item_alloc(c->pool, &slots[n], churn_size(&r), c->seed) != 0) break;
            n++;
            c->allocs++;
            ops++;
        } else {
            size_t i = (size_t)rng_below(&r, n);
            it = slots[i];
            slots[i] = slots[--n];
            int to = (int)rng_below(&r, (uint64_t)c->nthreads - 1);
            if (to >= c->id) to++;
            if ((rng_next(&r) & 1) || !queue_try_push(&c->queues[to], &it)) {
                item_free(c->pool, &it);
                c->frees++;
                ops++;
            }
        }
    }
    while (n) {
        item_free(c->pool, &slots[--n]);
        c->frees++;
    }
    free(slots);
    /* nobody pushes after this barrier: drain our inbox */
    pthread_barrier_wait(c->barrier);
    while (queue_try_pop(&c->queues[c->id], &it)) {
        item_free(c->pool, &it);
        c->frees++;
        c->cross_frees++;
    }
    return NULL;
}

static void run_churn(pool_t *pool, int nthreads, size_t total_ops, const char *name,
                      uint64_t *allocs_out, uint64_t *frees_out, uint64_t *cross_out,
                      void *(*extra)(void *), void *extra_arg, atomic_int *stop_extra)
{
    churn_t c[8];
    pthread_t t[8], te;
    queue_t q[8];
    pthread_barrier_t bar;
    assert_true(nthreads <= 8);
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
    for (int i = 0; i < nthreads; i++) queue_init(&q[i], 16384);
    if (extra) assert_int_equal(pthread_create(&te, NULL, extra, extra_arg), 0);
    for (int i = 0; i < nthreads; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].pool = pool;
        c[i].id = i;
        c[i].nthreads = nthreads;
        c[i].seed = seed_for(name, (uint64_t)i);
        c[i].ops_target = total_ops / (size_t)nthreads;
        c[i].queues = q;
        c[i].barrier = &bar;
        assert_int_equal(pthread_create(&t[i], NULL, churn_thread, &c[i]), 0);
    }
    uint64_t a = 0, f = 0, x = 0;
    for (int i = 0; i < nthreads; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        a += c[i].allocs;
        f += c[i].frees;
        x += c[i].cross_frees;
    }
    if (extra) {
        atomic_store(stop_extra, 1);
        assert_int_equal(pthread_join(te, NULL), 0);
    }
    for (int i = 0; i < nthreads; i++) {
        EXPECT_EQ(q[i].count, 0);
        queue_fini(&q[i]);
    }
    pthread_barrier_destroy(&bar);
    *allocs_out = a;
    *frees_out = f;
    *cross_out = x;
}

static void test_pool_threads_cross_free_churn(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    size_t total = scaled(10000000, 600000);
    uint64_t a, f, x;
    run_churn(pool, 4, total, __func__, &a, &f, &x, NULL, NULL, NULL);
    EXPECT_NO_ASYNC_FAILURES();
    print_message("  %" PRIu64 " allocs, %" PRIu64 " frees, %" PRIu64 " cross-thread (%.1f%%)\n",
                  a, f, x, f ? 100.0 * (double)x / (double)f : 0.0);
    EXPECT_EQ(a, f);
    EXPECT_GE(a + f, total * 9 / 10);
    /* the test does what it claims: a good share of frees is cross-thread */
    EXPECT_GE(x * 4, f);
    expect_quiescent_empty(pool, a);
    EXPECT_EQ(atomic_load(&g_reports), 0);
    pool_destroy(pool);
}

/* ======================================================================== */
/* 2. Producer / consumer                                                    */

typedef struct {
    pool_t *pool;
    queue_t *q;
    uint64_t seed;
    size_t n;
    uint64_t count;
} pc_t;

static void *producer_thread(void *arg)
{
    pc_t *p = arg;
    rng_t r = { p->seed };
    for (size_t i = 0; i < p->n && atomic_load(&g_failures) == 0; i++) {
        item_t it;
        size_t size = rng_below(&r, 200) == 0 ? 64 * KiB : 16 + (size_t)rng_below(&r, 2033);
        if (item_alloc(p->pool, &it, size, p->seed) != 0) break;
        p->count++;
        queue_push_wait(p->q, &it);
    }
    queue_close(p->q);
    return NULL;
}

static void *consumer_thread(void *arg)
{
    pc_t *c = arg;
    item_t it;
    while (queue_pop_wait(c->q, &it)) {
        item_free(c->pool, &it);
        c->count++;
    }
    return NULL;
}

static void test_pool_threads_producer_consumer(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    queue_t q;
    queue_init(&q, 4096);
    pc_t prod = { pool, &q, seed_for(__func__, 0), scaled(400000, 60000), 0 };
    pc_t cons = { pool, &q, 0, 0, 0 };
    pthread_t tp, tc;
    assert_int_equal(pthread_create(&tc, NULL, consumer_thread, &cons), 0);
    assert_int_equal(pthread_create(&tp, NULL, producer_thread, &prod), 0);
    assert_int_equal(pthread_join(tp, NULL), 0);
    assert_int_equal(pthread_join(tc, NULL), 0);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_EQ(prod.count, prod.n);
    EXPECT_EQ(cons.count, prod.count);
    expect_quiescent_empty(pool, prod.count);
    /* the consumer's frees were all remote: the memory must be reusable */
    pool_stats_t s = stats_of(pool);
    EXPECT_LE(s.peak_reserved, 256 * MiB);
    EXPECT_EQ(atomic_load(&g_reports), 0);
    queue_fini(&q);
    pool_destroy(pool);
}

/* ======================================================================== */
/* 3. Pool-wide calls racing allocation                                      */

typedef struct {
    pool_t *pool;
    atomic_int *stop;
    FILE *devnull;
    uint64_t iterations;
} monitor_t;

static void *monitor_thread(void *arg)
{
    monitor_t *m = arg;
    while (!atomic_load(m->stop)) {
        pool_stats_t s = stats_of(m->pool);
        if (!(s.fragmentation >= 0.0 && s.fragmentation <= 1.0))
            TFAIL("concurrent pool_get_stats: fragmentation %g outside [0,1]", s.fragmentation);
        if (s.peak_reserved < s.bytes_reserved)
            TFAIL("concurrent pool_get_stats: peak_reserved %zu < bytes_reserved %zu",
                  s.peak_reserved, s.bytes_reserved);
        (void)pool_trim(m->pool);
        (void)pool_report_leaks(m->pool, m->devnull);
        m->iterations++;
    }
    return NULL;
}

static void test_pool_threads_stats_trim_report_concurrent(void **state)
{
    (void)state;
    TEST_START();
    for (int tracked = 0; tracked < 2; tracked++) {
        pool_options_t o;
        memset(&o, 0, sizeof o);
        o.track_leaks = tracked;
        pool_t *pool = pool_create(&o);
        assert_non_null(pool);
        FILE *devnull = fopen("/dev/null", "w");
        assert_non_null(devnull);
        atomic_int stop;
        atomic_init(&stop, 0);
        monitor_t m = { pool, &stop, devnull, 0 };
        uint64_t a, f, x;
        run_churn(pool, 3, scaled(1500000, 150000), __func__, &a, &f, &x, monitor_thread, &m,
                  &stop);
        EXPECT_NO_ASYNC_FAILURES();
        print_message("  track_leaks=%d: %" PRIu64 " allocs, %" PRIu64
                      " monitor iterations\n", tracked, a, m.iterations);
        EXPECT_GE(m.iterations, 1);
        EXPECT_EQ(a, f);
        expect_quiescent_empty(pool, a);
        EXPECT_EQ(pool_report_leaks(pool, devnull), 0);
        (void)pool_trim(pool);
        expect_quiescent_empty(pool, a);
        EXPECT_EQ(atomic_load(&g_reports), 0);
        fclose(devnull);
        pool_destroy(pool);
    }
}

/* ======================================================================== */

int main(void)
{
    pool_threads_init("test_pool_threads_churn");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pool_threads_cross_free_churn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_producer_consumer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_stats_trim_report_concurrent, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
