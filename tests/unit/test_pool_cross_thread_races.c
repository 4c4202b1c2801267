/* Unit tests of the pool's cross-thread paths at the exact interleavings
 * that matter (pool/free.c, pool/alloc.c, pool/thread_heap.c): a thread
 * parks inside one step of a lock-free protocol, held there by the test
 * holding pool->lock, while another thread acts on the same span; a thread
 * allocates after its exit destructor ran. Each scenario ends with every
 * allocation freed and every thread joined, when the figures are exact:
 * pool_trim must then give everything back (no cell counted used for
 * ever, no span kept by a heap nobody abandons). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE /* PTHREAD_DESTRUCTOR_ITERATIONS */
#endif
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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

enum { CELL = 64, OTHER = 1000, CELLS = 4 };

typedef struct scene {
    pool_t *pool;
    void *cell[CELLS];
    _Atomic int ready, go_adopter, go_freer, freer_done, adopter_done, release;
} scene_t;

static void wait_for(_Atomic int *flag) {
    while (!atomic_load(flag)) sched_yield();
}

/* Allocates the cells in a span of its own and exits: the span floats. */
static void *owner_thread(void *arg) {
    scene_t *s = arg;
    for (int i = 0; i < CELLS; i++) s->cell[i] = pool_alloc(s->pool, CELL);
    return NULL;
}

/* A free after the thread's exit destructor ran (the C library frees its
 * buffers late): no heap, so the cell is queued on the floating span
 * without adopting it. */
static void *late_thread(void *arg) {
    scene_t *s = arg;
    mulch_tls.exited = true;
    pool_free(s->pool, s->cell[0]);
    return NULL;
}

/* Adopts the floating span by freeing into it. */
static void *adopter_thread(void *arg) {
    scene_t *s = arg;
    pool_free(s->pool, pool_alloc(s->pool, OTHER)); /* a heap, and nothing of CELL's class */
    atomic_fetch_add(&s->ready, 1);
    wait_for(&s->go_adopter);
    pool_free(s->pool, s->cell[1]);
    atomic_store(&s->adopter_done, 1);
    wait_for(&s->release);
    return NULL;
}

/* Frees into the span once the adopter owns it (a remote free). */
static void *freer_thread(void *arg) {
    scene_t *s = arg;
    pool_free(s->pool, pool_alloc(s->pool, OTHER));
    atomic_fetch_add(&s->ready, 1);
    wait_for(&s->go_freer);
    pool_free(s->pool, s->cell[2]);
    atomic_store(&s->freer_done, 1);
    wait_for(&s->release);
    return NULL;
}

/* A thread adopting a floating span by a free swaps its thread_free word
 * for 0, then (in block_adopt, after taking pool->lock) stored the cells
 * that were pending back into it. A free from a third thread landing in
 * between was overwritten: its cell was on no list, counted used for ever,
 * and the span never came back to the pool. */
static void test_adopt_by_free_keeps_concurrent_remote_free(void **state) {
    (void)state;
    static scene_t s;
    memset(&s, 0, sizeof s);
    s.pool = pool_create(NULL);
    assert_non_null(s.pool);
    pthread_t owner, late, adopter, freer;
    assert_int_equal(pthread_create(&owner, NULL, owner_thread, &s), 0);
    pthread_join(owner, NULL);
    for (int i = 0; i < CELLS; i++) assert_non_null(s.cell[i]);
    block_t *b = block_head(block_at(chunk_of(s.cell[0]), s.cell[0]));
    assert_true(atomic_load(&b->thread_free) & BLOCK_FLOATING);

    assert_int_equal(pthread_create(&late, NULL, late_thread, &s), 0);
    pthread_join(late, NULL);
    uintptr_t tf = atomic_load(&b->thread_free);
    assert_true(tf & BLOCK_FLOATING);
    assert_ptr_equal((void *)tf_list(tf), s.cell[0]); /* pending, span still floating */

    assert_int_equal(pthread_create(&adopter, NULL, adopter_thread, &s), 0);
    assert_int_equal(pthread_create(&freer, NULL, freer_thread, &s), 0);
    pool_free(s.pool, pool_alloc(s.pool, OTHER)); /* this thread's heap, before the lock */
    while (atomic_load(&s.ready) < 2) sched_yield(); /* theirs too */

    pthread_mutex_lock(&s.pool->lock);
    atomic_store(&s.go_adopter, 1);
    /* the adopter took the span (owner set after its CAS) and waits for the lock */
    while (atomic_load(&b->owner) == NULL) sched_yield();
    atomic_store(&s.go_freer, 1);
    wait_for(&s.freer_done);
    pthread_mutex_unlock(&s.pool->lock);
    wait_for(&s.adopter_done);

    atomic_store(&s.release, 1);
    pthread_join(adopter, NULL);
    pthread_join(freer, NULL);
    pool_free(s.pool, s.cell[3]);
    assert_int_equal(reports, 0);

    pool_trim(s.pool);
    pool_stats_t st;
    pool_get_stats(s.pool, &st);
    assert_int_equal(st.live_allocations, 0);
    assert_int_equal(st.bytes_in_use, 0);
    /* every span came back: nothing is held */
    assert_int_equal(st.bytes_reserved, 0);
    pool_destroy(s.pool);
}

static pool_t *late_pool;
static pthread_key_t late_key;
static _Thread_local int late_rounds;

/* Re-registers itself until the last destructor round, then allocates and
 * frees: no destructor runs after this one. */
static void late_alloc(void *arg) {
    if (++late_rounds < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(late_key, arg);
        return;
    }
    void *p = pool_alloc(late_pool, 100);
    void *q = pool_alloc(late_pool, 3000);
    if (p == NULL || q == NULL) abort();
    memset(p, 1, 100);
    memset(q, 2, 3000);
    pool_free(late_pool, p);
    void *r = pool_alloc(late_pool, 100);
    if (r == NULL) abort();
    pool_free(late_pool, r);
    pool_free(late_pool, q);
    *(void **)arg = pool_alloc(late_pool, 200); /* outlives the thread */
}

static void *exiting_thread(void *arg) {
    pool_free(late_pool, pool_alloc(late_pool, 100));
    pthread_setspecific(late_key, arg);
    return NULL;
}

/* An allocation after mulch's thread-exit destructor gave the thread a new
 * heap, registered with a destructor round that never came: nothing
 * abandoned it, so the span it took (and the heap record) stayed with the
 * dead thread for good, one per such thread, after every cell was freed. */
static void test_alloc_after_thread_exit_leaves_no_span(void **state) {
    (void)state;
#if defined(MULCH_TSAN)
    /* ThreadSanitizer tears its thread state down in the last destructor
     * round too; any lock taken after that crashes inside its runtime
     * (as in tests/api/test_pool_late_free.c). */
    skip();
#endif
    enum { THREADS = 8 };
    late_pool = pool_create(NULL);
    assert_non_null(late_pool);
    pool_free(late_pool, pool_alloc(late_pool, 100)); /* mulch's exit key first: ours runs after it */
    assert_int_equal(pthread_key_create(&late_key, late_alloc), 0);
    void *kept[THREADS] = { 0 };
    for (int i = 0; i < THREADS; i++) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, exiting_thread, &kept[i]), 0);
        pthread_join(t, NULL);
        assert_non_null(kept[i]);
    }
    pool_stats_t st;
    pool_get_stats(late_pool, &st);
    assert_int_equal(st.live_allocations, THREADS);
    for (int i = 0; i < THREADS; i++) pool_free(late_pool, kept[i]); /* floating spans, adopted */
    pool_trim(late_pool);
    pool_get_stats(late_pool, &st);
    assert_int_equal(st.live_allocations, 0);
    assert_int_equal(st.bytes_in_use, 0);
    assert_int_equal(st.bytes_reserved, 0);
    assert_int_equal(reports, 0);
    pthread_key_delete(late_key);
    pool_destroy(late_pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_adopt_by_free_keeps_concurrent_remote_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_after_thread_exit_leaves_no_span, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
