/* Unit tests of gc_heap_destroy when memory is short: it runs every
 * finalizer not yet run (docs/gc.md) even when its lists cannot grow.
 * os_fail_after refuses one mapping only, which the destroy's next round
 * gets past; a lasting shortage is made here by refusing every mmap the
 * library (linked statically) makes while `mmap_refused` is set. */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "mmap_refuse.h"
#include "unit_errors.h"

static int finalized;

static void counted_finalize(void *obj) {
    (void)obj;
    finalized++;
}
static const gc_type_t counted_type = { "counted", NULL, counted_finalize };

static int teardown(void **state) {
    mmap_refused = false;
    os_fail_after(0);
    return teardown_errors(state);
}

/* Live finalizable objects sit in heap->finalizable; `pending` never held
 * anything, so it has no array yet. The destroy's move of the one into the
 * other needs a mapping: when none can be had, the finalizers must still
 * run (an append that could not grow `pending` left them where they were,
 * 64 rounds of nothing, and they were freed unrun). */
static void test_destroy_finalizers_when_pending_cannot_grow(void **state) {
    (void)state;
    if (!MMAP_REFUSABLE) skip();
    finalized = 0;
    gc_heap_t *h = gc_heap_create(NULL);
    assert_non_null(h);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    enum { N = 8 };
    void *keep[N];
    memset(keep, 0, sizeof keep);
    for (int i = 0; i < N; i++) gc_push_root(t, &keep[i]);
    for (int i = 0; i < N; i++) {
        keep[i] = gc_alloc(t, &counted_type, 16);
        assert_non_null(keep[i]);
    }
    gc_collect(t); /* moves them into heap->finalizable, all alive */
    assert_int_equal(finalized, 0);
    gc_pop_roots(t, N);
    /* the scenario: the objects in the heap's list, `pending` unmapped */
    assert_int_equal(h->finalizable.count, N);
    assert_null(h->pending.items);
    unsigned long refused = mmap_refusals;
    mmap_refused = true;
    gc_heap_destroy(h);
    mmap_refused = false;
    assert_int_equal(finalized, N);
    /* the destroy met the shortage (else this tests nothing) */
    assert_true(mmap_refusals > refused);
}

/* The same with the objects still in the thread's own list: the destroy's
 * flush cannot move them into the heap's (which has no array yet), and the
 * thread's list is merged into the heap's at its detach, after the
 * finalizers, then freed. */
static void test_destroy_finalizers_left_with_thread(void **state) {
    (void)state;
    if (!MMAP_REFUSABLE) skip();
    finalized = 0;
    gc_heap_t *h = gc_heap_create(NULL);
    assert_non_null(h);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    enum { N = 8 };
    for (int i = 0; i < N; i++) assert_non_null(gc_alloc(t, &counted_type, 16));
    /* the scenario: the objects in the thread's list, the heap's unmapped */
    assert_int_equal(t->finalizable.count, N);
    assert_null(h->finalizable.items);
    assert_null(h->pending.items);
    unsigned long refused = mmap_refusals;
    mmap_refused = true;
    gc_heap_destroy(h);
    mmap_refused = false;
    assert_int_equal(finalized, N);
    /* the destroy met the shortage (else this tests nothing) */
    assert_true(mmap_refusals > refused);
}

/* Called from a thread not attached to the heap, gc_heap_destroy attaches
 * it for the finalizers to run on; when that attach fails (its first
 * mapping is the record) the finalizers cannot run: the loss was silent,
 * where gc_thread_detach reports the same loss. */
static void test_destroy_unattached_attach_fails_reported(void **state) {
    (void)state;
    finalized = 0;
    gc_heap_t *h = gc_heap_create(NULL);
    assert_non_null(h);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    for (int i = 0; i < 4; i++) assert_non_null(gc_alloc(t, &counted_type, 16));
    gc_thread_detach(t);
    /* the heap keeps the detached record for its next attach (gc/thread.c),
     * which would not map one: dropped, so that the destroy's attach maps */
    gc_thread_cache_release(h);
    int before = reports;
    os_fail_after(1);
    gc_heap_destroy(h);
    assert_int_equal(os_fail_after(0), 0); /* the failure was used */
    assert_int_equal(finalized, 0);
    assert_int_equal(reports, before + 1);
    assert_non_null(strstr(last_what, "gc_heap_destroy: out of memory"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_destroy_finalizers_when_pending_cannot_grow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_finalizers_left_with_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_unattached_attach_fails_reported, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
