/* test_pool_threads_exit.c — multi-threaded stress of the pool, threads
 * that exit: owners exiting with live objects that other threads free,
 * spans freed remotely after their owner exited (pool_trim reclaims them),
 * many short-lived threads in sequence (their memory is reused), the leak
 * report after the allocating thread exited, and batches of short-lived
 * threads that swap blocks through a shared table, each freeing the block
 * it displaces (a span an allocating thread adopted from the abandoned
 * list was, through an ABA on its FLOATING flag, also adopted by a free,
 * floated back by that thread's exit and left on the list: a crash or
 * "free list corrupted" in about one run in ten; review session 36). Every object carries a
 * pattern derived from (pointer, size, owner seed) that is verified before
 * it is freed; at the end the statistics must be exact.
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

/* ======================================================================== */
/* Threads that exit with live objects                                       */

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

/* Batches of short-lived threads swapping blocks through a shared table. */
enum { SWAP_SLOTS = 256, SWAP_BATCH = 64, SWAP_PER_THREAD = 200 };
typedef struct {
    pool_t *pool;
    item_t slots[SWAP_SLOTS];
    pthread_mutex_t lock;
    atomic_uint_least64_t allocs, frees;
} swap_table_t;

typedef struct {
    swap_table_t *table;
    uint64_t seed;
    size_t first_slot;
} swapper_t;

static void *swapping_thread(void *arg)
{
    swapper_t *w = arg;
    swap_table_t *table = w->table;
    rng_t rng = { w->seed };
    for (size_t i = 0; i < SWAP_PER_THREAD && atomic_load(&g_failures) == 0; i++) {
        item_t mine;
        if (item_alloc(table->pool, &mine, 1 + (size_t)rng_below(&rng, 3000), w->seed) != 0) return NULL;
        atomic_fetch_add(&table->allocs, 1);
        pthread_mutex_lock(&table->lock);
        item_t displaced = table->slots[(w->first_slot + i) % SWAP_SLOTS];
        table->slots[(w->first_slot + i) % SWAP_SLOTS] = mine;
        pthread_mutex_unlock(&table->lock);
        if (displaced.p) { /* most likely another thread's, maybe an exited one's */
            item_free(table->pool, &displaced);
            atomic_fetch_add(&table->frees, 1);
        }
    }
    return NULL;
}

static void test_pool_threads_exiting_swappers(void **state)
{
    (void)state;
    TEST_START();
    swap_table_t *table = calloc(1, sizeof *table);
    assert_non_null(table);
    table->pool = pool_create(NULL);
    assert_non_null(table->pool);
    pthread_mutex_init(&table->lock, NULL);
    size_t rounds = scaled(150, 15);
    swapper_t workers[SWAP_BATCH];
    pthread_t threads[SWAP_BATCH];
    for (size_t round = 0; round < rounds && atomic_load(&g_failures) == 0; round++) {
        for (size_t i = 0; i < SWAP_BATCH; i++) {
            workers[i] = (swapper_t){ table, seed_for(__func__, round * SWAP_BATCH + i), round * SWAP_BATCH + i };
            assert_int_equal(pthread_create(&threads[i], NULL, swapping_thread, &workers[i]), 0);
        }
        for (size_t i = 0; i < SWAP_BATCH; i++) assert_int_equal(pthread_join(threads[i], NULL), 0);
    }
    EXPECT_NO_ASYNC_FAILURES();
    uint64_t frees = atomic_load(&table->frees);
    for (size_t i = 0; i < SWAP_SLOTS; i++)
        if (table->slots[i].p) {
            item_free(table->pool, &table->slots[i]);
            frees++;
        }
    EXPECT_NO_ASYNC_FAILURES();
    uint64_t allocs = atomic_load(&table->allocs);
    EXPECT_EQ(allocs, frees);
    expect_quiescent_empty(table->pool, allocs);
    EXPECT_EQ(atomic_load(&g_reports), 0);
    pthread_mutex_destroy(&table->lock);
    pool_destroy(table->pool);
    free(table);
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

int main(void)
{
    pool_threads_init("test_pool_threads_exit");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pool_threads_exited_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_trim_reclaims_remote_freed_spans, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_many_short_lived, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_exiting_swappers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_threads_leak_report_after_owner_exit, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
