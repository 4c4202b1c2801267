/* unit_errors.h — the error-handler harness the unit tests (tests/unit)
 * share: every report is counted and the last one kept, so a test can ask
 * "exactly one report, naming this problem". setup/teardown install and
 * remove the handler around each cmocka test. Header-only: each test is
 * one translation unit. */
#ifndef MULCH_TEST_UNIT_ERRORS_H
#define MULCH_TEST_UNIT_ERRORS_H

#include <stdio.h>

#include <mulch/common.h>

static int reports;
static char last_what[256];
static const void *last_ptr;

static void record_error(const char *what, const void *ptr, void *ctx) {
    (void)ctx;
    reports++;
    snprintf(last_what, sizeof last_what, "%s", what);
    last_ptr = ptr;
}

static int setup(void **state) {
    (void)state;
    reports = 0;
    last_what[0] = '\0';
    last_ptr = NULL;
    mulch_set_error_handler(record_error, NULL);
    return 0;
}

/* Also called by tests that extend the teardown. */
static int teardown_errors(void **state) {
    (void)state;
    mulch_set_error_handler(NULL, NULL);
    return 0;
}

#endif /* MULCH_TEST_UNIT_ERRORS_H */
