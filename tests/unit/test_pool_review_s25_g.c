/* test_pool_review_s25_g.c — os.c's retired set keeps every range however
 * many disjoint ones a program makes.
 *
 * Chunks are never unmapped (os_retire): a stale reader of a released
 * chunk, such as rc's inline retain/release of a destroyed large object,
 * reads zeros instead of faulting, and no one else is given the range.
 * The set held 1024 ranges and then fell back to munmap, so a program
 * with more than 1024 gaps between live chunks (2049 large objects, every
 * other one freed) lost the guarantee for the rest. Here 1500 single
 * pages are retired with a live page between each two (nothing
 * coalesces): every one must stay in the set and read as zeros. */
#define DEFAULT_SEED UINT64_C(0x7365747332356721)
#include <mulch.h>

#include <stdio.h>

#include "mulch_test.h"
#include "pool_internal.h"

enum { GAPS = 1500 };

static void test_retired_set_beyond_first_capacity(void **state) {
    (void)state;
    TEST_START();
    size_t pages = 2 * GAPS + 1;
    unsigned char *arena = os_map_aligned(pages * MULCH_PAGE, MULCH_REGION, 0, false);
    assert_non_null(arena);
    for (size_t page = 0; page < pages; page++) arena[page * MULCH_PAGE] = 1;
    for (size_t gap = 0; gap < GAPS; gap++) os_retire(arena + (2 * gap + 1) * MULCH_PAGE, MULCH_PAGE, MULCH_PAGE);
    for (size_t gap = 0; gap < GAPS; gap++) {
        unsigned char *p = arena + (2 * gap + 1) * MULCH_PAGE;
        if (!os_retired_contains(p)) {
            fprintf(stderr, "retired page %zu of %d is not in the set (unmapped)\n", gap, GAPS);
            fail();
        }
        EXPECT_EQ(p[0], 0);
        assert_false(os_retired_contains(p - MULCH_PAGE));
    }
    /* the live pages between them are intact */
    for (size_t gap = 0; gap <= GAPS; gap++) EXPECT_EQ(arena[2 * gap * MULCH_PAGE], 1);
}

int main(void) {
    mt_init("test_pool_review_s25_g");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retired_set_beyond_first_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
