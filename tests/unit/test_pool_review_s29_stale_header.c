/* test_pool_review_s29_stale_header.c — a stale free or realloc of a secure
 * pool's large object reads the object's chunk header without a fault,
 * however the chunk's range was reused since (docs/pool.md "Errors and
 * misuse"; os.c's invariant that a chunk header is always readable).
 *
 * pool_free and pool_realloc check a large object's header without the
 * pool's lock (pointer_check), then read it again under the lock
 * (huge_free, huge_resized). Between the two, the other thread of a race
 * may free the object (its range retired: read-only zeros), and other
 * threads may map a new chunk over that range starting below it, so that
 * the old header lies inside the new chunk, and free that one too. In
 * secure mode a retired chunk kept only its own header page readable and
 * made the rest PROT_NONE, and a live chunk's guard page is PROT_NONE: an
 * old header that fell in either faulted when the stale call read it.
 * Each test plays that interleaving on one thread, the lock-free check
 * first, then the frees and the new chunk, then the locked part of the
 * stale call, which must report and not fault.
 *
 * The layout is made through best fit on an empty retired set: a 12 MiB
 * object is freed, a 1 MiB filler and the victim (1 MiB, placed at the
 * next region boundary, 4 MiB in) are carved from its range, both freed
 * (the range whole again), and the new chunk starts at the range's start,
 * spanning the victim's old header. Deterministic; no seed is used. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x7332397374616c65)
#include <mulch.h>

#include <setjmp.h>
#include <signal.h>

#include "mulch_test.h"
#include "pool_internal.h"

/* A fault while reading the stale header: where, so the test can fail
 * with it instead of dying. */
static sigjmp_buf g_fault_jump;
static void *volatile g_fault_address;

static void fault_handler(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)context;
    g_fault_address = info->si_addr;
    siglongjmp(g_fault_jump, 1);
}

typedef struct {
    pool_t *pool;
    unsigned char *victim;    /* the stale object */
    chunk_t *victim_chunk;    /* its header, as the lock-free check found it */
    size_t victim_size;
    unsigned char *cover;     /* the chunk made over the victim's old range */
} layout_t;

/* Sets up the race up to the stale call's locked part: the victim passed
 * the lock-free check, was freed, and a chunk made by cover_size spans its
 * old header, starting below it. */
static layout_t stale_layout(size_t cover_size) {
    layout_t l = { 0 };
    l.pool = pool_create(&(pool_options_t){ .secure = 1 });
    assert_non_null(l.pool);
    unsigned char *big = pool_alloc(l.pool, 12 * MiB);
    assert_non_null(big);
    chunk_t *range = chunk_covering(big);
    assert_non_null(range);
    pool_free(l.pool, big);
    void *filler = pool_alloc(l.pool, MiB);
    l.victim_size = MiB;
    l.victim = pool_alloc(l.pool, l.victim_size);
    assert_non_null(filler);
    assert_non_null(l.victim);
    pointer_info_t info;
    assert_true(pointer_check(l.pool, l.victim, "pool_free", &info)); /* the stale call's first part */
    l.victim_chunk = info.chunk;
    pool_free(l.pool, filler);
    pool_free(l.pool, l.victim); /* the other thread's free: retired */
    l.cover = pool_alloc(l.pool, cover_size);
    assert_non_null(l.cover);
    chunk_t *cover_chunk = chunk_covering(l.cover);
    assert_non_null(cover_chunk);
    /* the premise: the new chunk spans the old header, from below */
    if (!((unsigned char *)cover_chunk < (unsigned char *)l.victim_chunk
          && (unsigned char *)l.victim_chunk < (unsigned char *)cover_chunk + cover_chunk->size))
        T_FAIL("layout: the victim's header %p is not inside the new chunk [%p, +%zu) (the 12 MiB range was %p): "
               "best fit placed them otherwise",
               (void *)l.victim_chunk, (void *)cover_chunk, cover_chunk->size, (void *)range);
    return l;
}

/* The stale call's locked part, pool_free's (stale_realloc: pool_realloc's
 * in place), on the old header: one report, no fault, and the pool's
 * live objects (`live`) untouched. */
static void stale_locked_part(layout_t *l, bool stale_realloc, size_t live) {
    unsigned long before = rec_count();
    struct sigaction sa, old_segv, old_bus;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fault_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
    if (sigsetjmp(g_fault_jump, 1) != 0) {
        sigaction(SIGSEGV, &old_segv, NULL);
        sigaction(SIGBUS, &old_bus, NULL);
        /* (the pool's lock is still held: the pool is left as it is) */
        T_FAIL("the stale %s faulted at %p reading the released chunk's header at %p",
               stale_realloc ? "pool_realloc" : "pool_free", g_fault_address, (void *)l->victim_chunk);
    }
    if (stale_realloc) {
        leak_site_t site = { NULL, 0, 0 };
        EXPECT_EQ(huge_resized(l->pool, l->victim_chunk, l->victim, l->victim_size, &site), false);
    } else {
        huge_free(l->pool, l->victim_chunk, l->victim);
    }
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    EXPECT_EQ(rec_count() - before, 1);
    pool_stats_t s;
    pool_get_stats(l->pool, &s);
    EXPECT_EQ(s.live_allocations, live);
}

/* The new chunk freed too: its retired body (PROT_NONE in secure mode)
 * holds the old header. */
static void test_stale_header_in_retired_body(void **state) {
    (void)state;
    TEST_START();
    for (int stale_realloc = 0; stale_realloc < 2; stale_realloc++) {
        layout_t l = stale_layout(8 * MiB);
        pool_free(l.pool, l.cover);
        stale_locked_part(&l, stale_realloc, 0);
        pool_destroy(l.pool);
    }
}

/* The new chunk live, its guard page (secure mode: PROT_NONE, at the end
 * of the mapping) exactly where the old header was: an object whose
 * pages end at a region boundary. */
static void test_stale_header_under_guard_page(void **state) {
    (void)state;
    TEST_START();
    for (int stale_realloc = 0; stale_realloc < 2; stale_realloc++) {
        /* header and object fill 4 MiB to the byte: the guard page would
         * be the next region's first page */
        layout_t l = stale_layout(MULCH_REGION - sizeof(chunk_t));
        memset(l.cover, 0xa5, MULCH_REGION - sizeof(chunk_t)); /* every byte writable */
        stale_locked_part(&l, stale_realloc, 1);
        pool_free(l.pool, l.cover);
        pool_destroy(l.pool);
    }
}

int main(void) {
    mt_init("test_pool_review_s29_stale_header");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stale_header_in_retired_body, setup_rec, teardown_rec),
        cmocka_unit_test_setup_teardown(test_stale_header_under_guard_page, setup_rec, teardown_rec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
