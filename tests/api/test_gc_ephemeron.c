/* test_gc_ephemeron.c — black-box tests of ephemerons (<mulch/gc.h>;
 * docs/gc.md "Ephemerons"): the value lives while the key is reachable
 * some other way, a value that refers back to its key does not keep it
 * alive, chains of ephemerons converge whatever their order, key and value
 * are cleared together before finalizers run, finalizable objects revive
 * the ephemerons they hold with their values, moved keys and values are
 * followed, bad arguments are reported; and a seeded model test compares
 * every collection with a reference model of ephemeron reachability.
 * The suite runs this file plainly, with every span evacuated
 * (_compact_always) and generational (_generational).
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. MULCH_TEST_QUICK=1
 * (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6570686572306e31)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <stdbool.h>

#include "mulch_test.h"

/* Allocates enough short-lived garbage to run allocation-triggered
 * collections (minor ones in generational mode) and reuse freed cells. */
static void churn(gc_thread_t *t, size_t bytes)
{
    for (size_t done = 0; done < bytes; done += tobj_size(4)) (void)mk(t, &T_PLAIN, MAX_IDS - 1, 4);
}

/* The key is rooted, the value only reachable through the ephemeron: the
 * value lives, intact, through collections (full, and whatever the
 * allocation triggers), and moves with its key when they are evacuated. */
static void test_ephemeron_live_key_keeps_value(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        gc_heap_t *h = heap_new(256 * KiB, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        void *key = NULL, *value = NULL, *eph = NULL;
        gc_push_root(t, &key);
        gc_push_root(t, &value);
        gc_push_root(t, &eph);
        key = mk(t, &T_PLAIN, 1, 3);
        value = mk(t, &T_PLAIN, 2, 5);
        eph = gc_ephemeron_new(t, key, value);
        EXPECT_NONNULL(eph);
        value = NULL;
        for (int round = 0; round < 4; round++) {
            /* allocation-triggered collections first (minor ones in
             * generational mode find the young value through the list) */
            churn(t, 2 * MiB);
            EXPECT_OBJ(gc_ephemeron_value(eph), 2);
            gc_collect(t);
            EXPECT_PTR_EQ(gc_ephemeron_key(eph), key); /* the rooted key, wherever it moved */
            EXPECT_OBJ(gc_ephemeron_key(eph), 1);
            EXPECT_OBJ(gc_ephemeron_value(eph), 2);
        }
        EXPECT_VERIFY(h);
        gc_pop_roots(t, 3);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

/* The value points to its key (the case weak-keyed tables exist for): with
 * the key unrooted, both die, both are finalized once, and the ephemeron
 * reads NULL for both. */
static void test_ephemeron_value_does_not_keep_its_key(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        gc_heap_t *h = heap_new(256 * KiB, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        void *key = NULL, *value = NULL, *eph = NULL;
        gc_push_root(t, &key);
        gc_push_root(t, &value);
        gc_push_root(t, &eph);
        key = mk(t, &T_FIN, 10, 1);
        value = mk(t, &T_FIN, 11, 1);
        set_slot(t, value, 0, key);
        eph = gc_ephemeron_new(t, key, value);
        EXPECT_NONNULL(eph);
        key = value = NULL;
        gc_collect(t);
        EXPECT_PTR_EQ(gc_ephemeron_key(eph), NULL);
        EXPECT_PTR_EQ(gc_ephemeron_value(eph), NULL);
        EXPECT_FIN(10, 1);
        EXPECT_FIN(11, 1);
        churn(t, 1 * MiB); /* their cells are reused: still NULL */
        gc_collect(t);
        EXPECT_PTR_EQ(gc_ephemeron_key(eph), NULL);
        EXPECT_PTR_EQ(gc_ephemeron_value(eph), NULL);
        EXPECT_VERIFY(h);
        gc_pop_roots(t, 3);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

/* A chain: the value of ephemeron i holds the key of ephemeron i + 1, and
 * the ephemerons are made last link first, so each pass over the list in
 * creation order (or its reverse) finds one more key. Rooting the first
 * key keeps the whole chain; unrooting it frees it all. */
static void test_ephemeron_chain_converges(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    enum { LINKS = 40 };
    for (int reversed = 0; reversed < 2; reversed++) {
        print_message("  made %s\n", reversed ? "first link first" : "last link first");
        fin_reset();
        gc_heap_t *h = heap_new(256 * KiB, 0, GC_COMPACT_AUTO);
        gc_thread_t *t = gc_thread_attach(h);
        static void *keys[LINKS + 1], *ephs[LINKS];
        memset(keys, 0, sizeof keys);
        memset(ephs, 0, sizeof ephs);
        gc_root_add_range(h, keys, LINKS + 1);
        gc_root_add_range(h, ephs, LINKS);
        for (int i = 0; i <= LINKS; i++) keys[i] = mk(t, &T_FIN, (uint64_t)(100 + i), 1);
        for (int n = 0; n < LINKS; n++) {
            int i = reversed ? n : LINKS - 1 - n;
            void *value = mk(t, &T_FIN, (uint64_t)(200 + i), 1); /* keys[] rooted meanwhile */
            set_slot(t, value, 0, keys[i + 1]);
            ephs[i] = gc_ephemeron_new(t, keys[i], value);
            EXPECT_NONNULL(ephs[i]);
        }
        for (int i = 1; i <= LINKS; i++) keys[i] = NULL; /* only the first key is rooted */
        gc_collect(t);
        churn(t, 1 * MiB);
        gc_collect(t);
        for (int i = 0; i < LINKS; i++) {
            EXPECT_OBJ(gc_ephemeron_key(ephs[i]), 100 + i);
            EXPECT_OBJ(gc_ephemeron_value(ephs[i]), 200 + i);
            if (i + 1 < LINKS) EXPECT_PTR_EQ(slot_of(gc_ephemeron_value(ephs[i]), 0), gc_ephemeron_key(ephs[i + 1]));
            EXPECT_FIN(100 + i, 0);
            EXPECT_FIN(200 + i, 0);
        }
        EXPECT_OBJ(slot_of(gc_ephemeron_value(ephs[LINKS - 1]), 0), 100 + LINKS);
        EXPECT_VERIFY(h);
        keys[0] = NULL;
        gc_collect(t);
        for (int i = 0; i < LINKS; i++) {
            EXPECT_PTR_EQ(gc_ephemeron_key(ephs[i]), NULL);
            EXPECT_PTR_EQ(gc_ephemeron_value(ephs[i]), NULL);
            EXPECT_FIN(100 + i, 1);
            EXPECT_FIN(200 + i, 1);
        }
        EXPECT_FIN(100 + LINKS, 1);
        EXPECT_VERIFY(h);
        gc_root_remove(h, (void **)keys);
        gc_root_remove(h, (void **)ephs);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

/* Values that are no objects: NULL and a tagged immediate stay as they are
 * while the key lives and read NULL once it died. */
static void test_ephemeron_immediate_values(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *key = NULL, *e_null = NULL, *e_tagged = NULL;
    void *const tagged = (void *)(uintptr_t)0x2a1; /* low bits set: an immediate */
    gc_push_root(t, &key);
    gc_push_root(t, &e_null);
    gc_push_root(t, &e_tagged);
    key = mk(t, &T_PLAIN, 30, 1);
    e_null = gc_ephemeron_new(t, key, NULL);
    e_tagged = gc_ephemeron_new(t, key, tagged);
    EXPECT_NONNULL(e_null);
    EXPECT_NONNULL(e_tagged);
    gc_collect(t);
    EXPECT_PTR_EQ(gc_ephemeron_key(e_null), key);
    EXPECT_PTR_EQ(gc_ephemeron_value(e_null), NULL);
    EXPECT_PTR_EQ(gc_ephemeron_value(e_tagged), tagged);
    key = NULL;
    gc_collect(t);
    EXPECT_PTR_EQ(gc_ephemeron_key(e_tagged), NULL);
    EXPECT_PTR_EQ(gc_ephemeron_value(e_tagged), NULL);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 3);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* Bad arguments: one report each, NULL, nothing made. */
static void test_ephemeron_bad_arguments(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_heap_t *other = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    gc_thread_t *t_other = gc_thread_attach(other);
    void *key = NULL, *weak = NULL, *eph = NULL, *foreign = NULL;
    gc_push_root(t, &key);
    gc_push_root(t, &weak);
    gc_push_root(t, &eph);
    gc_push_root(t_other, &foreign);
    key = mk(t, &T_PLAIN, 40, 1);
    foreign = mk(t_other, &T_PLAIN, 41, 1);
    uint64_t on_stack[4] = { 0 };

    unsigned long r = rec_count();
    EXPECT_NULL(gc_ephemeron_new(t, NULL, key));
    EXPECT_ONE_REPORT(r, "gc_ephemeron_new: key is NULL", NULL);
    r = rec_count();
    EXPECT_NULL(gc_ephemeron_new(t, on_stack, NULL));
    EXPECT_ONE_REPORT(r, "gc_ephemeron_new: key is not a GC object of this heap", on_stack);
    r = rec_count();
    EXPECT_NULL(gc_ephemeron_new(t, foreign, NULL));
    EXPECT_ONE_REPORT(r, "gc_ephemeron_new: key is not a GC object of this heap", foreign);
    r = rec_count();
    EXPECT_NULL(gc_ephemeron_new(t, key, on_stack));
    EXPECT_ONE_REPORT(r, "gc_ephemeron_new: value is not a GC object of this heap", on_stack);
    r = rec_count();
    EXPECT_NULL(gc_ephemeron_new(NULL, key, key));
    EXPECT_ONE_REPORT(r, "gc_ephemeron_new", NULL);

    weak = gc_weak_new(t, key);
    eph = gc_ephemeron_new(t, key, key); /* a value may be its own key (it dies with it) */
    EXPECT_NONNULL(weak);
    EXPECT_NONNULL(eph);
    r = rec_count();
    EXPECT_NULL(gc_ephemeron_key(NULL));
    EXPECT_ONE_REPORT(r, "gc_ephemeron_key: not an ephemeron", NULL);
    r = rec_count();
    EXPECT_NULL(gc_ephemeron_value(weak));
    EXPECT_ONE_REPORT(r, "gc_ephemeron_value: not an ephemeron", weak);
    r = rec_count();
    EXPECT_NULL(gc_ephemeron_key(key));
    EXPECT_ONE_REPORT(r, "gc_ephemeron_key: not an ephemeron", key);
    r = rec_count();
    EXPECT_NULL(gc_weak_get(eph));
    EXPECT_ONE_REPORT(r, "gc_weak_get: not a weak reference", eph);

    r = rec_count();
    EXPECT_PTR_EQ(gc_ephemeron_value(eph), key);
    key = NULL; /* a key that is its own value dies all the same */
    gc_collect(t);
    EXPECT_PTR_EQ(gc_ephemeron_key(eph), NULL);
    EXPECT_PTR_EQ(gc_ephemeron_value(eph), NULL);
    EXPECT_PTR_EQ(gc_weak_get(weak), NULL);
    EXPECT_NO_REPORTS(r);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 3);
    gc_pop_roots(t_other, 1);
    gc_thread_detach(t);
    gc_thread_detach(t_other);
    gc_heap_destroy(h);
    gc_heap_destroy(other);
}

/* Finalizers. A key kept alive only for its own finalizer is dead to its
 * ephemerons (cleared before the finalizer runs). An ephemeron reachable
 * only from a finalizable object is revived with it, and so is its value
 * (its key lives): the finalizer reads the value intact and keeps the
 * ephemeron, whose value must then survive the sweep. */
static void *g_kept;                /* global root */
static _Atomic(void *) g_seen_key;  /* what the key finalizer's ephemeron answered */
static void *g_probe;               /* global root: the ephemeron of the key below */
static atomic_int g_holder_runs, g_key_runs;

static void fin_holder(void *obj)
{
    tobj_t *o = obj;
    void *eph = o->slot[0];
    void *value = gc_ephemeron_value(eph);
    const char *why = obj_problem(value, 51);
    if (why) AFAIL("the finalizer's ephemeron gives a value %p: %s", value, why);
    g_kept = eph;
    atomic_fetch_add(&g_holder_runs, 1);
}

static void fin_key(void *obj)
{
    (void)obj;
    atomic_store(&g_seen_key, gc_ephemeron_key(g_probe));
    atomic_fetch_add(&g_key_runs, 1);
}

static const gc_type_t T_HOLDER = { "test.eph_holder", trace_tobj, fin_holder };
static const gc_type_t T_KEY_FIN = { "test.eph_key_fin", trace_tobj, fin_key };

static void test_ephemeron_and_finalizers(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        gc_heap_t *h = heap_new(256 * KiB, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        g_kept = g_probe = NULL;
        gc_root_add(h, &g_kept);
        gc_root_add(h, &g_probe);
        atomic_store(&g_holder_runs, 0);
        atomic_store(&g_key_runs, 0);
        atomic_store(&g_seen_key, (void *)&g_seen_key);

        /* the key that dies with a finalizer */
        void *key = NULL, *holder = NULL, *value = NULL;
        gc_push_root(t, &key);
        gc_push_root(t, &holder);
        gc_push_root(t, &value);
        key = mk(t, &T_KEY_FIN, 50, 1);
        g_probe = gc_ephemeron_new(t, key, key);
        EXPECT_NONNULL(g_probe);
        key = NULL;
        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_key_runs), 1);
        EXPECT_PTR_EQ(atomic_load(&g_seen_key), NULL);
        EXPECT_PTR_EQ(gc_ephemeron_value(g_probe), NULL);

        /* the ephemeron revived by its finalizable holder */
        key = mk(t, &T_PLAIN, 52, 1);
        holder = mk(t, &T_HOLDER, 53, 1);
        value = mk(t, &T_PLAIN, 51, 6);
        void *eph = gc_ephemeron_new(t, key, value);
        EXPECT_NONNULL(eph);
        set_slot(t, holder, 0, eph);
        holder = value = NULL; /* the ephemeron and its value: through the holder only */
        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_holder_runs), 1);
        EXPECT_NONNULL(g_kept);
        churn(t, 1 * MiB); /* a value freed by mistake is reused now */
        gc_collect(t);
        EXPECT_OBJ(gc_ephemeron_value(g_kept), 51);
        EXPECT_PTR_EQ(gc_ephemeron_key(g_kept), key);
        EXPECT_NO_ASYNC_FAILURES();
        EXPECT_VERIFY(h);
        gc_pop_roots(t, 3);
        gc_root_remove(h, &g_kept);
        gc_root_remove(h, &g_probe);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

/* gc_heap_destroy clears ephemerons before the finalizers it runs, and an
 * ephemeron made by a thread that detached is still watched by the heap. */
static _Atomic(void *) g_destroy_seen;
static void fin_destroy_probe(void *obj)
{
    (void)obj;
    atomic_store(&g_destroy_seen, gc_ephemeron_value(g_probe));
}
static const gc_type_t T_DESTROY_PROBE = { "test.eph_destroy_probe", trace_tobj, fin_destroy_probe };

static void *detached_maker(void *arg)
{
    gc_heap_t *h = arg;
    gc_thread_t *t = gc_thread_attach(h);
    void *key = mk(t, &T_PLAIN, 60, 1);
    gc_push_root(t, &key);
    g_kept = gc_ephemeron_new(t, key, key);
    gc_pop_roots(t, 1);
    gc_thread_detach(t); /* the key is unreachable now */
    return NULL;
}

static void test_ephemeron_detach_and_destroy(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    g_kept = g_probe = NULL;
    gc_root_add(h, &g_kept);
    gc_root_add(h, &g_probe);
    pthread_t maker;
    EXPECT_EQ(pthread_create(&maker, NULL, detached_maker, h), 0);
    EXPECT_EQ(pthread_join(maker, NULL), 0);
    gc_thread_t *t = gc_thread_attach(h);
    EXPECT_NONNULL(g_kept);
    EXPECT_NONNULL(gc_ephemeron_key(g_kept));
    gc_collect(t);
    EXPECT_PTR_EQ(gc_ephemeron_key(g_kept), NULL);
    EXPECT_PTR_EQ(gc_ephemeron_value(g_kept), NULL);

    void *key = mk(t, &T_PLAIN, 61, 1);
    gc_push_root(t, &key);
    g_probe = gc_ephemeron_new(t, key, key);
    void *probe_fin = mk(t, &T_DESTROY_PROBE, 62, 1);
    gc_push_root(t, &probe_fin);
    atomic_store(&g_destroy_seen, (void *)&g_destroy_seen);
    gc_pop_roots(t, 2);
    gc_thread_detach(t);
    gc_heap_destroy(h); /* key and probe_fin still reachable: destroy finalizes */
    EXPECT_PTR_EQ(atomic_load(&g_destroy_seen), NULL);
    EXPECT_NO_REPORTS(r0);
}

/* The model: each round builds a random graph of finalizable objects
 * (strong slots), roots some of them, and makes ephemerons with random keys
 * and values (some NULL); a reference model computes what is reachable
 * (roots and slots, then values of ephemerons whose key is reachable, to a
 * fixpoint). One collection must finalize exactly the unreachable objects
 * and clear exactly the ephemerons whose key is unreachable; the others
 * must give their key and value intact. */
enum { MODEL_OBJECTS = 160, MODEL_EPHEMERONS = 120 };

typedef struct model {
    int slot[MODEL_OBJECTS][NSLOTS]; /* -1: NULL */
    bool root[MODEL_OBJECTS];
    int key[MODEL_EPHEMERONS], value[MODEL_EPHEMERONS];
    bool reach[MODEL_OBJECTS];
} model_t;

static void model_reach(model_t *md)
{
    int stack[MODEL_OBJECTS], depth = 0;
    memset(md->reach, 0, sizeof md->reach);
    for (int i = 0; i < MODEL_OBJECTS; i++)
        if (md->root[i]) {
            md->reach[i] = true;
            stack[depth++] = i;
        }
    for (;;) {
        while (depth > 0) {
            int o = stack[--depth];
            for (int k = 0; k < NSLOTS; k++) {
                int c = md->slot[o][k];
                if (c >= 0 && !md->reach[c]) {
                    md->reach[c] = true;
                    stack[depth++] = c;
                }
            }
        }
        for (int e = 0; e < MODEL_EPHEMERONS; e++) {
            int v = md->value[e];
            if (md->reach[md->key[e]] && v >= 0 && !md->reach[v]) {
                md->reach[v] = true;
                stack[depth++] = v;
            }
        }
        if (depth == 0) return;
    }
}

static void test_ephemeron_model(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    unsigned long r0 = rec_count();
    int rounds = (int)scaled(24, 6);
    gc_heap_t *h = heap_new(256 * KiB, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    static void *objects[MODEL_OBJECTS], *ephemerons[MODEL_EPHEMERONS];
    static model_t md;
    gc_root_add_range(h, objects, MODEL_OBJECTS);
    gc_root_add_range(h, ephemerons, MODEL_EPHEMERONS);
    for (int round = 0; round < rounds; round++) {
        fin_reset();
        int root_percent = 5 + (int)rng_below(&r, 20), edge_percent = 10 + (int)rng_below(&r, 30);
        for (int i = 0; i < MODEL_OBJECTS; i++) {
            objects[i] = mk(t, &T_FIN, (uint64_t)i, rng_below(&r, 4));
            md.root[i] = (int)rng_below(&r, 100) < root_percent;
        }
        for (int i = 0; i < MODEL_OBJECTS; i++)
            for (int k = 0; k < NSLOTS; k++) {
                int c = (int)rng_below(&r, 100) < edge_percent ? (int)rng_below(&r, MODEL_OBJECTS) : -1;
                md.slot[i][k] = c;
                if (c >= 0) set_slot(t, objects[i], (size_t)k, objects[c]);
            }
        for (int e = 0; e < MODEL_EPHEMERONS; e++) {
            md.key[e] = (int)rng_below(&r, MODEL_OBJECTS);
            md.value[e] = rng_below(&r, 10) == 0 ? -1 : (int)rng_below(&r, MODEL_OBJECTS);
            ephemerons[e] = gc_ephemeron_new(t, objects[md.key[e]], md.value[e] < 0 ? NULL : objects[md.value[e]]);
            if (ephemerons[e] == NULL) T_FAIL("round %d: gc_ephemeron_new returned NULL", round);
        }
        for (int i = 0; i < MODEL_OBJECTS; i++)
            if (!md.root[i]) objects[i] = NULL;
        model_reach(&md);
        gc_collect(t);
        for (int i = 0; i < MODEL_OBJECTS; i++)
            if (fin_of((uint64_t)i) != (md.reach[i] ? 0u : 1u))
                T_FAIL("round %d: object %d finalized %u time(s), the model says it is %s", round, i,
                       fin_of((uint64_t)i), md.reach[i] ? "reachable" : "unreachable");
        for (int e = 0; e < MODEL_EPHEMERONS; e++) {
            void *key = gc_ephemeron_key(ephemerons[e]), *value = gc_ephemeron_value(ephemerons[e]);
            if (!md.reach[md.key[e]]) {
                if (key != NULL || value != NULL)
                    T_FAIL("round %d: ephemeron %d (key %d unreachable) gives key %p value %p", round, e,
                           md.key[e], key, value);
                continue;
            }
            EXPECT_OBJ(key, md.key[e]);
            if (md.value[e] < 0) EXPECT_PTR_EQ(value, NULL);
            else EXPECT_OBJ(value, md.value[e]);
        }
        EXPECT_VERIFY(h);
        memset(objects, 0, sizeof objects);
        memset(ephemerons, 0, sizeof ephemerons);
        gc_collect(t); /* every object of the round goes */
        gc_collect(t);
    }
    gc_root_remove(h, objects);
    gc_root_remove(h, ephemerons);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* The misuse docs/gc.md's table of reports lists for gc_ephemeron_new, as
 * for gc_weak_new: a NULL, blocking, another thread's or a detached
 * record, and a key or value a collection freed, each reported once. */
static gc_thread_t *g_owner_rec;
static void *g_owner_key;

static void *foreign_record_user(void *arg)
{
    gc_thread_t *t = gc_thread_attach(arg);
    unsigned long r = rec_count();
    void *got = gc_ephemeron_new(g_owner_rec, g_owner_key, NULL);
    if (got != NULL) AFAIL("gc_ephemeron_new took another thread's record");
    if (rec_count() != r + 1) AFAIL("another thread's record: %lu reports, not 1", rec_count() - r);
    gc_thread_detach(t);
    return NULL;
}

static void test_ephemeron_misuse_reports(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_NEVER);
    gc_thread_t *t = gc_thread_attach(h);
    void *key = NULL;
    gc_push_root(t, &key);
    key = mk(t, &T_PLAIN, 70, 1);
    unsigned long r = rec_count();
    EXPECT_NULL(gc_ephemeron_new(NULL, key, NULL));
    EXPECT_ONE_REPORT(r, "gc_ephemeron_new: thread is NULL", NULL);
    gc_enter_blocking(t);
    r = rec_count();
    EXPECT_NULL(gc_ephemeron_new(t, key, NULL));
    EXPECT_ONE_REPORT(r, "gc_ephemeron_new: called inside a blocking region", t);
    gc_leave_blocking(t);
    g_owner_rec = t;
    g_owner_key = key;
    pthread_t other;
    EXPECT_EQ(pthread_create(&other, NULL, foreign_record_user, h), 0);
    EXPECT_EQ(pthread_join(other, NULL), 0);
    EXPECT_NO_ASYNC_FAILURES();
    void *dead = launder(mk(t, &T_PLAIN, 71, 1));
    gc_collect(t); /* (its span freed or evacuated: "... is not a GC object of this heap") */
    r = rec_count();
    EXPECT_NULL(gc_ephemeron_new(t, dead, NULL));
    EXPECT_ONE_REPORT(r, "gc_ephemeron_new: ", dead);
    r = rec_count();
    EXPECT_NULL(gc_ephemeron_new(t, key, dead));
    EXPECT_ONE_REPORT(r, "gc_ephemeron_new: ", dead);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    r = rec_count();
    EXPECT_NULL(gc_ephemeron_new(t, g_owner_key, NULL));
    EXPECT_ONE_REPORT(r, "gc_ephemeron_new: not a thread attached by the calling thread", t);
    gc_heap_destroy(h);
}

/* docs/gc.md: while a finalizer runs, its object and everything reachable
 * from it stay at their addresses across the collections the finalizer
 * causes. That includes the value of an ephemeron the object holds whose
 * key lives: the finalizer reads the value, collects (every span it may
 * empty evacuated), and must find the value where it read it. */
static gc_heap_t *g_fin_heap;
static atomic_int g_stay_runs;

static void fin_reads_value_and_collects(void *obj)
{
    tobj_t *o = obj;
    void *eph = o->slot[0];
    void *value = gc_ephemeron_value(eph);
    const char *why = obj_problem(value, 91);
    if (why) AFAIL("the finalizer's ephemeron value %p: %s", value, why);
    gc_collect(gc_thread_current(g_fin_heap));
    void *now = gc_ephemeron_value(eph);
    if (now != value) AFAIL("the value moved under the running finalizer: %p, now %p", value, now);
    why = obj_problem(value, 91);
    if (why) AFAIL("after a collection in the finalizer, the value it read (%p): %s", value, why);
    atomic_fetch_add(&g_stay_runs, 1);
}
static const gc_type_t T_STAY_HOLDER = { "test.eph_stay_holder", trace_tobj, fin_reads_value_and_collects };

static void test_ephemeron_value_stays_during_finalizer(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        gc_heap_t *h = heap_new(256 * KiB, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        g_fin_heap = h;
        atomic_store(&g_stay_runs, 0);
        void *key = NULL, *holder = NULL, *value = NULL;
        gc_push_root(t, &key);
        gc_push_root(t, &holder);
        gc_push_root(t, &value);
        key = mk(t, &T_PLAIN, 90, 1);
        holder = mk(t, &T_STAY_HOLDER, 92, 1);
        value = mk(t, &T_PLAIN, 91, 40); /* another size class than the holder's: another span */
        void *eph = gc_ephemeron_new(t, key, value);
        EXPECT_NONNULL(eph);
        set_slot(t, holder, 0, eph);
        holder = value = NULL; /* the key stays rooted */
        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_stay_runs), 1);
        EXPECT_NO_ASYNC_FAILURES();
        EXPECT_VERIFY(h);
        gc_pop_roots(t, 3);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_ephemeron");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ephemeron_live_key_keeps_value, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_ephemeron_value_does_not_keep_its_key, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_ephemeron_chain_converges, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_ephemeron_immediate_values, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_ephemeron_bad_arguments, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_ephemeron_and_finalizers, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_ephemeron_detach_and_destroy, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_ephemeron_model, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_ephemeron_misuse_reports, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_ephemeron_value_stays_during_finalizer, setup_rec, teardown_rec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
