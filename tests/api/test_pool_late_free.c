/* A thread's last frees can come after mulch's own thread-exit destructor:
 * other pthread key destructors run later, and the C library frees its
 * per-thread buffers after every destructor (which is what happens to every
 * thread under the malloc drop-in). Such a free must not give the exiting
 * thread a new heap: nothing would abandon that heap, and the span it
 * adopted would stay reserved for good, one per thread. */
#define _GNU_SOURCE /* PTHREAD_DESTRUCTOR_ITERATIONS */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include <mulch.h>

enum { THREADS = 64 };

static pool_t *pool;
static pthread_key_t late_key;
static _Thread_local int rounds;

/* Keeps itself registered until the last destructor round, then frees:
 * as late as a key destructor can be. */
static void late_free(void *p) {
    if (++rounds < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(late_key, p);
        return;
    }
    pool_free(pool, p);
}

static void *worker(void *arg) {
    (void)arg;
    void *p = pool_alloc(pool, 100);
    if (p != NULL) pthread_setspecific(late_key, p);
    return p;
}

static void test_pool_free_after_thread_exit_keeps_nothing(void **state) {
    (void)state;
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer tears its thread state down in the last destructor
     * round too; any lock taken after that crashes inside its runtime. */
    skip();
#endif
    pool = pool_create(NULL);
    assert_non_null(pool);
    /* mulch's thread-exit key exists before ours, so ours runs after it. */
    pool_free(pool, pool_alloc(pool, 16));
    assert_int_equal(pthread_key_create(&late_key, late_free), 0);
    for (int i = 0; i < THREADS; i++) {
        pthread_t t;
        void *result = NULL;
        assert_int_equal(pthread_create(&t, NULL, worker, NULL), 0);
        assert_int_equal(pthread_join(t, &result), 0);
        assert_non_null(result);
    }
    pool_stats_t st;
    pool_get_stats(pool, &st);
    printf("after %d threads: %zu live, %zu bytes reserved\n", THREADS, st.live_allocations, st.bytes_reserved);
    assert_int_equal(st.live_allocations, 0);
    /* The late frees go back to spans later threads reuse: a handful of
     * blocks in all, not one 64 KiB block per thread. */
    assert_true(st.bytes_reserved < (size_t)THREADS / 4 * (64u << 10));
    pthread_key_delete(late_key);
    pool_destroy(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_free_after_thread_exit_keeps_nothing),
    };
    return cmocka_run_group_tests_name("pool_late_free", tests, NULL, NULL);
}
