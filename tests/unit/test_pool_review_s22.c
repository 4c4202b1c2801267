/* test_pool_review_s22.c — the pool's figures, checked against what the
 * test itself knows:
 *   - pool_trim's return value when whole chunks are unmapped (not only
 *     free blocks decommitted): it equals the drop in bytes_reserved, and
 *     the resident memory the process gives back covers it;
 *   - the leak report when its own list cannot grow (out of memory while
 *     recording, os_fail_after): the summary still counts every live
 *     allocation and its bytes, and says how many it could not list;
 *   - a model of the statistics: two threads run a seeded mix of alloc,
 *     calloc, free, realloc, aligned and large allocations, free each
 *     other's objects and trim, and at every quiescent point
 *     bytes_in_use, live_allocations, allocs, frees, large_objects,
 *     fragmentation and the leak report's count and bytes match the live
 *     set exactly. Seeded (MULCH_TEST_SEED); MULCH_TEST_QUICK=1 runs fewer
 *     steps. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x7265766965777332)
#define MULCH_TEST_POOL
#include <mulch.h>

#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "mulch_test.h"
#include "pool_internal.h"

/* Resident pages of the process (Linux /proc/self/statm), in bytes; 0
 * when unknown. */
static size_t resident_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

/* Several chunks filled with small cells, all freed by their owner, then
 * one pool_trim: every chunk is empty and is unmapped, header pages
 * included. What pool_trim returns is what left bytes_reserved. */
static void test_trim_return_counts_unmapped_chunks(void **state) {
    (void)state;
    TEST_START();
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    enum { CELL = 4000 };
    size_t count = scaled(3000, 1200); /* 12 MiB, 3 chunks and more; quick: 2 */
    void **cells = calloc(count, sizeof *cells);
    assert_non_null(cells);
    for (size_t i = 0; i < count; i++) {
        cells[i] = pool_alloc(pool, CELL);
        assert_non_null(cells[i]);
        memset(cells[i], 0x5a, CELL); /* resident */
    }
    size_t chunks = 0;
    for (chunk_t *c = pool->chunks; c; c = c->next) chunks++;
    EXPECT_GE(chunks, 2);
    for (size_t i = 0; i < count; i++) pool_free(pool, cells[i]);
    free(cells);
    pool_stats_t before = stats_of(pool);
    EXPECT_EQ(before.bytes_in_use, 0);
    size_t rss_before = resident_bytes();
    size_t released = pool_trim(pool);
    size_t rss_after = resident_bytes();
    pool_stats_t after = stats_of(pool);
    /* one thread, nothing live: everything went back, chunks unmapped */
    EXPECT_EQ(after.bytes_reserved, 0);
    EXPECT_EQ(after.bytes_mapped, 0);
    EXPECT_EQ(after.free_block_bytes, 0);
    EXPECT_EQ(released, before.bytes_reserved - after.bytes_reserved);
    EXPECT_EQ(released, before.bytes_reserved);
    EXPECT_PTR_EQ(pool->chunks, NULL);
    /* The process's resident memory fell by at least what was written into
     * the cells (the rest of what was released: header pages, slack),
     * where the kernel's figure means something. */
    if (!MT_SANITIZED && !MT_ON_VALGRIND() && rss_before != 0 && rss_after != 0)
        EXPECT_GE(rss_before - (rss_after < rss_before ? rss_after : rss_before), (size_t)CELL * count / 10 * 9);
    pool_destroy(pool);
}

/* ---- leak report under out of memory ------------------------------------- */

typedef struct report_lines {
    size_t leak_lines;
    size_t summary_count;   /* from "mulch leak summary: N allocations" */
    int summary_lines;
    size_t group_count, group_bytes; /* summed over the per-site lines */
    int truncated_lines;
} report_lines_t;

static report_lines_t report_parse(pool_t *pool, size_t *returned) {
    report_lines_t r = { 0 };
    FILE *f = tmpfile();
    assert_non_null(f);
    *returned = pool_report_leaks(pool, f);
    rewind(f);
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        size_t n, bytes;
        if (strncmp(line, "mulch leak: ", 12) == 0) r.leak_lines++;
        else if (sscanf(line, "mulch leak summary: %zu allocation", &n) == 1) {
            r.summary_count = n;
            r.summary_lines++;
        } else if (sscanf(line, "  %zu allocation%*[s], %zu bytes", &n, &bytes) == 2
                   || sscanf(line, "  %zu allocation, %zu bytes", &n, &bytes) == 2) {
            r.group_count += n;
            r.group_bytes += bytes;
        } else if (strstr(line, "truncated") != NULL) {
            r.truncated_lines++;
        }
    }
    fclose(f);
    return r;
}

/* The report's list starts at 1024 entries and doubles: with 1500 live
 * allocations, failing its second mapping leaves 476 unrecorded. */
static void test_leak_report_oom_summary_exact(void **state) {
    (void)state;
    TEST_START();
    pool_options_t opts = { .track_leaks = 1 };
    pool_t *pool = pool_create(&opts);
    assert_non_null(pool);
    enum { LIVE = 1500 };
    static void *cells[LIVE];
    size_t bytes = 0;
    for (size_t i = 0; i < LIVE; i++) {
        size_t size = 8 + (i % 7) * 24;
        cells[i] = i % 2 ? POOL_ALLOC(pool, size) : pool_alloc(pool, size);
        assert_non_null(cells[i]);
        bytes += size;
    }
    size_t returned;
    report_lines_t full = report_parse(pool, &returned);
    EXPECT_EQ(returned, LIVE);
    EXPECT_EQ(full.leak_lines, LIVE);
    EXPECT_EQ(full.summary_count, LIVE);
    EXPECT_EQ(full.group_count, LIVE);
    EXPECT_EQ(full.group_bytes, bytes);
    EXPECT_EQ(full.truncated_lines, 0);

    os_fail_after(2); /* the list's first mapping works, its growth fails */
    report_lines_t cut = report_parse(pool, &returned);
    uint64_t left = os_fail_after(0);
    EXPECT_EQ(left, 0); /* the failure was used */
    EXPECT_EQ(returned, LIVE);
    EXPECT_EQ(cut.leak_lines, 1024);
    EXPECT_EQ(cut.summary_lines, 1);
    EXPECT_EQ(cut.summary_count, LIVE);  /* every live allocation, listed or not */
    EXPECT_EQ(cut.group_count, LIVE);    /* the groups add up, unrecorded ones included */
    EXPECT_EQ(cut.group_bytes, bytes);
    EXPECT_EQ(cut.truncated_lines, 1);   /* and the report says it is incomplete */

    /* The very first mapping refused: nothing listed, still counted. */
    os_fail_after(1);
    report_lines_t none = report_parse(pool, &returned);
    os_fail_after(0);
    EXPECT_EQ(returned, LIVE);
    EXPECT_EQ(none.leak_lines, 0);
    EXPECT_EQ(none.summary_count, LIVE);
    EXPECT_EQ(none.group_count, LIVE);
    EXPECT_EQ(none.group_bytes, bytes);
    EXPECT_EQ(none.truncated_lines, 1);

    for (size_t i = 0; i < LIVE; i++) pool_free(pool, cells[i]);
    EXPECT_EQ(report_count(pool), 0);
    pool_destroy(pool);
}

/* ---- the statistics' model ----------------------------------------------- */

#define MODEL_SLOTS 96

typedef struct model_slot {
    unsigned char *p;
    size_t requested;
    uint64_t tag;
} model_slot_t;

typedef struct model_worker {
    pool_t *pool;
    unsigned id;
    size_t steps;
    rng_t rng;
    model_slot_t *slots;        /* the slots it works on this phase (swapped) */
    uint64_t allocs, frees;     /* what it made the pool count */
    uint64_t next_tag;
    pthread_barrier_t *phase_done, *phase_go;
    unsigned phases;
} model_worker_t;

static size_t model_size(rng_t *r, const pool_t *pool) {
    switch (rng_below(r, 10)) {
    case 0: return rng_below(r, 17);                          /* 0..16 */
    case 1: case 2: case 3: return 1 + rng_below(r, 256);
    case 4: case 5: return 257 + rng_below(r, 4000);
    case 6: case 7: return 4096 + rng_below(r, 60000);
    case 8: return pool->small_max - 4096 + rng_below(r, 8192); /* around the large threshold */
    default: return pool->small_max + 1 + rng_below(r, 200000); /* large */
    }
}

/* Frees or keeps the slot's object; a pattern check first. */
static void model_release(model_worker_t *w, model_slot_t *s) {
    if (s->p == NULL) return;
    size_t bad = check(s->p, s->requested, s->tag);
    if (bad != SIZE_MAX) AFAIL("worker %u: object %p (%zu bytes) damaged at %zu", w->id, (void *)s->p, s->requested, bad);
    pool_free(w->pool, s->p);
    w->frees++;
    s->p = NULL;
}

static void model_step(model_worker_t *w) {
    pool_t *pool = w->pool;
    rng_t *r = &w->rng;
    model_slot_t *s = &w->slots[rng_below(r, MODEL_SLOTS)];
    unsigned op = (unsigned)rng_below(r, 100);
    if (op < 2) {
        pool_trim(pool);
        return;
    }
    if (op < 35 && s->p != NULL) {
        model_release(w, s);
        return;
    }
    if (op < 55 && s->p != NULL) {
        /* realloc: grow or shrink, in place or moved */
        size_t size = model_size(r, pool);
        if (size == 0) size = 1; /* (size 0 frees: covered by the free op) */
        size_t bad = check(s->p, s->requested, s->tag);
        if (bad != SIZE_MAX) AFAIL("worker %u: object %p damaged at %zu before realloc", w->id, (void *)s->p, bad);
        unsigned char *q = pool_realloc(pool, s->p, size);
        if (q == NULL) {
            AFAIL("worker %u: pool_realloc(%p, %zu) failed", w->id, (void *)s->p, size);
            return;
        }
        size_t kept = size < s->requested ? size : s->requested;
        bad = check(q, kept, s->tag);
        if (bad != SIZE_MAX) AFAIL("worker %u: realloc lost byte %zu", w->id, bad);
        if (q != s->p) {
            w->allocs++;
            w->frees++;
        }
        s->p = q;
        s->requested = size;
        s->tag = w->next_tag++;
        fill(q, size, s->tag);
        return;
    }
    model_release(w, s);
    size_t size = model_size(r, pool);
    unsigned char *p;
    unsigned kind = (unsigned)rng_below(r, 4);
    if (kind == 0) {
        size_t n = 1 + rng_below(r, 4), each = size / 4 + 1;
        size = n * each; /* what the leak report records */
        p = pool_calloc(pool, n, each);
        for (size_t i = 0; p != NULL && i < size; i++)
            if (p[i] != 0) {
                AFAIL("worker %u: calloc byte %zu not zero", w->id, i);
                break;
            }
    } else if (kind == 1) {
        size_t align = (size_t)32 << rng_below(r, rng_below(r, 8) == 0 ? 16 : 8); /* up to 1 MiB, rarely */
        p = pool_alloc_aligned(pool, size, align);
        if (p && (uintptr_t)p % align != 0) AFAIL("worker %u: %p not aligned to %zu", w->id, (void *)p, align);
    } else {
        p = pool_alloc(pool, size);
    }
    if (p == NULL) {
        AFAIL("worker %u: allocation of %zu bytes failed", w->id, size);
        return;
    }
    w->allocs++;
    s->p = p;
    s->requested = size;
    s->tag = w->next_tag++;
    fill(p, size, s->tag);
}

static void *model_thread(void *arg) {
    model_worker_t *w = arg;
    for (unsigned phase = 0; phase < w->phases; phase++) {
        for (size_t i = 0; i < w->steps; i++) model_step(w);
        pthread_barrier_wait(w->phase_done); /* the main thread checks */
        pthread_barrier_wait(w->phase_go);   /* and swaps the slot arrays */
    }
    for (unsigned i = 0; i < MODEL_SLOTS; i++) model_release(w, &w->slots[i]);
    return NULL;
}

/* The leak report's count and bytes (its summary line and groups). */
static void model_report(pool_t *pool, size_t *count, size_t *bytes) {
    report_lines_t r;
    size_t returned;
    r = report_parse(pool, &returned);
    *count = r.summary_count;
    *bytes = r.group_bytes;
    EXPECT_EQ(returned, r.summary_count);
    EXPECT_EQ(r.leak_lines, returned);
    EXPECT_EQ(r.group_count, returned);
}

static void model_check(pool_t *pool, model_worker_t *w, unsigned phase) {
    size_t live = 0, in_use = 0, large = 0, requested = 0;
    uint64_t allocs = 0, frees = 0;
    for (unsigned t = 0; t < 2; t++) {
        allocs += w[t].allocs;
        frees += w[t].frees;
        for (unsigned i = 0; i < MODEL_SLOTS; i++) {
            model_slot_t *s = &w[t].slots[i];
            if (s->p == NULL) continue;
            live++;
            size_t usable = pool_usable_size(pool, s->p);
            if (usable < s->requested) T_FAIL("phase %u: usable %zu < requested %zu", phase, usable, s->requested);
            in_use += usable;
            /* with tracking off the report shows a cell's usable size, a large object's requested one */
            chunk_t *chunk = chunk_of(s->p);
            bool huge = chunk != NULL && chunk->kind == CHUNK_HUGE;
            large += huge;
            requested += pool->track_leaks || huge ? s->requested : usable;
        }
    }
    pool_stats_t st = stats_of(pool);
    print_message("  phase %u: %zu live, %zu in use, %zu reserved, %zu large\n", phase, live, in_use,
                  st.bytes_reserved, large);
    EXPECT_EQ(st.live_allocations, live);
    EXPECT_EQ(st.bytes_in_use, in_use);
    EXPECT_EQ(st.allocs, allocs);
    EXPECT_EQ(st.frees, frees);
    EXPECT_EQ(st.large_objects, large);
    EXPECT_LE(st.bytes_in_use, st.bytes_reserved);
    EXPECT_LE(st.free_block_bytes, st.bytes_reserved);
    EXPECT_LE(st.bytes_reserved, st.peak_reserved);
    double fragmentation = st.bytes_reserved ? 1.0 - (double)st.bytes_in_use / (double)st.bytes_reserved : 0.0;
    if (st.fragmentation < fragmentation - 1e-12 || st.fragmentation > fragmentation + 1e-12)
        T_FAIL("phase %u: fragmentation %.17g, expected %.17g", phase, st.fragmentation, fragmentation);
    size_t report_live, report_bytes;
    model_report(pool, &report_live, &report_bytes);
    EXPECT_EQ(report_live, live);
    EXPECT_EQ(report_bytes, requested);
}

static void model_run(int track_leaks) {
    pool_options_t opts = { .track_leaks = track_leaks };
    pool_t *pool = pool_create(&opts);
    assert_non_null(pool);
    static model_slot_t slots[2][MODEL_SLOTS];
    memset(slots, 0, sizeof slots);
    pthread_barrier_t done, go;
    pthread_barrier_init(&done, NULL, 3);
    pthread_barrier_init(&go, NULL, 3);
    model_worker_t w[2];
    unsigned phases = (unsigned)scaled(5, 3);
    for (unsigned t = 0; t < 2; t++) {
        w[t] = (model_worker_t){ .pool = pool, .id = t, .steps = scaled(300, 120),
                                 .rng = test_rng(track_leaks ? "model tracked" : "model", t),
                                 .slots = slots[t], .next_tag = (uint64_t)t << 40,
                                 .phase_done = &done, .phase_go = &go, .phases = phases };
    }
    pthread_t th[2];
    for (unsigned t = 0; t < 2; t++) assert_int_equal(pthread_create(&th[t], NULL, model_thread, &w[t]), 0);
    for (unsigned phase = 0; phase < phases; phase++) {
        pthread_barrier_wait(&done);
        model_check(pool, w, phase);
        /* each worker frees and resizes the other's objects next phase */
        model_slot_t *a = w[0].slots;
        w[0].slots = w[1].slots;
        w[1].slots = a;
        pthread_barrier_wait(&go);
    }
    for (unsigned t = 0; t < 2; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&done);
    pthread_barrier_destroy(&go);
    EXPECT_NO_ASYNC_FAILURES();
    model_check(pool, w, phases);
    pool_trim(pool); /* the exited workers' spans are adopted and released */
    pool_stats_t st = stats_of(pool);
    EXPECT_EQ(st.live_allocations, 0);
    EXPECT_EQ(st.bytes_in_use, 0);
    EXPECT_EQ(st.bytes_reserved, 0);
    EXPECT_EQ(st.bytes_mapped, 0);
    EXPECT_EQ(st.free_block_bytes, 0);
    pool_destroy(pool);
}

static void test_stats_model_two_threads(void **state) {
    (void)state;
    TEST_START();
    model_run(0);
}

static void test_stats_model_two_threads_tracked(void **state) {
    (void)state;
    TEST_START();
    model_run(1);
}

int main(void) {
    mt_init("test_pool_review_s22");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_trim_return_counts_unmapped_chunks),
        T(test_leak_report_oom_summary_exact),
        T(test_stats_model_two_threads),
        T(test_stats_model_two_threads_tracked),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
