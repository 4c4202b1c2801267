/* test_gc_review_s20_collector.c — review session 20 (the collector's
 * leftovers: headerless cells an object moved out of, reports naming the
 * pointer passed): regressions for bugs found there. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7332305f67636f6c)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <stdbool.h>

#include "mulch_test.h"

/* ---- gc_type_of / gc_size_of on a headerless cell an object moved out of -- */

/* 2 words: a small headerless (typed class) cell, no header to hold the
 * forwarding word. */
#define SMALL_WORDS 2

static struct {
    gc_thread_t *t;
    void *moving, *stale;
    const gc_type_t *type;
    size_t size;
    unsigned long type_reports, size_reports;
    bool moved;
} g_hl;

/* While its object is pending, the collection it makes marks `kept` (its
 * field) in place: their span stays while `moving` moves out of it. */
static void fin_collects(void *obj)
{
    (void)obj;
    g_hl.stale = g_hl.moving;
    gc_collect(g_hl.t);
    g_hl.moved = g_hl.moving != g_hl.stale;
    unsigned long r = rec_count();
    g_hl.type = gc_type_of(g_hl.stale);
    g_hl.type_reports = rec_count() - r;
    r = rec_count();
    g_hl.size = gc_size_of(g_hl.stale);
    g_hl.size_reports = rec_count() - r;
}
static const gc_type_t T_FIN_COLLECTS = { "test.fin_collects", trace_tobj, fin_collects };

/* gc_type_of gave the span's type, and gc_size_of the cell's size,
 * unreported, for a stale pointer into a headerless span that a
 * collection moved the object out of (api.md: reported, NULL / 0). */
static void test_headerless_moved_out_cell(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(h);
    memset(&g_hl, 0, sizeof g_hl);
    g_hl.t = t;
    gc_root_add(h, &g_hl.moving);
    void *kept = mk(t, &T_PLAIN, 1, SMALL_WORDS);
    gc_push_root(t, &kept);
    g_hl.moving = mk(t, &T_PLAIN, 2, SMALL_WORDS);
    void *fin = mk(t, &T_FIN_COLLECTS, 3, 0);
    set_slot(t, fin, 0, kept);
    gc_pop_roots(t, 1);
    fin = kept = NULL;
    gc_collect(t); /* fin is found dead; its finalizer collects again */
    if (!g_hl.moved) T_FAIL("the rooted object did not move in a GC_COMPACT_ALWAYS heap");
    EXPECT_OBJ(g_hl.moving, 2);
    if (g_hl.type != NULL || g_hl.type_reports != 1)
        T_FAIL("gc_type_of(stale headerless pointer) gave %p with %lu reports, want NULL and 1",
               (const void *)g_hl.type, g_hl.type_reports);
    if (g_hl.size != 0 || g_hl.size_reports != 1)
        T_FAIL("gc_size_of(stale headerless pointer) gave %zu with %lu reports, want 0 and 1", g_hl.size,
               g_hl.size_reports);
    EXPECT_EQ(rec_count() - r0, 2);
    unsigned long r1 = rec_count();
    EXPECT_PTR_EQ(gc_type_of(g_hl.moving), &T_PLAIN);
    EXPECT_GE(gc_size_of(g_hl.moving), tobj_size(SMALL_WORDS));
    EXPECT_NO_REPORTS(r1);
    gc_root_remove(h, &g_hl.moving);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_review_s20_collector");
    mt_env_ignore("MULCH_GC_COMPACT");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_headerless_moved_out_cell),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
