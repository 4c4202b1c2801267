/* test_pool_review_s21_trim.c — pool_trim racing allocation: two threads
 * allocate and free small and large objects, hand some to each other
 * (cross-thread frees into spans whose owner may be trimming them) and
 * call pool_trim themselves now and then, while a third thread does
 * nothing but pool_trim and pool_get_stats. Every object's pattern is
 * checked before its free; at the end, once all is freed and joined, the
 * statistics are exact (nothing lost, nothing counted twice) and a last
 * pool_trim gives every idle byte back. Seeded (MULCH_TEST_SEED). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368a12102)
#include <mulch/pool.h>

#include <pthread.h>
#include <stdbool.h>

#include "pool_threads_test.h"

#define SLOTS 128
#define MAILBOX 64

typedef struct mailbox {
    pthread_mutex_t mu;
    item_t items[MAILBOX];
    unsigned count;
} mailbox_t;

typedef struct worker {
    pool_t *pool;
    unsigned id;
    size_t steps;
    uint64_t allocs;
    mailbox_t *in, *out; /* objects to free / handed to the other worker */
} worker_t;

static atomic_int g_workers_done;

static size_t pick_size(rng_t *r)
{
    uint64_t x = rng_below(r, 64);
    if (x == 0) return 130 * KiB + (size_t)rng_below(r, 300 * KiB); /* a mapping of its own */
    if (x < 4) return 8 * KiB + (size_t)rng_below(r, 56 * KiB);      /* multi-block spans */
    return 1 + (size_t)rng_below(r, 2000);
}

static void drain(worker_t *w)
{
    item_t got[MAILBOX];
    unsigned n;
    pthread_mutex_lock(&w->in->mu);
    n = w->in->count;
    memcpy(got, w->in->items, n * sizeof got[0]);
    w->in->count = 0;
    pthread_mutex_unlock(&w->in->mu);
    for (unsigned i = 0; i < n; i++) item_free(w->pool, &got[i]);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    rng_t r = test_rng("trim_worker", w->id);
    item_t slot[SLOTS];
    memset(slot, 0, sizeof slot);
    uint64_t seed = seed_for("trim_owner", w->id);
    for (size_t step = 0; step < w->steps; step++) {
        item_t *it = &slot[rng_below(&r, SLOTS)];
        if (it->p == NULL) {
            if (item_alloc(w->pool, it, pick_size(&r), seed) == 0) w->allocs++;
        } else if (rng_below(&r, 4) == 0) {
            /* hand it over; a full mailbox: free it here */
            pthread_mutex_lock(&w->out->mu);
            bool sent = w->out->count < MAILBOX;
            if (sent) w->out->items[w->out->count++] = *it;
            pthread_mutex_unlock(&w->out->mu);
            if (sent) it->p = NULL;
            else item_free(w->pool, it);
        } else {
            item_free(w->pool, it);
        }
        if (step % 64 == 0) drain(w);
        if (step % 997 == 0) (void)pool_trim(w->pool);
    }
    for (unsigned i = 0; i < SLOTS; i++)
        if (slot[i].p) item_free(w->pool, &slot[i]);
    atomic_fetch_add(&g_workers_done, 1);
    /* the other worker may still hand objects over */
    while (atomic_load(&g_workers_done) < 2) drain(w);
    drain(w);
    (void)pool_trim(w->pool);
    return NULL;
}

static void *trimmer_main(void *arg)
{
    pool_t *pool = arg;
    unsigned long rounds = 0;
    while (atomic_load(&g_workers_done) < 2) {
        (void)pool_trim(pool);
        pool_stats_t s = stats_of(pool);
        if (s.peak_reserved < s.bytes_reserved)
            TFAIL("peak_reserved %zu < bytes_reserved %zu", s.peak_reserved, s.bytes_reserved);
        rounds++;
    }
    print_message("  %lu trims while the workers ran\n", rounds);
    return NULL;
}

static void test_trim_races_alloc_and_free(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    mailbox_t box[2];
    worker_t w[2];
    atomic_store(&g_workers_done, 0);
    for (unsigned i = 0; i < 2; i++) {
        pthread_mutex_init(&box[i].mu, NULL);
        box[i].count = 0;
    }
    for (unsigned i = 0; i < 2; i++)
        w[i] = (worker_t){ pool, i, scaled(60000, 8000), 0, &box[i], &box[1 - i] };
    pthread_t t[3];
    for (unsigned i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    assert_int_equal(pthread_create(&t[2], NULL, trimmer_main, pool), 0);
    for (unsigned i = 0; i < 3; i++) pthread_join(t[i], NULL);
    for (unsigned i = 0; i < 2; i++) {
        assert_int_equal(box[i].count, 0);
        pthread_mutex_destroy(&box[i].mu);
    }
    EXPECT_NO_ASYNC_FAILURES();
    expect_quiescent_empty(pool, w[0].allocs + w[1].allocs);
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.large_objects, 0);
    (void)pool_trim(pool);
    s = stats_of(pool);
    EXPECT_EQ(s.free_block_bytes, 0);
    EXPECT_EQ(atomic_load(&g_reports), 0);
    pool_destroy(pool);
}

int main(void)
{
    pool_threads_init("test_pool_review_s21_trim");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_trim_races_alloc_and_free, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
