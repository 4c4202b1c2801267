/* test_gc_review_s21_walk.c — review session 21 (verifier, heap walk,
 * weak references): a stale pointer to a freed headerless cell is
 * reported by gc_type_of and gc_size_of from a gc_heap_walk callback,
 * as docs/api.md (gc_type_of) promises, not taken for a live object of
 * the span's type. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7332315f77616c6b)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <stdbool.h>

#include "mulch_test.h"

/* What the walk callback saw for the holder's stale pointer. */
typedef struct stale_probe {
    void *holder, *stale;
    const gc_type_t *type;
    size_t size;
    bool seen;
    unsigned long reports_before, reports_after;
} stale_probe_t;

static void probe_stale(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)type;
    (void)size;
    stale_probe_t *p = ctx;
    if (obj != p->holder) return;
    p->seen = true;
    p->reports_before = rec_count();
    p->type = gc_type_of(p->stale);
    p->size = gc_size_of(p->stale);
    p->reports_after = rec_count();
}

/* A root callback that gc_verify runs asks for the stale pointer's type
 * (only while `armed`: collections run it too, and there the cell is not
 * judged). */
static void probe_root(gc_tracer_t *tracer, void *ctx)
{
    (void)tracer;
    stale_probe_t *p = ctx;
    if (!p->seen) return;
    p->seen = false;
    p->reports_before = rec_count();
    p->type = gc_type_of(p->stale);
    p->reports_after = rec_count();
}

/* A live headerless object keeps the raw address of another headerless
 * object of its type (not traced: the collection frees it). Outside the
 * walk gc_type_of reports the stale pointer; from the walk's callback,
 * where every span is swept and the world stopped, it gave the span's
 * type (and gc_size_of a size) without a report. */
static void test_walk_reports_freed_headerless_cell(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_NEVER);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(t);
    void *holder = mk(t, &T_PLAIN, 1, 1); /* 64 bytes, no finalizer: headerless */
    gc_push_root(t, &holder);
    gc_pin(h, holder); /* its span stays where it is (MULCH_GC_COMPACT=always) */
    (void)mk_child(t, &holder, 0, &T_PLAIN, 2, 1); /* keeps the typed span */
    tobj_t *doomed = mk(t, &T_PLAIN, 3, 1);
    ((tobj_t *)holder)->words[0] = (uint64_t)(uintptr_t)doomed;
    doomed = NULL;
    gc_collect(t);
    EXPECT_EQ(((tobj_t *)holder)->id, 1); /* (its payload word holds the stale pointer) */
    EXPECT_OBJ(slot_of(holder, 0), 2);
    void *stale = (void *)(uintptr_t)((tobj_t *)holder)->words[0];

    unsigned long r0 = rec_count();
    EXPECT_NULL(gc_type_of(stale)); /* the documented report, outside the walk */
    EXPECT_ONE_REPORT(r0, "gc_type_of: not a live object", stale);

    stale_probe_t probe = { .holder = holder, .stale = stale };
    size_t visited = gc_heap_walk(h, probe_stale, &probe);
    EXPECT_EQ(visited, 2);
    if (!probe.seen) T_FAIL("the walk did not visit the holder");
    if (probe.type != NULL)
        T_FAIL("gc_type_of from a heap-walk callback gave type %s for a freed headerless cell",
               probe.type->name);
    EXPECT_EQ(probe.size, 0);
    EXPECT_EQ(probe.reports_after - probe.reports_before, 2);
    EXPECT_VERIFY(h);

    /* the same from a root callback of gc_verify: one report, NULL (the
     * report is the stale pointer's, not one of gc_verify's problems) */
    probe.type = &T_RAW;
    gc_root_add_callback(h, probe_root, &probe);
    EXPECT_EQ(gc_verify(h), 0);
    EXPECT_EQ(gc_verify_untraced(h), 0);
    gc_root_remove_callback(h, probe_root, &probe);
    if (probe.seen) T_FAIL("gc_verify did not run the root callback");
    if (probe.type != NULL)
        T_FAIL("gc_type_of from a root callback of gc_verify gave a type for a freed headerless cell");
    EXPECT_EQ(probe.reports_after - probe.reports_before, 1);

    gc_unpin(h, holder);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_review_s21_walk");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_walk_reports_freed_headerless_cell),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
