/* test_gc_compact.c — black-box tests of moving collection (compaction):
 * with GC_COMPACT_ALWAYS objects move and every kind of slot is rewritten
 * (global roots, ranges, root stacks, traced fields, weak references, rc
 * handles, finalizable objects) with contents intact; pinned objects keep
 * their address (pins nest); identity hashes survive moves; GC_COMPACT_NEVER
 * never moves; GC_COMPACT_AUTO evacuates a fragmented heap and gives the
 * emptied spans back; with no room for copies the collection still
 * succeeds, marking in place.
 *
 * Deterministic: random choices come from MULCH_TEST_SEED (printed). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630c01)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>
#include <mulch/rc.h>

#include "mulch_test.h"

static uint64_t moved_bytes(gc_heap_t *h)
{
    gc_stats_t s;
    gc_get_stats(h, &s);
    return s.bytes_moved;
}

/* Every kind of slot is rewritten when its referent moves. */
static void test_compact_always_rewrites_every_slot(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(h);
    void *global = NULL, *range[3] = { NULL, NULL, NULL }, *local = NULL;
    gc_root_add(h, &global);
    gc_root_add_range(h, range, 3);
    gc_push_root(t, &local);
    global = mk(t, &T_PLAIN, 1, 3);
    range[1] = mk(t, &T_PLAIN, 2, 5);
    local = mk(t, &T_PLAIN, 3, 0);
    mk_child(t, &local, 0, &T_PLAIN, 4, 2);                 /* traced field */
    void *weak = gc_weak_new(t, slot_of(local, 0));
    set_slot(t, local, 1, weak);                            /* keeps the weak ref alive */
    mk_child(t, &local, 2, &T_FIN, 5, 1);                   /* finalizable, reachable */
    gc_handle_t *handle = gc_handle_new(h, mk(t, &T_PLAIN, 6, 4));
    EXPECT_NONNULL(handle);
    uintptr_t before[4] = { (uintptr_t)global, (uintptr_t)range[1], (uintptr_t)local,
                            (uintptr_t)gc_handle_get(handle) };
    uintptr_t hash = gc_identity_hash(global);
    gc_collect(t);
    EXPECT_GE(moved_bytes(h), 4u * 16u);
    EXPECT_NE((uintptr_t)global, before[0]);
    EXPECT_NE((uintptr_t)range[1], before[1]);
    EXPECT_NE((uintptr_t)local, before[2]);
    EXPECT_NE((uintptr_t)gc_handle_get(handle), before[3]);
    EXPECT_OBJ(global, 1);
    EXPECT_OBJ(range[1], 2);
    EXPECT_OBJ(local, 3);
    EXPECT_OBJ(slot_of(local, 0), 4);
    EXPECT_PTR_EQ(gc_weak_get(slot_of(local, 1)), slot_of(local, 0));
    EXPECT_OBJ(slot_of(local, 2), 5);
    EXPECT_OBJ(gc_handle_get(handle), 6);
    EXPECT_EQ(gc_identity_hash(global), hash);
    for (int round = 0; round < 3; round++) gc_collect(t);
    EXPECT_EQ(gc_identity_hash(global), hash);
    EXPECT_OBJ(slot_of(local, 0), 4);
    EXPECT_FIN(5, 0);
    /* The finalizer gets the moved object, intact. */
    set_slot(t, local, 2, NULL);
    gc_collect(t);
    EXPECT_FIN(5, 1);
    EXPECT_VERIFY(h);
    rc_release(handle);
    gc_pop_roots(t, 1);
    gc_root_remove(h, range);
    gc_root_remove(h, &global);
    gc_heap_destroy(h);
}

/* Pinned objects stay; their referents may move; pins nest. */
static void test_compact_pins_hold_and_nest(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(h);
    void *p = mk(t, &T_PLAIN, 1, 2);
    gc_pin(h, p);
    gc_pin(h, p);
    /* Another size class, so another span: pinning keeps a whole span. */
    mk_child(t, &p, 0, &T_PLAIN, 2, 40);
    uintptr_t child = (uintptr_t)slot_of(p, 0), where = (uintptr_t)p;
    gc_collect(t);
    EXPECT_EQ((uintptr_t)p, where);
    EXPECT_OBJ(p, 1);
    EXPECT_OBJ(slot_of(p, 0), 2);
    EXPECT_NE((uintptr_t)slot_of(p, 0), child);          /* the referent moved */
    gc_unpin(h, p);                                      /* still pinned once */
    gc_collect(t);
    EXPECT_EQ((uintptr_t)p, where);
    EXPECT_OBJ(p, 1);
    void *rooted = p;
    gc_push_root(t, &rooted);
    gc_unpin(h, p);                                      /* now free to move */
    gc_collect(t);
    EXPECT_NE((uintptr_t)rooted, where);
    EXPECT_OBJ(rooted, 1);
    EXPECT_OBJ(slot_of(rooted, 0), 2);
    gc_pop_roots(t, 1);
    EXPECT_VERIFY(h);
    gc_heap_destroy(h);
}

static void test_compact_never_does_not_move(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_NEVER);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep[64];
    gc_root_add_range(h, keep, 64);
    for (int i = 0; i < 64; i++) keep[i] = NULL;
    uintptr_t where[64];
    for (int i = 0; i < 64; i++) {
        keep[i] = mk(t, &T_PLAIN, (uint64_t)i, 1);
        where[i] = (uintptr_t)keep[i];
        for (int g = 0; g < 20; g++) (void)mk(t, &T_PLAIN, 1000, 1);   /* garbage around it */
    }
    for (int round = 0; round < 3; round++) gc_collect(t);
    for (int i = 0; i < 64; i++) {
        EXPECT_EQ((uintptr_t)keep[i], where[i]);
        EXPECT_OBJ(keep[i], i);
    }
    EXPECT_EQ(moved_bytes(h), 0);
    gc_root_remove(h, keep);
    gc_heap_destroy(h);
}

/* A sparse heap: AUTO moves the survivors together and returns spans. */
static void test_compact_auto_defragments(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    enum { N = 40000, KEEP_EVERY = 10 };
    void *list = NULL;
    gc_push_root(t, &list);
    /* A list of survivors interleaved with garbage of the same class. */
    for (uint64_t i = 0; i < N; i++) {
        void *n = mk(t, &T_PLAIN, i % MAX_IDS, 1);
        if (i % KEEP_EVERY == 0) {
            set_slot(t, n, 0, list);
            list = n;
        }
    }
    gc_collect(t);                            /* finds the sparse spans */
    gc_stats_t sparse;
    gc_get_stats(h, &sparse);
    gc_collect(t);                            /* evacuates them */
    gc_stats_t dense;
    gc_get_stats(h, &dense);
    print_message("  heap %zu -> %zu bytes, live %zu, moved %" PRIu64 "\n", sparse.heap_bytes, dense.heap_bytes,
                  dense.live_bytes, dense.bytes_moved);
    EXPECT_GE(dense.bytes_moved, (uint64_t)(N / KEEP_EVERY / 2) * 16u);
    EXPECT_LT(dense.heap_bytes * 2, sparse.heap_bytes);
    EXPECT_LE(dense.heap_bytes * 10, dense.live_bytes * 13 + 10 * 65536u);
    uint64_t count = 0;
    for (void *n = list; n; n = slot_of(n, 0)) {
        uint64_t i = (N / KEEP_EVERY - 1 - count) * KEEP_EVERY;
        EXPECT_OBJ(n, i % MAX_IDS);
        count++;
    }
    EXPECT_EQ(count, N / KEEP_EVERY);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
}

/* No space for copies (max_heap reached): objects are marked in place. */
static void test_compact_without_room_marks_in_place(void **state)
{
    (void)state;
    TEST_START();
    size_t max = 2 * MiB;
    gc_heap_t *h = heap_new(0, max, GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(h);
    void *list = NULL;
    gc_push_root(t, &list);
    uint64_t n = 0;
    for (;; n++) {
        void *o = gc_alloc(t, &T_PLAIN, tobj_size(2));
        if (o == NULL) break;
        tobj_t *obj = o;
        obj->magic = OBJ_MAGIC;
        obj->id = n % MAX_IDS;
        obj->nwords = 2;
        for (size_t i = 0; i < 2; i++) obj->words[i] = payload_word(obj->id, i);
        obj->slot[0] = list;
        list = o;
    }
    EXPECT_GE(n, 1000u);
    gc_collect(t);
    uint64_t count = 0;
    for (void *o = list; o; o = slot_of(o, 0)) {
        EXPECT_OBJ(o, (n - 1 - count) % MAX_IDS);
        count++;
    }
    EXPECT_EQ(count, n);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
}

/* While a finalizer runs, its object and everything reachable from it stay
 * alive and unmoved (API.md, "Finalizers"), even when the finalizer itself
 * collects with every span flagged for evacuation. */
static gc_thread_t *g_nested_thread;
static atomic_uint g_nested_moves, g_nested_runs;

static void fin_collects(void *obj)
{
    tobj_t *o = obj;
    void *child = o->slot[0], *grandchild = child ? slot_of(child, 0) : NULL;
    atomic_fetch_add(&g_nested_runs, 1);
    gc_collect(g_nested_thread); /* nested: evacuates every span it may */
    if (o->slot[0] != child || (child && slot_of(child, 0) != grandchild)) {
        atomic_fetch_add(&g_nested_moves, 1);
        AFAIL("finalizer of id %" PRIu64 ": its referents moved (%p -> %p) while it ran", o->id, child,
              o->slot[0]);
        return;
    }
    const char *why = child ? obj_problem(child, o->id + 1) : "no child";
    if (!why && grandchild) why = obj_problem(grandchild, o->id + 2);
    if (why) AFAIL("finalizer of id %" PRIu64 ": a referent is damaged: %s", o->id, why);
}

static const gc_type_t T_FIN_COLLECTS = { "test.fin_collects", trace_tobj, fin_collects };

static void test_compact_finalizer_referents_stay_put(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(h);
    g_nested_thread = t;
    atomic_store(&g_nested_moves, 0);
    atomic_store(&g_nested_runs, 0);
    void *owner = NULL;
    gc_push_root(t, &owner);
    enum { OWNERS = 6 };
    for (uint64_t k = 0; k < OWNERS; k++) {
        owner = mk(t, &T_FIN_COLLECTS, 100 + 10 * k, 1);
        mk_child(t, &owner, 0, &T_PLAIN, 100 + 10 * k + 1, 2);
        void *c = slot_of(owner, 0);
        gc_push_root(t, &c);
        mk_child(t, &c, 0, &T_PLAIN, 100 + 10 * k + 2, 3);
        gc_pop_roots(t, 1);
    }
    owner = NULL;
    gc_collect(t); /* every owner dies: each finalizer collects again */
    EXPECT_EQ(atomic_load(&g_nested_runs), OWNERS);
    EXPECT_EQ(atomic_load(&g_nested_moves), 0);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
    gc_collect(t);
    EXPECT_VERIFY(h);
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_compact");
    mt_env_ignore("MULCH_GC_COMPACT");
    mt_env_ignore("MULCH_GC_GENERATIONAL");
    /* when collections come decides which spans are sparse: with a 64 KiB
     * MULCH_GC_INITIAL_HEAP the allocation loop's own collections compact
     * the heap before test_compact_auto_defragments looks */
    mt_env_ignore_policy();
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_compact_always_rewrites_every_slot),
        T(test_compact_pins_hold_and_nest),
        T(test_compact_never_does_not_move),
        T(test_compact_auto_defragments),
        T(test_compact_without_room_marks_in_place),
        T(test_compact_finalizer_referents_stay_put),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
