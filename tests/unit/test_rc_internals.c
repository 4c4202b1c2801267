/* Unit tests of the rc header's limits: `shared` is 32 bits (count << 2 |
 * flags), so references held by threads other than the owner are capped at
 * RC_SHARED_MAX. A retain or weak lock past the cap must report an overflow
 * and take no reference, never wrap the count (a wrapped count would free a
 * referenced object). The count is planted directly, since reaching the cap
 * honestly takes 2^29 retains. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rc_internal.h"

static int reports;
static char last_what[256];

static void record_error(const char *what, const void *ptr, void *ctx) {
    (void)ctx;
    (void)ptr;
    reports++;
    snprintf(last_what, sizeof last_what, "%s", what);
}

static int setup(void **state) {
    (void)state;
    reports = 0;
    last_what[0] = '\0';
    mulch_set_error_handler(record_error, NULL);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    mulch_set_error_handler(NULL, NULL);
    return 0;
}

static int destroyed;
static void count_destroy(void *obj) {
    (void)obj;
    destroyed++;
}

static void *retain_on_thread(void *obj) {
    return rc_retain(obj);
}

static void *weak_lock_on_thread(void *weak) {
    return rc_weak_lock(weak);
}

static void run_on_thread(void *(*fn)(void *), void *arg) {
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
}

static void test_shared_count_overflow_is_reported(void **state) {
    (void)state;
    destroyed = 0;
    void *obj = rc_alloc(16, count_destroy);
    assert_non_null(obj);
    rc_header_t *h = rc_header_of(obj);
    rc_weak_t *weak = rc_weak_new(obj);
    assert_non_null(weak);

    /* other threads hold the maximum: one more is refused, loudly */
    atomic_store(&h->shared, RC_SHARED_MAX * RC_ONE);
    run_on_thread(retain_on_thread, obj);
    assert_int_equal(reports, 1);
    assert_non_null(strstr(last_what, "overflow"));
    assert_int_equal(atomic_load(&h->shared), RC_SHARED_MAX * RC_ONE);

    run_on_thread(weak_lock_on_thread, weak);
    assert_int_equal(reports, 2);
    assert_non_null(strstr(last_what, "overflow"));
    assert_int_equal(atomic_load(&h->shared), RC_SHARED_MAX * RC_ONE);

    /* one below the cap is still fine */
    atomic_store(&h->shared, (RC_SHARED_MAX - 1) * RC_ONE);
    run_on_thread(retain_on_thread, obj);
    assert_int_equal(reports, 2);
    assert_int_equal(atomic_load(&h->shared), RC_SHARED_MAX * RC_ONE);

    /* back to the truth (no other thread holds anything), then the last
     * release destroys exactly once */
    atomic_store(&h->shared, 0);
    assert_int_equal(rc_count(obj), 1);
    rc_release(obj);
    assert_int_equal(destroyed, 1);
    assert_null(rc_weak_lock(weak));
    rc_weak_free(weak);
    assert_int_equal(reports, 2);
}

/* The header layout the inline fast paths of <mulch/rc.h> rely on. */
static void test_header_layout(void **state) {
    (void)state;
    void *obj = rc_alloc(8, NULL);
    assert_non_null(obj);
    rc_header_t *h = rc_header_of(obj);
    struct mulch_rc_header_ *fast = (struct mulch_rc_header_ *)(void *)h;
    assert_ptr_equal((void *)fast->owner, (void *)atomic_load(&h->owner));
    assert_int_equal(fast->biased, 1);
    assert_ptr_equal(fast->owner, mulch_rc_self_);
    assert_int_equal((uintptr_t)obj % 16, 0);
    rc_release(obj);
    assert_int_equal(reports, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shared_count_overflow_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_layout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
