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
 *
 * A thread's heaps are on its list (doubly linked: pool_destroy unlinks
 * the calling thread's heap at once) and, once there are HEAP_TABLE_FROM
 * of them, in its table too (pool id -> heap; the thread alone reads and
 * writes it, so it needs no lock). Every listed heap is in the table
 * while table_complete is set. Other threads' heaps of a destroyed pool
 * are marked dead and counted in heaps_died; each thread sweeps its list
 * for dead heaps at a heap creation: always while its list is short, and
 * once heaps_died has grown by an eighth of a long list since its last
 * sweep, so that creating or destroying pools among thousands costs no
 * walk of them all each time. A heap names its thread by a number, never
 * by an address: a thread whose exit hook never ran (its key could not be
 * made) leaves heaps behind, and its TLS may be another thread's now.
 */
#include "pool_internal.h"

_Thread_local tls_cache_t mulch_tls MULCH_TLS_MODEL;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
static bool exit_key_ok;
static thread_heap_t *recycled; /* registry_lock */
static uint64_t threads_numbered;   /* registry_lock: the last tls_cache_t.serial given */
static uint64_t heaps_died;         /* registry_lock: heaps marked dead by another thread */

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

/* ---- the thread's table of heaps ------------------------------------------ */
#define HEAP_TABLE_MIN     (4096u / sizeof(heap_table_entry_t)) /* one page */
#define HEAP_SWEEP_ALWAYS  64u  /* below this many heaps, sweep at every creation */

/* Pool ids are consecutive: a multiplication spreads them. */
static size_t heap_table_home(uint64_t pool_id) {
    return (size_t)((pool_id * UINT64_C(0x9e3779b97f4a7c15)) >> 20) & mulch_tls.table_mask;
}

static void heap_table_put(thread_heap_t *heap) {
    size_t i = heap_table_home(heap->pool_id);
    while (mulch_tls.table[i].heap != NULL) i = (i + 1) & mulch_tls.table_mask;
    mulch_tls.table[i] = (heap_table_entry_t){ heap->pool_id, heap };
}

static thread_heap_t *heap_table_get(uint64_t pool_id) {
    for (size_t i = heap_table_home(pool_id);; i = (i + 1) & mulch_tls.table_mask) {
        const heap_table_entry_t *entry = &mulch_tls.table[i];
        if (entry->heap == NULL) return NULL;
        if (entry->pool_id == pool_id) return entry->heap;
    }
}

/* Linear probing's deletion: the entries after the hole that would no
 * longer be found move back into it (no tombstones). */
static void heap_table_remove(uint64_t pool_id) {
    size_t mask = mulch_tls.table_mask, hole = heap_table_home(pool_id);
    while (mulch_tls.table[hole].heap != NULL && mulch_tls.table[hole].pool_id != pool_id) hole = (hole + 1) & mask;
    if (mulch_tls.table[hole].heap == NULL) return;
    for (size_t i = (hole + 1) & mask; mulch_tls.table[i].heap != NULL; i = (i + 1) & mask) {
        size_t home = heap_table_home(mulch_tls.table[i].pool_id);
        /* the entry stays unless its home is cyclically outside (hole, i] */
        bool stays = hole < i ? (hole < home && home <= i) : (hole < home || home <= i);
        if (stays) continue;
        mulch_tls.table[hole] = mulch_tls.table[i];
        hole = i;
    }
    mulch_tls.table[hole] = (heap_table_entry_t){ 0, NULL };
}

/* The table made again from the list, sized for it (none below
 * HEAP_TABLE_FROM heaps). When the OS refuses a bigger table the old one
 * stays, with every live heap it had, and table_complete goes false. */
static void heap_table_rebuild(void) {
    size_t count = mulch_tls.heap_count, old_capacity = mulch_tls.table ? mulch_tls.table_mask + 1 : 0;
    size_t capacity = 0;
    if (count >= HEAP_TABLE_FROM) {
        capacity = HEAP_TABLE_MIN;
        while (capacity < 2 * count) capacity *= 2;
    }
    if (capacity != old_capacity) {
        heap_table_entry_t *table = capacity ? os_map(capacity * sizeof *table) : NULL;
        if (capacity && table == NULL) {
            mulch_tls.table_complete = false;
            return;
        }
        if (mulch_tls.table) os_unmap(mulch_tls.table, old_capacity * sizeof *table);
        mulch_tls.table = table;
        mulch_tls.table_mask = capacity ? capacity - 1 : 0;
    } else if (capacity) {
        memset(mulch_tls.table, 0, capacity * sizeof *mulch_tls.table);
    }
    mulch_tls.table_complete = true;
    if (capacity)
        for (thread_heap_t *heap = mulch_tls.list; heap; heap = heap->thread_next) heap_table_put(heap);
}

/* A heap just put on the list. */
static void heap_table_add(thread_heap_t *heap) {
    if (mulch_tls.table && mulch_tls.table_complete && 2 * mulch_tls.heap_count <= mulch_tls.table_mask + 1)
        heap_table_put(heap);
    else if (mulch_tls.heap_count >= HEAP_TABLE_FROM)
        heap_table_rebuild();
}

/* Takes a heap off this thread's list and table. Caller holds registry_lock. */
static void heap_unlist_locked(thread_heap_t *heap) {
    if (heap->thread_prev) heap->thread_prev->thread_next = heap->thread_next;
    else mulch_tls.list = heap->thread_next;
    if (heap->thread_next) heap->thread_next->thread_prev = heap->thread_prev;
    mulch_tls.heap_count--;
    if (mulch_tls.table) heap_table_remove(heap->pool_id);
}

/* Recycles this thread's heaps whose pool is gone, when any heap died
 * since the last sweep and the list is short, or when an eighth of its
 * length died (in any thread): each sweep walks the whole list. Caller
 * holds registry_lock. */
static void heaps_sweep_dead_locked(void) {
    uint64_t died = heaps_died - mulch_tls.dead_seen;
    if (died == 0 || (mulch_tls.heap_count > HEAP_SWEEP_ALWAYS && 8 * died < mulch_tls.heap_count)) return;
    thread_heap_t *heap = mulch_tls.list;
    while (heap) {
        thread_heap_t *next = heap->thread_next;
        if (heap->dead) {
            heap_unlist_locked(heap);
            heap_recycle_locked(heap);
        }
        heap = next;
    }
    mulch_tls.dead_seen = heaps_died;
    if (mulch_tls.table && !mulch_tls.table_complete) heap_table_rebuild();
}

static thread_heap_t *heap_find(pool_t *pool) {
    thread_heap_t *found = mulch_tls.table ? heap_table_get(pool->id) : NULL;
    if (found == NULL && !(mulch_tls.table && mulch_tls.table_complete)) {
        for (thread_heap_t *heap = mulch_tls.list; heap && found == NULL; heap = heap->thread_next)
            if (heap->pool_id == pool->id) found = heap;
    }
    if (found) {
        mulch_tls.pool_id = pool->id;
        mulch_tls.heap = found;
    }
    return found;
}

static void thread_exit(void *unused) {
    (void)unused;
    pthread_mutex_lock(&registry_lock);
    thread_heap_t *heap = mulch_tls.list;
    mulch_tls.list = NULL;
    mulch_tls.heap = NULL;
    mulch_tls.pool_id = 0;
    mulch_tls.exited = true;
    mulch_tls.heap_count = 0;
    heap_table_rebuild(); /* (unmaps it: no heaps) */
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
    if (mulch_tls.serial == 0) {
        mulch_tls.serial = ++threads_numbered;
        mulch_tls.dead_seen = heaps_died;
    }
    heap->owner_serial = mulch_tls.serial;
    heaps_sweep_dead_locked();
    heap->thread_prev = NULL;
    heap->thread_next = mulch_tls.list;
    if (mulch_tls.list) mulch_tls.list->thread_prev = heap;
    mulch_tls.list = heap;
    mulch_tls.heap_count++;
    heap_table_add(heap);
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
    thread_heap_t *heap = pool->heaps;
    while (heap) {
        thread_heap_t *next = heap->pool_next;
        heap->dead = 1;
        if (heap->owner_serial == mulch_tls.serial) {
            heap_unlist_locked(heap);
            heap_recycle_locked(heap);
        } else {
            heaps_died++;
        }
        heap = next;
    }
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
