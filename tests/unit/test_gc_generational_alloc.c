/* Unit tests of the allocation path in generational mode (gc/alloc.c):
 * an allocation that still finds no room must be given a full collection
 * before gc_alloc returns NULL, even when the collection it waited for
 * was another thread's minor one (which leaves old garbage in place).
 *
 * The race is set up by hand: the test thread takes heap->lock (as
 * gc_world_stop does) while the other thread is on its way to it in the
 * large-object path, so that the other thread's "collect fully" request
 * finds this thread's (minor) collection under way. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "unit_errors.h"

static const gc_type_t blob_type = { "blob", NULL, NULL };

enum { BLOBS = 1500, BLOB = 1000, BIG = 600 << 10 };

typedef struct other {
    gc_heap_t  *heap;
    bool        allocated;
    _Atomic int attached, go;
} other_t;

static void *allocate_big(void *arg) {
    other_t *o = arg;
    gc_thread_t *t = gc_thread_attach(o->heap);
    atomic_store(&o->attached, 1);
    while (!atomic_load(&o->go)) sched_yield(); /* running, not at a GC point */
    o->allocated = gc_alloc(t, &blob_type, BIG) != NULL;
    gc_thread_detach(t);
    return NULL;
}

static void sleep_ms(long ms) {
    struct timespec ts = { 0, ms * 1000000L };
    nanosleep(&ts, NULL);
}

static void test_full_collection_after_waiting_for_a_minor_one(void **state) {
    (void)state;
    gc_options_t opt;
    memset(&opt, 0, sizeof opt);
    opt.generational = 1;
    opt.markers = 1;
    opt.max_heap = 2u << 20;
    opt.initial_heap = 64u << 20; /* no collection by budget: only the ones below */
    gc_heap_t *h = gc_heap_create(&opt);
    assert_non_null(h);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);

    /* About 1.5 MiB of objects, made old by a full collection, then
     * dropped: old garbage, which only a full collection reclaims. */
    static void *blobs[BLOBS];
    gc_root_add_range(h, blobs, BLOBS);
    for (size_t i = 0; i < BLOBS; i++) {
        blobs[i] = gc_alloc(t, &blob_type, BLOB);
        assert_non_null(blobs[i]);
    }
    gc_collect(t);
    memset(blobs, 0, sizeof blobs);
    gc_root_remove(h, blobs);
    /* A 600 KiB object does not fit under max_heap beside that garbage. */
    assert_true(atomic_load(&h->heap_bytes) + BIG > opt.max_heap);

    other_t o = { .heap = h };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, allocate_big, &o), 0);
    while (!atomic_load(&o.attached)) sched_yield();
    /* Hold the lock, as gc_world_stop would, while the other thread heads
     * for it in gc_alloc_large (past its safepoint poll). */
    pthread_mutex_lock(&h->lock);
    atomic_store(&o.go, 1);
    sleep_ms(50);
    /* The rest of gc_world_stop: the other thread finds no span, asks for
     * a full collection and finds this one under way. */
    h->collecting = true;
    atomic_store(&h->stop_requested, 1);
    h->running--;
    while (h->running > 0) pthread_cond_wait(&h->changed, &h->lock);
    gc_collect_locked(h, t, true, GC_REASON_ALLOCATION); /* minor: the old garbage stays */
    gc_world_start_heap(h, t);
    gc_enter_blocking(t);
    pthread_join(th, NULL);
    gc_leave_blocking(t);

    /* Reclaiming the old garbage makes room: gc_alloc must not give up. */
    assert_true(o.allocated);
    assert_int_equal(reports, 0);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_collection_after_waiting_for_a_minor_one, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
