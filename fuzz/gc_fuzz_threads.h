/* gc_fuzz_threads.h — gc_fuzz's operations with a second mutator thread,
 * blocking regions and the heap's external memory (included once, by
 * gc_fuzz.c, after its model walk, whose run_t, walk and value_of they
 * use):
 *   - op_blocking: the fuzzed thread enters a blocking region; a second
 *     thread attaches to the heap, allocates garbage (leaves and objects
 *     pointing at each other), maybe runs gc_collect (which may move the
 *     blocked thread's objects: the model re-reads every root after the
 *     join), and detaches; then the fuzzed thread leaves. Deterministic:
 *     the fuzzed thread waits for the other one inside the region, and
 *     everything the other one does was read from the input before;
 *   - op_external: gc_external_alloc of a positive or negative number of
 *     bytes (the model keeps the running sum at or above 0; run_end gives
 *     back the rest);
 *   - op_bridge_cycles: gc_report_bridge_cycles finds none (the model's
 *     handles root objects that own only fresh rc objects, never a
 *     handle). */
#ifndef MULCH_GC_FUZZ_THREADS_H
#define MULCH_GC_FUZZ_THREADS_H

#include <pthread.h>

static const gc_type_t T_HELPER_LEAF = { "fuzz.helper.leaf", NULL, NULL };

/* A pair object of the second thread: two slots, traced. */
typedef struct helper_pair {
    void *slot[2];
} helper_pair_t;
static void helper_pair_trace(void *obj, gc_tracer_t *tracer)
{
    helper_pair_t *p = obj;
    gc_trace_range(tracer, p->slot, 2);
}
static const gc_type_t T_HELPER_PAIR = { "fuzz.helper.pair", helper_pair_trace, NULL };

#define HELPER_MAX_ALLOCS 24
typedef struct helper_job {
    gc_heap_t *heap;
    unsigned   count;
    uint16_t   size[HELPER_MAX_ALLOCS];   /* 0: a pair, else a leaf of that size */
    uint8_t    collect;                   /* gc_collect before detaching */
    int        failed;                    /* attach or an allocation failed */
} helper_job_t;

static void *helper_mutator(void *arg)
{
    helper_job_t *job = arg;
    gc_thread_t *t = gc_thread_attach(job->heap);
    if (t == NULL) {
        job->failed = 1;
        return NULL;
    }
    void *keep = NULL; /* the last pair: a root, so its stores go to a live object */
    gc_push_root(t, &keep);
    for (unsigned k = 0; k < job->count; k++) {
        if (job->size[k] == 0) {
            helper_pair_t *p = gc_alloc(t, &T_HELPER_PAIR, sizeof *p);
            if (p == NULL) { job->failed = 1; break; }
            /* fresh, no GC point since: an initializing store */
            gc_write_init(t, p, &p->slot[0], keep);
            keep = p;
        } else {
            void *leaf = gc_alloc(t, &T_HELPER_LEAF, job->size[k]);
            if (leaf == NULL) { job->failed = 1; break; }
            if (keep != NULL) gc_write(t, keep, &((helper_pair_t *)keep)->slot[1], leaf);
        }
    }
    if (job->collect) gc_collect(t);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    return NULL;
}

static void op_blocking(run_t *r)
{
    static helper_job_t job;
    memset(&job, 0, sizeof job);
    job.heap = r->heap;
    job.count = fz_below(&r->in, HELPER_MAX_ALLOCS + 1);
    for (unsigned k = 0; k < job.count; k++) {
        uint8_t b = fz_u8(&r->in);
        job.size[k] = b < 64 ? 0 : (uint16_t)((b - 63) * 24);
    }
    job.collect = fz_u8(&r->in) & 1;
    gc_enter_blocking(r->t);
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, helper_mutator, &job);
    FZ_CHECK(&r->in, rc == 0, "pthread_create failed (%d)", rc);
    pthread_join(thread, NULL);
    gc_leave_blocking(r->t);
    FZ_CHECK(&r->in, !job.failed, "the second mutator could not attach or allocate");
    if (job.collect) r->full_collections++;
}

static void op_external(run_t *r)
{
    uint16_t amount = fz_u16(&r->in);
    ptrdiff_t bytes = (ptrdiff_t)(amount >> 1) * 256;
    if ((amount & 1) && (size_t)bytes > r->external) bytes = (ptrdiff_t)r->external;
    if (amount & 1) {
        gc_external_alloc(r->heap, -bytes);
        r->external -= (size_t)bytes;
    } else {
        gc_external_alloc(r->heap, bytes);
        r->external += (size_t)bytes;
    }
}

static void op_bridge_cycles(run_t *r)
{
    static FILE *devnull;
    if (devnull == NULL) devnull = fopen("/dev/null", "w");
    size_t n = gc_report_bridge_cycles(r->heap, devnull);
    FZ_CHECK(&r->in, n == 0, "gc_report_bridge_cycles found %zu cycle(s), the model makes none", n);
}

#endif /* MULCH_GC_FUZZ_THREADS_H */
