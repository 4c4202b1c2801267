/* test_gc_reachability.c — black-box tests of the collector's public
 * contract (<mulch/gc.h>; docs: shared/API.md "GC" and "Errors and misuse"),
 * what is and is not an object reference: cycles, a very deep list (marking
 * must not recurse), tagged immediates skipped silently, foreign values and
 * heap pointers that are not objects of this heap reported and left alone.
 *
 * Death is observed through finalizers that record the id of the object
 * they run for; objects are only reached through rooted slots across GC
 * points (objects may move), except pinned ones.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. MULCH_TEST_QUICK=1
 * (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630b01)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include "mulch_test.h"

/* ------------------------------------------------------------------------ */
/* Cycles                                                                    */

static void test_gc_cycles_collected(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        void *r1 = NULL, *r2 = NULL, *first = NULL, *cur = NULL, *keep = NULL;
        gc_push_root(t, &r1);
        gc_push_root(t, &r2);
        gc_push_root(t, &first);
        gc_push_root(t, &cur);
        gc_root_add(h, &keep);

        /* a <-> b */
        r1 = mk(t, &T_FIN, 1, 1);
        r2 = mk(t, &T_FIN, 2, 1);
        set_slot(t, r1, 0, r2);
        set_slot(t, r2, 0, r1);
        r1 = r2 = NULL;
        /* self loop */
        r1 = mk(t, &T_FIN, 3, 0);
        set_slot(t, r1, 0, r1);
        set_slot(t, r1, 3, r1);
        r1 = NULL;
        /* ring of 100 (ids 10..109) with chords */
        for (uint64_t i = 0; i < 100; i++) {
            void *n = mk(t, &T_FIN, 10 + i, i % 3);
            set_slot(t, n, 0, cur);
            if (i % 7 == 3) set_slot(t, n, 1, first);
            cur = n;
            if (i == 0) first = n;
        }
        set_slot(t, first, 0, cur);
        first = cur = NULL;
        /* a kept ring of 50 (ids 200..249), rooted through one member */
        for (uint64_t i = 0; i < 50; i++) {
            void *n = mk(t, &T_FIN, 200 + i, 2);
            set_slot(t, n, 0, cur);
            cur = n;
            if (i == 0) first = n;
        }
        set_slot(t, first, 0, cur);
        keep = first;
        first = cur = NULL;

        gc_collect(t);
        for (uint64_t id = 1; id <= 3; id++) EXPECT_FIN(id, 1);
        for (uint64_t i = 0; i < 100; i++) EXPECT_FIN(10 + i, 1);
        for (uint64_t i = 0; i < 50; i++) EXPECT_FIN(200 + i, 0);
        EXPECT_EQ(atomic_load(&g_fin_total), 103);
        /* The kept ring is intact: keep = 200 -> 249 -> 248 -> ... -> 201 -> 200. */
        void *n = keep;
        EXPECT_OBJ(n, 200);
        for (uint64_t i = 0; i < 50; i++) {
            n = slot_of(n, 0);
            EXPECT_OBJ(n, 249 - i);
        }
        EXPECT_PTR_EQ(n, keep);
        gc_collect(t);
        gc_collect(t);
        EXPECT_EQ(atomic_load(&g_fin_total), 103);  /* each exactly once */
        EXPECT_VERIFY(h);

        keep = NULL;
        gc_collect(t);
        for (uint64_t i = 0; i < 50; i++) EXPECT_FIN(200 + i, 1);
        EXPECT_EQ(atomic_load(&g_fin_total), 153);
        gc_root_remove(h, &keep);
        gc_pop_roots(t, 4);
        EXPECT_VERIFY(h);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

/* ------------------------------------------------------------------------ */
/* A very deep list: marking must not recurse on the C stack                  */

typedef struct cell {
    void *next;
    uint64_t id;
} cell_t;

static atomic_ulong g_cell_fin;

static void trace_cell(void *obj, gc_tracer_t *tracer)
{
    gc_trace_slot(tracer, &((cell_t *)obj)->next);
}

static void fin_cell(void *obj)
{
    cell_t *c = obj;
    if (c->id % 1000 != 0) AFAIL("finalizer ran for cell %" PRIu64 " of a type without one", c->id);
    atomic_fetch_add(&g_cell_fin, 1);
}

static const gc_type_t T_CELL = { "test.cell", trace_cell, NULL };
static const gc_type_t T_CELL_FIN = { "test.cell_fin", trace_cell, fin_cell };

static void test_gc_deep_list(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    atomic_store(&g_cell_fin, 0);
    const size_t n = scaled(5000000, 1000000);
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *head = NULL;
    gc_root_add(h, &head);
    for (size_t i = 0; i < n; i++) {
        cell_t *c = gc_alloc(t, i % 1000 == 0 ? &T_CELL_FIN : &T_CELL, sizeof(cell_t));
        if (!c) T_FAIL("gc_alloc of cell %zu returned NULL", i);
        c->id = i;
        gc_write(t, c, &c->next, head);
        head = c;
    }
    print_message("  built %zu cells (%.2f s)\n", n, elapsed_s());
    gc_collect(t);
    print_message("  collected with the list live (%.2f s)\n", elapsed_s());
    gc_stats_t s = stats_of(h);
    EXPECT_GE(s.live_bytes, n * sizeof(cell_t));
    EXPECT_EQ(atomic_load(&g_cell_fin), 0);
    size_t count = 0;
    for (cell_t *c = head; c; c = c->next) {
        if (c->id != n - 1 - count)
            T_FAIL("cell %zu from the head has id %" PRIu64 ", expected %zu", count, c->id,
                   n - 1 - count);
        count++;
        if (count > n) T_FAIL("list longer than %zu cells", n);
    }
    EXPECT_EQ(count, n);
    EXPECT_PTR_EQ(gc_type_of(head), (n - 1) % 1000 == 0 ? &T_CELL_FIN : &T_CELL);

    head = NULL;
    gc_collect(t);
    EXPECT_EQ(atomic_load(&g_cell_fin), (n + 999) / 1000);
    gc_collect(t);                 /* finalized cells are reclaimed by a later one */
    EXPECT_EQ(atomic_load(&g_cell_fin), (n + 999) / 1000);
    s = stats_of(h);
    EXPECT_LE(s.live_bytes, n * sizeof(cell_t) / 16);
    print_message("  collected the dead list (%.2f s), live_bytes %zu\n", elapsed_s(), s.live_bytes);
    EXPECT_VERIFY(h);
    gc_root_remove(h, &head);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* Tagged immediates are skipped silently                                    */

static void test_gc_tagged_values_skipped(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        unsigned long r0 = rec_count();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        enum { NT = 16 };
        void *tags[NT];
        uintptr_t want[NT];
        for (size_t i = 0; i < NT; i++) {
            uintptr_t v = ((uintptr_t)i << 3) | (1u + i % 7);     /* low bits 1..7 */
            if (i == NT - 1) v = UINTPTR_MAX;
            if (i == NT - 2) v = UINTPTR_MAX - 6;                /* ...f9 */
            if (i == NT - 3) v = (uintptr_t)0x7ffffffff001u;
            want[i] = v;
            tags[i] = (void *)v;
        }
        gc_root_add_range(h, tags, NT);
        void *single = (void *)(uintptr_t)0x2a3;                  /* fixnum-ish */
        gc_root_add(h, &single);
        void *holder = NULL, *victim = NULL;
        gc_root_add(h, &holder);
        gc_push_root(t, &victim);
        void *stk = (void *)(uintptr_t)0x5;
        gc_push_root(t, &stk);
        holder = mk(t, &T_FIN, 1, 2);
        victim = mk(t, &T_FIN, 3, 1);
        set_slot(t, holder, 0, (void *)(uintptr_t)0x13);
        mk_child(t, &holder, 1, &T_FIN, 2, 3);
        /* A tagged pointer to a real object does not keep it alive. */
        set_slot(t, holder, 2, (void *)((uintptr_t)victim | 4u));
        uintptr_t victim_tagged = (uintptr_t)victim | 4u;
        set_slot(t, holder, 3, (void *)(uintptr_t)1);
        victim = NULL;
        for (int round = 0; round < 3; round++) {
            gc_collect(t);
            EXPECT_NO_REPORTS(r0);
            for (size_t i = 0; i < NT; i++) EXPECT_EQ((uintptr_t)tags[i], want[i]);
            EXPECT_EQ((uintptr_t)single, 0x2a3);
            EXPECT_EQ((uintptr_t)stk, 0x5);
            EXPECT_OBJ(holder, 1);
            EXPECT_EQ((uintptr_t)slot_of(holder, 0), 0x13);
            EXPECT_OBJ(slot_of(holder, 1), 2);
            EXPECT_EQ((uintptr_t)slot_of(holder, 2), victim_tagged);
            EXPECT_EQ((uintptr_t)slot_of(holder, 3), 1);
            EXPECT_FIN(1, 0);
            EXPECT_FIN(2, 0);
            EXPECT_FIN(3, 1);
            EXPECT_VERIFY(h);
        }
        gc_pop_roots(t, 2);
        gc_root_remove(h, tags);
        gc_root_remove(h, &single);
        gc_root_remove(h, &holder);
        gc_collect(t);
        EXPECT_FIN(1, 1);
        EXPECT_FIN(2, 1);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

/* ------------------------------------------------------------------------ */
/* Foreign values in roots and fields are reported and left alone            */

static void test_gc_foreign_pointer_reported(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        _Alignas(16) uint64_t stack_words[4] = { 1, 2, 3, 4 };
        uint64_t *heap_words = malloc(64);
        EXPECT_NONNULL(heap_words);
        memset(heap_words, 0x5a, 64);
        void *live = NULL;
        gc_root_add(h, &live);
        live = mk(t, &T_FIN, 1, 4);
        mk_child(t, &live, 1, &T_FIN, 2, 2);

        void *const foreign[2] = { &stack_words[0], heap_words };
        const char *const names[2] = { "stack address", "malloc pointer" };
        for (int f = 0; f < 2; f++) {
            /* in a global root */
            void *froot = foreign[f];
            gc_root_add(h, &froot);
            unsigned long r0 = rec_count();
            gc_collect(t);
            unsigned long n1 = rec_count() - r0;
            print_message("  %s in a root: %lu report(s)\n", names[f], n1);
            EXPECT_GC_REPORTS(r0);
            EXPECT_PTR_EQ(froot, foreign[f]);            /* left alone */
            EXPECT_OBJ(live, 1);
            EXPECT_OBJ(slot_of(live, 1), 2);
            gc_root_remove(h, &froot);

            /* in a thread root stack slot */
            void *sroot = foreign[f];
            gc_push_root(t, &sroot);
            r0 = rec_count();
            gc_collect(t);
            EXPECT_GC_REPORTS(r0);
            EXPECT_PTR_EQ(sroot, foreign[f]);
            gc_pop_roots(t, 1);

            /* in a field of a live object */
            set_slot(t, live, 0, foreign[f]);
            r0 = rec_count();
            gc_collect(t);
            print_message("  %s in a field: %lu report(s)\n", names[f], rec_count() - r0);
            EXPECT_GC_REPORTS(r0);
            EXPECT_PTR_EQ(slot_of(live, 0), foreign[f]);
            EXPECT_OBJ(live, 1);
            EXPECT_OBJ(slot_of(live, 1), 2);
            set_slot(t, live, 0, NULL);

            /* gone: no more reports, heap sound */
            r0 = rec_count();
            gc_collect(t);
            EXPECT_NO_REPORTS(r0);
            EXPECT_VERIFY(h);
            EXPECT_FIN(1, 0);
            EXPECT_FIN(2, 0);
        }
        EXPECT_EQ(stack_words[0] + stack_words[1] + stack_words[2] + stack_words[3], 10);
        for (int i = 0; i < 8; i++) EXPECT_EQ(heap_words[i], UINT64_C(0x5a5a5a5a5a5a5a5a));
        free(heap_words);
        live = NULL;
        unsigned long r0 = rec_count();
        gc_collect(t);
        EXPECT_FIN(1, 1);
        EXPECT_FIN(2, 1);
        gc_root_remove(h, &live);
        EXPECT_VERIFY(h);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

/* Values that look like heap pointers but are not object starts of this
 * heap: an interior pointer, the address of a dead (reclaimed) object, an
 * object of another heap. Each is reported and left alone. */
static void test_gc_non_object_heap_pointers_reported(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        fin_reset();
        gc_heap_t *h = heap_new(0, 0, k_modes[m]);
        gc_heap_t *h2 = heap_new(0, 0, k_modes[m]);
        gc_thread_t *t = gc_thread_attach(h);
        gc_thread_t *t2 = gc_thread_attach(h2);
        void *live = NULL, *other = NULL, *bad = NULL;
        gc_root_add(h, &live);
        gc_root_add(h2, &other);
        live = mk(t, &T_FIN, 1, 6);
        other = mk(t2, &T_FIN, 2, 2);

        /* interior pointer into a live object, 8-aligned */
        gc_root_add(h, &bad);
        bad = (char *)live + 16;
        void *want = bad;
        unsigned long r0 = rec_count();
        gc_collect(t);
        print_message("  interior pointer: %lu report(s)\n", rec_count() - r0);
        EXPECT_GC_REPORTS(r0);
        EXPECT_PTR_EQ(bad, want);
        EXPECT_OBJ(live, 1);

        /* an object of another heap, in a root and in a field */
        bad = other;
        r0 = rec_count();
        gc_collect(t);
        print_message("  other heap's object in a root: %lu report(s)\n", rec_count() - r0);
        EXPECT_GC_REPORTS(r0);
        EXPECT_PTR_EQ(bad, other);
        bad = NULL;
        set_slot(t, live, 2, other);
        r0 = rec_count();
        gc_collect(t);
        EXPECT_GC_REPORTS(r0);
        EXPECT_PTR_EQ(slot_of(live, 2), other);
        set_slot(t, live, 2, NULL);
        EXPECT_OBJ(other, 2);            /* the other heap is untouched */
        EXPECT_FIN(2, 0);

        /* the address of an object that died and was reclaimed (no
         * allocation since, so the cell is still free) */
        void *d = NULL;
        gc_push_root(t, &d);
        d = mk(t, &T_PLAIN, 3, 1);
        uintptr_t dead_addr = (uintptr_t)d;
        gc_pop_roots(t, 1);
        d = NULL;
        gc_collect(t);
        gc_collect(t);
        bad = (void *)dead_addr;
        r0 = rec_count();
        gc_collect(t);
        print_message("  dead object's address in a root: %lu report(s)\n", rec_count() - r0);
        /* A moving collection may have put a copy in the freed cell. */
        gc_stats_t moved;
        gc_get_stats(h, &moved);
        if (moved.bytes_moved == 0) {
            EXPECT_GC_REPORTS(r0);
            EXPECT_EQ((uintptr_t)bad, dead_addr);
        }
        bad = NULL;
        r0 = rec_count();
        gc_collect(t);
        EXPECT_NO_REPORTS(r0);
        EXPECT_VERIFY(h);
        EXPECT_VERIFY(h2);
        /* Allocation still hands out sound, zeroed objects. */
        for (int k = 0; k < 100; k++) (void)mk(t, &T_PLAIN, 4, 1);
        EXPECT_OBJ(live, 1);
        gc_root_remove(h, &bad);
        gc_root_remove(h, &live);
        gc_root_remove(h2, &other);
        gc_collect(t);
        gc_collect(t2);
        EXPECT_FIN(1, 1);
        EXPECT_FIN(2, 1);
        EXPECT_NO_REPORTS(r0);
        EXPECT_NO_ASYNC_FAILURES();
        gc_thread_detach(t2);
        gc_thread_detach(t);
        gc_heap_destroy(h2);
        gc_heap_destroy(h);
        EXPECT_NO_REPORTS(r0);
    }
}

int main(void)
{
    mt_init("test_gc_reachability");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_cycles_collected),
        T(test_gc_deep_list),
        T(test_gc_tagged_values_skipped),
        T(test_gc_foreign_pointer_reported),
        T(test_gc_non_object_heap_pointers_reported),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
