/* test_gc_fork_cards.c — a fork child of a generational heap must not
 * trust the card table for the threads it drops (gc/fork.c, gc/thread.c).
 *
 * gc_write is the store, then the card mark (<mulch/gc.h>). A fork child
 * takes over the other threads as the fork found them, at any instruction:
 * one of them may have stored a young object into an old one and not yet
 * dirtied the old object's card. The child's next minor collection then
 * sees an old object on a clean card, does not trace it, and frees the
 * young object it points to (a dangling pointer in a live object).
 *
 * The fork cannot be made to land between those two instructions on
 * demand, so a worker sets up exactly that state by hand: it allocates a
 * young object and stores it into an old one with the store half of
 * gc_write only, then waits (blocking) while the main thread forks. The
 * parent never collects after that store, so only the child sees it.
 * The child runs a minor collection (as an allocation would) and checks
 * the young object survived and gc_verify is clean. Exit statuses as in
 * test_gc_fork.c; a hang is a SIGALRM death.
 */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6763666f726b6364)
#define MULCH_TEST_GC 1
#include <mulch/gc.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mulch_test.h"
#include "gc_internal.h"
#include "gc_mark.h"

typedef struct node {
    void    *next;
    uint64_t id, check;
} node_t;

static void node_trace(void *obj, gc_tracer_t *tracer) { gc_trace_slot(tracer, &((node_t *)obj)->next); }
static const gc_type_t T_NODE = { "fork_cards.node", node_trace, NULL };

static uint64_t node_check(uint64_t id) { return mix64(id ^ UINT64_C(0x5bd1e9955bd1e995)); }

enum { CHILD_OK = 0, CHILD_STATE = 6, CHILD_LOST = 7, CHILD_VERIFY = 8 };

static gc_heap_t *g_heap;
static void *g_old;            /* a registered root: the old object */
static atomic_int g_stored, g_stop;

/* The store half of a gc_write into the old object: the state a fork
 * child inherits when the fork lands between gc_write's two stores. */
static void *half_writer(void *arg) {
    (void)arg;
    gc_thread_t *t = gc_thread_attach(g_heap);
    if (t == NULL) {
        AFAIL("gc_thread_attach failed in the worker");
        atomic_store(&g_stored, 1);
        return NULL;
    }
    node_t *young = gc_alloc(t, &T_NODE, sizeof(node_t));
    if (young == NULL) AFAIL("gc_alloc failed in the worker");
    else {
        young->id = 42;
        young->check = node_check(42);
        ((node_t *)g_old)->next = young; /* no card: gc_write stopped here */
    }
    gc_enter_blocking(t); /* (the parent's own collections go on without us) */
    atomic_store(&g_stored, 1);
    while (!atomic_load(&g_stop)) usleep(1000);
    gc_leave_blocking(t);
    gc_thread_detach(t);
    return NULL;
}

static _Noreturn void child_check(gc_thread_t *t) {
    if (g_heap->threads != t || t->next != NULL) _exit(CHILD_STATE);
    /* the minor collection an allocation would run */
    if (!gc_world_stop(t, true)) _exit(CHILD_STATE);
    gc_collect_locked(g_heap, t, true, GC_REASON_ALLOCATION);
    gc_world_start_heap(g_heap, t);
    node_t *young = ((node_t *)g_old)->next;
    if (young == NULL || !gc_is_marked(g_heap, young)) _exit(CHILD_LOST);
    if (young->id != 42 || young->check != node_check(42)) _exit(CHILD_LOST);
    if (gc_verify(g_heap) != 0) _exit(CHILD_VERIFY);
    gc_collect(t);
    young = ((node_t *)g_old)->next;
    if (young->id != 42 || young->check != node_check(42)) _exit(CHILD_LOST);
    if (gc_verify(g_heap) != 0) _exit(CHILD_VERIFY);
    _exit(CHILD_OK);
}

static void test_gc_fork_child_card_not_marked(void **state) {
    (void)state;
    TEST_START();
    atomic_store(&g_failures, 0);
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.generational = 1;
    o.markers = 1;
    g_heap = gc_heap_create(&o);
    EXPECT_NONNULL(g_heap);
    gc_thread_t *t = gc_thread_attach(g_heap);
    EXPECT_NONNULL(t);
    gc_root_add(g_heap, &g_old);
    g_old = gc_alloc(t, &T_NODE, sizeof(node_t));
    EXPECT_NONNULL(g_old);
    gc_collect(t); /* g_old is old now, its card clean */
    EXPECT_EQ(gc_is_marked(g_heap, g_old), true);
    atomic_store(&g_stored, 0);
    atomic_store(&g_stop, 0);
    pthread_t worker;
    EXPECT_EQ(pthread_create(&worker, NULL, half_writer, NULL), 0);
    gc_enter_blocking(t);
    while (!atomic_load(&g_stored)) usleep(1000);
    gc_leave_blocking(t);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        child_check(t);
    }
    EXPECT_GE(pid, 0);
    int status = 0;
    gc_enter_blocking(t);
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    atomic_store(&g_stop, 1);
    pthread_join(worker, NULL);
    gc_leave_blocking(t);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_OK)
        T_FAIL("the child %s %d (%d: the young object was freed; %d: gc_verify)",
               WIFSIGNALED(status) ? "died of signal" : "exited with",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), CHILD_LOST, CHILD_VERIFY);
    /* The parent's own card was never set: give it the barrier now. */
    gc_write(t, g_old, &((node_t *)g_old)->next, ((node_t *)g_old)->next);
    gc_root_remove(g_heap, &g_old);
    gc_thread_detach(t);
    gc_heap_destroy(g_heap);
    EXPECT_NO_ASYNC_FAILURES();
}

int main(void) {
    mt_init("test_gc_fork_cards");
    mt_env_ignore_markers_under_tsan();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gc_fork_child_card_not_marked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
