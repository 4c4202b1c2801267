/* test_rc_fork.c — fork() while other threads start and exit using rc
 * (runtime/rc.c holds its thread-record lock across fork).
 *
 * The forking thread is always fresh, without an rc record, so the child's
 * first rc call takes the record lock. A lock inherited held would hang
 * the child: alarm() turns that into a SIGALRM death, reported with the
 * fork's number.
 *   - held: a thread holds the record lock when another forks (and lets
 *     it go 50 ms later): the fork must wait for it, never copy it held;
 *   - churn: spawners keep starting short threads that allocate, share and
 *     release rc objects (each takes the record lock when it first uses rc
 *     and again at its exit) while fresh threads fork. Seeded (the short
 *     threads' object counts); the seed is printed;
 *   - weak: threads keep locking one weak reference while fresh threads
 *     fork; each child locks it too (runtime/weak.c holds every weak
 *     stripe across fork).
 */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x666f726b72633031)
#include <mulch.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mulch_test.h"
#include "rc_internal.h"

static atomic_int g_stop;
static atomic_int g_destroyed;

static void count_destroy(void *obj)
{
    (void)obj;
    atomic_fetch_add(&g_destroyed, 1);
}

static void *short_thread(void *arg)
{
    rng_t rng = { g_seed + (uint64_t)(uintptr_t)arg };
    int n = 1 + (int)rng_below(&rng, 16);
    for (int i = 0; i < n; i++) {
        void *obj = rc_alloc(32 + (size_t)rng_below(&rng, 200), count_destroy);
        if (obj == NULL) AFAIL("rc_alloc failed in a short thread");
        else rc_release(rc_retain(obj)), rc_release(obj);
    }
    return NULL;
}

static void *spawner(void *arg)
{
    (void)arg;
    for (uintptr_t k = 0; !atomic_load(&g_stop); k++) {
        pthread_t th;
        if (pthread_create(&th, NULL, short_thread, (void *)k) != 0) AFAIL("pthread_create failed");
        else pthread_join(th, NULL);
    }
    return NULL;
}

/* The child: its thread has no rc record yet, so rc takes the lock. */
static void child_work(void)
{
    alarm(10);
    atomic_store(&g_destroyed, 0);
    for (int i = 0; i < 100; i++) {
        void *obj = rc_alloc(64, count_destroy);
        if (obj == NULL) _exit(3);
        rc_weak_t *weak = rc_weak_new(obj);
        if (weak == NULL) _exit(4);
        rc_release(obj);
        if (rc_weak_lock(weak) != NULL) _exit(5);
        rc_weak_free(weak);
    }
    _exit(atomic_load(&g_destroyed) == 100 ? 0 : 6);
}

/* Forks; the child runs child(), the parent waits for it to exit 0. */
static void fork_and_wait(int f, void (*child)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        child();
        _exit(99); /* child() does not return */
    }
    if (pid < 0) {
        AFAIL("fork %d failed", f);
        return;
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) AFAIL("fork %d: waitpid failed", f);
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        AFAIL("fork %d: the child %s %d", f, WIFSIGNALED(status) ? "died of signal" : "exited with",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

static void *forker(void *arg)
{
    fork_and_wait((int)(intptr_t)arg, child_work);
    return NULL;
}

static atomic_int g_held;

static void *lock_holder(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mulch_rc_records_lock);
    atomic_store(&g_held, 1);
    usleep(50000);
    pthread_mutex_unlock(&mulch_rc_records_lock);
    return NULL;
}

static void test_rc_fork_while_record_lock_held(void **state)
{
    (void)state;
    TEST_START();
    for (int f = 0; f < 3; f++) {
        atomic_store(&g_held, 0);
        pthread_t holder, fork_thread;
        EXPECT_EQ(pthread_create(&holder, NULL, lock_holder, NULL), 0);
        while (!atomic_load(&g_held)) sched_yield();
        EXPECT_EQ(pthread_create(&fork_thread, NULL, forker, (void *)(intptr_t)f), 0);
        pthread_join(fork_thread, NULL);
        pthread_join(holder, NULL);
    }
    EXPECT_NO_ASYNC_FAILURES();
}

static void test_rc_fork_while_threads_start_and_exit(void **state)
{
    (void)state;
    TEST_START();
    atomic_store(&g_stop, 0);
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) EXPECT_EQ(pthread_create(&threads[i], NULL, spawner, NULL), 0);
    int forks = (int)scaled(80, 20);
    for (int f = 0; f < forks; f++) {
        usleep(500);
        pthread_t th;
        EXPECT_EQ(pthread_create(&th, NULL, forker, (void *)(intptr_t)f), 0);
        pthread_join(th, NULL);
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    EXPECT_NO_ASYNC_FAILURES();
}

/* weak: two threads lock and release one weak reference without a pause
 * (its control block's mutex is held a good part of the time) while a
 * fresh thread forks; the child locks the same weak reference. A mutex
 * copied held would hang it. */
static rc_weak_t *g_weak;

static void *weak_hammer(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_stop)) {
        void *obj = rc_weak_lock(g_weak);
        if (obj == NULL) {
            AFAIL("rc_weak_lock lost a live object");
            return NULL;
        }
        rc_release(obj);
    }
    return NULL;
}

static void weak_child_work(void)
{
    alarm(10);
    for (int i = 0; i < 1000; i++) {
        void *obj = rc_weak_lock(g_weak);
        if (obj == NULL) _exit(7);
        rc_release(obj);
    }
    child_work();
}

static void *weak_forker(void *arg)
{
    fork_and_wait((int)(intptr_t)arg, weak_child_work);
    return NULL;
}

static void test_rc_fork_while_weak_refs_locked(void **state)
{
    (void)state;
    TEST_START();
    void *target = rc_alloc(48, NULL);
    EXPECT_NONNULL(target);
    g_weak = rc_weak_new(target);
    EXPECT_NONNULL(g_weak);
    atomic_store(&g_stop, 0);
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) EXPECT_EQ(pthread_create(&threads[i], NULL, weak_hammer, NULL), 0);
    int forks = (int)scaled(60, 15);
    for (int f = 0; f < forks && atomic_load(&g_failures) == 0; f++) { /* a hung child costs 10 s */
        pthread_t th;
        EXPECT_EQ(pthread_create(&th, NULL, weak_forker, (void *)(intptr_t)f), 0);
        pthread_join(th, NULL);
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    EXPECT_NO_ASYNC_FAILURES();
    rc_release(target);
    EXPECT_NULL(rc_weak_lock(g_weak));
    rc_weak_free(g_weak);
    g_weak = NULL;
}

int main(void)
{
    mt_init("test_rc_fork");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rc_fork_while_record_lock_held),
        cmocka_unit_test(test_rc_fork_while_threads_start_and_exit),
        cmocka_unit_test(test_rc_fork_while_weak_refs_locked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
