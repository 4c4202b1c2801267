/* Unit tests of pool_trim's release of free pages inside small spans
 * (pool/release.c) with other threads: a racing remote double free of a
 * cell the trim parks, cross-thread frees into trimmed spans, trimmed
 * spans that outlive their thread, trim of exited threads' spans, and
 * adopted spans floated again. The one-thread tests are in
 * test_pool_release.c; the scenario both use is
 * tests/support/pool_release_test.h. Seeded: set MULCH_TEST_SEED to
 * reproduce. */
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

int main(void) {
    mt_init("test_pool_release_threads");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_collect_drops_parked_cell_pushed_by_racing_double_free),
        T(test_cross_thread_frees_into_trimmed_spans),
        T(test_trimmed_spans_outlive_their_thread),
        T(test_trim_covers_spans_of_exited_threads),
        T(test_trim_floats_adopted_spans_again),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
