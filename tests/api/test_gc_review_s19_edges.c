/* test_gc_review_s19_edges.c — review session 19 (the collector's API
 * edges: roots, weak references and ephemerons read from a trace
 * function): regressions for bugs found there. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7331395f65646765)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <stdatomic.h>
#include <string.h>

#include "mulch_test.h"

/* An empty range (n 0) was refused when its start was NULL, as a NULL
 * slot ("gc_root_add_range: slot is NULL"), though no collection reads
 * it: a program registering an empty vector's items got a report, and its
 * matching gc_root_remove another. Accepted now, with any start, and
 * removed by gc_root_remove(heap, slots). */
static void test_root_add_range_empty(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = mk(t, &T_PLAIN, 1, 2);
    gc_push_root(t, &keep);
    static void *table[2];
    unsigned long r0 = rec_count();
    gc_root_add_range(h, NULL, 0);
    gc_root_add_range(h, table, 0);
    EXPECT_NO_REPORTS(r0);
    gc_collect(t);
    EXPECT_OBJ(keep, 1);
    EXPECT_VERIFY(h);
    gc_root_remove(h, NULL);
    gc_root_remove(h, table);
    EXPECT_NO_REPORTS(r0);
    /* removed: nothing left to remove */
    gc_root_remove(h, NULL);
    EXPECT_ONE_REPORT(r0, "gc_root_remove: slot is not a registered root", NULL);
    /* a NULL start with slots in the range is still a NULL slot */
    gc_root_add_range(h, NULL, 2);
    EXPECT_ONE_REPORT(r0 + 1, "gc_root_add_range: slot is NULL", NULL);
    gc_collect(t);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 2);
}

/* A root slot whose address is not a multiple of a pointer's alignment
 * (a field of a packed struct, a byte offset into a buffer) was registered
 * unreported, and every collection read it as a pointer: undefined
 * behaviour, and never what the program meant. */
static void test_root_add_misaligned(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    static _Alignas(16) unsigned char buffer[64];
    void **misaligned = (void **)(void *)(buffer + 4);
    unsigned long r0 = rec_count();
    gc_root_add(h, misaligned);
    EXPECT_ONE_REPORT(r0, "gc_root_add: slot is not aligned to a pointer", misaligned);
    gc_root_add_range(h, misaligned, 3);
    EXPECT_ONE_REPORT(r0 + 1, "gc_root_add_range: slot is not aligned to a pointer", misaligned);
    /* neither was registered */
    gc_root_remove(h, misaligned);
    EXPECT_ONE_REPORT(r0 + 2, "gc_root_remove: slot is not a registered root", misaligned);
    gc_collect(t);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0 + 3);
}

/* A trace function that reads a weak reference or an ephemeron (misuse:
 * trace functions only call gc_trace_slot and gc_trace_range) from an
 * object the collection moved already read the old cell, whose contents
 * the copy's may no longer match (an ephemeron's value is rewritten when
 * the collection traces it), and nothing was reported. Now the call is
 * reported, as other mulch calls from a trace function are, and gives
 * NULL. The holder is on the thread's stack, the weak objects in global
 * root slots, which the collection traces (and moves) first. */
typedef struct {
    void *weak, *ephemeron;
} holder_t;

static atomic_int g_getter_calls;
static _Atomic(void *) g_weak_got, g_key_got, g_value_got;

static void trace_misusing_holder(void *obj, gc_tracer_t *tracer)
{
    holder_t *o = obj;
    atomic_fetch_add(&g_getter_calls, 1);
    atomic_store(&g_weak_got, gc_weak_get(o->weak));
    atomic_store(&g_key_got, gc_ephemeron_key(o->ephemeron));
    atomic_store(&g_value_got, gc_ephemeron_value(o->ephemeron));
    gc_trace_slot(tracer, &o->weak);
    gc_trace_slot(tracer, &o->ephemeron);
}

static const gc_type_t T_MISUSING = { "test.misusing_holder", trace_misusing_holder, NULL };

static void *g_weak_root, *g_ephemeron_root, *g_target_root;

static void test_weak_getters_from_trace_function(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(h);
    gc_root_add(h, &g_target_root);
    gc_root_add(h, &g_weak_root);
    gc_root_add(h, &g_ephemeron_root);
    g_target_root = mk(t, &T_PLAIN, 1, 2);
    g_weak_root = gc_weak_new(t, g_target_root);
    EXPECT_NONNULL(g_weak_root);
    g_ephemeron_root = gc_ephemeron_new(t, g_target_root, g_target_root);
    EXPECT_NONNULL(g_ephemeron_root);
    holder_t *holder = gc_alloc(t, &T_MISUSING, sizeof *holder);
    EXPECT_NONNULL(holder);
    gc_push_root(t, (void **)&holder);
    gc_write(t, holder, &holder->weak, g_weak_root);
    gc_write(t, holder, &holder->ephemeron, g_ephemeron_root);
    void *old_weak = g_weak_root, *old_ephemeron = g_ephemeron_root;
    atomic_store(&g_getter_calls, 0);
    unsigned long r0 = rec_count();
    gc_collect(t);
    EXPECT_EQ(atomic_load(&g_getter_calls), 1);
    if (g_weak_root == old_weak || g_ephemeron_root == old_ephemeron) {
        print_message("[note] the weak objects did not move: nothing to check\n");
    } else {
        unsigned long n = rec_count() - r0;
        if (n != 3) {
            rec_print_since(r0);
            T_FAIL("expected 3 reports (gc_weak_get, gc_ephemeron_key, gc_ephemeron_value), got %lu", n);
        }
        char what[256];
        rec_last(what, sizeof what, NULL);
        if (strncmp(what, "gc_ephemeron_value: called from a trace function", 48) != 0)
            T_FAIL("unexpected report: %s", what);
        EXPECT_NULL(atomic_load(&g_weak_got));
        EXPECT_NULL(atomic_load(&g_key_got));
        EXPECT_NULL(atomic_load(&g_value_got));
    }
    unsigned long r1 = rec_count();
    /* outside a collection the getters answer */
    EXPECT_PTR_EQ(gc_weak_get(holder->weak), g_target_root);
    EXPECT_PTR_EQ(gc_ephemeron_value(holder->ephemeron), g_target_root);
    EXPECT_OBJ(g_target_root, 1);
    gc_pop_roots(t, 1);
    gc_root_remove(h, &g_target_root);
    gc_root_remove(h, &g_weak_root);
    gc_root_remove(h, &g_ephemeron_root);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r1);
}

int main(void)
{
    mt_init("test_gc_review_s19_edges");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_root_add_range_empty),
        T(test_root_add_misaligned),
        T(test_weak_getters_from_trace_function),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
