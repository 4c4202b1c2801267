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

void pool_list_add(pool_t *pool) {
    pthread_mutex_lock(&pools_lock);
    pool->list_prev = NULL;
    pool->list_next = pools;
    if (pools) pools->list_prev = pool;
    pools = pool;
    pthread_mutex_unlock(&pools_lock);
}

static _Atomic uint64_t pools_removed;

bool pool_id_alive(uint64_t id) {
    bool alive = false;
    pthread_mutex_lock(&pools_lock);
    for (const pool_t *pool = pools; pool && !alive; pool = pool->list_next)
        alive = pool->id == id && !atomic_load_explicit(&pool->destroying, memory_order_seq_cst);
    pthread_mutex_unlock(&pools_lock);
    return alive;
}

uint64_t pool_destroy_count(void) {
    return atomic_load_explicit(&pools_removed, memory_order_acquire);
}

void pool_list_remove(pool_t *pool) {
    atomic_fetch_add_explicit(&pools_removed, 1, memory_order_release);
    pthread_mutex_lock(&pools_lock);
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
