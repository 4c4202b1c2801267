/* test_rc_review_s17.c — black-box regression tests from review session 17
 * (<mulch/rc.h>, docs/rc.md "Destroy callbacks", "Errors and misuse"):
 *   - a thread that never allocated an rc object runs a destroy callback
 *     (its release folded the count of an object whose owner had exited)
 *     and ends inside it (pthread_exit; gc.md "Cancellation"): the
 *     destroys queued behind that callback never ran, because only a
 *     thread with an rc record had the exit hook that runs them;
 *   - a destroy callback that destroys its own object's pool and then a
 *     second pool: the second pool_destroy looked up the pool of the
 *     object whose callback runs, in the unmapped chunk (a crash);
 *   - nested callbacks (one run inside a pool_destroy that another one
 *     called) where the inner one destroys the outer object's pool: only
 *     the innermost callback's object was tracked, so rc wrote into the
 *     outer object's unmapped cell once its callback returned (a crash).
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

/* An object in a pool it owns, which also owns a second pool: its destroy
 * destroys its own pool (allowed: docs/rc.md "Destroy callbacks"), then
 * the second one. pool_destroy's rc hook then looked up the pool of the
 * object whose callback runs, whose memory was gone (a crash). */
typedef struct two_pools {
    pool_t *own;   /* the object's pool */
    pool_t *other;
    recobj_t *items[2]; /* one in each */
} two_pools_t;

static atomic_ulong g_two_destroyed;

static void two_pools_destroy(void *obj)
{
    two_pools_t *t = obj;
    pool_t *own = t->own, *other = t->other;
    atomic_fetch_add(&g_two_destroyed, 1);
    rc_release(t->items[0]);
    rc_release(t->items[1]);
    pool_destroy(own); /* t is gone from here on */
    pool_destroy(other);
}

static void test_rc_destroy_callback_destroys_own_pool_then_another(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    atomic_store(&g_two_destroyed, 0);
    pool_t *own = pool_create(NULL), *other = pool_create(NULL);
    EXPECT_NONNULL(own);
    EXPECT_NONNULL(other);
    two_pools_t *t = rc_alloc_in(own, sizeof *t, two_pools_destroy);
    EXPECT_NONNULL(t);
    t->own = own;
    t->other = other;
    t->items[0] = mk_rec(own, 3);
    t->items[1] = mk_rec(other, 4);
    rc_release(t); /* crashed in the second pool_destroy before the fix */
    EXPECT_EQ(atomic_load(&g_two_destroyed), 1);
    EXPECT_DESTROYS(2);
    EXPECT_SHADOW_RUNS(3, 1);
    EXPECT_SHADOW_RUNS(4, 1);
    recobj_t *o = mk_rec(NULL, 5); /* the thread's rc state is sane */
    rc_release(o);
    EXPECT_SHADOW_RUNS(5, 1);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* Callbacks run inside pool_destroy, itself called by a callback: the
 * outer object (in pool A) releases the last reference to an object of
 * pool B and destroys B; that object's callback, run inside, destroys A
 * (every object of A is released: the outer one is dying). rc tracked
 * only the innermost callback's object, so after the outer callback
 * returned it wrote into A's unmapped cell (a crash). */
typedef struct outer {
    pool_t *b;
    void *inner;
} outer_t;

typedef struct inner {
    pool_t *a;
} inner_t;

static atomic_ulong g_nested_destroyed;

static void inner_destroy(void *obj)
{
    atomic_fetch_add(&g_nested_destroyed, 1);
    pool_destroy(((inner_t *)obj)->a); /* the outer object's pool */
}

static void outer_destroy(void *obj)
{
    outer_t *o = obj;
    pool_t *b = o->b;
    atomic_fetch_add(&g_nested_destroyed, 1);
    rc_release(o->inner); /* its destroy waits behind ours */
    pool_destroy(b);      /* ...and runs in here */
}

static void test_rc_nested_callbacks_destroy_outer_pool(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    atomic_store(&g_nested_destroyed, 0);
    pool_t *a = pool_create(NULL), *b = pool_create(NULL);
    EXPECT_NONNULL(a);
    EXPECT_NONNULL(b);
    outer_t *o = rc_alloc_in(a, sizeof *o, outer_destroy);
    inner_t *i = rc_alloc_in(b, sizeof *i, inner_destroy);
    EXPECT_NONNULL(o);
    EXPECT_NONNULL(i);
    o->b = b;
    o->inner = i;
    i->a = a;
    rc_release(o); /* crashed when outer_destroy returned before the fix */
    EXPECT_EQ(atomic_load(&g_nested_destroyed), 2);
    void *x = rc_alloc(8, NULL); /* the thread's rc state is sane */
    EXPECT_NONNULL(x);
    rc_release(x);
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
        T(test_rc_destroy_callback_destroys_own_pool_then_another),
        T(test_rc_nested_callbacks_destroy_outer_pool),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
