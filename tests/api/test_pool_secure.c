/* API tests of secure mode (pool_options_t.secure, MULCH_SECURE=1): a write
 * just past a large object faults on the guard page, a freed large object
 * is unmapped (reading it faults), and the option changes nothing else a
 * program can observe. Faults are provoked in a forked child, which turns
 * SIGSEGV into exit status CHILD_FAULTED so that sanitizers (whose own SEGV
 * handlers would abort) and plain runs agree. */
#define _GNU_SOURCE
#define DEFAULT_SEED 0x5ec0de
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mulch/pool.h>

#define MULCH_TEST_POOL
#include "mulch_test.h"

enum { CHILD_FAULTED = 77, CHILD_SURVIVED = 78 };

static void on_fault(int sig)
{
    (void)sig;
    _exit(CHILD_FAULTED);
}

/* Runs fn(pool, size) in a child with a secure pool (option or environment)
 * and returns the child's exit status, or 128 + signal. */
static int run_in_child(void (*fn)(pool_t *, size_t), size_t size, int via_env)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) T_FAIL("fork failed");
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fault;
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        pool_options_t opts;
        memset(&opts, 0, sizeof opts);
        if (via_env) setenv("MULCH_SECURE", "1", 1);
        else opts.secure = 1;
        pool_t *pool = pool_create(&opts);
        if (pool == NULL) _exit(2);
        fn(pool, size);
        _exit(CHILD_SURVIVED);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) T_FAIL("waitpid failed");
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* Valgrind reports the faulting access itself and then exits the child
 * with its --error-exitcode: a fault either way. */
static int faulted(int status)
{
    return status == CHILD_FAULTED || (MT_ON_VALGRIND() && status != CHILD_SURVIVED && status != 2);
}

static void write_past_end(pool_t *pool, size_t size)
{
    volatile unsigned char *p = pool_alloc(pool, size);
    if (p == NULL) _exit(3);
    p[0] = 1;
    p[size - 1] = 2;  /* the last byte is fine */
    p[size] = 3;      /* one past the end: the guard page */
}

static void read_after_free(pool_t *pool, size_t size)
{
    volatile unsigned char *p = pool_alloc(pool, size);
    if (p == NULL) _exit(3);
    p[size / 2] = 1;
    pool_free(pool, (void *)p);
    if (p[size / 2] == 42) _exit(4); /* unmapped: faults before comparing */
}

static void test_secure_write_past_large_object_faults(void **state)
{
    (void)state;
    static const size_t sizes[] = { 1 * MiB + 16, 3 * MiB, 5 * MiB + 4096 + 32 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int status = run_in_child(write_past_end, sizes[i], (int)(i & 1));
        if (!faulted(status))
            T_FAIL("write one past a %zu-byte object in secure mode: child status %d, expected a fault",
                   sizes[i], status);
    }
}

static void test_secure_read_after_free_faults(void **state)
{
    (void)state;
    int status = run_in_child(read_after_free, 2 * MiB, 0);
    if (!faulted(status))
        T_FAIL("read of a freed 2 MiB object in secure mode: child status %d, expected a fault", status);
}

/* Everything else behaves as in a plain pool: contents, usable sizes
 * (large objects end at the guard, so usable is the size rounded to 16),
 * realloc across the small/large boundary, stats back to zero. */
static void test_secure_pool_behaves(void **state)
{
    (void)state;
    rng_t r = test_rng_named(__func__);
    pool_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.secure = 1;
    pool_t *pool = pool_create(&opts);
    EXPECT_NONNULL(pool);
    size_t big = 2 * MiB + 40;
    unsigned char *p = pool_alloc(pool, big);
    EXPECT_NONNULL(p);
    EXPECT_EQ(pool_usable_size(pool, p), (big + 15) & ~(size_t)15);
    EXPECT_EQ((uintptr_t)p % 16, 0);
    memset(p, 0x3c, big);
    unsigned char *q = pool_alloc_aligned(pool, 3 * MiB, 4096);
    EXPECT_NONNULL(q);
    EXPECT_EQ((uintptr_t)q % 4096, 0);
    memset(q, 0x3d, 3 * MiB);
    enum { N = 200 };
    void *small[N];
    size_t sizes[N];
    for (int i = 0; i < N; i++) {
        sizes[i] = 1 + (size_t)rng_below(&r, 3000);
        small[i] = pool_alloc(pool, sizes[i]);
        EXPECT_NONNULL(small[i]);
        memset(small[i], i & 0xff, sizes[i]);
    }
    for (int i = 0; i < N; i++) {
        const unsigned char *c = small[i];
        for (size_t k = 0; k < sizes[i]; k++)
            if (c[k] != (unsigned char)(i & 0xff)) T_FAIL("cell %d byte %zu changed", i, k);
        pool_free(pool, small[i]);
    }
    p = pool_realloc(pool, p, 64);
    EXPECT_NONNULL(p);
    EXPECT_EQ(p[63], 0x3c);
    pool_free(pool, p);
    pool_free(pool, q);
    pool_stats_t st;
    pool_get_stats(pool, &st);
    EXPECT_EQ(st.live_allocations, 0);
    EXPECT_EQ(st.large_objects, 0);
    pool_destroy(pool);
}

int main(void)
{
    mt_read_seed();
    print_message("test_pool_secure: seed=0x%016" PRIx64 " (set MULCH_TEST_SEED to reproduce)\n", g_seed);
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_secure_write_past_large_object_faults),
        T(test_secure_read_after_free_faults),
        T(test_secure_pool_behaves),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
