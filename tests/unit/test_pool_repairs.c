/* Unit tests of what the pool leaves behind after it reported heap
 * corruption (pool/alloc.c, pool/audit.c, pool/leak.c): a freed cell it
 * dropped because it was written after its free, as the leak report shows
 * it. Corruption is made with cell_word_store (not instrumented by ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pool_internal.h"
#include "unit_errors.h"

static int teardown(void **state) {
    return teardown_errors(state);
}

/* The report of a tracking pool, read back into a malloc'd string. */
static char *report_text(pool_t *pool, size_t want) {
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(pool_report_leaks(pool, f), want);
    fflush(f);
    long len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    char *text = malloc((size_t)len + 1);
    assert_non_null(text);
    text[fread(text, 1, (size_t)len, f)] = 0;
    fclose(f);
    return text;
}

/* A freed cell written after its free is dropped by the allocation that
 * finds it, and stays counted in use: a tracking pool's leak report lists
 * it, and must not say that tracking is off. */
static void test_dropped_cell_in_tracking_pool(void **state) {
    (void)state;
    pool_options_t opts = { .track_leaks = 1 };
    pool_t *pool = pool_create(&opts);
    assert_non_null(pool);
    void *keep = pool_alloc(pool, 48);
    void *victim = pool_alloc(pool, 48);
    pool_free(pool, victim);
    cell_word_store(victim, 1, UINT64_C(0x4646464646464646)); /* erases the free mark */
    void *next = pool_alloc(pool, 48);
    assert_non_null(next);
    assert_ptr_not_equal(next, victim);
    assert_int_equal(reports, 1);
    assert_non_null(strstr(last_what, "not handed out"));
    char *text = report_text(pool, 3);
    char key[64];
    snprintf(key, sizeof key, "mulch leak: %p ", victim);
    const char *line = strstr(text, key);
    assert_non_null(line);
    const char *end = strchr(line, '\n');
    assert_non_null(end);
    const char *off = strstr(line, "tracking off");
    if (off != NULL && off < end) fail_msg("dropped cell: %.*s", (int)(end - line), line);
    assert_non_null(strstr(line, "dropped"));
    free(text);
    pool_free(pool, keep);
    pool_free(pool, next);
    assert_int_equal(reports, 1);
    pool_destroy(pool);
}

int main(void) {
    /* the cell order of the fast paths is pinned here: no valgrind tracking */
    setenv("MULCH_VALGRIND", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dropped_cell_in_tracking_pool, setup, teardown),
    };
    return cmocka_run_group_tests_name("pool_repairs", tests, NULL, NULL);
}
