/* test_rc_review_s18.c — black-box regression tests from review session 18
 * (<mulch/rc.h>, docs/rc.md "Errors and misuse", "The bridge to the
 * collector"):
 *   - gc_own_rc on the owner thread of an object whose last reference
 *     another thread released (it waits in the owner's merge queue, count
 *     0, its destroy pending) took the reference and recorded the pair: the
 *     object came back to life, owned by the GC object, and its destroy
 *     waited for the owner's collection instead of the report (and −1) the
 *     guide promises. rc_retain (the checked, out-of-line one) likewise;
 *   - a destroy callback releases the last reference to an object of pool
 *     P (its destroy waits on this thread's pending list), then has another
 *     thread destroy P: the pending list then linked into unmapped memory
 *     and the callback's return crashed. The rule is documented; the misuse
 *     is reported while the address is not mapped again.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372631801)
#include <mulch/gc.h>
#include <mulch/rc.h>

#include "rc_test.h"

static const gc_type_t T_PLAIN = { "test.rc.s18.plain", NULL, NULL };

/* Another thread drops the only reference, which the owner (this thread)
 * counted: the object waits in this thread's queue at count 0. */
static recobj_t *queued_at_zero(uint64_t id)
{
    recobj_t *r = mk_rec(NULL, id);
    handoff_t h = { .obj = r, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, release_transferred, &h), 0);
    EXPECT_EQ(pthread_join(t, NULL), 0);
    return r;
}

static void test_rc_gc_own_rc_of_queued_zero_count_object(void **state)
{
    (void)state;
    TEST_START();
    destroy_reset();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    void *root = NULL;
    gc_root_add(heap, &root);
    root = gc_alloc(t, &T_PLAIN, 16);
    EXPECT_NONNULL(root);

    recobj_t *r = queued_at_zero(1);
    EXPECT_DESTROYS(0); /* waits for this thread's merge */
    unsigned long before = rec_count();
    EXPECT_EQ(gc_own_rc(t, root, r), -1);
    EXPECT_ONE_REPORT(before, "rc_retain: object's count is 0", r);
    rc_nudge(); /* the merge destroys it: nothing revived it */
    EXPECT_DESTROYS(1);

    /* the checked rc_retain on the owner thread, the same */
    r = queued_at_zero(2);
    before = rec_count();
    (rc_retain)(r);
    EXPECT_ONE_REPORT(before, "rc_retain: object's count is 0", r);
    rc_nudge();
    EXPECT_DESTROYS(2);

    /* a queued object the owner still counts is retained as usual */
    r = mk_rec(NULL, 3);
    (rc_retain)(r);
    handoff_t h = { .obj = r, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    pthread_t th;
    EXPECT_EQ(pthread_create(&th, NULL, release_transferred, &h), 0);
    EXPECT_EQ(pthread_join(th, NULL), 0);
    before = rec_count();
    EXPECT_EQ(gc_own_rc(t, root, r), 0);
    EXPECT_NO_REPORTS(before);
    rc_release(r);
    root = NULL;
    gc_collect(t);
    EXPECT_DESTROYS(3);

    gc_root_remove(heap, &root);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_DESTROYS(3);
}

static pool_t *g_other_pool;
static recobj_t *g_pending;

static void *destroy_other_pool(void *arg)
{
    (void)arg;
    pool_destroy(g_other_pool);
    return NULL;
}

/* Releases the last reference to g_pending (queued behind this callback),
 * then has another thread destroy its pool, and waits for it. */
static void release_then_other_thread_destroys(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_destroys, 1);
    rc_release(g_pending);
    pthread_t t;
    if (pthread_create(&t, NULL, destroy_other_pool, NULL) != 0) AFAIL("pthread_create failed");
    pthread_join(t, NULL);
}

static void test_rc_pool_destroyed_by_another_thread_while_destroy_pending(void **state)
{
    (void)state;
    TEST_START();
    destroy_reset();
    g_other_pool = pool_create(NULL);
    EXPECT_NONNULL(g_other_pool);
    g_pending = mk_rec(g_other_pool, 1);
    void *outer = rc_alloc(16, release_then_other_thread_destroys);
    EXPECT_NONNULL(outer);
    unsigned long before = rec_count();
    rc_release(outer);
    EXPECT_ONE_REPORT(before, "rc_release: the pool of an object whose destroy was pending", g_pending);
    EXPECT_DESTROYS(1); /* the outer one; the pending one went with its pool */
    /* this thread still destroys as usual */
    rc_release(mk_rec(NULL, 2));
    EXPECT_DESTROYS(2);
}

int main(void)
{
    mt_init("test_rc_review_s18");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_gc_own_rc_of_queued_zero_count_object),
        T(test_rc_pool_destroyed_by_another_thread_while_destroy_pending),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
