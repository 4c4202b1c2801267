/* test_gc_review_s22_pending_many.c — black-box tests of weak references
 * and ephemerons made while many finalizers are pending (<mulch/gc.h>;
 * docs/gc.md "Finalizers", "Weak references").
 *
 * N finalizable objects die together with a hub that reaches them all; the
 * hub's finalizer (the newest object's: it runs first) makes a weak
 * reference to each of them that is still pending, which reads NULL from
 * the start, and one to each of N live objects, which reads its target.
 * Each of the N then makes one to its predecessor (pending until its own
 * finalizer runs: NULL) and one to its successor when that revived itself
 * (finalized: an ordinary weak reference). The membership test behind
 * gc_weak_new was a scan of every pending finalizer (N x N steps for this
 * test); it must stay correct as the pending objects leave one by one, in
 * every compaction mode, with nested collections in the finalizers.
 *
 * Deterministic: no random choices; the seed is printed as in every test
 * (MULCH_TEST_SEED). MULCH_TEST_QUICK=1 makes N 2000 instead of 20000. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367632201)
#define MULCH_TEST_GC 1
#include <stdbool.h>

#include <mulch/gc.h>

#include "mulch_test.h"

#define PM_MAGIC UINT64_C(0x70656e64696e6721)
enum { PM_REVIVE_EVERY = 7, PM_EPHEMERON_EVERY = 8 };

/* One of the N: its predecessor in `prev`. */
typedef struct pm_obj {
    void    *prev;
    uint64_t magic, id;
} pm_obj_t;

static gc_thread_t *g_pm_thread;
static size_t g_pm_n;
static atomic_uint *g_pm_fin;        /* finalizer runs per id               */
static atomic_uint g_pm_hub_fin;
/* global roots, N each: */
static void **g_pm_live;             /* live objects                        */
static void **g_pm_weak_live;        /* the hub's weak refs to them         */
static void **g_pm_weak_dead;        /* the hub's weak refs to the N        */
static void **g_pm_eph_dead;         /* ... and ephemerons keyed by them    */
static void **g_pm_weak_prev;        /* id's weak ref to its predecessor    */
static void **g_pm_weak_next;        /* id's weak ref to its revived successor */
static void **g_pm_revived;          /* the N that revived themselves       */
static atomic_size_t g_pm_made_pending; /* weak refs made to pending objects */

static void pm_trace(void *obj, gc_tracer_t *tracer)
{
    gc_trace_slot(tracer, &((pm_obj_t *)obj)->prev);
}

static void pm_check(const pm_obj_t *o, const char *who)
{
    if (o->magic != PM_MAGIC || o->id >= g_pm_n) AFAIL("%s: object %p damaged (id %" PRIu64 ")", who, (const void *)o, o->id);
}

static void pm_fin(void *obj)
{
    pm_obj_t *o = obj;
    pm_check(o, "pm_fin");
    size_t id = (size_t)o->id;
    if (atomic_fetch_add(&g_pm_fin[id], 1) != 0) AFAIL("id %zu finalized twice", id);
    /* (obj stays put while its finalizer runs; what it reaches is pending
     * or was finalized, and stays put too) */
    if (o->prev != NULL) {
        size_t prev = (size_t)((pm_obj_t *)o->prev)->id;
        bool was_pending = atomic_load(&g_pm_fin[prev]) == 0;
        void *w = gc_weak_new(g_pm_thread, o->prev);
        if (w == NULL) AFAIL("id %zu: gc_weak_new to its predecessor gave NULL", id);
        g_pm_weak_prev[id] = w;
        if (w != NULL && was_pending && gc_weak_get(w) != NULL)
            AFAIL("id %zu: a weak reference to its pending predecessor %zu gives %p", id, prev, gc_weak_get(w));
    }
    if (id + 1 < g_pm_n && g_pm_revived[id + 1] != NULL) {
        void *w = gc_weak_new(g_pm_thread, g_pm_revived[id + 1]);
        g_pm_weak_next[id] = w;
        /* (a GC point: the revived successor may have moved; the root says where) */
        if (w == NULL || gc_weak_get(w) != g_pm_revived[id + 1])
            AFAIL("id %zu: a weak reference to its finalized successor gives %p, not %p", id,
                  w ? gc_weak_get(w) : NULL, g_pm_revived[id + 1]);
    }
    if (id % PM_REVIVE_EVERY == 0) g_pm_revived[id] = obj;
}

static void pm_hub_trace(void *obj, gc_tracer_t *tracer)
{
    gc_trace_range(tracer, (void **)obj, g_pm_n);
}

static void pm_hub_fin(void *obj)
{
    void **slots = obj; /* stays put while its finalizer runs */
    atomic_fetch_add(&g_pm_hub_fin, 1);
    for (size_t i = 0; i < g_pm_n; i++) {
        void *w = gc_weak_new(g_pm_thread, g_pm_live[i]);
        g_pm_weak_live[i] = w;
        if (w == NULL || gc_weak_get(w) != g_pm_live[i])
            AFAIL("hub: a weak reference to live object %zu gives %p, not %p", i, w ? gc_weak_get(w) : NULL,
                  g_pm_live[i]);
        if (atomic_load(&g_pm_fin[i]) != 0) continue; /* (finalizers that ran before the hub's) */
        w = gc_weak_new(g_pm_thread, slots[i]);
        g_pm_weak_dead[i] = w;
        if (w == NULL || gc_weak_get(w) != NULL)
            AFAIL("hub: a weak reference to pending object %zu gives %p", i, w ? gc_weak_get(w) : NULL);
        atomic_fetch_add(&g_pm_made_pending, 1);
        if (i % PM_EPHEMERON_EVERY == 0) {
            void *e = gc_ephemeron_new(g_pm_thread, slots[i], g_pm_live[i]);
            g_pm_eph_dead[i] = e;
            if (e == NULL || gc_ephemeron_key(e) != NULL || gc_ephemeron_value(e) != NULL)
                AFAIL("hub: an ephemeron keyed by pending object %zu has key %p", i,
                      e ? gc_ephemeron_key(e) : NULL);
        }
    }
}

static const gc_type_t T_PM = { "test.pending_many", pm_trace, pm_fin };
static const gc_type_t T_PM_LIVE = { "test.pending_many_live", NULL, NULL };
static const gc_type_t T_PM_HUB = { "test.pending_many_hub", pm_hub_trace, pm_hub_fin };

static void **pm_roots(gc_heap_t *h, size_t n)
{
    void **slots = calloc(n, sizeof *slots);
    if (slots == NULL) {
        print_error("calloc(%zu) failed\n", n);
        fail();
    }
    gc_root_add_range(h, slots, n);
    return slots;
}

static void pm_roots_free(gc_heap_t *h, void **slots)
{
    gc_root_remove(h, slots);
    free(slots);
}

static void pm_run(int compaction, const char *mode)
{
    print_message("  compaction %s, %zu objects\n", mode, g_pm_n);
    size_t n = g_pm_n;
    atomic_store(&g_pm_hub_fin, 0);
    atomic_store(&g_pm_made_pending, 0);
    for (size_t i = 0; i < n; i++) atomic_store(&g_pm_fin[i], 0);
    gc_heap_t *h = heap_new(0, 0, compaction);
    gc_thread_t *t = gc_thread_attach(h);
    g_pm_thread = t;
    g_pm_live = pm_roots(h, n);
    g_pm_weak_live = pm_roots(h, n);
    g_pm_weak_dead = pm_roots(h, n);
    g_pm_eph_dead = pm_roots(h, n);
    g_pm_weak_prev = pm_roots(h, n);
    g_pm_weak_next = pm_roots(h, n);
    g_pm_revived = pm_roots(h, n);
    void **dead = pm_roots(h, n); /* the N, until the hub holds them */
    for (size_t i = 0; i < n; i++) {
        g_pm_live[i] = gc_alloc(t, &T_PM_LIVE, 16);
        pm_obj_t *o = gc_alloc(t, &T_PM, sizeof(pm_obj_t));
        if (g_pm_live[i] == NULL || o == NULL) {
            print_error("gc_alloc returned NULL at %zu\n", i);
            fail();
        }
        o->magic = PM_MAGIC;
        o->id = i;
        gc_write(t, o, &o->prev, i ? dead[i - 1] : NULL);
        dead[i] = o;
    }
    void **hub = gc_alloc(t, &T_PM_HUB, n * sizeof(void *)); /* newest: finalized first */
    EXPECT_NONNULL(hub);
    for (size_t i = 0; i < n; i++) gc_write(t, hub, &hub[i], dead[i]);
    hub = NULL;
    pm_roots_free(h, dead);

    gc_collect(t); /* returns after their finalizers */
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_EQ(atomic_load(&g_pm_hub_fin), 1);
    for (size_t i = 0; i < n; i++)
        if (atomic_load(&g_pm_fin[i]) != 1) T_FAIL("id %zu finalized %u time(s)", i, atomic_load(&g_pm_fin[i]));
    print_message("  %zu weak references made to pending objects\n", atomic_load(&g_pm_made_pending));
    EXPECT_GE(atomic_load(&g_pm_made_pending), (size_t)1);

    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < n; i++) {
            if (g_pm_weak_dead[i] && gc_weak_get(g_pm_weak_dead[i]) != NULL)
                T_FAIL("round %d: weak reference to finalized object %zu gives %p", round, i,
                       gc_weak_get(g_pm_weak_dead[i]));
            if (g_pm_eph_dead[i] && gc_ephemeron_value(g_pm_eph_dead[i]) != NULL)
                T_FAIL("round %d: ephemeron keyed by finalized object %zu has value %p", round, i,
                       gc_ephemeron_value(g_pm_eph_dead[i]));
            if (gc_weak_get(g_pm_weak_live[i]) != g_pm_live[i])
                T_FAIL("round %d: weak reference to live object %zu gives %p, not %p", round, i,
                       gc_weak_get(g_pm_weak_live[i]), g_pm_live[i]);
            if (g_pm_weak_next[i] && gc_weak_get(g_pm_weak_next[i]) != g_pm_revived[i + 1])
                T_FAIL("round %d: weak reference to revived object %zu gives %p, not %p", round, i + 1,
                       gc_weak_get(g_pm_weak_next[i]), g_pm_revived[i + 1]);
            /* a predecessor that did not revive itself is garbage now */
            if (g_pm_weak_prev[i] && g_pm_revived[i - 1] == NULL && gc_weak_get(g_pm_weak_prev[i]) != NULL)
                T_FAIL("round %d: weak reference to dead object %zu gives %p", round, i - 1,
                       gc_weak_get(g_pm_weak_prev[i]));
        }
        gc_collect(t); /* may move the live and revived objects */
    }
    /* the odd live objects and the revived ones die: their weak refs clear */
    for (size_t i = 1; i < n; i += 2) g_pm_live[i] = NULL;
    memset(g_pm_revived, 0, n * sizeof(void *));
    gc_collect(t);
    for (size_t i = 0; i < n; i++) {
        void *want = i % 2 ? NULL : g_pm_live[i];
        if (gc_weak_get(g_pm_weak_live[i]) != want)
            T_FAIL("weak reference to live object %zu gives %p, not %p", i, gc_weak_get(g_pm_weak_live[i]), want);
        if (g_pm_weak_next[i] && gc_weak_get(g_pm_weak_next[i]) != NULL)
            T_FAIL("weak reference to revived object %zu gives %p after it died", i + 1,
                   gc_weak_get(g_pm_weak_next[i]));
    }
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_VERIFY(h);
    pm_roots_free(h, g_pm_live);
    pm_roots_free(h, g_pm_weak_live);
    pm_roots_free(h, g_pm_weak_dead);
    pm_roots_free(h, g_pm_eph_dead);
    pm_roots_free(h, g_pm_weak_prev);
    pm_roots_free(h, g_pm_weak_next);
    pm_roots_free(h, g_pm_revived);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_weak_refs_while_many_finalizers_pending(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    g_pm_n = scaled(20000, 2000);
    g_pm_fin = calloc(g_pm_n, sizeof *g_pm_fin);
    EXPECT_NONNULL(g_pm_fin);
    static const int modes[] = { GC_COMPACT_AUTO, GC_COMPACT_ALWAYS, GC_COMPACT_NEVER };
    static const char *const names[] = { "auto", "always", "never" };
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) pm_run(modes[m], names[m]);
    free(g_pm_fin);
    g_pm_fin = NULL;
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_review_s22_pending_many");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_weak_refs_while_many_finalizers_pending),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
