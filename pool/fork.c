/* fork.c — every pool's locks are held across fork().
 *
 * A child has only the thread that called fork; any lock another thread
 * held at that moment would stay held in the child for ever. So, around
 * every fork (pthread_atfork, registered when the library is loaded), the
 * forking thread takes each lock of the pool layer in the order the code
 * nests them — the pool list, the thread-heap registry, each live pool's
 * lock, the chunk map, the retired chunk ranges (os.c), the error
 * handler's — and releases them, in the parent and in the child, once the
 * fork is done (the child inherits the retired set with the read-only
 * mappings it describes). Every pool joins the list in pool_create and
 * leaves it in pool_destroy. The default pool's
 * creation lock is not taken (pool.c says why): the child makes it anew.
 *
 * The same lock keeps the live pools' ids in a sorted array, so that
 * pool_id_alive is a binary search: the rc bridge asks it for every owned
 * reference a collection releases, and for every ownership pair after a
 * pool_destroy. Walking the list instead made one collection of 100,000
 * pairs take 3.2 s with 2,000 pools, 18 s with 10,000. Ids only grow, so
 * a new pool's entry goes at (or, after a concurrent pool_create, near)
 * the end. The array is mapped through os.c (the malloc drop-in's pools
 * cannot use malloc), grows by doubling (pool_create fails when it
 * cannot) and shrinks by halves as pools go.
 *
 * The collector's heap locks are taken by gc/fork.c's handlers, which
 * run before this prepare and after this release (the heap's code calls
 * the pool with its lock held). pthread_atfork runs prepare handlers in
 * reverse order of registration, so this file's must be registered
 * first: pool_fork_register does it once, whichever of the two files'
 * constructors runs first (their order is the link order's business).
 */
#include "pool_internal.h"

static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static pool_t *pools; /* pools_lock */

/* The live pools by id, ascending (pools_lock). */
typedef struct pool_id_entry {
    uint64_t      id;
    const pool_t *pool;
} pool_id_entry_t;
#define POOL_IDS_MIN_CAPACITY (4096 / sizeof(pool_id_entry_t)) /* one page */
static pool_id_entry_t *live_ids;
static size_t live_count, live_capacity;

/* The first entry whose id is not below id (live_count when none). */
static size_t live_ids_lower_bound(uint64_t id) {
    size_t low = 0, high = live_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (live_ids[middle].id < id) low = middle + 1;
        else high = middle;
    }
    return low;
}

static bool live_ids_reserve_locked(void) {
    if (live_count < live_capacity) return true;
    size_t capacity = live_capacity ? 2 * live_capacity : POOL_IDS_MIN_CAPACITY;
    pool_id_entry_t *grown = live_ids ? os_remap(live_ids, live_capacity * sizeof *live_ids, capacity * sizeof *live_ids)
                                      : os_map(capacity * sizeof *live_ids);
    if (grown == NULL) return false;
    live_ids = grown;
    live_capacity = capacity;
    return true;
}

bool pool_list_add(pool_t *pool) {
    pthread_mutex_lock(&pools_lock);
    if (!live_ids_reserve_locked()) {
        pthread_mutex_unlock(&pools_lock);
        return false;
    }
    size_t at = live_ids_lower_bound(pool->id);
    memmove(&live_ids[at + 1], &live_ids[at], (live_count - at) * sizeof *live_ids);
    live_ids[at] = (pool_id_entry_t){ pool->id, pool };
    live_count++;
    pool->list_prev = NULL;
    pool->list_next = pools;
    if (pools) pools->list_prev = pool;
    pools = pool;
    pthread_mutex_unlock(&pools_lock);
    return true;
}

static void live_ids_remove_locked(uint64_t id) {
    size_t at = live_ids_lower_bound(id);
    if (at == live_count || live_ids[at].id != id) return;
    live_count--;
    memmove(&live_ids[at], &live_ids[at + 1], (live_count - at) * sizeof *live_ids);
    if (live_count == 0) {
        os_unmap(live_ids, live_capacity * sizeof *live_ids);
        live_ids = NULL;
        live_capacity = 0;
    } else if (live_capacity > POOL_IDS_MIN_CAPACITY && live_count <= live_capacity / 4) {
        /* (a shrink the OS refuses leaves the array as it was) */
        pool_id_entry_t *shrunk = os_remap(live_ids, live_capacity * sizeof *live_ids,
                                           live_capacity / 2 * sizeof *live_ids);
        if (shrunk != NULL) {
            live_ids = shrunk;
            live_capacity /= 2;
        }
    }
}

size_t pool_list_room(void) {
    pthread_mutex_lock(&pools_lock);
    size_t room = live_capacity - live_count;
    pthread_mutex_unlock(&pools_lock);
    return room;
}

static _Atomic uint64_t pools_removed;

bool pool_id_alive(uint64_t id) {
    pthread_mutex_lock(&pools_lock);
    size_t at = live_ids_lower_bound(id);
    bool alive = at < live_count && live_ids[at].id == id
                 && !atomic_load_explicit(&live_ids[at].pool->destroying, memory_order_seq_cst);
    pthread_mutex_unlock(&pools_lock);
    return alive;
}

uint64_t pool_destroy_count(void) {
    return atomic_load_explicit(&pools_removed, memory_order_acquire);
}

void pool_list_remove(pool_t *pool) {
    atomic_fetch_add_explicit(&pools_removed, 1, memory_order_release);
    pthread_mutex_lock(&pools_lock);
    live_ids_remove_locked(pool->id);
    if (pool->list_prev) pool->list_prev->list_next = pool->list_next;
    else pools = pool->list_next;
    if (pool->list_next) pool->list_next->list_prev = pool->list_prev;
    pool->list_next = pool->list_prev = NULL;
    pthread_mutex_unlock(&pools_lock);
}

static void fork_prepare(void) {
    pthread_mutex_lock(&pools_lock);
    heap_registry_lock();
    for (pool_t *pool = pools; pool; pool = pool->list_next) pthread_mutex_lock(&pool->lock);
    chunk_map_lock();
    os_retired_lock_for_fork();
    mulch_report_lock();
}

static void fork_release(void) {
    mulch_report_unlock();
    os_retired_unlock_for_fork();
    chunk_map_unlock();
    for (pool_t *pool = pools; pool; pool = pool->list_next) pthread_mutex_unlock(&pool->lock);
    heap_registry_unlock();
    pthread_mutex_unlock(&pools_lock);
}

static void fork_child(void) {
    fork_release();
    pool_default_fork_child();
}

static pthread_once_t fork_handlers_once = PTHREAD_ONCE_INIT;

static void fork_handlers_register_once(void) {
    (void)pthread_atfork(fork_prepare, fork_release, fork_child);
}

void pool_fork_register(void) {
    pthread_once(&fork_handlers_once, fork_handlers_register_once);
}

/* At load time, before any thread of the program can fork: registering
 * may allocate, which under the malloc drop-in comes back to the pool,
 * and that is safe here (no pool lock is held). */
__attribute__((constructor)) static void fork_handlers_register(void) {
    pool_fork_register();
}
