/* test_gc_review_s18_edges.c — review session 18 (the collector's API
 * edges: roots, gc_alloc's slow path, weak references at destroy):
 * regressions for bugs found there. (gc_size_of on a stale pointer is
 * checked with gc_type_of's, in test_gc_review_s17.)
 *
 * Calls made with another thread's record run on a helper thread joined
 * with a time limit, so that a regression fails the test instead of
 * stalling it. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7331385f65646765)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>
#include <mulch/rc.h>

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <time.h>

#include "mulch_test.h"

#define HANG_LIMIT_S 20

static bool finishes(void *(*fn)(void *), void *arg)
{
    return mt_finishes_within(fn, arg, HANG_LIMIT_S);
}

static uint64_t collections_of(gc_heap_t *h)
{
    gc_stats_t s;
    gc_get_stats(h, &s);
    return s.collections;
}

/* ---- gc_root_depth / gc_pop_roots_to with a record the caller does not hold */

static gc_thread_t *g_owner;
static size_t g_depth_seen;

static void *depth_with_owners_record(void *unused)
{
    (void)unused;
    g_depth_seen = gc_root_depth(g_owner);
    return NULL;
}

static void *pop_with_owners_record(void *unused)
{
    (void)unused;
    gc_pop_roots_to(g_owner, 0);
    return NULL;
}

/* Both took any record: another thread read the owner's depth as it
 * changed, and popped the owner's roots from under it, unreported (the
 * next collection freed the objects the owner still held). They check the
 * record as gc_collect and gc_weak_new do. */
static void test_root_calls_other_threads_record(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    g_owner = gc_thread_attach(h);
    void *keep = mk(g_owner, &T_PLAIN, 5, 2);
    gc_push_root(g_owner, &keep);
    unsigned long r0 = rec_count();
    g_depth_seen = 99;
    if (!finishes(depth_with_owners_record, NULL)) T_FAIL("the helper hung");
    EXPECT_EQ(g_depth_seen, 0);
    EXPECT_ONE_REPORT(r0, "gc_root_depth: not a thread attached by the calling thread", g_owner);
    unsigned long r1 = rec_count();
    if (!finishes(pop_with_owners_record, NULL)) T_FAIL("the helper hung");
    EXPECT_ONE_REPORT(r1, "gc_pop_roots_to: not a thread attached by the calling thread", g_owner);
    EXPECT_EQ(gc_root_depth(g_owner), 1);
    gc_collect(g_owner);
    EXPECT_OBJ(keep, 5);
    EXPECT_VERIFY(h);
    gc_pop_roots(g_owner, 1);
    gc_thread_detach(g_owner);
    gc_heap_destroy(h);
    EXPECT_EQ(rec_count() - r0, 2);
}

/* A detached record is unmapped: both read through it (a crash). */
static void test_root_calls_detached_record(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    gc_thread_detach(t);
    unsigned long r0 = rec_count();
    EXPECT_EQ(gc_root_depth(t), 0);
    EXPECT_ONE_REPORT(r0, "gc_root_depth: not a thread attached by the calling thread", t);
    unsigned long r1 = rec_count();
    gc_pop_roots_to(t, 0);
    EXPECT_ONE_REPORT(r1, "gc_pop_roots_to: not a thread attached by the calling thread", t);
    gc_heap_destroy(h);
    EXPECT_EQ(rec_count() - r0, 2);
}

/* ---- gc_alloc's slow path with another thread's record ------------------- */

static gc_heap_t *g_ah;
static unsigned long g_alloc_r0;
static void *g_alloc_result;

/* Not attached: allocates with the owner's record (large objects: always
 * the slow path) until a report comes or a collection has run. */
static void *alloc_with_owners_record(void *unused)
{
    (void)unused;
    uint64_t c0 = collections_of(g_ah);
    g_alloc_result = (void *)1;
    for (int i = 0; i < 100000 && rec_count() == g_alloc_r0 && collections_of(g_ah) == c0; i++)
        g_alloc_result = (gc_alloc)(g_owner, &T_RAW, 64 * 1024);
    return NULL;
}

/* The slow path's GC points took any record: allocating with the
 * owner's record, an unattached thread ran collections as if it were the
 * owner (counted as the collector) while the owner went on running, and
 * nothing was reported. It is checked there, as gc_safepoint checks it. */
static void test_alloc_other_threads_record(void **state)
{
    (void)state;
    TEST_START();
    g_ah = heap_new(0, 0, GC_COMPACT_AUTO);
    g_owner = gc_thread_attach(g_ah);
    void *keep = mk(g_owner, &T_PLAIN, 6, 2);
    gc_push_root(g_owner, &keep);
    uint64_t c0 = collections_of(g_ah);
    g_alloc_r0 = rec_count();
    if (!finishes(alloc_with_owners_record, NULL)) T_FAIL("gc_alloc with another thread's record hung");
    EXPECT_EQ(collections_of(g_ah), c0);
    EXPECT_PTR_EQ(g_alloc_result, NULL);
    EXPECT_ONE_REPORT(g_alloc_r0, "gc_alloc: not a thread attached by the calling thread", g_owner);
    gc_collect(g_owner);
    EXPECT_OBJ(keep, 6);
    EXPECT_VERIFY(g_ah);
    gc_pop_roots(g_owner, 1);
    gc_thread_detach(g_owner);
    gc_heap_destroy(g_ah);
    EXPECT_NO_REPORTS(g_alloc_r0 + 1);
}

/* ---- gc_alloc's refills with another thread's record --------------------- */

static unsigned g_finalized;
static void count_finalized(void *obj)
{
    (void)obj;
    g_finalized++;
}
static const gc_type_t T_COUNTED = { "test.counted", NULL, count_finalized };

/* A finalizable small object: every allocation takes the slow path, and
 * with the budget far from spent, no GC point. */
static void *alloc_finalizable_with_owners_record(void *unused)
{
    (void)unused;
    g_alloc_result = (gc_alloc)(g_owner, &T_COUNTED, 32);
    return NULL;
}

/* The record was checked only at GC points: before one, the slow path
 * handed out the owner's cells and pushed onto its finalizable list from
 * another thread, without a lock and unreported (the object was then
 * finalized as the owner's). It is checked on entry now. */
static void test_alloc_refill_other_threads_record(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(64u << 20, 0, GC_COMPACT_AUTO);
    g_owner = gc_thread_attach(h);
    g_finalized = 0;
    g_alloc_r0 = rec_count();
    if (!finishes(alloc_finalizable_with_owners_record, NULL)) T_FAIL("gc_alloc with another thread's record hung");
    EXPECT_PTR_EQ(g_alloc_result, NULL);
    EXPECT_ONE_REPORT(g_alloc_r0, "gc_alloc: not a thread attached by the calling thread", g_owner);
    gc_collect(g_owner);
    EXPECT_EQ(g_finalized, 0);
    EXPECT_VERIFY(h);
    gc_thread_detach(g_owner);
    gc_heap_destroy(h);
    EXPECT_EQ(g_finalized, 0);
    EXPECT_NO_REPORTS(g_alloc_r0 + 1);
}

/* ---- gc_size_of on a pointer into a cell an object moved out of --------- */

/* 300 bytes: a cell with a header, where the collector leaves the
 * forwarding word of a moved object (as test_gc_review_s17). */
/* ---- weak references rc destroy callbacks make during gc_heap_destroy --- */

static struct {
    gc_heap_t *heap;
    void *target;      /* a rooted GC object */
    void *weak;        /* made by the first destroy callback */
    void *seen;        /* what the second one read through it */
    int destroyed;
} g_dw;

/* Whichever callback runs first makes a weak reference to the target; the
 * second reads it. */
static void rc_destroy_weak(void *obj)
{
    (void)obj;
    if (g_dw.destroyed++ == 0) {
        gc_thread_t *t = gc_thread_current(g_dw.heap);
        if (t == NULL) {
            AFAIL("the destroy's rc callback runs on no attached thread");
            return;
        }
        g_dw.weak = gc_weak_new(t, g_dw.target);
        if (g_dw.weak == NULL) AFAIL("gc_weak_new from an rc destroy callback gave NULL");
        else if (gc_weak_get(g_dw.weak) != g_dw.target) AFAIL("a new weak reference does not name its target");
    } else if (g_dw.weak != NULL) {
        g_dw.seen = gc_weak_get(g_dw.weak);
    }
}

/* gc_heap_destroy clears the weak references that its finalizers make
 * before the next finalizer runs (4365d68), and once more before the rc
 * destroy callbacks of owned references: a weak reference that one such
 * callback made still named its target when the next callback ran. */
static void test_destroy_weak_made_by_rc_callback(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    memset(&g_dw, 0, sizeof g_dw);
    g_dw.heap = h;
    gc_thread_t *t = gc_thread_attach(h);
    gc_root_add(h, &g_dw.target);
    g_dw.target = mk(t, &T_PLAIN, 1, 2);
    for (int i = 0; i < 2; i++) {
        void *rc_obj = rc_alloc(16, rc_destroy_weak);
        EXPECT_NONNULL(rc_obj);
        EXPECT_EQ(gc_own_rc(t, g_dw.target, rc_obj), 0);
        rc_release(rc_obj); /* the target's reference is the last */
    }
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_EQ(g_dw.destroyed, 2);
    EXPECT_NONNULL(g_dw.weak);
    EXPECT_PTR_EQ(g_dw.seen, NULL);
    EXPECT_NO_REPORTS(r0);
}

/* ---- gc_type_of on a moved-out cell from a heap walk's callback --------- */

#define MOVED_WORDS 32
#define CHAIN_STRIDE 64
#define CHAIN_OBJECTS 2048

static struct {
    gc_heap_t *h;
    gc_thread_t *t;
    void *moving;            /* a root: the object that moves */
    void *stale;             /* its address before the finalizer's collection */
    void *kept[CHAIN_OBJECTS / CHAIN_STRIDE];
    size_t kept_count;
    bool moved;
    const gc_type_t *walk_type; /* gc_type_of(stale) from the walk's callback */
    unsigned long walk_reports;
    bool walked;
} g_wk;

/* Runs while its object is pending: the chain it holds (kept[], one
 * object per CHAIN_STRIDE of class C, moving's span among them) is marked
 * in place by the collection it makes, so those spans stay, and moving
 * is copied out of its span, leaving its forwarding word there. */
static void fin_unpins_and_collects(void *obj)
{
    (void)obj;
    for (size_t i = 0; i < g_wk.kept_count; i++) gc_unpin(g_wk.h, g_wk.kept[i]);
    g_wk.stale = g_wk.moving;
    gc_collect(g_wk.t);
    g_wk.moved = g_wk.moving != g_wk.stale;
}
static const gc_type_t T_FIN_UNPINS = { "test.fin_unpins", trace_tobj, fin_unpins_and_collects };

static void walk_type_of_stale(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)obj, (void)type, (void)size, (void)ctx;
    if (g_wk.walked) return;
    g_wk.walked = true;
    unsigned long r = rec_count();
    g_wk.walk_type = gc_type_of(g_wk.stale);
    g_wk.walk_reports = rec_count() - r;
}

/* gc_type_of follows a forwarding word when called while tracing, for a
 * trace function of the collection that moved the object; it followed it
 * during any tracer (gc_verify, a heap walk's callback) in a span flagged
 * for the next collection's evacuation (GC_COMPACT_AUTO flags sparse
 * spans between collections): a stale pointer there got the copy's type,
 * unreported (and a freed or reused copy's header after later
 * collections), where outside it is reported and NULL. */
static void test_type_of_stale_from_walk(void **state)
{
    (void)state;
    TEST_START();
    /* (AUTO's plan between collections is what this needs: the mode and
     * policy overrides go; this test runs last in the file) */
    mt_env_ignore("MULCH_GC_COMPACT");
    mt_env_ignore("MULCH_GC_GENERATIONAL");
    mt_env_ignore_policy();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    memset(&g_wk, 0, sizeof g_wk);
    g_wk.h = h;
    g_wk.t = t;
    gc_root_add(h, &g_wk.moving);
    void *fin = mk(t, &T_FIN_UNPINS, 1, 0);
    gc_push_root(t, &fin);
    void *tail = fin;
    gc_push_root(t, &tail);
    for (size_t i = 0; i < CHAIN_OBJECTS; i++) {
        void *o = mk(t, &T_PLAIN, 100 + i, MOVED_WORDS);
        if (i % CHAIN_STRIDE == 0) {
            set_slot(t, tail, 0, o);
            tail = o;
            g_wk.kept[g_wk.kept_count++] = o;
            gc_pin(h, o); /* the first collection moves none of them */
        } else if (i == 1) {
            g_wk.moving = o; /* next to kept[0]: in its span */
        }
    }
    gc_pop_roots(t, 2);
    fin = tail = NULL;
    gc_collect(t); /* fin is found dead; its finalizer collects again */
    if (!g_wk.moved) T_FAIL("the rooted object did not move out of a sparse span in a GC_COMPACT_AUTO heap");
    EXPECT_OBJ(g_wk.moving, 101);
    EXPECT_NO_REPORTS(r0);
    gc_heap_walk(h, walk_type_of_stale, NULL);
    EXPECT_EQ(g_wk.walked, true);
    if (g_wk.walk_type != NULL)
        T_FAIL("gc_type_of(stale pointer) from a heap walk gave %p (the copy is at %p), want NULL",
               (const void *)g_wk.walk_type, g_wk.moving);
    EXPECT_EQ(g_wk.walk_reports, 1);
    EXPECT_ONE_REPORT(r0, "gc_type_of: not a live object (a collection freed it)", g_wk.stale);
    EXPECT_VERIFY(h);
    gc_root_remove(h, &g_wk.moving);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_review_s18_edges");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_root_calls_other_threads_record),
        T(test_root_calls_detached_record),
        T(test_alloc_other_threads_record),
        T(test_alloc_refill_other_threads_record),
        T(test_destroy_weak_made_by_rc_callback),
        T(test_type_of_stale_from_walk), /* last: drops the mode overrides */
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
