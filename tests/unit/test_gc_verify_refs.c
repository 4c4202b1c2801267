/* Unit test of gc_verify's checks on what the collector keeps outside
 * objects and root slots: a handle's slot, a weak reference's target, an
 * ephemeron's key and value, and the owner of a gc_own_rc pair, each planted with a pointer that is no
 * object start; and the per-class span lists, planted with a cycle and
 * with a span under another class. gc_verify must count exactly one
 * problem and report it once (and return, for the cycle), and a sound heap
 * none. No randomness (no seed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <mulch/rc.h>

#include "gc_internal.h"
#include "unit_errors.h"

typedef struct blob {
    uint64_t id;
    uint64_t pad;
} blob_t;

static const gc_type_t blob_type = { "blob", NULL, NULL };

typedef struct fixture {
    gc_heap_t   *heap;
    gc_thread_t *thread;
    blob_t      *object;      /* rooted */
    gc_handle_t *handle;
    void        *weak;        /* rooted */
    void        *rc;
} fixture_t;

static void fixture_open(fixture_t *f) {
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.compaction = GC_COMPACT_NEVER;
    f->heap = gc_heap_create(&o);
    assert_non_null(f->heap);
    f->thread = gc_thread_attach(f->heap);
    assert_non_null(f->thread);
    f->object = gc_alloc(f->thread, &blob_type, sizeof(blob_t));
    assert_non_null(f->object);
    gc_push_root(f->thread, (void **)&f->object);
    f->handle = gc_handle_new(f->heap, f->object);
    assert_non_null(f->handle);
    f->weak = gc_weak_new(f->thread, f->object);
    assert_non_null(f->weak);
    gc_push_root(f->thread, &f->weak);
    f->rc = rc_alloc(16, NULL);
    assert_non_null(f->rc);
    assert_int_equal(gc_own_rc(f->thread, f->object, f->rc), 0);
    assert_int_equal(gc_verify(f->heap), 0);
    assert_int_equal(gc_verify_untraced(f->heap), 0);
    assert_int_equal(reports, 0);
}

static void fixture_close(fixture_t *f) {
    gc_pop_roots(f->thread, 2);
    rc_release(f->handle);
    rc_release(f->rc);
    gc_thread_detach(f->thread);
    gc_heap_destroy(f->heap);
}

/* A pointer into the heap that is no object start (the middle of a cell). */
static void *interior(fixture_t *f) {
    return (unsigned char *)f->object + 8;
}

static void expect_one_problem(fixture_t *f, const char *words) {
    reports = 0;
    assert_int_equal(gc_verify(f->heap), 1);
    assert_int_equal(reports, 1);
    if (strstr(last_what, words) == NULL) fail_msg("report \"%s\" does not name \"%s\"", last_what, words);
}

static void test_sound_references_pass(void **state) {
    (void)state;
    fixture_t f;
    fixture_open(&f);
    gc_collect(f.thread);
    assert_int_equal(gc_verify(f.heap), 0);
    assert_int_equal(gc_verify_untraced(f.heap), 0);
    assert_int_equal(reports, 0);
    fixture_close(&f);
}

static void test_stale_handle_slot_reported(void **state) {
    (void)state;
    fixture_t f;
    fixture_open(&f);
    gc_handle_payload_t *payload = (gc_handle_payload_t *)f.handle;
    void *saved = payload->obj;
    payload->obj = interior(&f);
    expect_one_problem(&f, "handle");
    payload->obj = saved;
    fixture_close(&f);
}

static void test_stale_weak_target_reported(void **state) {
    (void)state;
    fixture_t f;
    fixture_open(&f);
    void **weak = f.weak;
    void *saved = weak[0];
    weak[0] = interior(&f);
    expect_one_problem(&f, "weak reference");
    weak[0] = saved;
    fixture_close(&f);
}

/* An ephemeron's key, then its value, planted with a pointer that is no
 * object start. The ephemeron is made here (rooted), not in the fixture:
 * its key must be the fixture's object. */
static void test_stale_ephemeron_slots_reported(void **state) {
    (void)state;
    fixture_t f;
    fixture_open(&f);
    void **ephemeron = gc_ephemeron_new(f.thread, f.object, f.object);
    assert_non_null(ephemeron);
    gc_push_root(f.thread, (void **)&ephemeron);
    assert_int_equal(gc_verify(f.heap), 0);
    assert_int_equal(gc_verify_untraced(f.heap), 0);
    for (int slot = 0; slot < 2; slot++) {
        void *saved = ephemeron[slot];
        ephemeron[slot] = interior(&f);
        expect_one_problem(&f, slot == 0 ? "ephemeron's key" : "ephemeron's value");
        ephemeron[slot] = saved;
    }
    assert_int_equal(gc_verify(f.heap), 0);
    assert_int_equal(gc_verify_untraced(f.heap), 0);
    gc_pop_roots(f.thread, 1);
    fixture_close(&f);
}

static void test_stale_rc_owner_reported(void **state) {
    (void)state;
    fixture_t f;
    fixture_open(&f);
    assert_int_equal(f.heap->owned_objects.count, 1);
    void *saved = f.heap->owned_objects.items[0];
    f.heap->owned_objects.items[0] = interior(&f);
    expect_one_problem(&f, "gc_own_rc");
    f.heap->owned_objects.items[0] = saved;
    fixture_close(&f);
}

/* A class with a span on its available list: garbage and a collection
 * leave the blob class's span with room. */
static unsigned available_class(fixture_t *f) {
    for (size_t i = 0; i < 2000; i++) {
        blob_t *garbage = gc_alloc(f->thread, &blob_type, sizeof(blob_t));
        assert_non_null(garbage);
    }
    gc_collect(f->thread);
    for (unsigned cls = 0; cls < GC_ALL_CLASSES; cls++)
        if (f->heap->available[cls] != NULL) return cls;
    fail_msg("no span on any available list after a collection");
    return 0;
}

static void test_cyclic_span_list_reported(void **state) {
    (void)state;
    fixture_t f;
    fixture_open(&f);
    unsigned cls = available_class(&f);
    block_t *b = f.heap->available[cls];
    block_t *saved = b->next;
    b->next = b;
    expect_one_problem(&f, "cyclic");
    b->next = saved;
    assert_int_equal(gc_verify(f.heap), 0);
    assert_int_equal(gc_verify_untraced(f.heap), 0);
    fixture_close(&f);
}

static void test_span_under_wrong_class_reported(void **state) {
    (void)state;
    fixture_t f;
    fixture_open(&f);
    unsigned cls = available_class(&f);
    unsigned other = cls == 0 ? 1 : 0;
    block_t *b = f.heap->available[cls];
    block_t *saved_next = b->next, *saved_other = f.heap->sparse[other];
    b->next = NULL; /* (its own list now ends with it) */
    f.heap->sparse[other] = b;
    expect_one_problem(&f, "wrong class");
    f.heap->sparse[other] = saved_other;
    b->next = saved_next;
    assert_int_equal(gc_verify(f.heap), 0);
    assert_int_equal(gc_verify_untraced(f.heap), 0);
    fixture_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sound_references_pass, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_stale_handle_slot_reported, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_stale_weak_target_reported, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_stale_ephemeron_slots_reported, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_stale_rc_owner_reported, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_cyclic_span_list_reported, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_span_under_wrong_class_reported, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
