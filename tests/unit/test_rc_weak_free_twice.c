/* Unit test of two threads freeing one weak reference at once (misuse,
 * docs/rc.md "Weak references"): rc_weak_free checked the handle's magic,
 * then cleared it, so both threads could pass the check before either
 * cleared it; both then took a reference off the control block (its count
 * wrapped: the block was never freed, or was freed twice once the object
 * was gone) and freed the handle's cell twice. Exactly one of them must
 * free the handle and the other be reported, whatever the interleaving.
 * The window is a few instructions wide: mulch_rc_weak_free_test_hook
 * opens it, running the other thread's whole rc_weak_free inside the
 * first one's, after it was given the handle and before it took it. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <mulch/rc.h>

#include "rc_internal.h"

#include "unit_errors.h"

static void *free_on_thread(void *arg) {
    rc_weak_free(arg);
    return NULL;
}

/* The first rc_weak_free's hook: another thread frees the same handle. */
static void free_meanwhile(rc_weak_t *weak) {
    mulch_rc_weak_free_test_hook = NULL;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_on_thread, weak), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

static size_t default_live(void) {
    pool_stats_t st;
    pool_get_stats(pool_default(), &st);
    return st.live_allocations;
}

static void free_twice_at_once(rc_weak_t *weak) {
    mulch_rc_weak_free_test_hook = free_meanwhile;
    rc_weak_free(weak);
    mulch_rc_weak_free_test_hook = NULL;
    if (reports != 1) fail_msg("%d reports, want 1 (last: \"%s\")", reports, last_what);
    assert_non_null(strstr(last_what, "rc_weak_free: weak reference already freed"));
    assert_ptr_equal(last_ptr, weak);
}

/* The object lives on: the control block still counts the other handle. */
static void test_weak_free_twice_at_once_object_alive(void **state) {
    (void)state;
    void *obj = rc_alloc(16, NULL);
    assert_non_null(obj);
    rc_weak_t *keep = rc_weak_new(obj);
    assert_non_null(keep);
    size_t live0 = default_live();
    rc_weak_t *weak = rc_weak_new(obj);
    assert_non_null(weak);
    free_twice_at_once(weak);
    assert_int_equal(default_live(), live0); /* the handle went back once */
    void *again = rc_weak_lock(keep);
    assert_ptr_equal(again, obj);
    rc_release(again);
    rc_release(obj);
    assert_null(rc_weak_lock(keep));
    rc_weak_free(keep); /* the last handle of a dead object: the block goes */
    assert_int_equal(reports, 1);
    assert_int_equal(default_live(), live0 - 3); /* obj, keep, the block */
}

/* The object is gone: the first free of its last handle frees the block. */
static void test_weak_free_twice_at_once_object_gone(void **state) {
    (void)state;
    size_t live0 = default_live();
    void *obj = rc_alloc(16, NULL);
    assert_non_null(obj);
    rc_weak_t *weak = rc_weak_new(obj);
    assert_non_null(weak);
    rc_release(obj);
    assert_null(rc_weak_lock(weak));
    free_twice_at_once(weak);
    assert_int_equal(default_live(), live0);
    /* the pool is sound: its cells come back for new handles */
    obj = rc_alloc(16, NULL);
    assert_non_null(obj);
    for (int i = 0; i < 4; i++) {
        rc_weak_t *w = rc_weak_new(obj);
        assert_non_null(w);
        rc_weak_free(w);
    }
    rc_release(obj);
    assert_int_equal(reports, 1);
    assert_int_equal(default_live(), live0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_weak_free_twice_at_once_object_alive, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_weak_free_twice_at_once_object_gone, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
