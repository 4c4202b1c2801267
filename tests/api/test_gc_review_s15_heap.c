/* test_gc_review_s15_heap.c — review session 15 (heap lifecycle, walk,
 * policy): regressions for bugs found there. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7331355f68656170)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>
#include <mulch/rc.h>

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "mulch_test.h"

/* ---- gc_heap_destroy from a heap-walk callback ------------------------- */

typedef struct destroy_walk {
    gc_heap_t *heap;
    unsigned long reports;
    size_t visited;
} destroy_walk_t;

static void destroy_from_callback(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)obj;
    (void)type;
    (void)size;
    destroy_walk_t *d = ctx;
    if (d->visited++ != 0) return;
    unsigned long r = rec_count();
    gc_heap_destroy(d->heap);
    d->reports = rec_count() - r;
}

static void *walker(void *arg)
{
    destroy_walk_t *d = arg;
    (void)gc_heap_walk(d->heap, destroy_from_callback, d);
    return NULL;
}

/* The callback runs with the heap's lock held: gc_heap_destroy, which
 * takes it, must be reported and refused like every other call that would
 * take it (<mulch/gc.h>), not deadlock (it did: it never checked). The
 * walk runs on a thread of its own so that a deadlock fails the test
 * instead of hanging it. */
static void test_destroy_from_walk_callback_refused(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    (void)mk(t, &T_PLAIN, 1, 2);
    gc_thread_detach(t); /* (an attached thread would hold up the walk's stop) */
    destroy_walk_t d = { h, 0, 0 };
    pthread_t th;
    if (pthread_create(&th, NULL, walker, &d) != 0) T_FAIL("pthread_create failed");
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    if (pthread_timedjoin_np(th, NULL, &until) != 0)
        T_FAIL("gc_heap_destroy from a walk callback deadlocked (the heap is left as it is)");
    if (d.visited == 0) T_FAIL("the walk visited nothing");
    if (d.reports != 1) T_FAIL("%lu reports from the callback's gc_heap_destroy, want 1", d.reports);
    char what[256];
    const void *ptr;
    rec_last(what, sizeof what, &ptr);
    if (strstr(what, "gc_heap_destroy") == NULL || strstr(what, "heap-walk callback") == NULL)
        T_FAIL("last report \"%s\" does not name gc_heap_destroy and the walk callback", what);
    /* the heap is intact: usable, then destroyed for real */
    t = gc_thread_attach(h);
    void *root = mk(t, &T_PLAIN, 2, 2);
    gc_push_root(t, &root);
    gc_collect(t);
    EXPECT_OBJ(root, 2);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    if (rec_count() - r0 != 1) T_FAIL("%lu reports in all, want 1", rec_count() - r0);
}

/* ---- gc_heap_destroy: rc destroy callbacks that make finalizable objects */

static gc_heap_t *g_destroy_heap;

static void rc_destroy_makes_finalizable(void *obj)
{
    (void)obj;
    gc_thread_t *t = gc_thread_current(g_destroy_heap);
    if (t == NULL) {
        AFAIL("the destroy's rc callback runs on a thread not attached to the heap");
        return;
    }
    tobj_t *o = gc_alloc(t, &T_FIN, tobj_size(0));
    if (o == NULL) {
        AFAIL("gc_alloc from the destroy's rc callback returned NULL");
        return;
    }
    o->magic = OBJ_MAGIC;
    o->id = 77;
}

/* gc_heap_destroy runs every finalizer not yet run (docs/gc.md), its rc
 * destroy callbacks run "under the finalizer rules" (they may allocate):
 * an object a callback makes must be finalized too. */
static void test_destroy_rc_callback_finalizable(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    g_destroy_heap = h;
    gc_thread_t *t = gc_thread_attach(h);
    void *owner = mk(t, &T_PLAIN, 1, 0);
    gc_push_root(t, &owner);
    void *rc = rc_alloc(16, rc_destroy_makes_finalizable);
    EXPECT_NONNULL(rc);
    EXPECT_EQ(gc_own_rc(t, owner, rc), 0);
    rc_release(rc); /* the owner's reference is the last */
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_FIN(77, 1);
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_review_s15_heap");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_destroy_from_walk_callback_refused),
        T(test_destroy_rc_callback_finalizable),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
