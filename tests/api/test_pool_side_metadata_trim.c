/* test_pool_side_metadata_trim.c — pool_trim gives back the collector's
 * side metadata of free blocks (session 23 review; docs/api.md pool_trim,
 * pool_stats_t; docs/architecture.md "Accounting").
 *
 * The collector's bitmaps (and cards) sit in the header pages of each
 * blocks chunk, 1.5 KiB (and 128 bytes) per 64 KiB block. A GC heap on a
 * pool fills CHUNKS chunks, keeps one object per chunk (so the chunks stay
 * mapped), drops the rest, collects and trims. Before the fix the side
 * pages of the free blocks stayed resident and uncounted: each kept
 * chunk's 128 KiB header held ~27 resident pages after the trim, and
 * bytes_reserved fell by the free blocks only. Now the header keeps its
 * descriptor pages and the live span's metadata (a handful of pages), and
 * bytes_reserved falls by the side pages too. The blocks are then taken
 * again and the heap checked (fresh spans see zeroed bitmaps), in plain
 * and generational mode (cards written before the trim). A third run
 * lets the pool's own small spans take the blocks the collector left
 * before the trim, and checks the accounting still comes back to 0; a
 * fourth trims while two heaps on the pool allocate and collect. The
 * chunks' resident pages never exceed bytes_reserved: generational card
 * pages are counted as the side pages are (session 24), and trim's return
 * value includes them.
 *
 * Relies on the default geometry (64 KiB blocks, 4 MiB chunks aligned to
 * their size, header in the first two blocks). Deterministic; the seed is
 * printed as in every test (MULCH_TEST_SEED). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6370733233)
#define MULCH_TEST_GC_OBJECTS 1
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mulch/gc.h>
#include <mulch/pool.h>

#include "mulch_test.h"

#define REGION       ((uintptr_t)4 << 20)
#define HEADER_BYTES ((size_t)128 << 10) /* two 64 KiB blocks */
#define PAGE         ((size_t)4096)
#define MAX_CHUNKS   64u
/* Header pages a kept chunk may still have resident after the trim: the
 * descriptors (3), the live span's side pages (2 at most), its card page
 * and the page side and cards share. Before the fix: 27 or so. */
#define HEADER_PAGES_KEPT 8u
/* Side pages per chunk that the trim must give back at least (of 24:
 * the live span keeps 2, the first shares the descriptors' page). */
#define SIDE_PAGES_FREED 16u

static size_t resident_pages(uintptr_t start, size_t bytes)
{
    unsigned char vec[HEADER_BYTES / PAGE];
    if (mincore((void *)start, bytes, vec) != 0) {
        T_FAIL("mincore(%#lx) failed", (unsigned long)start);
        return 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < bytes / PAGE; i++) n += vec[i] & 1u;
    return n;
}

/* Resident pages of the whole chunks the objects were seen in. */
static size_t resident_region_pages(const uintptr_t *regions, size_t n)
{
    size_t pages = 0;
    for (size_t k = 0; k < n; k++) {
        static unsigned char vec[REGION / PAGE];
        if (mincore((void *)regions[k], REGION, vec) != 0) {
            T_FAIL("mincore(%#lx) failed", (unsigned long)regions[k]);
            return 0;
        }
        for (size_t i = 0; i < REGION / PAGE; i++) pages += vec[i] & 1u;
    }
    return pages;
}

static size_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static pool_stats_t pool_stats(pool_t *pool)
{
    pool_stats_t s;
    pool_get_stats(pool, &s);
    return s;
}

/* small_reuse: before the trim, the pool's own allocations take the
 * blocks the collector left (their side pages stop counting) and give
 * them back. */
static void run(bool generational, bool small_reuse)
{
    size_t chunks = g_quick ? 8 : 16;
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.pool = pool;
    o.compaction = GC_COMPACT_NEVER; /* the kept objects stay in their chunks */
    o.generational = generational;
    o.markers = 1;
    o.initial_heap = chunks * REGION * 2; /* no collection while filling */
    gc_heap_t *heap = gc_heap_create(&o);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);

    void *keep[MAX_CHUNKS] = { 0 };
    uintptr_t regions[MAX_CHUNKS] = { 0 };
    size_t kept = 0;
    gc_root_add_range(heap, keep, MAX_CHUNKS);
    /* 16 KiB objects, four per block, until `chunks` chunks are seen */
    for (uint64_t id = 1; kept < chunks && id < 100000; id++) {
        tobj_t *obj = mk(t, &T_PLAIN, id, 2040);
        uintptr_t region = (uintptr_t)obj & ~(REGION - 1);
        bool seen = false;
        for (size_t k = 0; k < kept; k++) seen = seen || regions[k] == region;
        if (!seen) {
            regions[kept] = region;
            keep[kept++] = obj;
        }
        /* generational: a write dirties the object's card (a pointer to
         * itself keeps nothing alive) */
        if (generational) set_slot(t, obj, 0, obj);
    }
    EXPECT_EQ(kept, chunks);
    gc_collect(t);
    gc_collect(t);

    if (small_reuse) {
        size_t n = (size_t)chunks << 10;
        void **cells = malloc(n * sizeof *cells);
        EXPECT_NONNULL(cells);
        for (size_t i = 0; i < n; i++) {
            cells[i] = pool_alloc(pool, 1000 + i % 3000);
            EXPECT_NONNULL(cells[i]);
            memset(cells[i], 0xA5, 1000);
        }
        for (size_t i = 0; i < n; i++) pool_free(pool, cells[i]);
        free(cells);
    }
    size_t before_pages = 0;
    for (size_t k = 0; k < kept; k++) before_pages += resident_pages(regions[k], HEADER_BYTES);
    pool_stats_t st0 = pool_stats(pool);
    /* Every resident page of the chunks is counted: the card pages that
     * generational writes dirtied too (before the fix they were not, and
     * the chunks held ~2 resident pages each beyond bytes_reserved). */
    size_t resident0 = resident_region_pages(regions, kept) * PAGE;
    if (!MT_ON_VALGRIND() && resident0 > st0.bytes_reserved)
        T_FAIL("the chunks hold %zu bytes resident, bytes_reserved says %zu (%zu pages uncounted)", resident0,
               st0.bytes_reserved, (resident0 - st0.bytes_reserved) / PAGE);
    size_t rss0 = rss_bytes();
    size_t released = pool_trim(pool);
    size_t rss1 = rss_bytes();
    pool_stats_t st1 = pool_stats(pool);
    size_t after_pages = 0, worst = 0;
    for (size_t k = 0; k < kept; k++) {
        size_t n = resident_pages(regions[k], HEADER_BYTES);
        after_pages += n;
        if (n > worst) worst = n;
    }
    size_t reserved_drop = st0.bytes_reserved - st1.bytes_reserved;
    print_message("  %s%s: %zu chunks; header pages resident %zu -> %zu (worst %zu); reserved %zu -> %zu "
                  "(free blocks %zu, trim says %zu); RSS %zu -> %zu KiB\n",
                  generational ? "generational" : "plain", small_reuse ? ", small reuse" : "", kept, before_pages, after_pages, worst,
                  st0.bytes_reserved, st1.bytes_reserved, st0.free_block_bytes, released, rss0 >> 10, rss1 >> 10);
    if (worst > HEADER_PAGES_KEPT)
        T_FAIL("a kept chunk's header has %zu resident pages after pool_trim (at most %u expected)", worst,
               HEADER_PAGES_KEPT);
    EXPECT_EQ(released, reserved_drop);
    if (!small_reuse && reserved_drop < st0.free_block_bytes + kept * SIDE_PAGES_FREED * PAGE)
        T_FAIL("bytes_reserved fell by %zu: the free blocks' %zu and not the side metadata (>= %zu more)",
               reserved_drop, st0.free_block_bytes, kept * SIDE_PAGES_FREED * PAGE);
    /* The memory really left: RSS fell by what bytes_reserved did, the
     * side pages included (the free blocks were all written). */
    if (!small_reuse && !MT_SANITIZED && !MT_ON_VALGRIND() && rss0 != 0 && rss0 - rss1 + (1u << 20) < reserved_drop)
        T_FAIL("RSS fell by %zu, bytes_reserved by %zu", rss0 - rss1, reserved_drop);

    /* The blocks come back with their metadata zeroed: fill them again,
     * keep every other object, collect, check. */
    void *again[64] = { 0 };
    gc_root_add_range(heap, again, 64);
    for (uint64_t id = 1; id <= chunks * 200; id++) {
        tobj_t *obj = mk(t, &T_PLAIN, 1000000 + id, 2040);
        if (id % 2 == 0) again[id / 2 % 64] = obj;
        if (generational && keep[id % kept] != NULL) set_slot(t, keep[id % kept], 1, obj);
    }
    gc_collect(t);
    EXPECT_VERIFY(heap);
    for (size_t k = 0; k < kept; k++) EXPECT_NONNULL(keep[k]);
    gc_root_remove(heap, again);
    gc_root_remove(heap, keep);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    pool_trim(pool);
    pool_stats_t end = pool_stats(pool);
    EXPECT_EQ(end.bytes_reserved, 0);
    pool_destroy(pool);
}

static void test_trim_returns_side_metadata(void **state)
{
    (void)state;
    TEST_START();
    run(false, false);
}

static void test_trim_returns_side_metadata_generational(void **state)
{
    (void)state;
    TEST_START();
    run(true, false);
}

static void test_small_spans_reuse_collector_blocks(void **state)
{
    (void)state;
    TEST_START();
    run(false, true);
}

/* Two GC heaps share the pool, each on its own thread, allocating and
 * collecting, while a third thread trims it: trim reads the kinds of
 * blocks around the free spans it decommits and gives back their
 * metadata pages while the heaps write the bitmaps of their own spans
 * next to them (ThreadSanitizer and the heaps' verify watch). */
typedef struct {
    pool_t *pool;
    uint64_t seed;
    atomic_int *running;
    unsigned problems;
} share_arg_t;

static void *share_worker(void *p)
{
    share_arg_t *a = p;
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.pool = a->pool;
    o.markers = 1;
    o.generational = (int)(a->seed & 1);
    gc_heap_t *heap = gc_heap_create(&o);
    gc_thread_t *t = heap ? gc_thread_attach(heap) : NULL;
    if (t == NULL) {
        a->problems++;
        atomic_fetch_sub(a->running, 1);
        return NULL;
    }
    rng_t rng = { a->seed };
    void *keep[16] = { 0 };
    gc_root_add_range(heap, keep, 16);
    size_t rounds = g_quick ? 4 : 12;
    for (size_t r = 0; r < rounds; r++) {
        for (uint64_t i = 0; i < 1500; i++) {
            tobj_t *obj = mk(t, &T_PLAIN, r * 10000 + i, (size_t)rng_below(&rng, 3000));
            if (rng_below(&rng, 64) == 0) keep[rng_below(&rng, 16)] = obj;
        }
        gc_collect(t);
        if (gc_verify(heap) != 0) a->problems++;
    }
    gc_root_remove(heap, keep);
    gc_thread_detach(t);
    gc_heap_destroy(heap);
    atomic_fetch_sub(a->running, 1);
    return NULL;
}

static void test_trim_beside_two_heaps(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    atomic_int running = 2;
    share_arg_t args[2] = { { pool, g_seed, &running, 0 }, { pool, mix64(g_seed), &running, 0 } };
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) EXPECT_EQ(pthread_create(&threads[i], NULL, share_worker, &args[i]), 0);
    size_t trims = 0;
    while (atomic_load(&running) > 0) {
        pool_trim(pool);
        trims++;
        struct timespec nap = { 0, 200000 };
        nanosleep(&nap, NULL);
    }
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    EXPECT_EQ(args[0].problems + args[1].problems, 0);
    pool_trim(pool);
    pool_stats_t end = pool_stats(pool);
    print_message("  %zu trims; reserved at the end %zu\n", trims, end.bytes_reserved);
    EXPECT_EQ(end.bytes_reserved, 0);
    pool_destroy(pool);
}

int main(void)
{
    mt_init("test_pool_side_metadata_trim");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_trim_returns_side_metadata),
        T(test_trim_returns_side_metadata_generational),
        T(test_small_spans_reuse_collector_blocks),
        T(test_trim_beside_two_heaps),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
