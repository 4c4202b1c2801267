/* test_version.c — the version and error-handler entry points of
 * <mulch/common.h> (implemented in pool/error.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <mulch.h>

static void handler_a(const char *what, const void *ptr, void *ctx)
{
    (void)what; (void)ptr; (void)ctx;
}

static void handler_b(const char *what, const void *ptr, void *ctx)
{
    (void)what; (void)ptr; (void)ctx;
}

static void test_common_version_matches_header(void **state)
{
    (void)state;
    assert_non_null(mulch_version());
    assert_string_equal(mulch_version(), MULCH_VERSION_STRING);
}

static void test_common_version_macro_matches_parts(void **state)
{
    (void)state;
    char parts[32];
    snprintf(parts, sizeof parts, "%d.%d.%d", MULCH_VERSION_MAJOR,
             MULCH_VERSION_MINOR, MULCH_VERSION_PATCH);
    assert_string_equal(parts, MULCH_VERSION_STRING);
    assert_int_equal(MULCH_VERSION, (MULCH_VERSION_MAJOR << 16) |
                                    (MULCH_VERSION_MINOR << 8) |
                                    MULCH_VERSION_PATCH);
}

static void test_common_set_error_handler_returns_previous(void **state)
{
    (void)state;
    int ctx_b = 0;
    /* Whatever was installed first (the default handler, however the library
     * represents it) is put back at the end. */
    mulch_error_fn original = mulch_set_error_handler(handler_a, NULL);

    mulch_error_fn prev = mulch_set_error_handler(handler_b, &ctx_b);
    assert_true(prev == handler_a);

    prev = mulch_set_error_handler(handler_a, NULL);
    assert_true(prev == handler_b);

    prev = mulch_set_error_handler(original, NULL);
    assert_true(prev == handler_a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_version_matches_header),
        cmocka_unit_test(test_common_version_macro_matches_parts),
        cmocka_unit_test(test_common_set_error_handler_returns_previous),
    };
    return cmocka_run_group_tests_name("version", tests, NULL, NULL);
}
