/* test_pool_many_pools.c — threads that use many pools, and many pools
 * alive at once (session 37).
 *
 * A thread finds its heap for a pool through its table (pool id -> heap)
 * once it has HEAP_TABLE_FROM heaps; pool_destroy unlinks the calling
 * thread's heap at once and counts other threads' heaps dead for their
 * thread to sweep; pool_id_alive searches a sorted array of the live ids.
 * Before, each of these walked a list: an allocation among 5,000 pools
 * took 147 us and a collection releasing 100,000 owned rc references in
 * 10,000 pools 24 s (timings belong in bench/, these tests check the
 * structures): after every step below the calling thread's list, count
 * and table agree, no listed heap is of a pool this thread destroyed,
 * every object keeps its contents, and pool_id_alive answers for every
 * id ever made. The OS refusing the table or the id array's room gives
 * NULL or a slower lookup, never a wrong heap. Seeded: MULCH_TEST_SEED. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x6d616e79706f6f6c)
#include <mulch.h>
#include <pthread.h>

#include "mulch_test.h"
#include "pool_internal.h"

/* The calling thread's heaps: listed once each, counted, all in the table
 * when it is complete, none of a pool in `gone` (ids, n_gone of them). */
static void expect_thread_heaps_consistent(const uint64_t *gone, size_t n_gone) {
    size_t listed = 0;
    for (const thread_heap_t *heap = mulch_tls.list; heap; heap = heap->thread_next) {
        listed++;
        if (heap->thread_next) EXPECT_PTR_EQ(heap->thread_next->thread_prev, heap);
        for (const thread_heap_t *other = heap->thread_next; other; other = other->thread_next)
            if (!other->dead && !heap->dead) EXPECT_NE(other->pool_id, heap->pool_id);
        for (size_t g = 0; g < n_gone; g++)
            if (heap->pool_id == gone[g]) T_FAIL("a heap of destroyed pool %" PRIu64 " is still listed", gone[g]);
        if (mulch_tls.table && mulch_tls.table_complete) {
            bool found = false;
            for (size_t i = 0; i <= mulch_tls.table_mask && !found; i++)
                found = mulch_tls.table[i].heap == heap && mulch_tls.table[i].pool_id == heap->pool_id;
            if (!found) T_FAIL("listed heap of pool %" PRIu64 " missing from the table", heap->pool_id);
        }
    }
    EXPECT_EQ(listed, mulch_tls.heap_count);
    if (mulch_tls.list) EXPECT_NULL(mulch_tls.list->thread_prev);
    if (mulch_tls.table) {
        size_t entries = 0;
        for (size_t i = 0; i <= mulch_tls.table_mask; i++) entries += mulch_tls.table[i].heap != NULL;
        if (mulch_tls.table_complete) EXPECT_EQ(entries, listed);
        EXPECT_LE(2 * entries, mulch_tls.table_mask + 1);
    }
}

typedef struct {
    pool_t   *pool;
    uint64_t  id;
    void     *objects[8];
    size_t    sizes[8];
} tracked_pool_t;

static void fill(tracked_pool_t *t, size_t k, rng_t *rng) {
    size_t size = 16 + (size_t)rng_below(rng, 600);
    unsigned char *p = pool_alloc(t->pool, size);
    EXPECT_NONNULL(p);
    memset(p, (int)((t->id * 31 + k) & 0xff), size);
    t->objects[k] = p;
    t->sizes[k] = size;
}

static void check_and_free(tracked_pool_t *t) {
    for (size_t k = 0; k < 8; k++) {
        const unsigned char *p = t->objects[k];
        if (p == NULL) continue;
        for (size_t i = 0; i < t->sizes[k]; i++)
            if (p[i] != (unsigned char)((t->id * 31 + k) & 0xff))
                T_FAIL("pool %" PRIu64 " object %zu byte %zu overwritten", t->id, k, i);
        pool_free(t->pool, t->objects[k]);
        t->objects[k] = NULL;
    }
}

/* One thread, hundreds of pools: random allocations across them,
 * destroys in random order, new pools, all checked. */
static void test_one_thread_many_pools(void **state) {
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    rng_t rng = test_rng_named("one_thread_many_pools");
    size_t n = scaled(600, 120);
    tracked_pool_t *pools = calloc(n, sizeof *pools);
    uint64_t *gone = calloc(4 * n, sizeof *gone);
    EXPECT_NONNULL(pools);
    EXPECT_NONNULL(gone);
    size_t n_gone = 0;
    for (size_t i = 0; i < n; i++) {
        pools[i].pool = pool_create(NULL);
        EXPECT_NONNULL(pools[i].pool);
        pools[i].id = pools[i].pool->id;
        fill(&pools[i], 0, &rng);
    }
    for (size_t round = 0; round < 4; round++) {
        for (size_t step = 0; step < 8 * n; step++) {
            tracked_pool_t *t = &pools[rng_below(&rng, n)];
            size_t k = (size_t)rng_below(&rng, 8);
            if (t->objects[k]) {
                tracked_pool_t one = *t;
                for (size_t j = 0; j < 8; j++)
                    if (j != k) one.objects[j] = NULL;
                check_and_free(&one);
                t->objects[k] = NULL;
            }
            fill(t, k, &rng);
        }
        expect_thread_heaps_consistent(gone, n_gone);
        EXPECT_GE(mulch_tls.heap_count, n);
        EXPECT_NONNULL(mulch_tls.table);
        /* a random half goes, and comes back as new pools */
        for (size_t d = 0; d < n / 2; d++) {
            tracked_pool_t *t = &pools[rng_below(&rng, n)];
            check_and_free(t);
            gone[n_gone++] = t->id;
            pool_destroy(t->pool);
            t->pool = pool_create(NULL);
            EXPECT_NONNULL(t->pool);
            t->id = t->pool->id;
            fill(t, 0, &rng);
            if (d % 64 == 0) expect_thread_heaps_consistent(gone, n_gone);
        }
        expect_thread_heaps_consistent(gone, n_gone);
        for (size_t g = 0; g < n_gone; g++) EXPECT_EQ(pool_id_alive(gone[g]), false);
        for (size_t i = 0; i < n; i++) EXPECT_EQ(pool_id_alive(pools[i].id), true);
    }
    for (size_t i = 0; i < n; i++) {
        check_and_free(&pools[i]);
        pool_stats_t s;
        pool_get_stats(pools[i].pool, &s);
        EXPECT_EQ(s.live_allocations, 0);
        gone[n_gone++] = pools[i].id;
        pool_destroy(pools[i].pool);
    }
    expect_thread_heaps_consistent(gone, n_gone);
    EXPECT_NO_REPORTS(r0);
    free(gone);
    free(pools);
}

/* pool_id_alive across the id array's growth and shrinking, and the
 * array's room given back once the pools are gone. */
static void test_pool_id_alive_many(void **state) {
    (void)state;
    TEST_START();
    rng_t rng = test_rng_named("pool_id_alive_many");
    size_t mapped_before = os_mapped_bytes();
    size_t n = 1100; /* above four pages of ids */
    pool_t **pools = calloc(n, sizeof *pools);
    uint64_t *ids = calloc(n, sizeof *ids);
    bool *alive = calloc(n, sizeof *alive);
    for (size_t i = 0; i < n; i++) {
        pools[i] = pool_create(NULL);
        EXPECT_NONNULL(pools[i]);
        ids[i] = pools[i]->id;
        alive[i] = true;
    }
    for (size_t step = 0; step < n; step++) {
        size_t i = (size_t)rng_below(&rng, n);
        if (!alive[i]) continue;
        pool_destroy(pools[i]);
        alive[i] = false;
        if (step % 100 == 0)
            for (size_t j = 0; j < n; j++) EXPECT_EQ(pool_id_alive(ids[j]), alive[j]);
    }
    for (size_t j = 0; j < n; j++) EXPECT_EQ(pool_id_alive(ids[j]), alive[j]);
    EXPECT_EQ(pool_id_alive(0), false);
    EXPECT_EQ(pool_id_alive(UINT64_MAX), false);
    for (size_t i = 0; i < n; i++)
        if (alive[i]) pool_destroy(pools[i]);
    for (size_t j = 0; j < n; j++) EXPECT_EQ(pool_id_alive(ids[j]), false);
    /* (the array's halving lags its doubling, so this holds with few pools
     * alive before, as here; heap structs are recycled, not unmapped, and
     * this thread made none here) */
    EXPECT_EQ(os_mapped_bytes(), mapped_before);
    free(alive);
    free(ids);
    free(pools);
}

/* ---- other threads' heaps of destroyed pools ---- */

typedef struct {
    tracked_pool_t  *pools;
    size_t           n;
    pthread_mutex_t  lock;
    pthread_cond_t   cond;
    int              phase; /* 1: worker used all; 2: main destroyed some; 3: worker checked */
    uint64_t        *gone;
    size_t           n_gone;
} shared_t;

static void wait_phase(shared_t *s, int phase) {
    pthread_mutex_lock(&s->lock);
    while (s->phase < phase) pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

static void set_phase(shared_t *s, int phase) {
    pthread_mutex_lock(&s->lock);
    s->phase = phase;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void *worker(void *arg) {
    shared_t *s = arg;
    rng_t rng = test_rng_named("many_pools_worker");
    for (size_t i = 0; i < s->n; i++) {
        void *p = pool_alloc(s->pools[i].pool, 64);
        EXPECT_NONNULL(p);
        pool_free(s->pools[i].pool, p);
    }
    expect_thread_heaps_consistent(NULL, 0);
    EXPECT_EQ(mulch_tls.heap_count, s->n);
    set_phase(s, 1);
    wait_phase(s, 2);
    /* the dead heaps wait for a sweep; lookups never return them */
    size_t dead = 0;
    for (const thread_heap_t *heap = mulch_tls.list; heap; heap = heap->thread_next) dead += heap->dead != 0;
    EXPECT_EQ(dead, s->n_gone);
    for (size_t step = 0; step < 4 * s->n; step++) {
        tracked_pool_t *t = &s->pools[rng_below(&rng, s->n)];
        if (t->pool == NULL) continue;
        void *p = pool_alloc(t->pool, 32);
        EXPECT_NONNULL(p);
        EXPECT_PTR_EQ(mulch_tls.heap->pool, t->pool);
        pool_free(t->pool, p);
    }
    /* a new pool's heap creation sweeps them (an eighth of the list, at least) */
    pool_t *fresh = pool_create(NULL);
    EXPECT_NONNULL(fresh);
    pool_free(fresh, pool_alloc(fresh, 16));
    expect_thread_heaps_consistent(s->gone, s->n_gone);
    EXPECT_EQ(mulch_tls.heap_count, s->n - s->n_gone + 1);
    pool_destroy(fresh);
    set_phase(s, 3);
    return NULL; /* exits with heaps of live pools: abandoned at exit */
}

static void test_other_threads_heaps_swept(void **state) {
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    shared_t s;
    memset(&s, 0, sizeof s);
    s.n = scaled(400, 100);
    s.pools = calloc(s.n, sizeof *s.pools);
    s.gone = calloc(s.n, sizeof *s.gone);
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    for (size_t i = 0; i < s.n; i++) {
        s.pools[i].pool = pool_create(NULL);
        EXPECT_NONNULL(s.pools[i].pool);
        s.pools[i].id = s.pools[i].pool->id;
    }
    pthread_t thread;
    EXPECT_EQ(pthread_create(&thread, NULL, worker, &s), 0);
    wait_phase(&s, 1);
    for (size_t i = 0; i < s.n; i += 3) {
        s.gone[s.n_gone++] = s.pools[i].id;
        pool_destroy(s.pools[i].pool);
        s.pools[i].pool = NULL;
    }
    set_phase(&s, 2);
    wait_phase(&s, 3);
    pthread_join(thread, NULL);
    for (size_t i = 0; i < s.n; i++) {
        if (s.pools[i].pool == NULL) continue;
        pool_stats_t st;
        pool_get_stats(s.pools[i].pool, &st);
        EXPECT_EQ(st.live_allocations, 0);
        pool_destroy(s.pools[i].pool);
    }
    EXPECT_NO_REPORTS(r0);
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.lock);
    free(s.gone);
    free(s.pools);
}

/* ---- the OS refusing room ---- */

static void *refused_table_worker(void *arg) {
    size_t fail_at = *(size_t *)arg;
    enum { N = 40 };
    pool_t *pools[N];
    for (size_t i = 0; i < N; i++) pools[i] = pool_create(NULL);
    for (size_t i = 0; i < N; i++) {
        EXPECT_NONNULL(pools[i]);
        if (i == HEAP_TABLE_FROM - 1) os_fail_after(fail_at);
        void *p = pool_alloc(pools[i], 48);
        if (p) pool_free(pools[i], p); /* NULL: the heap's own room was refused */
        expect_thread_heaps_consistent(NULL, 0);
    }
    os_fail_after(0);
    /* every pool works and finds its own heap, complete table or not */
    for (size_t round = 0; round < 3; round++)
        for (size_t i = 0; i < N; i++) {
            void *p = pool_alloc(pools[i], 48);
            EXPECT_NONNULL(p);
            EXPECT_PTR_EQ(mulch_tls.heap->pool, pools[i]);
            pool_free(pools[i], p);
        }
    expect_thread_heaps_consistent(NULL, 0);
    for (size_t i = 0; i < N; i++) pool_destroy(pools[i]);
    expect_thread_heaps_consistent(NULL, 0);
    EXPECT_EQ(mulch_tls.heap_count, 0);
    return NULL;
}

static void test_os_refuses_room(void **state) {
    (void)state;
    TEST_START();
    /* the thread's table (a fresh thread each time: its table starts empty) */
    for (size_t fail_at = 1; fail_at <= 4; fail_at++) {
        pthread_t thread;
        EXPECT_EQ(pthread_create(&thread, NULL, refused_table_worker, &fail_at), 0);
        pthread_join(thread, NULL);
    }
    /* the id array's growth: pool_create gives NULL, maps nothing, and the
     * next one works */
    pool_t *pools[600];
    size_t made = 0;
    while (made < 599 && (made == 0 || pool_list_room() != 0)) {
        pools[made] = pool_create(NULL);
        EXPECT_NONNULL(pools[made]);
        made++;
    }
    EXPECT_EQ(pool_list_room(), 0);
    size_t mapped = os_mapped_bytes();
    os_fail_after(2); /* the pool's own room, then the array's */
    EXPECT_NULL(pool_create(NULL));
    EXPECT_EQ(os_fail_after(0), 0); /* the failure was used */
    EXPECT_EQ(os_mapped_bytes(), mapped);
    for (size_t i = 0; i < made; i++) EXPECT_EQ(pool_id_alive(pools[i]->id), true);
    pool_t *after = pool_create(NULL);
    EXPECT_NONNULL(after);
    void *p = pool_alloc(after, 100);
    EXPECT_NONNULL(p);
    pool_free(after, p);
    pool_destroy(after);
    for (size_t i = 0; i < made; i++) pool_destroy(pools[i]);
}

int main(void) {
    mt_init("test_pool_many_pools");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_thread_many_pools, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_pool_id_alive_many, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_other_threads_heaps_swept, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_os_refuses_room, setup_rec, teardown_rec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
