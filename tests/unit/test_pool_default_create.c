/* Unit tests of the default pool's creation (pool_default): a creation the
 * OS refused is tried again by the next call (it used to stay NULL for
 * good), and a fork while another thread is creating it leaves the child
 * able to create its own (the creation's lock is not inherited held).
 *
 * One process, one default pool: the tests run in this order and the first
 * leaves the default pool missing on purpose. The creation is held up by
 * an error handler that waits: options with a bad block size make
 * pool_create report, under the creation's lock. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#define DEFAULT_SEED UINT64_C(0x64656661756c7431)
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mulch.h>

#include "mulch_test.h"
#include "pool_internal.h"

static _Atomic int creator_waiting, creator_released;

static void nap(void) {
    struct timespec ts = { 0, 1000000 };
    nanosleep(&ts, NULL);
}

/* Waits, inside pool_create, until the main thread has forked. */
static void holding_handler(const char *what, const void *ptr, void *ctx) {
    (void)what;
    (void)ptr;
    (void)ctx;
    atomic_store(&creator_waiting, 1);
    while (!atomic_load(&creator_released)) nap();
}

static void *create_default(void *unused) {
    (void)unused;
    return pool_default();
}

static void test_fork_during_default_creation(void **state) {
    (void)state;
    TEST_START();
    pool_options_t bad = { 0 };
    bad.block_size = 3; /* reported by pool_create: the creation fails */
    pool_default_set_options(&bad);
    mulch_set_error_handler(holding_handler, NULL);
    pthread_t creator;
    EXPECT_EQ(pthread_create(&creator, NULL, create_default, NULL), 0);
    while (!atomic_load(&creator_waiting)) nap();
    pid_t child = fork();
    if (child == 0) {
        alarm(10); /* a child stuck on the creation's lock dies of SIGALRM */
        pool_options_t good = { 0 };
        pool_default_set_options(&good);
        pool_t *pool = pool_default();
        void *p = pool ? pool_alloc(pool, 100) : NULL;
        _exit(p != NULL && pool_default() == pool ? 0 : 1);
    }
    EXPECT_GE(child, 0);
    int status = 0;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    atomic_store(&creator_released, 1);
    void *made = (void *)1;
    pthread_join(creator, &made);
    mulch_set_error_handler(rec_handler, &g_ctx_token);
    if (WIFSIGNALED(status)) T_FAIL("the child died of signal %d (stuck creating the default pool)", WTERMSIG(status));
    EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
    EXPECT_NULL(made);
}

/* The OS refuses the pool's first mapping: NULL, then a pool once memory
 * is back, the same one from then on. */
static void test_default_created_after_refused_mapping(void **state) {
    (void)state;
    TEST_START();
    pool_options_t good = { 0 };
    pool_default_set_options(&good);
    unsigned long before = rec_count();
    os_fail_after(1);
    EXPECT_NULL(pool_default());
    os_fail_after(0);
    pool_t *pool = pool_default();
    EXPECT_NONNULL(pool);
    EXPECT_PTR_EQ(pool_default(), pool);
    void *p = pool_alloc(pool, 1000);
    EXPECT_NONNULL(p);
    pool_free(pool, p);
    EXPECT_NO_REPORTS(before);
}

int main(void) {
    mt_init("test_pool_default_create");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_fork_during_default_creation),
        T(test_default_created_after_refused_mapping),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
