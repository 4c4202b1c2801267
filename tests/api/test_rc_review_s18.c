/* test_rc_review_s18.c — black-box regression tests from review session 18
 * (<mulch/rc.h>, docs/rc.md "Errors and misuse", "The bridge to the
 * collector"):
 *   - gc_own_rc on the owner thread of an object whose last reference
 *     another thread released (it waits in the owner's merge queue, count
 *     0, its destroy pending) took the reference and recorded the pair: the
 *     object came back to life, owned by the GC object, and its destroy
 *     waited for the owner's collection instead of the report (and −1) the
 *     guide promises. rc_retain (the checked, out-of-line one) likewise.
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

int main(void)
{
    mt_init("test_rc_review_s18");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_gc_own_rc_of_queued_zero_count_object),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
