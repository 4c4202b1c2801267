/* test_pool_retired_set.c — os.c's set of retired chunk ranges against a
 * reference model, page by page.
 *
 * One arena of pages (mapped through os_map_aligned, as a chunk is) is
 * the only memory the process ever retires here. A seeded mix of
 * os_retire (runs of live pages, with a readable prefix as secure mode
 * retires a huge chunk) and os_map_aligned (sizes and alignments in
 * pages) runs while the model keeps each page live or retired. After each
 * step:
 *   - os_map_aligned took from the set exactly when the model holds a
 *     retired run with an aligned start that fits (best fit: which one is
 *     the set's choice; every page it took must be retired in the model),
 *     and what it took reads as zeros and is writable again;
 *   - os_retired_contains agrees with the model (sampled each step, every
 *     page now and then): splitting and coalescing lose and invent nothing;
 *   - os_mapped_bytes counts the live pages and not the retired ones.
 * A retired page reads zeros where it was readable. Two more checks: a
 * failed remap (os_fail_after) leaves the range retired, and a charged
 * reuse is still refused by the overcommit check when too big. Seeded
 * (MULCH_TEST_SEED); MULCH_TEST_QUICK=1 runs fewer steps. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x7265746972656473)
#include <mulch.h>

#include <stdio.h>
#include <sys/sysinfo.h>

#include "mulch_test.h"
#include "pool_internal.h"

enum { ARENA_PAGES = 512 };

typedef struct retired_model {
    unsigned char *arena;
    bool retired[ARENA_PAGES];
    size_t live_pages;
} retired_model_t;

static unsigned char *page_at(const retired_model_t *m, size_t page) {
    return m->arena + page * MULCH_PAGE;
}

/* Whether the model holds a retired run with a start aligned to `align`
 * pages (the arena is aligned to the largest of them) and `pages` pages after it. */
static bool model_fits(const retired_model_t *m, size_t pages, size_t align) {
    for (size_t start = 0; start + pages <= ARENA_PAGES; start += align) {
        size_t i = 0;
        while (i < pages && m->retired[start + i]) i++;
        if (i == pages) return true;
    }
    return false;
}

static void model_check_page(const retired_model_t *m, size_t page) {
    bool contains = os_retired_contains(page_at(m, page));
    if (contains != m->retired[page])
        T_FAIL("page %zu: os_retired_contains says %d, the model %d", page, (int)contains, (int)m->retired[page]);
}

static void model_retire(retired_model_t *m, rng_t *rng) {
    size_t pages = 1 + (size_t)rng_below(rng, 16);
    size_t start = (size_t)rng_below(rng, ARENA_PAGES - pages + 1);
    for (size_t i = 0; i < pages; i++)
        if (m->retired[start + i]) return; /* only live pages are a chunk's */
    /* most like a chunk (all readable), some like a secure huge chunk */
    size_t readable = rng_below(rng, 4) == 0 ? MULCH_PAGE : pages * MULCH_PAGE;
    size_t mapped = os_mapped_bytes();
    memset(page_at(m, start), 0xa5, pages * MULCH_PAGE);
    os_retire(page_at(m, start), pages * MULCH_PAGE, readable);
    EXPECT_EQ(os_mapped_bytes(), mapped - pages * MULCH_PAGE);
    for (size_t i = 0; i < pages; i++) m->retired[start + i] = true;
    m->live_pages -= pages;
    /* read-only zeros where readable: its pages went as with munmap */
    EXPECT_EQ(*(volatile unsigned char *)page_at(m, start), 0);
}

static void model_take(retired_model_t *m, rng_t *rng) {
    static const size_t aligns[] = { 1, 2, 4, 16, 64 };
    size_t pages = 1 + (size_t)rng_below(rng, 12);
    size_t align = aligns[rng_below(rng, sizeof aligns / sizeof aligns[0])];
    bool fits = model_fits(m, pages, align);
    size_t mapped = os_mapped_bytes();
    unsigned char *p = os_map_aligned(pages * MULCH_PAGE, align * MULCH_PAGE, 0, false);
    assert_non_null(p);
    EXPECT_EQ(os_mapped_bytes(), mapped + pages * MULCH_PAGE);
    EXPECT_EQ(((uintptr_t)p & (align * MULCH_PAGE - 1)), 0);
    bool inside = p >= m->arena && p < m->arena + (size_t)ARENA_PAGES * MULCH_PAGE;
    if (inside != fits)
        T_FAIL("%zu pages at %zu-page alignment: the model %s a retired run, os_map_aligned took %s", pages, align,
               fits ? "has" : "has no", inside ? "one" : "a fresh mapping");
    if (!inside) {
        os_unmap(p, pages * MULCH_PAGE);
        return;
    }
    size_t start = (size_t)(p - m->arena) / MULCH_PAGE;
    assert_true(start + pages <= ARENA_PAGES);
    for (size_t i = 0; i < pages; i++) {
        if (!m->retired[start + i]) T_FAIL("took page %zu, live in the model", start + i);
        /* zero, and writable again (secure mode's PROT_NONE part too) */
        EXPECT_EQ(page_at(m, start + i)[MULCH_PAGE - 1], 0);
        page_at(m, start + i)[0] = 1;
        m->retired[start + i] = false;
    }
    m->live_pages += pages;
}

static void test_retired_set_model(void **state) {
    (void)state;
    TEST_START();
    rng_t rng = test_rng_named(__func__);
    retired_model_t m = { 0 };
    size_t baseline = os_mapped_bytes();
    /* aligned to the largest alignment model_take asks for, and no
     * further: a region's alignment would retire the slack around the
     * arena (os_map_slack), ranges outside the model */
    m.arena = os_map_aligned((size_t)ARENA_PAGES * MULCH_PAGE, 64 * MULCH_PAGE, 0, false);
    assert_non_null(m.arena);
    m.live_pages = ARENA_PAGES;
    size_t steps = scaled(6000, 1500);
    for (size_t step = 0; step < steps; step++) {
        if (rng_below(&rng, 2) == 0) model_retire(&m, &rng);
        else model_take(&m, &rng);
        for (int k = 0; k < 8; k++) model_check_page(&m, (size_t)rng_below(&rng, ARENA_PAGES));
        if (step % 500 == 0)
            for (size_t page = 0; page < ARENA_PAGES; page++) model_check_page(&m, page);
        EXPECT_EQ(os_mapped_bytes(), baseline + m.live_pages * MULCH_PAGE);
    }
    for (size_t page = 0; page < ARENA_PAGES; page++) model_check_page(&m, page);
    /* everything back to the set, coalesced: one arena-sized take fits */
    for (size_t page = 0; page < ARENA_PAGES; page++) {
        if (m.retired[page]) continue;
        size_t end = page;
        while (end < ARENA_PAGES && !m.retired[end]) m.retired[end++] = true;
        os_retire(page_at(&m, page), (end - page) * MULCH_PAGE, (end - page) * MULCH_PAGE);
    }
    m.live_pages = 0;
    EXPECT_EQ(os_mapped_bytes(), baseline);
    unsigned char *whole = os_map_aligned((size_t)ARENA_PAGES * MULCH_PAGE, MULCH_PAGE, 0, false);
    EXPECT_PTR_EQ(whole, m.arena);
    os_retire(whole, (size_t)ARENA_PAGES * MULCH_PAGE, (size_t)ARENA_PAGES * MULCH_PAGE);
    EXPECT_EQ(os_mapped_bytes(), baseline);
}

/* Fault injection on the reuse path: the remap of a retired range fails
 * as a fresh mapping would (NULL, nothing counted) and the range stays
 * retired, whole, for the next try. */
static void test_retired_reuse_fault_injection(void **state) {
    (void)state;
    TEST_START();
    size_t bytes = (size_t)16 * MULCH_PAGE;
    size_t baseline = os_mapped_bytes();
    /* (page-aligned: a region's alignment would retire slack beside p,
     * and the take below would start there) */
    unsigned char *p = os_map_aligned(bytes, MULCH_PAGE, 0, false);
    assert_non_null(p);
    os_retire(p, bytes, bytes);
    EXPECT_EQ(os_mapped_bytes(), baseline);
    os_fail_after(1);
    EXPECT_PTR_EQ(os_map_aligned(bytes, MULCH_PAGE, 0, false), NULL);
    os_fail_after(0);
    EXPECT_EQ(os_mapped_bytes(), baseline);
    for (size_t i = 0; i < 16; i++) EXPECT_EQ(os_retired_contains(p + i * MULCH_PAGE), 1);
    unsigned char *q = os_map_aligned(bytes, MULCH_PAGE, 0, false);
    EXPECT_PTR_EQ(q, p);
    q[bytes - 1] = 1;
    os_retire(q, bytes, bytes);
    EXPECT_EQ(os_mapped_bytes(), baseline);
}

/* A charged mapping (a huge object's) that takes a retired range still
 * goes through the kernel's overcommit check: a size above RAM + swap is
 * refused, under the default heuristic, even where a MAP_NORESERVE range
 * that big was retired, and the range stays retired for what fits.
 * Skipped where the check is off or the tools shadow the address space. */
static void test_retired_reuse_still_charged(void **state) {
    (void)state;
    TEST_START();
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    int mode = -1;
    if (f) {
        if (fscanf(f, "%d", &mode) != 1) mode = -1;
        fclose(f);
    }
    struct sysinfo si;
    if (mode != 0 || MT_SANITIZED || MT_ON_VALGRIND() || sysinfo(&si) != 0) {
        print_message("skipped: overcommit heuristic off, or a tool\n");
        return;
    }
    size_t memory = ((size_t)si.totalram + (size_t)si.totalswap) * si.mem_unit;
    size_t too_big = (memory + MULCH_REGION) & ~(MULCH_REGION - 1);
    size_t range = too_big + MULCH_REGION;
    size_t baseline = os_mapped_bytes();
    unsigned char *p = os_map_aligned(range, MULCH_REGION, 0, false); /* as a chunk: not charged */
    assert_non_null(p);
    os_retire(p, range, range);
    EXPECT_PTR_EQ(os_map_aligned(too_big, MULCH_REGION, 0, true), NULL);
    EXPECT_EQ(os_mapped_bytes(), baseline);
    EXPECT_EQ(os_retired_contains(p), 1);
    EXPECT_EQ(os_retired_contains(p + range - 1), 1);
    unsigned char *q = os_map_aligned(MULCH_REGION, MULCH_REGION, 0, true);
    assert_non_null(q);
    EXPECT_EQ(os_mapped_bytes(), baseline + MULCH_REGION);
    os_retire(q, MULCH_REGION, MULCH_REGION);
    EXPECT_EQ(os_mapped_bytes(), baseline);
}

/* Best fit, not first (session 28): the set holds a big range filed first
 * and a small one after it, not adjacent. A small request must take the
 * small range, so that a request as big as the big range still fits in
 * it. First fit carved the small request out of the big range and mapped
 * the big one anew: address space grew by a large object every few rounds
 * of test_address_space_bounded (test_pool_review_s23_unmap_race). Runs
 * first, on an empty set. */
static void test_retired_best_fit(void **state) {
    (void)state;
    TEST_START();
    enum { BIG = 1024, SMALL = 8, PAGES = BIG + 1 + SMALL };
    size_t baseline = os_mapped_bytes();
    /* (page-aligned: a region's alignment would retire the slack either
     * side of the arena, and both ranges would grow by it) */
    unsigned char *arena = os_map_aligned((size_t)PAGES * MULCH_PAGE, MULCH_PAGE, 0, false);
    assert_non_null(arena);
    unsigned char *separator = arena + (size_t)BIG * MULCH_PAGE, *small = separator + MULCH_PAGE;
    os_retire(arena, (size_t)BIG * MULCH_PAGE, (size_t)BIG * MULCH_PAGE);
    os_retire(small, (size_t)SMALL * MULCH_PAGE, (size_t)SMALL * MULCH_PAGE);
    unsigned char *p = os_map_aligned((size_t)SMALL * MULCH_PAGE, MULCH_PAGE, 0, false);
    unsigned char *q = os_map_aligned((size_t)BIG * MULCH_PAGE, MULCH_PAGE, 0, false);
    assert_non_null(p);
    assert_non_null(q);
    if (p != small) T_FAIL("%d pages went to %p, not to the %d-page range at %p", SMALL, (void *)p, SMALL, (void *)small);
    if (q != arena) T_FAIL("%d pages mapped anew at %p, not in the %d-page range at %p", BIG, (void *)q, BIG, (void *)arena);
    /* the set empty again for the tests after this one (each assumes its
     * own ranges are all the set holds): everything back, coalesced into
     * one range, taken whole, unmapped */
    if (q != arena) os_unmap(q, (size_t)BIG * MULCH_PAGE);
    else os_retire(q, (size_t)BIG * MULCH_PAGE, (size_t)BIG * MULCH_PAGE);
    os_retire(p, (size_t)SMALL * MULCH_PAGE, (size_t)SMALL * MULCH_PAGE);
    os_retire(separator, MULCH_PAGE, MULCH_PAGE);
    unsigned char *whole = os_map_aligned((size_t)PAGES * MULCH_PAGE, MULCH_PAGE, 0, false);
    EXPECT_PTR_EQ(whole, arena);
    os_unmap(whole, (size_t)PAGES * MULCH_PAGE);
    EXPECT_EQ(os_mapped_bytes(), baseline);
}

int main(void) {
    mt_init("test_pool_retired_set");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retired_best_fit),
        cmocka_unit_test(test_retired_set_model),
        cmocka_unit_test(test_retired_reuse_fault_injection),
        cmocka_unit_test(test_retired_reuse_still_charged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
