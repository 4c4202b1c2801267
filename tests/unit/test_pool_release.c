/* Unit tests of pool_trim's release of free pages inside small spans
 * (pool/release.c): the pages that only free cells overlap leave RSS (read
 * with mincore, exactly) and bytes_reserved, the pages of live cells stay,
 * live contents survive, parked cells come back zeroed or valid before any
 * new span is mapped, double frees of parked cells are still reported
 * (without touching their pages), cross-thread frees into trimmed spans
 * work, and the limit and the statistics stay consistent. Seeded: set
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

static int cmp_uintptr(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static bool page_resident(uintptr_t page) {
    unsigned char v = 0;
    assert_int_equal(mincore((void *)page, PAGE, &v), 0);
    return v & 1;
}

static size_t resident_pages(const scenario_t *s) {
    size_t n = 0;
    for (size_t i = 0; i < s->page_count; i++) n += page_resident(s->pages[i]);
    return n;
}

static size_t page_index(const scenario_t *s, uintptr_t page) {
    uintptr_t *hit = bsearch(&page, s->pages, s->page_count, sizeof *s->pages, cmp_uintptr);
    assert_non_null(hit);
    return (size_t)(hit - s->pages);
}

/* Pages some live cell overlaps (the floor of page-granular release). */
static size_t live_pages(const scenario_t *s) {
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

static long statm_resident_pages(void) {
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld %ld", &size, &resident), 2);
    fclose(f);
    return resident;
}

/* Allocates count cells of `size` (patterned with their index), then frees
 * all but about keep_percent of them, in a seeded random choice. */
static void scenario_fill(scenario_t *s, pool_t *pool, size_t size, size_t count, unsigned keep_percent,
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

static void scenario_check_live(const scenario_t *s) {
    for (size_t i = 0; i < s->count; i++)
        if (s->live[i]) EXPECT_PATTERN(s->cell[i], s->size, i);
}

static void scenario_free_live(scenario_t *s) {
    for (size_t i = 0; i < s->count; i++) {
        if (!s->live[i]) continue;
        pool_free(s->pool, s->cell[i]);
        s->live[i] = false;
    }
    s->live_count = 0;
}

static void scenario_done(scenario_t *s) {
    free(s->cell);
    free(s->live);
    free(s->pages);
}

/* Trims and checks the release against the floor: every page without a
 * live cell leaves (mincore), bytes_reserved drops by at least as much,
 * RSS too (plain builds: sanitizers and valgrind keep shadow pages). */
static void trim_and_expect_floor(scenario_t *s) {
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

/* A remote double free can race the trim that parks its cell: it reads the
 * span's check word before the trim publishes the released bits, and the
 * cell's free mark after the page is gone (zeros), so it pushes the cell on
 * thread_free. The race is timing-dependent, so the push is planted here as
 * small_free_remote would make it, between two genuine remote frees. The
 * owner's collect must report it once, drop it, keep the other two, and
 * the cell must never be handed out twice. */
typedef struct remote_one {
    pool_t *pool;
    void   *cell;
} remote_one_t;

static void *free_one(void *arg) {
    remote_one_t *r = arg;
    pool_free(r->pool, r->cell);
    return NULL;
}

static void free_from_other_thread(pool_t *pool, void *cell) {
    remote_one_t r = { pool, cell };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_one, &r), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

static void test_collect_drops_parked_cell_pushed_by_racing_double_free(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    scenario_t s;
    scenario_fill(&s, pool, 256, scaled(16384, 4096), 5, "collect parked");
    pool_trim(pool);
    /* a parked cell whose span also holds two live cells */
    unsigned char *victim = NULL;
    size_t a = SIZE_MAX, c = SIZE_MAX;
    block_t *b = block_head(block_at(chunk_of(s.cell[0]), s.cell[0]));
    for (size_t i = 0; i < s.count && c == SIZE_MAX; i++) {
        if (s.live[i] || page_resident((uintptr_t)s.cell[i] & ~(PAGE - 1))) continue;
        victim = s.cell[i];
        b = block_head(block_at(chunk_of(victim), victim));
        a = c = SIZE_MAX;
        for (size_t k = 0; k < s.count && c == SIZE_MAX; k++) {
            if (!s.live[k] || block_head(block_at(chunk_of(s.cell[k]), s.cell[k])) != b) continue;
            if (a == SIZE_MAX) a = k;
            else c = k;
        }
    }
    assert_true(c != SIZE_MAX);
    assert_true(cell_is_parked(pool, b, victim));
    pool_stats_t st0 = stats_of(pool);

    free_from_other_thread(pool, s.cell[a]);
    /* the racing double free's push: its write lands on the zeroed page */
    tool_cell_carve(pool->valgrind, victim);
    uintptr_t old = atomic_load(&b->thread_free);
    cell_mark_free(pool, victim, (void *)tf_list(old));
    assert_true(atomic_compare_exchange_strong(&b->thread_free, &old, tf_push(old, victim)));
    thread_heap_t *heap = heap_current(pool); /* and counts it as a free, as small_free_remote does */
    assert_non_null(heap);
    heap_count_free(heap, b->size_class);
    free_from_other_thread(pool, s.cell[c]);
    s.live[a] = s.live[c] = false;
    s.live_count -= 2;
    EXPECT_EQ(tf_count(atomic_load(&b->thread_free)), 3);

    uint32_t used = b->used;
    unsigned long before = rec_count();
    EXPECT_EQ(block_collect(pool, b), 2);
    EXPECT_ONE_REPORT(before, "pool_free: double free", victim);
    EXPECT_EQ(b->used, used - 2);
    assert_true(cell_is_parked(pool, b, victim));
    size_t listed = 0, found_a = 0, found_c = 0;
    for (unsigned char *cell = b->free; cell; cell = cell_next(pool, cell)) {
        assert_true(cell_link_is_valid(b, cell));
        assert_true(cell != victim);
        found_a += cell == s.cell[a];
        found_c += cell == s.cell[c];
        assert_true(++listed <= b->capacity);
    }
    EXPECT_EQ(found_a, 1);
    EXPECT_EQ(found_c, 1);
    /* the double free is not counted as a free */
    pool_stats_t st1 = stats_of(pool);
    EXPECT_EQ(st1.live_allocations, st0.live_allocations - 2);
    EXPECT_EQ(st1.bytes_in_use, st0.bytes_in_use - 2 * (size_t)b->cell_size);

    /* every free cell of the pool, parked ones included, comes back once */
    size_t again = s.count - s.live_count;
    unsigned char **cells = calloc(again, sizeof *cells);
    size_t victim_seen = 0;
    before = rec_count();
    for (size_t i = 0; i < again; i++) {
        cells[i] = pool_alloc(pool, s.size);
        EXPECT_NONNULL(cells[i]);
        victim_seen += cells[i] == victim;
        fill(cells[i], s.size, UINT64_C(1) << 43 | i);
    }
    EXPECT_NO_REPORTS(before);
    EXPECT_LE(victim_seen, 1);
    qsort(cells, again, sizeof *cells, cmp_uintptr);
    for (size_t i = 1; i < again; i++)
        if (cells[i] == cells[i - 1]) T_FAIL("cell %p handed out twice", (void *)cells[i]);
    scenario_check_live(&s);
    for (size_t i = 0; i < again; i++) pool_free(pool, cells[i]);
    scenario_free_live(&s);
    EXPECT_EQ(report_count(pool), 0);
    pool_stats_t st = stats_of(pool);
    EXPECT_EQ(st.bytes_in_use, 0);
    EXPECT_EQ(st.live_allocations, 0);
    free(cells);
    scenario_done(&s);
    pool_destroy(pool);
}

/* Another thread frees the survivors of trimmed spans (remote frees take the
 * slow path there) while the owner allocates, recommitting parked cells. */
typedef struct remote {
    scenario_t     *s;
    unsigned char  *parked;
    unsigned long   reports_seen;
    _Atomic int     double_freed;
} remote_t;

static void *remote_freer(void *arg) {
    remote_t *r = arg;
    unsigned long before = rec_count();
    /* A double free, from afar, before the owner may recommit the cell (a
     * double free racing its reuse is undefined, as with any allocator). */
    if (r->parked) pool_free(r->s->pool, r->parked);
    r->reports_seen = rec_count() - before;
    atomic_store(&r->double_freed, 1);
    for (size_t i = 0; i < r->s->count; i += 2) {
        if (!r->s->live[i]) continue;
        if (check(r->s->cell[i], r->s->size, i) != SIZE_MAX) AFAIL("cell %zu damaged", i);
        pool_free(r->s->pool, r->s->cell[i]);
    }
    return NULL;
}

static void test_cross_thread_frees_into_trimmed_spans(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    scenario_t s;
    scenario_fill(&s, pool, 192, scaled(20000, 4000), 8, "cross thread");
    pool_trim(pool);
    remote_t r = { &s, NULL, 0, 0 };
    for (size_t i = 0; i < s.count && r.parked == NULL; i++)
        if (!s.live[i] && !page_resident((uintptr_t)s.cell[i] & ~(PAGE - 1))) r.parked = s.cell[i];
    EXPECT_NONNULL(r.parked);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, remote_freer, &r), 0);
    size_t again = s.count / 2;
    unsigned char **cells = calloc(again, sizeof *cells);
    while (!atomic_load(&r.double_freed)) sched_yield();
    for (size_t i = 0; i < again; i++) {
        cells[i] = pool_alloc(pool, s.size);
        if (cells[i] == NULL) AFAIL("allocation %zu failed", i);
        else fill(cells[i], s.size, UINT64_C(1) << 41 | i);
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_EQ(r.reports_seen, 1);
    for (size_t i = 0; i < s.count; i += 2) {
        if (!s.live[i]) continue;
        s.live[i] = false;
        s.live_count--;
    }
    scenario_check_live(&s);
    for (size_t i = 0; i < again; i++) EXPECT_PATTERN(cells[i], s.size, UINT64_C(1) << 41 | i);
    EXPECT_EQ(stats_of(pool).live_allocations, s.live_count + again);
    pool_trim(pool); /* takes the remote frees, releases again */
    scenario_check_live(&s);
    for (size_t i = 0; i < again; i++) {
        EXPECT_PATTERN(cells[i], s.size, UINT64_C(1) << 41 | i);
        pool_free(pool, cells[i]);
    }
    scenario_free_live(&s);
    pool_stats_t st = stats_of(pool);
    EXPECT_EQ(st.bytes_in_use, 0);
    EXPECT_EQ(st.live_allocations, 0);
    free(cells);
    scenario_done(&s);
    pool_destroy(pool);
}

/* A thread trims, then exits with live cells in trimmed spans: they float,
 * and the main thread frees into them, adopts them, and allocates there. */
static void *trim_and_exit(void *arg) {
    scenario_t *s = arg;
    scenario_fill(s, s->pool, 640, s->count, 10, "thread exit");
    pool_trim(s->pool);
    return NULL;
}

static void test_trimmed_spans_outlive_their_thread(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    scenario_t s = { .pool = pool, .count = scaled(8000, 2000) };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, trim_and_exit, &s), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    scenario_check_live(&s);
    size_t mapped = stats_of(pool).bytes_mapped;
    unsigned char *more[64];
    for (size_t i = 0; i < 64; i++) {
        more[i] = pool_alloc(pool, 640);
        EXPECT_NONNULL(more[i]);
        fill(more[i], 640, i + 7);
    }
    EXPECT_EQ(stats_of(pool).bytes_mapped, mapped);
    scenario_free_live(&s);
    for (size_t i = 0; i < 64; i++) {
        EXPECT_PATTERN(more[i], 640, i + 7);
        pool_free(pool, more[i]);
    }
    EXPECT_EQ(stats_of(pool).bytes_in_use, 0);
    pool_trim(pool);
    EXPECT_LE(stats_of(pool).bytes_reserved, 64 * KiB);
    scenario_done(&s);
    pool_destroy(pool);
}

/* Spans of an exited thread float with their free cells: pool_trim from
 * another thread adopts them and releases their free pages too. */
static void *fill_and_exit(void *arg) {
    scenario_t *s = arg;
    scenario_fill(s, s->pool, 320, s->count, 4, "exited owner");
    return NULL;
}

static void test_trim_covers_spans_of_exited_threads(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    scenario_t s = { .pool = pool, .count = scaled(12000, 3000) };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fill_and_exit, &s), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    trim_and_expect_floor(&s);
    scenario_free_live(&s);
    EXPECT_EQ(stats_of(pool).bytes_in_use, 0);
    pool_trim(pool);
    EXPECT_LE(stats_of(pool).bytes_reserved, 64 * KiB);
    scenario_done(&s);
    pool_destroy(pool);
}

/* pool_trim from a long-lived thread adopts the spans of exited threads to
 * release their pages, then floats them again: another thread that
 * allocates afterwards reuses their free cells instead of taking new spans
 * (the reviewer's maint2 scenario: +47 % bytes_reserved when the trimming
 * thread kept them). */
static void *fill_half_and_exit(void *arg) {
    scenario_t *s = arg;
    scenario_fill(s, s->pool, 64, s->count, 50, "refloat");
    return NULL;
}

typedef struct taker {
    pool_t         *pool;
    size_t          n;
    unsigned char **cells;
} taker_t;

static void *take_cells(void *arg) {
    taker_t *t = arg;
    for (size_t i = 0; i < t->n; i++) {
        t->cells[i] = pool_alloc(t->pool, 64);
        if (t->cells[i] == NULL) AFAIL("allocation %zu failed", i);
        else fill(t->cells[i], 64, UINT64_C(1) << 44 | i);
    }
    return NULL;
}

static int cmp_block(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (block_t *const *)a, y = (uintptr_t) * (block_t *const *)b;
    return x < y ? -1 : x > y;
}

static void test_trim_floats_adopted_spans_again(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    scenario_t s = { .pool = pool, .count = scaled(20000, 5000) };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fill_half_and_exit, &s), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    size_t reserved_a = stats_of(pool).bytes_reserved;
    pool_trim(pool); /* this thread lives on: a maintenance thread */
    size_t reserved_trim = stats_of(pool).bytes_reserved;
    taker_t t = { pool, s.count - s.live_count, NULL };
    t.cells = calloc(t.n, sizeof *t.cells);
    assert_int_equal(pthread_create(&th, NULL, take_cells, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    EXPECT_NO_ASYNC_FAILURES();
    size_t reserved_b = stats_of(pool).bytes_reserved;
    print_message("    reserved: %zu KiB after A, %zu after trim, %zu after B\n", reserved_a >> 10,
                  reserved_trim >> 10, reserved_b >> 10);
    /* B fits in A's free cells: no new span (a little slack for metadata) */
    EXPECT_LE(reserved_b, reserved_a + 64 * KiB);
    block_t **spans = calloc(s.count, sizeof *spans);
    for (size_t i = 0; i < s.count; i++) spans[i] = block_head(block_at(chunk_of(s.cell[i]), s.cell[i]));
    qsort(spans, s.count, sizeof *spans, cmp_block);
    size_t outside = 0;
    for (size_t i = 0; i < t.n; i++) {
        block_t *b = block_head(block_at(chunk_of(t.cells[i]), t.cells[i]));
        outside += bsearch(&b, spans, s.count, sizeof *spans, cmp_block) == NULL;
    }
    EXPECT_EQ(outside, 0);
    scenario_check_live(&s);
    for (size_t i = 0; i < t.n; i++) {
        EXPECT_PATTERN(t.cells[i], 64, UINT64_C(1) << 44 | i);
        pool_free(pool, t.cells[i]);
    }
    scenario_free_live(&s);
    EXPECT_EQ(stats_of(pool).bytes_in_use, 0);
    EXPECT_EQ(report_count(pool), 0);
    free(spans);
    free(t.cells);
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
        T(test_collect_drops_parked_cell_pushed_by_racing_double_free),
        T(test_cross_thread_frees_into_trimmed_spans),
        T(test_trimmed_spans_outlive_their_thread),
        T(test_trim_covers_spans_of_exited_threads),
        T(test_trim_floats_adopted_spans_again),
        T(test_limit_holds_across_release_and_recommit),
        T(test_parked_empty_span_at_limit_is_retired),
        T(test_automatic_trim_releases_free_pages),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
