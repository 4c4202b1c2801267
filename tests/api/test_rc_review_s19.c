/* test_rc_review_s19.c — black-box regression tests from review session 19
 * (<mulch/rc.h>, docs/rc.md "Errors and misuse", "The bridge to the
 * collector"):
 *   - a handle's last rc_release from a heap-walk callback is reported and
 *     its memory stays with the heap (its slot still names it): the memory
 *     then stayed allocated in the default pool for ever, after
 *     gc_heap_destroy too (one cell leaked per such release), and for ever
 *     at once when the handle's heap was destroyed already.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372631901)
#include <mulch/gc.h>
#include <mulch/rc.h>

#include <stdbool.h>

#include "rc_test.h"

static const gc_type_t T_PLAIN = { "test.rc.s19.plain", NULL, NULL };

static void *g_walk_victim;

/* Owns the only reference to a handle. */
static void holder_destroy(void *obj)
{
    rc_release(*(void **)obj);
}

/* Drops the holder (and with it the handle) from inside a heap walk. */
static void walk_release(void *obj, const gc_type_t *type, size_t size, void *ctx)
{
    (void)obj, (void)type, (void)size, (void)ctx;
    void *v = g_walk_victim;
    g_walk_victim = NULL;
    if (v) rc_release(v);
}

static size_t default_pool_live(void)
{
    return stats_of(pool_default()).live_allocations;
}

/* A holder owning the only reference to a new handle of `heap` to `obj`. */
static void *handle_in_holder(gc_heap_t *heap, void *obj)
{
    gc_handle_t *handle = gc_handle_new(heap, obj);
    EXPECT_NONNULL(handle);
    void **holder = rc_alloc(sizeof(void *), holder_destroy);
    EXPECT_NONNULL(holder);
    *holder = handle;
    return holder;
}

/* The walk runs over `walked` (with one object in it, so that the callback
 * runs), the handle belongs to `heap`; `heap_gone` destroys `heap` before
 * the walk. */
static void release_handle_in_walk(bool same_heap, bool heap_gone)
{
    size_t base = default_pool_live();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_heap_t *walked = same_heap ? heap : gc_heap_create(NULL);
    EXPECT_NONNULL(walked);
    gc_thread_t *t = gc_thread_attach(walked);
    EXPECT_NONNULL(t);
    void *root = gc_alloc(t, &T_PLAIN, 32);
    EXPECT_NONNULL(root);
    gc_root_add(walked, &root);
    void *target = same_heap ? root : NULL;
    g_walk_victim = handle_in_holder(heap, target);
    if (heap_gone) gc_heap_destroy(heap);

    unsigned long r = rec_count();
    (void)gc_heap_walk(walked, walk_release, NULL);
    EXPECT_ONE_REPORT(r, "gc_handle's last rc_release: called from", NULL);
    EXPECT_EQ(g_walk_victim, NULL);

    r = rec_count();
    gc_root_remove(walked, &root);
    gc_thread_detach(t);
    gc_heap_destroy(walked);
    if (!same_heap && !heap_gone) gc_heap_destroy(heap);
    EXPECT_NO_REPORTS(r);
    /* holder and handle are both back in the pool */
    EXPECT_EQ(default_pool_live(), base);
}

static void test_rc_handle_released_in_walk_freed_at_heap_destroy(void **state)
{
    (void)state;
    TEST_START();
    release_handle_in_walk(true, false);
}

static void test_rc_other_heaps_handle_released_in_walk_freed(void **state)
{
    (void)state;
    TEST_START();
    release_handle_in_walk(false, false);
}

static void test_rc_dead_heaps_handle_released_in_walk_freed(void **state)
{
    (void)state;
    TEST_START();
    release_handle_in_walk(false, true);
}

int main(void)
{
    mt_init("test_rc_review_s19");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_handle_released_in_walk_freed_at_heap_destroy),
        T(test_rc_other_heaps_handle_released_in_walk_freed),
        T(test_rc_dead_heaps_handle_released_in_walk_freed),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
