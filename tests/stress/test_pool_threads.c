/* test_pool_threads.c — multi-threaded stress of the pool: cross-thread
 * frees, threads that exit with live objects, producer/consumer, pool-wide
 * calls racing allocation. Every object carries a pattern derived from
 * (pointer, size, owner seed) that is verified before it is freed; at the
 * end the statistics must be exact.
 *
 * Deterministic per thread (seed from MULCH_TEST_SEED or a fixed default,
 * printed at the start); interleavings of course vary. MULCH_TEST_QUICK=1
 * and sanitizer / valgrind builds scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d03)
#define MULCH_TEST_POOL 1
#define MT_LOCAL_SCALED 1 /* scaled() below: sanitizer builds run a quarter */
#include <signal.h>
#include <unistd.h>

#include <mulch/pool.h>

#include "mulch_test.h"

/* ------------------------------------------------------------------------ */
/* Seed / scaling                                                            */

static uint64_t seed_for(const char *name, uint64_t k) { return test_rng(name, k).s; }

static int g_sanitized;

/* Release: full; sanitizers: a quarter; MULCH_TEST_QUICK / valgrind: quick. */
static size_t scaled(size_t full, size_t quick)
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

static void watchdog_fired(int sig)
{
    (void)sig;
    ssize_t r = write(2, g_watchdog_msg, strlen(g_watchdog_msg));
    (void)r;
    abort();
}

static void watchdog_arm(const char *test)
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

static void reset_failures(void)
{
    atomic_store(&g_failures, 0);
    g_fail_msg[0] = 0;
}

/* Error handler: in these tests nothing is misuse, so any call is a failure. */
static atomic_ulong g_reports;
static void counting_handler(const char *what, const void *ptr, void *ctx)
{
    (void)ctx;
    if (atomic_fetch_add(&g_reports, 1) == 0)
        TFAIL("unexpected error-handler call: \"%s\" ptr %p", what ? what : "(null)", ptr);
}

static int setup(void **state)
{
    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &g_t0);
    reset_failures();
    atomic_store(&g_reports, 0);
    g_prev_handler = mulch_set_error_handler(counting_handler, NULL);
    return 0;
}

static int teardown(void **state)
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

static uint64_t obj_tag(const void *p, size_t size, uint64_t owner_seed)
{
    return mix64((uint64_t)(uintptr_t)p ^ mix64((uint64_t)size * 31 + owner_seed));
}

/* [off, end) with off a multiple of 8 */
static void fill_range(unsigned char *b, size_t off, size_t end, uint64_t tag)
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

static size_t check_range(const unsigned char *b, size_t off, size_t end, uint64_t tag)
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

static void sfill(void *p, size_t n, uint64_t tag)
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

static size_t scheck(const void *p, size_t n, uint64_t tag)
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

static int item_alloc(pool_t *pool, item_t *it, size_t size, uint64_t owner_seed)
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
static void item_free(pool_t *pool, item_t *it)
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

static size_t churn_size(rng_t *r)
{
    uint64_t x = rng_below(r, 1000);
    if (x == 0) return 256 * KiB;
    if (x < 4) return 64 * KiB;
    return 16 + (size_t)rng_below(r, 2048 - 16 + 1);
}

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

static void expect_quiescent_empty(pool_t *pool, uint64_t allocs)
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

/* ======================================================================== */
/* 1. Churn with cross-thread frees                                          */

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
/* 2. Threads that exit with live objects                                    */

#define EXIT_THREADS 4

typedef struct {
    pool_t *pool;
    uint64_t seed;
    item_t *objs;
    size_t n;
    uint64_t allocs, frees;
} exiter_t;

static size_t exiter_size(rng_t *r, size_t i)
{
    if (i % 500 == 3) return MiB + 17;
    if (i % 100 == 1) return 64 * KiB + 8;
    if (i % 50 == 2) return 20 * KiB;
    return (size_t)rng_below(r, 4097);
}

/* Allocates n objects, frees every 7th itself, exits. */
static void *exiter_alloc_thread(void *arg)
{
    exiter_t *e = arg;
    rng_t r = { e->seed };
    for (size_t i = 0; i < e->n; i++) {
        if (item_alloc(e->pool, &e->objs[i], exiter_size(&r, i), e->seed) != 0) {
            e->objs[i].p = NULL;
            continue;
        }
        e->allocs++;
    }
    for (size_t i = 0; i < e->n; i += 7)
        if (e->objs[i].p) {
            item_free(e->pool, &e->objs[i]);
            e->frees++;
        }
    return NULL;
}

typedef struct {
    pool_t *pool;
    item_t *objs;
    size_t n, start, step;
    uint64_t frees;
} freer_t;

static void *freer_thread(void *arg)
{
    freer_t *f = arg;
    for (size_t i = f->start; i < f->n; i += f->step)
        if (f->objs[i].p) {
            item_free(f->pool, &f->objs[i]);
            f->frees++;
        }
    return NULL;
}

static void spawn_exiters(pool_t *pool, exiter_t *e, item_t **objs, size_t n, const char *name,
                          uint64_t round)
{
    pthread_t t[EXIT_THREADS];
    for (int k = 0; k < EXIT_THREADS; k++) {
        memset(&e[k], 0, sizeof e[k]);
        e[k].pool = pool;
        e[k].seed = seed_for(name, round * 16 + (uint64_t)k);
        e[k].objs = objs[k];
        e[k].n = n;
        assert_int_equal(pthread_create(&t[k], NULL, exiter_alloc_thread, &e[k]), 0);
    }
    for (int k = 0; k < EXIT_THREADS; k++) assert_int_equal(pthread_join(t[k], NULL), 0);
}

static void test_pool_threads_exited_owner(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    size_t n = scaled(4000, 1000);
    item_t *objs[EXIT_THREADS];
    exiter_t e[EXIT_THREADS];
    for (int k = 0; k < EXIT_THREADS; k++) {
        objs[k] = calloc(n, sizeof(item_t));
        assert_non_null(objs[k]);
    }
    uint64_t allocs = 0, frees = 0;

    /* round 1: owners exit; main frees the even ones, then new threads free
       the odd ones (each a different owner's) */
    spawn_exiters(pool, e, objs, n, __func__, 1);
    EXPECT_NO_ASYNC_FAILURES();
    for (int k = 0; k < EXIT_THREADS; k++) {
        allocs += e[k].allocs;
        frees += e[k].frees;
    }
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.allocs, allocs);
    EXPECT_EQ(s.live_allocations, allocs - frees);
    for (int k = 0; k < EXIT_THREADS; k++)
        for (size_t i = 0; i < n; i += 2)
            if (objs[k][i].p) {
                item_free(pool, &objs[k][i]);
                frees++;
            }
    EXPECT_NO_ASYNC_FAILURES();
    s = stats_of(pool);
    EXPECT_EQ(s.live_allocations, allocs - frees);
    EXPECT_EQ(report_count(pool), allocs - frees);
    freer_t fr[EXIT_THREADS];
    pthread_t t[EXIT_THREADS];
    for (int k = 0; k < EXIT_THREADS; k++) {
        fr[k].pool = pool;
        fr[k].objs = objs[(k + 1) % EXIT_THREADS];
        fr[k].n = n;
        fr[k].start = 1;
        fr[k].step = 2;
        fr[k].frees = 0;
        assert_int_equal(pthread_create(&t[k], NULL, freer_thread, &fr[k]), 0);
    }
    for (int k = 0; k < EXIT_THREADS; k++) {
        assert_int_equal(pthread_join(t[k], NULL), 0);
        frees += fr[k].frees;
    }
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_EQ(frees, allocs);
    expect_quiescent_empty(pool, allocs);

    /* round 2: owners exit leaving live objects; main frees a third; the
       pool is destroyed with the rest still live (must be leak-free under
       ASan / valgrind) */
    for (int k = 0; k < EXIT_THREADS; k++) memset(objs[k], 0, n * sizeof(item_t));
    spawn_exiters(pool, e, objs, n, __func__, 2);
    EXPECT_NO_ASYNC_FAILURES();
    for (int k = 0; k < EXIT_THREADS; k++)
        for (size_t i = 0; i < n; i += 3)
            if (objs[k][i].p) item_free(pool, &objs[k][i]);
    EXPECT_NO_ASYNC_FAILURES();
    /* and a thread allocates into blocks the exited ones left behind */
    spawn_exiters(pool, e, objs, n / 4, __func__, 3);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_EQ(atomic_load(&g_reports), 0);
    pool_destroy(pool);
    for (int k = 0; k < EXIT_THREADS; k++) free(objs[k]);
}

/* Spans whose cells were all freed by other threads (the owner exited, the
   main thread adopted the spans by freeing into them, then other threads
   freed the rest) hold no live allocation: pool_trim, called by the thread
   that owns them, must give them back. */
enum { REMOTE_N = 16 * 1024 };
typedef struct {
    pool_t *pool;
    void **v;
    size_t n, start, step;
    size_t size;
} remote_t;

static void *remote_alloc_thread(void *arg)
{
    remote_t *r = arg;
    for (size_t i = 0; i < r->n; i++) {
        r->v[i] = pool_alloc(r->pool, r->size);
        if (!r->v[i]) {
            TFAIL("pool_alloc(%zu) returned NULL", r->size);
            return NULL;
        }
        memset(launder(r->v[i]), 0x5c, r->size);
    }
    return NULL;
}

static void *remote_free_thread(void *arg)
{
    remote_t *r = arg;
    for (size_t i = r->start; i < r->n; i += r->step)
        if (r->v[i]) pool_free(r->pool, r->v[i]);
    return NULL;
}

static void test_pool_threads_trim_reclaims_remote_freed_spans(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    const size_t sizes[] = { 1024, 200, 3000 };
    void **v = calloc(REMOTE_N, sizeof *v);
    assert_non_null(v);
    size_t total = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        remote_t r = { pool, v, REMOTE_N, 0, 1, sizes[si] };
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, remote_alloc_thread, &r), 0);
        assert_int_equal(pthread_join(t, NULL), 0); /* the owner exits */
        EXPECT_NO_ASYNC_FAILURES();
        total += REMOTE_N * sizes[si];
        for (size_t i = 0; i < REMOTE_N; i += 2) pool_free(pool, v[i]); /* main adopts */
        r.start = 1;
        r.step = 2;
        assert_int_equal(pthread_create(&t, NULL, remote_free_thread, &r), 0);
        assert_int_equal(pthread_join(t, NULL), 0); /* remote frees, thread exits */
    }
    expect_quiescent_empty(pool, 3 * (uint64_t)REMOTE_N);
    pool_stats_t before = stats_of(pool);
    size_t released = pool_trim(pool);
    pool_stats_t after = stats_of(pool);
    print_message("  %zu bytes allocated and freed; trim released %zu; reserved %zu -> %zu "
                  "(peak %zu)\n", total, released, before.bytes_reserved, after.bytes_reserved,
                  after.peak_reserved);
    /* nothing is live: at most a few blocks of caches may stay */
    EXPECT_LE(after.bytes_reserved, 2 * MiB);
    EXPECT_EQ(atomic_load(&g_reports), 0);
    free(v);
    pool_destroy(pool);
}

/* Many short-lived threads in sequence: memory of exited threads is reused
   or reclaimable, and the counts stay exact. */
typedef struct {
    pool_t *pool;
    uint64_t seed;
    item_t *keep; /* n/2 objects handed to main */
    size_t n;
    uint64_t allocs, frees;
} short_t;

static void *short_thread(void *arg)
{
    short_t *s = arg;
    rng_t r = { s->seed };
    for (size_t i = 0; i < s->n; i++) {
        item_t it;
        if (item_alloc(s->pool, &it, exiter_size(&r, i + 5), s->seed) != 0) return NULL;
        s->allocs++;
        if (i % 2) {
            s->keep[i / 2] = it;
        } else {
            item_free(s->pool, &it);
            s->frees++;
        }
    }
    return NULL;
}

static void test_pool_threads_many_short_lived(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    size_t rounds = scaled(200, 40), n = 400;
    item_t *keep = calloc(n / 2, sizeof *keep);
    assert_non_null(keep);
    uint64_t allocs = 0, frees = 0;
    size_t max_reserved = 0;
    for (size_t round = 0; round < rounds && atomic_load(&g_failures) == 0; round++) {
        short_t s = { pool, seed_for(__func__, round), keep, n, 0, 0 };
        memset(keep, 0, n / 2 * sizeof *keep);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, short_thread, &s), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        allocs += s.allocs;
        frees += s.frees;
        for (size_t i = 0; i < n / 2; i++)
            if (keep[i].p) {
                item_free(pool, &keep[i]);
                frees++;
            }
        pool_stats_t st = stats_of(pool);
        if (st.live_allocations != 0) {
            EXPECT_NO_ASYNC_FAILURES();
            T_FAIL("round %zu: live_allocations %zu after freeing everything", round,
                   st.live_allocations);
        }
        if (round >= rounds / 4 && st.bytes_reserved > max_reserved)
            max_reserved = st.bytes_reserved;
        if (round == rounds / 4) print_message("  reserved after %zu rounds: %zu\n", round,
                                               st.bytes_reserved);
    }
    EXPECT_NO_ASYNC_FAILURES();
    print_message("  max reserved over the later rounds: %zu\n", max_reserved);
    /* each thread has < 1 MiB live at any time: memory of exited threads
       must be reused, not accumulated (200 rounds without reuse would hold
       well over 100 MiB) */
    EXPECT_LE(max_reserved, 48 * MiB);
    expect_quiescent_empty(pool, allocs);
    EXPECT_EQ(allocs, frees);
    EXPECT_EQ(atomic_load(&g_reports), 0);
    free(keep);
    pool_destroy(pool);
}

/* Threads alive across pool_destroy: their cached heaps of the destroyed
   pool must not leak into a new pool created (usually) at the same address. */
#define LIVE_HELPERS 3

typedef struct {
    pool_t *volatile *pool; /* current pool, set by main between barriers */
    pthread_barrier_t *bar;
    uint64_t seed;
    size_t n;
} helper_t;

static void *helper_thread(void *arg)
{
    helper_t *h = arg;
    item_t *v = calloc(h->n, sizeof *v);
    if (!v) TFAIL("calloc failed");
    for (int phase = 0; phase < 2; phase++) {
        pool_t *pool = *h->pool;
        for (size_t i = 0; v && pool && i < h->n; i++)
            if (item_alloc(pool, &v[i], 16 + (size_t)(mix64(h->seed + i) % 3000), h->seed) != 0)
                break;
        if (phase == 0) {
            for (size_t i = 0; v && pool && i < h->n; i += 2)
                if (v[i].p) item_free(pool, &v[i]);
        } else {
            for (size_t i = 0; v && pool && i < h->n; i++)
                if (v[i].p) item_free(pool, &v[i]);
        }
        pthread_barrier_wait(h->bar); /* main inspects, destroys, recreates */
        pthread_barrier_wait(h->bar);
    }
    free(v);
    return NULL;
}

static void test_pool_threads_destroy_with_live_threads(void **state)
{
    (void)state;
    TEST_START();
    size_t rounds = scaled(20, 5), n = 1000;
    int same = 0;
    for (size_t round = 0; round < rounds && atomic_load(&g_failures) == 0; round++) {
        pool_t *volatile cur = pool_create(NULL);
        pool_t *first = cur;
        assert_non_null(first);
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, LIVE_HELPERS + 1);
        helper_t h[LIVE_HELPERS];
        pthread_t t[LIVE_HELPERS];
        for (int k = 0; k < LIVE_HELPERS; k++) {
            h[k].pool = &cur;
            h[k].bar = &bar;
            h[k].seed = seed_for(__func__, round * 8 + (uint64_t)k);
            h[k].n = n;
            assert_int_equal(pthread_create(&t[k], NULL, helper_thread, &h[k]), 0);
        }
        /* phase 0 done: each helper holds n/2 live objects in the first pool */
        pthread_barrier_wait(&bar);
        pool_stats_t s = stats_of(first);
        SOFT_EQ(s.allocs, LIVE_HELPERS * n);
        SOFT_EQ(s.live_allocations, LIVE_HELPERS * n / 2);
        SOFT_EQ(report_count(first), LIVE_HELPERS * n / 2);
        pool_destroy(first); /* helpers are alive, idle, and still hold heaps of it */
        cur = pool_create(NULL);
        if (!cur) TFAIL("pool_create failed");
        if (cur == first) same++;
        if (cur) {
            s = stats_of(cur);
            SOFT_EQ(s.allocs, 0);
            SOFT_EQ(s.live_allocations, 0);
        }
        pthread_barrier_wait(&bar);
        /* phase 1 done: the helpers allocated and freed n each in the new pool */
        pthread_barrier_wait(&bar);
        if (cur) {
            s = stats_of(cur);
            SOFT_EQ(s.allocs, LIVE_HELPERS * n);
            SOFT_EQ(s.frees, LIVE_HELPERS * n);
            SOFT_EQ(s.live_allocations, 0);
            SOFT_EQ(s.bytes_in_use, 0);
            SOFT_EQ(report_count(cur), 0);
        }
        pool_t *second = cur;
        pthread_barrier_wait(&bar);
        for (int k = 0; k < LIVE_HELPERS; k++) assert_int_equal(pthread_join(t[k], NULL), 0);
        pthread_barrier_destroy(&bar);
        EXPECT_NO_ASYNC_FAILURES(); /* includes the soft checks above */
        /* the helpers exited after using the second pool: their heaps were
           abandoned into it; it is still exact and usable */
        s = stats_of(second);
        EXPECT_EQ(s.allocs, LIVE_HELPERS * n);
        EXPECT_EQ(s.live_allocations, 0);
        pool_destroy(second);
    }
    EXPECT_NO_ASYNC_FAILURES();
    print_message("  new pool at the destroyed pool's address in %d of %zu rounds\n", same, rounds);
    EXPECT_EQ(atomic_load(&g_reports), 0);
}

/* Threads creating, using and destroying private pools concurrently (and
   touching the default pool now and then). */
typedef struct {
    uint64_t seed;
    size_t rounds;
} private_t;

static void *private_pools_thread(void *arg)
{
    private_t *pp = arg;
    rng_t r = { pp->seed };
    item_t v[200];
    for (size_t round = 0; round < pp->rounds && atomic_load(&g_failures) == 0; round++) {
        pool_options_t o;
        memset(&o, 0, sizeof o);
        o.block_size = (size_t)16 * KiB << rng_below(&r, 5); /* 16 KiB .. 256 KiB */
        o.track_leaks = (int)rng_below(&r, 4) == 0;
        pool_t *pool = pool_create(&o);
        if (!pool) {
            TFAIL("pool_create(block_size %zu) failed", o.block_size);
            return NULL;
        }
        size_t in_use = 0;
        for (size_t i = 0; i < 200; i++) {
            size_t size = i == 7 ? 300 * KiB : (size_t)rng_below(&r, 5000);
            if (item_alloc(pool, &v[i], size, pp->seed ^ round) != 0) return NULL;
            in_use += pool_usable_size(pool, v[i].p);
        }
        pool_stats_t s;
        pool_get_stats(pool, &s);
        if (s.live_allocations != 200 || s.bytes_in_use != in_use)
            TFAIL("private pool: live %zu (want 200), in_use %zu (want %zu)", s.live_allocations,
                  s.bytes_in_use, in_use);
        for (size_t i = 0; i < 200; i += 2) item_free(pool, &v[i]);
        pool_get_stats(pool, &s);
        if (s.live_allocations != 100)
            TFAIL("private pool: live %zu after freeing half (want 100)", s.live_allocations);
        if (round % 8 == 0) {
            item_t d;
            if (item_alloc(pool_default(), &d, 100, pp->seed) == 0) item_free(pool_default(), &d);
        }
        pool_destroy(pool); /* with 100 live objects */
    }
    return NULL;
}

static void test_pool_threads_private_pools_create_destroy(void **state)
{
    (void)state;
    TEST_START();
    enum { NT = 4 };
    private_t pp[NT];
    pthread_t t[NT];
    pool_stats_t d0 = stats_of(pool_default());
    for (int k = 0; k < NT; k++) {
        pp[k].seed = seed_for(__func__, (uint64_t)k);
        pp[k].rounds = scaled(300, 40);
        assert_int_equal(pthread_create(&t[k], NULL, private_pools_thread, &pp[k]), 0);
    }
    for (int k = 0; k < NT; k++) assert_int_equal(pthread_join(t[k], NULL), 0);
    EXPECT_NO_ASYNC_FAILURES();
    pool_stats_t d1 = stats_of(pool_default());
    EXPECT_EQ(d1.live_allocations, d0.live_allocations);
    EXPECT_EQ(d1.allocs - d0.allocs, d1.frees - d0.frees);
    EXPECT_EQ(atomic_load(&g_reports), 0);
}

/* The leak report after the allocating thread exited: sites survive the
   owner, counts follow frees made by yet other threads. */
static int g_site_line;

typedef struct {
    pool_t *pool;
    void **v;
    size_t n;
} sites_t;

static void *sites_alloc_thread(void *arg)
{
    sites_t *st = arg;
    for (size_t i = 0; i < st->n; i++) { st->v[i] = POOL_ALLOC(st->pool, 100 + i % 7 * 1000); } g_site_line = __LINE__;
    for (size_t i = 0; i < st->n; i++)
        if (!st->v[i]) TFAIL("POOL_ALLOC failed");
    return NULL;
}

static void *sites_free_thread(void *arg)
{
    sites_t *st = arg;
    for (size_t i = 0; i < st->n; i += 2) pool_free(st->pool, st->v[i]);
    return NULL;
}

static char *report_text(pool_t *pool, size_t *count)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    *count = pool_report_leaks(pool, f);
    fflush(f);
    long len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, (size_t)len, f);
    buf[got] = 0;
    fclose(f);
    return buf;
}

static size_t count_occurrences(const char *text, const char *needle)
{
    size_t n = 0, l = strlen(needle);
    for (const char *c = strstr(text, needle); c; c = strstr(c + l, needle)) n++;
    return n;
}

static void test_pool_threads_leak_report_after_owner_exit(void **state)
{
    (void)state;
    TEST_START();
    pool_options_t o;
    memset(&o, 0, sizeof o);
    o.track_leaks = 1;
    pool_t *pool = pool_create(&o);
    assert_non_null(pool);
    enum { N = 300 };
    void *v[N];
    sites_t st = { pool, v, N };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sites_alloc_thread, &st), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    EXPECT_NO_ASYNC_FAILURES();
    const char *base = strrchr(__FILE__, '/') ? strrchr(__FILE__, '/') + 1 : __FILE__;
    char site[256];
    snprintf(site, sizeof site, "%s:%d", base, g_site_line);
    size_t n;
    char *text = report_text(pool, &n);
    EXPECT_EQ(n, N);
    /* one line per allocation (the per-site summary may name it again) */
    size_t lines = count_occurrences(text, site);
    if (lines < N) {
        print_error("---- report (first 2000 bytes) ----\n%.2000s\n", text);
        T_FAIL("the report names \"%s\" %zu times for %d live POOL_ALLOC objects", site, lines, N);
    }
    free(text);
    assert_int_equal(pthread_create(&t, NULL, sites_free_thread, &st), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    text = report_text(pool, &n);
    EXPECT_EQ(n, N / 2);
    lines = count_occurrences(text, site);
    if (lines < N / 2) T_FAIL("the report names \"%s\" %zu times for %d live objects", site, lines,
                              N / 2);
    free(text);
    for (size_t i = 1; i < N; i += 2) pool_free(pool, v[i]);
    text = report_text(pool, &n);
    EXPECT_EQ(n, 0);
    free(text);
    expect_quiescent_empty(pool, N);
    EXPECT_EQ(atomic_load(&g_reports), 0);
    pool_destroy(pool);
}

/* ======================================================================== */
/* 3. Producer / consumer                                                    */

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
/* 4. Pool-wide calls racing allocation                                      */

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
    mt_read_seed();
    g_quick = env_flag("MULCH_TEST_QUICK") || MT_ON_VALGRIND(); /* not sanitizers: g_sanitized */
    g_sanitized = MT_SANITIZED;
    print_message("test_pool_threads: seed=0x%016" PRIx64
                  " (set MULCH_TEST_SEED to reproduce)%s\n", g_seed,
                  g_quick ? ", quick mode" : g_sanitized ? ", sanitizer scale" : "");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pool_threads_cross_free_churn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_exited_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_trim_reclaims_remote_freed_spans, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_many_short_lived, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_destroy_with_live_threads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_private_pools_create_destroy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_leak_report_after_owner_exit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_producer_consumer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_stats_trim_report_concurrent, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
