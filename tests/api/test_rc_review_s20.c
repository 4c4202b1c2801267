/* test_rc_review_s20.c — black-box regression tests from review session 20
 * (<mulch/rc.h>, docs/rc.md "Destroy callbacks", gc.md "Cancellation"):
 *   - a thread that ends inside a destroy callback run by a bridge release
 *     (gc_collect, called by an outer destroy callback, released an owned
 *     reference whose destroy calls pthread_exit): the destroys queued
 *     behind the outer callback were set aside on the unwound stack and
 *     never ran (leaked);
 *   - a misused rc_retain (count 0 already: the object's destroy pending)
 *     on one thread while another locks a weak reference to the object:
 *     the retain added to the count before it saw the 0 and took it back,
 *     and a weak lock in between took that transient reference, handing
 *     out the object whose destroy then ran (use after free). The race is
 *     narrow: the test repeats it (scaled) and failed on most runs.
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

static void *g_victim;
static rc_weak_t *g_victim_weak;
static atomic_int g_retains_done;
static _Atomic(void *) g_locked;
static size_t g_misuses;

static void *retain_once(void *obj)
{
    (void)rc_retain(obj);
    return NULL;
}

/* Misuse: retains an object whose count is 0 (each one reported). */
static void *misusing_retainer(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < g_misuses; i++) (void)rc_retain(g_victim);
    atomic_store(&g_retains_done, 1);
    return NULL;
}

static void *weak_locker(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_retains_done)) {
        void *p = rc_weak_lock(g_victim_weak);
        if (p != NULL) { /* a reference to a dying object: not released (its destroy runs anyway) */
            atomic_store(&g_locked, p);
            break;
        }
    }
    return NULL;
}

/* Drops the victim's last reference (merged count 0: its destroy waits
 * behind this callback, its weak reference still names it), then races a
 * misused retain with weak locks. */
static void racing_destroy(void *obj)
{
    (void)obj;
    rc_release(g_victim);
    pthread_t r, l;
    if (pthread_create(&r, NULL, misusing_retainer, NULL) != 0) AFAIL("pthread_create failed");
    if (pthread_create(&l, NULL, weak_locker, NULL) != 0) AFAIL("pthread_create failed");
    pthread_join(r, NULL);
    pthread_join(l, NULL);
}

static void test_rc_misused_retain_racing_weak_lock(void **state)
{
    (void)state;
    TEST_START();
    g_misuses = scaled(300000, 30000);
    atomic_store(&g_retains_done, 0);
    atomic_store(&g_locked, NULL);
    destroy_reset();
    shadow_reset();
    g_victim = mk_rec(NULL, 62);
    /* another thread's reference, then ours goes: the count is merged */
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, retain_once, g_victim), 0);
    pthread_join(t, NULL);
    rc_release(g_victim);
    EXPECT_EQ(rc_count(g_victim), 1);
    g_victim_weak = rc_weak_new(g_victim);
    EXPECT_NONNULL(g_victim_weak);
    void *outer = rc_alloc(16, racing_destroy);
    EXPECT_NONNULL(outer);
    unsigned long r0 = rec_count();
    rc_release(outer);
    if (atomic_load(&g_locked) != NULL)
        T_FAIL("rc_weak_lock handed out an object whose count was 0 (a misused retain's transient reference)");
    EXPECT_EQ(rec_count() - r0, (unsigned long)g_misuses);
    char what[128];
    rec_last(what, sizeof what, NULL);
    if (strncmp(what, "rc_retain: object's count is 0", 30) != 0) T_FAIL("last report: %s", what);
    EXPECT_SHADOW_RUNS(62, 1);
    EXPECT_NULL(rc_weak_lock(g_victim_weak));
    rc_weak_free(g_victim_weak);
    EXPECT_NO_ASYNC_FAILURES();
}

static void test_rc_calls_on_a_pool_cell(void **state)
{
    (void)state;
    TEST_START();
    if (MT_ON_VALGRIND()) { /* every rc call reads the 48 bytes in front (docs/rc.md): memcheck flags it */
        print_message("  skipped under valgrind\n");
        return;
    }
    static const size_t sizes[] = { 16, 48, 64, 100, 256, 4000 };
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        void *rc_before = rc_alloc(sizes[i], NULL); /* neighbours of either kind */
        void *cell = pool_alloc(pool_default(), sizes[i]);
        void *rc_after = rc_alloc(sizes[i], NULL);
        EXPECT_NONNULL(rc_before);
        EXPECT_NONNULL(cell);
        EXPECT_NONNULL(rc_after);
        memset(cell, 0, sizes[i]);
        unsigned long r = rec_count();
        (void)rc_retain(cell);
        EXPECT_ONE_REPORT(r, "rc_retain: not an rc object", cell);
        r = rec_count();
        rc_release(cell);
        EXPECT_ONE_REPORT(r, "rc_release: not an rc object", cell);
        r = rec_count();
        EXPECT_EQ(rc_count(cell), 0);
        EXPECT_ONE_REPORT(r, "rc_count: not an rc object", cell);
        r = rec_count();
        EXPECT_NULL(rc_weak_new(cell));
        EXPECT_ONE_REPORT(r, "rc_weak_new: not an rc object", cell);
        pool_free(pool_default(), cell);
        /* a destroyed rc object still says so */
        r = rec_count();
        rc_release(rc_after);
        rc_release(rc_after);
        EXPECT_ONE_REPORT(r, "rc_release: object already destroyed (use after release)", rc_after);
        rc_release(rc_before);
    }
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_rc_review_s20");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_thread_ends_inside_bridge_release_in_callback),
        T(test_rc_misused_retain_racing_weak_lock),
        T(test_rc_calls_on_a_pool_cell),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
