/* Unit tests of gc_alloc's last resort under max_heap when another thread
 * has the world stopped for something that is not a collection (gc_verify,
 * gc_report_bridge_cycles). An allocation that finds no room collects —
 * or, when a stop is under way, waits for it and counts that as its
 * collection. A verify frees nothing: after waiting for one, the
 * allocation must still collect, not return NULL (API.md: NULL only "when
 * max_heap would be exceeded even after a full collection").
 *
 * The interleaving is forced: the test holds heap->lock while the
 * allocating thread runs into it past its safepoint check, then stops the
 * world as gc_world_stop_heap does (the verify's stop) and lets it go.
 * No randomness (no seed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "unit_errors.h"

static const gc_type_t blob_type = { "blob", NULL, NULL };

#define LARGE ((size_t)300 << 10)

typedef struct mutator {
    gc_heap_t  *heap;
    size_t      size;
    atomic_int  go;
    void       *result;
} mutator_t;

/* Fills the heap with garbage up to max_heap, then (at the test's signal)
 * makes the allocation that must collect. A large object's span is its
 * own, so the allocation goes straight to heap->lock for a new span. */
static void *mutator_main(void *arg) {
    mutator_t *m = arg;
    gc_thread_t *t = gc_thread_attach(m->heap);
    size_t block = m->heap->pool->block_size;
    size_t cell = (m->size + GC_HEADER + GC_LARGE_GRAIN - 1) & ~(GC_LARGE_GRAIN - 1);
    size_t span = (cell + block - 1) / block * block;
    while (atomic_load(&m->heap->heap_bytes) + span <= m->heap->options.max_heap)
        (void)!gc_alloc(t, &blob_type, m->size);
    /* (RUNNING meanwhile: the test thread is not attached, nothing waits) */
    atomic_store(&m->go, 1);
    while (atomic_load(&m->go) != 2) {
    }
    m->result = gc_alloc(t, &blob_type, m->size);
    gc_thread_detach(t);
    return NULL;
}

static void run(size_t size) {
    assert_true(size > GC_SMALL_MAX);
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.initial_heap = (size_t)64 << 20; /* no budget: only max_heap collects */
    o.max_heap = (size_t)2 << 20;
    o.markers = 1;
    gc_heap_t *heap = gc_heap_create(&o);
    assert_non_null(heap);
    mutator_t m = { .heap = heap, .size = size };
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, mutator_main, &m), 0);
    while (atomic_load(&m.go) != 1) {
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
    assert_int_equal(heap->collections, 0);
    /* The mutator passes its stop check and waits for the lock ... */
    pthread_mutex_lock(&heap->lock);
    atomic_store(&m.go, 2);
    struct timespec wait = { 0, 100 * 1000000 };
    nanosleep(&wait, NULL);
    /* ... which it gets back when this stop waits for it: it finds no
     * room, then a stop under way, and parks. */
    heap->collecting = true;
    atomic_store_explicit(&heap->stop_requested, 1, memory_order_relaxed);
    while (heap->running > 0) pthread_cond_wait(&heap->changed, &heap->lock);
    gc_world_start_heap(heap, NULL);
    pthread_join(thread, NULL);
    if (m.result == NULL)
        fail_msg("gc_alloc(%zu) returned NULL under max_heap %zu with no live data (%llu collections): "
                 "it took a verify's stop for a collection",
                 size, o.max_heap, (unsigned long long)heap->collections);
    assert_int_equal(reports, 0);
    gc_heap_destroy(heap);
}

static void test_large_alloc_after_foreign_stop(void **state) {
    (void)state;
    run(LARGE);
}

int main(void) {
    unsetenv("MULCH_GC_MAX_HEAP"); /* the tests set max_heap themselves */
    unsetenv("MULCH_GC_INITIAL_HEAP");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_large_alloc_after_foreign_stop, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
