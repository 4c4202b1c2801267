/* pool_release_test.h — the scenario shared by the tests of pool_trim's
 * release of free pages inside small spans (pool/release.c),
 * tests/unit/test_pool_release.c and test_pool_release_threads.c:
 *
 *   - scenario_t: count cells of one size, patterned with their index, of
 *     which a seeded random share stays live (scenario_fill), with every
 *     page they overlap (sorted, unique);
 *   - page_resident / resident_pages (mincore, exact), live_pages (the
 *     floor of a page-granular release), statm_resident_pages (RSS);
 *   - scenario_check_live, scenario_free_live, scenario_done;
 *   - trim_and_expect_floor: pool_trim, then every page without a live
 *     cell is gone, and the statistics and live contents agree.
 *
 * Include it after mulch_test.h (with MULCH_TEST_POOL), pool_internal.h and
 * <sys/mman.h>. Everything here is static (inline) and belongs to the
 * including file. */
#ifndef MULCH_POOL_RELEASE_TEST_H
#define MULCH_POOL_RELEASE_TEST_H

#define PAGE ((uintptr_t)4096)

typedef struct scenario {
    pool_t         *pool;
    size_t          size, count;
    unsigned char **cell;   /* all cells, in allocation order */
    bool           *live;
    size_t          live_count;
    uintptr_t      *pages;  /* every page a cell overlaps, sorted, unique */
    size_t          page_count;
} scenario_t;

static inline int cmp_uintptr(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static inline bool page_resident(uintptr_t page) {
    unsigned char v = 0;
    assert_int_equal(mincore((void *)page, PAGE, &v), 0);
    return v & 1;
}

static inline size_t resident_pages(const scenario_t *s) {
    size_t n = 0;
    for (size_t i = 0; i < s->page_count; i++) n += page_resident(s->pages[i]);
    return n;
}

static inline size_t page_index(const scenario_t *s, uintptr_t page) {
    uintptr_t *hit = bsearch(&page, s->pages, s->page_count, sizeof *s->pages, cmp_uintptr);
    assert_non_null(hit);
    return (size_t)(hit - s->pages);
}

/* Pages some live cell overlaps (the floor of page-granular release). */
static inline size_t live_pages(const scenario_t *s) {
    bool *used = calloc(s->page_count, 1);
    size_t n = 0;
    for (size_t i = 0; i < s->count; i++) {
        if (!s->live[i]) continue;
        uintptr_t a = (uintptr_t)s->cell[i];
        for (uintptr_t p = a & ~(PAGE - 1); p < a + s->size; p += PAGE) {
            size_t k = page_index(s, p);
            if (!used[k]) n++;
            used[k] = true;
        }
    }
    free(used);
    return n;
}

static inline long statm_resident_pages(void) {
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld %ld", &size, &resident), 2);
    fclose(f);
    return resident;
}

/* Allocates count cells of `size` (patterned with their index), then frees
 * all but about keep_percent of them, in a seeded random choice. */
static inline void scenario_fill(scenario_t *s, pool_t *pool, size_t size, size_t count, unsigned keep_percent,
                                 const char *name) {
    rng_t rng = test_rng_named(name);
    memset(s, 0, sizeof *s);
    s->pool = pool;
    s->size = size;
    s->count = count;
    s->cell = calloc(count, sizeof *s->cell);
    s->live = calloc(count, sizeof *s->live);
    size_t pages_max = count * (size / PAGE + 2);
    s->pages = calloc(pages_max, sizeof *s->pages);
    for (size_t i = 0; i < count; i++) {
        s->cell[i] = pool_alloc(pool, size);
        EXPECT_NONNULL(s->cell[i]);
        fill(s->cell[i], size, i);
        s->live[i] = true;
        uintptr_t a = (uintptr_t)s->cell[i];
        for (uintptr_t p = a & ~(PAGE - 1); p < a + size; p += PAGE) s->pages[s->page_count++] = p;
    }
    qsort(s->pages, s->page_count, sizeof *s->pages, cmp_uintptr);
    size_t unique = 0;
    for (size_t i = 0; i < s->page_count; i++)
        if (unique == 0 || s->pages[unique - 1] != s->pages[i]) s->pages[unique++] = s->pages[i];
    s->page_count = unique;
    s->live_count = count;
    for (size_t i = 0; i < count; i++) {
        if (rng_below(&rng, 100) < keep_percent) continue;
        pool_free(pool, s->cell[i]);
        s->live[i] = false;
        s->live_count--;
    }
}

static inline void scenario_check_live(const scenario_t *s) {
    for (size_t i = 0; i < s->count; i++)
        if (s->live[i]) EXPECT_PATTERN(s->cell[i], s->size, i);
}

static inline void scenario_free_live(scenario_t *s) {
    for (size_t i = 0; i < s->count; i++) {
        if (!s->live[i]) continue;
        pool_free(s->pool, s->cell[i]);
        s->live[i] = false;
    }
    s->live_count = 0;
}

static inline void scenario_done(scenario_t *s) {
    free(s->cell);
    free(s->live);
    free(s->pages);
}

/* Trims and checks the release against the floor: every page without a
 * live cell leaves (mincore), bytes_reserved drops by at least as much,
 * RSS too (plain builds: sanitizers and valgrind keep shadow pages). */
static inline void trim_and_expect_floor(scenario_t *s) {
    size_t before = resident_pages(s);
    EXPECT_EQ(before, s->page_count); /* every cell was written */
    pool_stats_t st0 = stats_of(s->pool);
    long rss0 = statm_resident_pages();
    pool_trim(s->pool);
    long rss1 = statm_resident_pages();
    pool_stats_t st1 = stats_of(s->pool);
    size_t floor = live_pages(s);
    size_t after = resident_pages(s);
    print_message("    %zu-byte cells: %zu pages, %zu resident after trim, floor %zu; reserved %zu -> %zu KiB\n",
                  s->size, before, after, floor, st0.bytes_reserved >> 10, st1.bytes_reserved >> 10);
    EXPECT_EQ(after, floor);
    size_t gone = (before - floor) * PAGE;
    EXPECT_GE(st0.bytes_reserved - st1.bytes_reserved, gone);
    /* process-wide, so with slack for the stack and metadata trim touches */
    if (!MT_SANITIZED && !MT_ON_VALGRIND()) EXPECT_GE((size_t)(rss0 - rss1) * PAGE + 256 * KiB, gone * 9 / 10);
    size_t k = 0;
    while (!s->live[k]) k++;
    EXPECT_EQ(st1.bytes_in_use, s->live_count * pool_usable_size(s->pool, s->cell[k]));
    EXPECT_GE(st1.bytes_reserved, st1.bytes_in_use);
    EXPECT_EQ(st1.live_allocations, s->live_count);
    EXPECT_EQ(report_count(s->pool), s->live_count);
    scenario_check_live(s);
}

#endif /* MULCH_POOL_RELEASE_TEST_H */
