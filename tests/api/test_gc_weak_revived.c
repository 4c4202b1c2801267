/* test_gc_weak_revived.c — black-box tests of weak references that are
 * themselves unreachable except through a finalizable object
 * (<mulch/gc.h>; docs: shared/API.md "GC", "Finalizers", gc_weak_new):
 * the collection that finds the finalizable object dead also finds the weak
 * reference dead, yet the finalizer can still read it. Its target must be
 * cleared when the target died, both then (the finalizer must never see a
 * dead object through it) and later, if the finalizer keeps the weak
 * reference alive (resurrection) and the target dies afterwards.
 *
 * Deterministic: no random choices; the seed is printed as in every test
 * (MULCH_TEST_SEED). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630b03)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include "mulch_test.h"

/* A finalizable object whose slot 0 holds a weak reference: the finalizer
 * reads the weak reference, and in `g_wr_keep` mode stores it into a global
 * root (the weak object then lives on, its target no longer rooted). */
static void *g_wr_kept;            /* global root */
static int g_wr_keep;
static atomic_int g_wr_runs;
static _Atomic(void *) g_wr_seen;  /* what gc_weak_get answered in the finalizer */

static void fin_reads_weak(void *obj)
{
    tobj_t *o = obj;
    void *weak = o->slot[0];
    void *target = gc_weak_get(weak);
    atomic_store(&g_wr_seen, target);
    if (target != NULL) {
        const char *why = obj_problem(target, o->id + 1);
        if (why) AFAIL("finalizer of id %" PRIu64 ": its weak reference gives %p: %s", o->id, target, why);
    }
    if (g_wr_keep) g_wr_kept = weak;
    atomic_fetch_add(&g_wr_runs, 1);
}

static const gc_type_t T_READS_WEAK = { "test.reads_weak", trace_tobj, fin_reads_weak };

/* The finalizable object and the weak reference die in one collection with
 * the weak reference's target: the finalizer must find the weak reference
 * cleared (the target's cell is freed by that collection). */
static void test_weak_dead_with_its_finalizable_holder(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        g_wr_keep = 0;
        atomic_store(&g_wr_runs, 0);
        atomic_store(&g_wr_seen, NULL);
        void *holder = mk(t, &T_READS_WEAK, 10, 1), *target = NULL;
        gc_push_root(t, &holder);
        gc_push_root(t, &target);
        target = mk(t, &T_PLAIN, 11, 2);
        void *weak = gc_weak_new(t, target);
        EXPECT_NONNULL(weak);
        set_slot(t, holder, 0, weak);
        gc_pop_roots(t, 2); /* holder, weak and target all unreachable */
        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_wr_runs), 1);
        EXPECT_PTR_EQ(atomic_load(&g_wr_seen), NULL);
        EXPECT_NO_ASYNC_FAILURES();
        EXPECT_VERIFY(h);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

/* The weak reference dies with its finalizable holder while its target
 * lives; the finalizer keeps the weak reference. When the target dies
 * later, the weak reference must be cleared like any other. */
static void test_weak_revived_by_finalizer_still_cleared(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        g_wr_keep = 1;
        g_wr_kept = NULL;
        gc_root_add(h, &g_wr_kept);
        atomic_store(&g_wr_runs, 0);
        void *holder = mk(t, &T_READS_WEAK, 20, 1), *target = NULL;
        gc_push_root(t, &holder);
        gc_push_root(t, &target);
        target = mk(t, &T_PLAIN, 21, 2);
        void *weak = gc_weak_new(t, target);
        EXPECT_NONNULL(weak);
        set_slot(t, holder, 0, weak);
        holder = NULL; /* the holder and the weak reference die; target is rooted */
        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_wr_runs), 1);
        EXPECT_NONNULL(g_wr_kept);
        EXPECT_PTR_EQ(gc_weak_get(g_wr_kept), target);
        EXPECT_OBJ(target, 21);
        target = NULL; /* now the target dies */
        gc_collect(t);
        EXPECT_PTR_EQ(gc_weak_get(g_wr_kept), NULL);
        /* its cell is reused meanwhile: the weak reference must not see it */
        for (int i = 0; i < 64; i++) (void)mk(t, &T_PLAIN, 22, 2);
        gc_collect(t);
        EXPECT_PTR_EQ(gc_weak_get(g_wr_kept), NULL);
        EXPECT_NO_ASYNC_FAILURES();
        EXPECT_VERIFY(h);
        gc_pop_roots(t, 2);
        gc_root_remove(h, &g_wr_kept);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_weak_revived");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_weak_dead_with_its_finalizable_holder),
        T(test_weak_revived_by_finalizer_still_cleared),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
