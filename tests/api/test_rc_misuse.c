/* test_rc_misuse.c — black-box tests of reference-counted objects
 * (<mulch/rc.h>; docs: shared/API.md "RC" and "Errors and misuse",
 * docs/rc.md), detected misuse:
 *   - release / retain / count of a destroyed object, of a malloc
 *     pointer, a stack address, a static address and NULL; retain and
 *     release from inside destroy: one report each, prefixed with the
 *     function's name, naming the pointer, otherwise ignored;
 *   - the library functions on a destroyed object whose own mapping is gone.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. MULCH_TEST_QUICK=1
 * (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372630c01)
#include <mulch/rc.h>

#include "rc_test.h"

/* ======================================================================== */
/* Misuse                                                                    */

/* Calls on destroyed objects: <mulch/rc.h>'s inline fast path reads the
 * header before validating it (documented), which memcheck flags as a read
 * of freed memory; under valgrind these go straight to the library
 * functions, which validate first. Elsewhere the inline path must report
 * the misuse just the same. */
static void *misuse_retain(void *o)
{
    return MT_ON_VALGRIND() ? (rc_retain)(o) : rc_retain(o);
}
static void misuse_release(void *o)
{
    if (MT_ON_VALGRIND()) (rc_release)(o);
    else rc_release(o);
}

static void test_rc_misuse_destroyed_object(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    shadow_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    /* neighbours keep the span alive, so the dead cell stays recognisable */
    recobj_t *before = mk_rec(pool, 10);
    recobj_t *o = mk_rec(pool, 11);
    recobj_t *after = mk_rec(pool, 12);
    rc_release(o);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(11, 1);
    EXPECT_NO_REPORTS(r0);
    pool_stats_t s0 = stats_of(pool);

    unsigned long r1 = rec_count();
    misuse_release(o); /* double release */
    EXPECT_ONE_REPORT(r1, "rc_release:", o);
    EXPECT_DESTROYS(1);
    EXPECT_SHADOW_RUNS(11, 1);
    pool_stats_t s1 = stats_of(pool);
    EXPECT_EQ(s1.frees, s0.frees);
    EXPECT_EQ(s1.live_allocations, s0.live_allocations);
    EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use);

    r1 = rec_count();
    (void)misuse_retain(o); /* retain after the last release */
    EXPECT_ONE_REPORT(r1, "rc_retain:", o);
    r1 = rec_count();
    size_t c = rc_count(o);
    EXPECT_EQ(c, 0);
    EXPECT_ONE_REPORT(r1, "rc_count:", o);
    r1 = rec_count();
    misuse_release(o); /* the retain above must not have revived it */
    EXPECT_ONE_REPORT(r1, "rc_release:", o);
    EXPECT_DESTROYS(1);
    pool_stats_t s2 = stats_of(pool);
    EXPECT_EQ(s2.frees, s0.frees);
    EXPECT_EQ(s2.allocs, s0.allocs);
    EXPECT_EQ(s2.live_allocations, s0.live_allocations);

    /* the neighbours are untouched and the pool hands out distinct cells */
    unsigned long r2 = rec_count();
    EXPECT_EQ(before->magic, REC_MAGIC);
    EXPECT_EQ(after->magic, REC_MAGIC);
    EXPECT_EQ(rc_count(before), 1);
    EXPECT_EQ(rc_count(after), 1);
    recobj_t *fresh[8];
    for (int i = 0; i < 8; i++) {
        fresh[i] = mk_rec(pool, 20 + (uint64_t)i);
        for (int j = 0; j < i; j++)
            if (fresh[j] == fresh[i]) T_FAIL("the pool handed out %p twice", (void *)fresh[i]);
        if ((void *)fresh[i] == (void *)before || (void *)fresh[i] == (void *)after)
            T_FAIL("a live object's cell %p was handed out again", (void *)fresh[i]);
    }
    for (int i = 0; i < 8; i++) rc_release(fresh[i]);
    rc_release(before);
    rc_release(after);
    EXPECT_DESTROYS(11);
    EXPECT_SHADOW_RUNS(10, 1);
    EXPECT_SHADOW_RUNS(12, 1);
    EXPECT_EQ(stats_of(pool).live_allocations, 0);
    EXPECT_NO_REPORTS(r2);
    pool_destroy(pool);
    EXPECT_NO_ASYNC_FAILURES();
}

static void foreign_case(void *p, const char *what_kind)
{
    print_message("  %s %p\n", what_kind, p);
    unsigned long r1 = rec_count();
    (void)rc_retain(p);
    EXPECT_ONE_REPORT(r1, "rc_retain:", p);
    r1 = rec_count();
    rc_release(p);
    EXPECT_ONE_REPORT(r1, "rc_release:", p);
    r1 = rec_count();
    size_t c = rc_count(p);
    EXPECT_EQ(c, 0);
    EXPECT_ONE_REPORT(r1, "rc_count:", p);
}

static _Alignas(64) unsigned char g_static_buf[4096];

static void test_rc_misuse_foreign_pointers(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    destroy_reset();
    recobj_t *live = mk_rec(NULL, 30); /* a real object, untouched throughout */

    /* malloc memory, with room before it so a header read stays inside */
    unsigned char *m = aligned_alloc(64, 256);
    assert_non_null(m);
    fill(m, 256, 77);
    foreign_case(m + 64, "malloc pointer");
    foreign_case(m + 128, "malloc pointer");
    EXPECT_PATTERN(m, 256, 77);
    free(m);

    /* a stack address */
    _Alignas(64) unsigned char local[256];
    fill(local, sizeof local, 78);
    foreign_case(local + 64, "stack address");
    EXPECT_PATTERN(local, sizeof local, 78);

    /* a static address */
    fill(g_static_buf, sizeof g_static_buf, 79);
    foreign_case(g_static_buf + 64, "static address");
    EXPECT_PATTERN(g_static_buf, sizeof g_static_buf, 79);

    /* NULL */
    foreign_case(NULL, "NULL");

    EXPECT_DESTROYS(0);
    unsigned long r1 = rec_count();
    EXPECT_EQ(rc_count(live), 1);
    EXPECT_EQ(live->magic, REC_MAGIC);
    rc_release(live);
    EXPECT_DESTROYS(1);
    EXPECT_NO_REPORTS(r1);
    (void)r0;
    EXPECT_NO_ASYNC_FAILURES();
}

/* Inside destroy the count is 0: retaining or releasing again is misuse. */
static atomic_int g_in_destroy_mode;

static void misbehaving_destroy(void *obj)
{
    atomic_fetch_add(&g_destroys, 1);
    if (atomic_load(&g_in_destroy_mode) == 1) (void)rc_retain(obj);
    else rc_release(obj);
}

static void test_rc_misuse_inside_destroy(void **state)
{
    (void)state;
    TEST_START();
    destroy_reset();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    for (int mode = 1; mode <= 2; mode++) {
        atomic_store(&g_in_destroy_mode, mode);
        destroy_reset();
        void *p = rc_alloc_in(pool, 40, misbehaving_destroy);
        EXPECT_NONNULL(p);
        unsigned long r1 = rec_count();
        rc_release(p);
        EXPECT_ONE_REPORT(r1, mode == 1 ? "rc_retain:" : "rc_release:", p);
        EXPECT_DESTROYS(1);
        EXPECT_EQ(stats_of(pool).live_allocations, 0);
    }
    pool_destroy(pool);
}

/* Another thread releases more references than the object has, while its
 * allocating thread still counts them (biased): the extra release is
 * misuse, reported (once per extra release) when the owner merges the
 * counts, and ignored —
 * the object is destroyed once, not leaked with a negative count. */
static void *release_n_times(void *arg)
{
    handoff_t *h = arg;
    for (int i = 0; i < h->step; i++) rc_release(h->obj);
    return NULL;
}

static void test_rc_misuse_over_release_other_thread(void **state)
{
    (void)state;
    TEST_START();
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    for (int extra = 1; extra <= 2; extra++) {
        destroy_reset();
        shadow_reset();
        recobj_t *o = mk_rec(pool, 40);
        rc_retain(o); /* the owner counts 2 references: both handed over */
        handoff_t h = { .obj = o, .step = 2 + extra };
        pthread_t th;
        unsigned long r1 = rec_count();
        EXPECT_EQ(pthread_create(&th, NULL, release_n_times, &h), 0);
        EXPECT_EQ(pthread_join(th, NULL), 0);
        rc_nudge(); /* the owner merges what the other thread queued */
        if (extra == 1) {
            EXPECT_ONE_REPORT(r1, "rc_release:", o);
        } else { /* one report per extra release */
            EXPECT_EQ(rec_count() - r1, (unsigned long)extra);
            EXPECT_ONE_REPORT(r1 + (unsigned long)extra - 1, "rc_release:", o);
        }
        EXPECT_DESTROYS(1);
        EXPECT_SHADOW_RUNS(40, 1);
        EXPECT_EQ(stats_of(pool).live_allocations, 0);
    }
    pool_destroy(pool);
    EXPECT_NO_ASYNC_FAILURES();
}

/* ======================================================================== */

/* A destroyed object whose payload was above the pool's size classes had a
 * mapping of its own, unmapped when it was destroyed (at once in a secure
 * pool): the library functions, which look the pointer up before reading
 * it, report every later call. (The inline fast path reads the header
 * first and faults there: docs/api.md, "Differences from the contract".) */
static void test_rc_misuse_destroyed_big_object(void **state)
{
    (void)state;
    TEST_START();
    pool_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.secure = 1;                              /* freed big mappings are unmapped at once */
    pool_t *pool = pool_create(&opts);
    EXPECT_NONNULL(pool);
    unsigned char *o = rc_alloc_in(pool, 300 * 1024, NULL);
    EXPECT_NONNULL(o);
    EXPECT_EQ(o[300 * 1024 - 1], 0);
    (rc_release)(o);
    EXPECT_EQ(stats_of(pool).live_allocations, 0);
    unsigned long r = rec_count();
    (rc_release)(o);
    EXPECT_ONE_REPORT(r, "rc_release:", o);
    r = rec_count();
    EXPECT_PTR_EQ((rc_retain)(o), o);
    EXPECT_ONE_REPORT(r, "rc_retain:", o);
    r = rec_count();
    EXPECT_EQ(rc_count(o), 0);
    EXPECT_ONE_REPORT(r, "rc_count:", o);
    r = rec_count();
    EXPECT_NULL(rc_weak_new(o));
    EXPECT_ONE_REPORT(r, "rc_weak_new:", o);
    pool_destroy(pool);
}

int main(void)
{
    mt_init("test_rc_misuse");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_misuse_destroyed_object),
        T(test_rc_misuse_foreign_pointers),
        T(test_rc_misuse_inside_destroy),
        T(test_rc_misuse_over_release_other_thread),
        T(test_rc_misuse_destroyed_big_object),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
