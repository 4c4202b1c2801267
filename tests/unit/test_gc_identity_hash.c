/* Unit tests of where identity hashes live: an object that can move gets a
 * table entry (so its hash survives the move), one that never moves (a
 * large object, any object of a GC_COMPACT_NEVER heap) keeps its address's
 * hash without an entry, and so without the heap's lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "unit_errors.h"

static const gc_type_t leaf_type = { "leaf", NULL, NULL };

static gc_heap_t *heap_with(int compaction) {
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.compaction = compaction;
    o.markers = 1;
    gc_heap_t *h = gc_heap_create(&o);
    assert_non_null(h);
    return h;
}

static void test_never_mode_needs_no_table(void **state) {
    (void)state;
    gc_heap_t *h = heap_with(GC_COMPACT_NEVER);
    gc_thread_t *t = gc_thread_attach(h);
    enum { N = 64 };
    void *objects[N];
    uintptr_t hashes[N];
    gc_root_add_range(h, objects, N);
    for (size_t i = 0; i < N; i++) {
        objects[i] = gc_alloc(t, &leaf_type, 16 + 8 * i);
        assert_non_null(objects[i]);
        hashes[i] = gc_identity_hash(objects[i]);
    }
    assert_int_equal(h->hash_count, 0);
    gc_collect(t);
    for (size_t i = 0; i < N; i++) assert_int_equal(gc_identity_hash(objects[i]), hashes[i]);
    assert_int_equal(h->hash_count, 0);
    gc_root_remove(h, objects);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    assert_int_equal(reports, 0);
}

static void test_large_objects_need_no_table(void **state) {
    (void)state;
    gc_heap_t *h = heap_with(GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(h);
    void *large = gc_alloc(t, &leaf_type, 300000);
    void *small = gc_alloc(t, &leaf_type, 32);
    assert_non_null(large);
    assert_non_null(small);
    gc_push_root(t, &large);
    gc_push_root(t, &small);
    uintptr_t large_hash = gc_identity_hash(large), small_hash = gc_identity_hash(small);
    assert_int_equal(h->hash_count, 1); /* the small one only */
    void *small_before = small, *large_before = large;
    gc_collect(t);
    assert_ptr_equal(large, large_before);
    assert_ptr_not_equal(small, small_before); /* ALWAYS moved it */
    assert_int_equal(gc_identity_hash(large), large_hash);
    assert_int_equal(gc_identity_hash(small), small_hash);
    gc_pop_roots(t, 2);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    assert_int_equal(reports, 0);
}

/* A compaction value that is no GC_COMPACT_* is reported and "behaves as
 * GC_COMPACT_NEVER" (docs/api.md): nothing moves, so, as in a NEVER heap,
 * no hash needs a table entry or the lock. The value was kept as given:
 * nothing moved, but every first hash took the lock and an entry. */
static void test_bad_compaction_value_behaves_as_never(void **state) {
    (void)state;
    static const int bad_values[] = { 3, -1, 1000 };
    for (size_t v = 0; v < sizeof bad_values / sizeof bad_values[0]; v++) {
        reports = 0;
        gc_heap_t *h = heap_with(bad_values[v]);
        assert_int_equal(reports, 1);
        assert_string_equal(last_what, "gc_heap_create: compaction is not a GC_COMPACT_* value (nothing moves)");
        gc_thread_t *t = gc_thread_attach(h);
        enum { N = 16 };
        void *objects[N], *before[N];
        uintptr_t hashes[N];
        gc_root_add_range(h, objects, N);
        for (size_t i = 0; i < N; i++) {
            objects[i] = gc_alloc(t, &leaf_type, 16 + 8 * i);
            assert_non_null(objects[i]);
            before[i] = objects[i];
            hashes[i] = gc_identity_hash(objects[i]);
        }
        assert_int_equal(h->hash_count, 0);
        gc_collect(t);
        for (size_t i = 0; i < N; i++) {
            assert_ptr_equal(objects[i], before[i]);
            assert_int_equal(gc_identity_hash(objects[i]), hashes[i]);
        }
        assert_int_equal(h->hash_count, 0);
        gc_root_remove(h, objects);
        gc_thread_detach(t);
        gc_heap_destroy(h);
        assert_int_equal(reports, 1);
    }
}

/* Without memory for the rebuilt table, a collection re-keys the entries
 * in place (searched linearly, under the lock); the next first hash
 * rebuilds the table. Hashes survive both. */
static void test_table_rebuild_without_memory(void **state) {
    (void)state;
    gc_heap_t *h = heap_with(GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(h);
    enum { N = 32 };
    void *objects[N];
    uintptr_t hashes[N];
    gc_root_add_range(h, objects, N);
    for (size_t i = 0; i < N; i++) objects[i] = gc_alloc(t, &leaf_type, 32);
    for (size_t i = 0; i < N; i++) hashes[i] = gc_identity_hash(objects[i]);
    /* the nth mapping of a collection fails, for growing n, until it is
     * the new table's */
    bool unordered = false;
    for (uint64_t n = 1; n < 64 && !unordered; n++) {
        os_fail_after(n);
        gc_collect(t);
        os_fail_after(0);
        unordered = h->hashes_unordered;
        for (size_t i = 0; i < N; i++) assert_int_equal(gc_identity_hash(objects[i]), hashes[i]);
    }
    assert_true(unordered);
    void *fresh = gc_alloc(t, &leaf_type, 32);
    gc_push_root(t, &fresh);
    uintptr_t fresh_hash = gc_identity_hash(fresh); /* rebuilds, then inserts */
    assert_false(h->hashes_unordered);
    assert_int_equal(h->hash_count, N + 1);
    gc_collect(t);
    assert_int_equal(gc_identity_hash(fresh), fresh_hash);
    for (size_t i = 0; i < N; i++) assert_int_equal(gc_identity_hash(objects[i]), hashes[i]);
    gc_pop_roots(t, 1);
    gc_root_remove(h, objects);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* A dangling pointer (the cell an object moved out of) is reported on its
 * first hash and gets no entry: its header still holds the forwarding
 * word, so an entry for it was re-keyed by the next collection to the
 * moved object's address, which then had two entries, and about half of
 * such objects' hashes changed. max_heap stops the first collection's
 * copies after about one span, so the cells moved out of stay in spans
 * that survive. */
static void test_dangling_pointer_gets_no_entry(void **state) {
    (void)state;
    gc_heap_t *h = heap_with(GC_COMPACT_ALWAYS);
    gc_thread_t *t = gc_thread_attach(h);
    enum { N = 2000 };
    static void *objects[N], *before[N];
    static uintptr_t hashes[N];
    static bool pinned[N];
    gc_root_add_range(h, objects, N);
    for (size_t i = 0; i < N; i++) {
        objects[i] = gc_alloc(t, &leaf_type, 300); /* above 256 bytes: a header */
        assert_non_null(objects[i]);
    }
    /* traced in a scrambled order: each span loses some objects, keeps others */
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = (size_t)((i * 2654435761u) % (i + 1));
        void *x = objects[i];
        objects[i] = objects[j];
        objects[j] = x;
    }
    memcpy(before, objects, sizeof objects);
    h->options.max_heap = h->heap_bytes + 64 * 1024;
    gc_collect(t);
    h->options.max_heap = 0;
    size_t dangling = 0;
    for (size_t i = 0; i < N; i++) {
        uint32_t index;
        if (objects[i] == before[i] || gc_object_span(h, before[i], &index) == NULL) continue;
        gc_pin(h, objects[i]); /* stays at its address through the next collection */
        pinned[i] = true;
        hashes[i] = gc_identity_hash(objects[i]);
        (void)gc_identity_hash(before[i]);
        dangling++;
    }
    assert_true(dangling > 0);
    gc_collect(t);
    size_t changed = 0;
    for (size_t i = 0; i < N; i++) {
        if (!pinned[i]) continue;
        if (gc_identity_hash(objects[i]) != hashes[i]) changed++;
        gc_unpin(h, objects[i]);
    }
    assert_int_equal(changed, 0);
    assert_int_equal(h->hash_count, dangling); /* one entry each, none for the dangling pointers */
    assert_int_equal(reports, dangling);
    assert_string_equal(last_what, "gc_identity_hash: not a live object (a collection freed it)");
    gc_root_remove(h, objects);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void) {
    /* the tests choose the heap's mode themselves */
    unsetenv("MULCH_GC_COMPACT");
    unsetenv("MULCH_GC_GENERATIONAL");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_never_mode_needs_no_table, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_large_objects_need_no_table, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_bad_compaction_value_behaves_as_never, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_table_rebuild_without_memory, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_dangling_pointer_gets_no_entry, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
