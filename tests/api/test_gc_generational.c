/* test_gc_generational.c — black-box tests of the generational mode
 * (gc_options_t.generational): collections triggered by allocation are
 * minor (young garbage is reclaimed, old objects are not traced), a young
 * object stored into an old one through gc_write survives every minor
 * collection, old garbage goes at the next full collection (gc_collect),
 * and gc_verify stays clean throughout.
 *
 * Deterministic: random choices come from MULCH_TEST_SEED (printed). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630f01)
#define MULCH_TEST_GC_OBJECTS 1
#include <math.h>
#include <stdbool.h>

#include <mulch/gc.h>

#include "mulch_test.h"

static gc_heap_t *generational_heap(void)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.generational = 1;
    o.initial_heap = 64 * KiB;    /* allocation collects often */
    gc_heap_t *h = gc_heap_create(&o);
    if (!h) fail();
    return h;
}

static uint64_t collections(gc_heap_t *h)
{
    return stats_of(h).collections;
}

static void test_generational_barrier_keeps_young_children(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_heap_t *h = generational_heap();
    gc_thread_t *t = gc_thread_attach(h);
    rng_t rng = test_rng("generational", 0);
    enum { OLD = 64 };
    void *old[OLD];
    gc_root_add_range(h, old, OLD);
    for (size_t i = 0; i < OLD; i++) old[i] = NULL;
    for (size_t i = 0; i < OLD; i++) old[i] = mk(t, &T_FIN, 1 + i, 2);
    gc_collect(t);                                  /* full: they are old now */
    uint64_t before = collections(h);
    size_t stored = 0;
    for (uint64_t round = 0; round < (uint64_t)scaled(20000, 4000); round++) {
        /* young garbage, and now and then a young child of an old object */
        (void)mk(t, &T_PLAIN, 0, (size_t)rng_below(&rng, 8));
        if (rng_below(&rng, 50) == 0) {
            size_t i = (size_t)rng_below(&rng, OLD);
            size_t k = (size_t)rng_below(&rng, NSLOTS);
            void *child = mk(t, &T_FIN, 1000 + i * NSLOTS + k, 3);
            /* gc_write is the barrier: the inline one of <mulch/gc.h>
             * (except in sanitizer builds) and the library function, both */
            if (rng_below(&rng, 2)) set_slot(t, old[i], k, child);
            else (gc_write)(t, old[i], &((tobj_t *)old[i])->slot[k], child);
            stored++;
        }
    }
    EXPECT_GE(collections(h) - before, 3u);         /* minor ones, by allocation */
    for (size_t i = 0; i < OLD; i++) {
        EXPECT_OBJ(old[i], 1 + i);
        for (size_t k = 0; k < NSLOTS; k++)
            if (slot_of(old[i], k)) EXPECT_OBJ(slot_of(old[i], k), 1000 + i * NSLOTS + k);
    }
    for (size_t i = 0; i < OLD; i++) EXPECT_FIN(1 + i, 0);
    print_message("  %zu young children stored into old objects, %" PRIu64 " collections\n", stored,
                  collections(h) - before);
    EXPECT_VERIFY(h);
    /* Old garbage goes at the next full collection. */
    for (size_t i = 0; i < OLD / 2; i++) old[i] = NULL;
    gc_collect(t);
    for (size_t i = 0; i < OLD / 2; i++) EXPECT_FIN(1 + i, 1);
    for (size_t i = OLD / 2; i < OLD; i++) EXPECT_FIN(1 + i, 0);
    EXPECT_VERIFY(h);
    gc_root_remove(h, old);
    gc_heap_destroy(h);
}

static void test_generational_minor_collections_free_young_garbage(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_heap_t *h = generational_heap();
    gc_thread_t *t = gc_thread_attach(h);
    for (uint64_t i = 0; i < 40000; i++) (void)mk(t, &T_FIN, i % MAX_IDS, 1); /* cheap: no scaling */
    gc_stats_t s;
    gc_get_stats(h, &s);
    EXPECT_GE(s.collections, 3u);
    EXPECT_GE(s.objects_finalized, 1000u);          /* without any explicit gc_collect */
    EXPECT_LE(s.heap_bytes, 4 * MiB);
    EXPECT_VERIFY(h);
    gc_heap_destroy(h);
}

/* An old object given a young one by `store`, which may skip the barrier:
 * gc_verify reports the old object when it does (expect_found), then the
 * same store through gc_write repairs it. */
static void verify_after_store(void (*store)(gc_thread_t *t, tobj_t *old, tobj_t *young), bool expect_found)
{
    gc_heap_t *h = generational_heap();
    gc_thread_t *t = gc_thread_attach(h);
    void *old = NULL;
    gc_push_root(t, &old);
    old = mk(t, &T_PLAIN, 1, 1);
    gc_collect(t);                                  /* old is old */
    tobj_t *young = mk(t, &T_PLAIN, 2, 1);
    store(t, old, young);
    unsigned long r0 = rec_count();
    size_t problems = gc_verify(h);
    if (expect_found) {
        char what[200];
        const void *where;
        rec_last(what, sizeof what, &where);
        print_message("  gc_verify: %zu problem(s), last report \"%s\" %p\n", problems, what, where);
        EXPECT_PTR_EQ(where, old);
        EXPECT_GE(problems, 1u);
        EXPECT_GE(rec_count() - r0, 1u);
    } else {
        EXPECT_EQ(problems, 0u);
    }
    set_slot(t, old, 0, slot_of(old, 0));           /* the same store through gc_write */
    gc_collect(t);
    EXPECT_VERIFY(h);
    EXPECT_OBJ(slot_of(old, 0), 2);
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
}

static void store_plain(gc_thread_t *t, tobj_t *old, tobj_t *young)
{
    (void)t;
    old->slot[0] = young;                           /* no barrier: the bug */
}

/* gc_verify names an old object that got a young pointer without gc_write. */
static void test_generational_verify_finds_missing_barrier(void **state)
{
    (void)state;
    TEST_START();
    verify_after_store(store_plain, true);
}

/* MULCH_GC_VERIFY=1 runs gc_verify before each collection: a store that
 * skipped the barrier is reported (naming the old object) by the next
 * collection, before the minor collection that would free the young
 * object; once the store goes through gc_write, collections report
 * nothing. */
static void test_generational_verify_env_checks_each_collection(void **state)
{
    (void)state;
    TEST_START();
    setenv("MULCH_GC_VERIFY", "1", 1);
    gc_heap_t *h = generational_heap();
    unsetenv("MULCH_GC_VERIFY");
    gc_thread_t *t = gc_thread_attach(h);
    void *old = NULL;
    gc_push_root(t, &old);
    old = mk(t, &T_PLAIN, 1, 1);
    gc_collect(t);                                  /* old is old */
    EXPECT_EQ(rec_count(), 0u);
    tobj_t *young = mk(t, &T_PLAIN, 2, 1);
    store_plain(t, old, young);
    for (int i = 0; i < 2000; i++) (void)mk(t, &T_PLAIN, 3, 1);   /* minor collections */
    char what[200];
    const void *where;
    EXPECT_GE(rec_count(), 1u);
    rec_last(what, sizeof what, &where);
    print_message("  %lu report(s), last \"%s\" %p\n", rec_count(), what, where);
    EXPECT_PTR_EQ(where, old);
    EXPECT_EQ(strncmp(what, "gc_verify", 9), 0);
    /* (young may be gone by now: the report does not stop the minor
     * collection) */
    ((tobj_t *)old)->slot[0] = NULL;
    unsigned long reports = rec_count();
    young = mk(t, &T_PLAIN, 4, 1);
    set_slot(t, old, 0, young);                     /* the store through gc_write */
    for (int i = 0; i < 2000; i++) (void)mk(t, &T_PLAIN, 3, 1);
    gc_collect(t);
    EXPECT_EQ(rec_count(), reports);
    EXPECT_OBJ(slot_of(old, 0), 4);
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
}

/* The young object an old one got without gc_write dies at a minor
 * collection (which does not trace the old object): gc_verify, which runs
 * the old object's trace function, reports its slot now holding a freed
 * cell instead of staying silent until the next full collection. */
static void test_generational_verify_finds_freed_young_in_old(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = generational_heap();
    gc_thread_t *t = gc_thread_attach(h);
    void *old = NULL, *neighbour = NULL;
    gc_push_root(t, &old);
    gc_push_root(t, &neighbour);
    old = mk(t, &T_PLAIN, 1, 1);
    gc_collect(t);                                  /* old is old */
    tobj_t *young = mk(t, &T_PLAIN, 2, 1);
    neighbour = mk(t, &T_PLAIN, 3, 1);              /* keeps young's span */
    store_plain(t, old, young);
    uint64_t before = collections(h);
    /* other sizes: young's cell is not reused meanwhile */
    for (int i = 0; i < 4000 && collections(h) < before + 3; i++) (void)mk(t, &T_PLAIN, 4, 40);
    EXPECT_GE(collections(h), before + 3);          /* minor ones, by allocation */
    unsigned long r0 = rec_count();
    size_t problems = gc_verify(h);
    char what[200] = "";
    const void *where = NULL;
    if (rec_count() > r0) rec_last(what, sizeof what, &where);
    print_message("  gc_verify: %zu problem(s), last report \"%s\" %p\n", problems, what, where);
    EXPECT_GE(problems, 1u);
    EXPECT_PTR_EQ(where, old);
    EXPECT_NE(strstr(what, "slot holds a pointer to a dead GC object"), NULL);
    ((tobj_t *)old)->slot[0] = NULL;
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 2);
    gc_heap_destroy(h);
}

/* ---- initializing stores (gc_write_init) ---- */
typedef struct node {
    struct node *left, *right;
    uintptr_t    depth;
} node_t;
static void trace_node(void *obj, gc_tracer_t *tracer)
{
    node_t *n = obj;
    gc_trace_slot(tracer, (void **)&n->left);
    gc_trace_slot(tracer, (void **)&n->right);
}
static const gc_type_t T_NODE = { "test.node", trace_node, NULL };

/* A tree built bottom-up, each parent given its children by initializing
 * stores: no GC point between its allocation and them. */
static node_t *tree_build(gc_thread_t *t, unsigned depth)
{
    if (depth == 0) return NULL;
    node_t *l = tree_build(t, depth - 1);
    gc_push_root(t, (void **)&l);
    node_t *r = tree_build(t, depth - 1);
    gc_push_root(t, (void **)&r);
    node_t *n = gc_alloc(t, &T_NODE, sizeof *n);
    if (n == NULL) fail();
    gc_write_init(t, n, (void **)&n->left, l);
    gc_write_init(t, n, (void **)&n->right, r);
    n->depth = depth;
    gc_pop_roots(t, 2);
    return n;
}

static size_t tree_count(const node_t *n, unsigned depth)
{
    if (n == NULL) return 0;
    if (n->depth != depth) return 0; /* a broken tree counts short */
    return 1 + tree_count(n->left, depth - 1) + tree_count(n->right, depth - 1);
}

/* Initializing stores need no barrier, whatever the minor collections in
 * between promote: trees kept across many of them stay whole, and the
 * verifier finds no old object pointing to a young one on a clean card. */
static void test_generational_write_init_through_minor_collections(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = generational_heap();
    gc_thread_t *t = gc_thread_attach(h);
    enum { KEPT = 6, DEPTH = 10, ROUNDS = 120 };
    void *kept[KEPT] = { NULL };
    gc_root_add_range(h, kept, KEPT);
    for (unsigned round = 0; round < ROUNDS; round++) {
        kept[round % KEPT] = tree_build(t, DEPTH);
        if (round % 20 == 19) EXPECT_VERIFY(h);
    }
    print_message("  %u trees of depth %u: %llu collections\n", ROUNDS, DEPTH,
                  (unsigned long long)collections(h));
    EXPECT_GE(collections(h), 5u);
    for (unsigned k = 0; k < KEPT; k++) assert_int_equal(tree_count(kept[k], DEPTH), (1u << DEPTH) - 1);
    EXPECT_VERIFY(h);
    gc_root_remove(h, kept);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* gc_write_init misused on an old object: inline, it is the plain store
 * and leaves an old object pointing to a young one on a clean card, which
 * gc_verify reports. The library function, which sanitizer builds call
 * (MULCH_GC_NO_INLINE), keeps the barrier: no problem there. */
static void store_init(gc_thread_t *t, tobj_t *old, tobj_t *young)
{
    gc_write_init(t, old, (void **)&old->slot[0], young); /* the misuse */
}

static void test_generational_write_init_misuse_found_by_verify(void **state)
{
    (void)state;
    TEST_START();
#if defined(MULCH_GC_NO_INLINE)
    verify_after_store(store_init, false);
#else
    verify_after_store(store_init, true);
#endif
}

enum { BIG_SLOTS = 40000 }; /* 320 KiB: a large object */
static void trace_big(void *obj, gc_tracer_t *tracer) { gc_trace_range(tracer, obj, BIG_SLOTS); }
static const gc_type_t T_BIG_SLOTS = { "test.big", trace_big, NULL };

/* Headerless old objects spread over several 4 MiB regions (so the
 * barrier's region cache is exercised), and a large old object:
 * young children stored into them at random survive minor collections,
 * whichever region the object is in and whichever slot of the large
 * object is written. */
static void test_generational_cards_across_regions(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_heap_t *h = generational_heap();
    gc_thread_t *t = gc_thread_attach(h);
    rng_t rng = test_rng("generational regions", 0);
    enum { OLD = 2048, BIG = BIG_SLOTS };
    void **old = calloc(OLD + 1, sizeof *old);
    if (!old) fail();
    gc_root_add_range(h, old, OLD + 1);
    void *filler = NULL;
    gc_push_root(t, &filler);
    for (size_t i = 0; i < OLD; i++) {
        old[i] = mk(t, &T_PLAIN, 1 + i, 2);
        /* filler of the same size between them (the same spans): 8 KiB
         * per old object, so that they are spread over 16 MiB */
        for (size_t k = 0; k < 8 * KiB / tobj_size(2); k++) {
            tobj_t *f = mk(t, &T_PLAIN, 0, 2);
            set_slot(t, f, 0, filler);
            filler = f;
        }
    }
    old[OLD] = gc_alloc(t, &T_BIG_SLOTS, BIG * sizeof(void *));
    if (!old[OLD]) fail();
    filler = NULL;
    gc_collect(t);  /* the old objects are old, and stay in place until the next full collection */
    uintptr_t low = UINTPTR_MAX, high = 0;
    for (size_t i = 0; i < OLD; i++) {
        if ((uintptr_t)old[i] < low) low = (uintptr_t)old[i];
        if ((uintptr_t)old[i] > high) high = (uintptr_t)old[i];
    }
    EXPECT_GE((high - low) >> 22, 3u);               /* they span several regions */
    uint64_t before = collections(h);
    size_t stored = 0;
    for (uint64_t round = 0; round < (uint64_t)scaled(60000, 12000); round++) {
        (void)mk(t, &T_PLAIN, 0, (size_t)rng_below(&rng, 8));     /* young garbage */
        if (rng_below(&rng, 4) == 0) {
            size_t i = (size_t)rng_below(&rng, OLD);
            size_t k = (size_t)rng_below(&rng, NSLOTS);
            void *child = mk(t, &T_PLAIN, 100000 + i * NSLOTS + k, 1);
            set_slot(t, old[i], k, child);
            stored++;
        }
        if (rng_below(&rng, 64) == 0) {
            size_t k = (size_t)rng_below(&rng, BIG);
            void *child = mk(t, &T_PLAIN, 200000 + k, 1);
            void **big = old[OLD];
            gc_write(t, big, &big[k], child);
        }
    }
    EXPECT_GE(collections(h) - before, 3u);
    for (size_t i = 0; i < OLD; i++) {
        EXPECT_OBJ(old[i], 1 + i);
        for (size_t k = 0; k < NSLOTS; k++)
            if (slot_of(old[i], k)) EXPECT_OBJ(slot_of(old[i], k), 100000 + i * NSLOTS + k);
    }
    void **big = old[OLD];
    for (size_t k = 0; k < BIG; k++)
        if (big[k]) EXPECT_OBJ(big[k], 200000 + k);
    print_message("  %zu young children stored into old objects over %zu MiB, %" PRIu64 " collections\n",
                  stored, (size_t)((high - low) >> 20), collections(h) - before);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_root_remove(h, old);
    free(old);
    gc_heap_destroy(h);
}

/* heap_growth NaN means the default: full collections still come, and old
 * garbage does not make the heap grow without bound (NaN made every
 * "live bytes reached the limit" test false). */
static void test_generational_nan_growth_is_default(void **state)
{
    (void)state;
    TEST_START();
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.generational = 1;
    o.heap_growth = (double)NAN;
    o.initial_heap = 64 * KiB;
    gc_heap_t *h = gc_heap_create(&o);
    if (!h) fail();
    gc_thread_t *t = gc_thread_attach(h);
    /* 2 MiB live in a ring of 200-byte objects, replaced one by one: each
     * dies old after surviving a minor collection */
    enum { RING = 10000 };
    void **ring = calloc(RING, sizeof *ring);
    if (!ring) fail();
    gc_root_add_range(h, ring, RING);
    size_t peak = 0;
    for (size_t i = 0; i < (size_t)scaled(200000, 60000); i++) {
        ring[i % RING] = mk(t, &T_PLAIN, i, 20);
        gc_stats_t st;
        if (i % 1000 == 0) {
            gc_get_stats(h, &st);
            if (st.heap_bytes > peak) peak = st.heap_bytes;
        }
    }
    print_message("  peak heap %zu KiB for about %zu KiB live\n", peak >> 10, (size_t)RING * tobj_size(20) >> 10);
    EXPECT_LE(peak, 16 * MiB);
    EXPECT_VERIFY(h);
    gc_root_remove(h, ring);
    free(ring);
    gc_heap_destroy(h);
}

/* Memory held outside the heap (gc_external_alloc) counts in the budget of
 * minor collections as in that of full ones: a heap that declared 64 MiB
 * outside does not collect every initial_heap bytes after a minor one. */
static void test_generational_external_bytes_in_minor_budget(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = generational_heap();              /* initial_heap 64 KiB */
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = NULL;
    gc_push_root(t, &keep);
    keep = mk(t, &T_PLAIN, 1, 8);
    gc_collect(t);                                   /* full: a tiny basis */
    gc_external_alloc(h, (ptrdiff_t)(64 * MiB));     /* counts as allocation too */
    (void)mk(t, &T_PLAIN, 2, 8);                     /* so this collects: a minor one */
    uint64_t before = collections(h);
    for (size_t i = 0; i < 4 * MiB / tobj_size(8); i++) (void)mk(t, &T_PLAIN, 3, 8);
    uint64_t during = collections(h) - before;
    print_message("  %" PRIu64 " collections for 4 MiB of garbage after the minor one\n", during);
    EXPECT_LE(during, 3u);
    gc_external_alloc(h, -(ptrdiff_t)(64 * MiB));
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
}

/* A chain of about `bytes` of objects in *root (a rooted slot), made old
 * by a full collection. */
static void old_chain(gc_thread_t *t, void **root, size_t bytes)
{
    for (size_t made = 0; made < bytes; made += tobj_size(8)) {
        tobj_t *node = mk(t, &T_PLAIN, 7, 8);
        set_slot(t, node, 0, *root);
        *root = node;
    }
    gc_collect(t);
}

/* Old data that dies while nothing new is promoted (a load spike, then
 * dropped) is reclaimed without gc_collect: no promotion makes the old
 * space grow, so before session 37 no full collection ever came and the
 * heap kept growth x the spike (a review's service: 1.8 GiB resident for
 * 20 MiB live, through 10 GiB of allocation). A full collection now comes
 * once the heap allocated growth x the last full collection's live
 * bytes. */
static void test_generational_dropped_old_data_is_reclaimed(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = generational_heap();
    gc_thread_t *t = gc_thread_attach(h);
    void *spike = NULL;
    gc_push_root(t, &spike);
    size_t spike_bytes = scaled(16 * MiB, 4 * MiB);
    old_chain(t, &spike, spike_bytes);
    gc_stats_t s;
    gc_get_stats(h, &s);
    EXPECT_GE(s.live_bytes, spike_bytes);
    uint64_t full_before = s.collections - s.collections_minor;
    spike = NULL;                                    /* dropped */
    size_t churned = 0, reclaimed_at = 0;
    for (; churned < 16 * spike_bytes && reclaimed_at == 0; churned += tobj_size(8)) {
        (void)mk(t, &T_PLAIN, 3, 8);
        if (churned % (256 * KiB) == 0) {
            gc_get_stats(h, &s);
            if (s.heap_bytes < spike_bytes / 2) reclaimed_at = churned + 1;
        }
    }
    gc_get_stats(h, &s);
    print_message("  %zu MiB spike dropped: heap %zu KiB after %zu MiB allocated, %" PRIu64
                  " full collection(s) since\n", spike_bytes / MiB, s.heap_bytes / KiB, churned / MiB,
                  s.collections - s.collections_minor - full_before);
    if (reclaimed_at == 0)
        T_FAIL("the dropped spike's memory stayed in the heap through %zu MiB of allocation", churned / MiB);
    EXPECT_LE(churned, 4 * spike_bytes);             /* about growth (2) x the spike, and its collection */
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
}

/* Old data that stays live is checked seldom: each check that finds it
 * live makes the next wait 4 times as long (up to 32), so a long-lived
 * structure under steady churn pays a few full collections, not one per
 * heap_growth x live of allocation. */
static void test_generational_checks_back_off_when_old_data_lives(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = generational_heap();
    gc_thread_t *t = gc_thread_attach(h);
    void *kept = NULL;
    gc_push_root(t, &kept);
    size_t kept_bytes = scaled(8 * MiB, 2 * MiB);
    old_chain(t, &kept, kept_bytes);
    gc_stats_t s;
    gc_get_stats(h, &s);
    uint64_t full_before = s.collections - s.collections_minor;
    /* 40 x the live data: checks at 2, 2 + 8 and 2 + 8 + 32 x it */
    for (size_t churned = 0; churned < 40 * kept_bytes; churned += tobj_size(8)) (void)mk(t, &T_PLAIN, 3, 8);
    gc_get_stats(h, &s);
    uint64_t checks = s.collections - s.collections_minor - full_before;
    print_message("  %" PRIu64 " full collection(s) in %" PRIu64 " while %zu MiB stayed live\n", checks,
                  s.collections, kept_bytes / MiB);
    EXPECT_GE(checks, 1u);
    EXPECT_LE(checks, 3u);
    size_t n = 0;
    for (tobj_t *node = kept; node; node = slot_of(node, 0)) n++;
    EXPECT_EQ(n, (kept_bytes + tobj_size(8) - 1) / tobj_size(8));
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_generational");
    mt_env_ignore_policy();
    mt_env_ignore("MULCH_GC_COMPACT");
    mt_env_ignore("MULCH_GC_GENERATIONAL");
    mt_env_ignore("MULCH_GC_VERIFY");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_generational_barrier_keeps_young_children),
        T(test_generational_minor_collections_free_young_garbage),
        T(test_generational_verify_finds_missing_barrier),
        T(test_generational_verify_env_checks_each_collection),
        T(test_generational_write_init_through_minor_collections),
        T(test_generational_write_init_misuse_found_by_verify),
        T(test_generational_cards_across_regions),
        T(test_generational_nan_growth_is_default),
        T(test_generational_verify_finds_freed_young_in_old),
        T(test_generational_external_bytes_in_minor_budget),
        T(test_generational_dropped_old_data_is_reclaimed),
        T(test_generational_checks_back_off_when_old_data_lives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
