/* Unit test of the owner's 32-bit count (`biased`) at its cap: the owner's
 * retain past UINT32_MAX references must not wrap it to 0 (the object would
 * then count 0 and a later release would free it while referenced, or
 * never free it), neither in the library nor in <mulch/rc.h>'s inline
 * path. <mulch/rc.h> is included before rc_internal.h so that rc_retain
 * and rc_release are the inline paths here (not in sanitizer builds, which
 * have none); (rc_retain) is the library function. The count is planted:
 * reaching it honestly takes 2^32 retains. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <mulch/rc.h>

#include "rc_internal.h"

#include "unit_errors.h"
#define teardown teardown_errors

static int destroyed;
static void count_destroy(void *obj) {
    (void)obj;
    destroyed++;
}

/* Plants the owner's count at its cap, retains once with `retain`, checks
 * the count, then walks it back and releases to the end: destroy runs once,
 * at the last release. */
static void check_cap(void *(*retain)(void *)) {
    destroyed = 0;
    void *obj = rc_alloc(16, count_destroy);
    assert_non_null(obj);
    rc_header_t *h = rc_header_of(obj);
    assert_ptr_equal(atomic_load(&h->owner), mulch_rc_self_);
    atomic_store(&h->biased, UINT32_MAX); /* UINT32_MAX references, all the owner's */
    assert_int_equal(rc_count(obj), (size_t)UINT32_MAX);
    assert_ptr_equal(retain(obj), obj);
    assert_int_equal(rc_count(obj), (size_t)UINT32_MAX + 1);
    rc_release(obj);
    assert_int_equal(rc_count(obj), (size_t)UINT32_MAX);
    /* as if the owner released all but one of its own */
    atomic_store(&h->biased, 1);
    assert_int_equal(rc_count(obj), 2);
    rc_release(obj);
    assert_int_equal(destroyed, 0);
    assert_int_equal(rc_count(obj), 1);
    rc_release(obj);
    assert_int_equal(destroyed, 1);
    assert_int_equal(reports, 0);
}

static void *retain_library(void *obj) {
    return (rc_retain)(obj);
}

static void *retain_inline(void *obj) {
    return rc_retain(obj);
}

static void test_library_retain_at_cap(void **state) {
    (void)state;
    check_cap(retain_library);
}

static void test_inline_retain_at_cap(void **state) {
    (void)state;
    check_cap(retain_inline);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_library_retain_at_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_retain_at_cap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
