/* test_rc_review_s24_c.c — black-box regression tests from review session
 * 24, helper C (the rc/gc bridge and rc's pool_destroy walk; docs/api.md):
 *   - gc_handle_get from a thread not attached to the handle's heap, or
 *     inside a blocking region, handed out the object's address while a
 *     collection could move it (stale at once): reported, NULL; a handle
 *     to NULL, to a pinned object, or of a destroyed heap may be read on
 *     any thread;
 *   - pool_destroy's walk over live rc objects (which detaches their weak
 *     references) took any cell whose bytes held the rc magic for an rc
 *     object, and detached what its `weak` word pointed to: a plain
 *     pool_alloc'd cell carrying the magic and a pointer to a cell that
 *     looks like a control block had that cell written to;
 *   - misuse of the rc side of the bridge (a second release, a second
 *     rc_weak_free, a handle released twice, gc_own_rc of pointers that
 *     are no rc objects) is one error-handler call each, and nothing else
 *     changes. gc_own_rc of a pointer into a GC object (or into any pool
 *     cell) whose bytes in front held the rc magic took it for an rc
 *     object: counted a reference inside the cell, unreported.
 *
 * Deterministic: no randomness (the seed is printed as in every test). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372632443)
#include <mulch/gc.h>
#include <mulch/pool.h>
#include <mulch/rc.h>

#include <stdbool.h>
#include <string.h>

#include "mulch_test.h"

static const gc_type_t T_LEAF = { "test.leaf", NULL, NULL };

/* gc_handle_get on a thread of its own (never attached to any heap). */
typedef struct {
    const gc_handle_t *handle;
    void              *got;
} handle_get_t;
static void *handle_get_unattached(void *arg)
{
    handle_get_t *g = arg;
    g->got = gc_handle_get(g->handle);
    return NULL;
}
static void *get_on_other_thread(const gc_handle_t *handle)
{
    handle_get_t g = { handle, (void *)&g };
    pthread_t thread;
    EXPECT_EQ(pthread_create(&thread, NULL, handle_get_unattached, &g), 0);
    EXPECT_EQ(pthread_join(thread, NULL), 0);
    return g.got;
}

static void test_rc_handle_get_needs_attached_running_thread(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    void *obj = gc_alloc(t, &T_LEAF, 32);
    EXPECT_NONNULL(obj);
    gc_handle_t *h = gc_handle_new(heap, obj);
    gc_handle_t *h_null = gc_handle_new(heap, NULL);
    EXPECT_NONNULL(h);
    EXPECT_NONNULL(h_null);
    EXPECT_PTR_EQ(gc_handle_get(h), obj); /* attached, running: fine */
    EXPECT_NO_REPORTS(r0);

    /* not attached: the object may move under the caller */
    EXPECT_NULL(get_on_other_thread(h));
    EXPECT_ONE_REPORT(r0, "gc_handle_get: calling thread not attached to the heap", h);
    /* inside a blocking region: collections do not wait for it */
    unsigned long r1 = rec_count();
    gc_enter_blocking(t);
    void *blocked = gc_handle_get(h);
    gc_leave_blocking(t);
    EXPECT_NULL(blocked);
    EXPECT_ONE_REPORT(r1, "gc_handle_get: called inside a blocking region", t);

    /* allowed anywhere: a handle to NULL, and a pinned object */
    unsigned long r2 = rec_count();
    EXPECT_NULL(get_on_other_thread(h_null));
    gc_pin(heap, gc_handle_get(h));
    void *pinned = gc_handle_get(h);
    EXPECT_PTR_EQ(get_on_other_thread(h), pinned);
    gc_enter_blocking(t);
    void *pinned_blocked = gc_handle_get(h);
    gc_leave_blocking(t);
    EXPECT_PTR_EQ(pinned_blocked, pinned);
    gc_collect(t);
    EXPECT_PTR_EQ(gc_handle_get(h), pinned); /* it stayed in place */
    gc_unpin(heap, pinned);
    gc_collect(t);
    EXPECT_PTR_EQ(gc_type_of(gc_handle_get(h)), &T_LEAF);
    EXPECT_NO_REPORTS(r2);

    /* of a destroyed heap: NULL on any thread, not reported */
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_NULL(gc_handle_get(h));
    EXPECT_NULL(get_on_other_thread(h));
    EXPECT_NULL(get_on_other_thread(h_null));
    EXPECT_NO_REPORTS(r2);
    rc_release(h);
    rc_release(h_null);
    EXPECT_NO_REPORTS(r2);
}

/* The rc header's layout (runtime/rc_internal.h), as a plain cell may
 * happen to hold it: `magic` at byte 8, `weak` at byte 32; and a weak
 * control block's (obj, weak_refs, object_gone). */
#define RC_MAGIC_LIVE 0x72634c56u
typedef struct {
    void  *obj;
    size_t weak_refs;
    bool   object_gone;
} fake_control_t;

static void test_rc_pool_destroy_ignores_plain_cell_with_rc_magic(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    /* a real rc object with a weak reference, next to the plain cell */
    void *obj = rc_alloc_in(pool, 16, NULL);
    EXPECT_NONNULL(obj);
    rc_weak_t *weak = rc_weak_new(obj);
    EXPECT_NONNULL(weak);
    /* a cell of the default pool (where control blocks live) that looks
     * like one, watching something else */
    static int elsewhere;
    fake_control_t *fake = pool_alloc(pool_default(), sizeof *fake);
    EXPECT_NONNULL(fake);
    *fake = (fake_control_t){ &elsewhere, 1, false };
    unsigned char *cell = pool_alloc(pool, 64);
    EXPECT_NONNULL(cell);
    memset(cell, 0, 64);
    uint32_t magic = RC_MAGIC_LIVE;
    memcpy(cell + 8, &magic, sizeof magic);
    memcpy(cell + 32, &fake, sizeof fake);

    pool_destroy(pool); /* frees both without destroying them */
    if (fake->obj != &elsewhere || fake->object_gone || fake->weak_refs != 1)
        T_FAIL("pool_destroy detached the \"control block\" a plain cell's bytes pointed to "
               "(obj %p, want %p; object_gone %d)",
               fake->obj, (void *)&elsewhere, (int)fake->object_gone);
    EXPECT_NULL(rc_weak_lock(weak)); /* the real object's is detached */
    rc_weak_free(weak);
    pool_free(pool_default(), fake);
    EXPECT_NO_REPORTS(r0);
}

static void test_rc_bridge_misuse_is_one_report_each(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    void *owner = gc_alloc(t, &T_LEAF, 32);
    EXPECT_NONNULL(owner);
    gc_push_root(t, &owner);

    unsigned long r = rec_count();
    void *obj = rc_alloc(16, NULL);
    EXPECT_NONNULL(obj);
    rc_release(obj);
    /* (the library function: rc.h's inline path reads the freed header's
     * owner word before it passes a destroyed object on to it) */
    (rc_release)(obj);
    EXPECT_ONE_REPORT(r, "rc_release: object already destroyed", obj);

    void *target = rc_alloc(16, NULL);
    EXPECT_NONNULL(target);
    rc_weak_t *weak = rc_weak_new(target);
    EXPECT_NONNULL(weak);
    r = rec_count();
    rc_weak_free(weak);
    rc_weak_free(weak);
    EXPECT_ONE_REPORT(r, "rc_weak_free: weak reference already freed", weak);

    gc_handle_t *h = gc_handle_new(heap, owner);
    EXPECT_NONNULL(h);
    r = rec_count();
    rc_release(h);
    (rc_release)(h);
    EXPECT_ONE_REPORT(r, "rc_release: object already destroyed", h);

    /* gc_own_rc of something that is no rc object: a pointer into a GC
     * object whose bytes in front of it hold the rc magic (as rc's header
     * would: "magic" 40 bytes before the object), a plain pool cell, a
     * stack address */
    unsigned char *other = gc_alloc(t, &T_LEAF, 128);
    EXPECT_NONNULL(other);
    memset(other, 0, 128);
    uint32_t magic = RC_MAGIC_LIVE;
    memcpy(other + 64 - 40, &magic, sizeof magic);
    r = rec_count();
    EXPECT_EQ(gc_own_rc(t, owner, other + 64), -1);
    EXPECT_ONE_REPORT(r, "gc_own_rc: not an rc object", other + 64);
    for (size_t i = 0; i < 128; i++)
        if (other[i] != (i >= 24 && i < 28 ? ((unsigned char *)&magic)[i - 24] : 0))
            T_FAIL("gc_own_rc wrote byte %zu of the GC object it was passed a pointer into", i);
    void *plain = pool_alloc(pool_default(), 64);
    EXPECT_NONNULL(plain);
    r = rec_count();
    EXPECT_EQ(gc_own_rc(t, owner, plain), -1);
    EXPECT_ONE_REPORT(r, "gc_own_rc: not an rc object", plain);
    int local;
    r = rec_count();
    EXPECT_EQ(gc_own_rc(t, owner, &local), -1);
    EXPECT_ONE_REPORT(r, "gc_own_rc: not an rc object", &local);
    pool_free(pool_default(), plain);

    /* nothing else changed: the target still counts 1, the heap verifies */
    r = rec_count();
    EXPECT_EQ(rc_count(target), 1);
    gc_collect(t);
    EXPECT_EQ(gc_verify(heap), 0);
    EXPECT_EQ(gc_verify_untraced(heap), 0);
    rc_release(target);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_NO_REPORTS(r);
}

int main(void)
{
    mt_init("test_rc_review_s24_c");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_handle_get_needs_attached_running_thread),
        T(test_rc_pool_destroy_ignores_plain_cell_with_rc_magic),
        T(test_rc_bridge_misuse_is_one_report_each),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
