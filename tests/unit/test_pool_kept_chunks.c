/* test_pool_kept_chunks.c — os.c keeps a destroyed pool's chunk and small
 * metadata mappings mapped, zeroed, for the next pool (os_release_chunk,
 * os_unmap), instead of giving them to the kernel and faulting fresh pages
 * in again.
 *
 *   - a destroyed pool's chunk, its cells dirtied, comes back to the next
 *     pool at the same address reading zeros everywhere the new pool has
 *     not written, and os_mapped_bytes does not count it meanwhile; a stale
 *     free into it is reported as a free of released memory;
 *   - a chunk with more resident pages than the bound is retired as before:
 *     its pages are gone at pool_destroy (mincore);
 *   - at most OS_KEPT_CHUNKS chunks are kept; the rest are retired;
 *   - a metadata mapping comes back zeroed for the next os_map of its size,
 *     and fault injection still makes that os_map fail, keeping the entry;
 *   - a forked child's pool takes an inherited kept chunk, zeroed, and
 *     the parent's next pool still takes its own copy.
 * Under valgrind nothing is kept (memcheck's view of the cells): there the
 * reuse checks are skipped and the release is checked to be a retirement. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x6b65707463686e6b)
#include <mulch.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mulch_test.h"
#include "pool_internal.h"

#define DIRT UINT64_C(0xa5a5a5a5a5a5a5a5)

static unsigned char *region_of(const void *p) {
    return (unsigned char *)((uintptr_t)p & ~(uintptr_t)(MULCH_REGION - 1));
}

static size_t resident_pages_in(const unsigned char *start, size_t bytes) {
    unsigned char vec[MULCH_REGION / MULCH_PAGE];
    size_t pages = bytes / MULCH_PAGE;
    if (mincore((void *)start, bytes, vec) != 0) return SIZE_MAX;
    size_t n = 0;
    for (size_t i = 0; i < pages; i++) n += vec[i] & 1u;
    return n;
}

/* os_mapped_bytes once count pools were made and destroyed together: the
 * chunk map's leaves and the thread's heap records (one per pool alive at
 * once) stay mapped for the next pools, whatever os.c keeps. */
static size_t warm_baseline(int count) {
    pool_t *pools[8];
    assert_true(count <= 8);
    for (int i = 0; i < count; i++) {
        pools[i] = pool_create(NULL);
        assert_non_null(pools[i]);
        pool_free(pools[i], pool_alloc(pools[i], 64));
    }
    for (int i = 0; i < count; i++) pool_destroy(pools[i]);
    return os_mapped_bytes();
}

/* Words of DIRT in [start, start + bytes); not instrumented: the new
 * pool's free spans are poisoned under AddressSanitizer. */
static MULCH_NO_ASAN size_t dirt_in(const unsigned char *start, size_t bytes) {
    size_t dirty = 0;
    for (const volatile uint64_t *w = (const volatile uint64_t *)start; w < (const volatile uint64_t *)(start + bytes); w++)
        dirty += *w == DIRT;
    return dirty;
}

/* Fills count cells of size bytes with DIRT; returns the first. */
static void *dirty_cells(pool_t *pool, size_t count, size_t size) {
    void *first = NULL;
    for (size_t i = 0; i < count; i++) {
        uint64_t *cell = pool_alloc(pool, size);
        assert_non_null(cell);
        for (size_t w = 0; w < size / sizeof *cell; w++) cell[w] = DIRT;
        if (first == NULL) first = cell;
    }
    return first;
}

static void test_destroyed_chunk_comes_back_zeroed(void **state) {
    (void)state;
    TEST_START();
    size_t baseline = warm_baseline(1);
    pool_t *a = pool_create(NULL);
    assert_non_null(a);
    void *first = dirty_cells(a, 1500, 64); /* ~96 KiB: below the bound */
    unsigned char *chunk = region_of(first);
    pool_destroy(a);
    EXPECT_EQ(os_mapped_bytes(), baseline);
    EXPECT_EQ(os_retired_contains(first), 1);
    if (tool_vg_running()) return; /* retired: nothing kept (see above) */

    pool_t *b = pool_create(NULL);
    assert_non_null(b);
    void *fresh = pool_alloc(b, 64);
    assert_non_null(fresh);
    EXPECT_PTR_EQ(region_of(fresh), chunk);
    EXPECT_EQ(os_retired_contains(first), 0);
    /* nothing of the old pool's is left anywhere in the chunk */
    EXPECT_EQ(dirt_in(chunk, MULCH_REGION), 0);
    pool_free(b, fresh);
    pool_destroy(b);
    EXPECT_EQ(os_mapped_bytes(), baseline);
}

/* A stale free into a kept chunk (the pool that owned it destroyed) is a
 * report naming released memory, once, and changes nothing. */
static void test_stale_free_into_kept_chunk(void **state) {
    (void)state;
    TEST_START();
    pool_t *other = pool_create(NULL); /* made first: its own chunk */
    assert_non_null(other);
    void *mine = pool_alloc(other, 64);
    assert_non_null(mine);
    pool_t *a = pool_create(NULL);
    assert_non_null(a);
    void *stale = dirty_cells(a, 10, 64);
    pool_destroy(a);
    EXPECT_NE((uintptr_t)region_of(stale), (uintptr_t)region_of(mine));
    unsigned long before = rec_count();
    pool_free(other, stale);
    EXPECT_EQ(rec_count(), before + 1);
    char what[256];
    const void *ptr = NULL;
    rec_last(what, sizeof what, &ptr);
    if (strstr(what, "its chunk was released") == NULL) T_FAIL("report \"%s\" does not name released memory", what);
    EXPECT_PTR_EQ(ptr, stale);
    pool_free(other, mine);
    EXPECT_EQ(rec_count(), before + 1);
    pool_destroy(other);
}

static void test_big_resident_chunk_is_retired(void **state) {
    (void)state;
    TEST_START();
    pool_t *a = pool_create(NULL);
    assert_non_null(a);
    void *first = dirty_cells(a, 1024, 1024); /* 1 MiB resident */
    unsigned char *chunk = region_of(first);
    EXPECT_GE(resident_pages_in(chunk, MULCH_REGION), 257);
    pool_destroy(a);
    EXPECT_EQ(os_retired_contains(first), 1);
    /* given back at once, as pool_destroy promises */
    EXPECT_EQ(resident_pages_in(chunk, MULCH_REGION), 0);
}

static void test_kept_chunks_are_bounded(void **state) {
    (void)state;
    TEST_START();
    enum { POOLS = 6 };
    size_t baseline = warm_baseline(POOLS);
    pool_t *pools[POOLS];
    void *cells[POOLS];
    for (int i = 0; i < POOLS; i++) {
        pools[i] = pool_create(NULL);
        assert_non_null(pools[i]);
        cells[i] = dirty_cells(pools[i], 16, 64);
    }
    for (int i = 0; i < POOLS; i++) pool_destroy(pools[i]);
    EXPECT_EQ(os_mapped_bytes(), baseline);
    size_t kept = 0;
    for (int i = 0; i < POOLS; i++) {
        EXPECT_EQ(os_retired_contains(cells[i]), 1);
        /* a kept chunk stays writable and resident (its header page at
         * least); a retired one has no page left */
        kept += resident_pages_in(region_of(cells[i]), MULCH_REGION) > 0;
    }
    EXPECT_LE(kept, 4);
    if (!tool_vg_running()) EXPECT_GE(kept, 1);
    /* the next pools take the kept chunks back and work as usual */
    for (int i = 0; i < POOLS; i++) {
        pools[i] = pool_create(NULL);
        assert_non_null(pools[i]);
        void *p = pool_alloc(pools[i], 64);
        assert_non_null(p);
        memset(p, 0x5a, 64);
    }
    for (int i = 0; i < POOLS; i++) pool_destroy(pools[i]);
    EXPECT_EQ(os_mapped_bytes(), baseline);
}

static void test_kept_metadata_mapping(void **state) {
    (void)state;
    TEST_START();
    size_t bytes = 3 * MULCH_PAGE;
    size_t baseline = os_mapped_bytes();
    unsigned char *p = os_map(bytes);
    assert_non_null(p);
    EXPECT_EQ(os_mapped_bytes(), baseline + bytes);
    memset(p, 0xa5, bytes);
    os_unmap(p, bytes);
    EXPECT_EQ(os_mapped_bytes(), baseline);
    /* fault injection: the os_map that would reuse it fails, as a fresh
     * mapping would, and the mapping stays kept */
    os_fail_after(1);
    EXPECT_PTR_EQ(os_map(bytes), NULL);
    os_fail_after(0);
    EXPECT_EQ(os_mapped_bytes(), baseline);
    unsigned char *q = os_map(bytes);
    assert_non_null(q);
    if (!tool_vg_running()) EXPECT_PTR_EQ(q, p);
    size_t nonzero = 0;
    for (size_t i = 0; i < bytes; i++) nonzero += q[i] != 0;
    EXPECT_EQ(nonzero, 0);
    EXPECT_EQ(os_mapped_bytes(), baseline + bytes);
    os_unmap(q, bytes);
    EXPECT_EQ(os_mapped_bytes(), baseline);
}

/* An unmap of no bytes keeps nothing: were it filed, each would hold one
 * of the kept set's slots for good, and after a few no mapping would be
 * kept again. */
static void test_empty_unmap_keeps_nothing(void **state) {
    (void)state;
    TEST_START();
    if (tool_vg_running()) skip(); /* nothing is kept under valgrind */
    size_t bytes = 2 * MULCH_PAGE;
    size_t baseline = os_mapped_bytes();
    unsigned char *anchor = os_map(MULCH_PAGE);
    assert_non_null(anchor);
    for (int i = 0; i < 64; i++) os_unmap(anchor, 0);
    unsigned char *p = os_map(bytes);
    assert_non_null(p);
    os_unmap(p, bytes);
    unsigned char *q = os_map(bytes);
    EXPECT_PTR_EQ(q, p);
    /* Kept and taken back, its pages still resident: a fresh mapping
     * (the kernel may well put it at the same address) has none. */
    unsigned char resident[64] = { 0 }; /* (2 * MULCH_PAGE in pages of at least 4 KiB) */
    assert_int_equal(mincore(q, bytes, resident), 0);
    EXPECT_EQ(resident[0] & 1, 1);
    os_unmap(q, bytes);
    os_unmap(anchor, MULCH_PAGE);
    EXPECT_EQ(os_mapped_bytes(), baseline);
}

/* A forked child inherits the kept chunks (a copy, as of every mapping)
 * and the lock held across fork (pool/fork.c): its pools take them and
 * work, and the parent's next pool takes the same chunk in its own copy. */
static void test_kept_chunk_across_fork(void **state) {
    (void)state;
    TEST_START();
    pool_t *a = pool_create(NULL);
    assert_non_null(a);
    void *first = dirty_cells(a, 100, 64);
    unsigned char *chunk = region_of(first);
    pool_destroy(a);
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        pool_t *c = pool_create(NULL);
        uint64_t *p = c ? pool_alloc(c, 64) : NULL;
        /* (under valgrind nothing is kept, and the scan would read what
         * memcheck was told is inaccessible) */
        int ok = p != NULL && (tool_vg_running() || (region_of(p) == chunk && dirt_in(chunk, MULCH_REGION) == 0));
        if (p) p[0] = DIRT;
        pool_destroy(c);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : 99, 0);
    pool_t *b = pool_create(NULL);
    assert_non_null(b);
    void *p = pool_alloc(b, 64);
    assert_non_null(p);
    if (!tool_vg_running()) {
        EXPECT_PTR_EQ(region_of(p), chunk);
        EXPECT_EQ(dirt_in(chunk, MULCH_REGION), 0);
    }
    pool_destroy(b);
}

int main(void) {
    mt_init("test_pool_kept_chunks");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_destroyed_chunk_comes_back_zeroed),
        cmocka_unit_test_setup_teardown(test_stale_free_into_kept_chunk, setup_rec, teardown_rec),
        cmocka_unit_test(test_big_resident_chunk_is_retired),
        cmocka_unit_test(test_kept_chunks_are_bounded),
        cmocka_unit_test(test_kept_metadata_mapping),
        cmocka_unit_test(test_empty_unmap_keeps_nothing),
        cmocka_unit_test(test_kept_chunk_across_fork),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
