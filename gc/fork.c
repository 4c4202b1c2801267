/* fork.c — every heap's locks are held across fork(), and a child's heaps
 * work with the one thread it has.
 *
 * A child has only the thread that called fork. Around every fork
 * (pthread_atfork) the forking thread
 *   1. enters a blocking region of every heap it is attached to
 *      (gc_threads_fork_block), so that a collection stopping the world
 *      meanwhile does not wait for it while it waits for that heap's lock;
 *   2. takes the handles' lock (bridge.c) and the list lock, then, for
 *      each live heap, heap->lock and the
 *      parallel marker's two locks (gc_mark_shared_fork_lock) — the order
 *      the code nests them in. Holding heap->lock, no collection is past
 *      its stop: marking, sweeping and helper markers are idle.
 * The parent releases them and leaves its blocking regions. With
 * conservative_stack, the forking thread's registers and the handler's
 * frames are saved by our own code at both ends (gc_thread_save_context,
 * frames copied up to the handler's caller as a blocking region's are),
 * so a collection that runs while the thread is still BLOCKING — after
 * gc_threads_fork_block and before the heap's lock is taken, or after the
 * parent handler releases it and before the thread leaves its region —
 * finds fork's caller's callee-saved registers wherever glibc's fork left
 * them: in a register (saved), a handler's frame (copied), or glibc's and
 * the caller's frames above (live until the handler returns). The parent
 * saves again before releasing each heap's lock, since the frames the
 * prepare handler's save described are gone by then. The child
 * first renews each heap's condition variables (waiters recorded in them
 * are gone), drops the other threads' records (gc_threads_fork_child_locked:
 * their roots are dropped, a stop or finalizer run of theirs in progress
 * forgotten) and the marker helpers (gc_mark_shared_fork_child), then
 * releases the locks and leaves its blocking regions, running again.
 *
 * Ordering with the pool layer. The heap's code calls the pool holding
 * heap->lock, so the heap locks must be taken before the pool's
 * (pool/fork.c) and released after them. pthread_atfork runs prepare
 * handlers in the reverse order of their registration, parent and child
 * handlers in that order: the pool's must be registered first. Constructors
 * of different files run in an order the link decides, so this file's
 * constructor does not rely on it: it calls pool_fork_register (a
 * pthread_once: the pool's handlers are registered by whichever
 * constructor comes first) before registering its own.
 *
 * Every heap joins the list in gc_heap_create and leaves it in
 * gc_heap_destroy before its locks are destroyed. Code never takes the
 * list lock while holding a heap's lock, nor one heap's lock while holding
 * another's.
 */
#include "gc_internal.h"

static pthread_mutex_t heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static gc_heap_t *heaps; /* heaps_lock */

void gc_heap_list_add(gc_heap_t *heap) {
    pthread_mutex_lock(&heaps_lock);
    heap->fork_prev = NULL;
    heap->fork_next = heaps;
    if (heaps) heaps->fork_prev = heap;
    heaps = heap;
    pthread_mutex_unlock(&heaps_lock);
}

void gc_heap_list_remove(gc_heap_t *heap) {
    pthread_mutex_lock(&heaps_lock);
    if (heap->fork_prev) heap->fork_prev->fork_next = heap->fork_next;
    else heaps = heap->fork_next;
    if (heap->fork_next) heap->fork_next->fork_prev = heap->fork_prev;
    heap->fork_next = heap->fork_prev = NULL;
    pthread_mutex_unlock(&heaps_lock);
}

/* Not inlined into glibc's handler loop (it cannot be, through a pointer):
 * GC_CALLER_SP() is then the loop's stack pointer, whose frame outlives
 * the handler. */
static MULCH_NOINLINE void fork_prepare(void) {
    gc_threads_fork_block(GC_CALLER_SP());
    gc_bridge_fork_lock();
    pthread_mutex_lock(&heaps_lock);
    for (gc_heap_t *heap = heaps; heap; heap = heap->fork_next) {
        pthread_mutex_lock(&heap->lock);
        gc_mark_shared_fork_lock(heap);
    }
}

static MULCH_NOINLINE void fork_parent(void) {
    const void *caller_sp = GC_CALLER_SP();
    for (gc_heap_t *heap = heaps; heap; heap = heap->fork_next) {
        gc_threads_fork_resave_locked(heap, caller_sp);
        gc_mark_shared_fork_unlock(heap);
        pthread_mutex_unlock(&heap->lock);
    }
    pthread_mutex_unlock(&heaps_lock);
    gc_bridge_fork_unlock();
    gc_threads_fork_unblock();
}

static void fork_child(void) {
    for (gc_heap_t *heap = heaps; heap; heap = heap->fork_next) {
        pthread_cond_init(&heap->changed, NULL);
        gc_mark_shared_fork_child(heap);
        gc_threads_fork_child_locked(heap);
        gc_mark_shared_fork_unlock(heap);
        pthread_mutex_unlock(&heap->lock);
    }
    pthread_mutex_unlock(&heaps_lock);
    gc_bridge_fork_unlock();
    gc_threads_fork_unblock(); /* no collection is in progress: no wait */
    gc_threads_fork_child_report(); /* (no lock held: the handler may call back) */
}

/* At load time, like the pool's (pool/fork.c), and after them. */
__attribute__((constructor)) static void gc_fork_handlers_register(void) {
    pool_fork_register();
    (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}
