/* Unit tests of the generational write barrier when the remembered set
 * cannot grow (OS mappings made to fail with os_fail_after): the store must
 * still be traced (the next collection is full), and the object must not
 * keep a "remembered" header bit that no list stands for — else later
 * stores into it skip the barrier and a minor collection frees their young
 * targets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "unit_errors.h"

typedef struct pair {
    void    *slot[2];
    uint64_t value;
} pair_t;

static void pair_trace(void *obj, gc_tracer_t *tracer) {
    gc_trace_range(tracer, ((pair_t *)obj)->slot, 2);
}
static const gc_type_t pair_type = { "pair", pair_trace, NULL };

static int teardown(void **state) {
    os_fail_after(0);
    return teardown_errors(state);
}

static gc_heap_t *generational_heap(void) {
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.generational = 1;
    o.initial_heap = (size_t)64 << 10; /* allocation collects often */
    o.markers = 1;
    gc_heap_t *h = gc_heap_create(&o);
    assert_non_null(h);
    return h;
}

static uint64_t collections(gc_heap_t *h) {
    gc_stats_t s;
    gc_get_stats(h, &s);
    return s.collections;
}

static pair_t *pair_new(gc_thread_t *t, uint64_t value) {
    pair_t *p = gc_alloc(t, &pair_type, sizeof *p);
    assert_non_null(p);
    p->value = value;
    return p;
}

/* Allocates garbage until `n` more collections ran (minor ones: nothing
 * asked for a full one). */
static void collect_by_allocation(gc_thread_t *t, gc_heap_t *h, uint64_t n) {
    uint64_t until = collections(h) + n;
    while (collections(h) < until) (void)pair_new(t, 0);
}

typedef struct fixture {
    gc_heap_t   *heap;
    gc_thread_t *thread;
    pair_t      *old; /* a root; old after the first full collection */
} fixture_t;

static void fixture_open(fixture_t *f) {
    f->heap = generational_heap();
    f->thread = gc_thread_attach(f->heap);
    assert_non_null(f->thread);
    f->old = NULL;
    gc_root_add(f->heap, (void **)&f->old);
    f->old = pair_new(f->thread, 1);
    gc_collect(f->thread); /* full: old is old now */
}

/* After the failure: a later store into the same object goes through the
 * barrier again, so its young target survives minor collections. */
static void fixture_check_later_store_and_close(fixture_t *f, void (*store)(gc_thread_t *, void *, void **, void *)) {
    pair_t *later = pair_new(f->thread, 3);
    store(f->thread, f->old, &f->old->slot[1], later);
    later = NULL;
    collect_by_allocation(f->thread, f->heap, 3); /* minor ones */
    assert_int_equal(((pair_t *)f->old->slot[1])->value, 3);
    assert_ptr_equal(gc_type_of(f->old->slot[1]), &pair_type);
    assert_int_equal(gc_verify(f->heap), 0);
    assert_int_equal(reports, 0);
    gc_root_remove(f->heap, (void **)&f->old);
    gc_thread_detach(f->thread);
    gc_heap_destroy(f->heap);
}

static void check_barrier_after_failed_remember(void (*store)(gc_thread_t *, void *, void **, void *)) {
    fixture_t f;
    fixture_open(&f);
    /* The thread's remembered list is empty, so this push maps memory:
     * make that fail. */
    pair_t *young = pair_new(f.thread, 2);
    os_fail_after(1);
    store(f.thread, f.old, &f.old->slot[0], young);
    assert_int_equal(os_fail_after(0), 0); /* the push did try to map */
    young = NULL;
    /* The next collection must be full, and keeps the child. */
    collect_by_allocation(f.thread, f.heap, 1);
    assert_int_equal(((pair_t *)f.old->slot[0])->value, 2);
    /* (no gc_verify here: it makes the next collection full) */
    fixture_check_later_store_and_close(&f, store);
}

static void store_inline(gc_thread_t *t, void *obj, void **slot, void *value) {
    gc_write(t, obj, slot, value);
}
static void store_library(gc_thread_t *t, void *obj, void **slot, void *value) {
    (gc_write)(t, obj, slot, value);
}

static void test_barrier_after_failed_remember_inline(void **state) {
    (void)state;
    check_barrier_after_failed_remember(store_inline);
}

static void test_barrier_after_failed_remember_library(void **state) {
    (void)state;
    check_barrier_after_failed_remember(store_library);
}

/* The thread listed the object, but the heap's list cannot take the
 * thread's at the next collection (gc_threads_flush). */
static void test_barrier_after_failed_flush(void **state) {
    (void)state;
    fixture_t f;
    fixture_open(&f);
    pair_t *young = pair_new(f.thread, 2);
    gc_write(f.thread, f.old, &f.old->slot[0], young); /* listed by the thread */
    young = NULL;
    os_fail_after(1);
    gc_collect(f.thread); /* its first mapping is the heap's remembered list */
    assert_int_equal(os_fail_after(0), 0);
    assert_int_equal(((pair_t *)f.old->slot[0])->value, 2);
    fixture_check_later_store_and_close(&f, store_library);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_barrier_after_failed_remember_inline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_barrier_after_failed_remember_library, setup, teardown),
        cmocka_unit_test_setup_teardown(test_barrier_after_failed_flush, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
