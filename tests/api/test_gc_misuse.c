/* test_gc_misuse.c — misuse of the collector's thread and root API
 * (<mulch/gc.h>; docs: shared/API.md "Errors and misuse", docs/api.md) is
 * reported through the error handler and otherwise ignored: no hang, no
 * crash, the heap stays usable.
 *
 * Calls that used to hang run on a helper thread joined with a time limit,
 * so that a regression fails the test instead of stalling it. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630b07)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <sched.h>
#include <stdbool.h>

#include "mulch_test.h"

#define HANG_LIMIT_S 20

static bool finishes(void *(*fn)(void *), void *arg)
{
    return mt_finishes_within(fn, arg, HANG_LIMIT_S);
}

/* ------------------------------------------------------------------------ */
/* Blocking regions                                                          */

static void test_leave_blocking_unbalanced(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    unsigned long r0 = rec_count();
    gc_leave_blocking(t);
    EXPECT_ONE_REPORT(r0, "gc_leave_blocking: not in a blocking region", t);
    /* a region after the misuse still works */
    gc_enter_blocking(t);
    gc_leave_blocking(t);
    gc_collect(t);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 1);
}

static void *collect_once(void *heap)
{
    gc_thread_t *t = gc_thread_attach(heap);
    if (t == NULL) return NULL;
    gc_collect(t);
    gc_thread_detach(t);
    return NULL;
}

/* An inner region's gc_leave_blocking must not end the outer one: the
 * thread, still waiting (here: a join) as the outer region says, would be
 * counted as running and the other thread's collection would wait for it. */
static void test_blocking_regions_nest(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    unsigned long r0 = rec_count();
    gc_enter_blocking(t);
    gc_enter_blocking(t); /* e.g. a helper that brackets its own blocking call */
    gc_leave_blocking(t);
    if (!finishes(collect_once, h)) T_FAIL("another thread's gc_collect waited for a thread in a blocking region");
    gc_leave_blocking(t);
    EXPECT_NO_REPORTS(r0);
    gc_collect(t);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

static gc_thread_t *g_blocked;

static void *collect_while_blocking(void *heap)
{
    gc_thread_t *t = gc_thread_attach(heap);
    if (t == NULL) return NULL;
    g_blocked = t;
    gc_enter_blocking(t);
    gc_collect(t); /* misuse */
    gc_leave_blocking(t);
    gc_collect(t);
    gc_thread_detach(t);
    return NULL;
}

static void test_collect_inside_blocking(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    unsigned long r0 = rec_count();
    if (!finishes(collect_while_blocking, h)) T_FAIL("gc_collect inside a blocking region hung");
    EXPECT_ONE_REPORT(r0, "gc_collect: called inside a blocking region", g_blocked);
    EXPECT_VERIFY(h);
    gc_heap_destroy(h);
}

static void test_alloc_inside_blocking(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    unsigned long r0 = rec_count();
    gc_enter_blocking(t);
    /* a large object: always the slow path, where the check is */
    void *big = gc_alloc(t, &T_RAW, 512 * KiB);
    EXPECT_NULL(big);
    EXPECT_ONE_REPORT(r0, "gc_alloc: called inside a blocking region", t);
    void *weak = gc_weak_new(t, NULL);
    EXPECT_NULL(weak);
    EXPECT_ONE_REPORT(r0 + 1, "gc_weak_new: called inside a blocking region", t);
    gc_leave_blocking(t);
    big = gc_alloc(t, &T_RAW, 512 * KiB);
    EXPECT_NONNULL(big);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 2);
}

/* ------------------------------------------------------------------------ */
/* Calls from inside a collection                                            */

/* A root callback and a trace function that break the rule "only
 * gc_trace_slot and gc_trace_range": each call waited for ever on the
 * heap's lock, which the collecting thread holds; now each is reported
 * and does nothing. */
typedef struct {
    gc_heap_t   *heap;
    gc_thread_t *thread;
    void        *allocated;    /* what the misbehaving callback got */
    int          calls;
} inside_t;

static void misbehaving_roots(gc_tracer_t *tracer, void *ctx)
{
    (void)tracer;
    inside_t *in = ctx;
    if (in->calls++ > 0) return;
    in->allocated = gc_alloc(in->thread, &T_RAW, 64);
    gc_collect(in->thread);
    gc_root_add(in->heap, &in->allocated);
    gc_safepoint(in->thread);
}

static void *collect_with_misbehaving_roots(void *arg)
{
    inside_t *in = arg;
    in->thread = gc_thread_attach(in->heap);
    gc_root_add_callback(in->heap, misbehaving_roots, in);
    gc_collect(in->thread);
    gc_root_remove_callback(in->heap, misbehaving_roots, in);
    /* the heap is usable afterwards */
    void *again = gc_alloc(in->thread, &T_RAW, 64);
    if (again == NULL) in->calls = -1;
    gc_collect(in->thread);
    gc_thread_detach(in->thread);
    return NULL;
}

static void test_calls_from_inside_a_collection(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    unsigned long r0 = rec_count();
    inside_t in = { .heap = h };
    if (!finishes(collect_with_misbehaving_roots, &in))
        T_FAIL("a mulch call from a root callback hung the collection");
    EXPECT_EQ(in.calls, 1);
    EXPECT_NULL(in.allocated);
    unsigned long n = rec_count() - r0;
    if (n != 4) {
        rec_print_since(r0);
        T_FAIL("expected 4 reports (gc_alloc, gc_collect, gc_root_add, gc_safepoint), got %lu", n);
    }
    char what[256];
    rec_last(what, sizeof what, NULL);
    if (strstr(what, "called from a trace function, root callback, heap-walk callback, collection callback or error handler during a collection") == NULL)
        T_FAIL("unexpected report: %s", what);
    EXPECT_VERIFY(h);
    gc_heap_destroy(h);
}

/* ------------------------------------------------------------------------ */
/* Detaching                                                                 */

static void test_detach_twice(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    unsigned long r0 = rec_count();
    gc_thread_detach(t);
    EXPECT_NO_REPORTS(r0);
    gc_thread_detach(t); /* t is gone: reported, not read */
    EXPECT_ONE_REPORT(r0, "gc_thread_detach: not a thread attached by the calling thread", t);
    gc_collect(t);
    EXPECT_ONE_REPORT(r0 + 1, "gc_collect: not a thread attached by the calling thread", t);
    EXPECT_NULL(gc_weak_new(t, NULL)); /* read the unmapped record before */
    EXPECT_ONE_REPORT(r0 + 2, "gc_weak_new: not a thread attached by the calling thread", t);
    t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    gc_collect(t);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 3);
}

static gc_thread_t *g_foreign;

static void *use_foreign_thread(void *unused)
{
    (void)unused;
    gc_thread_detach(g_foreign);
    gc_collect(g_foreign);
    gc_enter_blocking(g_foreign);
    gc_leave_blocking(g_foreign);
    /* pushed on the owner's weak list, unsynchronised, before */
    if (gc_weak_new(g_foreign, NULL) != NULL) T_FAIL("gc_weak_new took another thread's record");
    return NULL;
}

/* Another thread's record: its owner goes on using it. */
static void test_detach_other_threads_record(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    g_foreign = t;
    void *keep = mk(t, &T_PLAIN, 1, 2);
    gc_push_root(t, &keep);
    unsigned long r0 = rec_count();
    gc_enter_blocking(t); /* the helper may stop the world meanwhile */
    if (!finishes(use_foreign_thread, NULL)) T_FAIL("calls with another thread's gc_thread_t hung");
    gc_leave_blocking(t);
    EXPECT_EQ(rec_count() - r0, 5);
    EXPECT_PTR_EQ(gc_thread_current(h), t);
    gc_collect(t);
    EXPECT_OBJ(keep, 1);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 5);
}

static gc_heap_t *g_fin_heap;
static atomic_int g_fin_detached;

static void fin_detach(void *obj)
{
    (void)obj;
    gc_thread_t *self = gc_thread_current(g_fin_heap);
    gc_thread_detach(self); /* must not: reported, ignored */
    atomic_store(&g_fin_detached, gc_thread_current(g_fin_heap) != self);
}

static const gc_type_t T_FIN_DETACH = { "test.fin_detach", NULL, fin_detach };

static void test_detach_inside_finalizer(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    g_fin_heap = h;
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(gc_alloc(t, &T_FIN_DETACH, 16));
    unsigned long r0 = rec_count();
    gc_collect(t);
    EXPECT_ONE_REPORT(r0, "gc_thread_detach: called inside a finalizer", t);
    EXPECT_EQ(atomic_load(&g_fin_detached), 0);
    EXPECT_PTR_EQ(gc_thread_current(h), t);
    EXPECT_EQ(stats_of(h).objects_finalized, 1);
    gc_collect(t);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 1);
}

/* ------------------------------------------------------------------------ */
/* gc_heap_destroy misuse: refused before anything changed                   */

static atomic_int g_worker_go;

static void *attached_worker(void *heap)
{
    gc_thread_t *t = gc_thread_attach(heap);
    if (t == NULL) return NULL;
    atomic_store(&g_worker_go, 1);
    gc_enter_blocking(t);
    while (atomic_load(&g_worker_go) != 2) sched_yield();
    gc_leave_blocking(t);
    gc_thread_detach(t);
    return NULL;
}

static void test_destroy_with_other_thread_attached(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *obj = mk(t, &T_FIN, 1, 2), *weak = NULL;
    gc_push_root(t, &obj);
    weak = gc_weak_new(t, obj);
    gc_push_root(t, &weak);
    atomic_store(&g_worker_go, 0);
    pthread_t th;
    EXPECT_EQ(pthread_create(&th, NULL, attached_worker, h), 0);
    while (atomic_load(&g_worker_go) != 1) sched_yield();

    unsigned long r0 = rec_count();
    gc_heap_destroy(h); /* refused: nothing may change */
    EXPECT_ONE_REPORT(r0, "gc_heap_destroy: other threads are still attached", h);
    EXPECT_FIN(1, 0);
    EXPECT_PTR_EQ(gc_weak_get(weak), obj);
    EXPECT_PTR_EQ(gc_thread_current(h), t);
    gc_collect(t);
    EXPECT_OBJ(obj, 1);
    EXPECT_VERIFY(h);

    gc_enter_blocking(t);
    atomic_store(&g_worker_go, 2);
    EXPECT_EQ(pthread_join(th, NULL), 0);
    gc_leave_blocking(t);
    gc_pop_roots(t, 2);
    gc_heap_destroy(h);
    EXPECT_FIN(1, 1);
    EXPECT_NO_REPORTS(r0 + 1);
    EXPECT_NO_ASYNC_FAILURES();
}

static atomic_int g_destroy_tried;

static void fin_destroy(void *obj)
{
    (void)obj;
    gc_heap_destroy(g_fin_heap); /* must not: reported, ignored */
    atomic_fetch_add(&g_destroy_tried, 1);
}

static const gc_type_t T_FIN_DESTROY = { "test.fin_destroy", NULL, fin_destroy };

static void test_destroy_inside_finalizer(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    g_fin_heap = h;
    atomic_store(&g_destroy_tried, 0);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(gc_alloc(t, &T_FIN_DESTROY, 16));
    unsigned long r0 = rec_count();
    gc_collect(t);
    EXPECT_EQ(atomic_load(&g_destroy_tried), 1);
    EXPECT_ONE_REPORT(r0, "gc_heap_destroy: called inside a finalizer", h);
    EXPECT_PTR_EQ(gc_thread_current(h), t);
    void *after = mk(t, &T_PLAIN, 2, 1);
    gc_push_root(t, &after);
    gc_collect(t);
    EXPECT_OBJ(after, 2);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 1);
}

/* ------------------------------------------------------------------------ */
/* Roots                                                                     */

static void test_push_null_root(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    unsigned long r0 = rec_count();
    gc_push_root(t, NULL);   /* the inline path */
    EXPECT_ONE_REPORT(r0, "gc_push_root: slot is NULL", t);
    (gc_push_root)(t, NULL); /* the library function */
    EXPECT_ONE_REPORT(r0 + 1, "gc_push_root: slot is NULL", t);
    EXPECT_EQ(gc_root_depth(t), 0);
    void *keep = mk(t, &T_PLAIN, 1, 1);
    gc_push_root(t, &keep);
    gc_collect(t); /* read through the NULL slot before */
    EXPECT_OBJ(keep, 1);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 2);
}

/* ------------------------------------------------------------------------ */
/* Object queries                                                            */

static void fin_nothing(void *obj) { (void)obj; }
static const gc_type_t T_FIN_NOP = { "test.fin_nop", NULL, fin_nothing }; /* keeps its header */

static void test_size_of_interior_pointer(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    const size_t sizes[] = { 64, 200, 4 * KiB, 300 * KiB }; /* headerless, headed, medium, large */
    const gc_type_t *types[] = { &T_RAW, &T_FIN_NOP, &T_RAW, &T_RAW };
    unsigned long r0 = rec_count();
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        char *obj = gc_alloc(t, types[k], sizes[k]);
        EXPECT_NONNULL(obj);
        EXPECT_GE(gc_size_of(obj), sizes[k]);
        EXPECT_NO_REPORTS(r0);
        EXPECT_EQ(gc_size_of(obj + 8), 0);
        EXPECT_ONE_REPORT(r0, "gc_size_of: not a GC object", obj + 8);
        r0 = rec_count();
    }
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* gc_verify                                                                 */

#define BAD_SLOTS 12
static uint64_t g_not_objects[BAD_SLOTS]; /* 8-byte aligned, no GC heap's */
static void *g_bad_slots[BAD_SLOTS];

static void bad_roots(gc_tracer_t *tracer, void *ctx)
{
    (void)ctx;
    gc_trace_range(tracer, g_bad_slots, BAD_SLOTS);
}

/* "reports each problem through the error handler and returns their
 * count": no cap on the reports (a collection caps its own at 8). */
static void test_verify_reports_every_problem(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    for (size_t i = 0; i < BAD_SLOTS; i++) g_bad_slots[i] = &g_not_objects[i];
    gc_root_add_callback(h, bad_roots, NULL);
    unsigned long r0 = rec_count();
    size_t problems = gc_verify(h);
    EXPECT_EQ(problems, BAD_SLOTS);
    EXPECT_EQ(rec_count() - r0, problems);
    gc_root_remove_callback(h, bad_roots, NULL);
    EXPECT_EQ(gc_verify(h), 0);
    EXPECT_EQ(gc_verify_untraced(h), 0);
    gc_heap_destroy(h);
    EXPECT_EQ(rec_count() - r0, problems);
}

/* A collection reports at most 8 bad slots in all, however many markers
 * find them: a binary tree of nodes, each with one field that is no GC
 * object, marked by two markers (each once had its own cap of 8). */
typedef struct bad_node {
    void *left, *right, *bad;
} bad_node_t;

static void bad_node_trace(void *obj, gc_tracer_t *tracer)
{
    gc_trace_range(tracer, (void **)obj, 3);
}

static const gc_type_t T_BAD_NODE = { "test.misuse.bad_node", bad_node_trace, NULL };

static bad_node_t *bad_tree(gc_thread_t *t, int depth)
{
    bad_node_t *node = gc_alloc(t, &T_BAD_NODE, sizeof *node);
    EXPECT_NONNULL(node);
    if (depth == 0) return node;
    gc_push_root(t, (void **)&node);
    bad_node_t *child = bad_tree(t, depth - 1);
    gc_write(t, node, &node->left, child);
    child = bad_tree(t, depth - 1);
    gc_write(t, node, &node->right, child);
    gc_pop_roots(t, 1);
    return node;
}

static void bad_tree_poison(bad_node_t *node, size_t *count)
{
    if (node == NULL) return;
    node->bad = &g_not_objects[*count % BAD_SLOTS];
    ++*count;
    bad_tree_poison(node->left, count);
    bad_tree_poison(node->right, count);
}

static void test_collection_caps_reports_across_markers(void **state)
{
    (void)state;
    TEST_START();
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.markers = 2;
    o.compaction = GC_COMPACT_NEVER;
    o.initial_heap = (size_t)64 << 20; /* no collection while building */
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    bad_node_t *root = bad_tree(t, 14);
    gc_push_root(t, (void **)&root);
    size_t poisoned = 0;
    bad_tree_poison(root, &poisoned);
    unsigned long r0 = rec_count();
    for (int round = 0; round < 4; round++) {
        unsigned long before = rec_count();
        gc_collect(t);
        EXPECT_EQ(rec_count() - before, 8);
    }
    EXPECT_EQ(poisoned, ((size_t)1 << 15) - 1);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_EQ(rec_count() - r0, 4 * 8);
}

int main(void)
{
    mt_init("test_gc_misuse");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_leave_blocking_unbalanced),
        T(test_blocking_regions_nest),
        T(test_collect_inside_blocking),
        T(test_alloc_inside_blocking),
        T(test_calls_from_inside_a_collection),
        T(test_detach_twice),
        T(test_detach_other_threads_record),
        T(test_detach_inside_finalizer),
        T(test_destroy_with_other_thread_attached),
        T(test_destroy_inside_finalizer),
        T(test_push_null_root),
        T(test_size_of_interior_pointer),
        T(test_verify_reports_every_problem),
        T(test_collection_caps_reports_across_markers),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
