/* test_pool_leak_report.c — black-box tests of the public pool contract
 * (<mulch/pool.h>, <mulch/common.h>, docs: shared/API.md "Pool"), the leak
 * report: pool_report_leaks with track_leaks (each POOL_ALLOC line names its
 * file:line and size) and without (sizes), to a file and to stderr.
 *
 * Deterministic: every random choice comes from a splitmix64 generator seeded
 * from MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is
 * printed at the start of each test and in every failure message.
 * MULCH_TEST_QUICK=1 (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d01)
#include <mulch/pool.h>

#include "pool_api_test.h"

/* ======================================================================== */
/* Leak report                                                               */

static char *read_all(FILE *f)
{
    long len;
    fflush(f);
    if (fseek(f, 0, SEEK_END) != 0) return NULL;
    len = ftell(f);
    if (len < 0) return NULL;
    rewind(f);
    char *buf = malloc((size_t)len + 1);
    if (!buf) return NULL;
    size_t got = fread(buf, 1, (size_t)len, f);
    buf[got] = 0;
    return buf;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static int is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Does [line, end) contain the address p printed in hex (any case, optional
   0x, optional leading zeros)? */
static int line_has_addr(const char *line, const char *end, const void *p)
{
    char hex[32];
    snprintf(hex, sizeof hex, "%" PRIxPTR, (uintptr_t)p);
    size_t hl = strlen(hex);
    for (const char *c = line; c + hl <= end; c++) {
        size_t k = 0;
        while (k < hl && (c[k] == hex[k] || c[k] == (hex[k] - 'a' + 'A'))) k++;
        if (k != hl) continue;
        if (c + hl < end && is_hex(c[hl])) continue;
        const char *b = c;
        while (b > line && b[-1] == '0') b--;
        if (b > line && is_hex(b[-1])) continue;
        return 1;
    }
    return 0;
}

/* Does [line, end) contain the decimal number v as a whole token? */
static int line_has_number(const char *line, const char *end, size_t v)
{
    char dec[32];
    snprintf(dec, sizeof dec, "%zu", v);
    size_t dl = strlen(dec);
    for (const char *c = line; c + dl <= end; c++) {
        if (memcmp(c, dec, dl) != 0) continue;
        if (c > line && is_alnum(c[-1])) continue;
        if (c + dl < end && is_alnum(c[dl])) continue;
        return 1;
    }
    return 0;
}

static int line_has_str(const char *line, const char *end, const char *s)
{
    size_t sl = strlen(s);
    for (const char *c = line; c + sl <= end; c++)
        if (memcmp(c, s, sl) == 0) return 1;
    return 0;
}

/* Finds the unique line of the report mentioning p; fails unless exactly
   one line does. */
static void find_line(const char *text, const void *p, const char **ls, const char **le)
{
    int found = 0;
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        if (line_has_addr(line, end, p)) {
            found++;
            *ls = line;
            *le = end;
        }
        line = *end ? end + 1 : end;
    }
    if (found != 1) {
        print_error("---- report ----\n%s---- end ----\n", text);
        T_FAIL("leak report: %d lines mention %p, expected exactly 1", found, p);
    }
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Writes pool_report_leaks into a temporary file; it must count `want`
 * allocations. Returns the report's text (the caller frees it). */
static char *leak_report_text(pool_t *pool, size_t want)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    size_t n = pool_report_leaks(pool, f);
    char *text = read_all(f);
    fclose(f);
    assert_non_null(text);
    if (n != want) {
        print_error("---- report ----\n%s---- end ----\n", text);
        T_FAIL("pool_report_leaks returned %zu, expected %zu", n, want);
    }
    return text;
}

static void expect_size_on_line(pool_t *pool, const char *text, const void *p, size_t req)
{
    const char *ls = NULL, *le = NULL;
    find_line(text, p, &ls, &le);
    size_t usable = pool_usable_size(pool, p);
    if (!line_has_number(ls, le, req) && !line_has_number(ls, le, usable))
        T_FAIL("leak report line for %p \"%.*s\" shows neither size %zu nor usable %zu", p,
               (int)(le - ls), ls, req, usable);
}

static void test_pool_leak_report_tracked(void **state)
{
    (void)state;
    TEST_START();
    pool_options_t o;
    memset(&o, 0, sizeof o);
    o.track_leaks = 1;
    pool_t *pool = pool_create(&o);
    EXPECT_NONNULL_CTX(pool, "pool_create(track_leaks=1)");
    const size_t site_sizes[3] = { 777, 33333, 2 * MiB + 5 }; /* small, medium, large */
    const size_t plain_sizes[2] = { 4444, 99999 };
    void *site[3], *plain[2];
    /* the three POOL_ALLOC calls share this one line: */
    for (int i = 0; i < 3; i++) { site[i] = POOL_ALLOC(pool, site_sizes[i]); } const int site_line = __LINE__;
    for (int i = 0; i < 2; i++) plain[i] = pool_alloc(pool, plain_sizes[i]);
    for (int i = 0; i < 3; i++) EXPECT_NONNULL_CTX(site[i], "POOL_ALLOC(%zu)", site_sizes[i]);
    for (int i = 0; i < 2; i++) EXPECT_NONNULL_CTX(plain[i], "pool_alloc(%zu)", plain_sizes[i]);

    char *text = leak_report_text(pool, 5);
    char site_str[256];
    snprintf(site_str, sizeof site_str, "%s:%d", base_name(__FILE__), site_line);
    for (int i = 0; i < 3; i++) {
        const char *ls = NULL, *le = NULL;
        find_line(text, site[i], &ls, &le);
        if (!line_has_str(ls, le, site_str)) {
            print_error("---- report ----\n%s---- end ----\n", text);
            T_FAIL("leak line for POOL_ALLOC'd %p does not name \"%s\": \"%.*s\"", site[i],
                   site_str, (int)(le - ls), ls);
        }
        expect_size_on_line(pool, text, site[i], site_sizes[i]);
    }
    for (int i = 0; i < 2; i++) expect_size_on_line(pool, text, plain[i], plain_sizes[i]);
    free(text);

    for (int i = 0; i < 3; i++) pool_free(pool, site[i]);
    EXPECT_EQ(report_count(pool), 2);
    for (int i = 0; i < 2; i++) pool_free(pool, plain[i]);
    EXPECT_EQ(report_count(pool), 0);
    pool_destroy(pool);
}

static void test_pool_leak_report_untracked(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    const size_t sizes[7] = { 0, 1, 100, 3000, 70000, 300000, 2 * MiB };
    void *p[7];
    for (int i = 0; i < 7; i++) {
        p[i] = pool_alloc(pool, sizes[i]);
        EXPECT_NONNULL_CTX(p[i], "pool_alloc(%zu)", sizes[i]);
    }
    char *text = leak_report_text(pool, 7);
    for (int i = 0; i < 7; i++)
        if (sizes[i] >= 100) expect_size_on_line(pool, text, p[i], sizes[i]);
    free(text);
    for (int i = 0; i < 7; i += 2) pool_free(pool, p[i]);
    EXPECT_EQ(report_count(pool), 3);
    /* out = NULL: stderr */
    print_message("  (a leak report of 3 allocations on stderr follows)\n");
    size_t n = pool_report_leaks(pool, NULL);
    EXPECT_EQ(n, 3);
    for (int i = 1; i < 7; i += 2) pool_free(pool, p[i]);
    n = pool_report_leaks(pool, NULL);
    EXPECT_EQ(n, 0);
    pool_destroy(pool);
}

/* A realloc that stays in place changes the requested size: the report shows
 * the new one (tracked small cells, and large objects, which always show
 * their requested size), not the size first allocated. */
static void test_pool_leak_report_after_realloc(void **state)
{
    (void)state;
    TEST_START();
    for (int tracked = 0; tracked < 2; tracked++) {
        pool_options_t o;
        memset(&o, 0, sizeof o);
        o.track_leaks = tracked;
        pool_t *pool = pool_create(&o);
        EXPECT_NONNULL_CTX(pool, "pool_create(track_leaks=%d)", tracked);
        /* from -> to, each staying in its cell or mapping */
        const size_t from[4] = { 100, 50, 2 * MiB + 5, 3 * MiB };
        const size_t to[4] = { 60, 60, 2 * MiB - 1000, 3 * MiB - 100 * KiB };
        void *p[4];
        for (int i = 0; i < 4; i++) {
            void *q = pool_alloc(pool, from[i]);
            EXPECT_NONNULL_CTX(q, "pool_alloc(%zu)", from[i]);
            p[i] = pool_realloc(pool, q, to[i]);
            EXPECT_NONNULL_CTX(p[i], "pool_realloc(%zu -> %zu)", from[i], to[i]);
            if (p[i] != q) T_FAIL("pool_realloc(%zu -> %zu) moved: the test wants it in place", from[i], to[i]);
        }
        char *text = leak_report_text(pool, 4);
        for (int i = tracked ? 0 : 2; i < 4; i++) {
            const char *ls = NULL, *le = NULL;
            find_line(text, p[i], &ls, &le);
            if (!line_has_number(ls, le, to[i])) {
                print_error("---- report ----\n%s---- end ----\n", text);
                T_FAIL("track_leaks=%d: leak line for %p (realloc %zu -> %zu) does not show %zu: \"%.*s\"",
                       tracked, p[i], from[i], to[i], to[i], (int)(le - ls), ls);
            }
        }
        free(text);
        for (int i = 0; i < 4; i++) pool_free(pool, p[i]);
        EXPECT_EQ(report_count(pool), 0);
        pool_destroy(pool);
    }
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_pool_leak_report");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_pool_leak_report_tracked),
        T(test_pool_leak_report_untracked),
        T(test_pool_leak_report_after_realloc),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
