/* test_rc_review_s23_e.c — black-box regression tests from review session
 * 23, helper E (rc and the bridge; <mulch/rc.h>, docs/rc.md, docs/api.md):
 *   - rc_weak_lock on a weak reference to an object that pool_destroy
 *     freed while it still lived read the freed object through its
 *     control block (the destroy that detaches it never ran): it must
 *     answer NULL, and the control block must go with the last handle;
 *   - gc_handle_new(heap, obj) from a thread not attached to heap, or
 *     inside a blocking region, raced a collection that moves or frees
 *     obj: reported, NULL (a handle to NULL may still be made anywhere);
 *   - misuse of a destroyed rc_alloc(0) object was reported as "not an
 *     rc object" instead of "object already destroyed".
 *
 * Deterministic: no randomness (the seed is printed as in every test). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372632345)
#include <mulch/gc.h>
#include <mulch/pool.h>
#include <mulch/rc.h>

#include "mulch_test.h"

static int g_destroys;
static void count_destroy(void *obj)
{
    (void)obj;
    g_destroys++;
}

/* A thread's rc object in `pool`, still alive when the thread ends. */
typedef struct {
    pool_t *pool;
    void   *obj;
} thread_alloc_t;
static void *alloc_in_thread(void *arg)
{
    thread_alloc_t *a = arg;
    a->obj = rc_alloc_in(a->pool, 24, count_destroy);
    return NULL;
}

static void test_rc_weak_lock_after_pool_destroy_of_live_object(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    g_destroys = 0;
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    /* ours (unmerged), one merged by a retain and release elsewhere, one
     * of an exited thread, and one of ours whose only weak reference was
     * freed already (its control block stays attached) */
    void *mine = rc_alloc_in(pool, 32, count_destroy);
    void *empty = rc_alloc_in(pool, 0, count_destroy);
    EXPECT_NONNULL(mine);
    EXPECT_NONNULL(empty);
    thread_alloc_t other = { pool, NULL };
    pthread_t thread;
    EXPECT_EQ(pthread_create(&thread, NULL, alloc_in_thread, &other), 0);
    EXPECT_EQ(pthread_join(thread, NULL), 0);
    EXPECT_NONNULL(other.obj);
    rc_weak_t *w_mine = rc_weak_new(mine), *w_mine2 = rc_weak_new(mine);
    rc_weak_t *w_empty = rc_weak_new(empty), *w_other = rc_weak_new(other.obj);
    rc_weak_t *w_gone = rc_weak_new(mine);
    EXPECT_NONNULL(w_mine);
    EXPECT_NONNULL(w_mine2);
    EXPECT_NONNULL(w_empty);
    EXPECT_NONNULL(w_other);
    rc_weak_free(w_gone);
    void *locked = rc_weak_lock(w_other); /* a live object answers */
    EXPECT_PTR_EQ(locked, other.obj);
    rc_release(locked);

    pool_destroy(pool); /* frees the three without their destroys */
    EXPECT_EQ(g_destroys, 0);
    EXPECT_NULL(rc_weak_lock(w_mine));
    EXPECT_NULL(rc_weak_lock(w_empty));
    EXPECT_NULL(rc_weak_lock(w_other));
    rc_weak_free(w_mine);
    EXPECT_NULL(rc_weak_lock(w_mine2));
    rc_weak_free(w_mine2);
    rc_weak_free(w_empty);
    rc_weak_free(w_other);
    EXPECT_NO_REPORTS(r0);
    EXPECT_EQ(g_destroys, 0);
}

/* The detached control blocks go back to the default pool: a loop of
 * pool_destroy over live objects with weak references does not grow it. */
static void test_rc_weak_control_freed_after_pool_destroy(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    /* warm the default pool up, then measure a second round against it */
    pool_stats_t before, after;
    for (int round = 0; round < 2; round++) {
        if (round == 1) pool_get_stats(pool_default(), &before);
        for (int i = 0; i < 64; i++) {
            pool_t *pool = pool_create(NULL);
            EXPECT_NONNULL(pool);
            void *obj = rc_alloc_in(pool, 16, NULL);
            EXPECT_NONNULL(obj);
            rc_weak_t *weak = rc_weak_new(obj);
            EXPECT_NONNULL(weak);
            if (i & 1) rc_weak_free(weak); /* the block waits for the object */
            pool_destroy(pool);
            if (!(i & 1)) {
                EXPECT_NULL(rc_weak_lock(weak));
                rc_weak_free(weak); /* the last of the two: frees the block */
            }
        }
    }
    pool_get_stats(pool_default(), &after);
    if (after.bytes_in_use != before.bytes_in_use)
        T_FAIL("the default pool kept %zu bytes more after 64 pool_destroy rounds",
               (size_t)(after.bytes_in_use - before.bytes_in_use));
    EXPECT_NO_REPORTS(r0);
}

static const gc_type_t T_LEAF = { "test.leaf", NULL, NULL };

typedef struct {
    gc_heap_t   *heap;
    void        *obj;
    gc_handle_t *got;
    gc_handle_t *got_null;
} handle_from_t;
static void *handle_new_unattached(void *arg)
{
    handle_from_t *h = arg;
    h->got = gc_handle_new(h->heap, h->obj);
    h->got_null = gc_handle_new(h->heap, NULL);
    return NULL;
}

static void test_rc_handle_new_needs_attached_running_thread(void **state)
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
    gc_handle_t *root = gc_handle_new(heap, obj); /* attached, running: fine */
    EXPECT_NONNULL(root);
    EXPECT_NO_REPORTS(r0);

    /* another thread, not attached: obj may move or die under it */
    handle_from_t from = { heap, obj, NULL, NULL };
    pthread_t thread;
    EXPECT_EQ(pthread_create(&thread, NULL, handle_new_unattached, &from), 0);
    EXPECT_EQ(pthread_join(thread, NULL), 0);
    EXPECT_NULL(from.got);
    EXPECT_ONE_REPORT(r0, "gc_handle_new: calling thread not attached to the heap", obj);
    EXPECT_NONNULL(from.got_null); /* a handle to NULL: any thread */
    EXPECT_NULL(gc_handle_get(from.got_null));
    rc_release(from.got_null);

    /* pinned, the object stays alive and in place: any thread may name it */
    unsigned long r2 = rec_count();
    gc_pin(heap, obj);
    handle_from_t pinned = { heap, obj, NULL, NULL };
    EXPECT_EQ(pthread_create(&thread, NULL, handle_new_unattached, &pinned), 0);
    EXPECT_EQ(pthread_join(thread, NULL), 0);
    gc_enter_blocking(t);
    gc_handle_t *pinned_blocked = gc_handle_new(heap, obj);
    gc_leave_blocking(t);
    gc_unpin(heap, obj);
    EXPECT_NO_REPORTS(r2);
    EXPECT_NONNULL(pinned.got);
    EXPECT_NONNULL(pinned_blocked);
    gc_collect(t);
    EXPECT_PTR_EQ(gc_handle_get(pinned.got), gc_handle_get(root));
    EXPECT_PTR_EQ(gc_handle_get(pinned_blocked), gc_handle_get(root));
    rc_release(pinned.got);
    rc_release(pinned_blocked);
    rc_release(pinned.got_null);

    /* attached, but inside a blocking region: collections do not wait */
    unsigned long r1 = rec_count();
    gc_enter_blocking(t);
    gc_handle_t *blocked = gc_handle_new(heap, obj);
    gc_handle_t *blocked_null = gc_handle_new(heap, NULL);
    gc_leave_blocking(t);
    EXPECT_NULL(blocked);
    EXPECT_ONE_REPORT(r1, "gc_handle_new: called inside a blocking region", t);
    EXPECT_NONNULL(blocked_null);
    rc_release(blocked_null);

    gc_collect(t);
    EXPECT_PTR_EQ(gc_type_of(gc_handle_get(root)), &T_LEAF);
    rc_release(root);
    EXPECT_EQ(gc_verify(heap), 0);
    EXPECT_EQ(gc_verify_untraced(heap), 0);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    EXPECT_NO_REPORTS(r1 + 1);
}

static void test_rc_destroyed_empty_object_is_reported_destroyed(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    void *obj = rc_alloc_in(pool, 0, NULL);
    EXPECT_NONNULL(obj);
    EXPECT_EQ(rc_count(obj), 1);
    rc_release(obj);
    EXPECT_NO_REPORTS(r0);
    /* the library functions, not the inline paths (which pass a destroyed
     * object on to them anyway) */
    (rc_retain)(obj);
    EXPECT_ONE_REPORT(r0, "rc_retain: object already destroyed (use after release)", obj);
    unsigned long r1 = rec_count();
    (rc_release)(obj);
    EXPECT_ONE_REPORT(r1, "rc_release: object already destroyed (use after release)", obj);
    /* (a plain pool cell passed as an rc object is not reliably told
     * apart, docs/rc.md: the memory in front of it is read) */
    pool_destroy(pool);
}

int main(void)
{
    mt_init("test_rc_review_s23_e");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_weak_lock_after_pool_destroy_of_live_object),
        T(test_rc_weak_control_freed_after_pool_destroy),
        T(test_rc_handle_new_needs_attached_running_thread),
        T(test_rc_destroyed_empty_object_is_reported_destroyed),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
