/* test_pool_leak_sites.c — black-box tests of what pool_report_leaks says
 * about each allocation's site and size (<mulch/pool.h>, docs/pool.md
 * "Leak detection"), in pools that track sites: pool_alloc_at without a
 * file name, cells the pool dropped after a misuse report, sites grouped by
 * their file name's text, sizes of zero-byte aligned requests, the site
 * of a block pool_realloc resized, and the sites of rc objects (the
 * program's call of rc_alloc_in, not rc_alloc_in itself: all of them were
 * one site, "rc_alloc_in+0x74").
 *
 * Deterministic: no randomness; every report is read back from a file. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d17)
#include <mulch/pool.h>
#include <mulch/rc.h>

#include "pool_api_test.h"

static char *report_text(pool_t *pool, size_t want)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    size_t n = pool_report_leaks(pool, f);
    fflush(f);
    long len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    char *text = malloc((size_t)len + 1);
    assert_non_null(text);
    text[fread(text, 1, (size_t)len, f)] = 0;
    fclose(f);
    if (n != want) {
        print_error("---- report ----\n%s---- end ----\n", text);
        T_FAIL("pool_report_leaks returned %zu, expected %zu", n, want);
    }
    return text;
}

/* The report's line for p, copied into line[n] (without its newline). */
static void line_for(const char *text, const void *p, char *line, size_t n)
{
    char key[64];
    snprintf(key, sizeof key, "mulch leak: %p ", p);
    const char *at = strstr(text, key);
    if (at == NULL) {
        print_error("---- report ----\n%s---- end ----\n", text);
        T_FAIL("no leak line for %p", p);
    }
    const char *end = strchr(at, '\n');
    size_t len = end ? (size_t)(end - at) : strlen(at);
    if (len >= n) len = n - 1;
    memcpy(line, at, len);
    line[len] = 0;
}

static pool_t *tracking_pool(void)
{
    pool_options_t o;
    memset(&o, 0, sizeof o);
    o.track_leaks = 1;
    pool_t *pool = pool_create(&o);
    EXPECT_NONNULL_CTX(pool, "pool_create(track_leaks=1)");
    return pool;
}

/* pool_alloc_at with a NULL file still records its line (and the requested
 * size): the report must not call it "unknown site (leak tracking off)". */
static void test_alloc_at_without_file(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = tracking_pool();
    void *small = pool_alloc_at(pool, 40, NULL, 4242);
    void *large = pool_alloc_at(pool, 300000, NULL, 4343);
    EXPECT_NONNULL(small);
    EXPECT_NONNULL(large);
    char *text = report_text(pool, 2);
    char line[512];
    line_for(text, small, line, sizeof line);
    if (strstr(line, "tracking off") != NULL || strstr(line, ":4242") == NULL || strstr(line, "size 40 ") == NULL)
        T_FAIL("pool_alloc_at(40, NULL, 4242): \"%s\"", line);
    line_for(text, large, line, sizeof line);
    if (strstr(line, "tracking off") != NULL || strstr(line, ":4343") == NULL)
        T_FAIL("pool_alloc_at(300000, NULL, 4343): \"%s\"", line);
    free(text);
    pool_free(pool, small);
    pool_free(pool, large);
    EXPECT_EQ(report_count(pool), 0);
    pool_destroy(pool);
}

/* Sites are grouped by the text of their file name, not its address: two
 * translation units (or a wrapper that copies names) may hold the same
 * name at different addresses. One summary line for one file:line. */
/* (not const: clang merges a const array with an equal string literal) */
static char file_copy[] = "leak_sites_same_name.c";

static void test_sites_grouped_by_file_text(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = tracking_pool();
    const char *literal = "leak_sites_same_name.c";
    if ((const void *)literal == (const void *)file_copy) T_FAIL("the two names share an address");
    void *p[6];
    for (int i = 0; i < 6; i++) {
        p[i] = pool_alloc_at(pool, 24, i % 2 ? literal : file_copy, 500);
        EXPECT_NONNULL(p[i]);
    }
    void *other = pool_alloc_at(pool, 24, "leak_sites_other.c", 500);
    EXPECT_NONNULL(other);
    char *text = report_text(pool, 7);
    const char *summary = strstr(text, "mulch leak summary: 7 allocations\n");
    if (summary == NULL) T_FAIL("no summary line for 7 allocations:\n%s", text);
    int groups = 0;
    for (const char *at = summary; (at = strstr(at, "leak_sites_same_name.c:500")) != NULL; at++) groups++;
    if (groups != 1 || strstr(summary, "  6 allocations, 144 bytes at leak_sites_same_name.c:500\n") == NULL)
        T_FAIL("one summary line for 6 allocations at leak_sites_same_name.c:500 expected:\n%s", summary);
    if (strstr(summary, "  1 allocation, 24 bytes at leak_sites_other.c:500\n") == NULL)
        T_FAIL("no summary line for leak_sites_other.c:500:\n%s", summary);
    free(text);
    for (int i = 0; i < 6; i++) pool_free(pool, p[i]);
    pool_free(pool, other);
    EXPECT_EQ(report_count(pool), 0);
    pool_destroy(pool);
}

/* A zero-byte request is reported as size 0, whether it got a cell or (an
 * alignment above the block size) a mapping of its own, tracked or not. */
static void test_zero_size_aligned_reported_as_zero(void **state)
{
    (void)state;
    TEST_START();
    for (int tracked = 0; tracked < 2; tracked++) {
        pool_options_t o;
        memset(&o, 0, sizeof o);
        o.track_leaks = tracked;
        pool_t *pool = pool_create(&o);
        EXPECT_NONNULL(pool);
        void *big = pool_alloc_aligned(pool, 0, 8 * MiB);
        void *cell = pool_alloc_aligned(pool, 0, 64);
        EXPECT_NONNULL(big);
        EXPECT_NONNULL(cell);
        char *text = report_text(pool, 2);
        char line[512];
        line_for(text, big, line, sizeof line);
        if (strstr(line, " size 0 ") == NULL) T_FAIL("track_leaks=%d, pool_alloc_aligned(0, 8 MiB): \"%s\"", tracked, line);
        line_for(text, cell, line, sizeof line);
        if (tracked && strstr(line, " size 0 ") == NULL) T_FAIL("pool_alloc_aligned(0, 64): \"%s\"", line);
        free(text);
        pool_free(pool, big);
        pool_free(pool, cell);
        EXPECT_EQ(report_count(pool), 0);
        pool_destroy(pool);
    }
}

/* A block pool_realloc resized shows the site of that realloc, whether it
 * stayed in place or moved: the in-place path kept the site of the first
 * allocation (here a file:line site) while a move recorded the realloc's
 * caller, so the report named one of two sites depending on cell sizes. */
static void test_realloc_site_in_place_and_moved(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = tracking_pool();
    /* from -> to: in place (small, huge), moved (small, small to huge) */
    const size_t from[4] = { 100, 2 * MiB + 5, 100, 100 };
    const size_t to[4] = { 60, 2 * MiB - 1000, 1000, 3 * MiB };
    const int in_place[4] = { 1, 1, 0, 0 };
    void *p[4];
    for (int i = 0; i < 4; i++) {
        void *q = pool_alloc_at(pool, from[i], "first_alloc.c", 10 + i);
        EXPECT_NONNULL_CTX(q, "pool_alloc_at(%zu)", from[i]);
        p[i] = pool_realloc(pool, q, to[i]);
        EXPECT_NONNULL_CTX(p[i], "pool_realloc(%zu -> %zu)", from[i], to[i]);
        if ((p[i] == q) != (in_place[i] != 0))
            T_FAIL("pool_realloc(%zu -> %zu) %s: the test wants it %s", from[i], to[i], p[i] == q ? "stayed" : "moved",
                   in_place[i] ? "in place" : "moved");
    }
    char *text = report_text(pool, 4);
    for (int i = 0; i < 4; i++) {
        char line[512], size[32];
        line_for(text, p[i], line, sizeof line);
        snprintf(size, sizeof size, " size %zu ", to[i]);
        if (strstr(line, "first_alloc.c") != NULL || strstr(line, size) == NULL)
            T_FAIL("pool_realloc(%zu -> %zu, %s): the line names the first allocation's site or not the new size: \"%s\"",
                   from[i], to[i], in_place[i] ? "in place" : "moved", line);
    }
    free(text);
    for (int i = 0; i < 4; i++) pool_free(pool, p[i]);
    EXPECT_EQ(report_count(pool), 0);
    pool_destroy(pool);
}

/* Two call sites of rc_alloc_in, in functions of their own (of different
 * sizes: identical functions may be folded into one). */
static __attribute__((noinline)) void *rc_site_one(pool_t *pool) { return rc_alloc_in(pool, 24, NULL); }
static __attribute__((noinline)) void *rc_site_two(pool_t *pool) { return rc_alloc_in(pool, 40, NULL); }

static void test_rc_objects_named_by_their_callers(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = tracking_pool();
    void *one = rc_site_one(pool), *two = rc_site_two(pool);
    EXPECT_NONNULL(one);
    EXPECT_NONNULL(two);
    char *text = report_text(pool, 2);
    const char *summary = strstr(text, "mulch leak summary: 2 allocations\n");
    if (summary == NULL) T_FAIL("no summary of 2 allocations:\n%s", text);
    /* one group per call site, each a cell of header and payload */
    if (strstr(summary, "  1 allocation, 72 bytes at ") == NULL || strstr(summary, "  1 allocation, 88 bytes at ") == NULL)
        T_FAIL("the two rc_alloc_in call sites are not two sites:\n%s", text);
    free(text);
    rc_release(one);
    rc_release(two);
    EXPECT_EQ(report_count(pool), 0);
    pool_destroy(pool);
}

int main(void)
{
    mt_init("test_pool_leak_sites");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_alloc_at_without_file),
        T(test_sites_grouped_by_file_text),
        T(test_zero_size_aligned_reported_as_zero),
        T(test_realloc_site_in_place_and_moved),
        T(test_rc_objects_named_by_their_callers),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
