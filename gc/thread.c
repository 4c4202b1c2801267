/* thread.c — mutator threads and stopping the world.
 *
 * Every attached thread is in one state (heap->lock): RUNNING (may touch
 * GC pointers), PARKED (waiting at a safepoint for a collection to end) or
 * BLOCKING (inside gc_enter_blocking: touches no GC pointer). heap->running
 * counts RUNNING threads. A collector sets heap->collecting and
 * stop_requested, leaves the RUNNING count itself, and waits on
 * heap->changed until running == 0; every thread that parks, blocks or
 * detaches signals it. While collecting is set no thread becomes RUNNING.
 * A thread's bins, root stack and vectors are read by the collector only in
 * that window, so they need no lock of their own.
 *
 * Across fork (gc/fork.c) the forking thread is BLOCKING in each of its
 * heaps; in the child, only its record stays attached (the others are
 * dropped with their roots: gc_threads_fork_child_locked).
 */
#include "gc_internal.h"
#include "gc_weak.h"

typedef struct gc_attachment {
    gc_heap_t            *heap;
    gc_thread_t          *thread;
    struct gc_attachment *next;
} gc_attachment_t;

static _Thread_local gc_attachment_t *attachments MULCH_TLS_MODEL;

/* A thread that exits while attached is detached by this key destructor,
 * so that collections never wait for a thread that is gone. */
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
static bool exit_key_ok;

static void thread_detach(gc_thread_t *t);
static void thread_block(gc_thread_t *t, const void *caller_sp);

static void thread_exit_detach(void *unused) {
    (void)unused;
    /* The thread's function has returned: the slots its root stacks name
     * were in frames that are gone (this hook's own frames reuse them).
     * Every heap's stack is dropped first, under that heap's lock (a
     * blocking thread's stack is read by collections at any time), since
     * detaching from one heap may wait for its collection while another
     * heap's collections read this thread's stack. Before the hook runs
     * nothing can be done: a thread that returns inside a blocking region
     * with roots pushed leaves them to collections until then. */
    for (gc_attachment_t *a = attachments; a; a = a->next) {
        pthread_mutex_lock(&a->heap->lock);
        a->thread->root_depth = 0;
        gc_finalizer_thread_exiting_locked(a->heap, a->thread);
        /* A gc_heap_destroy this thread was running (it ended in one of
         * the destroy's finalizers or rc destroy callbacks) never ends:
         * forgotten, as in a fork child, so that another thread may
         * destroy the heap (and run the finalizers not yet run); it was
         * refused for ever as "called inside a finalizer". */
        gc_heap_destroy_forget_locked(a->heap);
        pthread_mutex_unlock(&a->heap->lock);
    }
    /* Then it blocks in every heap (it touches no GC pointer any more), so
     * that waiting for one heap's collection to end before leaving it, it
     * is waited for by no other heap's: two threads leaving two heaps in
     * opposite orders while both heaps collect waited for each other's
     * collections, each counted as running by the other's. */
    for (gc_attachment_t *a = attachments; a; a = a->next) thread_block(a->thread, NULL);
    while (attachments) thread_detach(attachments->thread);
}

static void exit_key_create(void) {
    exit_key_ok = pthread_key_create(&exit_key, thread_exit_detach) == 0;
}

gc_thread_t *gc_thread_current(gc_heap_t *heap) {
    for (gc_attachment_t *a = attachments; a; a = a->next)
        if (a->heap == heap) return a->thread;
    return NULL;
}

/* Whether t is a record the calling thread attached and still holds. Reads
 * only this thread's list, never *t: a detached record is unmapped, and
 * another thread's may be changing. Reports "<fn>: ..." when not. */
bool gc_thread_check(const gc_thread_t *t, const char *fn) {
    for (gc_attachment_t *a = attachments; a; a = a->next)
        if (a->thread == t) return gc_outside_tracing(fn, t);
    char what[160];
    snprintf(what, sizeof what, "%s: not a thread attached by the calling thread (detached, another thread's, or NULL)",
             fn);
    mulch_report(what, t);
    return false;
}

/* heap->lock held; returns with it held, after any collection ended. Only
 * a RUNNING thread parks: a blocking one is not in heap->running, and
 * parking it would take it out a second time (the collector would then
 * start while another thread still runs). */
static void gc_park_locked(gc_heap_t *heap, gc_thread_t *t) {
    if (!heap->collecting || t->state != GC_RUNNING) return;
    if (heap->options.conservative_stack) gc_thread_save_context(t, NULL);
    t->state = GC_PARKED;
    heap->running--;
    pthread_cond_broadcast(&heap->changed);
    while (heap->collecting) gc_cond_wait(&heap->changed, &heap->lock);
    t->state = GC_RUNNING;
    heap->running++;
}

gc_thread_t *gc_thread_attach(gc_heap_t *heap) {
    if (!gc_heap_given(heap, "gc_thread_attach")) return NULL;
    gc_thread_t *existing = gc_thread_current(heap);
    if (existing) {
        mulch_report("gc_thread_attach: thread already attached to this heap", heap);
        return existing;
    }
    gc_thread_t *t = os_map(sizeof(gc_thread_t));
    gc_attachment_t *a = os_map(sizeof(gc_attachment_t));
    if (t == NULL || a == NULL) {
        os_unmap(t, sizeof(gc_thread_t));
        os_unmap(a, sizeof(gc_attachment_t));
        return NULL;
    }
    t->heap = heap;
    t->generational = heap->generational;
    gc_thread_empty_card_cache(t);
    gc_thread_init_typed_cache(t);
    if (heap->options.conservative_stack) gc_thread_init_stack(t);
    pthread_mutex_lock(&heap->lock);
    while (heap->collecting) gc_cond_wait(&heap->changed, &heap->lock);
    t->state = GC_RUNNING;
    t->next = heap->threads;
    if (heap->threads) heap->threads->prev = t;
    heap->threads = t;
    heap->running++;
    pthread_mutex_unlock(&heap->lock);
    a->heap = heap;
    a->thread = t;
    a->next = attachments;
    attachments = a;
    pthread_once(&exit_key_once, exit_key_create);
    if (exit_key_ok) pthread_setspecific(exit_key, a);
    return t;
}

static void gc_thread_free(gc_thread_t *t) {
    gc_root_stack_free(t);
    gc_vector_free(&t->finalizable);
    gc_vector_free(&t->weaks);
    os_unmap(t, sizeof(gc_thread_t));
}

/* What gc_thread_unlink_locked could not hand to the heap. */
enum { LOST_FINALIZERS = 1u, LOST_WEAKS = 2u };

/* Said once the heap's lock is released: the error handler may call back
 * into the heap (gc_get_stats, gc_collect), which would wait for it. */
static void report_lost(unsigned lost, const gc_thread_t *t) {
    if (lost & LOST_FINALIZERS)
        mulch_report("gc_thread_detach: out of memory: finalizers of this thread's objects are lost", t);
    if (lost & LOST_WEAKS)
        mulch_report("gc_thread_detach: out of memory: weak references this thread made are cleared", t);
}

/* heap->lock held, world not collecting: the thread's state moves into the
 * heap and the thread leaves the list. Returns what was lost (LOST_*), for
 * the caller to report after unlocking. */
static unsigned gc_thread_unlink_locked(gc_heap_t *heap, gc_thread_t *t) {
    gc_thread_release_bins_locked(t);
    /* The thread's lists are freed with it: they must reach the heap. Both
     * are tried (a failed first merge once skipped the second). */
    bool finalizers_kept = gc_vector_merge(&heap->finalizable, &t->finalizable);
    bool weaks_kept = gc_vector_merge(&heap->weaks, &t->weaks);
    /* No collection would clear these any more: once a target died,
     * gc_weak_get would hand out its freed (or reused) cell. Cleared now,
     * as if their targets had died. (Listed weak objects are allocated:
     * the last collection pruned the dead ones.) */
    if (!weaks_kept) gc_weak_list_clear(&t->weaks);
    heap->detached_bytes_allocated += atomic_load_explicit(&t->bytes_allocated, memory_order_relaxed);
    if (t->prev) t->prev->next = t->next;
    else heap->threads = t->next;
    if (t->next) t->next->prev = t->prev;
    if (t->state == GC_RUNNING) heap->running--;
    t->state = GC_DETACHED;
    pthread_cond_broadcast(&heap->changed);
    return (finalizers_kept ? 0u : LOST_FINALIZERS) | (weaks_kept ? 0u : LOST_WEAKS);
}

static void gc_attachment_forget(gc_heap_t *heap) {
    for (gc_attachment_t **link = &attachments; *link; link = &(*link)->next) {
        if ((*link)->heap == heap) {
            gc_attachment_t *a = *link;
            *link = a->next;
            os_unmap(a, sizeof(gc_attachment_t));
            return;
        }
    }
}

/* t is the calling thread's. */
static void thread_detach(gc_thread_t *t) {
    gc_heap_t *heap = t->heap;
    pthread_mutex_lock(&heap->lock);
    if (t->state == GC_BLOCKING) {
        while (heap->collecting) gc_cond_wait(&heap->changed, &heap->lock);
    } else {
        gc_park_locked(heap, t);
    }
    unsigned lost = gc_thread_unlink_locked(heap, t);
    pthread_mutex_unlock(&heap->lock);
    gc_attachment_forget(heap);
    gc_thread_free(t);
    report_lost(lost, t);
}

void gc_thread_detach(gc_thread_t *t) {
    if (t == NULL) return;
    /* A second detach would read the unmapped record; another thread's
     * would free a record its owner still uses (and keeps in its list). */
    if (!gc_thread_check(t, "gc_thread_detach")) return;
    gc_heap_t *heap = t->heap;
    pthread_mutex_lock(&heap->lock);
    /* (destroying: an rc destroy callback that gc_heap_destroy runs outside
     * a finalizer run, under the same rules; the destroy goes on with this
     * record) */
    bool in_finalizer = (heap->finalizing && heap->finalizer_thread == t)
                        || (heap->destroying && pthread_equal(heap->destroyer, pthread_self()));
    pthread_mutex_unlock(&heap->lock);
    if (in_finalizer) {
        /* gc_run_finalizers goes on with this record after the finalizer */
        mulch_report("gc_thread_detach: called inside a finalizer", t);
        return;
    }
    thread_detach(t);
}

void gc_thread_destroy_current(gc_heap_t *heap) {
    gc_thread_t *t = gc_thread_current(heap);
    if (t) thread_detach(t);
}

bool gc_world_stop(gc_thread_t *self, bool wait_only) {
    gc_heap_t *heap = self->heap;
    pthread_mutex_lock(&heap->lock);
    if (heap->collecting) {
        /* The stop may be a gc_verify's or a bridge report's, which free
         * nothing: only a collection that ran meanwhile stands in for the
         * caller's (else an allocation at max_heap returned NULL). */
        uint64_t collections = heap->collections;
        gc_park_locked(heap, self);
        if (wait_only && heap->collections != collections) {
            pthread_mutex_unlock(&heap->lock);
            return false;
        }
    }
    heap->collecting = true;
    atomic_store_explicit(&heap->stop_requested, 1, memory_order_relaxed);
    heap->running--;
    while (heap->running > 0) gc_cond_wait(&heap->changed, &heap->lock);
    return true;
}

/* The same for callers that may not be attached (gc_verify, destroy). */
bool gc_world_stop_heap(gc_heap_t *heap, gc_thread_t *self) {
    pthread_mutex_lock(&heap->lock);
    while (heap->collecting) {
        if (self && self->state == GC_RUNNING) gc_park_locked(heap, self);
        else gc_cond_wait(&heap->changed, &heap->lock);
    }
    heap->collecting = true;
    atomic_store_explicit(&heap->stop_requested, 1, memory_order_relaxed);
    if (self && self->state == GC_RUNNING) heap->running--;
    while (heap->running > 0) gc_cond_wait(&heap->changed, &heap->lock);
    return true;
}

void gc_world_start_heap(gc_heap_t *heap, gc_thread_t *self) {
    atomic_store_explicit(&heap->stop_requested, 0, memory_order_relaxed);
    heap->collecting = false;
    if (self && self->state == GC_RUNNING) heap->running++;
    pthread_cond_broadcast(&heap->changed);
    pthread_mutex_unlock(&heap->lock);
}

void gc_safepoint_slow(gc_thread_t *t) {
    if (!gc_outside_tracing("gc_safepoint", t)) return;
    gc_heap_t *heap = t->heap;
    pthread_mutex_lock(&heap->lock);
    gc_park_locked(heap, t);
    pthread_mutex_unlock(&heap->lock);
}

/* Another thread's record is refused where it matters, when a stop is
 * requested (the common path stays a load and a branch): parked from here,
 * it counted its owner as stopped while the owner ran on, through the
 * collection. */
void gc_safepoint(gc_thread_t *t) {
    if (mulch_unlikely(atomic_load_explicit(&t->heap->stop_requested, memory_order_relaxed))
        && gc_thread_check(t, "gc_safepoint"))
        gc_safepoint_slow(t);
}

/* Regions nest (blocking_depth): a helper that brackets its own blocking
 * call may run inside a caller's region without ending it, which would
 * leave the caller waiting as a RUNNING thread, every collection waiting
 * for it in turn. t is the calling thread's. caller_sp: see
 * gc_thread_save_context (the library's frames below it die when the
 * entry point returns, with the caller's registers they saved). */
static void thread_block(gc_thread_t *t, const void *caller_sp) {
    if (t->blocking_depth++ > 0) return;
    gc_heap_t *heap = t->heap;
    pthread_mutex_lock(&heap->lock);
    if (t->state == GC_RUNNING) {
        if (heap->options.conservative_stack) gc_thread_save_context(t, caller_sp);
        t->state = GC_BLOCKING;
        heap->running--;
        pthread_cond_broadcast(&heap->changed);
    }
    pthread_mutex_unlock(&heap->lock);
}

/* The end of the outermost region (blocking_depth back to 0): waits for
 * a collection in progress to end, then runs again. */
static void thread_unblock(gc_thread_t *t) {
    gc_heap_t *heap = t->heap;
    pthread_mutex_lock(&heap->lock);
    while (heap->collecting) gc_cond_wait(&heap->changed, &heap->lock);
    if (t->state == GC_BLOCKING) {
        t->state = GC_RUNNING;
        heap->running++;
    }
    pthread_mutex_unlock(&heap->lock);
}

void gc_thread_leave_blocking_all(gc_thread_t *t) {
    if (t->blocking_depth == 0) return;
    t->blocking_depth = 0;
    thread_unblock(t);
}

void gc_enter_blocking(gc_thread_t *t) {
    if (!gc_thread_check(t, "gc_enter_blocking")) return;
    thread_block(t, GC_CALLER_SP());
}

void gc_leave_blocking(gc_thread_t *t) {
    if (!gc_thread_check(t, "gc_leave_blocking")) return;
    if (t->blocking_depth == 0) {
        /* A RUNNING thread waiting below for the collection to end would
         * deadlock with the collector, which waits for it to stop. */
        mulch_report("gc_leave_blocking: not in a blocking region (no matching gc_enter_blocking)", t);
        return;
    }
    if (--t->blocking_depth > 0) return;
    thread_unblock(t);
    gc_run_finalizers(t);
}

/* ---- fork (gc/fork.c) ------------------------------------------------------
 * The forking thread blocks in every heap it is attached to before the
 * prepare handler takes the heaps' locks: a collection that is stopping
 * the world (its stopper holds heap->lock between waits for the RUNNING
 * count to reach 0) then goes on without it, instead of waiting for a
 * thread that waits for its lock. caller_sp is the prepare handler's
 * caller's (GC_CALLER_SP): the handler's own frames, where fork's caller's
 * callee-saved registers may have been pushed, are copied as a blocking
 * region's are, since the handler goes on running (and overwriting them)
 * while such a collection scans the thread. */
void gc_threads_fork_block(const void *caller_sp) {
    for (gc_attachment_t *a = attachments; a; a = a->next) thread_block(a->thread, caller_sp);
}

/* The parent handler, heap->lock still held: the context the prepare
 * handler saved describes frames that are gone (the prepare handler
 * returned, the fork system call ran); once the lock is released a
 * collection may scan this thread before it leaves its region. Saved
 * again here, from the parent handler's frames, so that fork's caller's
 * registers are where our own code put them (saved registers, copied
 * frames, or the live frames above caller_sp), whatever glibc's fork did
 * with them. Only for the regions fork itself entered (depth 1: the prepare
 * handler's was the outermost): a region the caller was in already keeps
 * the context its gc_enter_blocking saved. */
void gc_threads_fork_resave_locked(gc_heap_t *heap, const void *caller_sp) {
    if (!heap->options.conservative_stack) return;
    gc_thread_t *t = gc_thread_current(heap);
    if (t != NULL && t->blocking_depth == 1 && t->state == GC_BLOCKING)
        gc_thread_save_context(t, caller_sp);
}

/* The parent's and the child's. No finalizer runs (gc_leave_blocking's
 * would): this is an atfork handler, and the next safepoint or blocking
 * region's end runs them anyway. */
void gc_threads_fork_unblock(void) {
    for (gc_attachment_t *a = attachments; a; a = a->next)
        if (--a->thread->blocking_depth == 0) thread_unblock(a->thread);
}

/* What the child's drops lost (the child has one thread), said by
 * gc_threads_fork_child_report once every lock is released: once per kind,
 * naming the last such record. */
static unsigned fork_child_lost;
static const gc_thread_t *fork_child_lost_thread;

/* In the child the other threads' records are dropped: their threads are
 * gone and would be waited for by every stop. Their root stacks go with
 * them (the frames those slots were in belong to threads that will never
 * run, and never pop them); their bins, finalizable objects and weak
 * references reach the heap as at a detach. Their attachment records are
 * in their own thread-local lists, out of reach: a small mapping each
 * stays behind. A collection some other thread was starting (collecting
 * set while it waited for the RUNNING count: the prepare handler held the
 * lock, so it had got no further) never happened, and a finalizer run of
 * another thread's ends: the object it was finalizing is still pending
 * (it leaves `pending` when its finalizer returns) and its finalizer runs
 * again, in the child, from the start; a gc_heap_destroy of another
 * thread's is forgotten (unless it was releasing the spans). */
void gc_threads_fork_child_locked(gc_heap_t *heap) {
    gc_thread_t *self = gc_thread_current(heap);
    bool dropped = false;
    for (gc_thread_t *t = heap->threads, *next; t; t = next) {
        next = t->next;
        if (t == self) continue;
        t->root_depth = 0;
        unsigned lost = gc_thread_unlink_locked(heap, t);
        if (lost) {
            fork_child_lost |= lost;
            fork_child_lost_thread = t;
        }
        gc_thread_free(t);
        dropped = true;
    }
    /* A dropped thread may have been inside gc_write, between the store
     * and the card mark (<mulch/gc.h>): an old object may point to a young
     * one on a clean card, which a minor collection would not trace (it
     * would free the young object under it). The next collection is full,
     * and gc_verify skips the barrier check until then. */
    if (dropped && heap->generational) heap->next_full = true;
    if (heap->finalizing && heap->finalizer_thread != self) {
        heap->finalizing = false;
        heap->finalizer_thread = NULL;
    }
    /* A destroy another thread had begun never ends here: forgotten, so
     * that the child may destroy the heap itself (its finalizers not yet
     * run, and the one in progress, run then) — unless it was giving the
     * spans back already, past which the heap is not to be used. */
    if (heap->destroying && !heap->destroy_final && !pthread_equal(heap->destroyer, pthread_self()))
        heap->destroying = false;
    heap->collecting = false;
    atomic_store_explicit(&heap->stop_requested, 0, memory_order_relaxed);
    /* (a stopper had counted itself out of running already, which
     * gc_thread_unlink_locked counted again: count afresh) */
    heap->running = self && self->state == GC_RUNNING ? 1u : 0u;
}

void gc_threads_fork_child_report(void) {
    unsigned lost = fork_child_lost;
    fork_child_lost = 0;
    report_lost(lost, fork_child_lost_thread);
}

void gc_threads_flush(gc_heap_t *heap) {
    for (gc_thread_t *t = heap->threads; t; t = t->next) {
        gc_thread_retire_bins(t);
        gc_vector_append(&heap->finalizable, &t->finalizable);
        gc_vector_append(&heap->weaks, &t->weaks);
    }
}
