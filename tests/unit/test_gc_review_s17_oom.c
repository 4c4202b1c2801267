/* Unit tests of review session 17 that need memory to run short: reports
 * the collector makes when a thread's lists cannot reach the heap must
 * reach an error handler that calls back into the heap without holding the
 * heap's lock (a handler that calls gc_get_stats deadlocked). A lasting
 * shortage is made by refusing every mmap the library (linked statically)
 * makes while `mmap_refused` is set. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gc_internal.h"
#include "mmap_refuse.h"
#include "unit_errors.h"

static int teardown(void **state) {
    mmap_refused = false;
    return teardown_errors(state);
}

/* ---- a handler that calls back ------------------------------------------- */

static gc_heap_t *callback_heap;
static int callback_reports;
static char callback_what[256];

static void calls_back(const char *what, const void *ptr, void *ctx) {
    (void)ptr;
    (void)ctx;
    callback_reports++;
    snprintf(callback_what, sizeof callback_what, "%s", what);
    gc_stats_t stats;
    gc_get_stats(callback_heap, &stats); /* takes the heap's lock */
}

enum { WEAKS = 1200 };
static void *weak_roots[2 * WEAKS];
static bool lists_full;

/* Weak references in the heap's list and in the thread's, so many that
 * neither list can take the other's without a new mapping. */
static void *detach_with_weaks(void *unused) {
    (void)unused;
    gc_thread_t *t = gc_thread_attach(callback_heap);
    if (t == NULL) return NULL;
    for (size_t i = 0; i < WEAKS; i++) weak_roots[i] = gc_weak_new(t, NULL);
    gc_collect(t); /* the thread's list moves to the heap's */
    for (size_t i = WEAKS; i < 2 * WEAKS; i++) weak_roots[i] = gc_weak_new(t, NULL);
    gc_heap_t *h = callback_heap;
    size_t both = h->weaks.count + t->weaks.count;
    lists_full = h->weaks.count == WEAKS && t->weaks.count == WEAKS && both > h->weaks.capacity
                 && both > t->weaks.capacity;
    mmap_refused = true;
    gc_thread_detach(t);
    mmap_refused = false;
    return NULL;
}

/* gc_thread_detach reported the lost weak list with the heap's lock held:
 * a handler calling gc_get_stats waited for that lock for ever. */
static void test_detach_report_unlocked(void **state) {
    (void)state;
    if (!MMAP_REFUSABLE) skip();
    callback_heap = gc_heap_create(NULL);
    assert_non_null(callback_heap);
    memset(weak_roots, 0, sizeof weak_roots); /* (the last test's are another heap's) */
    gc_root_add_range(callback_heap, weak_roots, 2 * WEAKS);
    callback_reports = 0;
    mulch_set_error_handler(calls_back, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, detach_with_weaks, NULL), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    if (pthread_timedjoin_np(th, NULL, &until) != 0) fail_msg("the handler's gc_get_stats deadlocked in the detach");
    mulch_set_error_handler(record_error, NULL);
    assert_true(lists_full);
    assert_int_equal(callback_reports, 1);
    assert_non_null(strstr(callback_what, "weak references this thread made are cleared"));
    for (size_t i = 0; i < 2 * WEAKS; i++) {
        assert_non_null(weak_roots[i]);
        assert_null(gc_weak_get(weak_roots[i]));
    }
    gc_root_remove(callback_heap, weak_roots);
    gc_heap_destroy(callback_heap);
    assert_int_equal(reports, 0);
}

/* ---- the same loss in a fork child ---------------------------------------- */

static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t held_cv = PTHREAD_COND_INITIALIZER;
static int held_stage; /* 1: lists built, thread blocking; 2: may detach */

/* Builds the two full lists, then waits in a blocking region (a fork
 * copies it there) until told to go. */
static void *hold_weaks(void *unused) {
    (void)unused;
    gc_thread_t *t = gc_thread_attach(callback_heap);
    if (t == NULL) return NULL;
    for (size_t i = 0; i < WEAKS; i++) weak_roots[i] = gc_weak_new(t, NULL);
    gc_collect(t);
    for (size_t i = WEAKS; i < 2 * WEAKS; i++) weak_roots[i] = gc_weak_new(t, NULL);
    size_t both = callback_heap->weaks.count + t->weaks.count;
    lists_full = both > callback_heap->weaks.capacity && both > t->weaks.capacity;
    gc_enter_blocking(t);
    pthread_mutex_lock(&held_mu);
    held_stage = 1;
    pthread_cond_broadcast(&held_cv);
    while (held_stage != 2) pthread_cond_wait(&held_cv, &held_mu);
    pthread_mutex_unlock(&held_mu);
    gc_leave_blocking(t);
    gc_thread_detach(t);
    return NULL;
}

/* The child drops the other thread's record (gc/fork.c), handing its
 * weak list to the heap; when that fails the loss was reported with every
 * heap lock held, and the handler's gc_get_stats waited for ever. */
static void test_fork_child_report_unlocked(void **state) {
    (void)state;
    if (!MMAP_REFUSABLE) skip();
    callback_heap = gc_heap_create(NULL);
    assert_non_null(callback_heap);
    memset(weak_roots, 0, sizeof weak_roots); /* (the last test's are another heap's) */
    gc_root_add_range(callback_heap, weak_roots, 2 * WEAKS);
    held_stage = 0;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, hold_weaks, NULL), 0);
    pthread_mutex_lock(&held_mu);
    while (held_stage != 1) pthread_cond_wait(&held_cv, &held_mu);
    pthread_mutex_unlock(&held_mu);
    assert_true(lists_full);
    callback_reports = 0;
    mulch_set_error_handler(calls_back, NULL);
    mmap_refused = true; /* in the child from its start */
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10); /* a deadlock ends the child */
        mmap_refused = false;
        int ok = callback_reports == 1 && strstr(callback_what, "weak references this thread made are cleared");
        _exit(ok ? 0 : 1);
    }
    mmap_refused = false;
    mulch_set_error_handler(record_error, NULL);
    assert_true(pid > 0);
    /* (the deadlock was in the child's atfork handler, before its alarm) */
    int status = 0;
    pid_t got = 0;
    for (int waited = 0; waited < 2000 && (got = waitpid(pid, &status, WNOHANG)) == 0; waited++)
        usleep(10 * 1000);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the fork child deadlocked in its atfork handler (the handler's gc_get_stats)");
    }
    assert_int_equal(got, pid);
    if (WIFSIGNALED(status)) fail_msg("the child died of signal %d (SIGALRM: a deadlock)", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    pthread_mutex_lock(&held_mu);
    held_stage = 2;
    pthread_cond_broadcast(&held_cv);
    pthread_mutex_unlock(&held_mu);
    assert_int_equal(pthread_join(th, NULL), 0);
    gc_root_remove(callback_heap, weak_roots);
    gc_heap_destroy(callback_heap);
    if (reports) fail_msg("%d reports, the last \"%s\"", reports, last_what);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_detach_report_unlocked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_child_report_unlocked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
