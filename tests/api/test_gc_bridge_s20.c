/* test_gc_bridge_s20.c — review session 20: the rc bridge across compaction
 * and gc_heap_destroy (docs/rc.md "The bridge to the collector").
 *
 * GC objects own rc objects (gc_own_rc); some are rooted by handles, some by
 * registered roots, some are garbage, among garbage that fragments their
 * spans, in a heap that compacts at every collection. Each owned reference
 * must be released exactly once: the garbage owners' after the collection
 * that reclaims them, a released handle's owner's after the next one, and
 * the rest at gc_heap_destroy; handles must follow their objects' moves
 * and answer NULL after the destroy. (No bug found; a regression test,
 * also run as _compact_always and _generational.)
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6362722001)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/rc.h>

#include "mulch_test.h"

#define N_OWNERS 240

typedef struct {
    uint64_t id;
} owned_t;

static atomic_uint g_released[N_OWNERS];

static void owned_destroy(void *obj)
{
    owned_t *o = obj;
    if (o->id >= N_OWNERS) {
        AFAIL("destroy of a damaged owned object %p (id %" PRIu64 ")", obj, o->id);
        return;
    }
    if (atomic_fetch_add(&g_released[o->id], 1) != 0) AFAIL("owned object %" PRIu64 " destroyed twice", o->id);
}

static void *g_rooted[N_OWNERS];
static gc_handle_t *g_handles[N_OWNERS];

/* group of owner i: 0 handle, 1 registered root, 2 garbage */
static unsigned group_of(uint64_t i) { return (unsigned)(i % 3); }

static void expect_released(unsigned group, unsigned want, const char *when)
{
    for (uint64_t i = 0; i < N_OWNERS; i++) {
        if (group_of(i) != group) continue;
        unsigned got = atomic_load(&g_released[i]);
        if (got != want) T_FAIL("%s: owned object %" PRIu64 " (group %u) released %u time(s), expected %u", when, i,
                                group, got, want);
    }
}

static void test_gc_bridge_owned_and_handles_across_compaction_and_destroy(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    rng_t r = test_rng("gc_bridge_s20", 0);
    for (size_t i = 0; i < N_OWNERS; i++) atomic_store(&g_released[i], 0);
    gc_heap_t *heap = heap_new(0, 0, GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    for (uint64_t i = 0; i < N_OWNERS; i++) {
        for (uint64_t j = rng_below(&r, 4); j > 0; j--) (void)mk(t, &T_PLAIN, MAX_IDS - 1, rng_below(&r, 12));
        tobj_t *o = mk(t, &T_PLAIN, i, 1 + rng_below(&r, 12)); /* no GC point until rooted */
        if (group_of(i) == 0) {
            g_handles[i] = gc_handle_new(heap, o);
            EXPECT_NONNULL(g_handles[i]);
        } else if (group_of(i) == 1) {
            g_rooted[i] = o;
            gc_root_add(heap, &g_rooted[i]);
        }
        owned_t *rc = rc_alloc(sizeof *rc, owned_destroy);
        EXPECT_NONNULL(rc);
        rc->id = i;
        EXPECT_EQ(gc_own_rc(t, o, rc), 0);
        rc_release(rc); /* the GC object holds the only reference */
    }
    for (int round = 0; round < 3; round++) {
        gc_collect(t);
        expect_released(2, 1, "after a collection");
        expect_released(0, 0, "after a collection");
        expect_released(1, 0, "after a collection");
        for (uint64_t i = 0; i < N_OWNERS; i++) {
            if (group_of(i) == 0) EXPECT_OBJ(gc_handle_get(g_handles[i]), i);
            if (group_of(i) == 1) EXPECT_OBJ(g_rooted[i], i);
        }
        EXPECT_VERIFY(heap);
    }
    /* every other handle goes: its owner's reference with the next collection */
    for (uint64_t i = 0; i < N_OWNERS; i += 6) {
        rc_release(g_handles[i]);
        g_handles[i] = NULL;
    }
    gc_collect(t);
    for (uint64_t i = 0; i < N_OWNERS; i++)
        if (group_of(i) == 0) EXPECT_EQ(atomic_load(&g_released[i]), i % 6 == 0 ? 1u : 0u);
    expect_released(1, 0, "after the handles' release");
    for (uint64_t i = 0; i < N_OWNERS; i++)
        if (g_handles[i]) EXPECT_OBJ(gc_handle_get(g_handles[i]), i);
    print_message("  %" PRIu64 " bytes moved by compaction\n", stats_of(heap).bytes_moved);
    gc_thread_detach(t);
    gc_heap_destroy(heap); /* releases the rest (the roots stay registered: the heap goes) */
    expect_released(0, 1, "after gc_heap_destroy");
    expect_released(1, 1, "after gc_heap_destroy");
    expect_released(2, 1, "after gc_heap_destroy");
    for (uint64_t i = 0; i < N_OWNERS; i++) {
        if (g_handles[i] == NULL) continue;
        EXPECT_NULL(gc_handle_get(g_handles[i]));
        rc_release(g_handles[i]); /* outlives its heap: just freed */
        g_handles[i] = NULL;
    }
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_bridge_s20");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_bridge_owned_and_handles_across_compaction_and_destroy),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
