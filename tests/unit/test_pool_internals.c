/* Unit tests of the pool's internals: size classes, the chunk map, span
 * coalescing, the block interface the GC builds on, header and free-list
 * corruption detection, and OOM fault injection at every OS mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "block.h"
#include "pool_internal.h"
#include "unit_errors.h"

static int teardown(void **state) {
    os_fail_after(0);
    return teardown_errors(state);
}

static void test_size_class_round_trip(void **state) {
    (void)state;
    for (unsigned c = 0; c < MULCH_MAX_CLASSES; c++) {
        size_t bytes = size_class_bytes(c);
        assert_int_equal(size_class_of(bytes), c);
        assert_int_equal(bytes % 16, 0);
        if (c + 1 < MULCH_MAX_CLASSES) assert_int_equal(size_class_of(bytes + 1), c + 1);
    }
    assert_int_equal(size_class_of(0), 0);
    assert_int_equal(size_class_bytes(0), 16);
}

static void test_size_class_waste_bound(void **state) {
    (void)state;
    for (size_t size = 257; size < ((size_t)1 << 22); size += size / 97 + 1) {
        size_t cell = size_class_bytes(size_class_of(size));
        assert_true(cell >= size);
        /* at most 1/8 of the cell is rounding */
        assert_true((cell - size) * 8 <= cell);
    }
}

/* The allocation fast path's branch-free size_class_of_nonzero agrees
 * with size_class_of: every size up to 64 KiB, each class boundary and its
 * neighbours, and a stride through the rest up to the largest class. */
/* On/off switches of the environment (pool/env.c, shared with the
 * collector's): 0, off, false, no are off and 1, on, true, yes on, in any
 * case, blanks round them dropped; MULCH_SECURE=off was on. Anything else
 * is reported once: off when it starts with '0', else on. */
static unsigned long switch_reports;
static void switch_report_count(const char *what, const void *ptr, void *ctx) {
    (void)what, (void)ptr, (void)ctx;
    switch_reports++;
}

static void test_env_switch_words(void **state) {
    (void)state;
    static const struct {
        const char *value;
        int on, reported;
    } cases[] = {
        { "0", 0, 0 },     { "00", 0, 0 },    { "off", 0, 0 },     { "OFF", 0, 0 },     { "Off", 0, 0 },
        { "false", 0, 0 }, { "FALSE", 0, 0 }, { "no", 0, 0 },      { "No", 0, 0 },      { " off\t", 0, 0 },
        { "0x", 0, 1 },    { "1", 1, 0 },     { "yes", 1, 0 },     { "on", 1, 0 },      { "TRUE", 1, 0 },
        { " 1 ", 1, 0 },   { "2", 1, 1 },     { "offx", 1, 1 },    { "of", 1, 1 },      { "nope", 1, 1 },
        { "false!", 1, 1 }, { "99999999999999999999999", 1, 1 },
    };
    mulch_error_fn previous = mulch_set_error_handler(switch_report_count, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(setenv("MULCH_TEST_SWITCH", cases[i].value, 1), 0);
        unsigned long before = switch_reports;
        int on = mulch_env_switch("MULCH_TEST_SWITCH", "test", 7);
        if (on != cases[i].on || switch_reports - before != (unsigned long)cases[i].reported)
            fail_msg("\"%s\": %d with %lu report(s), expected %d with %d", cases[i].value, on,
                     switch_reports - before, cases[i].on, cases[i].reported);
    }
    unsigned long before = switch_reports;
    assert_int_equal(setenv("MULCH_TEST_SWITCH", " ", 1), 0);
    assert_int_equal(mulch_env_switch("MULCH_TEST_SWITCH", "test", 7), 7);
    assert_int_equal(unsetenv("MULCH_TEST_SWITCH"), 0);
    assert_int_equal(mulch_env_switch("MULCH_TEST_SWITCH", "test", 7), 7);
    assert_int_equal(switch_reports, before);
    mulch_set_error_handler(previous, NULL);
    /* and a pool sees it: MULCH_SECURE=off leaves secure mode off */
    assert_int_equal(setenv("MULCH_SECURE", "off", 1), 0);
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    assert_false(pool->secure);
    pool_destroy(pool);
    assert_int_equal(setenv("MULCH_SECURE", "yes", 1), 0);
    pool = pool_create(NULL);
    assert_non_null(pool);
    assert_true(pool->secure);
    pool_destroy(pool);
    assert_int_equal(unsetenv("MULCH_SECURE"), 0);
}

static void test_size_class_nonzero_agrees(void **state) {
    (void)state;
    for (size_t size = 1; size <= ((size_t)1 << 16); size++)
        if (size_class_of_nonzero(size) != size_class_of(size))
            fail_msg("size_class_of_nonzero(%zu) = %u, want %u", size, size_class_of_nonzero(size), size_class_of(size));
    for (unsigned c = 0; c < MULCH_MAX_CLASSES; c++) {
        size_t bytes = size_class_bytes(c);
        for (size_t size = bytes - 1; size <= bytes + 1; size++)
            if (size != 0 && size_class_of_nonzero(size) != size_class_of(size))
                fail_msg("size_class_of_nonzero(%zu) = %u, want %u", size, size_class_of_nonzero(size),
                         size_class_of(size));
    }
    size_t largest = size_class_bytes(MULCH_MAX_CLASSES - 1);
    for (size_t size = 1; size <= largest; size += size / 97 + 1)
        if (size_class_of_nonzero(size) != size_class_of(size))
            fail_msg("size_class_of_nonzero(%zu) = %u, want %u", size, size_class_of_nonzero(size), size_class_of(size));
}

/* bits_count64 (the inline popcount) against a bit-by-bit count: edge
 * values and a fixed-seed xorshift sequence. */
static void test_bits_count64(void **state) {
    (void)state;
    const uint64_t edges[] = { 0, 1, UINT64_C(1) << 63, UINT64_MAX, UINT64_MAX - 1, UINT64_C(0x5555555555555555),
                               UINT64_C(0xaaaaaaaaaaaaaaaa), UINT64_C(0x0f0f0f0f0f0f0f0f), UINT64_C(0x8000000000000001) };
    uint64_t x = UINT64_C(0x9e3779b97f4a7c15);
    for (unsigned k = 0; k < 100000; k++) {
        uint64_t v = k < sizeof edges / sizeof edges[0] ? edges[k] : x;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned want = 0;
        for (unsigned b = 0; b < 64; b++) want += (unsigned)((v >> b) & 1u);
        if (bits_count64(v) != want) fail_msg("bits_count64(%#llx) = %u, want %u", (unsigned long long)v, bits_count64(v), want);
    }
}

static void test_chunk_map_foreign_addresses(void **state) {
    (void)state;
    int local = 0;
    void *heap = malloc(64);
    assert_null(chunk_of(&local));
    assert_null(chunk_of(heap));
    assert_null(chunk_of((void *)(uintptr_t)1));
    assert_null(chunk_of((void *)UINTPTR_MAX));
    pool_t *pool = pool_create(NULL); /* maps the region bitmap, if no pool has */
    assert_non_null(atomic_load(&chunk_map_blocks_start));
    /* the free fast path's one-load test: no mapping of mulch's here */
    assert_false(chunk_starts_blocks(&local));
    assert_false(chunk_starts_blocks(heap));
    assert_false(chunk_starts_blocks((void *)(uintptr_t)1));
    assert_false(chunk_starts_blocks(NULL));
    assert_false(chunk_starts_blocks((void *)UINTPTR_MAX));
    assert_false(chunk_starts_blocks((void *)((uintptr_t)1 << CHUNK_MAP_ADDRESS_BITS)));
    free(heap);
    void *p = pool_alloc(pool, 100);
    chunk_t *chunk = chunk_of(p);
    assert_non_null(chunk);
    assert_ptr_equal(chunk->pool, pool);
    assert_ptr_equal(chunk_of((char *)chunk + chunk->size - 1), chunk);
    assert_true(chunk_starts_blocks(p));
    assert_true(chunk_starts_blocks(chunk));
    /* a huge object's chunk is not a blocks chunk: its frees take the map */
    void *huge = pool_alloc(pool, (size_t)8 << 20);
    assert_non_null(chunk_of(huge));
    assert_false(chunk_starts_blocks(huge));
    /* chunk_covering: only the chunk's own bytes, known without its header */
    chunk_t *hc = chunk_of(huge);
    uintptr_t end = (uintptr_t)hc + hc->size, last = (end - 1) & ~(uintptr_t)(MULCH_REGION - 1);
    assert_true(end & (MULCH_REGION - 1)); /* the last region is partly the chunk's */
    assert_ptr_equal(chunk_covering(hc), hc);
    assert_ptr_equal(chunk_covering((char *)hc + MULCH_REGION), hc);
    assert_ptr_equal(chunk_covering((void *)(end - 1)), hc);
    assert_ptr_equal(chunk_of((void *)end), hc);
    assert_null(chunk_covering((void *)end));
    assert_null(chunk_covering((void *)(last + MULCH_REGION - 1)));
    assert_ptr_equal(chunk_covering(p), chunk);
    assert_ptr_equal(chunk_covering((char *)chunk + chunk->size - 1), chunk);
    assert_null(chunk_covering(&local));
    pool_free(pool, huge);
    pool_free(pool, p);
    pool_destroy(pool);
    assert_null(chunk_of(p));
    assert_false(chunk_starts_blocks(p));
    /* a chunk of 4 MiB blocks covers several regions: only its first
     * region's bit is set, its cells elsewhere go through the map */
    pool_options_t big = { .block_size = (size_t)4 << 20 };
    pool = pool_create(&big);
    void *cells[64];
    int later_region = 0;
    for (int i = 0; i < 64; i++) {
        cells[i] = pool_alloc(pool, 200000);
        chunk = chunk_of(cells[i]);
        assert_non_null(chunk);
        bool first = ((uintptr_t)cells[i] & ~(uintptr_t)(MULCH_REGION - 1)) == (uintptr_t)chunk;
        assert_int_equal(chunk_starts_blocks(cells[i]), first);
        later_region += !first;
    }
    assert_true(later_region > 0);
    for (int i = 0; i < 64; i++) pool_free(pool, cells[i]);
    assert_int_equal(reports, 0);
    pool_stats_t st;
    pool_get_stats(pool, &st);
    assert_int_equal(st.live_allocations, 0);
    pool_destroy(pool);
}

/* The recent cells of a span that the audit rebuilds (a masked double free
 * left its count wrong) leave the heap's array for the span's list: their
 * frees, counted by where the cells go next, must be counted then, or the
 * statistics keep them in use forever. */
static void test_recent_cells_counted_when_span_rebuilt(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    reports = 0;
    void *keep = pool_alloc(pool, 48);
    void *cell = pool_alloc(pool, 48);
    pool_free(pool, cell); /* a recent cell, still counted in the span's `used` */
    pool_stats_t st;
    pool_get_stats(pool, &st);
    assert_int_equal(st.live_allocations, 1);
    block_t *span = pool_block_of(cell);
    thread_heap_t *heap = mulch_tls.heap;
    assert_non_null(heap);
    assert_ptr_equal(atomic_load(&span->owner), heap);
    span->used = 0; /* what a masked double free leaves */
    assert_false(span_audit_empty(pool, heap, span)); /* a recent cell in it: repaired */
    assert_int_equal(reports, 1);
    assert_int_equal(span->used, 1); /* `keep` */
    pool_get_stats(pool, &st);
    assert_int_equal(st.live_allocations, 1);
    assert_int_equal(st.allocs, 2);
    assert_int_equal(st.frees, 1);
    pool_free(pool, keep);
    pool_get_stats(pool, &st);
    assert_int_equal(st.live_allocations, 0);
    assert_int_equal(st.bytes_in_use, 0);
    assert_int_equal(reports, 1);
    pool_destroy(pool);
}

static size_t free_span_count(pool_t *pool) {
    size_t n = 0;
    for (unsigned bin = 0; bin < MULCH_SPAN_BINS; bin++)
        for (block_t *s = pool->free_spans[bin]; s; s = s->next) n++;
    return n;
}

static void test_span_coalescing(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    block_t *spans[8];
    for (int i = 0; i < 8; i++) {
        spans[i] = pool_block_acquire(pool, (uint32_t)(i % 3 + 1), pool);
        assert_non_null(spans[i]);
    }
    assert_int_equal(free_span_count(pool), 1); /* the chunk's tail */
    /* release every other one: no merges among them */
    for (int i = 0; i < 8; i += 2) pool_block_release(pool, spans[i]);
    assert_int_equal(free_span_count(pool), 5);
    for (int i = 1; i < 8; i += 2) pool_block_release(pool, spans[i]);
    /* everything merged back into one free span covering the chunk */
    assert_int_equal(free_span_count(pool), 1);
    chunk_t *chunk = pool->chunks;
    assert_int_equal(chunk->free_blocks, chunk->block_count - chunk->first_block);
    block_t *head = &chunk->blocks[chunk->first_block];
    assert_int_equal(head->span_blocks, chunk->block_count - chunk->first_block);
    assert_int_equal(head[head->span_blocks - 1].head_offset, head->span_blocks - 1);
    assert_true(pool_trim(pool) > 0);
    pool_stats_t stats;
    pool_get_stats(pool, &stats);
    assert_int_equal(stats.bytes_reserved, 0);
    pool_destroy(pool);
}

static void test_block_interface(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    int owner;
    block_t *span = pool_block_acquire(pool, 2, &owner);
    assert_non_null(span);
    assert_ptr_equal(pool_block_owner(span), &owner);
    assert_int_equal(pool_block_bytes(span), 2 * pool->block_size);
    assert_int_equal(pool_block_side_bytes(span), 2 * 3 * pool->block_size / 128);
    assert_ptr_equal(pool_block_start_bits(span), pool_block_side(span) + pool->block_size / 64);
    assert_ptr_equal(pool_block_owner_bits(span), pool_block_side(span) + 2 * pool->block_size / 64);
    unsigned char *mem = pool_block_memory(span);
    assert_int_equal((uintptr_t)mem % pool->block_size, 0);
    for (size_t i = 0; i < pool_block_side_bytes(span); i++) assert_int_equal(pool_block_side(span)[i], 0);
    /* every address of the span maps back to its head */
    assert_ptr_equal(pool_block_of(mem), span);
    assert_ptr_equal(pool_block_of(mem + pool->block_size + 100), span);
    assert_ptr_equal(pool_block_of(mem + pool_block_bytes(span) - 1), span);
    /* object starts through the start bitmap */
    unsigned char *bits = pool_block_start_bits(span);
    size_t g1 = 3, g2 = 4100;
    bits[g1 / 8] |= (unsigned char)(1u << (g1 % 8));
    bits[g2 / 8] |= (unsigned char)(1u << (g2 % 8));
    assert_ptr_equal(pool_block_object_start(span, mem + g1 * 16), mem + g1 * 16);
    assert_ptr_equal(pool_block_object_start(span, mem + g1 * 16 + 15), mem + g1 * 16);
    assert_ptr_equal(pool_block_object_start(span, mem + g2 * 16 - 1), mem + g1 * 16);
    assert_ptr_equal(pool_block_object_start(span, mem + g2 * 16 + 200), mem + g2 * 16);
    assert_null(pool_block_object_start(span, mem + 16));
    pool_block_set_flag(span, BLOCK_EVACUATE);
    assert_true(pool_block_has_flag(span, BLOCK_EVACUATE));
    pool_block_clear_flag(span, BLOCK_EVACUATE);
    assert_false(pool_block_has_flag(span, BLOCK_EVACUATE));
    /* pool_free refuses collector memory */
    pool_free(pool, mem + 64);
    assert_int_equal(reports, 1);
    assert_non_null(strstr(last_what, "pool_free:"));
    pool_block_release(pool, span);
    assert_null(pool_block_of(mem));
    /* small spans: interior pointers find their cell */
    char *p = pool_alloc(pool, 100);
    block_t *small = pool_block_of(p + 50);
    assert_non_null(small);
    assert_ptr_equal(pool_block_object_start(small, p + 50), p);
    pool_free(pool, p);
    assert_null(pool_block_object_start(small, p + 50));
    pool_destroy(pool);
}

static void count_cell(void *cell, size_t size, void *ctx) {
    (void)cell;
    *(size_t *)ctx += size;
}

static void test_block_for_each_cell(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    void *p[10];
    for (int i = 0; i < 10; i++) p[i] = pool_alloc(pool, 64);
    pool_free(pool, p[3]);
    size_t bytes = 0;
    pool_block_for_each_cell(pool, pool_block_of(p[0]), count_cell, &bytes);
    assert_int_equal(bytes, 9 * 64);
    for (int i = 0; i < 10; i++) if (i != 3) pool_free(pool, p[i]);
    pool_destroy(pool);
}

static void test_corrupted_headers_reported(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    char *p = pool_alloc(pool, 48);
    block_t *b = pool_block_of(p);
    uint8_t kind = b->kind;
    b->kind = 0x77;
    pool_free(pool, p);
    assert_int_equal(reports, 1);
    assert_non_null(strstr(last_what, "corrupted block header"));
    b->kind = kind;
    uint32_t cell = b->cell_size;
    b->cell_size = cell + 16;
    pool_free(pool, p);
    assert_int_equal(reports, 2);
    assert_non_null(strstr(last_what, "corrupted block header"));
    b->cell_size = cell;
    chunk_t *chunk = chunk_of(p);
    uint64_t magic = chunk->magic;
    chunk->magic ^= 1;
    pool_free(pool, p);
    assert_int_equal(reports, 3);
    assert_non_null(strstr(last_what, "corrupted chunk header"));
    chunk->magic = magic;
    /* the word the free fast path tests instead of pool, kind and magic */
    chunk->blocks_token ^= 1;
    pool_free(pool, p);
    assert_int_equal(reports, 4);
    assert_non_null(strstr(last_what, "corrupted chunk header"));
    chunk->blocks_token ^= 1;
    pool_free(pool, p); /* now it works */
    assert_int_equal(reports, 4);
    pool_destroy(pool);
}

static void test_write_after_free_detected(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    /* The first HEAP_RECENT frees of a class stay in the thread's recent
     * cells; later ones go on their span's free list. */
    void *fillers[HEAP_RECENT];
    for (int i = 0; i < HEAP_RECENT; i++) fillers[i] = pool_alloc(pool, 32);
    char *a = pool_alloc(pool, 32);
    char *b = pool_alloc(pool, 32);
    for (int i = 0; i < HEAP_RECENT; i++) pool_free(pool, fillers[i]);
    pool_free(pool, b);
    pool_free(pool, a);            /* span free list: a -> b */
    /* stray write over a's link (through the pool's own uninstrumented
     * store: ASan would rightly stop a plain write into a freed cell) */
    cell_word_store(a, 0, UINT64_C(0x4141414141414141));
    for (int i = 0; i < HEAP_RECENT; i++) fillers[i] = pool_alloc(pool, 32); /* the recent cells */
    assert_int_equal(reports, 0);
    void *x = pool_alloc(pool, 32); /* pops a, finds the link broken */
    assert_ptr_equal(x, a);
    assert_int_equal(reports, 1);
    assert_non_null(strstr(last_what, "free list corrupted"));
    /* the pool carries on with fresh cells; nothing is handed out twice */
    void *y = pool_alloc(pool, 32);
    assert_non_null(y);
    assert_ptr_not_equal(y, x);
    pool_free(pool, x);            /* a recent cell now */
    cell_word_store(x, 0, UINT64_C(0x4242424242424242)); /* stray write over */
    cell_word_store(x, 1, UINT64_C(0x4242424242424242)); /* its free mark     */
    void *z = pool_alloc(pool, 32); /* finds x written: not handed out */
    assert_non_null(z);
    assert_ptr_not_equal(z, x);
    assert_ptr_not_equal(z, y);
    assert_int_equal(reports, 2);
    assert_non_null(strstr(last_what, "written"));
    pool_free(pool, y);
    pool_free(pool, z);
    for (int i = 0; i < HEAP_RECENT; i++) pool_free(pool, fillers[i]);
    assert_int_equal(reports, 2);
    pool_destroy(pool);
}

/* A recent cell found written is dropped and the allocation goes on
 * behind it, but pool_alloc_from with a NULL caller (the internal entry
 * the malloc drop-in uses; NULL was also pool_alloc_fast's "no fallback"
 * signal) gave NULL: an allocation that should have succeeded failed. */
static void test_recent_cell_written_null_caller(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    reports = 0;
    void *y = pool_alloc(pool, 32);
    void *x = pool_alloc(pool, 32);
    assert_non_null(x);
    pool_free(pool, x);                                  /* a recent cell */
    cell_word_store(x, 1, UINT64_C(0x4444444444444444)); /* its free mark gone */
    void *z = pool_alloc_from(pool, 32, NULL);
    assert_int_equal(reports, 1);
    assert_non_null(strstr(last_what, "written"));
    assert_non_null(z);
    assert_ptr_not_equal(z, x);
    assert_ptr_not_equal(z, y);
    pool_free(pool, y);
    pool_free(pool, z);
    assert_int_equal(reports, 1);
    pool_destroy(pool);
}

/* A double free the pool cannot see: a write after the first free erased
 * the free mark, so the second free looks like the free of a live cell and
 * the cell is on a free list twice. It is handed out once; the second
 * time it comes up its mark is gone (cleared when it was handed out), and
 * it is reported and dropped instead. Through the recent cells and
 * through a span's free list (the recent cells full first). Whatever is
 * allocated afterwards is distinct from every cell still held, and the
 * span is not released under its holder. */
static void masked_double_free_round(int through_span_list) {
    pool_t *pool = pool_create(NULL);
    reports = 0;
    enum { HELD = 200 };
    void *fillers[HEAP_RECENT];
    void *held[HELD];
    for (int i = 0; i < HEAP_RECENT; i++) fillers[i] = pool_alloc(pool, 48);
    char *victim = pool_alloc(pool, 48);
    if (through_span_list)
        for (int i = 0; i < HEAP_RECENT; i++) pool_free(pool, fillers[i]); /* recent cells full */
    pool_free(pool, victim);
    cell_word_store(victim, 1, UINT64_C(0x4343434343434343)); /* erases the free mark */
    pool_free(pool, victim);                                   /* unseen: looks live */
    assert_int_equal(reports, 0);
    if (through_span_list)
        for (int i = 0; i < HEAP_RECENT; i++) fillers[i] = pool_alloc(pool, 48); /* the recent cells */
    int victim_taken = 0;
    for (int i = 0; i < HELD; i++) {
        held[i] = pool_alloc(pool, 48);
        assert_non_null(held[i]);
        memset(held[i], i & 0xff, 48);
        if (held[i] == victim) victim_taken++;
        for (int k = 0; k < i; k++) assert_ptr_not_equal(held[k], held[i]);
        for (int k = 0; k < HEAP_RECENT; k++) assert_ptr_not_equal(fillers[k], held[i]);
    }
    assert_int_equal(victim_taken, 1);
    assert_int_equal(reports, 1);
    assert_non_null(strstr(last_what, "freed twice"));
    /* the statistics count what is held: the dropped copy's free is taken back */
    pool_stats_t st;
    pool_get_stats(pool, &st);
    assert_int_equal(st.live_allocations, HELD + HEAP_RECENT); /* and the fillers */
    for (int i = 0; i < HELD; i++)
        for (int k = 0; k < 48; k++) assert_int_equal(((unsigned char *)held[i])[k], i & 0xff);
    /* everything freed but the victim's holder: its span stays */
    block_t *span = pool_block_of(victim);
    for (int i = 0; i < HELD; i++)
        if (held[i] != victim) pool_free(pool, held[i]);
    for (int i = 0; i < HEAP_RECENT; i++) pool_free(pool, fillers[i]);
    (void)pool_trim(pool);
    assert_true(span->kind == BLOCK_SMALL);
    assert_int_equal(pool_usable_size(pool, victim), 48);
    pool_free(pool, victim);
    assert_int_equal(reports, 1);
    pool_destroy(pool);
}

static void test_masked_double_free_not_handed_out_twice(void **state) {
    (void)state;
    masked_double_free_round(0);
    masked_double_free_round(1);
}

/* heap_recent_flush (pool_trim, thread exit) moves the recent cells to
 * their spans' free lists. A recent cell whose free mark is gone was
 * written after its free, or is recent twice (a masked double free): the
 * flush must not give it a fresh mark (it would be handed out later,
 * unreported) nor push it twice (its free counted twice: the span is
 * released under another cell's holder). */
static void test_recent_flush_checks_free_marks(void **state) {
    (void)state;
    for (int twice = 0; twice <= 1; twice++) {
        pool_t *pool = pool_create(NULL);
        reports = 0;
        enum { HELD = 200 };
        void *held[HELD];
        unsigned char *keeper = pool_alloc(pool, 48);
        char *victim = pool_alloc(pool, 48);
        assert_ptr_equal(pool_block_of(keeper), pool_block_of(victim));
        memset(keeper, 0x5a, 48);
        pool_free(pool, victim); /* a recent cell */
        cell_word_store(victim, 1, UINT64_C(0x4444444444444444)); /* erases the free mark */
        if (twice) pool_free(pool, victim); /* unseen: recent twice */
        assert_int_equal(reports, 0);
        (void)pool_trim(pool); /* flushes the recent cells */
        block_t *span = pool_block_of(keeper);
        assert_true(span->kind == BLOCK_SMALL);
        assert_int_equal(pool_usable_size(pool, keeper), 48);
        for (int i = 0; i < HELD; i++) {
            held[i] = pool_alloc(pool, 48);
            assert_non_null(held[i]);
            assert_ptr_not_equal(held[i], keeper);
            if (!twice) assert_ptr_not_equal(held[i], victim); /* written: never handed out */
            for (int k = 0; k < i; k++) assert_ptr_not_equal(held[k], held[i]);
            memset(held[i], i & 0xff, 48);
        }
        for (int k = 0; k < 48; k++) assert_int_equal(keeper[k], 0x5a);
        assert_int_equal(reports, 1);
        for (int i = 0; i < HELD; i++) pool_free(pool, held[i]);
        pool_free(pool, keeper);
        assert_int_equal(reports, 1);
        pool_destroy(pool);
    }
}

/* The masked double free whose recent copy is handed out first: the
 * span's count is one low while the other copy waits on its list. Before
 * span memory goes back, the pool checks the free marks (audit.c), so
 *   - round 0: a trim that finds the span's count at 0 while the victim is
 *     held must not release the span under it;
 *   - round 1: a trim whose recent-cell flush put the victim on the list a
 *     second time must not release the page of a live neighbour counted
 *     free in its stead.
 * Either way one report; the held cells keep their contents and stay
 * distinct from everything allocated afterwards. */
static void masked_double_free_before_release(int neighbour_held) {
    pool_t *pool = pool_create(NULL);
    reports = 0;
    enum { HELD = 200 };
    void *fillers[HEAP_RECENT];
    void *held[HELD];
    for (int i = 0; i < HEAP_RECENT; i++) fillers[i] = pool_alloc(pool, 48);
    unsigned char *victim = pool_alloc(pool, 48);
    unsigned char *neighbour = pool_alloc(pool, 48);
    block_t *span = pool_block_of(victim);
    assert_ptr_equal(pool_block_of(neighbour), span);
    memset(neighbour, 0x6b, 48);
    for (int i = 0; i < HEAP_RECENT; i++) pool_free(pool, fillers[i]); /* recent cells full */
    pool_free(pool, victim);                                            /* onto the span's list */
    cell_word_store(victim, 1, UINT64_C(0x4545454545454545));           /* erases the free mark */
    fillers[0] = pool_alloc(pool, 48);                                  /* room in the recent cells */
    pool_free(pool, victim);                                            /* unseen: a recent cell */
    assert_int_equal(reports, 0);
    unsigned char *holder = NULL;
    if (!neighbour_held) {
        holder = pool_alloc(pool, 48); /* the recent copy */
        assert_ptr_equal(holder, victim);
        memset(holder, 0x7c, 48);
        pool_free(pool, neighbour);
    }
    pool_free(pool, fillers[0]);
    (void)pool_trim(pool); /* flushes the recent cells, releases empty spans and free pages */
    assert_int_equal(reports, 1);
    assert_true(span->kind == BLOCK_SMALL);
    unsigned char *live = neighbour_held ? neighbour : holder;
    int pattern = neighbour_held ? 0x6b : 0x7c;
    assert_int_equal(pool_usable_size(pool, live), 48);
    for (int k = 0; k < 48; k++) assert_int_equal(live[k], pattern);
    int victim_taken = 0;
    for (int i = 0; i < HELD; i++) {
        held[i] = pool_alloc(pool, 48);
        assert_non_null(held[i]);
        assert_ptr_not_equal(held[i], live);
        if (held[i] == victim) victim_taken++;
        for (int k = 0; k < i; k++) assert_ptr_not_equal(held[k], held[i]);
        memset(held[i], i & 0xff, 48);
    }
    assert_true(victim_taken <= 1);
    for (int k = 0; k < 48; k++) assert_int_equal(live[k], pattern);
    for (int i = 0; i < HELD; i++) pool_free(pool, held[i]);
    pool_free(pool, live);
    assert_true(reports <= 2); /* (the list copy may still come up, dropped) */
    int before = reports;
    (void)pool_trim(pool);
    pool_stats_t st;
    pool_get_stats(pool, &st);
    assert_int_equal(reports, before);
    pool_destroy(pool);
}

static void test_masked_double_free_not_released_under_holder(void **state) {
    (void)state;
    masked_double_free_before_release(0);
    masked_double_free_before_release(1);
}

/* Each OS mapping in turn fails; every call returns NULL or works, nothing
 * is reported (OOM is not misuse), and the pool works afterwards. */
/* Writes the first and the last byte of [p, p + n): the object is mapped
 * and writable at both ends. A memset of every byte (megabytes per pool)
 * took ThreadSanitizer's build 18 s over the sweep, every page faulting in
 * the object and in the sanitizer's shadow, for nothing the sweep checks. */
static void touch_ends(void *p, size_t n) {
    unsigned char *bytes = p;
    bytes[0] = 0x5a;
    bytes[n - 1] = 0x5a;
}

static void test_fault_injection_sweep(void **state) {
    (void)state;
    for (uint64_t n = 1; n <= 40; n++) {
        pool_options_t opts = { 0 };
        opts.track_leaks = (int)(n & 1);
        pool_t *pool = pool_create(&opts);
        if (pool == NULL) continue;
        os_fail_after(n);
        void *keep[64];
        int kept = 0;
        static const size_t sizes[] = { 16, 100, 4000, 20000, 100000, 300000, 5000000 };
        for (int round = 0; round < 4; round++) {
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                void *p = pool_alloc(pool, sizes[s]);
                if (p) {
                    touch_ends(p, sizes[s]);
                    if (kept < 64) keep[kept++] = p;
                    else pool_free(pool, p);
                }
            }
            void *r = pool_realloc(pool, kept ? keep[0] : NULL, 123456);
            if (r && kept) keep[0] = r;
            else if (r) keep[kept++] = r;
        }
        os_fail_after(0);
        void *q = pool_alloc(pool, 1000);
        assert_non_null(q);
        pool_free(pool, q);
        for (int i = 0; i < kept; i++) pool_free(pool, keep[i]);
        pool_stats_t stats;
        pool_get_stats(pool, &stats);
        assert_int_equal(stats.live_allocations, 0);
        pool_destroy(pool);
        assert_int_equal(reports, 0);
    }
}

int main(void) {
    /* These tests pin the fast paths' cell order (recent cells, free-list
     * pops). Under valgrind a pool tracks sites and skips those paths
     * (pool/tool.h), so keep its client requests off here; the API tests
     * run with them on. */
    setenv("MULCH_VALGRIND", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_size_class_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_class_waste_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_class_nonzero_agrees, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bits_count64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunk_map_foreign_addresses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_span_coalescing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_interface, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_for_each_cell, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupted_headers_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_after_free_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_masked_double_free_not_handed_out_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recent_flush_checks_free_marks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recent_cells_counted_when_span_rebuilt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recent_cell_written_null_caller, setup, teardown),
        cmocka_unit_test_setup_teardown(test_masked_double_free_not_released_under_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_injection_sweep, setup, teardown),
        cmocka_unit_test(test_env_switch_words),
    };
    return cmocka_run_group_tests_name("pool_internals", tests, NULL, NULL);
}
