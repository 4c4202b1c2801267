/* thread_heap.c — one private heap per (thread, pool), found through TLS.
 *
 * mulch_tls caches the heap of the pool this thread used last; a miss walks
 * the thread's own list (heap_lookup_slow), creating the heap on first use.
 * Pool ids are never reused, so a stale cache entry for a destroyed pool can
 * never match a new pool, even one created at the same address.
 *
 * registry_lock orders the two events that retire a heap:
 *   - its thread exits (thread_exit, a pthread key destructor): the heap's
 *     spans are abandoned to the pool, then the heap is recycled;
 *   - its pool is destroyed (heaps_forget_pool): heaps of the calling thread
 *     are recycled at once, other threads' heaps are marked dead and
 *     recycled by their thread later (at exit or its next heap creation).
 * A heap's `dead` flag is read and written only under registry_lock.
 * A thread whose destructor ran (tls_cache_t.exited) and that allocates
 * again gets a heap for that allocation only: heaps_abandon_exited, the
 * same work as thread_exit, gives it up at once (alloc.c).
 * Retired heap structs go to a recycle list instead of back to the OS: a
 * remote free may still store to a stale owner's full_pending.
 */
#include "pool_internal.h"

_Thread_local tls_cache_t mulch_tls MULCH_TLS_MODEL;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
static bool exit_key_ok;
static thread_heap_t *recycled; /* registry_lock */

/* Caller holds registry_lock. */
static void heap_recycle_locked(thread_heap_t *heap) {
    heap->recycle_next = recycled;
    recycled = heap;
}

static thread_heap_t *heap_new(void) {
    pthread_mutex_lock(&registry_lock);
    thread_heap_t *heap = recycled;
    if (heap) recycled = heap->recycle_next;
    pthread_mutex_unlock(&registry_lock);
    if (heap == NULL) return os_map(sizeof(thread_heap_t));
    /* full_pending is last and is reset with atomic stores: stale remote
     * freers may store to it concurrently. */
    memset(heap, 0, offsetof(thread_heap_t, full_pending));
    for (unsigned c = 0; c < MULCH_MAX_CLASSES; c++)
        atomic_store_explicit(&heap->full_pending[c], 0, memory_order_relaxed);
    return heap;
}

static void thread_exit(void *unused) {
    (void)unused;
    pthread_mutex_lock(&registry_lock);
    thread_heap_t *heap = mulch_tls.list;
    mulch_tls.list = NULL;
    mulch_tls.heap = NULL;
    mulch_tls.pool_id = 0;
    mulch_tls.exited = true;
    while (heap) {
        thread_heap_t *next = heap->thread_next;
        if (!heap->dead) heap_abandon(heap);
        heap_recycle_locked(heap);
        heap = next;
    }
    pthread_mutex_unlock(&registry_lock);
}

void heaps_abandon_exited(void) {
    thread_exit(NULL);
}

static void exit_key_create(void) {
    exit_key_ok = pthread_key_create(&exit_key, thread_exit) == 0;
}

/* Unmaps this thread's heaps whose pool is gone. Caller holds registry_lock. */
static void heaps_sweep_dead_locked(void) {
    thread_heap_t **link = &mulch_tls.list;
    while (*link) {
        thread_heap_t *heap = *link;
        if (heap->dead) {
            *link = heap->thread_next;
            heap_recycle_locked(heap);
        } else {
            link = &heap->thread_next;
        }
    }
}

static thread_heap_t *heap_find(pool_t *pool) {
    for (thread_heap_t *heap = mulch_tls.list; heap; heap = heap->thread_next) {
        if (heap->pool_id == pool->id) {
            mulch_tls.pool_id = pool->id;
            mulch_tls.heap = heap;
            return heap;
        }
    }
    return NULL;
}

thread_heap_t *heap_lookup_for_free(pool_t *pool) {
    return mulch_tls.exited ? heap_find(pool) : heap_lookup_slow(pool);
}

thread_heap_t *heap_lookup_slow(pool_t *pool) {
    thread_heap_t *found = heap_find(pool);
    if (found) return found;
    pthread_once(&exit_key_once, exit_key_create);
    thread_heap_t *heap = heap_new();
    if (heap == NULL) return NULL;
    heap->pool_id = pool->id;
    heap->pool = pool;

    pthread_mutex_lock(&registry_lock);
    heaps_sweep_dead_locked();
    heap->thread_next = mulch_tls.list;
    mulch_tls.list = heap;
    pthread_mutex_unlock(&registry_lock);

    pthread_mutex_lock(&pool->lock);
    heap->pool_next = pool->heaps;
    if (pool->heaps) pool->heaps->pool_prev = heap;
    pool->heaps = heap;
    pthread_mutex_unlock(&pool->lock);

    if (exit_key_ok) pthread_setspecific(exit_key, heap);
    mulch_tls.pool_id = pool->id;
    mulch_tls.heap = heap;
    return heap;
}

void heaps_forget_pool(pool_t *pool) {
    pthread_mutex_lock(&registry_lock);
    for (thread_heap_t *heap = pool->heaps; heap; heap = heap->pool_next) heap->dead = 1;
    heaps_sweep_dead_locked();
    if (mulch_tls.pool_id == pool->id) {
        mulch_tls.pool_id = 0;
        mulch_tls.heap = NULL;
    }
    pool->heaps = NULL;
    pthread_mutex_unlock(&registry_lock);
}

void heap_registry_lock(void) { pthread_mutex_lock(&registry_lock); }
void heap_registry_unlock(void) { pthread_mutex_unlock(&registry_lock); }
