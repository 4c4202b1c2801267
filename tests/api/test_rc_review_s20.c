/* test_rc_review_s20.c — black-box regression tests from review session 20
 * (<mulch/rc.h>, docs/rc.md "Destroy callbacks", gc.md "Cancellation"):
 *   - a thread that ends inside a destroy callback run by a bridge release
 *     (gc_collect, called by an outer destroy callback, released an owned
 *     reference whose destroy calls pthread_exit): the destroys queued
 *     behind the outer callback were set aside on the unwound stack and
 *     never ran (leaked).
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372632001)
#include <mulch/rc.h>

#include "rc_test.h"

static const gc_type_t T_OWNER = { "test.s20.owner", NULL, NULL };

static gc_thread_t *g_t;
static recobj_t *g_behind[2];

static void exiting_destroy(void *obj)
{
    (void)obj;
    pthread_exit(NULL);
}

/* Its last references to g_behind wait behind it; then the collection
 * releases the owned reference, whose destroy ends the thread. */
static void collecting_destroy(void *obj)
{
    (void)obj;
    rc_release(g_behind[0]);
    rc_release(g_behind[1]);
    gc_collect(g_t);
    AFAIL("the thread should have ended inside gc_collect");
}

static void *exiting_thread(void *arg)
{
    g_t = gc_thread_attach(arg);
    if (g_t == NULL) {
        AFAIL("gc_thread_attach returned NULL");
        return NULL;
    }
    void *owner = gc_alloc(g_t, &T_OWNER, 16); /* unrooted: the next collection reclaims it */
    void *ender = rc_alloc(16, exiting_destroy);
    if (owner == NULL || ender == NULL) {
        AFAIL("allocation failed");
        return NULL;
    }
    if (gc_own_rc(g_t, owner, ender) != 0) AFAIL("gc_own_rc failed");
    owner = NULL;
    rc_release(ender); /* the GC object holds the only reference now */
    g_behind[0] = mk_rec(NULL, 60);
    g_behind[1] = mk_rec(NULL, 61);
    void *outer = rc_alloc(16, collecting_destroy);
    if (outer == NULL) AFAIL("rc_alloc returned NULL");
    else rc_release(outer);
    AFAIL("the thread should have ended inside a destroy callback");
    return NULL;
}

static void test_rc_thread_ends_inside_bridge_release_in_callback(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, exiting_thread, heap), 0);
    pthread_join(t, NULL);
    EXPECT_DESTROYS(2); /* 0 before the fix: both leaked */
    EXPECT_SHADOW_RUNS(60, 1);
    EXPECT_SHADOW_RUNS(61, 1);
    gc_heap_destroy(heap);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_rc_review_s20");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_thread_ends_inside_bridge_release_in_callback),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
