/* test_harness_expect.c — the integer checks of tests/support/mulch_test.h
 * (EXPECT_EQ, EXPECT_NE, EXPECT_GE, EXPECT_LE, EXPECT_LT) compare by value
 * whatever their operands' types: they converted both sides to uintmax_t,
 * which puts a negative value above every non-negative one, so
 * EXPECT_GE(pid, 0) passed for a failed fork's -1
 * (tests/stress/test_gc_fork_cards.c), EXPECT_GE(0u, -1) failed, and
 * EXPECT_EQ(SIZE_MAX, -1) passed (a size_t error result read as -1). A check that must fail runs in a child with CMOCKA_TEST_ABORT=1
 * (cmocka aborts on a failure instead of unwinding into its runner).
 *
 * Deterministic: no randomness (the seed is printed as in every test). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6368617201)
#include <mulch/common.h>

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mulch_test.h"

static void test_ordered_checks_pass_across_signedness(void **state)
{
    (void)state;
    pid_t failed = -1;
    short small = -2;
    size_t zero = 0;
    EXPECT_LT(failed, 0);
    EXPECT_LE(failed, 0);
    EXPECT_GE(zero, failed);
    EXPECT_GE(0u, -1);
    EXPECT_LT(small, 1u);
    EXPECT_LE(small, zero);
    EXPECT_LT(-5, -3);
    EXPECT_GE(UINTMAX_MAX, -1);
    EXPECT_LT((long long)INT64_MIN, (unsigned char)0);
    EXPECT_GE((size_t)7, 5);
    EXPECT_LE(3, (uint64_t)3);
    EXPECT_EQ(failed, -1);
    EXPECT_EQ((size_t)7, 7);
    EXPECT_EQ(small, -2L);
    EXPECT_NE(SIZE_MAX, -1);
    EXPECT_NE(zero, failed);
    EXPECT_NE((unsigned char)255, (signed char)-1);
}

/* Runs one check in a child; returns 1 when it failed (the child aborted). */
#define CHECK_FAILS(check) \
    do { \
        fflush(NULL); \
        pid_t child_ = fork(); \
        if (child_ < 0) T_FAIL("fork failed"); \
        if (child_ == 0) { \
            setenv("CMOCKA_TEST_ABORT", "1", 1); \
            (void)!freopen("/dev/null", "w", stdout); /* the expected failure's text */ \
            (void)!freopen("/dev/null", "w", stderr); \
            signal(SIGABRT, SIG_DFL); \
            check; \
            _exit(0); \
        } \
        int status_; \
        if (waitpid(child_, &status_, 0) != child_) T_FAIL("waitpid failed"); \
        if (!WIFSIGNALED(status_) || WTERMSIG(status_) != SIGABRT) \
            T_FAIL("%s did not fail (child status 0x%x)", #check, (unsigned)status_); \
    } while (0)

static void test_ordered_checks_fail_on_negative(void **state)
{
    (void)state;
    pid_t failed = -1;
    CHECK_FAILS(EXPECT_GE(failed, 0));
    CHECK_FAILS(EXPECT_LT(0, failed));
    CHECK_FAILS(EXPECT_LE(0u, -1));
    CHECK_FAILS(EXPECT_GE(-3, -1));
    CHECK_FAILS(EXPECT_LT(1, 1u));
    CHECK_FAILS(EXPECT_EQ(SIZE_MAX, -1));
    CHECK_FAILS(EXPECT_EQ((unsigned)-1, failed));
    CHECK_FAILS(EXPECT_NE(failed, -1L));
    CHECK_FAILS(EXPECT_NE((size_t)4, 4));
}

int main(void)
{
    mt_init("test_harness_expect");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_ordered_checks_pass_across_signedness),
        T(test_ordered_checks_fail_on_negative),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
