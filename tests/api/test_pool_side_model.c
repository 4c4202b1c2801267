/* test_pool_side_model.c — a seeded model of a pool shared by GC heaps and
 * its own allocations, for the side-metadata accounting (docs/api.md
 * pool_trim and pool_stats_t bytes_reserved; docs/architecture.md).
 *
 * Two GC heaps (one generational) on one pool, with a limit, and the
 * pool's own cells of every size (small, medium, huge, aligned) run a
 * seeded mix of allocations, drops, collections and trims. After every
 * step:
 *   - gc_verify finds nothing in either heap, and every kept object holds
 *     its payload: side pages decommitted under a span in use would lose
 *     mark bits (objects freed wrongly) or cards;
 *   - bytes_reserved stays within the limit, and a trim's return value is
 *     what left bytes_reserved;
 * and at the end, everything dropped, the heaps destroyed and the pool
 * trimmed, bytes_reserved is back at 0 (no drift). Seeded
 * (MULCH_TEST_SEED); MULCH_TEST_QUICK=1 runs fewer steps. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x736964656d6f646c)
#define MULCH_TEST_GC_OBJECTS 1
#include <stdbool.h>

#include <mulch/gc.h>
#include <mulch/pool.h>

#include "mulch_test.h"

enum { HEAPS = 2, KEPT = 48, CELLS = 64 };

typedef struct model_heap {
    gc_heap_t *heap;
    gc_thread_t *thread;
    void *kept[KEPT]; /* roots */
    uint64_t ids[KEPT];
} model_heap_t;

static pool_stats_t pool_stats(pool_t *pool) {
    pool_stats_t s;
    pool_get_stats(pool, &s);
    return s;
}

static size_t cell_size(rng_t *rng) {
    switch (rng_below(rng, 4)) {
    case 0: return 1 + (size_t)rng_below(rng, 1024);
    case 1: return 1024 + (size_t)rng_below(rng, 60 << 10);
    case 2: return ((size_t)64 << 10) + (size_t)rng_below(rng, (size_t)1 << 20);
    default: return ((size_t)1 << 20) + (size_t)rng_below(rng, (size_t)4 << 20);
    }
}

/* words of a collector object: small, block-sized and large (a chunk of
 * its own) */
static size_t object_words(rng_t *rng) {
    switch (rng_below(rng, 8)) {
    case 0: return (size_t)rng_below(rng, (size_t)1 << 17); /* up to 1 MiB */
    case 1: return ((size_t)1 << 19) + (size_t)rng_below(rng, (size_t)1 << 19); /* 4-8 MiB */
    default: return (size_t)rng_below(rng, 2048);
    }
}

static void check_heap(model_heap_t *h) {
    EXPECT_EQ(gc_verify(h->heap), 0);
    EXPECT_EQ(gc_verify_untraced(h->heap), 0);
    for (size_t k = 0; k < KEPT; k++)
        if (h->kept[k]) EXPECT_OBJ(h->kept[k], h->ids[k]);
}

static void run(uint64_t salt) {
    rng_t rng = test_rng("side_model", salt);
    pool_options_t po;
    memset(&po, 0, sizeof po);
    po.limit = (size_t)192 << 20;
    pool_t *pool = pool_create(&po);
    EXPECT_NONNULL(pool);
    model_heap_t heaps[HEAPS];
    memset(heaps, 0, sizeof heaps);
    for (int i = 0; i < HEAPS; i++) {
        gc_options_t o;
        memset(&o, 0, sizeof o);
        o.pool = pool;
        o.generational = i == 1;
        o.markers = 1;
        heaps[i].heap = gc_heap_create(&o);
        EXPECT_NONNULL(heaps[i].heap);
        heaps[i].thread = gc_thread_attach(heaps[i].heap);
        EXPECT_NONNULL(heaps[i].thread);
        gc_root_add_range(heaps[i].heap, heaps[i].kept, KEPT);
    }
    void *cells[CELLS] = { 0 };
    size_t steps = scaled(500, 150);
    uint64_t next_id = 1;
    for (size_t step = 0; step < steps; step++) {
        model_heap_t *h = &heaps[rng_below(&rng, HEAPS)];
        size_t k = (size_t)rng_below(&rng, KEPT);
        size_t c = (size_t)rng_below(&rng, CELLS);
        switch (rng_below(&rng, 10)) {
        case 0: case 1: case 2: { /* a collector object (at the limit: NULL) */
            size_t words = object_words(&rng);
            tobj_t *o = gc_alloc(h->thread, &T_PLAIN, tobj_size(words));
            if (o == NULL) break;
            o->magic = OBJ_MAGIC;
            o->id = next_id++;
            o->nwords = words;
            for (size_t i = 0; i < words; i++) o->words[i] = payload_word(o->id, i);
            /* a pointer from an older object: the card is written */
            if (h->kept[k]) set_slot(h->thread, h->kept[k], rng_below(&rng, NSLOTS), o);
            else {
                h->kept[k] = o;
                h->ids[k] = o->id;
            }
            break;
        }
        case 3: /* drop */
            h->kept[k] = NULL;
            break;
        case 4: case 5: /* the pool's own cells, every size, some aligned */
            if (cells[c]) {
                pool_free(pool, cells[c]);
                cells[c] = NULL;
            } else {
                size_t size = cell_size(&rng);
                cells[c] = rng_below(&rng, 4) == 0
                               ? pool_alloc_aligned(pool, size, (size_t)1 << (4 + rng_below(&rng, 20)))
                               : pool_alloc(pool, size);
                if (cells[c]) memset(cells[c], 0x5a, size < 4096 ? size : 4096);
            }
            break;
        case 6: case 7:
            gc_collect(h->thread);
            break;
        case 8: { /* a trim: what it returns left bytes_reserved */
            pool_stats_t before = pool_stats(pool);
            size_t released = pool_trim(pool);
            pool_stats_t after = pool_stats(pool);
            EXPECT_EQ(released, before.bytes_reserved - after.bytes_reserved);
            break;
        }
        default: /* the other heap's turn to run while this one sleeps */
            gc_collect(heaps[(h - heaps + 1) % HEAPS].thread);
            break;
        }
        pool_stats_t st = pool_stats(pool);
        EXPECT_LE(st.bytes_reserved, po.limit);
        if (step % 16 == 0 || step + 1 == steps)
            for (int i = 0; i < HEAPS; i++) check_heap(&heaps[i]);
    }
    for (size_t c = 0; c < CELLS; c++) pool_free(pool, cells[c]);
    for (int i = 0; i < HEAPS; i++) {
        memset(heaps[i].kept, 0, sizeof heaps[i].kept);
        gc_collect(heaps[i].thread);
        check_heap(&heaps[i]);
    }
    /* heaps still on the pool, nothing live: a trim takes it all back but
     * what the heaps keep themselves */
    pool_trim(pool);
    for (int i = 0; i < HEAPS; i++) {
        gc_thread_detach(heaps[i].thread);
        gc_heap_destroy(heaps[i].heap);
    }
    pool_stats_t before = pool_stats(pool);
    size_t released = pool_trim(pool);
    pool_stats_t after = pool_stats(pool);
    EXPECT_EQ(released, before.bytes_reserved - after.bytes_reserved);
    EXPECT_EQ(after.bytes_reserved, 0);
    EXPECT_EQ(after.bytes_in_use, 0);
    pool_destroy(pool);
}

static void test_side_model(void **state) {
    (void)state;
    TEST_START();
    run(1);
}

static void test_side_model_other_seed(void **state) {
    (void)state;
    TEST_START();
    run(2);
}

int main(void) {
    mt_init("test_pool_side_model");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_side_model),
        cmocka_unit_test(test_side_model_other_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
