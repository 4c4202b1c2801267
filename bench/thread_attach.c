/* thread_attach.c — what a thread pays to attach to a heap and detach
 * again, the way a thread pool's worker does around each task.
 *
 *   build/bench/bench/thread_attach [cycles [pattern]]   (default 200000 a row)
 *
 * One cycle: gc_thread_attach, a few small allocations (one of them kept
 * on the thread's root stack with gc_push_root), gc_pop_roots,
 * gc_thread_detach. Rows:
 *   1 thread      one thread cycling on a heap another thread stays
 *                 attached to (a pool's other workers);
 *   2 threads     two threads cycling at once on one heap (each row's time
 *                 is per cycle of one thread: wall time / cycles a thread);
 *   heap per cycle gc_heap_create, attach, the same work, detach,
 *                 gc_heap_destroy (the Lisp fuzz target's pattern: one
 *                 fresh heap per input), cycles / 20;
 *   pool per cycle pool_create, 100 small pool_allocs, pool_destroy (a
 *                 service's per-request pool), cycles / 20.
 * pattern (1thread, 2threads, heap or pool) runs that row alone (for a profile).
 * Every 1000 cycles the first thread collects (gc_collect, attached for
 * the purpose): attach and detach meet collections as in a real pool.
 * Prints a markdown table, one RESULT line per row on stderr; the ratio
 * column compares each row with the first, measured in the same run.
 * Timings are only comparable within a run on a shared machine: for
 * before/after figures use instruction counts (valgrind --tool=callgrind)
 * or system-call counts (strace -c -f), as docs/performance.md does. */
#define _POSIX_C_SOURCE 200809L
#include <mulch.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct node {
    struct node *next;
    uint64_t     value;
} node_t;

static void node_trace(void *obj, gc_tracer_t *tracer)
{
    gc_trace_slot(tracer, (void **)&((node_t *)obj)->next);
}

static const gc_type_t node_type = { "thread_attach.node", node_trace, NULL };

enum { ALLOCATIONS = 8, COLLECT_EVERY = 1000 };

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* The task a worker runs while attached: a short rooted list. */
static void cycle(gc_heap_t *heap)
{
    gc_thread_t *thread = gc_thread_attach(heap);
    if (thread == NULL) exit(1);
    node_t *head = NULL;
    gc_push_root(thread, (void **)&head);
    for (int i = 0; i < ALLOCATIONS; i++) {
        node_t *n = gc_alloc(thread, &node_type, sizeof *n);
        if (n == NULL) exit(1);
        n->value = (uint64_t)i;
        gc_write(thread, n, (void **)&n->next, head);
        head = n;
    }
    gc_pop_roots(thread, 1);
    gc_thread_detach(thread);
}

typedef struct worker {
    gc_heap_t *heap;
    long       cycles;
    bool       collects;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    for (long i = 0; i < w->cycles; i++) {
        cycle(w->heap);
        if (w->collects && i % COLLECT_EVERY == COLLECT_EVERY - 1) {
            gc_thread_t *t = gc_thread_attach(w->heap);
            if (t == NULL) exit(1);
            gc_collect(t);
            gc_thread_detach(t);
        }
    }
    return NULL;
}

/* ns per cycle of one thread, with `threads` threads cycling on one heap
 * while the main thread stays attached (in a blocking region: it never
 * reaches a GC point) */
static double run_shared(int threads, long cycles)
{
    gc_heap_t *heap = gc_heap_create(NULL);
    gc_thread_t *resident = heap ? gc_thread_attach(heap) : NULL;
    if (resident == NULL) exit(1);
    gc_enter_blocking(resident);
    worker_t workers[2];
    pthread_t ids[2];
    double start = now_ns();
    for (int i = 0; i < threads; i++) {
        workers[i] = (worker_t){ heap, cycles, i == 0 };
        if (pthread_create(&ids[i], NULL, worker_main, &workers[i]) != 0) exit(1);
    }
    for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
    double ns = (now_ns() - start) / (double)cycles;
    gc_leave_blocking(resident);
    gc_thread_detach(resident);
    gc_heap_destroy(heap);
    return ns;
}

static double run_heap_per_cycle(long cycles)
{
    double start = now_ns();
    for (long i = 0; i < cycles; i++) {
        gc_heap_t *heap = gc_heap_create(NULL);
        if (heap == NULL) exit(1);
        cycle(heap);
        gc_heap_destroy(heap);
    }
    return (now_ns() - start) / (double)cycles;
}

/* A pool per cycle (a service's per-request pool): pool_create, 100 small
 * allocations, pool_destroy with them still live. */
static double run_pool_per_cycle(long cycles)
{
    double start = now_ns();
    for (long i = 0; i < cycles; i++) {
        pool_t *pool = pool_create(NULL);
        if (pool == NULL) exit(1);
        for (int k = 0; k < 100; k++) {
            unsigned char *p = pool_alloc(pool, 16 + (size_t)(k % 8) * 16);
            if (p == NULL) exit(1);
            p[0] = (unsigned char)k;
        }
        pool_destroy(pool);
    }
    return (now_ns() - start) / (double)cycles;
}

int main(int argc, char **argv)
{
    long cycles = argc > 1 ? atol(argv[1]) : 200000L;
    if (cycles <= 0) cycles = 200000L;
    const char *only = argc > 2 ? argv[2] : NULL;
    long heap_cycles = cycles / 20 > 0 ? cycles / 20 : 1;
    struct { const char *what, *key; double ns; } rows[] = {
        { "1 thread", "1thread", 0 },
        { "2 threads", "2threads", 0 },
        { "heap per cycle", "heap", 0 },
        { "pool per cycle", "pool", 0 },
    };
    int nrows = (int)(sizeof rows / sizeof rows[0]);
    for (int r = 0; r < nrows; r++) {
        if (only && strcmp(only, rows[r].key) != 0) continue;
        rows[r].ns = r == 3 ? run_pool_per_cycle(heap_cycles)
                   : r == 2 ? run_heap_per_cycle(heap_cycles) : run_shared(r + 1, cycles);
    }
    printf("### attach, %d allocations, push/pop a root, detach: %ld cycles a thread (heap and pool per cycle: %ld)\n\n",
           ALLOCATIONS, cycles, heap_cycles);
    printf("| pattern | ns per cycle | ratio to 1 thread |\n|---|---:|---:|\n");
    for (int r = 0; r < nrows; r++) {
        if (only && strcmp(only, rows[r].key) != 0) continue;
        printf("| %s | %.0f | %.2fx |\n", rows[r].what, rows[r].ns, rows[0].ns > 0 ? rows[r].ns / rows[0].ns : 1.0);
        fprintf(stderr, "RESULT bench=thread_attach pattern=%s ns_per_cycle=%.0f\n", rows[r].key, rows[r].ns);
    }
    return 0;
}
