/* Unit tests of what the pool leaves behind after it reported heap
 * corruption (pool/alloc.c, pool/audit.c, pool/leak.c): a freed cell it
 * dropped because it was written after its free, as the leak report shows
 * it; a span the audit repairs while another thread frees one of its live
 * cells (with the span's count low, or its list looping back to a cell
 * listed twice); a span whose cross-thread list held only a double-freed
 * parked cell. Corruption is made with cell_word_store (not instrumented by
 * ASan); a remote free's two steps (the cell's free mark, then the CAS that
 * queues it) are replayed by hand around the repair, the interleaving a
 * real freer descheduled between them would give. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "block.h"
#include "pool_internal.h"
#include "release.h"
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

/* The remote free of `remote_cell` in flight: its first step (the free
 * mark and link, written before the CAS) lands while the audit reports. */
static pool_t *remote_pool;
static void *remote_cell;
static void mark_remote_cell_on_report(const char *what, const void *ptr, void *ctx) {
    record_error(what, ptr, ctx);
    if (remote_cell == NULL) return;
    block_t *b = pool_block_of(remote_cell);
    cell_mark_free(remote_pool, remote_cell, (void *)tf_list(atomic_load(&b->thread_free)));
}

/* The audit finds a span counted empty with a cell still held (what a
 * masked double free leaves) and rebuilds it, while another thread frees a
 * live cell of it: that free wrote the cell's free mark and has yet to
 * queue it. The rebuild must not put the cell on the span's list, or it
 * is on it and queued too: handed out twice, or reported "freed twice". */
static void test_rebuild_leaves_remote_free_in_flight(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    unsigned char *keep = pool_alloc(pool, 48);
    void *freed = pool_alloc(pool, 48);
    void *remote = pool_alloc(pool, 48);
    block_t *span = pool_block_of(keep);
    assert_ptr_equal(pool_block_of(remote), span);
    memset(keep, 0x5c, 48);
    pool_free(pool, freed); /* a recent cell */
    thread_heap_t *heap = mulch_tls.heap;
    remote_pool = pool;
    remote_cell = remote;
    mulch_set_error_handler(mark_remote_cell_on_report, NULL);
    span->used = 0; /* what a masked double free leaves */
    assert_false(span_audit_empty(pool, heap, span));
    remote_cell = NULL;
    mulch_set_error_handler(record_error, NULL);
    assert_int_equal(reports, 1);
    assert_non_null(strstr(last_what, "freed twice, the second free hidden"));
    /* the remote free's second step: the CAS that queues the cell */
    uintptr_t old = atomic_load(&span->thread_free);
    while (!atomic_compare_exchange_weak(&span->thread_free, &old, tf_push(old, remote))) {
    }
    /* every cell handed out from here on is distinct, and not `keep` */
    enum { HELD = 300 };
    void *held[HELD];
    for (int i = 0; i < HELD; i++) {
        held[i] = pool_alloc(pool, 48);
        assert_non_null(held[i]);
        assert_ptr_not_equal(held[i], keep);
        for (int k = 0; k < i; k++)
            if (held[k] == held[i]) fail_msg("cell %p handed out twice (allocations %d and %d)", held[i], k, i);
        memset(held[i], i & 0xff, 48);
    }
    if (reports != 1) fail_msg("%d reports, the last \"%s\" for %p", reports, last_what, last_ptr);
    for (int k = 0; k < 48; k++) assert_int_equal(keep[k], 0x5c);
    for (int i = 0; i < HELD; i++) pool_free(pool, held[i]);
    pool_free(pool, keep);
    assert_int_equal(reports, 1);
    pool_destroy(pool);
}

/* A masked double free puts a cell on its span's list twice (the list
 * loops back to it) and brings the count to 0 while another cell is live;
 * that cell's holder frees it from another thread, and has written its
 * free mark but not yet queued it when the owner gives the span back.
 * Every cell then carries its mark and nothing waits in thread_free: the
 * audit passed and the span went back to the pool, under the free's CAS
 * to come (on a free span's descriptor, or a fault if the chunk was
 * unmapped). The list that loops must fail the audit. */
static void test_audit_catches_list_loop_with_remote_free_in_flight(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    enum { SIZE = 1024 };
    unsigned char *live = pool_alloc(pool, SIZE);
    unsigned char *twice = pool_alloc(pool, SIZE);
    assert_non_null(live);
    assert_non_null(twice);
    block_t *span = pool_block_of(live);
    assert_ptr_equal(pool_block_of(twice), span);
    thread_heap_t *heap = heap_current(pool);
    pool_free(pool, twice);
    heap_recent_flush(pool, heap); /* on the span's list */
    cell_word_store(twice, 1, UINT64_C(0x4646464646464646)); /* erases the free mark */
    pool_free(pool, twice); /* unseen: counted as the free of `live` */
    assert_int_equal(reports, 0);
    /* the remote free of `live`, first step: its free mark */
    cell_mark_free(pool, live, (void *)tf_list(atomic_load(&span->thread_free)));
    (void)pool_trim(pool); /* flushes `twice` onto the list again: count 0 */
    assert_int_equal(reports, 1);
    assert_non_null(strstr(last_what, "freed twice, the second free hidden"));
    assert_ptr_equal(last_ptr, twice);
    assert_int_equal(span->kind, BLOCK_SMALL);
    assert_ptr_equal(atomic_load(&span->owner), heap);
    /* second step: the CAS that queues it, counted as small_free_remote does */
    uintptr_t old = atomic_load(&span->thread_free);
    while (!atomic_compare_exchange_weak(&span->thread_free, &old, tf_push(old, live))) {
    }
    heap_count_free(heap, span->size_class);
    /* both cells come back, once each */
    unsigned char *a = pool_alloc(pool, SIZE), *b = pool_alloc(pool, SIZE);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_true((a == live && b == twice) || (a == twice && b == live));
    memset(a, 1, SIZE);
    memset(b, 2, SIZE);
    pool_free(pool, a);
    pool_free(pool, b);
    assert_int_equal(reports, 1);
    pool_destroy(pool);
}

static void *free_in_thread(void *cell) {
    pool_free(remote_pool, cell);
    return NULL;
}

static bool span_listed(const block_t *list, const block_t *b) {
    for (; list; list = list->next)
        if (list == b) return true;
    return false;
}

/* A span whose parked cells could not come back at the limit (it waits
 * in the dormant list; it went to the full list before session 18) gets,
 * from a double free racing the trim that parked the cell, a parked cell
 * in thread_free. pool_trim's collect drops it (reported); the next remote
 * free into the span must still be taken back before the owner takes a
 * new span. */
static void test_full_span_leaves_full_list_when_collect_drops_all(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    enum { SIZE = 1024, MAX = 256 };
    unsigned char *cells[MAX];
    cells[0] = pool_alloc(pool, SIZE);
    assert_non_null(cells[0]);
    block_t *span = pool_block_of(cells[0]);
    unsigned cls = span->size_class;
    uint32_t n = span->capacity;
    assert_true(n <= MAX && n > 8);
    for (uint32_t i = 1; i < n; i++) {
        cells[i] = pool_alloc(pool, SIZE);
        assert_ptr_equal(pool_block_of(cells[i]), span);
    }
    /* the cells of the span's first page are freed; the trim parks them */
    for (uint32_t i = 0; i < 4096 / SIZE; i++) pool_free(pool, cells[i]);
    (void)pool_trim(pool);
    assert_true(block_has_released(pool, span) && cell_is_parked(pool, span, cells[0]));
    /* at the limit: the span cannot recommit them and goes dormant */
    thread_heap_t *heap = heap_current(pool);
    pool->limit = atomic_load(&pool->committed);
    assert_null(pool_alloc(pool, SIZE));
    assert_true(span_listed(heap->dormant[cls], span));
    pool->limit = 0;
    /* the racing double free's push of a parked cell (test_pool_release
     * replays the same), counted as a free as small_free_remote does */
    uintptr_t old = atomic_load(&span->thread_free);
    tool_cell_carve(pool->valgrind, cells[0]);
    cell_mark_free(pool, cells[0], (void *)tf_list(old));
    assert_true(atomic_compare_exchange_strong(&span->thread_free, &old, tf_push(old, cells[0])));
    heap_count_free(heap, cls);
    (void)pool_trim(pool);
    assert_int_equal(reports, 1);
    assert_non_null(strstr(last_what, "double free"));
    /* a legitimate free from another thread, then this thread allocates:
     * the freed cell serves before any new span */
    unsigned char *freed = cells[n - 1];
    remote_pool = pool;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_in_thread, freed), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    unsigned char *again = pool_alloc(pool, SIZE);
    assert_non_null(again);
    if (again != freed)
        fail_msg("the cell freed into the dormant span (%p) was not reused: got %p, %s", (void *)freed, (void *)again,
                 pool_block_of(again) == span ? "same span" : "another span");
    assert_int_equal(reports, 1);
    for (uint32_t i = 4096 / SIZE; i < n - 1; i++) pool_free(pool, cells[i]);
    pool_free(pool, again);
    pool_stats_t st;
    pool_get_stats(pool, &st);
    assert_int_equal(st.live_allocations, 0);
    assert_int_equal(reports, 1);
    pool_destroy(pool);
}

/* The repair takes the span's recent cells off the heap; one written after
 * its free is not free any more (it is dropped, and stays counted in use:
 * the leak report lists it). The statistics must agree with the report. */
static void test_rebuild_keeps_written_recent_cell_counted(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    void *keep = pool_alloc(pool, 48);
    void *written = pool_alloc(pool, 48);
    block_t *span = pool_block_of(keep);
    assert_ptr_equal(pool_block_of(written), span);
    pool_free(pool, written); /* a recent cell */
    cell_word_store(written, 1, UINT64_C(0x4747474747474747)); /* erases its free mark */
    thread_heap_t *heap = mulch_tls.heap;
    span->used = 0; /* what a masked double free leaves */
    assert_false(span_audit_empty(pool, heap, span));
    assert_int_equal(reports, 1);
    assert_int_equal(span->used, 2);
    pool_stats_t st;
    pool_get_stats(pool, &st);
    FILE *sink = fopen("/dev/null", "w");
    assert_non_null(sink);
    size_t listed = pool_report_leaks(pool, sink);
    fclose(sink);
    assert_int_equal(listed, 2);
    if (st.live_allocations != listed)
        fail_msg("pool_get_stats: %zu live allocations, the leak report lists %zu", st.live_allocations, listed);
    pool_free(pool, keep);
    pool_get_stats(pool, &st);
    assert_int_equal(st.live_allocations, 1); /* the dropped cell */
    assert_int_equal(reports, 1);
    pool_destroy(pool);
}

int main(void) {
    /* the cell order of the fast paths is pinned here: no valgrind tracking */
    setenv("MULCH_VALGRIND", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dropped_cell_in_tracking_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_leaves_remote_free_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_span_leaves_full_list_when_collect_drops_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_keeps_written_recent_cell_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_catches_list_loop_with_remote_free_in_flight, setup, teardown),
    };
    return cmocka_run_group_tests_name("pool_repairs", tests, NULL, NULL);
}
