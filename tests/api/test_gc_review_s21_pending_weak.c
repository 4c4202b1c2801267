/* test_gc_review_s21_pending_weak.c — black-box tests of weak references
 * and ephemerons made to an object whose finalizer is pending or running
 * (<mulch/gc.h>; docs/gc.md "Finalizers", "Weak references"): weak
 * references to an object are cleared before its finalizer runs, so one
 * made after the collection found it dead (by another finalizer of the
 * same batch that reaches it, or by its own finalizer) reads NULL from the
 * start, and an ephemeron keyed by it reads NULL key and value.
 *
 * Deterministic: no random choices; the seed is printed as in every test
 * (MULCH_TEST_SEED). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367631521)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include "mulch_test.h"

enum { PAIRS = 8 };

static gc_thread_t *g_pw_thread;
/* global roots: per id, the weak reference and ephemeron that the partner's
 * finalizer made to it, and the one its own finalizer made to itself */
static void *g_pw_weak[2 * PAIRS], *g_pw_eph[2 * PAIRS], *g_pw_self[2 * PAIRS];
static atomic_int g_pw_runs;

/* Object id 2k and 2k+1 point to each other (slot 0). Each finalizer
 * first checks what was made to its own object, then makes a weak
 * reference and an ephemeron to its partner when the partner's finalizer
 * has not run, and one to itself. */
static void fin_pair(void *obj)
{
    tobj_t *o = obj;
    size_t id = (size_t)o->id, other = id ^ 1u;
    if (g_pw_weak[id] != NULL && gc_weak_get(g_pw_weak[id]) != NULL)
        AFAIL("id %zu: the weak reference its partner's finalizer made still gives %p in its own finalizer", id,
              gc_weak_get(g_pw_weak[id]));
    if (g_pw_eph[id] != NULL && (gc_ephemeron_key(g_pw_eph[id]) != NULL || gc_ephemeron_value(g_pw_eph[id]) != NULL))
        AFAIL("id %zu: the ephemeron its partner's finalizer made still has key %p in its own finalizer", id,
              gc_ephemeron_key(g_pw_eph[id]));
    void *partner = o->slot[0];
    if (fin_of(other) == 0 && partner != NULL) {
        void *w = gc_weak_new(g_pw_thread, partner);
        /* (gc_weak_new is a GC point: reread the partner from obj, which
         * stays put while its finalizer runs) */
        partner = ((tobj_t *)obj)->slot[0];
        void *e = gc_ephemeron_new(g_pw_thread, partner, partner);
        if (w == NULL || e == NULL) AFAIL("id %zu: gc_weak_new or gc_ephemeron_new gave NULL", id);
        g_pw_weak[other] = w;
        g_pw_eph[other] = e;
        if (w != NULL && gc_weak_get(w) != NULL)
            AFAIL("id %zu: a weak reference made to its partner, whose finalizer is pending, gives %p", id,
                  gc_weak_get(w));
    }
    void *self = gc_weak_new(g_pw_thread, obj);
    g_pw_self[id] = self;
    if (self != NULL && gc_weak_get(self) != NULL)
        AFAIL("id %zu: a weak reference made to its own object in its finalizer gives %p", id, gc_weak_get(self));
    fin_tobj(obj);
    atomic_fetch_add(&g_pw_runs, 1);
}

static const gc_type_t T_PAIR = { "test.pending_weak_pair", trace_tobj, fin_pair };

static void test_weak_made_to_pending_object(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        atomic_store(&g_pw_runs, 0);
        memset(g_pw_weak, 0, sizeof g_pw_weak);
        memset(g_pw_eph, 0, sizeof g_pw_eph);
        memset(g_pw_self, 0, sizeof g_pw_self);
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        g_pw_thread = t;
        gc_root_add_range(h, g_pw_weak, 2 * PAIRS);
        gc_root_add_range(h, g_pw_eph, 2 * PAIRS);
        gc_root_add_range(h, g_pw_self, 2 * PAIRS);
        void *a = NULL, *b = NULL;
        gc_push_root(t, &a);
        gc_push_root(t, &b);
        for (uint64_t k = 0; k < PAIRS; k++) {
            a = mk(t, &T_PAIR, 2 * k, 1);
            b = mk(t, &T_PAIR, 2 * k + 1, 1);
            set_slot(t, a, 0, b);
            set_slot(t, b, 0, a);
        }
        a = b = NULL;
        gc_collect(t); /* returns after their finalizers */
        EXPECT_EQ(atomic_load(&g_pw_runs), 2 * PAIRS);
        for (uint64_t id = 0; id < 2 * PAIRS; id++) EXPECT_FIN(id, 1);
        for (size_t i = 0; i < 2 * PAIRS; i++) {
            if (g_pw_weak[i]) EXPECT_NULL(gc_weak_get(g_pw_weak[i]));
            if (g_pw_self[i]) EXPECT_NULL(gc_weak_get(g_pw_self[i]));
        }
        gc_collect(t);
        for (size_t i = 0; i < 2 * PAIRS; i++) {
            if (g_pw_weak[i]) EXPECT_NULL(gc_weak_get(g_pw_weak[i]));
            if (g_pw_eph[i]) EXPECT_NULL(gc_ephemeron_key(g_pw_eph[i]));
            if (g_pw_eph[i]) EXPECT_NULL(gc_ephemeron_value(g_pw_eph[i]));
        }
        EXPECT_NO_ASYNC_FAILURES();
        EXPECT_VERIFY(h);
        gc_pop_roots(t, 2);
        gc_root_remove(h, g_pw_weak);
        gc_root_remove(h, g_pw_eph);
        gc_root_remove(h, g_pw_self);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

/* Once its finalizer has returned (resurrected), a weak reference to the
 * object is an ordinary one again. */
static void *g_pw_revived;
static void fin_revive(void *obj)
{
    g_pw_revived = obj;
    fin_tobj(obj);
}
static const gc_type_t T_REVIVE = { "test.pending_weak_revive", trace_tobj, fin_revive };

static void test_weak_after_finalizer_is_ordinary(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    fin_reset();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    g_pw_revived = NULL;
    gc_root_add(h, &g_pw_revived);
    (void)mk(t, &T_REVIVE, 40, 1);
    gc_collect(t);
    EXPECT_FIN(40, 1);
    EXPECT_NONNULL(g_pw_revived);
    void *w = gc_weak_new(t, g_pw_revived);
    EXPECT_PTR_EQ(gc_weak_get(w), g_pw_revived);
    EXPECT_OBJ(g_pw_revived, 40);
    gc_root_remove(h, &g_pw_revived);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_review_s21_pending_weak");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_weak_made_to_pending_object),
        T(test_weak_after_finalizer_is_ordinary),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
