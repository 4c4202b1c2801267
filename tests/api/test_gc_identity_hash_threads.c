/* gc_identity_hash from several threads while another collects and moves
 * everything: a hash handed out once stays the object's, whether a later
 * call finds it without the lock (a running attached thread) or under it,
 * across table growth and rebuilds (run under tsan too). */
#define _GNU_SOURCE 1
#define DEFAULT_SEED UINT64_C(0x6964686173680001)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <sched.h>
#include <stdbool.h>

#include "mulch_test.h"

enum { SLOTS = 256 };

static gc_heap_t *g_heap;
static atomic_int g_stop;
static atomic_int g_collections; /* by the collector thread */

static void *hasher(void *arg)
{
    uintptr_t who = (uintptr_t)arg;
    rng_t r = test_rng("hasher", who);
    gc_thread_t *t = gc_thread_attach(g_heap);
    void *slot[SLOTS] = { 0 };
    uintptr_t first[SLOTS] = { 0 };
    bool hashed[SLOTS] = { false };
    gc_root_add_range(g_heap, slot, SLOTS);
    /* (and until the collector has collected a few times since this
     * hasher started: a fast hasher could otherwise be done before the
     * first collection, and collections of the heap before any hasher
     * allocated move nothing: CI once saw 699 such and 0 bytes moved) */
    const int collections_at_start = atomic_load(&g_collections);
    for (long i = 0; i < (long)scaled(200000, 20000) || atomic_load(&g_collections) < collections_at_start + 4;
         i++) {
        size_t k = (size_t)rng_below(&r, SLOTS);
        if (slot[k] == NULL || rng_below(&r, 8) == 0) {
            /* a new object (a GC point: the others may move meanwhile) */
            tobj_t *o = gc_alloc(t, &T_PLAIN, tobj_size(rng_below(&r, 4)));
            if (o == NULL) AFAIL("gc_alloc failed");
            o->magic = OBJ_MAGIC;
            o->id = k;
            slot[k] = o;
            hashed[k] = false;
            continue;
        }
        uintptr_t h = gc_identity_hash(slot[k]);
        if (!hashed[k]) {
            first[k] = h;
            hashed[k] = true;
        } else if (h != first[k]) {
            AFAIL("identity hash changed");
        }
        if (i % 1024 == 0) gc_safepoint(t);
    }
    gc_root_remove(g_heap, slot);
    gc_thread_detach(t);
    return NULL;
}

static void *collector(void *arg)
{
    (void)arg;
    gc_thread_t *t = gc_thread_attach(g_heap);
    while (!atomic_load(&g_stop)) {
        gc_collect(t);
        atomic_fetch_add(&g_collections, 1);
        sched_yield();
    }
    gc_thread_detach(t);
    return NULL;
}

static void test_identity_hash_threads(void **state)
{
    (void)state;
    TEST_START();
    gc_options_t o = { 0 };
    o.initial_heap = 256 * KiB;
    o.compaction = GC_COMPACT_ALWAYS;
    g_heap = gc_heap_create(&o);
    atomic_store(&g_stop, 0);
    atomic_store(&g_collections, 0);
    pthread_t c, w[2];
    pthread_create(&c, NULL, collector, NULL);
    for (uintptr_t i = 0; i < 2; i++) pthread_create(&w[i], NULL, hasher, (void *)i);
    for (int i = 0; i < 2; i++) pthread_join(w[i], NULL);
    atomic_store(&g_stop, 1);
    pthread_join(c, NULL);
    gc_stats_t stats;
    gc_get_stats(g_heap, &stats);
    print_message("  %" PRIu64 " collections, %" PRIu64 " bytes moved\n", stats.collections, stats.bytes_moved);
    EXPECT_GE(stats.bytes_moved, 1);
    EXPECT_VERIFY(g_heap);
    EXPECT_NO_ASYNC_FAILURES();
    gc_heap_destroy(g_heap);
}

int main(void)
{
    mt_init("test_gc_identity_hash_threads");
    /* every collection moves: the point (minor collections move nothing) */
    mt_env_ignore("MULCH_GC_COMPACT");
    mt_env_ignore("MULCH_GC_GENERATIONAL");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity_hash_threads, setup_rec, teardown_rec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
