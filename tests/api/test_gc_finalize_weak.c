/* test_gc_finalize_weak.c — black-box tests of finalization, weak references
 * and pinning (<mulch/gc.h>; docs: shared/API.md "GC", "Finalizers"):
 * each unreachable finalizable object is finalized exactly once; gc_collect
 * returns after the finalizers its collection made pending ran (also when
 * another mutator runs them); finalizers run on an attached thread, never
 * nested; a finalizer may resurrect its object (never finalized again), may
 * allocate and collect; weak references are kept while the target lives and
 * cleared before its finalizer runs; gc_heap_destroy runs every finalizer not
 * yet run exactly once; pins nest.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. MULCH_TEST_QUICK=1
 * (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630b02)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include "mulch_test.h"

/* The heap finalizers may look at (gc_thread_current) and per-thread nesting. */
static gc_heap_t *g_heap;
static _Thread_local int tl_in_finalizer;
static atomic_int g_expect_attached;      /* finalizers must see an attached thread */
static atomic_ulong g_fin_unattached;

static void fin_enter(void)
{
    if (tl_in_finalizer++ != 0) AFAIL("a finalizer started inside another finalizer (nested)");
    if (atomic_load(&g_expect_attached) && g_heap && gc_thread_current(g_heap) == NULL)
        atomic_fetch_add(&g_fin_unattached, 1);
}

static void fin_leave(void) { tl_in_finalizer--; }

static void fin_checked(void *obj)
{
    fin_enter();
    fin_tobj(obj);
    fin_leave();
}

static const gc_type_t T_CFIN = { "test.checked_fin", trace_tobj, fin_checked };

static void heap_begin(gc_heap_t *h)
{
    g_heap = h;
    atomic_store(&g_expect_attached, 1);
    atomic_store(&g_fin_unattached, 0);
}

static void heap_end(gc_heap_t *h, gc_thread_t *t)
{
    atomic_store(&g_expect_attached, 0);
    if (atomic_load(&g_fin_unattached) != 0)
        T_FAIL("%lu finalizer run(s) on a thread not attached to the heap",
               atomic_load(&g_fin_unattached));
    if (t) gc_thread_detach(t);
    gc_heap_destroy(h);
    g_heap = NULL;
}

/* ------------------------------------------------------------------------ */
/* Exactly once                                                              */

static void test_gc_finalize_exactly_once(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(256 * KiB, 0, k_modes[m]);
        heap_begin(h);
        gc_thread_t *t = gc_thread_attach(h);
        const size_t n = scaled(3000, 600);
        void **objs = calloc(n, sizeof *objs);
        unsigned char *dropped = calloc(n, 1);
        EXPECT_NONNULL(objs);
        EXPECT_NONNULL(dropped);
        gc_root_add_range(h, objs, n);
        uint64_t garbage_id = n;          /* ids n..: never rooted */
        for (size_t i = 0; i < n; i++) {
            objs[i] = mk(t, &T_CFIN, i, (size_t)rng_below(&r, 12));
            if (i > 0 && rng_below(&r, 3) == 0)            /* some links between them */
                set_slot(t, objs[i], 0, objs[(size_t)rng_below(&r, i)]);
            if (rng_below(&r, 8) == 0) (void)mk(t, &T_CFIN, garbage_id++, 1);
        }
        size_t ndropped = 0;
        const int rounds = 10;
        for (int round = 0; round < rounds; round++) {
            /* Drop a random tenth (everything in the last round). */
            for (size_t i = 0; i < n; i++)
                if (!dropped[i] && (round == rounds - 1 || rng_below(&r, 10) == 0)) {
                    dropped[i] = 1;
                    ndropped++;
                    objs[i] = NULL;
                }
            /* Which dropped ones are still reachable through links from kept
             * ones? Compute the expected set: id reachable iff kept, or linked
             * (transitively) from a kept object. */
            unsigned char *reach = calloc(n, 1);
            EXPECT_NONNULL(reach);
            for (size_t i = 0; i < n; i++) {
                for (void *p = objs[i]; p; p = slot_of(p, 0)) {
                    uint64_t id = ((tobj_t *)p)->id;
                    if (reach[id]) break;
                    reach[id] = 1;
                }
            }
            gc_collect(t);
            size_t nfin = 0;
            for (size_t i = 0; i < n; i++) {
                EXPECT_FIN(i, reach[i] ? 0 : 1);
                nfin += !reach[i];
                if (objs[i]) EXPECT_OBJ(objs[i], i);
            }
            for (uint64_t g = n; g < garbage_id && g < MAX_IDS; g++) EXPECT_FIN(g, 1);
            gc_stats_t s = stats_of(h);
            EXPECT_EQ(s.objects_finalized, atomic_load(&g_fin_total));
            EXPECT_EQ(atomic_load(&g_fin_total), nfin + (garbage_id - n));
            free(reach);
        }
        EXPECT_EQ(ndropped, n);
        /* More collections finalize nothing more. */
        gc_collect(t);
        gc_collect(t);
        for (size_t i = 0; i < n; i++) EXPECT_FIN(i, 1);
        EXPECT_EQ(atomic_load(&g_fin_total), garbage_id);
        EXPECT_VERIFY(h);
        gc_root_remove(h, objs);
        EXPECT_NO_ASYNC_FAILURES();
        heap_end(h, t);
        EXPECT_EQ(atomic_load(&g_fin_total), garbage_id);   /* destroy: nothing left to run */
        free(objs);
        free(dropped);
        EXPECT_NO_REPORTS(r0);
    }
}

/* ------------------------------------------------------------------------ */
/* gc_collect waits for the finalizers its collection made pending, also when */
/* another mutator is the one to run them.                                   */

static atomic_int g_helper_stop;

static void *safepoint_spinner(void *arg)
{
    /* Only safepoints: this thread never starts a collection itself, but it
     * may be the one that runs the main thread's finalizers. */
    gc_thread_t *t = gc_thread_attach(arg);
    while (!atomic_load(&g_helper_stop)) gc_safepoint(t);
    gc_thread_detach(t);
    return NULL;
}

static void test_gc_collect_waits_for_finalizers(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    heap_begin(h);
    gc_thread_t *t = gc_thread_attach(h);
    atomic_store(&g_helper_stop, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) EXPECT_EQ(pthread_create(&th[i], NULL, safepoint_spinner, h), 0);
    const int rounds = (int)scaled(40, 10);
    uint64_t id = 0;
    void *batch[50];
    for (int round = 0; round < rounds; round++) {
        void *keep = NULL;
        gc_push_root(t, &keep);
        keep = mk(t, &T_CFIN, MAX_IDS + 1, 0);            /* dies next round */
        /* The batch stays rooted while it is allocated, so that only the
         * gc_collect below can find it dead. */
        memset(batch, 0, sizeof batch);
        gc_root_add_range(h, batch, 50);
        uint64_t first = id;
        for (int k = 0; k < 50; k++) {
            batch[k] = mk(t, &T_CFIN, id++, (size_t)k % 4);
            if (k < NSLOTS) set_slot(t, keep, (size_t)k, batch[k]);   /* 4 stay alive */
        }
        gc_root_remove(h, batch);                          /* no GC point until gc_collect */
        unsigned long before = atomic_load(&g_fin_total);
        gc_collect(t);
        unsigned long got = atomic_load(&g_fin_total) - before;
        size_t done = 0;
        for (uint64_t i = first; i < id; i++) done += fin_of(i);
        if (done != 50 - NSLOTS)
            T_FAIL("round %d: %zu of this round's %d dead objects finalized when gc_collect "
                   "returned (%lu finalizer runs during the call)", round, done, 50 - NSLOTS, got);
        for (int k = 0; k < NSLOTS; k++) EXPECT_FIN(first + (uint64_t)k, 0);
        gc_pop_roots(t, 1);
    }
    atomic_store(&g_helper_stop, 1);
    gc_enter_blocking(t);
    for (int i = 0; i < 2; i++) EXPECT_EQ(pthread_join(th[i], NULL), 0);
    gc_leave_blocking(t);
    gc_collect(t);
    EXPECT_EQ(atomic_load(&g_fin_total), id + (uint64_t)rounds); /* the keeps too, now */
    EXPECT_VERIFY(h);
    EXPECT_NO_ASYNC_FAILURES();
    heap_end(h, t);
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* Resurrection                                                              */

static void *g_res_slot;             /* a global root the finalizer stores into */
static void *g_res_weak;             /* root: weak ref to the object */
static atomic_int g_res_runs;
static atomic_int g_res_weak_seen;   /* 1: the weak was already cleared in the finalizer */

static void fin_resurrect(void *obj)
{
    fin_enter();
    fin_tobj(obj);
    atomic_fetch_add(&g_res_runs, 1);
    atomic_store(&g_res_weak_seen, g_res_weak && gc_weak_get(g_res_weak) == NULL ? 1 : 2);
    g_res_slot = obj;                 /* resurrect */
    fin_leave();
}

static const gc_type_t T_RES = { "test.resurrect", trace_tobj, fin_resurrect };

static void test_gc_finalizer_resurrects(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        atomic_store(&g_res_runs, 0);
        atomic_store(&g_res_weak_seen, 0);
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        heap_begin(h);
        gc_thread_t *t = gc_thread_attach(h);
        g_res_slot = NULL;
        g_res_weak = NULL;
        void *w2 = NULL;
        gc_root_add(h, &g_res_slot);
        gc_root_add(h, &g_res_weak);
        gc_root_add(h, &w2);
        void *x = NULL;
        gc_push_root(t, &x);
        x = mk(t, &T_RES, 1, 5);
        mk_child(t, &x, 0, &T_PLAIN, 2, 3);          /* plain child */
        mk_child(t, &x, 1, &T_CFIN, 3, 2);           /* finalizable child */
        g_res_weak = gc_weak_new(t, x);
        EXPECT_NONNULL(g_res_weak);
        EXPECT_PTR_EQ(gc_weak_get(g_res_weak), x);
        gc_pop_roots(t, 1);
        x = NULL;

        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_res_runs), 1);
        EXPECT_FIN(1, 1);
        EXPECT_FIN(3, 1);                            /* unreachable too: finalized once */
        EXPECT_EQ(atomic_load(&g_res_weak_seen), 1); /* weak cleared before the finalizer */
        EXPECT_NONNULL(g_res_slot);
        EXPECT_OBJ(g_res_slot, 1);
        EXPECT_OBJ(slot_of(g_res_slot, 0), 2);
        EXPECT_OBJ(slot_of(g_res_slot, 1), 3);
        EXPECT_NULL(gc_weak_get(g_res_weak));        /* stays cleared */

        for (int round = 0; round < 3; round++) {
            for (int k = 0; k < 200; k++) (void)mk(t, &T_PLAIN, 9999, 6);
            gc_collect(t);
            EXPECT_OBJ(g_res_slot, 1);
            EXPECT_OBJ(slot_of(g_res_slot, 0), 2);
            EXPECT_OBJ(slot_of(g_res_slot, 1), 3);
            EXPECT_EQ(atomic_load(&g_res_runs), 1);
            EXPECT_FIN(3, 1);
            EXPECT_VERIFY(h);
        }
        /* A fresh weak ref to the resurrected object follows it... */
        w2 = gc_weak_new(t, g_res_slot);
        EXPECT_NONNULL(w2);
        gc_collect(t);
        EXPECT_PTR_EQ(gc_weak_get(w2), g_res_slot);
        /* ...and is cleared when it dies for good, without a second finalization. */
        g_res_slot = NULL;
        gc_collect(t);
        EXPECT_NULL(gc_weak_get(w2));
        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_res_runs), 1);
        EXPECT_FIN(1, 1);
        EXPECT_FIN(3, 1);
        EXPECT_NULL(g_res_slot);
        EXPECT_EQ(atomic_load(&g_fin_total), 2);
        EXPECT_EQ(stats_of(h).objects_finalized, 2);
        EXPECT_VERIFY(h);
        gc_root_remove(h, &g_res_slot);
        gc_root_remove(h, &g_res_weak);
        gc_root_remove(h, &w2);
        EXPECT_NO_ASYNC_FAILURES();
        heap_end(h, t);
        EXPECT_EQ(atomic_load(&g_res_runs), 1);      /* destroy does not run it again */
        EXPECT_EQ(atomic_load(&g_fin_total), 2);
        EXPECT_NO_REPORTS(r0);
    }
}

/* ------------------------------------------------------------------------ */
/* A finalizer that allocates and collects                                   */

enum { AC_SLOTS = 16 };
static void *g_ac_slots[AC_SLOTS];        /* root range */
static atomic_int g_ac_next;
static atomic_int g_ac_runs;

static void fin_alloc_collect(void *obj)
{
    fin_enter();
    fin_tobj(obj);
    atomic_fetch_add(&g_ac_runs, 1);
    tobj_t *self = obj;
    uint64_t id = self->id;
    gc_thread_t *t = gc_heap_get_userdata(g_heap);
    if (gc_thread_current(g_heap) != t)
        AFAIL("finalizer of id %" PRIu64 " runs on %p, not the only attached thread %p", id,
              (void *)gc_thread_current(g_heap), (void *)t);
    int k = atomic_fetch_add(&g_ac_next, 1);
    if (k >= AC_SLOTS) {
        AFAIL("too many alloc-collect finalizer runs");
        fin_leave();
        return;
    }
    tobj_t *n = gc_alloc(t, &T_CFIN, tobj_size(3));
    if (!n) {
        AFAIL("gc_alloc inside a finalizer returned NULL");
        fin_leave();
        return;
    }
    n->magic = OBJ_MAGIC;
    n->id = 500 + id;
    n->nwords = 3;
    for (uint64_t i = 0; i < 3; i++) n->words[i] = payload_word(n->id, i);
    g_ac_slots[k] = n;
    gc_collect(t);
    /* The object being finalized stays alive and unmoved meanwhile. */
    const char *why = obj_problem(self, id);
    if (why) AFAIL("object %" PRIu64 " changed by a collection inside its finalizer: %s", id, why);
    why = obj_problem(g_ac_slots[k], 500 + id);
    if (why) AFAIL("object allocated in a finalizer, after gc_collect there: %s", why);
    fin_leave();
}

static const gc_type_t T_AC = { "test.alloc_collect", trace_tobj, fin_alloc_collect };

static void test_gc_finalizer_allocates_and_collects(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        atomic_store(&g_ac_next, 0);
        atomic_store(&g_ac_runs, 0);
        memset(g_ac_slots, 0, sizeof g_ac_slots);
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        heap_begin(h);
        gc_thread_t *t = gc_thread_attach(h);
        gc_heap_set_userdata(h, t);
        gc_root_add_range(h, g_ac_slots, AC_SLOTS);
        void *keep = NULL;
        gc_root_add(h, &keep);
        keep = mk(t, &T_CFIN, 100, 2);
        /* Three alloc-collect objects and five plain finalizable ones die
         * together; one of the latter is referenced by an alloc-collect one. */
        void *tmp = NULL;
        gc_push_root(t, &tmp);
        for (uint64_t i = 0; i < 3; i++) {
            tmp = mk(t, &T_AC, 1 + i, 2);
            (void)mk(t, &T_CFIN, 10 + i, 1);
        }
        mk_child(t, &tmp, 0, &T_CFIN, 20, 4);
        (void)mk(t, &T_CFIN, 21, 0);
        tmp = NULL;
        gc_pop_roots(t, 1);

        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_ac_runs), 3);
        for (uint64_t i = 0; i < 3; i++) {
            EXPECT_FIN(1 + i, 1);
            EXPECT_FIN(10 + i, 1);
        }
        EXPECT_FIN(20, 1);
        EXPECT_FIN(21, 1);
        EXPECT_FIN(100, 0);
        EXPECT_OBJ(keep, 100);
        EXPECT_NO_ASYNC_FAILURES();
        for (int k = 0; k < 3; k++) {
            EXPECT_NONNULL(g_ac_slots[k]);
            uint64_t id = ((tobj_t *)g_ac_slots[k])->id;
            if (id < 501 || id > 503) T_FAIL("slot %d holds id %" PRIu64 ", expected 501..503", k, id);
            EXPECT_OBJ(g_ac_slots[k], id);
            EXPECT_FIN(id, 0);
        }
        EXPECT_EQ(atomic_load(&g_fin_total), 8);

        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_ac_runs), 3);
        EXPECT_EQ(atomic_load(&g_fin_total), 8);
        memset(g_ac_slots, 0, sizeof g_ac_slots);
        gc_collect(t);
        for (uint64_t id = 501; id <= 503; id++) EXPECT_FIN(id, 1);
        EXPECT_EQ(atomic_load(&g_fin_total), 11);
        EXPECT_VERIFY(h);
        gc_root_remove(h, g_ac_slots);
        gc_root_remove(h, &keep);
        EXPECT_NO_ASYNC_FAILURES();
        heap_end(h, t);
        EXPECT_FIN(100, 1);
        EXPECT_EQ(atomic_load(&g_ac_runs), 3);
        EXPECT_EQ(atomic_load(&g_fin_total), 12);
        EXPECT_NO_REPORTS(r0);
    }
}

/* ------------------------------------------------------------------------ */
/* Weak references                                                           */

static void test_gc_weak_kept_and_cleared(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        heap_begin(h);
        gc_thread_t *t = gc_thread_attach(h);
        void *x = NULL, *wx[3] = { 0 }, *wy = NULL, *wp = NULL, *wg = NULL;
        gc_root_add(h, &x);
        gc_root_add_range(h, wx, 3);
        gc_root_add(h, &wy);
        gc_root_add(h, &wp);
        gc_root_add(h, &wg);
        x = mk(t, &T_CFIN, 1, 4);
        mk_child(t, &x, 2, &T_CFIN, 2, 1);           /* y: alive only through x */
        for (int i = 0; i < 3; i++) {
            wx[i] = gc_weak_new(t, x);
            EXPECT_NONNULL(wx[i]);
        }
        wy = gc_weak_new(t, slot_of(x, 2));
        EXPECT_NONNULL(wy);
        tobj_t *p = mk(t, &T_CFIN, 3, 2);            /* kept by a pin only */
        gc_pin(h, p);
        wp = gc_weak_new(t, p);
        EXPECT_NONNULL(wp);
        void *g = NULL;
        gc_push_root(t, &g);
        g = mk(t, &T_CFIN, 4, 0);                    /* garbage: the weak does not keep it */
        wg = gc_weak_new(t, g);
        EXPECT_NONNULL(wg);
        gc_pop_roots(t, 1);
        g = NULL;
        (void)gc_weak_new(t, x);                     /* an unreachable weak ref: just garbage */

        for (int round = 0; round < 3; round++) {
            for (int k = 0; k < 300; k++) (void)mk(t, &T_PLAIN, 9999, 3);
            gc_collect(t);
            for (int i = 0; i < 3; i++) EXPECT_PTR_EQ(gc_weak_get(wx[i]), x);
            EXPECT_PTR_EQ(gc_weak_get(wy), slot_of(x, 2));
            EXPECT_PTR_EQ(gc_weak_get(wp), p);
            EXPECT_NULL(gc_weak_get(wg));
            EXPECT_FIN(4, 1);
            EXPECT_OBJ(x, 1);
            EXPECT_OBJ(gc_weak_get(wy), 2);
            EXPECT_OBJ(p, 3);
            EXPECT_VERIFY(h);
        }
        gc_unpin(h, p);
        p = NULL;
        x = NULL;
        gc_collect(t);
        for (int i = 0; i < 3; i++) EXPECT_NULL(gc_weak_get(wx[i]));
        EXPECT_NULL(gc_weak_get(wy));
        EXPECT_NULL(gc_weak_get(wp));
        EXPECT_FIN(1, 1);
        EXPECT_FIN(2, 1);
        EXPECT_FIN(3, 1);
        gc_collect(t);                                /* stays cleared after reclamation */
        for (int i = 0; i < 3; i++) EXPECT_NULL(gc_weak_get(wx[i]));
        EXPECT_NULL(gc_weak_get(wy));
        EXPECT_EQ(atomic_load(&g_fin_total), 4);
        EXPECT_VERIFY(h);
        gc_root_remove(h, &x);
        gc_root_remove(h, wx);
        gc_root_remove(h, &wy);
        gc_root_remove(h, &wp);
        gc_root_remove(h, &wg);
        EXPECT_NO_ASYNC_FAILURES();
        heap_end(h, t);
        EXPECT_NO_REPORTS(r0);
    }
}

static void *g_wf_weak[2];              /* root range: weak refs to the object */
static atomic_int g_wf_runs;
static atomic_int g_wf_bad;

static void fin_weak_check(void *obj)
{
    fin_enter();
    fin_tobj(obj);
    atomic_fetch_add(&g_wf_runs, 1);
    for (int i = 0; i < 2; i++) {
        void *got = g_wf_weak[i] ? gc_weak_get(g_wf_weak[i]) : (void *)&g_wf_runs;
        if (got != NULL) {
            atomic_fetch_add(&g_wf_bad, 1);
            AFAIL("weak ref %d to object %" PRIu64 " still gives %p inside its finalizer", i,
                  ((tobj_t *)obj)->id, got);
        }
    }
    fin_leave();
}

static const gc_type_t T_WF = { "test.weak_check_fin", trace_tobj, fin_weak_check };

static void test_gc_weak_cleared_before_finalizer(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        atomic_store(&g_wf_runs, 0);
        atomic_store(&g_wf_bad, 0);
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        heap_begin(h);
        gc_thread_t *t = gc_thread_attach(h);
        g_wf_weak[0] = g_wf_weak[1] = NULL;
        gc_root_add_range(h, g_wf_weak, 2);
        void *x = NULL;
        gc_push_root(t, &x);
        x = mk(t, &T_WF, 1, 3);
        g_wf_weak[0] = gc_weak_new(t, x);
        g_wf_weak[1] = gc_weak_new(t, x);
        EXPECT_NONNULL(g_wf_weak[0]);
        EXPECT_NONNULL(g_wf_weak[1]);
        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_wf_runs), 0);
        EXPECT_PTR_EQ(gc_weak_get(g_wf_weak[0]), x);
        gc_pop_roots(t, 1);
        x = NULL;
        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_wf_runs), 1);
        EXPECT_EQ(atomic_load(&g_wf_bad), 0);
        EXPECT_FIN(1, 1);
        EXPECT_NULL(gc_weak_get(g_wf_weak[0]));
        EXPECT_NULL(gc_weak_get(g_wf_weak[1]));
        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_wf_runs), 1);
        EXPECT_VERIFY(h);
        gc_root_remove(h, g_wf_weak);
        EXPECT_NO_ASYNC_FAILURES();
        heap_end(h, t);
        EXPECT_EQ(atomic_load(&g_wf_runs), 1);
        EXPECT_NO_REPORTS(r0);
    }
}

/* ------------------------------------------------------------------------ */
/* gc_heap_destroy runs every finalizer not yet run, exactly once            */

typedef struct cb_ctx {
    void *slots[10];
} cb_ctx_t;

static void root_cb(gc_tracer_t *tracer, void *ctx)
{
    cb_ctx_t *c = ctx;
    gc_trace_range(tracer, c->slots, 10);
}

static void *destroy_on_thread(void *h)
{
    gc_heap_destroy(h);
    return NULL;
}

/* attached_at_destroy: 0 detached first, 1 destroyed by the attached thread,
 * 2 destroyed from another, never attached, thread. */
static void destroy_variant(int attached_at_destroy, int compaction)
{
    fin_reset();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, compaction);
    heap_begin(h);
    gc_thread_t *t = gc_thread_attach(h);
    /* 46..55: finalized by a collection before the destroy */
    for (uint64_t id = 46; id <= 55; id++) (void)mk(t, &T_CFIN, id, 1);
    gc_collect(t);
    for (uint64_t id = 46; id <= 55; id++) EXPECT_FIN(id, 1);

    static void *range[10];
    memset(range, 0, sizeof range);
    gc_root_add_range(h, range, 10);
    for (uint64_t i = 0; i < 10; i++) range[i] = mk(t, &T_CFIN, 1 + i, 2);     /* 1..10 */
    static void *stk[10];
    for (uint64_t i = 0; i < 10; i++) {
        stk[i] = NULL;
        gc_push_root(t, &stk[i]);
        stk[i] = mk(t, &T_CFIN, 11 + i, 0);                                     /* 11..20 */
    }
    static cb_ctx_t cb;
    memset(&cb, 0, sizeof cb);
    gc_root_add_callback(h, root_cb, &cb);
    for (uint64_t i = 0; i < 10; i++) cb.slots[i] = mk(t, &T_CFIN, 21 + i, 3);  /* 21..30 */
    for (uint64_t i = 0; i < 5; i++) gc_pin(h, mk(t, &T_CFIN, 31 + i, 1));     /* 31..35 */
    for (uint64_t i = 0; i < 10; i++) (void)mk(t, &T_CFIN, 36 + i, 1);        /* 36..45 */
    for (uint64_t i = 0; i < 5; i++)                                             /* 56..60 */
        mk_child(t, &range[i], 3, &T_CFIN, 56 + i, 2);
    void *first = NULL, *cur = NULL;                                             /* 61..70 */
    gc_push_root(t, &first);
    gc_push_root(t, &cur);
    for (uint64_t i = 0; i < 10; i++) {
        void *n = mk(t, &T_CFIN, 61 + i, 1);
        set_slot(t, n, 0, cur);
        cur = n;
        if (i == 0) first = n;
    }
    set_slot(t, first, 0, cur);
    gc_pop_roots(t, 2);
    /* Rooted ones not finalized yet; the garbage (36..45, 61..70) may have
     * been, by collections the allocations made. */
    for (uint64_t id = 1; id <= 35; id++) EXPECT_FIN(id, 0);
    for (uint64_t id = 56; id <= 60; id++) EXPECT_FIN(id, 0);
    EXPECT_NO_ASYNC_FAILURES();

    atomic_store(&g_expect_attached, 0);     /* destroy may run them anywhere */
    if (atomic_load(&g_fin_unattached) != 0)
        T_FAIL("%lu finalizer run(s) on a thread not attached to the heap",
               atomic_load(&g_fin_unattached));
    if (attached_at_destroy == 2) {
        /* Destroyed from a thread that never attached. */
        gc_thread_detach(t);
        pthread_t th;
        EXPECT_EQ(pthread_create(&th, NULL, destroy_on_thread, h), 0);
        EXPECT_EQ(pthread_join(th, NULL), 0);
    } else {
        if (!attached_at_destroy) gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    g_heap = NULL;
    for (uint64_t id = 1; id <= 70; id++) EXPECT_FIN(id, 1);
    EXPECT_EQ(atomic_load(&g_fin_total), 70);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

static void test_gc_heap_destroy_runs_finalizers(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s, detached before destroy\n", k_mode_names[m]);
        destroy_variant(0, k_modes[m]);
        print_message("  compaction %s, destroyed by the (last) attached thread\n", k_mode_names[m]);
        destroy_variant(1, k_modes[m]);
        print_message("  compaction %s, destroyed from another thread\n", k_mode_names[m]);
        destroy_variant(2, k_modes[m]);
    }
}

/* ------------------------------------------------------------------------ */
/* Pins nest                                                                 */

static void test_gc_pin_nesting(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        heap_begin(h);
        gc_thread_t *t = gc_thread_attach(h);
        for (int k = 0; k < 200; k++) (void)mk(t, &T_PLAIN, 9999, 5);
        tobj_t *x = mk(t, &T_CFIN, 1, 6);
        gc_pin(h, x);
        gc_pin(h, x);
        void *xx = x;
        mk_child(t, &xx, 0, &T_CFIN, 2, 1);
        gc_unpin(h, x);                 /* one pin left */
        for (int round = 0; round < 3; round++) {
            for (int k = 0; k < 200; k++) (void)mk(t, &T_PLAIN, 9999, 5);
            gc_collect(t);
            EXPECT_OBJ(x, 1);           /* same address: pinned objects do not move */
            EXPECT_OBJ(slot_of(x, 0), 2);
            EXPECT_FIN(1, 0);
            EXPECT_FIN(2, 0);
        }
        /* Three more levels, unwound one at a time. */
        gc_pin(h, x);
        gc_pin(h, x);
        gc_pin(h, x);
        for (int level = 3; level >= 1; level--) {
            gc_unpin(h, x);
            gc_collect(t);
            EXPECT_OBJ(x, 1);
            EXPECT_FIN(1, 0);
        }
        EXPECT_VERIFY(h);
        gc_unpin(h, x);                 /* the last pin */
        x = NULL;
        xx = NULL;
        gc_collect(t);
        EXPECT_FIN(1, 1);
        EXPECT_FIN(2, 1);
        /* Pinning again after death is not possible; a new object can be. */
        tobj_t *y = mk(t, &T_CFIN, 3, 0);
        gc_pin(h, y);
        gc_collect(t);
        EXPECT_OBJ(y, 3);
        gc_unpin(h, y);
        gc_collect(t);
        EXPECT_FIN(3, 1);
        EXPECT_EQ(atomic_load(&g_fin_total), 3);
        EXPECT_VERIFY(h);
        EXPECT_NO_ASYNC_FAILURES();
        heap_end(h, t);
        EXPECT_NO_REPORTS(r0);
    }
}

int main(void)
{
    mt_init("test_gc_finalize_weak");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_finalize_exactly_once),
        T(test_gc_collect_waits_for_finalizers),
        T(test_gc_finalizer_resurrects),
        T(test_gc_finalizer_allocates_and_collects),
        T(test_gc_weak_kept_and_cleared),
        T(test_gc_weak_cleared_before_finalizer),
        T(test_gc_heap_destroy_runs_finalizers),
        T(test_gc_pin_nesting),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
