/* test_rc_review_s19.c — black-box regression tests from review session 19
 * (<mulch/rc.h>, docs/rc.md "Errors and misuse", "The bridge to the
 * collector"):
 *   - a handle's last rc_release from a heap-walk callback is reported and
 *     its memory stays with the heap (its slot still names it): the memory
 *     then stayed allocated in the default pool for ever, after
 *     gc_heap_destroy too (one cell leaked per such release), and for ever
 *     at once when the handle's heap was destroyed already.
 *   - an rc destroy callback that calls gc_heap_destroy (or gc_collect):
 *     the rc objects the heap's GC objects owned (gc_own_rc) were released
 *     there, but their destroys queued behind the running callback and ran
 *     after gc_heap_destroy returned; one that used the heap, as the guide
 *     allows ("may still make handles ... on the heap being destroyed"),
 *     touched a destroyed heap (a crash).
 *   - reports docs/rc.md "Errors and misuse" promises that no test checked:
 *     rc_count, rc_weak_new and gc_own_rc on the object whose destroy runs
 *     (from inside it), gc_own_rc with a NULL or foreign rc object, and a
 *     handle's last release from a root callback or a trace function.
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
    void *handle = *(void **)g_walk_victim;
    if (heap_gone) gc_heap_destroy(heap);

    unsigned long r = rec_count();
    (void)gc_heap_walk(walked, walk_release, NULL);
    EXPECT_ONE_REPORT(r, "gc_handle's last rc_release: called from", handle); /* was NULL */
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

static gc_heap_t *g_heap;
static int g_inside;            /* 1 while the outer callback's call runs */
static int g_owned_runs, g_owned_inside;
static gc_handle_t *g_late_handle;

/* An owned object's destroy: uses the heap, which must still be there. */
static void owned_destroy(void *obj)
{
    (void)obj;
    g_owned_runs++;
    g_owned_inside += g_inside;
    if (g_inside) g_late_handle = gc_handle_new(g_heap, NULL);
}

static void destroy_heap(void *obj)
{
    (void)obj;
    g_inside = 1;
    gc_heap_destroy(g_heap);
    g_inside = 0;
}

static gc_thread_t *g_collector;
static void collect_heap(void *obj)
{
    (void)obj;
    g_inside = 1;
    gc_collect(g_collector);
    g_inside = 0;
}

/* A heap whose GC object owns an rc object with owned_destroy. */
static void heap_with_owned(void **root, gc_thread_t **t)
{
    g_owned_runs = g_owned_inside = 0;
    g_late_handle = NULL;
    g_heap = gc_heap_create(NULL);
    EXPECT_NONNULL(g_heap);
    *t = gc_thread_attach(g_heap);
    EXPECT_NONNULL(*t);
    *root = gc_alloc(*t, &T_PLAIN, 16);
    EXPECT_NONNULL(*root);
    void *owned = rc_alloc(16, owned_destroy);
    EXPECT_NONNULL(owned);
    EXPECT_EQ(gc_own_rc(*t, *root, owned), 0);
    rc_release(owned);
}

static void test_rc_owned_destroys_run_inside_heap_destroy_from_callback(void **state)
{
    (void)state;
    TEST_START();
    void *root;
    gc_thread_t *t;
    heap_with_owned(&root, &t);
    (void)root; /* not rooted: gc_heap_destroy releases what it owns anyway */
    gc_thread_detach(t);
    unsigned long r = rec_count();
    rc_release(rc_alloc(16, destroy_heap));
    EXPECT_EQ(g_owned_runs, 1);
    EXPECT_EQ(g_owned_inside, 1); /* inside gc_heap_destroy, while the heap lives */
    EXPECT_NONNULL(g_late_handle);
    EXPECT_EQ(gc_handle_get(g_late_handle), NULL); /* as any handle of a destroyed heap */
    rc_release(g_late_handle);
    EXPECT_NO_REPORTS(r);
}

static void test_rc_owned_destroys_run_inside_collect_from_callback(void **state)
{
    (void)state;
    TEST_START();
    void *root;
    heap_with_owned(&root, &g_collector);
    root = NULL; /* garbage: the next collection releases what it owns */
    unsigned long r = rec_count();
    rc_release(rc_alloc(16, collect_heap));
    EXPECT_EQ(g_owned_runs, 1);
    EXPECT_EQ(g_owned_inside, 1); /* gc_collect returns after the release */
    EXPECT_NONNULL(g_late_handle);
    rc_release(g_late_handle);
    EXPECT_NO_REPORTS(r);
    gc_thread_detach(g_collector);
    gc_heap_destroy(g_heap);
}

/* The same gc_collect, from a callback that has a destroy pending behind
 * it (an object of pool P whose last reference it released): the owned
 * object's destroy destroys P, which must run that pending destroy too
 * (docs/rc.md "Destroy callbacks"), though it waits on the callback's list. */
static pool_t *g_pool;
static recobj_t *g_pending_obj;
static int g_pool_destroyed_inside;

static void owned_destroys_pool(void *obj)
{
    (void)obj;
    g_owned_runs++;
    g_owned_inside += g_inside;
    pool_destroy(g_pool);
    g_pool_destroyed_inside += g_inside;
}

static void release_then_collect(void *obj)
{
    (void)obj;
    rc_release(g_pending_obj); /* its destroy waits behind this callback */
    g_inside = 1;
    gc_collect(g_collector);
    g_inside = 0;
}

static void test_rc_owned_destroy_destroys_pool_of_pending_object(void **state)
{
    (void)state;
    TEST_START();
    destroy_reset();
    g_owned_runs = g_owned_inside = g_pool_destroyed_inside = 0;
    g_heap = gc_heap_create(NULL);
    EXPECT_NONNULL(g_heap);
    g_collector = gc_thread_attach(g_heap);
    EXPECT_NONNULL(g_collector);
    void *owner = gc_alloc(g_collector, &T_PLAIN, 16); /* unrooted: garbage */
    EXPECT_NONNULL(owner);
    void *owned = rc_alloc(16, owned_destroys_pool);
    EXPECT_NONNULL(owned);
    EXPECT_EQ(gc_own_rc(g_collector, owner, owned), 0);
    rc_release(owned);
    owner = NULL;
    g_pool = pool_create(NULL);
    EXPECT_NONNULL(g_pool);
    g_pending_obj = mk_rec(g_pool, 1);
    unsigned long r = rec_count();
    rc_release(rc_alloc(16, release_then_collect));
    EXPECT_EQ(g_owned_runs, 1);
    EXPECT_EQ(g_pool_destroyed_inside, 1);
    EXPECT_DESTROYS(1); /* the pending object's, run by pool_destroy */
    EXPECT_NO_REPORTS(r);
    gc_thread_detach(g_collector);
    gc_heap_destroy(g_heap);
}

/* ---- promised reports ---------------------------------------------------- */

static gc_thread_t *g_self_thread;
static void *g_self_owner;
static int g_self_destroys;

/* Every call on the object itself is a use after release (its count is 0). */
static void self_use_destroy(void *obj)
{
    g_self_destroys++;
    unsigned long r = rec_count();
    EXPECT_EQ(rc_count(obj), 0);
    EXPECT_ONE_REPORT(r, "rc_count: object already destroyed", obj);
    r = rec_count();
    EXPECT_EQ(rc_weak_new(obj), NULL);
    EXPECT_ONE_REPORT(r, "rc_weak_new: object already destroyed", obj);
    r = rec_count();
    EXPECT_EQ(gc_own_rc(g_self_thread, g_self_owner, obj), -1);
    EXPECT_ONE_REPORT(r, "gc_own_rc: object already destroyed", obj);
}

static void test_rc_calls_on_itself_inside_destroy_reported(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    g_self_thread = gc_thread_attach(heap);
    EXPECT_NONNULL(g_self_thread);
    g_self_owner = gc_alloc(g_self_thread, &T_PLAIN, 16);
    EXPECT_NONNULL(g_self_owner);
    gc_root_add(heap, &g_self_owner);
    g_self_destroys = 0;
    void *obj = rc_alloc(16, self_use_destroy);
    EXPECT_NONNULL(obj);
    rc_release(obj);
    EXPECT_EQ(g_self_destroys, 1);

    /* gc_own_rc's rc object NULL, or not an rc object: -1, one report */
    unsigned long r = rec_count();
    EXPECT_EQ(gc_own_rc(g_self_thread, g_self_owner, NULL), -1);
    EXPECT_ONE_REPORT(r, "gc_own_rc: NULL object", NULL);
    _Alignas(64) unsigned char local[128];
    memset(local, 0, sizeof local);
    r = rec_count();
    EXPECT_EQ(gc_own_rc(g_self_thread, g_self_owner, local + 64), -1);
    EXPECT_ONE_REPORT(r, "gc_own_rc: not an rc object", local + 64);

    gc_root_remove(heap, &g_self_owner);
    gc_thread_detach(g_self_thread);
    gc_heap_destroy(heap);
}

/* A handle's last release from a root callback, then from a trace
 * function: reported, the object is no longer rooted by it, and the
 * handle's memory goes back with the heap. */
static _Atomic(void *) g_cb_victim; /* trace functions may run on marker threads */
static void release_victim(void)
{
    void *v = atomic_exchange(&g_cb_victim, NULL);
    if (v) rc_release(v);
}
static void root_cb_release(gc_tracer_t *tracer, void *ctx)
{
    (void)tracer, (void)ctx;
    release_victim();
}
static void trace_release(void *obj, gc_tracer_t *tracer)
{
    (void)obj, (void)tracer;
    release_victim();
}
static const gc_type_t T_RELEASING = { "test.rc.s19.releasing", trace_release, NULL };

static void test_rc_handle_released_in_root_callback_or_trace(void **state)
{
    (void)state;
    TEST_START();
    size_t base = default_pool_live();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    void *root = gc_alloc(t, &T_RELEASING, 16); /* its trace releases */
    EXPECT_NONNULL(root);
    gc_root_add(heap, &root);

    for (int way = 0; way < 2; way++) {
        void *target = gc_alloc(t, &T_PLAIN, 16);
        EXPECT_NONNULL(target);
        void *holder = handle_in_holder(heap, target), *handle = *(void **)holder;
        atomic_store(&g_cb_victim, holder);
        if (way == 0) gc_root_add_callback(heap, root_cb_release, NULL);
        unsigned long r = rec_count();
        gc_collect(t); /* the handle still roots target through this one */
        EXPECT_ONE_REPORT(r, "gc_handle's last rc_release: called from", handle); /* was NULL */
        EXPECT_EQ(atomic_load(&g_cb_victim), NULL);
        if (way == 0) gc_root_remove_callback(heap, root_cb_release, NULL);
        r = rec_count();
        gc_collect(t);
        EXPECT_EQ(gc_verify(heap), 0);
        EXPECT_EQ(gc_verify_untraced(heap), 0);
        EXPECT_NO_REPORTS(r);
    }
    gc_root_remove(heap, &root);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_EQ(default_pool_live(), base);
}

int main(void)
{
    mt_init("test_rc_review_s19");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_handle_released_in_walk_freed_at_heap_destroy),
        T(test_rc_other_heaps_handle_released_in_walk_freed),
        T(test_rc_dead_heaps_handle_released_in_walk_freed),
        T(test_rc_owned_destroys_run_inside_heap_destroy_from_callback),
        T(test_rc_owned_destroys_run_inside_collect_from_callback),
        T(test_rc_owned_destroy_destroys_pool_of_pending_object),
        T(test_rc_calls_on_itself_inside_destroy_reported),
        T(test_rc_handle_released_in_root_callback_or_trace),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
