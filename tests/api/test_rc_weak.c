/* test_rc_weak.c — black-box tests of reference-counted objects
 * (<mulch/rc.h>; docs: shared/API.md "RC" and "Errors and misuse",
 * docs/rc.md), weak references:
 *   - lock while alive (count + 1), NULL once destroyed, several handles,
 *     rc_weak_free before and after the object dies (no pool cell left),
 *     rc_weak_new on a dead object, or one whose count is 0 (destroy
 *     pending), reported; rc_weak_free twice and
 *     rc_weak_lock after rc_weak_free reported;
 *   - an object queued to its owner (another thread dropped a reference
 *     the owner counted, not merged yet): a lock gives it both while the
 *     owner still holds it and when no reference is left (docs/rc.md: not
 *     dying until the merge decides); destroy runs once, after the locked
 *     reference goes; a lock after the merge's destroy is NULL.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. MULCH_TEST_QUICK=1
 * (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372630c01)
#include <mulch/rc.h>

#include "rc_test.h"

/* ======================================================================== */
/* Weak references                                                           */

static void test_rc_weak_basic(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);

    recobj_t *o = mk_rec(pool, 40);
    rc_weak_t *w = rc_weak_new(o);
    EXPECT_NONNULL(w);
    EXPECT_EQ(rc_count(o), 1); /* a weak reference does not count */

    void *p = rc_weak_lock(w);
    EXPECT_PTR_EQ(p, o);
    EXPECT_EQ(rc_count(o), 2);
    void *q = rc_weak_lock(w);
    EXPECT_PTR_EQ(q, o);
    EXPECT_EQ(rc_count(o), 3);
    rc_release(q);
    rc_release(p);
    EXPECT_EQ(rc_count(o), 1);
    EXPECT_DESTROYS(0);

    /* the locked reference can outlive the original one */
    p = rc_weak_lock(w);
    EXPECT_PTR_EQ(p, o);
    rc_release(o);
    EXPECT_DESTROYS(0);
    EXPECT_EQ(rc_count(p), 1);
    EXPECT_EQ(((recobj_t *)p)->magic, REC_MAGIC);
    rc_release(p); /* the last reference, from a lock */
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(40, 1);
    EXPECT_NULL(rc_weak_lock(w));
    EXPECT_NULL(rc_weak_lock(w));
    rc_weak_free(w); /* after the object died */
    EXPECT_EQ(stats_of(pool).live_allocations, 0);

    /* several weak references to one object; some freed before it dies */
    destroy_reset();
    o = mk_rec(pool, 41);
    rc_weak_t *ws[5];
    for (int i = 0; i < 5; i++) {
        ws[i] = rc_weak_new(o);
        EXPECT_NONNULL(ws[i]);
        if (i && ws[i] == ws[i - 1]) T_FAIL("rc_weak_new returned the same handle twice");
    }
    EXPECT_EQ(rc_count(o), 1);
    for (int i = 0; i < 5; i++) {
        p = rc_weak_lock(ws[i]);
        EXPECT_PTR_EQ(p, o);
        EXPECT_EQ(rc_count(o), 2);
        rc_release(p);
    }
    rc_weak_free(ws[0]);
    rc_weak_free(ws[3]);
    p = rc_weak_lock(ws[1]);
    EXPECT_PTR_EQ(p, o);
    rc_release(p);
    rc_release(o);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(41, 1);
    EXPECT_NULL(rc_weak_lock(ws[1]));
    EXPECT_NULL(rc_weak_lock(ws[2]));
    EXPECT_NULL(rc_weak_lock(ws[4]));
    rc_weak_free(ws[1]);
    rc_weak_free(ws[2]);
    rc_weak_free(ws[4]);
    EXPECT_EQ(stats_of(pool).live_allocations, 0);

    /* every weak reference freed before the object dies */
    destroy_reset();
    o = mk_rec(pool, 42);
    for (int i = 0; i < 3; i++) ws[i] = rc_weak_new(o);
    for (int i = 0; i < 3; i++) rc_weak_free(ws[i]);
    EXPECT_EQ(rc_count(o), 1);
    rc_release(o);
    EXPECT_DESTROYS(1);
    EXPECT_EQ(stats_of(pool).live_allocations, 0);

    /* weak references created and freed again and again: nothing piles up */
    o = mk_rec(pool, 43);
    size_t live0 = stats_of(pool).live_allocations;
    for (int i = 0; i < 1000; i++) {
        rc_weak_t *t = rc_weak_new(o);
        EXPECT_NONNULL(t);
        rc_weak_free(t);
    }
    size_t live1 = stats_of(pool).live_allocations;
    if (live1 > live0 + 1) T_FAIL("1000 rc_weak_new/rc_weak_free left %zu cells (before: %zu)", live1, live0);
    rc_release(o);
    EXPECT_EQ(stats_of(pool).live_allocations, 0);

    /* a weak reference on another thread's object, locked on this one */
    pool_destroy(pool);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

static void test_rc_weak_new_misuse(void **state)
{
    (void)state;
    TEST_START();
    destroy_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    recobj_t *keep = mk_rec(pool, 50);
    recobj_t *o = mk_rec(pool, 51);
    rc_release(o);
    EXPECT_DESTROYS(1);

    unsigned long r1 = rec_count();
    rc_weak_t *w = rc_weak_new(o);
    EXPECT_NULL(w);
    EXPECT_ONE_REPORT(r1, "rc_weak_new:", o);

    unsigned char *m = aligned_alloc(64, 256);
    assert_non_null(m);
    memset(m, 0, 256);
    r1 = rec_count();
    w = rc_weak_new(m + 64);
    EXPECT_NULL(w);
    EXPECT_ONE_REPORT(r1, "rc_weak_new:", m + 64);
    free(m);

    r1 = rec_count();
    w = rc_weak_new(NULL);
    EXPECT_NULL(w);
    EXPECT_ONE_REPORT(r1, "rc_weak_new:", NULL);

    /* NULL handles are harmless */
    r1 = rec_count();
    EXPECT_NULL(rc_weak_lock(NULL));
    rc_weak_free(NULL);
    (void)r1;

    rc_release(keep);
    EXPECT_EQ(stats_of(pool).live_allocations, 0);
    pool_destroy(pool);
}

/* rc_weak_new of an object whose count is 0, its destroy pending (a
 * destroy callback released its last reference: that destroy waits behind
 * the running one). It attached a control block and gave a weak reference,
 * unreported, where rc_retain of the same object reports; now the same
 * report kind and NULL. */
static void *g_pending_obj;
static rc_weak_t *g_pending_weak;
static unsigned long g_pending_reports;
static char g_pending_text[160];
static void destroy_releases_then_weak_new(void *obj)
{
    (void)obj;
    rc_release(g_pending_obj); /* its last reference: destroyed after this callback */
    unsigned long r = rec_count();
    g_pending_weak = rc_weak_new(g_pending_obj);
    g_pending_reports = rec_count() - r;
    rec_last(g_pending_text, sizeof g_pending_text, NULL);
}

static void test_rc_weak_new_count_zero(void **state)
{
    (void)state;
    TEST_START();
    g_pending_obj = rc_alloc(32, NULL);
    void *outer = rc_alloc(32, destroy_releases_then_weak_new);
    EXPECT_NONNULL(g_pending_obj);
    EXPECT_NONNULL(outer);
    g_pending_weak = NULL;
    g_pending_reports = 0;
    rc_release(outer);
    EXPECT_NULL(g_pending_weak);
    EXPECT_EQ(g_pending_reports, 1);
    static const char want[] = "rc_weak_new: object's count is 0";
    if (strncmp(g_pending_text, want, sizeof want - 1) != 0)
        T_FAIL("report \"%s\", want \"%s...\"", g_pending_text, want);
    if (g_pending_weak) rc_weak_free(g_pending_weak);
}

/* A weak reference freed twice, or locked after it was freed, is misuse:
 * reported (naming the weak reference) and otherwise ignored. The object's
 * other weak reference keeps working: the control block they share is not
 * released early (nor twice). Neighbours keep the freed cell from reuse. */
static void test_rc_weak_free_twice(void **state)
{
    (void)state;
    TEST_START();
    destroy_reset();
    shadow_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    recobj_t *o = mk_rec(pool, 41);
    rc_weak_t *keep = rc_weak_new(o);
    rc_weak_t *w = rc_weak_new(o);
    rc_weak_t *after = rc_weak_new(o);
    EXPECT_NONNULL(keep);
    EXPECT_NONNULL(w);
    EXPECT_NONNULL(after);
    unsigned long r0 = rec_count();
    rc_weak_free(w);
    EXPECT_NO_REPORTS(r0);
    size_t live = stats_of(pool).live_allocations;

    unsigned long r1 = rec_count();
    rc_weak_free(w); /* double free */
    EXPECT_ONE_REPORT(r1, "rc_weak_free:", w);
    r1 = rec_count();
    void *p = rc_weak_lock(w); /* use after free */
    EXPECT_NULL(p);
    EXPECT_ONE_REPORT(r1, "rc_weak_lock:", w);
    EXPECT_EQ(stats_of(pool).live_allocations, live);

    unsigned long r2 = rec_count();
    rc_weak_free(after);
    p = rc_weak_lock(keep);
    EXPECT_PTR_EQ(p, o);
    rc_release(p);
    rc_release(o);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(41, 1);
    EXPECT_NULL(rc_weak_lock(keep));
    rc_weak_free(keep);
    EXPECT_EQ(stats_of(pool).live_allocations, 0);
    EXPECT_NO_REPORTS(r2);
    pool_destroy(pool);
    EXPECT_NO_ASYNC_FAILURES();
}

/* rc_weak_lock on another thread: the reviewer's "non-owner locker". */
static void *lock_on_thread(void *arg)
{
    return rc_weak_lock(arg);
}

static void *lock_elsewhere(rc_weak_t *w)
{
    pthread_t th;
    void *got = NULL;
    if (pthread_create(&th, NULL, lock_on_thread, w) != 0) T_FAIL("pthread_create failed");
    if (pthread_join(th, &got) != 0) T_FAIL("pthread_join failed");
    return got;
}

/* Drops, on another thread, a reference this (the owner) thread counted:
 * the shared count goes below zero and the object is queued to us. */
static void release_elsewhere(void *obj)
{
    handoff_t h = { .obj = obj, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    pthread_t th;
    if (pthread_create(&th, NULL, release_transferred, &h) != 0) T_FAIL("pthread_create failed");
    if (pthread_join(th, NULL) != 0) T_FAIL("pthread_join failed");
}

/* A queued object's weak lock cannot tell "the owner still holds
 * references" from "none is left": only the owner's merge knows the sum.
 * Both must give the object (refusing the first would report a live object
 * destroyed); the second is documented as not dying yet. The merge then
 * counts the locked reference, so destroy runs once, after it goes. */
static void test_rc_weak_lock_queued(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);

    /* queued, the owner still holds one: the object is alive */
    recobj_t *o = mk_rec(pool, 44);
    rc_weak_t *w = rc_weak_new(o);
    EXPECT_NONNULL(w);
    release_elsewhere(rc_retain(o));
    void *p = lock_elsewhere(w);
    EXPECT_PTR_EQ(p, o);
    rc_release(p);
    EXPECT_DESTROYS(0);
    EXPECT_EQ(o->magic, REC_MAGIC);
    rc_release(o); /* merges, then the last release */
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(44, 1);
    EXPECT_NULL(rc_weak_lock(w));
    rc_weak_free(w);

    /* queued with no reference left: a lock before the merge still wins */
    destroy_reset();
    o = mk_rec(pool, 45);
    w = rc_weak_new(o);
    EXPECT_NONNULL(w);
    release_elsewhere(o);
    EXPECT_DESTROYS(0); /* waits for our merge */
    p = lock_elsewhere(w);
    EXPECT_PTR_EQ(p, o);
    rc_nudge(); /* the merge counts the locked reference: no destroy */
    EXPECT_DESTROYS(0);
    EXPECT_EQ(((recobj_t *)p)->magic, REC_MAGIC);
    release_elsewhere(p); /* merged now: this last release destroys at once */
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(45, 1);
    EXPECT_NULL(rc_weak_lock(w));
    EXPECT_NULL(lock_elsewhere(w));
    rc_weak_free(w);

    /* queued with no reference left, merged before any lock: gone for good */
    destroy_reset();
    o = mk_rec(pool, 46);
    w = rc_weak_new(o);
    EXPECT_NONNULL(w);
    release_elsewhere(o);
    rc_nudge();
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(46, 1);
    EXPECT_NULL(lock_elsewhere(w));
    EXPECT_NULL(rc_weak_lock(w));
    rc_weak_free(w);

    EXPECT_EQ(stats_of(pool).live_allocations, 0);
    pool_destroy(pool);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_rc_weak");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_weak_basic),
        T(test_rc_weak_new_misuse),
        T(test_rc_weak_new_count_zero),
        T(test_rc_weak_free_twice),
        T(test_rc_weak_lock_queued),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
