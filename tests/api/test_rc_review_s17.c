/* test_rc_review_s17.c — black-box regression tests from review session 17
 * (<mulch/rc.h>, docs/rc.md "Destroy callbacks", "Errors and misuse"):
 *   - a thread that never allocated an rc object runs a destroy callback
 *     (its release folded the count of an object whose owner had exited)
 *     and ends inside it (pthread_exit; gc.md "Cancellation"): the
 *     destroys queued behind that callback never ran, because only a
 *     thread with an rc record had the exit hook that runs them.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372631701)
#include <mulch/rc.h>

#include "rc_test.h"

static recobj_t *g_behind[2];
static void *g_dying;

static void exiting_destroy(void *obj)
{
    (void)obj;
    rc_release(g_behind[0]); /* last references: queued behind this one */
    rc_release(g_behind[1]);
    pthread_exit(NULL);
}

/* Allocates the objects and exits, handing its references over: their
 * counts are folded by whichever thread releases them. */
static void *allocating_thread(void *arg)
{
    (void)arg;
    g_behind[0] = mk_rec(NULL, 1);
    g_behind[1] = mk_rec(NULL, 2);
    g_dying = rc_alloc(16, exiting_destroy);
    if (g_dying == NULL) AFAIL("rc_alloc returned NULL");
    return NULL;
}

/* Never allocates an rc object: its release destroys, and it ends there. */
static void *releasing_thread(void *arg)
{
    (void)arg;
    rc_release(g_dying);
    return NULL;
}

static void test_rc_thread_without_record_ends_inside_destroy_callback(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, allocating_thread, NULL), 0);
    pthread_join(t, NULL);
    EXPECT_NONNULL(g_dying);
    EXPECT_EQ(pthread_create(&t, NULL, releasing_thread, NULL), 0);
    pthread_join(t, NULL);
    EXPECT_DESTROYS(2); /* 0 before the fix: the two objects leaked */
    EXPECT_SHADOW_RUNS(1, 1);
    EXPECT_SHADOW_RUNS(2, 1);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_rc_review_s17");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_thread_without_record_ends_inside_destroy_callback),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
