/* test_pool_fork.c — fork() while other threads use pools (pool/fork.c).
 *
 * Two workers allocate and free in a pool of their own and in a shared
 * one, with large objects and trims among them, so that the pool locks,
 * the chunk map's and the thread-heap registry's are taken all the time.
 * The main thread forks repeatedly; each child allocates, frees, trims and
 * reads statistics in both pools and the default pool, then exits 0. A
 * lock inherited held would hang the child: alarm() turns that into a
 * SIGALRM death, reported with the fork's number. Seeded (the workers'
 * size sequence); the seed is printed.
 */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x666f726b706f6f6c)
#define MULCH_TEST_POOL
#include <mulch.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mulch_test.h"

static pool_t *g_shared;
static atomic_int g_stop;

static void *worker(void *arg)
{
    rng_t rng = { g_seed + (uint64_t)(uintptr_t)arg };
    pool_t *own = pool_create(NULL);
    void *keep[64] = { NULL };
    while (!atomic_load(&g_stop)) {
        for (int i = 0; i < 64; i++) {
            pool_t *pool = (i & 1) ? own : g_shared;
            /* every 8th a large object: its own mapping, under the pool lock */
            size_t size = (i % 8 == 0) ? 200000 + (size_t)rng_below(&rng, 100000) : 16 + (size_t)rng_below(&rng, 2000);
            void *p = pool_alloc(pool, size);
            if (p == NULL) AFAIL("pool_alloc(%zu) failed in a worker", size);
            else memset(p, 0x5a, size < 64 ? size : 64);
            if (keep[i]) pool_free((i & 1) ? own : g_shared, keep[i]);
            keep[i] = p;
        }
        if (rng_below(&rng, 16) == 0) (void)pool_trim(own);
    }
    for (int i = 0; i < 64; i++) pool_free((i & 1) ? own : g_shared, keep[i]);
    pool_destroy(own);
    return NULL;
}

/* The child: every pool call must complete. */
static _Noreturn void child_work(void)
{
    alarm(10);
    pool_t *pools[3] = { g_shared, pool_default(), pool_create(NULL) };
    for (int k = 0; k < 3; k++) {
        void *cells[256];
        for (int i = 0; i < 256; i++) {
            cells[i] = pool_alloc(pools[k], (i % 16 == 0) ? 300000 : 48 + (size_t)i);
            if (cells[i] == NULL) _exit(3);
        }
        for (int i = 0; i < 256; i++) pool_free(pools[k], cells[i]);
        (void)pool_trim(pools[k]);
        pool_stats_t stats;
        pool_get_stats(pools[k], &stats);
    }
    pool_destroy(pools[2]);
    _exit(0);
}

static void test_pool_fork_while_threads_allocate(void **state)
{
    (void)state;
    TEST_START();
    g_shared = pool_create(NULL);
    EXPECT_NONNULL(g_shared);
    atomic_store(&g_stop, 0);
    pthread_t threads[2];
    for (uintptr_t i = 0; i < 2; i++) EXPECT_EQ(pthread_create(&threads[i], NULL, worker, (void *)i), 0);
    int forks = (int)scaled(60, 15);
    for (int f = 0; f < forks; f++) {
        usleep(2000);
        pid_t pid = fork();
        if (pid == 0) child_work();
        if (pid < 0) T_FAIL("fork %d failed", f);
        int status = 0;
        EXPECT_EQ(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            T_FAIL("fork %d: the child %s %d", f, WIFSIGNALED(status) ? "died of signal" : "exited with",
                   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    pool_destroy(g_shared);
    EXPECT_NO_ASYNC_FAILURES();
}

int main(void)
{
    mt_init("test_pool_fork");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_fork_while_threads_allocate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
