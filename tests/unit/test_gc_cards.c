/* Unit tests of the generational write barrier's card table (gc/generation.c):
 * gc_write sets the card of the object's own start, headerless or not,
 * small or large; the thread caches the regions' card tables (more
 * regions than entries included) and loses them at every collection;
 * a misdirected obj (dead, a field) is reported and caches nothing; every card of the heap's spans is clean after a collection;
 * a heap that is not generational marks no card; a pointer that is not an
 * object of the heap gets one report and no card. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
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
static void pair_finalize(void *obj) { (void)obj; }
static const gc_type_t pair_type = { "pair", pair_trace, NULL };
static const gc_type_t finalized_pair_type = { "finalized pair", pair_trace, pair_finalize };

enum { BIG_SLOTS = 40000 }; /* 320 KiB: a large object, a span of its own */
static void big_trace(void *obj, gc_tracer_t *tracer) { gc_trace_range(tracer, obj, BIG_SLOTS); }
static const gc_type_t big_type = { "big", big_trace, NULL };

static gc_heap_t *heap_new(int generational) {
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.generational = generational;
    o.markers = 1;
    gc_heap_t *h = gc_heap_create(&o);
    assert_non_null(h);
    return h;
}

static unsigned char card_of(const void *obj) {
    block_t *b = pool_block_of(obj);
    assert_non_null(b);
    return pool_block_cards(b)[(size_t)((const unsigned char *)obj - pool_block_memory(b)) >> POOL_CARD_SHIFT];
}

static bool card_cache_empty(const gc_thread_t *t) {
    if (t->card_region != GC_NO_REGION) return false;
    for (unsigned k = 0; k < GC_CARD_CACHE; k++)
        if (t->card_cache[k].region != GC_NO_REGION) return false;
    return true;
}

static bool card_cache_holds(const gc_thread_t *t, const void *obj) {
    uintptr_t region = (uintptr_t)obj >> MULCH_REGION_SHIFT;
    return t->card_region == region && t->card_cache[region % GC_CARD_CACHE].region == region;
}

static size_t dirty_cards(gc_heap_t *h) {
    size_t dirty = 0;
    for (size_t s = 0; s < h->spans.count; s++) {
        block_t *b = h->spans.items[s];
        const unsigned char *cards = pool_block_cards(b);
        for (size_t c = 0; c < pool_block_card_count(b); c++) dirty += cards[c] != 0;
    }
    return dirty;
}

/* After the lazy sweep: old (mark bit), aged (age bit: young, survived one
 * minor collection). */
static bool swept_bit(gc_heap_t *h, void *obj, uint64_t *(*bitmap)(const block_t *)) {
    block_t *b = pool_block_of(obj);
    gc_span_ensure_swept(h, b);
    uint32_t i = (uint32_t)(((unsigned char *)obj - gc_span_header(b) - b->start) / b->cell_size);
    return bit_test(bitmap(b), i);
}
static bool is_old(gc_heap_t *h, void *obj) { return swept_bit(h, obj, gc_span_mark_bits); }
static bool is_aged(gc_heap_t *h, void *obj) { return swept_bit(h, obj, gc_span_age_bits); }

static void minor_collection(gc_heap_t *h, gc_thread_t *t) {
    assert_true(gc_world_stop(t, true));
    gc_collect_locked(h, t, true, GC_REASON_ALLOCATION);
    gc_world_start_heap(h, t);
}

static void test_cards_follow_gc_write(void **state) {
    (void)state;
    gc_heap_t *h = heap_new(1);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    void *roots[4] = { NULL, NULL, NULL, NULL };
    gc_root_add_range(h, roots, 4);
    pair_t *plain = roots[0] = gc_alloc(t, &pair_type, sizeof(pair_t));
    pair_t *headed = roots[1] = gc_alloc(t, &finalized_pair_type, sizeof(pair_t));
    void **big = roots[2] = gc_alloc(t, &big_type, BIG_SLOTS * sizeof(void *));
    assert_non_null(plain);
    assert_non_null(headed);
    assert_non_null(big);
    pair_t *old_garbage = roots[3] = gc_alloc(t, &pair_type, sizeof(pair_t));
    assert_non_null(old_garbage);
    assert_true(gc_span_headerless(pool_block_of(plain)));
    assert_false(gc_span_headerless(pool_block_of(headed)));
    gc_collect(t); /* all four are old now; every card clean, the cache empty */
    roots[3] = NULL;
    assert_int_equal(dirty_cards(h), 0);
    assert_true(card_cache_empty(t));

    pair_t *young = gc_alloc(t, &pair_type, sizeof(pair_t));
    assert_non_null(young);
    gc_write(t, plain, &plain->slot[1], young);
    assert_int_equal(card_of(plain), 1);
    assert_true(card_cache_holds(t, plain));
    gc_write(t, headed, &headed->slot[0], young);
    assert_int_equal(card_of(headed), 1); /* the object's card, not the cell's */
    gc_write(t, big, &big[BIG_SLOTS - 1], young);
    assert_int_equal(card_of(big), 1);    /* the start's card, whatever the slot */
    /* Stores of NULL and of tagged values are no references: no card. */
    pair_t *other = gc_alloc(t, &pair_type, sizeof(pair_t));
    assert_non_null(other);
    size_t before = dirty_cards(h);
    gc_write(t, other, &other->slot[0], NULL);
    gc_write(t, other, &other->slot[1], (void *)(uintptr_t)0x13);
    assert_int_equal(dirty_cards(h), before);
    assert_int_equal(reports, 0);

    /* The minor collection an allocation runs keeps young alive through
     * the cards. young survived its first one: it stays young (aged), so
     * the three old objects holding it keep their cards dirty; every other
     * card is clean and the cache empty again. */
    minor_collection(h, t);
    assert_true(is_old(h, old_garbage)); /* it was minor: old garbage stays */
    assert_int_equal(dirty_cards(h), 3);
    assert_int_equal(card_of(plain), 1);
    assert_int_equal(card_of(headed), 1);
    assert_int_equal(card_of(big), 1);
    assert_true(card_cache_empty(t));
    assert_false(is_old(h, young));
    assert_true(is_aged(h, young));
    assert_ptr_equal(plain->slot[1], young);
    assert_ptr_equal(big[BIG_SLOTS - 1], young);
    /* The next minor collection promotes it: now every card is clean. */
    minor_collection(h, t);
    assert_true(is_old(h, young));
    assert_false(is_aged(h, young));
    assert_int_equal(dirty_cards(h), 0);
    assert_ptr_equal(plain->slot[1], young);
    /* The verifier accepts an aged object held by an old one on its kept
     * card. */
    pair_t *young2 = gc_alloc(t, &pair_type, sizeof(pair_t));
    assert_non_null(young2);
    gc_write(t, plain, &plain->slot[0], young2);
    minor_collection(h, t);
    assert_true(is_aged(h, young2));
    assert_int_equal(card_of(plain), 1);
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(gc_verify_untraced(h), 0);
    assert_int_equal(reports, 0);
    gc_root_remove(h, roots);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* More regions than the thread's card cache has entries: every store
 * still lands on its object's card, and the entries follow the regions. One 3.5 MiB object per region, no trace function (the
 * young object they are given is rooted itself). */
static const gc_type_t raw_type = { "raw", NULL, NULL };
enum { SPACER = (7u << 20) / 2 };

static void test_card_cache_many_regions(void **state) {
    (void)state;
    const size_t want = GC_CARD_CACHE + 2;
    enum { MAX_OBJECTS = 256 };
    gc_heap_t *h = heap_new(1);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    void **objects = calloc(MAX_OBJECTS + 1, sizeof *objects);
    assert_non_null(objects);
    gc_root_add_range(h, objects, MAX_OBJECTS + 1);
    void *first_of_region[MAX_OBJECTS];
    uintptr_t seen[MAX_OBJECTS];
    size_t regions = 0;
    for (size_t i = 0; i < MAX_OBJECTS && regions < want; i++) {
        objects[i] = gc_alloc(t, &raw_type, SPACER);
        assert_non_null(objects[i]);
        uintptr_t region = (uintptr_t)objects[i] >> MULCH_REGION_SHIFT;
        bool known = false;
        for (size_t r = 0; r < regions; r++) known |= seen[r] == region;
        if (!known) {
            seen[regions] = region;
            first_of_region[regions++] = objects[i];
        }
    }
    assert_int_equal(regions, want);
    gc_collect(t);
    assert_true(card_cache_empty(t));
    pair_t *young = objects[MAX_OBJECTS] = gc_alloc(t, &pair_type, sizeof(pair_t));
    assert_non_null(young);
    for (unsigned round = 0; round < 2; round++) {
        for (size_t r = 0; r < regions; r++) {
            void **object = first_of_region[r];
            gc_write(t, object, &object[r], young);
            assert_int_equal(card_of(object), 1);
            assert_true(card_cache_holds(t, object));
        }
    }
    assert_int_equal(dirty_cards(h), regions);
    assert_int_equal(reports, 0);
    assert_true(gc_world_stop(t, true));
    gc_collect_locked(h, t, true, GC_REASON_ALLOCATION);
    gc_world_start_heap(h, t);
    assert_int_equal(dirty_cards(h), 0);
    assert_true(card_cache_empty(t));
    assert_int_equal(gc_verify(h), 0);
    /* the raw objects hold `young` untraced on purpose: one report each */
    assert_int_equal(gc_verify_untraced(h), regions);
    gc_root_remove(h, objects);
    free(objects);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* A pointer that is no object start of the heap is reported and caches
 * nothing, whatever pool memory it points into: a field's address, or a
 * dead object whose span went back to the pool (which a pool_trim may
 * then unmap: a cached region would point the barrier at its card table). */
/* Aging: a structure that a minor collection found half-built and that
 * died before the next one is freed by that next minor collection, not
 * promoted to wait for a full one. Both marker counts: helpers flip age
 * bits with atomics. */
static void aging_frees_structure(unsigned markers) {
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.generational = 1;
    o.markers = markers;
    gc_heap_t *h = gc_heap_create(&o);
    assert_non_null(h);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    void *root = NULL;
    gc_root_add(h, &root);
    enum { LENGTH = 20000 };
    for (unsigned i = 0; i < LENGTH; i++) {
        pair_t *p = gc_alloc(t, &pair_type, sizeof(pair_t));
        assert_non_null(p);
        gc_write(t, p, &p->slot[0], root);
        root = p;
    }
    pair_t *head = root;
    minor_collection(h, t);
    assert_true(is_aged(h, head));
    assert_false(is_old(h, head));
    block_t *span = pool_block_of(head); /* the bitmaps' layout trace_slot_special relies on */
    assert_ptr_equal(gc_span_age_bits(span),
                     gc_span_alloc_bits(span) + (gc_span_alloc_bits(span) - gc_span_mark_bits(span)));
    assert_true(h->aged_bytes >= LENGTH * sizeof(pair_t));
    root = NULL;
    minor_collection(h, t);
    assert_false(gc_object_allocated_locked(h, head));
    assert_true(h->live_bytes < 4096); /* nothing promoted, nothing left */
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(gc_verify_untraced(h), 0);
    gc_root_remove(h, &root);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_aging_frees_structure(void **state) {
    (void)state;
    aging_frees_structure(1);
    aging_frees_structure(2);
}

/* A promoted object holding one that stays young keeps its card dirty
 * after the collection, though nothing stored into it since: else the
 * next minor collection would not find the young one. */
static void test_promoted_parent_keeps_card(void **state) {
    (void)state;
    gc_heap_t *h = heap_new(1);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    void *root = NULL;
    gc_root_add(h, &root);
    pair_t *parent = root = gc_alloc(t, &pair_type, sizeof(pair_t));
    assert_non_null(parent);
    minor_collection(h, t); /* parent: aged */
    assert_true(is_aged(h, parent));
    pair_t *child = gc_alloc(t, &pair_type, sizeof(pair_t));
    assert_non_null(child);
    child->value = 42;
    gc_write(t, parent, &parent->slot[1], child);
    minor_collection(h, t); /* parent promoted, child aged: parent's card kept */
    assert_true(is_old(h, parent));
    assert_true(is_aged(h, child));
    assert_int_equal(card_of(parent), 1);
    /* gc_verify checks without marking: the old stay old, and the next
     * collection may be minor */
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(gc_verify_untraced(h), 0);
    assert_false(h->next_full);
    assert_true(is_old(h, parent));
    assert_true(is_aged(h, child));
    /* churn, so that a freed child's cell would be taken again */
    for (unsigned i = 0; i < 10000; i++) assert_non_null(gc_alloc(t, &pair_type, sizeof(pair_t)));
    minor_collection(h, t); /* found through the kept card: promoted */
    assert_true(is_old(h, child));
    assert_ptr_equal(parent->slot[1], child);
    assert_int_equal(child->value, 42);
    assert_int_equal(card_of(parent), 0);
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(gc_verify_untraced(h), 0);
    assert_int_equal(reports, 0);
    gc_root_remove(h, &root);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* trace_slot_special finds a span's age bits from its span cache entry as
 * alloc + (alloc - mark): the pool's side area of the span (all its blocks)
 * in three equal thirds. Checked for a small class, a medium class whose
 * cell takes more than a block, and a large object's span of its own, each
 * bitmap inside the side area. */
static void check_age_bits_layout(const void *obj, uint32_t min_blocks) {
    block_t *b = pool_block_of(obj);
    assert_non_null(b);
    assert_true(b->span_blocks >= min_blocks);
    uint64_t *mark = gc_span_mark_bits(b), *alloc = gc_span_alloc_bits(b), *age = gc_span_age_bits(b);
    assert_ptr_equal(age, alloc + (alloc - mark));
    assert_ptr_equal(mark, (uint64_t *)pool_block_side(b));
    assert_true((size_t)((unsigned char *)(age + gc_span_words(b)) - pool_block_side(b)) <= pool_block_side_bytes(b));
}

static void test_age_bits_layout(void **state) {
    (void)state;
    gc_heap_t *h = heap_new(1);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    void *small = gc_alloc(t, &pair_type, sizeof(pair_t));
    assert_non_null(small);
    check_age_bits_layout(small, 1);
    void *medium = gc_alloc(t, &pair_type, 100000); /* a cell of more than a block */
    assert_non_null(medium);
    check_age_bits_layout(medium, 2);
    void *big = gc_alloc(t, &big_type, BIG_SLOTS * sizeof(void *));
    assert_non_null(big);
    assert_int_equal(pool_block_of(big)->size_class, GC_LARGE_CLASS);
    check_age_bits_layout(big, 2);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_misdirected_obj_not_cached(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.generational = 1;
    o.markers = 1;
    o.pool = pool;                     /* shared: pool_trim is the embedder's */
    o.initial_heap = (size_t)1 << 30;  /* no collection but the explicit ones */
    gc_heap_t *h = gc_heap_create(&o);
    assert_non_null(h);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    void *roots[3] = { NULL, NULL, NULL };
    gc_root_add_range(h, roots, 3);
    void *young = roots[0] = gc_alloc(t, &raw_type, 64);
    void **big = roots[1] = gc_alloc(t, &big_type, BIG_SLOTS * sizeof(void *));
    unsigned char *dead = gc_alloc(t, &raw_type, (size_t)6 << 20); /* a chunk of its own */
    assert_non_null(young);
    assert_non_null(big);
    assert_non_null(dead);
    gc_collect(t); /* dead's span goes back to the pool */
    assert_true(card_cache_empty(t));

    void *local = NULL;
    gc_write(t, dead, &local, young);
    assert_int_equal(reports, 1);
    assert_ptr_equal(last_ptr, dead);
    gc_write(t, dead + ((size_t)5 << 20), &local, young);
    assert_int_equal(reports, 2);
    assert_true(card_cache_empty(t));
    gc_write(t, &big[30000], &big[30000], young); /* a field, 240 000 bytes in */
    assert_int_equal(reports, 3);
    assert_true(card_cache_empty(t));
    big[30000] = NULL;

    /* The pool gives the dead chunk back; new objects may land there, and
     * their stores mark their own cards. */
    pool_trim(pool);
    for (int i = 0; i < 4; i++) {
        void **fresh = roots[2] = gc_alloc(t, &big_type, BIG_SLOTS * sizeof(void *));
        assert_non_null(fresh);
        gc_write(t, fresh, &fresh[0], young);
        assert_int_equal(card_of(fresh), 1);
        fresh[0] = NULL;
    }
    assert_int_equal(reports, 3);
    gc_root_remove(h, roots);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    pool_destroy(pool);
}

static void test_no_cards_without_generations(void **state) {
    (void)state;
    gc_heap_t *h = heap_new(0);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    void *root = NULL;
    gc_push_root(t, &root);
    pair_t *a = root = gc_alloc(t, &pair_type, sizeof(pair_t));
    assert_non_null(a);
    gc_collect(t);
    pair_t *b = gc_alloc(t, &pair_type, sizeof(pair_t));
    gc_write(t, a, &a->slot[0], b);
    assert_int_equal(card_of(a), 0);
    assert_true(card_cache_empty(t));
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_foreign_object_reported(void **state) {
    (void)state;
    gc_heap_t *h = heap_new(1);
    gc_thread_t *t = gc_thread_attach(h);
    assert_non_null(t);
    pair_t *young = gc_alloc(t, &pair_type, sizeof(pair_t));
    assert_non_null(young);
    pair_t on_stack;
    memset(&on_stack, 0, sizeof on_stack);
    gc_write(t, &on_stack, &on_stack.slot[0], young);
    assert_ptr_equal(on_stack.slot[0], young); /* the store itself happens */
    assert_int_equal(reports, 1);
    assert_ptr_equal(last_ptr, &on_stack);
    assert_true(card_cache_empty(t));
    /* An object of another heap is foreign too. */
    gc_heap_t *other = heap_new(1);
    gc_thread_t *u = gc_thread_attach(other);
    pair_t *elsewhere = gc_alloc(u, &pair_type, sizeof(pair_t));
    assert_non_null(elsewhere);
    gc_write(t, elsewhere, &elsewhere->slot[0], NULL); /* NULL: no barrier, no report */
    assert_int_equal(reports, 1);
    gc_write(t, elsewhere, &elsewhere->slot[0], young);
    assert_int_equal(reports, 2);
    assert_int_equal(card_of(elsewhere), 0);
    elsewhere->slot[0] = NULL;
    gc_thread_detach(u);
    gc_heap_destroy(other);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void) {
    /* these tests choose the heap's mode themselves: a caller's
     * MULCH_GC_GENERATIONAL or MULCH_GC_COMPACT would override it; and
     * aging counts what minor collections promote, so the policy that
     * decides when they come is the tests' own too */
    static const char *const overridden[] = {
        "MULCH_GC_GENERATIONAL", "MULCH_GC_COMPACT",    "MULCH_GC_HEAP_GROWTH", "MULCH_GC_HEAP_KEEP",
        "MULCH_GC_INITIAL_HEAP", "MULCH_GC_MAX_HEAP",   "MULCH_GC_STRESS",      "MULCH_GC_EVACUATE_BELOW",
    };
    for (size_t i = 0; i < sizeof overridden / sizeof overridden[0]; i++) unsetenv(overridden[i]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cards_follow_gc_write, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_card_cache_many_regions, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_aging_frees_structure, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_promoted_parent_keeps_card, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_age_bits_layout, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_misdirected_obj_not_cached, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_no_cards_without_generations, setup, teardown_errors),
        cmocka_unit_test_setup_teardown(test_foreign_object_reported, setup, teardown_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
