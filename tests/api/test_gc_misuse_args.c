/* test_gc_misuse_args.c — bad arguments to the collector's API
 * (<mulch/gc.h>, gc_handle_new / gc_own_rc of <mulch/rc.h>; docs:
 * shared/API.md "Errors and misuse", docs/api.md): a NULL heap or thread,
 * an object a collection has freed, a root slot inside a GC object, option
 * values outside their range. Each is
 * reported once through the error handler and refused; nothing crashes and
 * the heap stays usable. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630b08)
#define MULCH_TEST_GC_OBJECTS 1
#include <math.h>

#include <mulch/gc.h>
#include <mulch/rc.h>

#include "mulch_test.h"

/* `call` makes exactly one report, starting with `prefix` and naming `p`. */
#define ONE_REPORT(call, prefix, p) \
    do { \
        unsigned long b_ = rec_count(); \
        call; \
        EXPECT_ONE_REPORT(b_, prefix, p); \
    } while (0)

static void no_roots(gc_tracer_t *tracer, void *ctx)
{
    (void)tracer;
    (void)ctx;
}

/* ------------------------------------------------------------------------ */
/* NULL heap, NULL thread                                                    */

static void test_null_heap(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    void *slot = NULL;
    int x = 0;
    gc_heap_destroy(NULL); /* documented no-op */
    EXPECT_NULL(gc_thread_current(NULL)); /* "not attached" */
    EXPECT_NO_REPORTS(r0);
    ONE_REPORT(EXPECT_NULL(gc_thread_attach(NULL)), "gc_thread_attach: heap is NULL", NULL);
    ONE_REPORT(gc_heap_set_userdata(NULL, &x), "gc_heap_set_userdata: heap is NULL", NULL);
    ONE_REPORT(EXPECT_NULL(gc_heap_get_userdata(NULL)), "gc_heap_get_userdata: heap is NULL", NULL);
    ONE_REPORT(gc_external_alloc(NULL, 4096), "gc_external_alloc: heap is NULL", NULL);
    ONE_REPORT(gc_root_add(NULL, &slot), "gc_root_add: heap is NULL", NULL);
    ONE_REPORT(gc_root_add_range(NULL, &slot, 1), "gc_root_add_range: heap is NULL", NULL);
    ONE_REPORT(gc_root_remove(NULL, &slot), "gc_root_remove: heap is NULL", NULL);
    ONE_REPORT(gc_root_add_callback(NULL, no_roots, NULL), "gc_root_add_callback: heap is NULL", NULL);
    ONE_REPORT(gc_root_remove_callback(NULL, no_roots, NULL), "gc_root_remove_callback: heap is NULL", NULL);
    ONE_REPORT(gc_pin(NULL, &x), "gc_pin: heap is NULL", NULL);
    ONE_REPORT(gc_unpin(NULL, &x), "gc_unpin: heap is NULL", NULL);
    gc_stats_t st;
    memset(&st, 0xCD, sizeof st);
    ONE_REPORT(gc_get_stats(NULL, &st), "gc_get_stats: heap is NULL", NULL);
    EXPECT_EQ(st.collections, 0);
    EXPECT_EQ(st.heap_bytes, 0);
    /* not "sound": one problem, reported */
    ONE_REPORT(EXPECT_EQ(gc_verify(NULL), 1), "gc_verify: heap is NULL", NULL);
    ONE_REPORT(EXPECT_NULL(gc_handle_new(NULL, NULL)), "gc_handle_new: heap is NULL", NULL);
    FILE *out = fopen("/dev/null", "w");
    EXPECT_NONNULL(out);
    ONE_REPORT(EXPECT_EQ(gc_report_bridge_cycles(NULL, out), 0), "gc_report_bridge_cycles: heap is NULL", NULL);
    fclose(out);
    EXPECT_EQ(rec_count() - r0, 15);

    /* a heap works after all that */
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = mk(t, &T_PLAIN, 1, 2);
    gc_push_root(t, &keep);
    gc_collect(t);
    EXPECT_OBJ(keep, 1);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 15);
}

static void test_null_heap_stats_out(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    unsigned long r0 = rec_count();
    ONE_REPORT(gc_get_stats(h, NULL), "gc_get_stats: out is NULL", h);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 1);
}

/* Functions taking a gc_thread_t that are not inline fast paths (gc_alloc,
 * gc_write, gc_push_root, gc_pop_roots and gc_safepoint do not check). */
static void test_null_thread(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *obj = mk(t, &T_PLAIN, 1, 2);
    gc_push_root(t, &obj);
    unsigned long r0 = rec_count();
    gc_thread_detach(NULL); /* documented no-op */
    EXPECT_NO_REPORTS(r0);
    ONE_REPORT(EXPECT_NULL(gc_weak_new(NULL, NULL)), "gc_weak_new: thread is NULL", NULL);
    ONE_REPORT(EXPECT_NULL(gc_weak_new(NULL, obj)), "gc_weak_new: thread is NULL", NULL);
    ONE_REPORT(EXPECT_EQ(gc_root_depth(NULL), 0), "gc_root_depth: thread is NULL", NULL);
    ONE_REPORT(gc_pop_roots_to(NULL, 0), "gc_pop_roots_to: thread is NULL", NULL);
    ONE_REPORT(gc_collect(NULL), "gc_collect: not a thread attached", NULL);
    ONE_REPORT(gc_enter_blocking(NULL), "gc_enter_blocking: not a thread attached", NULL);
    ONE_REPORT(gc_leave_blocking(NULL), "gc_leave_blocking: not a thread attached", NULL);
    void *rc = rc_alloc(16, NULL);
    EXPECT_NONNULL(rc);
    ONE_REPORT(EXPECT_EQ(gc_own_rc(NULL, obj, rc), -1), "gc_own_rc: thread is NULL", NULL);
    EXPECT_EQ(rc_count(rc), 1);
    rc_release(rc);
    EXPECT_EQ(gc_root_depth(t), 1);
    gc_collect(t);
    EXPECT_OBJ(obj, 1);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 8);
}

/* ------------------------------------------------------------------------ */
/* An object a collection freed                                              */

/* The dead object's cell is free once the collection that found it
 * unreachable ends. Right after it the span is not swept yet (its alloc
 * bits are stale, the mark bits say who survived); gc_verify sweeps every
 * span. Both states refuse the dead object and accept the live neighbour
 * (same type and size: the same span). */
static void dead_object_refused(int generational)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.compaction = GC_COMPACT_NEVER;
    o.generational = generational;
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = mk(t, &T_PLAIN, 1, 2);
    gc_push_root(t, &keep);
    void *dead = mk(t, &T_PLAIN, 2, 2);
    /* the span stays where it is (MULCH_GC_COMPACT=always overrides the
     * option): dead's cell stays a free cell of this heap */
    gc_pin(h, keep);
    void *rc = rc_alloc(16, NULL);
    EXPECT_NONNULL(rc);
    gc_collect(t);
    unsigned long r0 = rec_count();
    for (int swept = 0; swept < 2; swept++) {
        if (swept) EXPECT_VERIFY(h);
        ONE_REPORT(gc_pin(h, dead), "gc_pin: not a live object", dead);
        ONE_REPORT(gc_unpin(h, dead), "gc_unpin: object is not pinned", dead);
        ONE_REPORT(EXPECT_NULL(gc_weak_new(t, dead)), "gc_weak_new: not a live object", dead);
        ONE_REPORT(EXPECT_NULL(gc_handle_new(h, dead)), "gc_handle_new: not a live object", dead);
        ONE_REPORT(EXPECT_EQ(gc_own_rc(t, dead, rc), -1), "gc_own_rc: not a live object", dead);
        EXPECT_EQ(rc_count(rc), 1 + (size_t)swept);
        unsigned long r1 = rec_count();
        gc_pin(h, keep);
        gc_unpin(h, keep);
        void *weak = gc_weak_new(t, keep);
        EXPECT_NONNULL(weak);
        EXPECT_PTR_EQ(gc_weak_get(weak), keep);
        gc_handle_t *handle = gc_handle_new(h, keep);
        EXPECT_NONNULL(handle);
        EXPECT_PTR_EQ(gc_handle_get(handle), keep);
        rc_release(handle);
        EXPECT_EQ(gc_own_rc(t, keep, rc), 0);
        EXPECT_EQ(rc_count(rc), 2 + (size_t)swept);
        EXPECT_NO_REPORTS(r1);
    }
    gc_unpin(h, keep);
    gc_collect(t);
    EXPECT_OBJ(keep, 1);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h); /* releases keep's references */
    EXPECT_EQ(rc_count(rc), 1);
    rc_release(rc);
    EXPECT_NO_REPORTS(r0 + 10);
}

static void test_dead_object_refused(void **state)
{
    (void)state;
    TEST_START();
    dead_object_refused(0);
    dead_object_refused(1);
}

/* ------------------------------------------------------------------------ */
/* Root slots inside GC objects                                              */

static void *g_global_slots[4];

/* A root slot inside a GC object — of another heap as much as of this one —
 * would dangle once the object moves or dies (its own heap's collections
 * know nothing of the root). */
static void test_root_slot_inside_gc_object(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_heap_t *other = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    gc_thread_t *to = gc_thread_attach(other);
    void *mine = mk(t, &T_PLAIN, 1, 2);
    gc_push_root(t, &mine);
    void *foreign = mk(to, &T_PLAIN, 2, 2);
    gc_push_root(to, &foreign);
    void **fslots = ((tobj_t *)foreign)->slot, **mslots = ((tobj_t *)mine)->slot;
    ONE_REPORT(gc_root_add(h, &fslots[1]), "gc_root_add: slot lies inside a GC object", &fslots[1]);
    ONE_REPORT(gc_root_add_range(h, fslots, NSLOTS), "gc_root_add_range: slot lies inside a GC object", fslots);
    ONE_REPORT(gc_root_add(h, &mslots[0]), "gc_root_add: slot lies inside a GC object", &mslots[0]);
    ONE_REPORT(gc_root_add_range(h, mslots, 2), "gc_root_add_range: slot lies inside a GC object", mslots);
    /* a range that starts outside and ends inside one */
    uintptr_t from = (uintptr_t)g_global_slots, to_obj = (uintptr_t)&fslots[2];
    if (to_obj > from) {
        size_t n = (to_obj - from) / sizeof(void *) + 1;
        ONE_REPORT(gc_root_add_range(h, g_global_slots, n), "gc_root_add_range: slot lies inside a GC object",
                   g_global_slots);
    }
    /* past the end of the address space */
    ONE_REPORT(gc_root_add_range(h, g_global_slots, SIZE_MAX / 4), "gc_root_add_range: the range wraps",
               g_global_slots);
    unsigned long r1 = rec_count();
    /* nothing was registered */
    ONE_REPORT(gc_root_remove(h, &fslots[1]), "gc_root_remove: slot is not a registered root", &fslots[1]);
    ONE_REPORT(gc_root_remove(h, fslots), "gc_root_remove: slot is not a registered root", fslots);
    ONE_REPORT(gc_root_remove(h, g_global_slots), "gc_root_remove: slot is not a registered root", g_global_slots);
    /* slots outside GC objects are fine */
    gc_root_add(h, &g_global_slots[0]);
    gc_root_add_range(h, g_global_slots, 4);
    EXPECT_NO_REPORTS(r1 + 3);
    g_global_slots[1] = mine;
    gc_pop_roots(t, 1);
    gc_collect(to); /* foreign may move: its slots were never roots */
    gc_collect(t);
    mine = g_global_slots[1];
    EXPECT_OBJ(mine, 1);
    EXPECT_OBJ(foreign, 2);
    EXPECT_VERIFY(h);
    EXPECT_VERIFY(other);
    gc_root_remove(h, &g_global_slots[0]);
    gc_root_remove(h, g_global_slots);
    g_global_slots[1] = NULL;
    gc_pop_roots(to, 1);
    gc_thread_detach(to);
    gc_thread_detach(t);
    gc_heap_destroy(other);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r1 + 3);
}

/* ------------------------------------------------------------------------ */
/* Option values outside their range                                         */

/* Creates a heap from `o`, which must make exactly `reports` reports (each
 * starting with "gc_heap_create: " and naming `o`), and checks the heap
 * works: an allocation, a collection, a clean verify. */
static void heap_from_options(const gc_options_t *o, unsigned long reports, const char *what)
{
    unsigned long r0 = rec_count();
    gc_heap_t *h = gc_heap_create(o);
    if (h == NULL) T_FAIL("%s: gc_heap_create returned NULL", what);
    unsigned long got = rec_count() - r0;
    if (got != reports) {
        rec_print_since(r0);
        T_FAIL("%s: %lu report(s), expected %lu", what, got, reports);
    }
    if (reports == 1) EXPECT_ONE_REPORT(r0, "gc_heap_create: ", o);
    gc_thread_t *t = gc_thread_attach(h);
    void *obj = NULL;
    gc_push_root(t, &obj);
    obj = mk(t, &T_PLAIN, 1, 2);
    gc_collect(t);
    EXPECT_OBJ(obj, 1);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
    EXPECT_EQ(rec_count() - r0, reports);
}

/* A zero field is the default; a value the field cannot mean (a NaN,
 * negative or <= 1 growth, a compaction outside the enum, a negative marker
 * count) is misuse that gc_heap_create detects: it is reported, then the
 * documented replacement is used (docs/tuning.md "Collector options"). */
static void test_invalid_options_reported(void **state)
{
    (void)state;
    TEST_START();
    gc_options_t o;
    const double bad_growth[] = { (double)NAN, -1.0, 0.5, 1.0, (double)INFINITY, -(double)INFINITY, 1e6 };
    for (size_t i = 0; i < sizeof bad_growth / sizeof bad_growth[0]; i++) {
        memset(&o, 0, sizeof o);
        o.heap_growth = bad_growth[i];
        heap_from_options(&o, 1, "bad heap_growth");
    }
    const int bad_compaction[] = { 3, -1, 1000 };
    for (size_t i = 0; i < sizeof bad_compaction / sizeof bad_compaction[0]; i++) {
        memset(&o, 0, sizeof o);
        o.compaction = bad_compaction[i];
        heap_from_options(&o, 1, "bad compaction");
    }
    memset(&o, 0, sizeof o);
    o.markers = -2;
    heap_from_options(&o, 1, "negative markers");
    memset(&o, 0, sizeof o);
    o.heap_growth = (double)NAN;
    o.compaction = 9;
    o.markers = -1;
    heap_from_options(&o, 3, "three bad fields");

    /* in range: no report */
    const double good_growth[] = { 0.0, 1.01, 2.0, 1000.0 };
    for (size_t i = 0; i < sizeof good_growth / sizeof good_growth[0]; i++) {
        memset(&o, 0, sizeof o);
        o.heap_growth = good_growth[i];
        heap_from_options(&o, 0, "good heap_growth");
    }
    for (int c = GC_COMPACT_AUTO; c <= GC_COMPACT_ALWAYS; c++) {
        memset(&o, 0, sizeof o);
        o.compaction = c;
        heap_from_options(&o, 0, "good compaction");
    }
    memset(&o, 0, sizeof o);
    o.markers = 200;                              /* capped at 64, as documented */
    heap_from_options(&o, 0, "many markers");
    heap_from_options(NULL, 0, "NULL options");
}

int main(void)
{
    mt_init("test_gc_misuse_args");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_null_heap),
        T(test_null_heap_stats_out),
        T(test_null_thread),
        T(test_dead_object_refused),
        T(test_root_slot_inside_gc_object),
        T(test_invalid_options_reported),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
