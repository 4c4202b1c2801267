/* test_pool_huge_realloc.c — pool_realloc of a large object (above the
 * largest size class) that stays large keeps its pages: it grows or
 * shrinks its mapping in place, or moves the pages to a new mapping
 * (mremap with MREMAP_DONTUNMAP) instead of copying them
 * (docs/pool.md "Large objects and realloc"):
 *
 *   grow_keeps_contents        64 KiB to 64 MiB by 1.5x steps and back
 *                              down: every byte kept, the usable size and
 *                              the stats follow;
 *   grow_does_not_copy         a 128 MiB buffer grown by half: the peak
 *                              resident size does not rise by the buffer's
 *                              size (it did: a copy faults in every page of
 *                              the destination before the source goes);
 *   grow_at_the_limit          a grow needs only the added pages to fit the
 *                              limit; one page more gives NULL and the
 *                              object is intact;
 *   aligned_objects_stay_aligned  pool_alloc_aligned objects (alignments
 *                              up to half a region) keep their alignment
 *                              across growths;
 *   leak_site_is_the_reallocs  the leak report shows the realloc's site
 *                              and size, after a move and after a shrink;
 *   stale_pointer_is_reported  a free or realloc of the pointer an object
 *                              had before it moved is one report, no crash;
 *   realloc_races_free         a growing realloc racing a free of the same
 *                              object: exactly one of them reports.
 *
 * Seeded (MULCH_TEST_SEED); MULCH_TEST_QUICK=1 uses smaller sizes. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368a12401)
#include <mulch/pool.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "pool_api_test.h"

#if defined(__SANITIZE_THREAD__)
#  define SKIP_UNDER_TSAN() skip() /* a stale pointer is a data race the program makes */
#else
#  define SKIP_UNDER_TSAN() ((void)0)
#endif

#ifndef MREMAP_DONTUNMAP
#  define MREMAP_DONTUNMAP 4
#endif

/* Whether this kernel (and not valgrind) moves pages with DONTUNMAP. */
static bool dontunmap_works(void)
{
    size_t size = 64 * KiB;
    unsigned char *from = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *to = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(from != MAP_FAILED && to != MAP_FAILED);
    from[0] = 1;
    void *moved = mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
    bool works = moved == to && to[0] == 1 && from[0] == 0;
    munmap(from, size);
    munmap(to, size);
    return works;
}

/* ======================================================================== */

static void test_grow_keeps_contents(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *pool = new_pool();
    const size_t top = scaled(64 * MiB, 8 * MiB);
    size_t size = 64 * KiB;
    uint64_t tag = g_seed;
    unsigned char *p = pool_alloc(pool, size);
    EXPECT_NONNULL(p);
    fill(p, size, tag);
    unsigned moved = 0, steps = 0;
    while (size < top) {
        size_t grown = size + size / 2;
        unsigned char *q = pool_realloc(pool, p, grown);
        EXPECT_NONNULL_CTX(q, "pool_realloc(%zu -> %zu)", size, grown);
        EXPECT_PATTERN(q, size, tag);
        EXPECT_GE(pool_usable_size(pool, q), grown);
        pool_stats_t st = stats_of(pool);
        EXPECT_EQ(st.live_allocations, 1);
        EXPECT_GE(st.bytes_in_use, grown);
        EXPECT_LE(st.bytes_in_use, grown + 64 * KiB);
        moved += q != p;
        steps++;
        p = q;
        size = grown;
        tag++;
        fill(p, size, tag); /* the pages after the first, and the end */
    }
    /* and back down, by thirds: shrinks release the tail */
    while (size > 256 * KiB) {
        size_t shrunk = size / 3;
        unsigned char *q = pool_realloc(pool, p, shrunk);
        EXPECT_NONNULL_CTX(q, "pool_realloc(%zu -> %zu)", size, shrunk);
        EXPECT_PATTERN(q, shrunk, tag);
        EXPECT_GE(pool_usable_size(pool, q), shrunk);
        EXPECT_LE(stats_of(pool).bytes_in_use, shrunk + 64 * KiB);
        p = q;
        size = shrunk;
        q[size - 1] ^= 0xff; /* writable to its end */
        q[size - 1] ^= 0xff;
    }
    print_message("  %u growths, %u moved\n", steps, moved);
    pool_free(pool, p);
    EXPECT_POOL_EMPTY(pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* ======================================================================== */

static size_t status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    size_t kib = 0, len = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, len) == 0 && sscanf(line + len, ": %zu kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

static bool reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f == NULL) return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

static void test_grow_does_not_copy(void **state)
{
    (void)state;
    if (MT_ON_VALGRIND() || !dontunmap_works()) {
        print_message("  no MREMAP_DONTUNMAP here: realloc copies\n");
        skip();
    }
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *pool = new_pool();
    const size_t size = scaled(128 * MiB, 32 * MiB);
    unsigned char *p = pool_alloc(pool, size);
    EXPECT_NONNULL(p);
    memset(p, 0x5a, size);
    if (!reset_peak_rss()) {
        pool_free(pool, p);
        pool_destroy(pool);
        skip();
    }
    size_t before = status_kib("VmRSS") * KiB;
    unsigned char *q = pool_realloc(pool, p, size + size / 2);
    size_t peak = status_kib("VmHWM") * KiB;
    EXPECT_NONNULL(q);
    /* ASan's shadow of the new object is an eighth of it */
    if (peak > before + size / 4)
        T_FAIL("the realloc of %zu bytes raised the peak RSS by %zu bytes: copied", size, peak - before);
    for (size_t at = 0; at < size; at += 4093) /* a byte of every page */
        if (q[at] != 0x5a) {
            T_FAIL("byte %zu of %zu lost", at, size);
            break;
        }
    EXPECT_EQ(q[size - 1], 0x5a);
    memset(q + size, 1, size / 2);
    pool_free(pool, q);
    EXPECT_POOL_EMPTY(pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* ======================================================================== */

static void test_grow_at_the_limit(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    const size_t limit = 24 * MiB;
    pool_t *pool = new_limited_pool(limit);
    size_t size = 6 * MiB;
    unsigned char *p = pool_alloc(pool, size);
    EXPECT_NONNULL(p);
    fill(p, size, g_seed);
    size_t usable = pool_usable_size(pool, p);
    size_t room = limit - stats_of(pool).bytes_reserved;
    /* one page too many: NULL, the object as it was */
    unsigned char *q = pool_realloc(pool, p, usable + room + 4096);
    EXPECT_NULL(q);
    EXPECT_PATTERN(p, size, g_seed);
    EXPECT_EQ(pool_usable_size(pool, p), usable);
    /* exactly the room left: it fits (a copy would need both at once) */
    q = pool_realloc(pool, p, usable + room);
    EXPECT_NONNULL_CTX(q, "pool_realloc(%zu -> %zu) with %zu bytes of room", usable, usable + room, room);
    if (q != NULL) {
        EXPECT_PATTERN(q, size, g_seed);
        EXPECT_LE(stats_of(pool).bytes_reserved, limit);
        memset(q + size, 2, usable + room - size);
        p = q;
    }
    pool_free(pool, p);
    EXPECT_POOL_EMPTY(pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* ======================================================================== */

static void test_aligned_objects_stay_aligned(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *pool = new_pool();
    const size_t aligns[] = { 64 * KiB, 256 * KiB, 1 * MiB, 2 * MiB };
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        size_t size = 300 * KiB + 24;
        unsigned char *p = pool_alloc_aligned(pool, size, aligns[i]);
        EXPECT_NONNULL(p);
        EXPECT_ALIGNED(p, aligns[i]);
        fill(p, size, g_seed + i);
        for (size_t to = 1 * MiB; to <= scaled(32 * MiB, 8 * MiB); to *= 2) {
            unsigned char *q = pool_realloc(pool, p, to);
            EXPECT_NONNULL_CTX(q, "pool_realloc(align %zu, %zu -> %zu)", aligns[i], size, to);
            EXPECT_ALIGNED(q, aligns[i]);
            EXPECT_PATTERN(q, size, g_seed + i);
            p = q;
        }
        pool_free(pool, p);
    }
    EXPECT_POOL_EMPTY(pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* A shrink of a large aligned object keeps its place, so its alignment
 * (docs/pool.md: only a block that moves may lose it). Under valgrind a
 * shrink copied into a plain (16-aligned) block: found in session 25. */
static void test_aligned_objects_stay_aligned_when_shrunk(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    pool_t *pool = new_pool();
    const size_t aligns[] = { 64 * KiB, 1 * MiB, 8 * MiB };
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        size_t size = 8 * MiB + 40;
        unsigned char *p = pool_alloc_aligned(pool, size, aligns[i]);
        EXPECT_NONNULL(p);
        EXPECT_ALIGNED(p, aligns[i]);
        fill(p, 1 * MiB, g_seed + i);
        for (size_t to = 3 * MiB; to >= 1 * MiB; to /= 3) {
            unsigned char *q = pool_realloc(pool, p, to);
            EXPECT_NONNULL_CTX(q, "pool_realloc(align %zu, shrink to %zu)", aligns[i], to);
            EXPECT_PTR_EQ(q, p);
            EXPECT_ALIGNED(q, aligns[i]);
            EXPECT_PATTERN(q, 1 * MiB < to ? 1 * MiB : to, g_seed + i);
            EXPECT_GE(pool_usable_size(pool, q), to);
            p = q;
        }
        pool_free(pool, p);
    }
    EXPECT_POOL_EMPTY(pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

/* ======================================================================== */

static char *report_text(pool_t *pool)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    (void)pool_report_leaks(pool, f);
    fflush(f);
    long len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    char *text = malloc((size_t)len + 1);
    assert_non_null(text);
    text[fread(text, 1, (size_t)len, f)] = 0;
    fclose(f);
    return text;
}

static void expect_leak_line(pool_t *pool, const void *p, size_t size)
{
    char *text = report_text(pool);
    char key[64], want[48];
    snprintf(key, sizeof key, "mulch leak: %p ", p);
    snprintf(want, sizeof want, " size %zu ", size);
    const char *at = strstr(text, key);
    const char *end = at ? strchr(at, '\n') : NULL;
    if (at == NULL) {
        T_FAIL("no leak line for %p:\n%s", p, text);
    } else {
        size_t len = end ? (size_t)(end - at) : strlen(at);
        char line[512];
        if (len >= sizeof line) len = sizeof line - 1;
        memcpy(line, at, len);
        line[len] = 0;
        if (strstr(line, "first_alloc.c") != NULL || strstr(line, want) == NULL)
            T_FAIL("the line names the first allocation's site or not size %zu: \"%s\"", size, line);
    }
    free(text);
}

static void test_leak_site_is_the_reallocs(void **state)
{
    (void)state;
    TEST_START();
    pool_options_t o;
    memset(&o, 0, sizeof o);
    o.track_leaks = 1;
    pool_t *pool = pool_create(&o);
    EXPECT_NONNULL(pool);
    unsigned char *p = pool_alloc_at(pool, 2 * MiB + 5, "first_alloc.c", 10);
    EXPECT_NONNULL(p);
    unsigned char *q = pool_realloc(pool, p, 9 * MiB);
    EXPECT_NONNULL(q);
    expect_leak_line(pool, q, 9 * MiB);
    unsigned char *r = pool_realloc(pool, q, 3 * MiB); /* a shrink by more than half */
    EXPECT_NONNULL(r);
    expect_leak_line(pool, r, 3 * MiB);
    pool_free(pool, r);
    pool_destroy(pool);
}

/* ======================================================================== */

static void test_stale_pointer_is_reported(void **state)
{
    (void)state;
    SKIP_UNDER_TSAN();
    TEST_START();
    pool_t *pool = new_pool();
    unsigned stale = 0;
    for (unsigned round = 0; round < 8; round++) {
        size_t size = 2 * MiB + round * 64 * KiB;
        unsigned char *p = pool_alloc(pool, size);
        EXPECT_NONNULL(p);
        fill(p, size, g_seed + round);
        unsigned char *q = pool_realloc(pool, p, 5 * size);
        EXPECT_NONNULL(q);
        EXPECT_PATTERN(q, size, g_seed + round);
        if (q != p) {
            stale++;
            unsigned long r0 = rec_count();
            pool_free(pool, p);
            EXPECT_ONE_REPORT(r0, "pool_free", p);
            r0 = rec_count();
            EXPECT_NULL(pool_realloc(pool, p, 7 * size));
            EXPECT_ONE_REPORT(r0, "pool_realloc", p);
            EXPECT_PATTERN(q, size, g_seed + round); /* the moved object is not touched */
        }
        pool_free(pool, q);
    }
    print_message("  %u of 8 moved\n", stale);
    EXPECT_POOL_EMPTY(pool);
    pool_destroy(pool);
}

/* ======================================================================== */
/* A growing realloc racing a free of the same object                        */

typedef struct {
    atomic_uint arrived;
    atomic_uint generation;
} spin_barrier_t;

static void spin_barrier_wait(spin_barrier_t *b)
{
    unsigned gen = atomic_load(&b->generation);
    if (atomic_fetch_add(&b->arrived, 1) == 1) {
        atomic_store(&b->arrived, 0);
        atomic_store(&b->generation, gen + 1);
        return;
    }
    for (unsigned spins = 0; atomic_load(&b->generation) == gen; spins++)
        if (MT_ON_VALGRIND() || spins % 256 == 255) sched_yield();
}

typedef struct {
    pool_t *pool;
    spin_barrier_t *barrier;
    void *_Atomic *shared;
    void *_Atomic *grown; /* the realloc's result, freed by racer 0 */
    unsigned id;
    size_t rounds;
    unsigned long failed;
} racer_t;

static void *realloc_free_racer(void *arg)
{
    racer_t *r = arg;
    rng_t rng = { g_seed ^ r->id };
    for (size_t round = 0; round < r->rounds; round++) {
        if (r->id == 0) {
            void *old = atomic_exchange(r->grown, NULL);
            if (old) pool_free(r->pool, old);
            size_t size = 300 * KiB + (size_t)rng_below(&rng, 2 * MiB);
            void *p = pool_alloc(r->pool, size);
            if (p == NULL) AFAIL("pool_alloc(%zu) failed in round %zu", size, round);
            atomic_store(r->shared, p);
        }
        spin_barrier_wait(r->barrier);
        void *p = atomic_load(r->shared);
        if (r->id == 1) {
            /* the free gets a head start of random length: either order */
            for (size_t spin = rng_below(&rng, 1500); spin > 0; spin--) atomic_signal_fence(memory_order_seq_cst);
            void *q = pool_realloc(r->pool, p, 6 * MiB + (size_t)rng_below(&rng, 2 * MiB));
            if (q == NULL) r->failed++;
            atomic_store(r->grown, q);
        } else {
            pool_free(r->pool, p);
        }
        spin_barrier_wait(r->barrier);
    }
    return NULL;
}

static void test_realloc_races_free(void **state)
{
    (void)state;
    SKIP_UNDER_TSAN();
    TEST_START();
    pool_t *pool = new_pool();
    size_t rounds = MT_ON_VALGRIND() ? 16 : scaled(300, 60);
    spin_barrier_t barrier = { 0, 0 };
    void *_Atomic shared = NULL;
    void *_Atomic grown = NULL;
    racer_t r[2];
    pthread_t t[2];
    unsigned long r0 = rec_count();
    for (unsigned i = 0; i < 2; i++) {
        r[i] = (racer_t){ pool, &barrier, &shared, &grown, i, rounds, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, realloc_free_racer, &r[i]), 0);
    }
    for (unsigned i = 0; i < 2; i++) pthread_join(t[i], NULL);
    void *last = atomic_load(&grown);
    if (last) pool_free(pool, last);
    EXPECT_NO_ASYNC_FAILURES();
    /* one report a round: the free's (the realloc won) or the realloc's */
    unsigned long reports = rec_count() - r0;
    if (reports != rounds) T_FAIL("%lu reports in %zu rounds (%lu reallocs failed)", reports, rounds, r[1].failed);
    print_message("  the free came first in %lu of %zu rounds\n", r[1].failed, rounds);
    EXPECT_POOL_EMPTY(pool);
    pool_destroy(pool);
}

int main(void)
{
    mt_init("test_pool_huge_realloc");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_grow_keeps_contents),
        T(test_grow_does_not_copy),
        T(test_grow_at_the_limit),
        T(test_aligned_objects_stay_aligned),
        T(test_aligned_objects_stay_aligned_when_shrunk),
        T(test_leak_site_is_the_reallocs),
        T(test_stale_pointer_is_reported),
        T(test_realloc_races_free),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
