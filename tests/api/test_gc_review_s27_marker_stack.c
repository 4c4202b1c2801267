/* test_gc_review_s27_marker_stack.c — the collector's helper marker
 * threads get a stack of a known size (gc/parallel.c MARKER_STACK_BYTES),
 * not the process's default thread stack: with a default as small as
 * PTHREAD_STACK_MIN (what a small RLIMIT_STACK or an embedder's
 * pthread_setattr_default_np gives), a helper's own ~18.6 KiB tracer
 * overflowed it and the first parallel collection crashed.
 *
 * The collection runs in a forked child (a crash there is a failed
 * check, not a dead test); the child sets the default thread stack to
 * PTHREAD_STACK_MIN, then collects a heap of a few thousand linked
 * objects with 4 markers, and checks the list survived. Deterministic:
 * no randomness (DEFAULT_SEED is only the harness's). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x7332372d73746b30)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>

#include <sys/wait.h>
#include <unistd.h>

#include "mulch_test.h"

enum { LIST_LENGTH = 4000 };

/* The child's work; its exit status: 0 when the list survived, 2 when it
 * did not, 3 when the default stack could not be set. */
static int child_collects_with_small_default_stack(void)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0 || pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN) != 0
        || pthread_setattr_default_np(&attr) != 0)
        return 3;
    pthread_attr_destroy(&attr);
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.markers = 4; /* helpers at any heap size */
    gc_heap_t *h = gc_heap_create(&o);
    if (h == NULL) return 2;
    gc_thread_t *t = gc_thread_attach(h);
    void *head = NULL;
    gc_push_root(t, &head);
    for (uint64_t id = LIST_LENGTH; id >= 1; id--) {
        tobj_t *node = gc_alloc(t, &T_PLAIN, tobj_size(1));
        if (node == NULL) return 2;
        node->magic = OBJ_MAGIC;
        node->id = id;
        node->nwords = 1;
        node->words[0] = payload_word(id, 0);
        gc_write(t, node, &node->slot[0], head);
        head = node;
    }
    for (int i = 0; i < 3; i++) gc_collect(t);
    uint64_t id = 1;
    for (tobj_t *node = head; node; node = node->slot[0], id++)
        if (node->magic != OBJ_MAGIC || node->id != id || node->words[0] != payload_word(id, 0)) return 2;
    int status = id == LIST_LENGTH + 1u && gc_verify(h) == 0 ? 0 : 2;
    gc_pop_roots(t, 1);
    gc_heap_destroy(h);
    return status;
}

static void test_markers_run_with_a_tiny_default_thread_stack(void **state)
{
    (void)state;
    TEST_START();
    fflush(NULL);
    pid_t pid = fork();
    EXPECT_GE(pid, 0);
    if (pid == 0) _exit(child_collects_with_small_default_stack());
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        T_FAIL("the collection with a %d-byte default thread stack died of signal %d", (int)PTHREAD_STACK_MIN,
               WTERMSIG(status));
    if (!WIFEXITED(status)) T_FAIL("the child neither exited nor died of a signal: status %d", status);
    if (WEXITSTATUS(status) == 3) {
        print_message("  pthread_setattr_default_np refused the size: skipped\n");
        skip();
    }
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

int main(void)
{
    mt_init("test_gc_review_s27_marker_stack");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_markers_run_with_a_tiny_default_thread_stack),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
