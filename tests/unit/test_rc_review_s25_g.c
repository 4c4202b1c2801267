/* Unit test: a freed small cell's free mark (pool_internal.h cell_free_mark,
 * the cell's second word) never reads as an rc object's live magic
 * (rc_internal.h rc_live_magic, the low half of that word) for any cell
 * address, by construction: a destroyed object's magic is overwritten by
 * the free mark when its cell goes back to the pool, and an equal value
 * would let rc_retain/rc_release count inside a free (or reused) cell.
 *
 * Chance alone makes a collision 1 in 2^32 per cell, too rare to meet, so
 * the test builds the address that collides under the earlier keying
 * (RC_LIVE ^ (h >> 4)): for key k it solves low32(h ^ (h >> 4)) ==
 * low32(k) ^ RC_LIVE, which is a xorshift and always has a 16-aligned
 * solution. Random addresses and keys follow (seeded, seed printed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "pool_internal.h"
#include "rc_internal.h"

#include "unit_errors.h"
#define teardown teardown_errors

/* The magic a freed cell at h shows: magic sits in the low half of the
 * cell's second word (little-endian), where the free mark goes. */
static uint32_t freed_magic(const pool_t *pool, uintptr_t h) {
    return (uint32_t)cell_free_mark(pool, (const void *)h);
}

/* A 16-aligned address h with low32(h ^ (h >> 4)) == target. */
static uintptr_t xorshift_collider(uint32_t target) {
    uint64_t g = 0; /* h >> 4 */
    for (int bit = 0; bit < 32; bit++) {
        uint64_t want = (target >> bit) & 1u;
        if (bit >= 4) want ^= (g >> (bit - 4)) & 1u;
        g |= want << bit;
    }
    /* bits 32..35 of h (g's bits 28..31) count in h >> 4 only, as set */
    return (uintptr_t)(g << 4);
}

static void test_free_mark_never_live_for_old_collider(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    uintptr_t h = xorshift_collider((uint32_t)pool->key ^ RC_LIVE);
    /* the address that collided under RC_LIVE ^ (h >> 4) */
    assert_int_equal((uint32_t)(pool->key ^ h), RC_LIVE ^ (uint32_t)(h >> 4));
    assert_int_not_equal(freed_magic(pool, h), rc_live_magic((const rc_header_t *)h));
    pool_destroy(pool);
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void test_free_mark_never_live_random(void **state) {
    (void)state;
    const uint64_t seed = 0x5eed25u;
    uint64_t s = seed;
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    for (int i = 0; i < 1 << 16; i++) {
        uintptr_t h = (uintptr_t)(splitmix(&s) & 0x00007ffffffffff0ull);
        if (freed_magic(pool, h) == rc_live_magic((const rc_header_t *)h)) {
            fprintf(stderr, "seed %#llx: collision at %#lx\n", (unsigned long long)seed, (unsigned long)h);
            fail();
        }
    }
    pool_destroy(pool);
}

/* Real cells: objects released go back to the pool with a free mark whose
 * magic is not live (rc_retain after release is reported, not counted). */
static void test_released_cells_not_live(void **state) {
    (void)state;
    pool_t *pool = pool_create(NULL);
    assert_non_null(pool);
    enum { count = 256 };
    void *objs[count];
    for (int i = 0; i < count; i++) {
        objs[i] = rc_alloc_in(pool, 16, NULL);
        assert_non_null(objs[i]);
        assert_true(rc_magic_is_live(objs[i]));
    }
    for (int i = 0; i < count; i++) rc_release(objs[i]);
    for (int i = 0; i < count; i++) {
        uintptr_t h = (uintptr_t)rc_header_of(objs[i]);
        assert_int_not_equal(freed_magic(pool, h), rc_live_magic((const rc_header_t *)h));
    }
    pool_destroy(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_free_mark_never_live_for_old_collider, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_mark_never_live_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_released_cells_not_live, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
