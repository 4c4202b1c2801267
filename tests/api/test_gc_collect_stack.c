/* test_gc_collect_stack.c — how much of the calling thread's C stack a
 * collection and gc_verify use.
 *
 * A collection may start from an embedder's deep stack (gc_alloc called
 * from a recursive interpreter), so the tracer of whoever holds the heap's
 * lock — span cache and mark stack reserve, some 18 KiB — lives with the
 * heap, not in gc_collect's frame (gc/mark.c, gc_heap_tracer_open). The
 * test runs on a thread whose stack it supplies: it paints the unused part
 * below its frame, collects (or verifies), and finds the deepest byte
 * written. With the tracer (64 cache entries then) on the stack a
 * collection went 13.9 KiB deep and gc_verify 8.1 KiB; the bounds are
 * 10 and 6 KiB (16 KiB under sanitizers, whose frames are bigger).
 * The heap's live set must survive intact, every object counted. A
 * forked child collects and verifies with the tracer it inherited with
 * the heap (its parent collected with it first). As a
 * test_gc_* file it also runs with compaction always and in generational
 * mode. Deterministic (no randomness; the seed is printed for the record). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6373746b31)
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mulch/gc.h>

#include "mulch_test.h"

#define THREAD_STACK (2 * MiB) /* (ThreadSanitizer wants 900 KiB) */
#define PAINT        0xa5u
/* (measured: a collection 6.1 KiB, gc_verify 3.3 KiB, some 2 KiB of which
 * is lazy symbol binding; under ASan 7.1 and 8.2, under TSan 6.4 and 3.3) */
#if MT_SANITIZED
#  define COLLECT_BOUND (16 * KiB)
#  define VERIFY_BOUND  (16 * KiB)
#else
#  define COLLECT_BOUND (10 * KiB)
#  define VERIFY_BOUND  (6 * KiB)
#endif

typedef struct node {
    void  *next;
    size_t id;
} node_t;

static void trace_node(void *obj, gc_tracer_t *tracer)
{
    gc_trace_slot(tracer, &((node_t *)obj)->next);
}
static const gc_type_t T_NODE = { "test.stack.node", trace_node, NULL };

typedef struct job {
    gc_heap_t     *heap;
    unsigned char *stack_low;
    size_t         nodes;
    bool           verify;       /* measure gc_verify instead of gc_collect */
    size_t         depth;        /* bytes below the thread body's frame written */
    size_t         survivors, problems;
} job_t;

/* Paints the stack from low up to a little below this function's frame
 * (clear of it: the loop calls nothing). Memory below the stack pointer:
 * not under valgrind, which flags any access there (the depth is not
 * measured then), nor checked by AddressSanitizer (old frames' redzones
 * may still be poisoned). */
#if defined(__clang__) || defined(__GNUC__)
#  define NO_ASAN __attribute__((no_sanitize_address))
#else
#  define NO_ASAN
#endif
static __attribute__((noinline)) NO_ASAN void paint_below(unsigned char *low)
{
    unsigned char *end = (unsigned char *)__builtin_frame_address(0) - 1024;
    for (volatile unsigned char *p = low; p < end; p++) *p = PAINT;
}

/* The lowest byte from low up that is not paint: how deep the stack went. */
static NO_ASAN unsigned char *deepest_written(unsigned char *low, unsigned char *high)
{
    unsigned char *p = low;
    while (p < high && *(volatile unsigned char *)p == PAINT) p++;
    return p;
}

static void *thread_body(void *arg)
{
    job_t *job = arg;
    gc_thread_t *t = gc_thread_attach(job->heap);
    void *list = NULL;
    gc_push_root(t, &list);
    for (size_t i = 0; i < job->nodes; i++) {
        node_t *n = gc_alloc(t, &T_NODE, sizeof *n);
        if (n == NULL) break;
        n->id = i;
        gc_write_init(t, n, &n->next, list);
        list = n;
    }
    unsigned char *frame = __builtin_frame_address(0);
    bool measure = !MT_ON_VALGRIND();
    if (measure) paint_below(job->stack_low);
    if (job->verify) job->problems = gc_verify(job->heap);
    else gc_collect(t);
    job->depth = measure ? (size_t)(frame - deepest_written(job->stack_low, frame)) : 0;
    size_t count = 0;
    for (node_t *n = list; n != NULL; n = n->next, count++)
        if (n->id != job->nodes - 1 - count) break;
    job->survivors = count;
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    return NULL;
}

static void run_on_painted_stack(job_t *job)
{
    unsigned char *stack = mmap(NULL, THREAD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(stack != MAP_FAILED);
    job->stack_low = stack;
    pthread_attr_t attr;
    assert_int_equal(pthread_attr_init(&attr), 0);
    assert_int_equal(pthread_attr_setstack(&attr, stack, THREAD_STACK), 0);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, &attr, thread_body, job), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    pthread_attr_destroy(&attr);
    munmap(stack, THREAD_STACK);
}

static gc_heap_t *heap_one_marker(void)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.markers = 1; /* the collector's own tracer: no helpers */
    gc_heap_t *h = gc_heap_create(&o);
    assert_non_null(h);
    return h;
}

static void test_collect_stack_depth(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_one_marker();
    job_t job = { .heap = h, .nodes = scaled(20000, 2000) };
    run_on_painted_stack(&job);
    print_message("gc_collect used %zu bytes of stack%s\n", job.depth, MT_ON_VALGRIND() ? " (not measured)" : "");
    EXPECT_EQ(job.survivors, job.nodes);
    EXPECT_LT(job.depth, COLLECT_BOUND); /* (0 under valgrind) */
    gc_heap_destroy(h);
}

static void test_verify_stack_depth(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_one_marker();
    job_t job = { .heap = h, .nodes = scaled(20000, 2000), .verify = true };
    run_on_painted_stack(&job);
    print_message("gc_verify used %zu bytes of stack%s\n", job.depth, MT_ON_VALGRIND() ? " (not measured)" : "");
    EXPECT_EQ(job.problems, 0);
    EXPECT_EQ(job.survivors, job.nodes);
    EXPECT_LT(job.depth, VERIFY_BOUND);
    gc_heap_destroy(h);
}

/* A list of n nodes rooted at *root (prepended: ids count down). */
static void list_build(gc_thread_t *t, void **root, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        node_t *x = gc_alloc(t, &T_NODE, sizeof *x);
        assert_non_null(x);
        x->id = i;
        gc_write(t, x, &x->next, *root);
        *root = x;
    }
}

static size_t list_length(const node_t *x)
{
    size_t n = 0;
    for (; x != NULL; x = x->next) n++;
    return n;
}

static void test_fork_child_collects(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = heap_one_marker();
    gc_thread_t *t = gc_thread_attach(h);
    void *list = NULL, *garbage = NULL;
    gc_push_root(t, &list);
    gc_push_root(t, &garbage);
    size_t n = scaled(20000, 2000);
    list_build(t, &list, n);
    gc_collect(t); /* the heap's tracer has been used */
    pid_t pid = fork();
    EXPECT_GE(pid, 0);
    if (pid == 0) {
        list_build(t, &garbage, n);
        garbage = NULL;
        gc_collect(t);
        bool ok = list_length(list) == n && gc_verify(h) == 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : 99, 0);
    EXPECT_EQ(list_length(list), n);
    gc_pop_roots(t, 2);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_collect_stack");
    mt_env_ignore_markers_under_tsan();
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_collect_stack_depth),
        T(test_verify_stack_depth),
        T(test_fork_child_collects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
