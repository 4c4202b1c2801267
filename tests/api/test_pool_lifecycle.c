/* test_pool_lifecycle.c — black-box tests of the public pool contract
 * (<mulch/pool.h>, <mulch/common.h>, docs: shared/API.md "Pool" and
 * "Errors and misuse") around a pool's life: pool_free(NULL), exact
 * statistics, pool_trim giving memory back, pool_destroy (memory released, a
 * new pool at the old address shares nothing), mulch_version and
 * mulch_set_error_handler.
 *
 * Deterministic: every random choice comes from a splitmix64 generator seeded
 * from MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is
 * printed at the start of each test and in every failure message.
 * MULCH_TEST_QUICK=1 (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368f00d01)
#include <mulch/pool.h>

#include "pool_api_test.h"

/* ======================================================================== */
/* pool_free(NULL), stats                                                    */

static void test_pool_free_null_is_noop(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    unsigned long r0 = rec_count();
    void *keep = pool_alloc(pool, 10);
    EXPECT_NONNULL_CTX(keep, "pool_alloc(10)");
    pool_stats_t s0 = stats_of(pool);
    for (int i = 0; i < 100; i++) pool_free(pool, NULL);
    pool_free(pool_default(), NULL);
    pool_stats_t s1 = stats_of(pool);
    EXPECT_EQ(s1.frees, s0.frees);
    EXPECT_EQ(s1.allocs, s0.allocs);
    EXPECT_EQ(s1.live_allocations, s0.live_allocations);
    EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use);
    EXPECT_NO_REPORTS(r0);
    pool_free(pool, keep);
    pool_destroy(pool);
}

static void test_pool_stats_exact(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng_named(__func__);
    pool_t *pool = new_pool();
    enum { SLOTS = 1024 };
    obj_t *o = calloc(SLOTS, sizeof *o);
    assert_non_null(o);
    uint64_t allocs = 0, frees = 0;
    size_t live = 0, in_use = 0, ops = scaled(60000, 8000);
    for (size_t i = 0; i < ops; i++) {
        obj_t *x = &o[rng_below(&r, SLOTS)];
        if (x->p) {
            in_use -= x->usable;
            free_obj(pool, x);
            frees++;
            live--;
        } else {
            unsigned kind = (unsigned)rng_below(&r, 100);
            size_t sz = kind < 2 ? rng_size(&r, 256 * KiB, 3 * MiB) : rng_size(&r, 0, 40000);
            if (kind < 70) {
                x->p = pool_alloc(pool, sz);
            } else if (kind < 85) {
                x->p = pool_calloc(pool, 1, sz);
            } else {
                x->p = pool_alloc_aligned(pool, sz, (size_t)1 << rng_below(&r, 13));
            }
            EXPECT_NONNULL_CTX(x->p, "allocation kind %u size %zu", kind, sz);
            x->size = sz;
            x->usable = pool_usable_size(pool, x->p);
            EXPECT_GE(x->usable, sz);
            x->tag = tag_of(x->p, sz, i);
            fill(x->p, x->usable, x->tag);
            in_use += x->usable;
            allocs++;
            live++;
        }
        if (i % 997 == 0 || i == ops - 1) {
            pool_stats_t s = stats_of(pool);
            EXPECT_EQ(s.allocs, allocs);
            EXPECT_EQ(s.frees, frees);
            EXPECT_EQ(s.live_allocations, live);
            EXPECT_EQ(s.bytes_in_use, in_use);
            expect_stats_sane(&s);
        }
    }
    for (size_t i = 0; i < SLOTS; i++)
        if (o[i].p) {
            free_obj(pool, &o[i]);
            frees++;
        }
    pool_stats_t s = stats_of(pool);
    EXPECT_EQ(s.allocs, allocs);
    EXPECT_EQ(s.frees, frees);
    EXPECT_EQ(s.allocs, s.frees);
    EXPECT_EQ(s.live_allocations, 0);
    EXPECT_EQ(s.bytes_in_use, 0);
    expect_stats_sane(&s);
    free(o);
    pool_destroy(pool);
}

/* ======================================================================== */
/* pool_trim, pool_destroy                                                   */

static void test_pool_trim_releases_memory(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    const size_t nsmall = 64 * MiB / KiB, nbig = 16;
    void **small = malloc(nsmall * sizeof *small);
    void *big[16];
    assert_non_null(small);
    for (size_t i = 0; i < nsmall; i++) {
        small[i] = pool_alloc(pool, KiB);
        EXPECT_NONNULL_CTX(small[i], "pool_alloc(1 KiB) #%zu", i);
        memset(launder(small[i]), (int)(i | 1), KiB);
    }
    for (size_t i = 0; i < nbig; i++) {
        big[i] = pool_alloc(pool, MiB);
        EXPECT_NONNULL_CTX(big[i], "pool_alloc(1 MiB) #%zu", i);
        memset(launder(big[i]), 0x77, MiB);
    }
    const size_t freed = nsmall * KiB + nbig * MiB;
    pool_stats_t s_full = stats_of(pool);
    size_t rss_full = rss_bytes();
    for (size_t i = 0; i < nsmall; i++) pool_free(pool, small[i]);
    for (size_t i = 0; i < nbig; i++) pool_free(pool, big[i]);
    pool_stats_t s_freed = stats_of(pool);
    EXPECT_EQ(s_freed.live_allocations, 0);
    EXPECT_EQ(s_freed.bytes_in_use, 0);
    size_t released = pool_trim(pool);
    pool_stats_t s_trim = stats_of(pool);
    size_t rss_trim = rss_bytes();
    print_message("  reserved: full %zu, after free %zu, after trim %zu; trim returned %zu\n",
                  s_full.bytes_reserved, s_freed.bytes_reserved, s_trim.bytes_reserved,
                  released);
    print_message("  rss: full %zu, after trim %zu (freed %zu)\n", rss_full, rss_trim, freed);
    EXPECT_GE(s_full.bytes_reserved, freed);
    if (released == 0) T_FAIL("pool_trim returned 0 after freeing %zu bytes", freed);
    EXPECT_LT(s_trim.bytes_reserved, s_freed.bytes_reserved);
    EXPECT_EQ(s_freed.bytes_reserved - s_trim.bytes_reserved, released);
    /* Everything that was freed must have left the process (at least half
       of it, to leave room for metadata and allocator caches). */
    EXPECT_LE(s_trim.bytes_reserved, s_full.bytes_reserved - freed / 2);
    if (rss_full > 0) {
        if (rss_trim > rss_full || rss_full - rss_trim < freed / 2)
            T_FAIL("RSS only dropped from %zu to %zu after freeing %zu bytes and trimming",
                   rss_full, rss_trim, freed);
    }
    expect_stats_sane(&s_trim);
    /* still usable after trim */
    for (size_t i = 0; i < 1000; i++) {
        small[i] = pool_alloc(pool, KiB);
        EXPECT_NONNULL_CTX(small[i], "pool_alloc after trim");
        fill(small[i], KiB, i);
    }
    big[0] = pool_alloc(pool, MiB);
    EXPECT_NONNULL_CTX(big[0], "pool_alloc(1 MiB) after trim");
    fill(big[0], MiB, 1);
    for (size_t i = 0; i < 1000; i++) {
        EXPECT_PATTERN(small[i], KiB, i);
        pool_free(pool, small[i]);
    }
    EXPECT_PATTERN(big[0], MiB, 1);
    pool_free(pool, big[0]);
    /* trimming an empty pool twice is harmless */
    (void)pool_trim(pool);
    size_t again = pool_trim(pool);
    EXPECT_EQ(again, 0);
    free(small);
    pool_destroy(pool);
}

/* A span whose free pages a first trim released goes back to the pool
 * decommitted once its last cells are freed: its chunk is then empty, yet
 * adds nothing to free_block_bytes. The next trim must still unmap that
 * chunk (its header pages and address space), as it does any empty one. */
static void test_pool_trim_unmaps_chunk_emptied_after_page_release(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = new_pool();
    enum { N = 64 };
    void *cell[N];
    for (size_t i = 0; i < N; i++) {
        cell[i] = pool_alloc(pool, KiB);
        EXPECT_NONNULL_CTX(cell[i], "pool_alloc(1 KiB) #%zu", i);
        fill(cell[i], KiB, i);
    }
    /* keep the first and the last cell: the pages between hold free cells only */
    for (size_t i = 1; i + 1 < N; i++) pool_free(pool, cell[i]);
    size_t released = pool_trim(pool);
    if (released == 0) T_FAIL("the first trim released no page between two live cells");
    EXPECT_PATTERN(cell[0], KiB, 0);
    EXPECT_PATTERN(cell[N - 1], KiB, N - 1);
    pool_free(pool, cell[0]);
    pool_free(pool, cell[N - 1]);
    (void)pool_trim(pool);
    pool_stats_t st = stats_of(pool);
    EXPECT_POOL_EMPTY(pool);
    EXPECT_EQ(st.bytes_mapped, 0);
    EXPECT_EQ(st.bytes_reserved, 0);
    EXPECT_EQ(st.free_block_bytes, 0);
    /* still usable */
    void *p = pool_alloc(pool, KiB);
    EXPECT_NONNULL_CTX(p, "pool_alloc after the trims");
    pool_free(pool, p);
    pool_destroy(pool);
}

static void test_pool_destroy_releases_memory(void **state)
{
    (void)state;
    TEST_START();
    size_t rounds = scaled(50, 15), rss_warm = 0;
    for (size_t round = 0; round < rounds; round++) {
        pool_t *pool = pool_create(NULL);
        EXPECT_NONNULL_CTX(pool, "pool_create round %zu", round);
        /* ~8 MiB: small objects, medium and large; some left live */
        for (size_t i = 0; i < 4096; i++) {
            void *p = pool_alloc(pool, KiB);
            EXPECT_NONNULL_CTX(p, "pool_alloc(1 KiB)");
            memset(launder(p), 0x3c, KiB);
            if (i % 3 == 0) pool_free(pool, p);
        }
        for (size_t i = 0; i < 8; i++) {
            void *p = pool_alloc(pool, 100 * KiB);
            EXPECT_NONNULL_CTX(p, "pool_alloc(100 KiB)");
            memset(launder(p), 0x3d, 100 * KiB);
        }
        for (size_t i = 0; i < 2; i++) {
            void *p = pool_alloc(pool, 2 * MiB);
            EXPECT_NONNULL_CTX(p, "pool_alloc(2 MiB)");
            memset(launder(p), 0x3e, 2 * MiB);
        }
        pool_destroy(pool);
        if (round == 4) rss_warm = rss_bytes();
    }
    size_t rss_end = rss_bytes();
    print_message("  rss after warm-up %zu, after %zu rounds %zu\n", rss_warm, rounds, rss_end);
    if (rss_warm && rss_end > rss_warm + 8 * MiB)
        T_FAIL("RSS grew by %zu bytes over %zu create/fill/destroy rounds (%zu -> %zu)",
               rss_end - rss_warm, rounds - 5, rss_warm, rss_end);
}

/* "A new pool created at the address of a destroyed one shares nothing
   with it": this thread's cached heap of the old pool must not be reused. */
static void test_pool_destroy_and_recreate(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    int same_address = 0;
    for (int round = 0; round < 20; round++) {
        pool_t *a = pool_create(NULL);
        EXPECT_NONNULL_CTX(a, "pool_create A");
        void *pa[64];
        for (int i = 0; i < 64; i++) {
            pa[i] = pool_alloc(a, 48);
            EXPECT_NONNULL_CTX(pa[i], "pool_alloc(A, 48)");
        }
        for (int i = 0; i < 32; i++) pool_free(a, pa[i]); /* A's heap has free cells */
        pool_destroy(a);
        pool_t *b = pool_create(NULL);
        EXPECT_NONNULL_CTX(b, "pool_create B");
        if (b == a) same_address++;
        pool_stats_t s = stats_of(b);
        EXPECT_EQ(s.allocs, 0);
        EXPECT_EQ(s.live_allocations, 0);
        EXPECT_EQ(s.bytes_in_use, 0);
        obj_t o[100];
        size_t sum = 0;
        for (int i = 0; i < 100; i++) {
            alloc_obj(b, &o[i], 48, (uint64_t)round);
            sum += o[i].usable;
        }
        expect_disjoint(o, 100);
        s = stats_of(b);
        EXPECT_EQ(s.allocs, 100);
        EXPECT_EQ(s.live_allocations, 100);
        EXPECT_EQ(s.bytes_in_use, sum);
        EXPECT_EQ(report_count(b), 100);
        for (int i = 0; i < 100; i++) free_obj(b, &o[i]);
        s = stats_of(b);
        EXPECT_EQ(s.frees, 100);
        EXPECT_EQ(s.live_allocations, 0);
        EXPECT_EQ(s.bytes_in_use, 0);
        pool_destroy(b);
    }
    print_message("  the new pool reused the old one's address in %d of 20 rounds\n",
                  same_address);
    EXPECT_NO_REPORTS(r0);
}

/* ======================================================================== */
/* Version, error handler                                                    */

static void test_pool_version_matches_header(void **state)
{
    (void)state;
    TEST_START();
    const char *v = mulch_version();
    EXPECT_NONNULL_CTX(v, "mulch_version()");
    if (strcmp(v, MULCH_VERSION_STRING) != 0)
        T_FAIL("mulch_version() = \"%s\", header says \"%s\"", v, MULCH_VERSION_STRING);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", MULCH_VERSION_MAJOR, MULCH_VERSION_MINOR,
             MULCH_VERSION_PATCH);
    if (strcmp(v, buf) != 0) T_FAIL("mulch_version() = \"%s\", macros say \"%s\"", v, buf);
    EXPECT_EQ(MULCH_VERSION, (MULCH_VERSION_MAJOR << 16) | (MULCH_VERSION_MINOR << 8) |
                                 MULCH_VERSION_PATCH);
}

static int g_h1_calls, g_h2_calls;
static void *g_h_ctx;
static void handler1(const char *w, const void *p, void *ctx)
{
    (void)w; (void)p;
    g_h1_calls++;
    g_h_ctx = ctx;
}
static void handler2(const char *w, const void *p, void *ctx)
{
    (void)w; (void)p;
    g_h2_calls++;
    g_h_ctx = ctx;
}

static void test_pool_set_error_handler_returns_previous(void **state)
{
    (void)state;
    TEST_START();
    /* setup_rec installed rec_handler */
    mulch_error_fn prev = mulch_set_error_handler(handler1, &g_h1_calls);
    if (prev != rec_handler) T_FAIL("first swap returned %p, expected rec_handler %p",
                                    (void *)(uintptr_t)prev, (void *)(uintptr_t)rec_handler);
    prev = mulch_set_error_handler(handler2, &g_h2_calls);
    if (prev != handler1) T_FAIL("second swap returned %p, expected handler1 %p",
                                 (void *)(uintptr_t)prev, (void *)(uintptr_t)handler1);
    /* handler2 gets its own ctx on a detected misuse */
    pool_t *pool = new_pool();
    void *p = pool_alloc(pool, 64);
    EXPECT_NONNULL_CTX(p, "pool_alloc(64)");
    pool_free(pool, p);
    g_h1_calls = g_h2_calls = 0;
    g_h_ctx = NULL;
    pool_free(pool, p); /* double free */
    EXPECT_EQ(g_h1_calls, 0);
    EXPECT_EQ(g_h2_calls, 1);
    if (g_h_ctx != &g_h2_calls) T_FAIL("handler ctx %p, expected %p", g_h_ctx,
                                       (void *)&g_h2_calls);
    prev = mulch_set_error_handler(rec_handler, &g_ctx_token);
    if (prev != handler2) T_FAIL("third swap returned %p, expected handler2 %p",
                                 (void *)(uintptr_t)prev, (void *)(uintptr_t)handler2);
    pool_destroy(pool);
}

/* mulch_set_error_handler(NULL, ...) restores the default handler, which is
 * what the next call returns (never NULL), and the default prints one line,
 * "mulch: <what> (pointer <ptr>)", on stderr and carries on. */
static void test_pool_default_error_handler_restored(void **state)
{
    (void)state;
    TEST_START();
    mulch_error_fn mine = mulch_set_error_handler(NULL, &g_h1_calls);
    if (mine != rec_handler) T_FAIL("swap returned %p, expected rec_handler", (void *)(uintptr_t)mine);
    mulch_error_fn dflt = mulch_set_error_handler(NULL, NULL);
    if (dflt == NULL || dflt == rec_handler) T_FAIL("the default handler is %p", (void *)(uintptr_t)dflt);
    if (mulch_set_error_handler(dflt, NULL) != dflt) T_FAIL("the default handler changed");

    /* its line, captured from stderr */
    FILE *capture = tmpfile();
    EXPECT_NONNULL(capture);
    fflush(stderr);
    int saved = dup(fileno(stderr));
    if (saved < 0 || dup2(fileno(capture), fileno(stderr)) < 0) T_FAIL("cannot redirect stderr");
    pool_t *pool = new_pool();
    int on_stack = 0;
    pool_free(pool, &on_stack);
    fflush(stderr);
    dup2(saved, fileno(stderr));
    close(saved);
    rewind(capture);
    char line[512] = "", rest[8] = "";
    if (fgets(line, sizeof line, capture) == NULL) T_FAIL("the default handler wrote nothing");
    int more = fgets(rest, sizeof rest, capture) != NULL;
    fclose(capture);
    char expect[128];
    snprintf(expect, sizeof expect, "(pointer %p)\n", (void *)&on_stack);
    print_message("  default handler: %s", line);
    if (strncmp(line, "mulch: pool_free: ", 18) != 0) T_FAIL("line \"%s\" does not name pool_free", line);
    size_t n = strlen(line), m = strlen(expect);
    if (n < m || strcmp(line + n - m, expect) != 0) T_FAIL("line \"%s\" does not end with \"%s\"", line, expect);
    if (more) T_FAIL("the default handler wrote more than one line");
    if (mulch_set_error_handler(rec_handler, &g_ctx_token) != dflt) T_FAIL("the default was replaced meanwhile");
    pool_destroy(pool);
}

/* A NULL pool, or a NULL stats destination, where the call needs one is
 * misuse (docs/api.md "Conventions"): reported, naming the function, and
 * refused with a neutral result, as the collector does for a NULL heap.
 * (pool_alloc and pool_alloc_at, the fast path, check nothing; pool_free
 * and pool_usable_size find that the pointer is not the NULL pool's.) */
static void test_pool_null_pool_reported(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r;
    pool_stats_t st;
    memset(&st, 0xCD, sizeof st);
    r = rec_count();
    pool_get_stats(NULL, &st);
    EXPECT_ONE_REPORT(r, "pool_get_stats: pool is NULL", NULL);
    EXPECT_EQ(st.allocs, 0);                      /* zeroed, as gc_get_stats does */
    EXPECT_EQ(st.bytes_reserved, 0);
    r = rec_count();
    pool_get_stats(pool_default(), NULL);
    EXPECT_ONE_REPORT(r, "pool_get_stats: out is NULL", pool_default());
    r = rec_count();
    EXPECT_EQ(pool_trim(NULL), 0);
    EXPECT_ONE_REPORT(r, "pool_trim: pool is NULL", NULL);
    r = rec_count();
    EXPECT_EQ(pool_report_leaks(NULL, stdout), 0);
    EXPECT_ONE_REPORT(r, "pool_report_leaks: pool is NULL", NULL);
    r = rec_count();
    EXPECT_NULL(pool_calloc(NULL, 2, 8));
    EXPECT_ONE_REPORT(r, "pool_calloc: pool is NULL", NULL);
    r = rec_count();
    EXPECT_NULL(pool_realloc(NULL, NULL, 8));
    EXPECT_ONE_REPORT(r, "pool_realloc: pool is NULL", NULL);
    r = rec_count();
    EXPECT_NULL(pool_alloc_aligned(NULL, 8, 64));
    EXPECT_ONE_REPORT(r, "pool_alloc_aligned: pool is NULL", NULL);
    /* a live block handed to the NULL pool stays the real pool's */
    pool_t *pool = new_pool();
    void *p = pool_alloc(pool, 32);
    EXPECT_NONNULL(p);
    r = rec_count();
    EXPECT_NULL(pool_realloc(NULL, p, 64));
    EXPECT_ONE_REPORT(r, "pool_realloc: pool is NULL", NULL);
    EXPECT_EQ(stats_of(pool).live_allocations, 1);
    pool_free(pool, p);
    r = rec_count();
    pool_destroy(NULL);                           /* documented no-op */
    EXPECT_NO_REPORTS(r);
    pool_destroy(pool);
}

/* ======================================================================== */

int main(void)
{
    mt_init("test_pool_lifecycle");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_pool_free_null_is_noop),
        T(test_pool_stats_exact),
        T(test_pool_trim_releases_memory),
        T(test_pool_trim_unmaps_chunk_emptied_after_page_release),
        T(test_pool_destroy_releases_memory),
        T(test_pool_destroy_and_recreate),
        T(test_pool_version_matches_header),
        T(test_pool_set_error_handler_returns_previous),
        T(test_pool_default_error_handler_restored),
        T(test_pool_null_pool_reported),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
