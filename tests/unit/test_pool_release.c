/* Unit tests of pool_trim's release of free pages inside small spans
 * (pool/release.c), on one thread: the pages that only free cells overlap
 * leave RSS (read with mincore, exactly) and bytes_reserved, the pages of
 * live cells stay, live contents survive, parked cells come back zeroed or
 * valid before any new span is mapped, double frees of parked cells are
 * still reported (without touching their pages), and the limit and the
 * statistics stay consistent. The tests with other threads (remote frees,
 * exited owners, adoption) are in test_pool_release_threads.c; the
 * scenario both use is tests/support/pool_release_test.h. Seeded: set
 * MULCH_TEST_SEED to reproduce. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x72656c6561736521)
#define MULCH_TEST_POOL
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mulch.h>

#include "mulch_test.h"
#include "pool_internal.h"
#include "release.h"
#include "pool_release_test.h"

static void test_trim_releases_pages_of_small_cells(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    scenario_t s;
    scenario_fill(&s, pool, 256, scaled(16384, 4096), 5, "small cells");
    trim_and_expect_floor(&s);
    scenario_free_live(&s);
    EXPECT_EQ(stats_of(pool).bytes_in_use, 0);
    scenario_done(&s);
    pool_destroy(pool);
}

static void test_trim_releases_whole_large_cells(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    scenario_t s;
    /* 20 KiB cells span pages: a free cell's link page goes too */
    scenario_fill(&s, pool, 20 * KiB, scaled(1024, 256), 30, "large cells");
    trim_and_expect_floor(&s);
    scenario_free_live(&s);
    scenario_done(&s);
    pool_destroy(pool);
}

/* Cells that lay wholly on released pages come back with zeros past the
 * pool's two words; the rest of the pool's contents stay valid. The freed
 * room serves before any new chunk is mapped. */
static void realloc_after_trim(size_t size, size_t count, unsigned keep_percent, const char *name, bool secure) {
    pool_options_t opts = { 0 };
    opts.secure = secure;
    pool_t *pool = pool_create(&opts);
    scenario_t s;
    scenario_fill(&s, pool, size, count, keep_percent, name);
    pool_trim(pool);
    size_t released_cells = 0;
    uintptr_t *was_released = calloc(count, sizeof *was_released);
    for (size_t i = 0; i < count; i++) {
        if (s.live[i]) continue;
        uintptr_t a = (uintptr_t)s.cell[i];
        bool all_gone = true;
        for (uintptr_t p = a & ~(PAGE - 1); p < a + size; p += PAGE) all_gone &= !page_resident(p);
        if (all_gone) was_released[released_cells++] = a;
    }
    EXPECT_GE(released_cells, 1);
    qsort(was_released, released_cells, sizeof *was_released, cmp_uintptr);
    size_t mapped = stats_of(pool).bytes_mapped;
    size_t again = count - s.live_count;
    unsigned char **cells = calloc(again, sizeof *cells);
    size_t zeroed_seen = 0;
    for (size_t i = 0; i < again; i++) {
        cells[i] = pool_alloc(pool, size);
        EXPECT_NONNULL(cells[i]);
        uintptr_t a = (uintptr_t)cells[i];
        if (bsearch(&a, was_released, released_cells, sizeof *was_released, cmp_uintptr)) {
            const unsigned char *b = launder(cells[i]);
            /* memcheck sees a fresh allocation as undefined: no reading it there */
            for (size_t k = 2 * sizeof(uintptr_t); k < size && !MT_ON_VALGRIND(); k++)
                if (b[k] != 0) T_FAIL("recommitted cell %p: byte %zu is %u, not 0", (void *)cells[i], k, b[k]);
            zeroed_seen++;
        }
        fill(cells[i], size, UINT64_C(1) << 40 | i);
    }
    EXPECT_GE(zeroed_seen, 1);
    EXPECT_EQ(stats_of(pool).bytes_mapped, mapped); /* parked cells first, no new chunk */
    scenario_check_live(&s);
    for (size_t i = 0; i < again; i++) EXPECT_PATTERN(cells[i], size, UINT64_C(1) << 40 | i);
    for (size_t i = 0; i < again; i++) pool_free(pool, cells[i]);
    scenario_free_live(&s);
    pool_stats_t st = stats_of(pool);
    EXPECT_EQ(st.bytes_in_use, 0);
    EXPECT_EQ(st.live_allocations, 0);
    EXPECT_EQ(report_count(pool), 0);
    pool_trim(pool);
    EXPECT_LE(stats_of(pool).bytes_reserved, 64 * KiB); /* headers of the chunks left */
    free(cells);
    free(was_released);
    scenario_done(&s);
    pool_destroy(pool);
}

static void test_alloc_after_trim_small(void **state) {
    (void)state;
    realloc_after_trim(48, scaled(40000, 8000), 2, "realloc small", false);
}

static void test_alloc_after_trim_large(void **state) {
    (void)state;
    realloc_after_trim(9000, scaled(800, 200), 10, "realloc large", false);
}

static void test_alloc_after_trim_secure(void **state) {
    (void)state;
    realloc_after_trim(112, scaled(20000, 4000), 3, "realloc secure", true);
}

/* A parked cell whose page is gone: its free mark reads as zero, yet free,
 * usable_size and realloc name it a double free, and leave the page alone. */
static void test_double_free_of_parked_cell(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    scenario_t s;
    scenario_fill(&s, pool, 512, scaled(8192, 2048), 5, "double free");
    pool_trim(pool);
    unsigned char *victim = NULL;
    for (size_t i = 0; i < s.count && victim == NULL; i++)
        if (!s.live[i] && !page_resident((uintptr_t)s.cell[i] & ~(PAGE - 1))) victim = s.cell[i];
    EXPECT_NONNULL(victim);
    block_t *b = block_head(block_at(chunk_of(victim), victim));
    assert_true(cell_is_parked(pool, b, victim));
    unsigned long before = rec_count();
    pool_free(pool, victim);
    EXPECT_ONE_REPORT(before, "pool_free: double free", victim);
    before = rec_count();
    EXPECT_EQ(pool_usable_size(pool, victim), 0);
    EXPECT_ONE_REPORT(before, "pool_usable_size: double free", victim);
    before = rec_count();
    EXPECT_NULL(pool_realloc(pool, victim, 100));
    EXPECT_ONE_REPORT(before, "pool_realloc: double free", victim);
    assert_false(page_resident((uintptr_t)victim & ~(PAGE - 1)));
    /* a live cell of a trimmed span frees normally, once. Its span must
     * keep another live cell: a span left empty is retired, and a second
     * free then finds released memory, a double free reported as
     * "pointer into free memory" (which span holds a lone live cell
     * depends on the seed). */
    size_t k = s.count;
    for (size_t i = 0; i < s.count && k == s.count; i++) {
        if (!s.live[i]) continue;
        block_t *span = block_head(block_at(chunk_of(s.cell[i]), s.cell[i]));
        for (size_t j = 0; j < s.count; j++)
            if (j != i && s.live[j] && block_head(block_at(chunk_of(s.cell[j]), s.cell[j])) == span) {
                k = i;
                break;
            }
    }
    if (k == s.count) T_FAIL("no trimmed span kept two live cells");
    before = rec_count();
    pool_free(pool, s.cell[k]);
    s.live[k] = false;
    s.live_count--;
    EXPECT_NO_REPORTS(before);
    before = rec_count();
    pool_free(pool, s.cell[k]);
    EXPECT_ONE_REPORT(before, "pool_free: double free", s.cell[k]);
    EXPECT_EQ(stats_of(pool).live_allocations, s.live_count);
    scenario_free_live(&s);
    EXPECT_EQ(stats_of(pool).bytes_in_use, 0);
    scenario_done(&s);
    pool_destroy(pool);
}

/* Under a limit: trimming makes room, recommitting parked cells counts
 * against the limit, and bytes_reserved never passes it. */
static void test_limit_holds_across_release_and_recommit(void **state) {
    (void)state;
    const size_t limit = 8 * MiB;
    pool_options_t opts = { 0 };
    opts.limit = limit;
    pool_t *pool = pool_create(&opts);
    size_t cap = limit / 1024;
    unsigned char **cells = calloc(cap, sizeof *cells);
    size_t n = 0;
    while (n < cap && (cells[n] = pool_alloc(pool, 1000)) != NULL) fill(cells[n], 1000, n), n++;
    EXPECT_GE(n, cap / 2);
    rng_t rng = test_rng_named("limit");
    for (size_t i = 0; i < n; i++) {
        if (rng_below(&rng, 10) == 0) continue;
        pool_free(pool, cells[i]);
        cells[i] = NULL;
    }
    size_t reserved_full = stats_of(pool).bytes_reserved;
    pool_trim(pool);
    EXPECT_LT(stats_of(pool).bytes_reserved, reserved_full / 2);
    unsigned char **again = calloc(cap, sizeof *again);
    size_t m = 0;
    while (m < cap && (again[m] = pool_alloc(pool, 1000)) != NULL) {
        fill(again[m], 1000, UINT64_C(1) << 42 | m);
        if (m % 64 == 0) EXPECT_LE(stats_of(pool).bytes_reserved, limit);
        m++;
    }
    EXPECT_LE(stats_of(pool).bytes_reserved, limit);
    EXPECT_GE(m, (n - n / 10) * 8 / 10); /* most of the freed room came back */
    for (size_t i = 0; i < n; i++)
        if (cells[i]) EXPECT_PATTERN(cells[i], 1000, i);
    for (size_t i = 0; i < m; i++) EXPECT_PATTERN(again[i], 1000, UINT64_C(1) << 42 | i);
    for (size_t i = 0; i < n; i++) pool_free(pool, cells[i]);
    for (size_t i = 0; i < m; i++) pool_free(pool, again[i]);
    EXPECT_EQ(stats_of(pool).bytes_in_use, 0);
    free(cells);
    free(again);
    pool_destroy(pool);
}

/* The automatic trim releases the pages of spans it does not retire: a bin
 * head whose carved cells are all free ends with every cell parked and
 * used == 0. At the limit its recommit fails; the span must then go back
 * to the pool, not into the full list, where no free would ever reach it. */
static bool in_list(const block_t *list, const block_t *b) {
    for (; list; list = list->next)
        if (list == b) return true;
    return false;
}

static void test_parked_empty_span_at_limit_is_retired(void **state) {
    (void)state;
    pool_options_t opts = { 0 };
    opts.limit = 64 * MiB;
    pool_t *pool = pool_create(&opts);
    enum { SIZE = 1000, CARVED = 40 };
    unsigned char *cells[CARVED];
    for (size_t i = 0; i < CARVED; i++) {
        cells[i] = pool_alloc(pool, SIZE);
        EXPECT_NONNULL(cells[i]);
        fill(cells[i], SIZE, i);
    }
    block_t *b = block_head(block_at(chunk_of(cells[0]), cells[0]));
    unsigned cls = b->size_class;
    assert_true(atomic_load(&b->bump) < b->capacity);
    for (size_t i = 0; i < CARVED; i++) pool_free(pool, cells[i]);
    /* what heap_release_free_pages_auto does from the free path */
    thread_heap_t *heap = heap_current(pool);
    assert_non_null(heap);
    heap_recent_flush(pool, heap);
    assert_true(heap->bins[cls] == b && b->used == 0);
    EXPECT_GE(heap_release_free_pages(pool, heap), 1);
    assert_true(b->free == NULL && block_has_released(pool, b));
    /* The pool is at its limit: nothing may be committed. (Reaching it by
     * allocating would retire the span on the way: heap_release_empty.) */
    pool->limit = atomic_load(&pool->committed);
    unsigned long before = rec_count();
    void *cell = pool_alloc(pool, SIZE);
    EXPECT_NULL(cell);
    EXPECT_NO_REPORTS(before);
    assert_false(in_list(heap->full[cls], b));
    /* (at most the limit: the trim at the limit unmaps the emptied chunk,
     * and no chunk is made again for a span that would not fit) */
    EXPECT_LE(atomic_load(&pool->committed), pool->limit);
    pool->limit = opts.limit;
    /* the room is usable again for the class */
    unsigned char *again[CARVED];
    for (size_t i = 0; i < CARVED; i++) {
        again[i] = pool_alloc(pool, SIZE);
        EXPECT_NONNULL(again[i]);
        fill(again[i], SIZE, i + 100);
    }
    for (size_t i = 0; i < CARVED; i++) {
        EXPECT_PATTERN(again[i], SIZE, i + 100);
        pool_free(pool, again[i]);
    }
    for (unsigned c = 0; c < pool->class_count; c++)
        for (block_t *f = heap->full[c]; f; f = f->next) EXPECT_NE(f->used, 0);
    EXPECT_EQ(stats_of(pool).bytes_in_use, 0);
    pool_destroy(pool);
}

/* The automatic trim (more than 32 MiB of idle spans, from a free) gives
 * back the freeing thread's free pages too, without pool_trim. */
static void test_automatic_trim_releases_free_pages(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    scenario_t s;
    scenario_fill(&s, pool, 256, 16384, 5, "automatic");
    size_t big = 40 * MiB / 1024;
    unsigned char **cells = calloc(big, sizeof *cells);
    for (size_t i = 0; i < big; i++) {
        cells[i] = pool_alloc(pool, 1024);
        EXPECT_NONNULL(cells[i]);
        memset(cells[i], 1, 1024);
    }
    for (size_t i = 0; i < big; i++) pool_free(pool, cells[i]);
    size_t floor = live_pages(&s), after = resident_pages(&s);
    print_message("    %zu pages, %zu resident after the automatic trim, floor %zu\n", s.page_count, after, floor);
    /* the last frees of the class may wait in the heap's recent cells */
    EXPECT_LE(after, floor + HEAP_RECENT);
    EXPECT_LT(after, s.page_count * 3 / 4);
    scenario_check_live(&s);
    scenario_free_live(&s);
    free(cells);
    scenario_done(&s);
    pool_destroy(pool);
}

int main(void) {
    mt_init("test_pool_release");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_trim_releases_pages_of_small_cells),
        T(test_trim_releases_whole_large_cells),
        T(test_alloc_after_trim_small),
        T(test_alloc_after_trim_large),
        T(test_alloc_after_trim_secure),
        T(test_double_free_of_parked_cell),
        T(test_limit_holds_across_release_and_recommit),
        T(test_parked_empty_span_at_limit_is_retired),
        T(test_automatic_trim_releases_free_pages),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
