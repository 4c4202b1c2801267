/* test_pool_review_s21_overcommit.c — a large object the kernel would not
 * commit gives NULL. The pool mapped large objects MAP_NORESERVE, which
 * skips the kernel's overcommit check: under the default heuristic
 * (vm.overcommit_memory = 0) pool_alloc(pool, 16 TiB) returned a pointer
 * that would fault once touched, where glibc's malloc returns NULL. The
 * memory is never touched here. Skipped when overcommit is not the
 * heuristic or when RAM + swap would hold the request. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368a12101)
#include <mulch/pool.h>

#include <stdio.h>
#include <sys/sysinfo.h>

#include "pool_api_test.h"

#define HUGE_REQUEST ((size_t)1 << 44) /* 16 TiB */

/* Whether the kernel's heuristic overcommit would refuse HUGE_REQUEST. */
static int heuristic_refuses_huge(void)
{
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    int mode = -1;
    if (f == NULL) return 0;
    if (fscanf(f, "%d", &mode) != 1) mode = -1;
    fclose(f);
    struct sysinfo si;
    if (mode != 0 || sysinfo(&si) != 0) return 0;
    unsigned long long total = ((unsigned long long)si.totalram + si.totalswap) * si.mem_unit;
    return total < HUGE_REQUEST / 2;
}

static void test_uncommittable_large_object_is_null(void **state)
{
    (void)state;
    if (!heuristic_refuses_huge()) {
        print_message("overcommit is not the heuristic (or RAM + swap is huge): skipped\n");
        skip();
    }
    unsigned long r0 = rec_count();
    pool_t *pool = new_pool();
    pool_stats_t before = stats_of(pool);
    EXPECT_NULL(pool_alloc(pool, HUGE_REQUEST));
    EXPECT_NULL(pool_calloc(pool, 1, HUGE_REQUEST));
    EXPECT_NULL(pool_alloc_aligned(pool, HUGE_REQUEST, 4096));
    EXPECT_NULL(pool_alloc_aligned(pool, HUGE_REQUEST, (size_t)1 << 30));
    unsigned char *p = pool_alloc(pool, 100);
    EXPECT_NONNULL(p);
    if (p == NULL) return;
    p[0] = 42;
    EXPECT_NULL(pool_realloc(pool, p, HUGE_REQUEST)); /* p stays valid */
    EXPECT_EQ(p[0], 42);
    pool_free(pool, p);
    /* nothing was reserved for the refused requests, and the pool goes on */
    pool_stats_t after = stats_of(pool);
    EXPECT_EQ(after.large_objects, 0);
    EXPECT_EQ(after.bytes_in_use, 0);
    EXPECT_LE(after.peak_reserved, before.bytes_reserved + 64 * MiB);
    void *big = pool_alloc(pool, 1 * MiB);
    EXPECT_NONNULL(big);
    pool_free(pool, big);
    EXPECT_POOL_EMPTY(pool);
    EXPECT_NO_REPORTS(r0);
    pool_destroy(pool);
}

int main(void)
{
    mt_init("test_pool_review_s21_overcommit");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_uncommittable_large_object_is_null),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
