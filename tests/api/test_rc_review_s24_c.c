/* test_rc_review_s24_c.c — black-box regression tests from review session
 * 24, helper C (the rc/gc bridge and rc's pool_destroy walk; docs/api.md):
 *   - gc_handle_get from a thread not attached to the handle's heap, or
 *     inside a blocking region, handed out the object's address while a
 *     collection could move it (stale at once): reported, NULL; a handle
 *     to NULL, to a pinned object, or of a destroyed heap may be read on
 *     any thread.
 *
 * Deterministic: no randomness (the seed is printed as in every test). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372632443)
#include <mulch/gc.h>
#include <mulch/pool.h>
#include <mulch/rc.h>

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

int main(void)
{
    mt_init("test_rc_review_s24_c");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_handle_get_needs_attached_running_thread),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
