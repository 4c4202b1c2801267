/* Unit tests of the pool's free-list hardening: a decoded link that is not
 * the start of a cell of its span (outside it, or inside but misaligned) is
 * reported and not followed, on the local free list and on the cross-thread
 * (thread_free) list; and secure mode's shuffled carving. Stray writes go
 * through cell_word_store so that ASan builds run these tests too. */
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

#include "unit_errors.h"
#define teardown teardown_errors

/* Frees a..: past the thread's recent cells, so they land on the span's
 * free list (the recent cells hold HEAP_RECENT frees of a class). */
static void fill_recent(pool_t *pool, void **fillers, size_t size) {
    for (int i = 0; i < HEAP_RECENT; i++) fillers[i] = pool_alloc(pool, size);
}
static void drain_recent(pool_t *pool, void **fillers) {
    for (int i = 0; i < HEAP_RECENT; i++) pool_free(pool, fillers[i]);
}

/* a's link is rewritten (properly encoded) to `target`: the next pop of a
 * must report and must not hand out target. */
static void check_planted_link(size_t size, ptrdiff_t target_offset) {
    reports = 0;
    pool_t *pool = pool_create(NULL);
    void *fillers[HEAP_RECENT];
    fill_recent(pool, fillers, size);
    char *a = pool_alloc(pool, size);
    char *b = pool_alloc(pool, size);
    drain_recent(pool, fillers);
    pool_free(pool, b);
    pool_free(pool, a); /* span free list: a -> b */
    char *target = b + target_offset;
    cell_word_store(a, 0, cell_link_encode(pool, a, target));
    fill_recent(pool, fillers, size); /* takes the recent cells back */
    assert_int_equal(reports, 0);
    void *x = pool_alloc(pool, size); /* pops a, checks its link */
    assert_ptr_equal(x, a);
    assert_int_equal(reports, 1);
    assert_non_null(strstr(last_what, "free list corrupted"));
    for (int i = 0; i < 64; i++) {
        void *y = pool_alloc(pool, size);
        assert_true((char *)y != target);
        pool_free(pool, y);
    }
    pool_free(pool, x);
    drain_recent(pool, fillers);
    assert_int_equal(reports, 1);
    pool_destroy(pool);
}

static void test_link_misaligned_inside_span_rejected(void **state) {
    (void)state;
    check_planted_link(48, 16); /* 16-byte aligned, but not a 48-byte cell start */
    check_planted_link(64, 32);
    check_planted_link(1024, 512);
}

static void test_link_outside_span_rejected(void **state) {
    (void)state;
    check_planted_link(64, -(ptrdiff_t)(1 << 20));
    check_planted_link(64, (ptrdiff_t)1 << 30);
}

static void test_link_valid_predicate(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    char *p = pool_alloc(pool, 80); /* 80-byte class: not a power of two */
    block_t *b = pool_block_of(p);
    assert_int_equal(b->cell_size, 80);
    for (uint32_t off = 0; off < b->span_bytes; off += 16)
        assert_int_equal(cell_link_is_valid(b, b->start + off), off % 80 == 0);
    assert_false(cell_link_is_valid(b, b->start + b->span_bytes));
    assert_false(cell_link_is_valid(b, b->start - 80));
    assert_false(cell_link_is_valid(b, NULL));
    pool_free(pool, p);
    pool_destroy(pool);
}

typedef struct remote_free {
    pool_t *pool;
    void  **cells;
    int     count;
} remote_free_t;

static void *free_remotely(void *arg) {
    remote_free_t *job = arg;
    for (int i = 0; i < job->count; i++) pool_free(job->pool, job->cells[i]);
    return NULL;
}

/* Cells freed by another thread sit on the span's thread_free list; one of
 * their links is planted misaligned. Taking the list back (block_collect
 * walks it when the local list is not empty) must report and drop it. */
static void test_remote_list_corruption_reported(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    enum { N = 6 };
    void *cells[N];
    for (int i = 0; i < N; i++) cells[i] = pool_alloc(pool, 96);
    block_t *b = pool_block_of(cells[0]);
    remote_free_t job = { pool, cells, N };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_remotely, &job), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    uintptr_t word = atomic_load(&b->thread_free);
    assert_ptr_equal((void *)tf_list(word), cells[N - 1]); /* LIFO */
    /* the second cell of the list now links into the middle of a cell */
    cell_word_store(cells[N - 2], 0, cell_link_encode(pool, cells[N - 2], (char *)cells[0] + 48));
    assert_true(b->free != NULL); /* uncarved batch: the walk path */
    block_collect(pool, b);
    assert_int_equal(reports, 1);
    assert_non_null(strstr(last_what, "cross-thread free list corrupted"));
    assert_int_equal(tf_list(atomic_load(&b->thread_free)), 0);
    pool_destroy(pool);
}

/* Secure mode carves a batch in random order; the default mode in address
 * order (the tests of the fast path rely on neither, this pins both). */
static int ascending_steps(pool_t *pool, void **cells, int n) {
    int ascending = 0;
    for (int i = 0; i < n; i++) cells[i] = pool_alloc(pool, 64);
    for (int i = 1; i < n; i++) ascending += (char *)cells[i] > (char *)cells[i - 1];
    for (int i = 0; i < n; i++) pool_free(pool, cells[i]);
    return ascending;
}

static void test_secure_mode_shuffles_carving(void **state) {
    (void)state;
    enum { N = 48 }; /* one carve batch of 64-byte cells is 64 cells */
    void *cells[N];
    pool_t *plain = pool_create(NULL);
    assert_int_equal(ascending_steps(plain, cells, N), N - 1);
    pool_destroy(plain);
    pool_options_t opts = { 0 };
    opts.secure = 1;
    pool_t *secure = pool_create(&opts);
    int ascending = ascending_steps(secure, cells, N);
    /* a uniform shuffle is ordered with probability 1/48!; expect about half */
    assert_true(ascending < N - 1);
    assert_true(ascending > 4);
    pool_destroy(secure);
    assert_int_equal(reports, 0);
}

int main(void) {
    /* These tests pin the fast paths' cell order (recent cells, free-list
     * pops). Under valgrind a pool tracks sites and skips those paths
     * (pool/tool.h), so keep its client requests off here; the API tests
     * run with them on. */
    setenv("MULCH_VALGRIND", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_link_valid_predicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_misaligned_inside_span_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_outside_span_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_list_corruption_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_mode_shuffles_carving, setup, teardown),
    };
    return cmocka_run_group_tests_name("pool_hardening", tests, NULL, NULL);
}
