/* Unit test of the pending finalizers' index (gc/pending.c) on a heap
 * record of its own (zeroed, never a live heap): objects enter and leave
 * heap->pending as collect.c moves them (push, then gc_pending_remove's
 * swap-removal of an arbitrary entry), and after each step the index
 * answers exactly as a search of the list does, gives each object's
 * position, and gc_pending_index_is_valid holds. Removal in random order
 * exercises the backward shift of the open addressing; a merge that
 * reorders the list (heap.c) is followed by gc_pending_index_add_from(0),
 * which moves the positions; an object listed twice turns to the search.
 * A growth that fails (os_fail_after) leaves the index short: lookups
 * search the list until it empties, and the index is whole again after.
 * Seeded: MULCH_TEST_SEED, printed on failure. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "pool_internal.h"
#include "unit_errors.h"

enum { OBJECTS = 3000, FAKE_SPACING = 48 };

static uint64_t seed = UINT64_C(0x70656e64696e6722);
static gc_heap_t heap;      /* only the pending list and its index are used */
static char *arena;         /* fake object addresses, never dereferenced   */

static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void *fake_object(size_t i) { return arena + 8 + i * FAKE_SPACING; }

static bool in_list[OBJECTS]; /* what heap.pending holds, by object */

static void check_all(const char *when, size_t step) {
    if (!gc_pending_index_is_valid(&heap))
        fail_msg("%s, step %zu: gc_pending_index_is_valid false (seed 0x%" PRIx64 ")", when, step, seed);
    for (size_t i = 0; i < OBJECTS; i++) {
        bool want = in_list[i], got = gc_pending_contains_locked(&heap, fake_object(i));
        if (want != got)
            fail_msg("%s, step %zu: object %zu listed %d, index says %d (seed 0x%" PRIx64 ")", when, step, i, want,
                     got, seed);
    }
}

static void pending_add(size_t i) {
    assert_true(gc_vector_push(&heap.pending, fake_object(i)));
    in_list[i] = true;
    gc_pending_index_add_from(&heap, heap.pending.count - 1);
}

/* As collect.c's finalized_locked. */
static void pending_remove_at(size_t j) {
    void *obj = heap.pending.items[j], *last = heap.pending.items[heap.pending.count - 1];
    size_t count = heap.pending.count;
    in_list[((char *)obj - arena - 8) / FAKE_SPACING] = false;
    gc_pending_remove(&heap, obj);
    /* the swap-removal: the last entry took its place */
    assert_int_equal(heap.pending.count, count - 1);
    if (j < heap.pending.count) assert_ptr_equal(heap.pending.items[j], last);
}

static void run(bool failing) {
    uint64_t state = seed;
    size_t step = 0;
    bool saw_unindexed = false;
    /* (push and remove interleaved; the list first grows to OBJECTS/2) */
    size_t next = 0;
    if (failing) {
        for (; next < 700; next++) pending_add(next);
        assert_true(gc_vector_reserve(&heap.pending, 2 * OBJECTS));
        os_fail_after(1); /* the next growth (at 1024 entries: capacity 2048) fails */
    }
    while (next < OBJECTS || heap.pending.count) {
        bool add = next < OBJECTS && (heap.pending.count == 0 || next_random(&state) % 3 != 0);
        if (add) pending_add(next++);
        else pending_remove_at((size_t)(next_random(&state) % heap.pending.count));
        saw_unindexed |= heap.pending_unindexed;
        if (++step % 97 == 0 || heap.pending.count == 0) check_all(failing ? "failing" : "normal", step);
    }
    if (failing) {
        assert_int_equal(os_fail_after(0), 0); /* the failure was used */
        assert_true(saw_unindexed);
        assert_false(heap.pending_unindexed); /* reset when the list emptied */
    }
    assert_int_equal(heap.pending_index_count, 0);
    check_all("emptied", step);
    /* whole again: every new entry indexed */
    for (size_t i = 0; i < 50; i++) pending_add(i);
    assert_false(heap.pending_unindexed);
    check_all("refilled", step);
    while (heap.pending.count) pending_remove_at(0);
}

static void test_index_follows_the_list(void **state) {
    (void)state;
    run(false);
}

static void test_index_short_of_memory_falls_back(void **state) {
    (void)state;
    gc_pending_index_free(&heap);
    run(true);
}

/* A merge that swapped arrays (gc_vector_merge) puts the new objects
 * first: add_from(0) gives every listed object its new position, and
 * removals after it take out the right entries. */
static void test_positions_follow_a_merge(void **state) {
    (void)state;
    gc_pending_index_free(&heap);
    for (size_t i = 0; i < 100; i++) pending_add(i);
    /* reversed in place, as a reordering merge leaves it */
    for (size_t i = 0, j = heap.pending.count - 1; i < j; i++, j--) {
        void *swap = heap.pending.items[i];
        heap.pending.items[i] = heap.pending.items[j];
        heap.pending.items[j] = swap;
    }
    assert_false(gc_pending_index_is_valid(&heap)); /* positions stale */
    gc_pending_index_add_from(&heap, 0);
    assert_false(heap.pending_unindexed);
    check_all("merged", 0);
    uint64_t random = seed;
    for (size_t step = 1; heap.pending.count; step++) {
        pending_remove_at((size_t)(next_random(&random) % heap.pending.count));
        check_all("merged", step);
    }
}

/* An object listed twice (not a thing collect.c does, but nothing stops a
 * list from holding it): the index gives one position, so lookups and
 * removals search the list until it empties; both copies go. */
static void test_listed_twice_falls_back_to_the_search(void **state) {
    (void)state;
    gc_pending_index_free(&heap);
    for (size_t i = 0; i < 10; i++) pending_add(i);
    pending_add(3); /* in_list[3] stays true */
    assert_true(heap.pending_unindexed);
    assert_true(gc_pending_index_is_valid(&heap));
    gc_pending_remove(&heap, fake_object(3));
    assert_true(gc_pending_contains_locked(&heap, fake_object(3))); /* the other copy */
    assert_true(gc_pending_index_is_valid(&heap));
    gc_pending_remove(&heap, fake_object(3));
    in_list[3] = false;
    check_all("listed twice", 0);
    gc_pending_remove(&heap, fake_object(3)); /* not listed: nothing */
    assert_int_equal(heap.pending.count, 9);
    while (heap.pending.count) pending_remove_at(heap.pending.count - 1);
    assert_false(heap.pending_unindexed);
}

/* collect.c's case: the object finalized first (the oldest entry) leaves
 * after its finalizer's collections listed many more; the index finds it
 * where it is, and the entry moved into its place is re-indexed. */
static void test_remove_oldest_after_many(void **state) {
    (void)state;
    gc_pending_index_free(&heap);
    for (size_t i = 0; i < OBJECTS; i++) pending_add(i);
    for (size_t step = 1; heap.pending.count; step++) {
        pending_remove_at(0);
        if (step % 251 == 0 || heap.pending.count == 0) check_all("oldest first", step);
    }
}

static int group_setup(void **state) {
    (void)state;
    const char *env = getenv("MULCH_TEST_SEED");
    if (env && *env) seed = strtoull(env, NULL, 0);
    arena = malloc(8 + (size_t)OBJECTS * FAKE_SPACING);
    return arena ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    gc_pending_index_free(&heap);
    gc_vector_free(&heap.pending);
    free(arena);
    return 0;
}

static int unit_teardown(void **state) {
    os_fail_after(0);
    return teardown_errors(state);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_index_follows_the_list, setup, unit_teardown),
        cmocka_unit_test_setup_teardown(test_index_short_of_memory_falls_back, setup, unit_teardown),
        cmocka_unit_test_setup_teardown(test_positions_follow_a_merge, setup, unit_teardown),
        cmocka_unit_test_setup_teardown(test_listed_twice_falls_back_to_the_search, setup, unit_teardown),
        cmocka_unit_test_setup_teardown(test_remove_oldest_after_many, setup, unit_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
