/* test_rc_review_s20_h.c — black-box regression tests from review session
 * 20 (part H: rc leftovers; <mulch/rc.h>, docs/rc.md):
 *   - a thread that ends inside a destroy callback run by pool_destroy's
 *     merge of another thread's queue (objects of the pool whose last
 *     references a third thread released): the pool's objects taken off
 *     that queue after the one that ended the thread were lost (never
 *     destroyed), and the owner's record was held for ever;
 *   - gc_handle_get of a released handle read its freed cell and answered
 *     the object it had held, without a report.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372632048)
#include <mulch/rc.h>

#include "rc_test.h"

static void exiting_destroy(void *obj)
{
    (void)obj;
    pthread_exit(NULL);
}

/* The objects of a pool, allocated by this (the test's) thread, their
 * last references released by another one: they wait in this thread's
 * merge queue. A third thread destroys the pool, which merges and destroys
 * them; the first destroy ends that thread. */
static pool_t *g_pool;
static void *g_queued[2];

static void *release_both(void *arg)
{
    (void)arg;
    rc_release(g_queued[0]); /* pushed first: merged first by pool_destroy */
    rc_release(g_queued[1]);
    return NULL;
}

static void *destroy_pool(void *arg)
{
    (void)arg;
    pool_destroy(g_pool);
    AFAIL("the thread should have ended inside pool_destroy");
    return NULL;
}

static void test_rc_thread_ends_inside_destroy_of_queue_merged_by_pool_destroy(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    g_pool = pool_create(NULL);
    EXPECT_NONNULL(g_pool);
    g_queued[0] = rc_alloc_in(g_pool, 16, exiting_destroy);
    EXPECT_NONNULL(g_queued[0]);
    g_queued[1] = mk_rec(g_pool, 40);
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, release_both, NULL), 0);
    pthread_join(t, NULL);
    /* (no rc call on this thread until pool_destroy took its queue) */
    EXPECT_EQ(pthread_create(&t, NULL, destroy_pool, NULL), 0);
    pthread_join(t, NULL);
    EXPECT_DESTROYS(1); /* 0 before the fix */
    EXPECT_SHADOW_RUNS(40, 1);
    pool_destroy(g_pool); /* the pool_destroy above never finished */
    rc_nudge();
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

static const gc_type_t T_LEAF = { "test.s20h.leaf", NULL, NULL };

static void test_gc_handle_get_after_release(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    void *obj = gc_alloc(t, &T_LEAF, 16);
    EXPECT_NONNULL(obj);
    gc_handle_t *keep = gc_handle_new(heap, obj); /* a neighbour, so the cell stays recognisable */
    gc_handle_t *h = gc_handle_new(heap, obj);
    EXPECT_NONNULL(keep);
    EXPECT_NONNULL(h);
    EXPECT_PTR_EQ(gc_handle_get(h), obj);
    rc_release(h);
    unsigned long r = rec_count();
    void *got = gc_handle_get(h); /* the old object, unreported, before the fix */
    EXPECT_ONE_REPORT(r, "gc_handle_get: object already destroyed (use after release)", h);
    EXPECT_NULL(got);
    EXPECT_PTR_EQ(gc_handle_get(keep), obj);
    rc_release(keep);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_NO_ASYNC_FAILURES();
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_rc_review_s20_h");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_thread_ends_inside_destroy_of_queue_merged_by_pool_destroy),
        T(test_gc_handle_get_after_release),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
