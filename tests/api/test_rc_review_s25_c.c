/* test_rc_review_s25_c.c — black-box regression tests from review session
 * 25, helper C (rc misuse after the last release; docs/rc.md "Errors and
 * misuse"):
 *   - a retain, release or count of an object whose payload was above the
 *     pool's size classes (its own mapping) after its last release was
 *     reported as "not an rc object", and so was a small one whose span
 *     pool_trim had given back: both are "object already destroyed (use
 *     after release)", as a small one in a live span was;
 *   - in a secure pool, the inline rc_retain / rc_release of such a large
 *     destroyed object faulted (its mapping is made inaccessible at once,
 *     and the header's owner word could lie past the page that stays
 *     readable) instead of handing the call to the library to report;
 *   - under valgrind, the same calls on any destroyed object were memcheck
 *     errors besides the report (the inline paths read the freed header's
 *     owner word; the library read a freed large object's magic): run
 *     under valgrind, these tests use the inline paths too;
 *   - the validating calls took any pointer whose bytes 40 in front held
 *     the rc magic for a live rc object (a pointer into a plain pool cell
 *     or a large plain allocation, or into an rc object's payload): the
 *     release counted down a "count" inside the caller's memory,
 *     unreported; the pointer must also lie where an rc payload does.
 *
 * Deterministic: no randomness (the seed is printed as in every test). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6372632543)
#define MULCH_TEST_POOL 1
#include <mulch/pool.h>
#include <mulch/rc.h>

#include <stdbool.h>
#include <string.h>

#include "mulch_test.h"

#define RC_MAGIC_LIVE 0x72634c56u /* runtime/rc_internal.h's RC_LIVE */
#define LARGE         ((size_t)1 << 20) /* above every size class */

/* Every way to touch obj after its last release: one report each, naming
 * the object as destroyed. inline_too: also the inline rc.h paths. */
static void expect_destroyed_reports(void *obj, bool inline_too, int line)
{
    static const char *const prefixes[] = {
        "rc_retain: object already destroyed (use after release)",
        "rc_release: object already destroyed (use after release)",
        "rc_count: object already destroyed (use after release)",
    };
    for (int op = 0; op < (inline_too ? 5 : 3); op++) {
        unsigned long r = rec_count();
        switch (op) {
        case 0: (void)(rc_retain)(obj); break;
        case 1: (rc_release)(obj); break;
        case 2: EXPECT_EQ(rc_count(obj), 0); break;
        case 3: (void)rc_retain(obj); break;
        default: rc_release(obj); break;
        }
        if (rec_count() - r != 1) print_message("  (called from line %d, call %d)\n", line, op);
        EXPECT_ONE_REPORT(r, prefixes[op == 3 ? 0 : op == 4 ? 1 : op], obj);
    }
}

static void test_rc_use_after_release_says_destroyed(void **state)
{
    (void)state;
    TEST_START();
    for (int secure = 0; secure < 2; secure++) {
        pool_options_t o;
        memset(&o, 0, sizeof o);
        o.secure = secure;
        pool_t *pool = pool_create(&o);
        EXPECT_NONNULL(pool);
        /* a small object, its span alive (a neighbour keeps it) */
        void *keep = rc_alloc_in(pool, 32, NULL);
        void *small = rc_alloc_in(pool, 32, NULL);
        EXPECT_NONNULL(keep);
        EXPECT_NONNULL(small);
        rc_release(small);
        expect_destroyed_reports(small, true, __LINE__);
        /* a large one: its mapping cached (or, secure, released at once) */
        void *large = rc_alloc_in(pool, LARGE, NULL);
        EXPECT_NONNULL(large);
        rc_release(large);
        expect_destroyed_reports(large, true, __LINE__);
        /* pool_trim gives the empty span and the cached mapping back */
        rc_release(keep);
        pool_trim(pool);
        expect_destroyed_reports(small, true, __LINE__);
        expect_destroyed_reports(large, true, __LINE__);
        unsigned long r = rec_count();
        pool_destroy(pool);
        EXPECT_NO_REPORTS(r);
    }
}

/* Secure pools place a large object against the guard page at the end of
 * its mapping, and make all of a freed mapping but its first page
 * inaccessible: with some sizes the header's owner word, which the inline
 * paths read first, lay past that page. Every 16-byte step of one page. */
static void test_rc_secure_large_use_after_release_reported(void **state)
{
    (void)state;
    TEST_START();
    pool_options_t o;
    memset(&o, 0, sizeof o);
    o.secure = 1;
    pool_t *pool = pool_create(&o);
    EXPECT_NONNULL(pool);
    size_t steps = g_quick ? 64 : 256;
    for (size_t i = 0; i < steps; i++) {
        size_t size = LARGE + (i * 4096 / steps & ~(size_t)15);
        void *obj = rc_alloc_in(pool, size, NULL);
        EXPECT_NONNULL(obj);
        rc_release(obj);
        unsigned long r = rec_count();
        (void)rc_retain(obj); /* inline: reads the header first */
        EXPECT_ONE_REPORT(r, "rc_retain: object already destroyed (use after release)", obj);
        r = rec_count();
        rc_release(obj);
        EXPECT_ONE_REPORT(r, "rc_release: object already destroyed (use after release)", obj);
    }
    pool_destroy(pool);
}

/* A pointer whose bytes 40 in front hold the rc magic, into memory that is
 * no rc object: one report each, "not an rc object", the memory intact. */
static void expect_not_rc(unsigned char *base, size_t n, unsigned char *ptr)
{
    unsigned char before[256];
    memcpy(before, base, n);
    unsigned long r = rec_count();
    (rc_release)(ptr);
    EXPECT_ONE_REPORT(r, "rc_release: not an rc object", ptr);
    r = rec_count();
    (void)(rc_retain)(ptr);
    EXPECT_ONE_REPORT(r, "rc_retain: not an rc object", ptr);
    r = rec_count();
    EXPECT_EQ(rc_count(ptr), 0);
    EXPECT_ONE_REPORT(r, "rc_count: not an rc object", ptr);
    r = rec_count();
    EXPECT_NULL(rc_weak_new(ptr));
    EXPECT_ONE_REPORT(r, "rc_weak_new: not an rc object", ptr);
    if (memcmp(before, base, n) != 0) T_FAIL("an rc call on %p changed the memory in front of it", (void *)ptr);
}

static void test_rc_magic_alone_is_no_rc_object(void **state)
{
    (void)state;
    TEST_START();
    uint32_t magic = RC_MAGIC_LIVE;
    pool_t *pool = pool_create(NULL);
    EXPECT_NONNULL(pool);
    /* Inside a plain cell, 16-aligned. (A header's size into it is where
     * an rc object's payload would be: a plain cell with the magic there
     * cannot be told from an rc object, docs/rc.md "Limits of
     * detection".) */
    unsigned char *cell = pool_alloc(pool, 200);
    EXPECT_NONNULL(cell);
    memset(cell, 0, 200);
    memcpy(cell + 8 + 64, &magic, sizeof magic);
    expect_not_rc(cell, 200, cell + 48 + 64);
    /* inside a large plain allocation */
    unsigned char *big = pool_alloc(pool, LARGE);
    EXPECT_NONNULL(big);
    memset(big, 0, 256);
    memcpy(big + 8 + 64, &magic, sizeof magic);
    expect_not_rc(big, 256, big + 48 + 64);
    /* inside an rc object's payload, small and large */
    unsigned char *obj = rc_alloc_in(pool, 200, NULL);
    unsigned char *large = rc_alloc_in(pool, LARGE, NULL);
    EXPECT_NONNULL(obj);
    EXPECT_NONNULL(large);
    memcpy(obj + 8, &magic, sizeof magic);
    memcpy(large + 8, &magic, sizeof magic);
    expect_not_rc(obj, 200, obj + 48);
    expect_not_rc(large, 256, large + 48);
    unsigned long r = rec_count();
    EXPECT_EQ(rc_count(obj), 1);
    EXPECT_EQ(rc_count(large), 1);
    rc_release(obj);
    rc_release(large);
    pool_free(pool, cell);
    pool_free(pool, big);
    pool_destroy(pool);
    EXPECT_NO_REPORTS(r);
}

int main(void)
{
    mt_init("test_rc_review_s25_c");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_rc_use_after_release_says_destroyed),
        T(test_rc_secure_large_use_after_release_reported),
        T(test_rc_magic_alone_is_no_rc_object),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
