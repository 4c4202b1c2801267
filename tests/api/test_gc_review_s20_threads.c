/* test_gc_review_s20_threads.c — session 20's review of the collector's
 * threads (gc/thread.c, gc/collect.c, gc/heap.c's destroy): threads that
 * end inside the finalizers a gc_heap_destroy runs; gc_heap_destroy is no
 * cancellation point; a root stack slot gc_root_add would refuse is
 * reported by gc_verify.
 *
 * Calls that could hang run on a helper thread joined with a time limit,
 * so that a regression fails the test instead of stalling it. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367632020)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <stdbool.h>

#include "mulch_test.h"

#define HANG_LIMIT_S 20

static bool finishes(void *(*fn)(void *), void *arg)
{
    return mt_finishes_within(fn, arg, HANG_LIMIT_S);
}

/* ------------------------------------------------------------------------ */
/* A thread that ends inside a finalizer gc_heap_destroy runs                */

static gc_heap_t *g_heap;
static atomic_int g_exit_fins;

/* The first one ends its thread (pthread_exit; a cancellation point the
 * finalizer reaches does the same), the others return. */
static void fin_exit_first(void *obj)
{
    (void)obj;
    if (atomic_fetch_add(&g_exit_fins, 1) == 0) pthread_exit(NULL);
}
static const gc_type_t T_EXIT_FIN = { "test.exit_fin", NULL, fin_exit_first };

static void *destroy_heap(void *arg)
{
    gc_heap_destroy(arg);
    return NULL;
}

/* The destroyer ended inside the destroy's first finalizer: the exit hook
 * detached it, but the heap stayed "being destroyed" by it, and every
 * later gc_heap_destroy was refused as "called inside a finalizer": the
 * other finalizers never ran and the heap was never freed. */
static void test_thread_ends_inside_destroy_finalizer(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    /* (a forced unwind through mulch's frames trips AddressSanitizer's own
     * thread teardown: see test_gc_exit_in_finalizer.c) */
    skip();
#endif
    TEST_START();
    atomic_store(&g_exit_fins, 0);
    g_heap = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(g_heap);
    for (int i = 0; i < 3; i++) EXPECT_NONNULL(launder(gc_alloc(t, &T_EXIT_FIN, 16)));
    gc_thread_detach(t);
    unsigned long r0 = rec_count();
    if (!finishes(destroy_heap, g_heap)) T_FAIL("gc_heap_destroy on a helper thread hung");
    EXPECT_EQ(atomic_load(&g_exit_fins), 1); /* its thread ended in the first one */
    EXPECT_NO_REPORTS(r0);
    /* the heap was not destroyed: it is still there, and usable */
    t = gc_thread_attach(g_heap);
    EXPECT_NONNULL(t);
    gc_collect(t);
    gc_thread_detach(t);
    EXPECT_NO_REPORTS(r0);
    /* another thread finishes the destroy: the other two finalizers run */
    if (!finishes(destroy_heap, g_heap)) T_FAIL("the second gc_heap_destroy hung");
    EXPECT_NO_REPORTS(r0);
    EXPECT_EQ(atomic_load(&g_exit_fins), 3);
}

/* ------------------------------------------------------------------------ */
/* gc_heap_destroy is no cancellation point                                  */

static atomic_int g_destroy_returned;

static void *destroy_with_cancel_pending(void *arg)
{
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    pthread_cancel(pthread_self());
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    gc_heap_destroy(arg); /* (docs/gc.md: no mulch call is a cancellation point) */
    atomic_fetch_add(&g_destroy_returned, 1);
    pthread_testcancel(); /* the cancel acts here, outside mulch */
    return NULL;
}

/* gc_heap_destroy joined the heap's marker threads with pthread_join, a
 * cancellation point: a thread with a cancel pending ended there, inside
 * the destroy, leaving the heap half torn down (its memory, locks and pool
 * never freed). Several heaps: a join that finds its helper gone already
 * does not wait, and need not act on the cancel. */
static void test_heap_destroy_is_no_cancellation_point(void **state)
{
    (void)state;
    TEST_START();
    atomic_store(&g_destroy_returned, 0);
    unsigned long r0 = rec_count();
    enum { HEAPS = 8 };
    for (int i = 0; i < HEAPS; i++) {
        gc_options_t o;
        memset(&o, 0, sizeof o);
        o.markers = 4; /* (an explicit markers > 1 starts helpers at any heap size) */
        gc_heap_t *h = gc_heap_create(&o);
        EXPECT_NONNULL(h);
        gc_thread_t *t = gc_thread_attach(h);
        void *list = NULL;
        gc_push_root(t, &list);
        for (int k = 0; k < 1000; k++) {
            tobj_t *o = mk(t, &T_PLAIN, (uint64_t)k, 1);
            gc_write_init(t, o, &o->slot[0], list);
            list = o;
        }
        gc_collect(t); /* starts the helpers */
        gc_pop_roots(t, 1);
        gc_thread_detach(t);
        pthread_t th;
        if (pthread_create(&th, NULL, destroy_with_cancel_pending, h) != 0) T_FAIL("pthread_create failed");
        void *ret = NULL;
        pthread_join(th, &ret);
        if (ret != PTHREAD_CANCELED) T_FAIL("setup: the destroying thread was not cancelled");
        EXPECT_EQ(atomic_load(&g_destroy_returned), i + 1);
    }
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* A pushed slot that gc_root_add refuses is reported by gc_verify           */

/* gc_push_root (inline) checks only for NULL, and gc_verify read such a
 * slot as a root like any other: a slot inside a GC object (of this heap
 * or another), which a collection reads and rewrites at its old address
 * once the object moves or dies, went unreported anywhere, although
 * docs/gc.md says such root slots are reported. */
static void test_verify_reports_pushed_slot_gc_root_add_refuses(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO), *other = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *obj = mk(t, &T_PLAIN, 1, 0);
    gc_push_root(t, &obj);
    unsigned long r0 = rec_count();
    EXPECT_VERIFY(h);

    /* a field of one of its own objects */
    void **field = &((tobj_t *)obj)->slot[1];
    gc_push_root(t, field);
    EXPECT_EQ(gc_verify(h), 1);
    EXPECT_ONE_REPORT(r0, "gc_verify: thread root slot lies inside a GC object", field);
    gc_pop_roots(t, 1);
    EXPECT_VERIFY(h);

    /* a field of another heap's object (its own root keeps it) */
    gc_enter_blocking(t);
    gc_thread_t *ot = gc_thread_attach(other);
    void *foreign = mk(ot, &T_PLAIN, 2, 0);
    gc_root_add(other, &foreign);
    gc_thread_detach(ot);
    gc_leave_blocking(t);
    void **foreign_field = &((tobj_t *)foreign)->slot[0];
    r0 = rec_count();
    gc_push_root(t, foreign_field);
    EXPECT_EQ(gc_verify(h), 1);
    EXPECT_ONE_REPORT(r0, "gc_verify: thread root slot lies inside a GC object", foreign_field);
    gc_pop_roots(t, 1);

    /* a misaligned slot */
    static void *words[2];
    void **misaligned = (void **)(void *)((char *)words + 1);
    r0 = rec_count();
    gc_push_root(t, misaligned);
    EXPECT_EQ(gc_verify(h), 1);
    EXPECT_ONE_REPORT(r0, "gc_verify: thread root slot is not aligned to a pointer", misaligned);
    gc_pop_roots(t, 1);

    r0 = rec_count();
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    gc_root_remove(other, &foreign);
    gc_heap_destroy(other);
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_review_s20_threads");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_thread_ends_inside_destroy_finalizer),
        T(test_heap_destroy_is_no_cancellation_point),
        T(test_verify_reports_pushed_slot_gc_root_add_refuses),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
