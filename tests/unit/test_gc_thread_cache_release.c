/* Unit tests of the heap's cache of detached thread records (gc/thread.c):
 * it holds at most GC_THREAD_CACHE records, each with first-size mappings
 * only (a root stack that grew is unmapped at the detach), a cached record
 * has no roots and root_capacity 0, and gc_heap_destroy unmaps every
 * cached record: os_mapped_bytes is back where it was before the heap was
 * created. No randomness (no seed). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "pool_internal.h"
#include "unit_errors.h"

static void blob_finalize(void *obj) { (void)obj; }
static const gc_type_t finalizable_type = { "finalizable", NULL, blob_finalize };

enum { THREADS = GC_THREAD_CACHE + 4 };

typedef struct worker {
    gc_heap_t         *heap;
    pthread_barrier_t *attached, *go;
    int                ok;
} worker_t;

/* Attached all at once (more than the cache holds), each with a root stack
 * and a finalizable list mapped; then all detach. */
static void *worker_main(void *arg) {
    worker_t *w = arg;
    gc_thread_t *t = gc_thread_attach(w->heap);
    void *obj = t ? gc_alloc(t, &finalizable_type, 32) : NULL;
    if (obj) gc_push_root(t, &obj);
    pthread_barrier_wait(w->attached);
    pthread_barrier_wait(w->go);
    w->ok = obj != NULL && t->root_depth == 1 && t->finalizable.count == 1 && t->root_capacity == GC_ROOT_STACK_FIRST;
    if (t) gc_thread_detach(t);
    return NULL;
}

/* THREADS threads attach to heap at once, then all detach. */
static void attach_all_at_once(gc_heap_t *heap) {
    pthread_barrier_t attached, go;
    pthread_barrier_init(&attached, NULL, THREADS + 1);
    pthread_barrier_init(&go, NULL, THREADS + 1);
    worker_t w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){ heap, &attached, &go, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    pthread_barrier_wait(&attached);
    pthread_barrier_wait(&go);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_true(w[i].ok);
    }
    pthread_barrier_destroy(&attached);
    pthread_barrier_destroy(&go);
}

static void test_cache_bounded_and_released_by_destroy(void **state) {
    (void)state;
    /* once first: what the pool keeps for as many threads at once outlives
     * the heap (it is the process's, reused by the next threads) */
    gc_heap_t *heap = gc_heap_create(NULL);
    assert_non_null(heap);
    attach_all_at_once(heap);
    gc_heap_destroy(heap);
    size_t before = os_mapped_bytes();
    heap = gc_heap_create(NULL);
    assert_non_null(heap);
    attach_all_at_once(heap);
    assert_int_equal(heap->thread_cache_count, GC_THREAD_CACHE);
    size_t listed = 0;
    for (gc_thread_t *t = heap->thread_cache; t; t = t->next) {
        listed++;
        assert_int_equal(t->state, GC_DETACHED);
        assert_int_equal(t->root_depth, 0);
        assert_int_equal(t->root_capacity, 0);
        assert_non_null(t->root_stack);
        assert_int_equal(t->finalizable.count, 0);
        assert_null(t->attached_next);
    }
    assert_int_equal(listed, GC_THREAD_CACHE);
    assert_null(heap->threads);
    gc_heap_destroy(heap);
    assert_int_equal(os_mapped_bytes(), before);
    assert_int_equal(reports, 0);
}

/* A record whose root stack grew keeps none in the cache; the next attach
 * takes the record and maps a first-size stack at its first push. */
static void test_grown_stack_not_cached(void **state) {
    (void)state;
    size_t before = os_mapped_bytes();
    gc_heap_t *heap = gc_heap_create(NULL);
    assert_non_null(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    assert_non_null(t);
    static void *slots[GC_ROOT_STACK_FIRST + 1];
    for (size_t i = 0; i <= GC_ROOT_STACK_FIRST; i++) gc_push_root(t, &slots[i]);
    assert_int_equal(t->root_capacity, 2 * GC_ROOT_STACK_FIRST);
    gc_thread_detach(t);
    assert_int_equal(heap->thread_cache_count, 1);
    assert_ptr_equal(heap->thread_cache, t);
    assert_null(t->root_stack);
    gc_thread_t *again = gc_thread_attach(heap);
    assert_ptr_equal(again, t);
    assert_int_equal(heap->thread_cache_count, 0);
    assert_int_equal(again->root_depth, 0);
    assert_int_equal(again->state, GC_RUNNING);
    gc_push_root(again, &slots[0]);
    assert_int_equal(again->root_capacity, GC_ROOT_STACK_FIRST);
    gc_pop_roots(again, 1);
    gc_heap_destroy(heap); /* detaches the caller: its record cached, then unmapped */
    assert_int_equal(os_mapped_bytes(), before);
    assert_int_equal(reports, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cache_bounded_and_released_by_destroy, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_grown_stack_not_cached, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
