/* test_rc_review_s23.c — black-box regression tests from review session
 * 23 (rc and the bridge; <mulch/rc.h>, docs/rc.md, docs/api.md):
 *   - rc_weak_new while pool_default() is NULL (the OS refused the default
 *     pool's creation) on an object of the caller's own pool: the control
 *     block came from pool_alloc(NULL), which crashed, where running out
 *     of memory must give NULL;
 *   - gc_handle_new whose handle slot cannot be had (out of memory): its
 *     release of the new handle merged the caller's queue, running destroy
 *     callbacks there (one that collected freed or moved what the caller
 *     held in C locals), though gc_handle_new is no GC point;
 *   - gc_handle_get of an rc object that is no handle (C converts any
 *     void * to gc_handle_t *) answered the first word of its payload as
 *     a GC object, without a report.
 *
 * Deterministic: no randomness (the seed is printed as in every test). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372632317)
#include <mulch/rc.h>

#include "mmap_refuse.h"
#include "rc_test.h"

/* Runs first: nothing in this process has made the default pool yet. */
static void test_rc_weak_new_without_default_pool(void **state)
{
    (void)state;
    TEST_START();
    if (!MMAP_REFUSABLE) skip();
    unsigned long r0 = rec_count();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    void *obj = rc_alloc_in(pool, 32, NULL);
    EXPECT_NONNULL(obj);
    unsigned long refusals = mmap_refusals;
    mmap_refused = true; /* the default pool cannot be made now */
    rc_weak_t *weak = rc_weak_new(obj);
    mmap_refused = false;
    if (mmap_refusals == refusals)
        T_FAIL("%s", "the default pool existed already: the shortage was not met");
    EXPECT_NULL(weak);
    EXPECT_NO_REPORTS(r0); /* out of memory is no misuse */
    /* with memory back, the same call works */
    weak = rc_weak_new(obj);
    EXPECT_NONNULL(weak);
    void *locked = rc_weak_lock(weak);
    EXPECT_PTR_EQ(locked, obj);
    rc_release(locked);
    rc_release(obj);
    EXPECT_NULL(rc_weak_lock(weak));
    rc_weak_free(weak);
    pool_destroy(pool);
    EXPECT_NO_REPORTS(r0);
}

/* The destroy callback of an object queued to this thread: collects. */
static gc_thread_t *g_collector;
static int g_collecting_destroys;
static void collecting_destroy(void *obj)
{
    (void)obj;
    g_collecting_destroys++;
    gc_collect(g_collector);
}

static uint64_t collections_of(gc_heap_t *heap)
{
    gc_stats_t st;
    gc_get_stats(heap, &st);
    return st.collections;
}

static const gc_type_t T_LEAF = { "test.leaf", NULL, NULL };

static void test_rc_handle_new_out_of_memory_is_no_gc_point(void **state)
{
    (void)state;
    TEST_START();
    if (!MMAP_REFUSABLE) skip();
    unsigned long r0 = rec_count();
    g_collecting_destroys = 0;
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    g_collector = gc_thread_attach(heap);
    EXPECT_NONNULL(g_collector);
    /* a handle's cell is at hand without a new mapping */
    rc_release(gc_handle_new(heap, NULL));
    /* an object of ours whose last reference another thread drops: it
     * waits in our merge queue, its destroy (which collects) pending */
    handoff_t handoff = { .obj = rc_alloc(16, collecting_destroy) };
    EXPECT_NONNULL(handoff.obj);
    pthread_t releaser;
    EXPECT_EQ(pthread_create(&releaser, NULL, release_transferred, &handoff), 0);
    EXPECT_EQ(pthread_join(releaser, NULL), 0);
    EXPECT_EQ(g_collecting_destroys, 0);

    /* held in a C local, unrooted, across calls that are no GC point */
    void *obj = gc_alloc(g_collector, &T_LEAF, 32);
    EXPECT_NONNULL(obj);
    uint64_t collections = collections_of(heap);
    /* a fresh heap's first handle slot needs a mapping: refused */
    gc_handle_t *h;
    gc_heap_t *other = gc_heap_create(NULL);
    EXPECT_NONNULL(other);
    unsigned long refusals = mmap_refusals;
    mmap_refused = true;
    h = gc_handle_new(other, NULL);
    mmap_refused = false;
    if (mmap_refusals == refusals) T_FAIL("%s", "no mapping was refused: the shortage was not met");
    EXPECT_NULL(h);
    if (g_collecting_destroys != 0 || collections_of(heap) != collections)
        T_FAIL("the failed gc_handle_new ran %d destroy callback(s) and %" PRIu64 " collection(s)",
               g_collecting_destroys, collections_of(heap) - collections);
    h = gc_handle_new(heap, obj); /* obj is still the caller's to root */
    EXPECT_NONNULL(h);
    rc_release(rc_alloc(1, NULL)); /* a GC point of rc's: merges the queue */
    EXPECT_EQ(g_collecting_destroys, 1);
    EXPECT_PTR_EQ(gc_type_of(gc_handle_get(h)), &T_LEAF);
    EXPECT_EQ(gc_verify(heap), 0);
    EXPECT_EQ(gc_verify_untraced(heap), 0);
    EXPECT_NO_REPORTS(r0);
    rc_release(h);
    gc_heap_destroy(other);
    gc_thread_detach(g_collector);
    gc_heap_destroy(heap);
    EXPECT_NO_REPORTS(r0);
}

static void test_rc_handle_get_of_plain_rc_object(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    void **plain = rc_alloc(32, NULL);
    EXPECT_NONNULL(plain);
    plain[0] = (void *)(uintptr_t)0x1230; /* what gc_handle_get handed out */
    void *got = gc_handle_get((gc_handle_t *)(void *)plain);
    EXPECT_NULL(got);
    EXPECT_ONE_REPORT(r0, "gc_handle_get: not a gc_handle", plain);
    rc_release(plain);
    /* a handle still answers, also one of an object */
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    void *obj = gc_alloc(t, &T_LEAF, 16);
    EXPECT_NONNULL(obj);
    gc_handle_t *h = gc_handle_new(heap, obj);
    EXPECT_NONNULL(h);
    EXPECT_PTR_EQ(gc_handle_get(h), obj);
    gc_handle_t *empty = gc_handle_new(heap, NULL);
    EXPECT_NONNULL(empty);
    EXPECT_NULL(gc_handle_get(empty));
    EXPECT_NO_REPORTS(r0 + 1);
    rc_release(h);
    rc_release(empty);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_NO_REPORTS(r0 + 1);
}

static int teardown_refuse(void **state)
{
    mmap_refused = false;
    return teardown_rec(state);
}

int main(void)
{
    mt_init("test_rc_review_s23");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_refuse)
    const struct CMUnitTest tests[] = {
        T(test_rc_weak_new_without_default_pool),
        T(test_rc_handle_new_out_of_memory_is_no_gc_point),
        T(test_rc_handle_get_of_plain_rc_object),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
