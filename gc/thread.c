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
 *
 * Which records a thread holds is its own thread-local list (attachments,
 * linked through the records' attached_next): gc_thread_check validates
 * a record a caller passes against the calling thread's list, never by
 * reading the record. Attaching and detaching cost no system call in the
 * common case: a detached record goes into its heap's cache
 * (heap->thread_cache, heap->lock, at most GC_THREAD_CACHE records) with
 * its first-size root stack and lists still mapped, and the next attach
 * takes it and clears it (thread_record_reset). Invariants of a cached
 * record: it is in no thread's list and not in heap->threads (no
 * collection reads it), state GC_DETACHED, no roots and root_capacity 0
 * (a stale gc_push_root reaches the checked slow path), empty lists, bins
 * retired (a stale gc_alloc reaches the checked slow path), no card cache.
 * A record is recycled only within its heap, and is valid only from the
 * thread whose list names it: a stale pointer used by the thread that
 * detached it is reported (it is no longer in that thread's list), even
 * once another thread holds the record. (The same thread attaching again
 * may get the same record back: its old pointer then names its new
 * attachment, as an unmapped record's address could before.)
 * gc_heap_destroy unmaps the cache (gc_thread_cache_release); a fork
 * child keeps it (it is consistent under heap->lock, which fork holds).
 */
#include "gc_internal.h"
#include "gc_weak.h"

static _Thread_local gc_thread_t *attachments MULCH_TLS_MODEL;

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
    for (gc_thread_t *a = attachments; a; a = a->attached_next) {
        pthread_mutex_lock(&a->heap->lock);
        a->root_depth = 0;
        gc_finalizer_thread_exiting_locked(a->heap, a);
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
    for (gc_thread_t *a = attachments; a; a = a->attached_next) thread_block(a, NULL);
    while (attachments) thread_detach(attachments);
}

static void exit_key_create(void) {
    exit_key_ok = pthread_key_create(&exit_key, thread_exit_detach) == 0;
}

gc_thread_t *gc_thread_current(gc_heap_t *heap) {
    for (gc_thread_t *a = attachments; a; a = a->attached_next)
        if (a->heap == heap) return a;
    return NULL;
}

/* Whether t is a record the calling thread attached and still holds. Reads
 * only this thread's list (its own records), never *t: a detached record
 * may be unmapped, or cached, or recycled to another thread, whose record
 * may be changing. Reports "<fn>: ..." when not. */
bool gc_thread_check(const gc_thread_t *t, const char *fn) {
    for (const gc_thread_t *a = attachments; a; a = a->attached_next)
        if (a == t) return gc_outside_tracing(fn, t);
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

/* A record from the heap's cache, or NULL. */
static gc_thread_t *thread_cache_take(gc_heap_t *heap) {
    pthread_mutex_lock(&heap->lock);
    gc_thread_t *t = heap->thread_cache;
    if (t != NULL) {
        heap->thread_cache = t->next;
        heap->thread_cache_count--;
    }
    pthread_mutex_unlock(&heap->lock);
    return t;
}

/* A cached record made new: zeroed as a fresh mapping is, but for the
 * first-size root stack and lists it keeps (empty), and for its bins.
 * Those were retired at the detach (no span, no free cell), which is all
 * that a fresh bin's allocation paths read before gc_bin_attach sets the
 * rest; zeroing them too (20 KiB, most of the record) was most of what a
 * cached attach cost. Nothing else of the last attachment survives:
 * typed cache, blocking depth, saved context, allocation count. */
_Static_assert(offsetof(gc_thread_t, bins) + sizeof(((gc_thread_t *)0)->bins) == sizeof(gc_thread_t),
               "the bins end the record: thread_record_reset zeroes what comes before them");
static void thread_record_reset(gc_thread_t *t) {
#if MULCH_ASSERT_LEVEL >= 2
    for (unsigned cls = 0; cls < GC_ALL_CLASSES; cls++)
        mulch_assert_internal(t->bins[cls].span == NULL && t->bins[cls].free_bits == 0);
#endif
    void ***root_stack = t->root_stack;
    gc_vector_t finalizable = t->finalizable, weaks = t->weaks;
    memset(t, 0, offsetof(gc_thread_t, bins));
    t->root_stack = root_stack;
    gc_root_stack_resume(t);
    finalizable.count = weaks.count = 0;
    t->finalizable = finalizable;
    t->weaks = weaks;
}

gc_thread_t *gc_thread_attach(gc_heap_t *heap) {
    if (!gc_heap_given(heap, "gc_thread_attach")) return NULL;
    gc_thread_t *existing = gc_thread_current(heap);
    if (existing) {
        mulch_report("gc_thread_attach: thread already attached to this heap", heap);
        return existing;
    }
    gc_thread_t *t = thread_cache_take(heap);
    if (t != NULL) thread_record_reset(t);
    else if ((t = os_map(sizeof(gc_thread_t))) == NULL) return NULL;
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
    t->attached_next = attachments;
    attachments = t;
    pthread_once(&exit_key_once, exit_key_create);
    /* (any non-NULL value: the destructor runs only for those) */
    if (exit_key_ok) pthread_setspecific(exit_key, t);
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

/* t leaves the calling thread's list. */
static void attachment_forget(gc_thread_t *t) {
    for (gc_thread_t **link = &attachments; *link; link = &(*link)->attached_next) {
        if (*link == t) {
            *link = t->attached_next;
            t->attached_next = NULL;
            return;
        }
    }
}

/* heap->lock held; t unlinked (gc_thread_unlink_locked) and out of its
 * thread's list. Keeps t for the next attach, in the state the opening
 * comment lists; false when the cache is full or t's stack or lists grew
 * (a cached record keeps first-size mappings only: thread_shrink). */
static bool thread_cache_put_locked(gc_heap_t *heap, gc_thread_t *t) {
    if (heap->thread_cache_count >= GC_THREAD_CACHE || !gc_root_stack_cacheable(t)
        || !gc_vector_first_size(&t->finalizable) || !gc_vector_first_size(&t->weaks))
        return false;
    gc_root_stack_park(t);
    /* (lists the heap could not take were reported lost by the caller) */
    t->finalizable.count = t->weaks.count = 0;
    /* a stale gc_write must not mark a card of a chunk gone meanwhile */
    gc_thread_empty_card_cache(t);
    t->prev = NULL;
    t->next = heap->thread_cache;
    heap->thread_cache = t;
    heap->thread_cache_count++;
    return true;
}

/* A detached record's stack and lists that grew past their first size
 * are unmapped (no lock held: the record is out of every list, and the
 * unmapping should not hold up the heap), so that it may be cached;
 * false when there was none. */
static bool thread_shrink(gc_thread_t *t) {
    bool shrunk = false;
    if (!gc_root_stack_cacheable(t)) {
        gc_root_stack_free(t);
        shrunk = true;
    }
    gc_vector_t *lists[] = { &t->finalizable, &t->weaks };
    for (unsigned i = 0; i < 2; i++) {
        if (!gc_vector_first_size(lists[i])) {
            gc_vector_free(lists[i]);
            shrunk = true;
        }
    }
    return shrunk;
}

void gc_thread_cache_release(gc_heap_t *heap) {
    while (heap->thread_cache) {
        gc_thread_t *t = heap->thread_cache;
        heap->thread_cache = t->next;
        gc_thread_free(t);
    }
    heap->thread_cache_count = 0;
}

/* t is the calling thread's. It leaves the thread's list before it may be
 * cached: from then on another thread's attach may take it. */
static void thread_detach(gc_thread_t *t) {
    gc_heap_t *heap = t->heap;
    pthread_mutex_lock(&heap->lock);
    if (t->state == GC_BLOCKING) {
        while (heap->collecting) gc_cond_wait(&heap->changed, &heap->lock);
    } else {
        gc_park_locked(heap, t);
    }
    unsigned lost = gc_thread_unlink_locked(heap, t);
    attachment_forget(t);
    bool cached = thread_cache_put_locked(heap, t);
    pthread_mutex_unlock(&heap->lock);
    if (!cached && thread_shrink(t)) {
        pthread_mutex_lock(&heap->lock);
        cached = thread_cache_put_locked(heap, t);
        pthread_mutex_unlock(&heap->lock);
    }
    if (!cached) gc_thread_free(t);
    report_lost(lost, t); /* (t named, not read) */
}

void gc_thread_detach(gc_thread_t *t) {
    if (t == NULL) return;
    /* A second detach would read a record unmapped or cached (or another
     * thread's by then); another thread's would free a record its owner
     * still uses (and keeps in its list). */
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
    for (gc_thread_t *a = attachments; a; a = a->attached_next) thread_block(a, caller_sp);
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
    for (gc_thread_t *a = attachments; a; a = a->attached_next)
        if (--a->blocking_depth == 0) thread_unblock(a);
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
 * references reach the heap as at a detach. They are freed, not cached:
 * a thread may have been growing its root stack or a list when fork cut
 * it short (the stores keep them readable, not of a size a cached record
 * may keep). Their thread-local lists are gone with their threads (the
 * links are in the records). A collection some other thread was starting (collecting
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
        gc_thread_drop_unfinished(t); /* (a cell it was making) */
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
