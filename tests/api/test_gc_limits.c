/* test_gc_limits.c — black-box tests of the heap policy and allocation misuse
 * (<mulch/gc.h>; docs: shared/API.md "GC" and "Errors and misuse"):
 * max_heap is honoured (gc_alloc returns NULL after a full collection, which
 * is not misuse, heap_bytes never passes max_heap, the heap stays usable and
 * allocation succeeds again once memory is dropped); requests that can never
 * fit return NULL quietly, without collecting; gc_alloc with size 0 or a NULL type and gc_pin of
 * a foreign pointer are misuse: reported once, NULL / ignored.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. MULCH_TEST_QUICK=1
 * (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630b03)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include "mulch_test.h"

/* Exactly one report since `before`, its text starting with `prefix`. */
#define EXPECT_ONE_REPORT_TEXT(before, prefix) \
    do { \
        unsigned long n_ = rec_count() - (before); \
        char w_[256]; const void *p_; \
        rec_last(w_, sizeof w_, &p_); \
        if (n_ != 1) \
            T_FAIL("expected exactly one error-handler call, got %lu (last: \"%s\" ptr %p)", n_, \
                   w_, p_); \
        else if (strncmp(w_, (prefix), strlen(prefix)) != 0) \
            T_FAIL("report \"%s\" does not start with \"%s\"", w_, (prefix)); \
    } while (0)

static void expect_last_ptr(const void *want)
{
    char w[256];
    const void *got;
    rec_last(w, sizeof w, &got);
    if (got != want) T_FAIL("report \"%s\" names ptr %p, the caller passed %p", w, got, want);
}

static void expect_heap_within(gc_heap_t *h, size_t max, const char *when, size_t i)
{
    gc_stats_t s = stats_of(h);
    if (s.heap_bytes > max)
        T_FAIL("heap_bytes %zu > max_heap %zu (%s, step %zu)", s.heap_bytes, max, when, i);
}

/* Fills a max_heap-limited heap with rooted objects of `size` bytes until
 * gc_alloc returns NULL; returns how many were allocated. */
static size_t fill_until_null(gc_heap_t *h, gc_thread_t *t, void **slots, size_t nslots,
                              size_t size, size_t max, uint64_t id0, int *hit_null)
{
    size_t got = 0;
    *hit_null = 0;
    for (size_t i = 0; i < nslots; i++) {
        if (slots[i]) continue;
        size_t nw = (size - sizeof(tobj_t)) / 8;
        tobj_t *o = gc_alloc(t, &T_PLAIN, size);
        expect_heap_within(h, max, "filling", got);
        if (!o) {
            *hit_null = 1;
            break;
        }
        o->magic = OBJ_MAGIC;
        o->id = id0 + i;
        o->nwords = nw;
        for (size_t k = 0; k < nw; k++) o->words[k] = payload_word(o->id, k);
        slots[i] = o;
        got++;
    }
    return got;
}

static void max_heap_case(size_t max, size_t size, int compaction)
{
    fin_reset();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(max / 8, max, compaction);
    gc_thread_t *t = gc_thread_attach(h);
    const size_t nslots = max / size + 16;
    void **slots = calloc(nslots, sizeof *slots);
    EXPECT_NONNULL(slots);
    gc_root_add_range(h, slots, nslots);

    int hit = 0;
    size_t n1 = fill_until_null(h, t, slots, nslots, size, max, 0, &hit);
    if (!hit)
        T_FAIL("max_heap %zu: %zu objects of %zu bytes (%zu bytes) allocated without a NULL", max,
               n1, size, n1 * size);
    EXPECT_LE(n1 * size, max);
    EXPECT_GE(n1 * size, max / 4);     /* the limit is not absurdly conservative */
    EXPECT_NO_REPORTS(r0);             /* running out is not misuse */
    gc_stats_t s = stats_of(h);
    print_message("  max_heap %zu, %zu-byte objects: %zu fit (%.0f%%), heap_bytes %zu, %ju collections\n",
                  max, size, n1, 100.0 * (double)(n1 * size) / (double)max, s.heap_bytes,
                  (uintmax_t)s.collections);
    EXPECT_GE(s.collections, 1);       /* a full collection before giving up */

    /* Still NULL on a second try, still no report, heap still sound. */
    void *again = gc_alloc(t, &T_PLAIN, size);
    EXPECT_NULL(again);
    EXPECT_NO_REPORTS(r0);
    EXPECT_VERIFY(h);
    /* A request that never fits is NULL too. */
    EXPECT_NULL(gc_alloc(t, &T_RAW, max + 1));
    EXPECT_NO_REPORTS(r0);

    /* Every kept object intact. */
    for (size_t i = 0; i < nslots; i++)
        if (slots[i]) EXPECT_OBJ(slots[i], i);

    /* Drop every other one: allocation works again. */
    size_t dropped = 0;
    for (size_t i = 0; i < nslots; i += 2)
        if (slots[i]) {
            slots[i] = NULL;
            dropped++;
        }
    size_t n2 = fill_until_null(h, t, slots, nslots, size, max, 1000000, &hit);
    print_message("  after dropping %zu: %zu more fit\n", dropped, n2);
    if (n2 == 0) T_FAIL("nothing could be allocated after dropping %zu of %zu objects", dropped, n1);
    EXPECT_GE(n2, dropped / 2);
    EXPECT_NO_REPORTS(r0);
    for (size_t i = 0; i < nslots; i++)
        if (slots[i]) EXPECT_OBJ(slots[i], (i < n1 && i % 2) ? i : 1000000 + i);
    /* Fresh objects are zeroed even in reused memory. */
    for (size_t i = 0; i < nslots; i++) slots[i] = NULL;
    gc_collect(t);
    for (int k = 0; k < 8; k++) {
        unsigned char *p = gc_alloc(t, &T_RAW, size);
        EXPECT_NONNULL(p);
        p = launder(p);
        for (size_t b = 0; b < size; b++)
            if (p[b]) T_FAIL("reused object %p not zeroed at byte %zu", (void *)p, b);
    }
    expect_heap_within(h, max, "end", 0);
    gc_root_remove(h, slots);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    free(slots);
    EXPECT_NO_REPORTS(r0);
}

static void test_gc_max_heap_small_objects(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        max_heap_case(scaled(16, 8) * MiB, 1 * KiB, k_modes[m]);
        max_heap_case(8 * MiB, 96, k_modes[m]);
    }
}

static void test_gc_max_heap_large_objects(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        max_heap_case(16 * MiB, 300 * KiB, k_modes[m]);
        max_heap_case(32 * MiB, 1 * MiB + 8, k_modes[m]);
    }
}

/* Random sizes and random drops against a limit: heap_bytes never exceeds it,
 * a NULL comes only when a full collection cannot make room. */
static void test_gc_max_heap_random(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    unsigned long r0 = rec_count();
    const size_t max = 24 * MiB;
    gc_heap_t *h = heap_new(0, max, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    enum { N = 4096 };
    void **slots = calloc(N, sizeof *slots);
    size_t *sizes = calloc(N, sizeof *sizes);
    EXPECT_NONNULL(slots);
    EXPECT_NONNULL(sizes);
    gc_root_add_range(h, slots, N);
    size_t nulls = 0, live = 0;
    const size_t steps = scaled(40000, 8000);
    for (size_t s = 0; s < steps; s++) {
        size_t i = (size_t)rng_below(&r, N);
        if (slots[i] && rng_below(&r, 3) == 0) {
            live -= sizes[i];
            slots[i] = NULL;
            continue;
        }
        size_t sz;
        switch (rng_below(&r, 8)) {
        case 0: sz = 64 * KiB + (size_t)rng_below(&r, 2 * MiB); break;
        case 1: sz = 8 * KiB + (size_t)rng_below(&r, 56 * KiB); break;
        default: sz = 16 + (size_t)rng_below(&r, 2000); break;
        }
        unsigned char *p = gc_alloc(t, &T_RAW, sz);
        expect_heap_within(h, max, "random", s);
        if (!p) {
            nulls++;
            /* Only legitimate when the live data plus the request is a good
             * part of the limit. */
            if (live + sz < max / 4)
                T_FAIL("gc_alloc(%zu) NULL with only %zu bytes live under max_heap %zu", sz, live,
                       max);
            continue;
        }
        if (slots[i]) live -= sizes[i];
        p[0] = (unsigned char)i;
        p[sz - 1] = (unsigned char)(i >> 8);
        slots[i] = p;
        sizes[i] = sz;
        live += sz;
    }
    for (size_t i = 0; i < N; i++)
        if (slots[i]) {
            const unsigned char *p = launder(slots[i]);
            if (p[0] != (unsigned char)i || p[sizes[i] - 1] != (unsigned char)(i >> 8))
                T_FAIL("object %zu (%zu bytes) damaged", i, sizes[i]);
        }
    gc_stats_t st = stats_of(h);
    print_message("  %zu steps, %zu NULLs, live %zu, heap_bytes %zu, %ju collections\n", steps, nulls,
                  live, st.heap_bytes, (uintmax_t)st.collections);
    EXPECT_NO_REPORTS(r0);
    gc_root_remove(h, slots);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    free(slots);
    free(sizes);
    EXPECT_NO_REPORTS(r0);
}

/* Dead finalizable objects are kept for their finalizers for one collection;
 * after a few explicit collections their memory is available again. */
static void test_gc_max_heap_finalizable_garbage(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    unsigned long r0 = rec_count();
    const size_t max = 8 * MiB, size = 1 * KiB;
    gc_heap_t *h = heap_new(0, max, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    const size_t nslots = max / size + 16;
    void **slots = calloc(nslots, sizeof *slots);
    EXPECT_NONNULL(slots);
    gc_root_add_range(h, slots, nslots);
    size_t n1 = 0;
    for (size_t i = 0; i < nslots; i++) {
        tobj_t *o = gc_alloc(t, &T_FIN, size);
        expect_heap_within(h, max, "filling", i);
        if (!o) break;
        o->magic = OBJ_MAGIC;
        o->id = i;
        o->nwords = 0;
        slots[i] = o;
        n1++;
    }
    EXPECT_LT(n1, nslots);
    EXPECT_NO_REPORTS(r0);
    memset(slots, 0, nslots * sizeof *slots);
    gc_collect(t);
    gc_collect(t);
    gc_collect(t);
    EXPECT_EQ(atomic_load(&g_fin_total), n1);
    size_t n2 = 0;
    for (size_t i = 0; i < nslots; i++) {
        void *o = gc_alloc(t, &T_PLAIN, size);
        expect_heap_within(h, max, "refilling", i);
        if (!o) break;
        slots[i] = o;
        n2++;
    }
    print_message("  %zu finalizable fit, then %zu plain after they died\n", n1, n2);
    EXPECT_GE(n2 + n2 / 8, n1);        /* about as many as before */
    EXPECT_NO_REPORTS(r0);
    gc_root_remove(h, slots);
    EXPECT_VERIFY(h);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
    free(slots);
    EXPECT_NO_REPORTS(r0);
}

/* A NULL must mean that a full collection cannot make room, *now*. The
 * retry after gc_alloc's full collection used to give up at once, though
 * memory had been taken again since that collection ended: by other
 * threads' allocations (four threads allocating only garbage 300 KiB
 * objects under a 2 MiB max_heap got a few NULLs per 80000), or, as here
 * deterministically, by a finalizer it ran, which filled the heap with
 * garbage. The finalizer allocates in its own size class (its objects
 * must not land in the cells the caller then asks for) until no new span
 * fits under max_heap. */
enum { REFILL_MAX = 2 * 1024 * 1024, REFILL_LARGE = 300 * 1024 };
static gc_heap_t *g_refill_heap;
static size_t g_refill_size;          /* what the finalizer allocates */
static atomic_uint g_refill_runs;

static void refill_fin(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_refill_runs, 1);
    gc_thread_t *t = gc_thread_current(g_refill_heap);
    if (t == NULL) {
        AFAIL("finalizer on a thread that is not attached");
        return;
    }
    /* 64 KiB blocks: stop while one more span still fits */
    for (int n = 0; n < 100000; n++) {
        gc_stats_t s;
        gc_get_stats(g_refill_heap, &s);
        size_t need = g_refill_size >= 256 * KiB ? 320 * KiB : 64 * KiB;
        if (s.heap_bytes + need > REFILL_MAX) return;
        if (gc_alloc(t, &T_RAW, g_refill_size) == NULL) {
            AFAIL("finalizer's gc_alloc(%zu) NULL with heap_bytes %zu", g_refill_size, s.heap_bytes);
            return;
        }
    }
}

static const gc_type_t T_REFILL = { "test.refill", NULL, refill_fin };

static void refill_case(size_t size, size_t refill_size)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.initial_heap = 64 * MiB; /* no collection but at max_heap */
    o.max_heap = REFILL_MAX;
    gc_heap_t *h = gc_heap_create(&o);
    EXPECT_NONNULL(h);
    gc_thread_t *t = gc_thread_attach(h);
    g_refill_heap = h;
    g_refill_size = refill_size;
    atomic_store(&g_refill_runs, 0);
    EXPECT_NONNULL(gc_alloc(t, &T_REFILL, 64)); /* garbage, finalized at the first collection */
    size_t n = 3 * REFILL_MAX / size;        /* garbage: about three heaps' worth */
    for (size_t i = 0; i < n; i++) {
        void *p = gc_alloc(t, &T_RAW, size);
        if (p == NULL)
            T_FAIL("gc_alloc(%zu) #%zu NULL, though nothing is live (finalizer runs: %u, %ju collections)", size,
                   i, atomic_load(&g_refill_runs), (uintmax_t)stats_of(h).collections);
        expect_heap_within(h, REFILL_MAX, "refill", i);
    }
    EXPECT_EQ(atomic_load(&g_refill_runs), 1);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static void test_gc_max_heap_null_only_when_full_now(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    refill_case(REFILL_LARGE, REFILL_LARGE); /* large objects: spans of their own */
    refill_case(1000, 2000);                 /* class spans: no available one left */
    EXPECT_NO_REPORTS(r0);
}

/* Requests that can never fit: NULL, not misuse, heap unharmed. */
static void test_gc_alloc_impossible_sizes(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    for (int limited = 0; limited < 2; limited++) {
        gc_heap_t *h = heap_new(0, limited ? 4 * MiB : 0, GC_COMPACT_AUTO);
        gc_thread_t *t = gc_thread_attach(h);
        void *keep = NULL;
        gc_root_add(h, &keep);
        keep = mk(t, &T_PLAIN, 7, 9);
        const size_t sizes[] = { SIZE_MAX,          SIZE_MAX - 7,      SIZE_MAX - 8,
                                 SIZE_MAX - 4096,   SIZE_MAX / 2,      SIZE_MAX / 2 + 1,
                                 (size_t)1 << 62,   (size_t)1 << 56,   (size_t)1 << 52,
                                 (size_t)1 << 48 };
        size_t bad = 0;
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            void *p = gc_alloc(t, &T_RAW, sizes[k]);   /* never written to */
            if (p) {
                print_error("  gc_alloc(%zu = %#zx) = %p (gc_size_of %zu), expected NULL "
                            "(max_heap %s)\n", sizes[k], sizes[k], p, gc_size_of(p),
                            limited ? "4 MiB" : "none");
                bad++;
            }
        }
        if (bad) T_FAIL("%zu impossible request(s) were granted", bad);
        EXPECT_NO_REPORTS(r0);
        if (limited) {
            /* No collection for them either: no collection can make room
             * for more than max_heap (each one cost a full collection,
             * and up to nine while other threads take spans) */
            uint64_t before = stats_of(h).collections;
            EXPECT_NULL(gc_alloc(t, &T_RAW, 4 * MiB + 1));
            EXPECT_NULL(gc_alloc(t, &T_RAW, 64 * MiB));
            EXPECT_EQ(stats_of(h).collections, before);
            EXPECT_NO_REPORTS(r0);
            /* a heap capped below one block: no span of any class fits
             * (gc_heap_create reports that cap once, since session 37;
             * the NULLs are out of memory, not reported) */
            gc_heap_t *tiny = heap_new(0, 16 * KiB, GC_COMPACT_AUTO);
            EXPECT_EQ(rec_count(), r0 + 1);
            unsigned long r_tiny = rec_count();
            gc_thread_t *tt = gc_thread_attach(tiny);
            EXPECT_NULL(gc_alloc(tt, &T_RAW, 100));
            EXPECT_NULL(gc_alloc(tt, &T_PLAIN, 1000));
            EXPECT_EQ(stats_of(tiny).collections, 0);
            gc_thread_detach(tt);
            gc_heap_destroy(tiny);
            EXPECT_NO_REPORTS(r_tiny);
            r0 = rec_count();
            expect_heap_within(h, 4 * MiB, "after impossible requests", 0);
            /* Half the limit in one object still works. */
            void *half = gc_alloc(t, &T_RAW, 1 * MiB);
            EXPECT_NONNULL(half);
        }
        EXPECT_OBJ(keep, 7);
        void *small = gc_alloc(t, &T_RAW, 100);
        EXPECT_NONNULL(small);
        gc_collect(t);
        EXPECT_OBJ(keep, 7);
        EXPECT_VERIFY(h);
        gc_root_remove(h, &keep);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* Misuse                                                                    */

static void test_gc_alloc_misuse(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = NULL;
    gc_root_add(h, &keep);
    keep = mk(t, &T_FIN, 1, 4);

    unsigned long r0 = rec_count();
    void *p = gc_alloc(t, &T_PLAIN, 0);
    EXPECT_NULL(p);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_alloc");

    r0 = rec_count();
    p = gc_alloc(t, &T_RAW, 0);
    EXPECT_NULL(p);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_alloc");

    r0 = rec_count();
    p = gc_alloc(t, NULL, 64);
    EXPECT_NULL(p);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_alloc");

    r0 = rec_count();
    p = gc_alloc(t, NULL, 0);
    EXPECT_NULL(p);
    if (rec_count() - r0 < 1) T_FAIL("gc_alloc(NULL type, size 0) not reported");

    /* The heap is unharmed. */
    r0 = rec_count();
    void *q = gc_alloc(t, &T_RAW, 64);
    EXPECT_NONNULL(q);
    gc_collect(t);
    EXPECT_OBJ(keep, 1);
    EXPECT_FIN(1, 0);
    EXPECT_VERIFY(h);
    EXPECT_NO_REPORTS(r0);

    /* gc_pin of a pointer the heap does not own: reported, ignored. */
    _Alignas(16) uint64_t on_stack[4] = { 0 };
    uint64_t *on_malloc = malloc(64);
    EXPECT_NONNULL(on_malloc);
    r0 = rec_count();
    gc_pin(h, on_stack);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_pin");
    expect_last_ptr(on_stack);
    r0 = rec_count();
    gc_pin(h, on_malloc);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_pin");
    expect_last_ptr(on_malloc);
    r0 = rec_count();
    gc_collect(t);
    EXPECT_VERIFY(h);
    EXPECT_NO_REPORTS(r0);
    free(on_malloc);

    keep = NULL;
    gc_collect(t);
    EXPECT_FIN(1, 1);
    gc_root_remove(h, &keep);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* Other detectable misuse of roots, pins and weak references: each call is
 * reported once (its text naming the function) and otherwise ignored. */
static void test_gc_roots_pins_weak_misuse(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = NULL;
    gc_root_add(h, &keep);
    keep = mk(t, &T_FIN, 1, 2);

    /* Unpinning an object that is not pinned. */
    unsigned long r0 = rec_count();
    gc_unpin(h, keep);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_unpin");
    expect_last_ptr(keep);
    /* Pinned once, unpinned twice: the second is reported. */
    gc_pin(h, keep);
    gc_unpin(h, keep);
    r0 = rec_count();
    gc_unpin(h, keep);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_unpin");

    /* Removing a root that was never added; a NULL slot; a slot inside a GC
     * object (its fields are traced, not registered). */
    void *never = NULL;
    r0 = rec_count();
    gc_root_remove(h, &never);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_root_remove");
    r0 = rec_count();
    gc_root_add(h, NULL);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_root_add");
    r0 = rec_count();
    gc_root_add(h, &((tobj_t *)keep)->slot[0]);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_root_add");

    /* A weak reference to something that is not a GC object of this heap;
     * gc_weak_get of something that is not a weak reference. */
    _Alignas(16) uint64_t local[2] = { 0, 0 };
    r0 = rec_count();
    void *w = gc_weak_new(t, local);
    EXPECT_NULL(w);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_weak_new");
    r0 = rec_count();
    void *got = gc_weak_get(keep);
    EXPECT_NULL(got);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_weak_get");

    /* The heap is unharmed. */
    r0 = rec_count();
    gc_collect(t);
    EXPECT_OBJ(keep, 1);
    EXPECT_FIN(1, 0);
    EXPECT_VERIFY(h);
    EXPECT_NO_REPORTS(r0);
    keep = NULL;
    gc_collect(t);
    EXPECT_FIN(1, 1);
    gc_root_remove(h, &keep);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* Popping more roots than were pushed, or "to" a depth above the current
 * one, is misuse: reported once and otherwise ignored (API.md: "reported
 * through the error handler and otherwise ignored: ... nothing is lost") —
 * the roots still pushed keep their objects alive. */
static void test_gc_pop_roots_misuse_ignored(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *a = NULL, *b = NULL;
    size_t d0 = gc_root_depth(t);
    gc_push_root(t, &a);
    gc_push_root(t, &b);
    a = mk(t, &T_FIN, 1, 0);
    b = mk(t, &T_FIN, 2, 3);

    unsigned long r0 = rec_count();
    gc_pop_roots_to(t, d0 + 5);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_pop_roots_to");
    EXPECT_EQ(gc_root_depth(t), d0 + 2);
    gc_collect(t);
    EXPECT_FIN(1, 0);
    EXPECT_FIN(2, 0);

    r0 = rec_count();
    gc_pop_roots(t, d0 + 3);
    EXPECT_ONE_REPORT_TEXT(r0, "gc_pop_roots");
    if (gc_root_depth(t) != d0 + 2)
        T_FAIL("gc_pop_roots(%zu) with %zu pushed: depth is now %zu, expected the misuse to be "
               "ignored (depth %zu)", d0 + 3, d0 + 2, gc_root_depth(t), d0 + 2);
    gc_collect(t);
    EXPECT_FIN(1, 0);          /* still rooted: not finalized, not freed */
    EXPECT_FIN(2, 0);
    EXPECT_OBJ(a, 1);
    EXPECT_OBJ(b, 2);

    gc_pop_roots_to(t, d0);
    gc_collect(t);
    EXPECT_FIN(1, 1);
    EXPECT_FIN(2, 1);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_limits");
    mt_env_ignore_policy();
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_max_heap_small_objects),
        T(test_gc_max_heap_large_objects),
        T(test_gc_max_heap_random),
        T(test_gc_max_heap_finalizable_garbage),
        T(test_gc_max_heap_null_only_when_full_now),
        T(test_gc_alloc_impossible_sizes),
        T(test_gc_alloc_misuse),
        T(test_gc_roots_pins_weak_misuse),
        T(test_gc_pop_roots_misuse_ignored),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
