/* rc_drains.c — the merges of queues in progress ("drains", rc.c), where
 * pool_destroy on another thread can find them.
 *
 * Invariants: a drain is on the list from the moment it takes its queue
 * until its rest is empty (it takes the queue and links itself in one
 * step under mulch_rc_drain_lock); its rest and in_hand change only under
 * that lock; the lock is held for list steps only, never across a merge
 * (which runs user code), and is taken before the records lock.
 */
#include <time.h>

#include "rc_internal.h"

/* One per thread: its address tells a thread's drains (rc_taken_t.thread). */
static _Thread_local char thread_tag MULCH_TLS_MODEL;

const void *rc_drains_thread_tag(void) {
    return &thread_tag;
}

/* A drain takes a whole merge queue and merges its objects one at a time,
 * running destroy callbacks as counts reach 0: until merged, an object is
 * in the drain's hands only, and pool_destroy on another thread must still
 * find it (its cell is about to go: a drain running one slow callback
 * merged a destroyed pool's object afterwards, into freed or reused
 * memory). So a drain is registered here from the moment it takes its
 * queue, and its rest and the object it merges now (in_hand) are read and
 * changed under rc_drain_lock. pool_destroy takes the objects of its pool
 * out of every drain's rest (rc_queues_destroy_pool) and waits while
 * another thread's drain has one in hand (rc_drains_wait_pool). The lock
 * is held for list steps only, never across a merge, which may run user
 * code; it is taken before the records lock (fork: rc_thread.c). */
pthread_mutex_t mulch_rc_drain_lock = PTHREAD_MUTEX_INITIALIZER;
static rc_taken_t *rc_drains;

void rc_drains_link_locked(rc_taken_t *q) {
    q->registered = true;
    q->prev = NULL;
    q->next = rc_drains;
    if (rc_drains) rc_drains->prev = q;
    rc_drains = q;
}

void rc_drains_unlink_locked(rc_taken_t *q) {
    if (q->prev) q->prev->next = q->next;
    else rc_drains = q->next;
    if (q->next) q->next->prev = q->prev;
    q->registered = false;
}

/* fork's child: the other threads' drains are gone with them (their
 * in_hand would make a pool_destroy wait for ever); the forking thread's
 * own, if it forked inside a destroy callback, go on. */
void rc_drains_fork_child(void) {
    for (rc_taken_t *q = rc_drains, *next; q; q = next) {
        next = q->next;
        if (q->thread != &thread_tag) rc_drains_unlink_locked(q);
    }
}

/* A chain: in_hand's callback released the last references of other
 * objects; their destroys wait on the drain thread's pending list (a
 * thread-local list another thread cannot read), then run there, after
 * in_hand's callback returned. pool_destroy of their pools must wait for
 * them as for in_hand: the counts below say which pools they are in. A
 * decrement finds its pool's slot; one that finds none (its object was
 * counted by chain_any, or taken by this thread's own pool_destroy) is
 * dropped, which can only make a wait end at the chain's end instead of
 * earlier. */
#define CHAIN_SLOTS (sizeof ((rc_taken_t *)0)->chain / sizeof ((rc_taken_t *)0)->chain[0])

/* q's slot counting pool's objects, or NULL. */
static size_t *chain_count_of(rc_taken_t *q, const pool_t *pool) {
    for (size_t i = 0; i < CHAIN_SLOTS; i++)
        if (q->chain[i].count && q->chain[i].pool == pool) return &q->chain[i].count;
    return NULL;
}

void rc_drains_chain_add(rc_taken_t *q, pool_t *pool) {
    pthread_mutex_lock(&mulch_rc_drain_lock);
    size_t *count = chain_count_of(q, pool);
    for (size_t i = 0; count == NULL && i < CHAIN_SLOTS; i++) {
        if (q->chain[i].count != 0) continue;
        q->chain[i].pool = pool;
        count = &q->chain[i].count;
    }
    if (count) ++*count;
    else q->chain_any = true;
    pthread_mutex_unlock(&mulch_rc_drain_lock);
}

void rc_drains_chain_done(rc_taken_t *q, pool_t *pool) {
    pthread_mutex_lock(&mulch_rc_drain_lock);
    size_t *count = chain_count_of(q, pool);
    if (count) --*count;
    pthread_mutex_unlock(&mulch_rc_drain_lock);
}

void rc_drains_chain_forget(rc_taken_t *q, pool_t *pool) {
    pthread_mutex_lock(&mulch_rc_drain_lock);
    size_t *count = chain_count_of(q, pool);
    if (count) *count = 0;
    pthread_mutex_unlock(&mulch_rc_drain_lock);
}

void rc_drains_chain_end_locked(rc_taken_t *q) {
    for (size_t i = 0; i < CHAIN_SLOTS; i++) q->chain[i].count = 0;
    q->chain_any = false;
}

rc_header_t *rc_drains_take_pool_locked(rc_thread_t *rec, pool_t *pool, rc_header_t *ours) {
    for (rc_taken_t *q = rc_drains; q; q = q->next)
        if (q->rec == rec) ours = rc_list_take_pool(&q->rest, pool, ours);
    return ours;
}

/* ---- releases of GC-owned references under way ------------------------ */

static rc_owned_release_t *owned_releases;

void rc_owned_release_begin(rc_owned_release_t *r, uint64_t pool_id) {
    r->pool_id = pool_id;
    r->thread = &thread_tag;
    pthread_mutex_lock(&mulch_rc_drain_lock);
    r->prev = NULL;
    r->next = owned_releases;
    if (owned_releases) owned_releases->prev = r;
    owned_releases = r;
    pthread_mutex_unlock(&mulch_rc_drain_lock);
}

/* (void *: also a cleanup handler, if the thread ends inside the release's
 * destroy callback) */
void rc_owned_release_end(void *arg) {
    rc_owned_release_t *r = arg;
    pthread_mutex_lock(&mulch_rc_drain_lock);
    if (r->prev) r->prev->next = r->next;
    else owned_releases = r->next;
    if (r->next) r->next->prev = r->prev;
    pthread_mutex_unlock(&mulch_rc_drain_lock);
}

/* Whether another thread is busy with an object of `pool`: a drain has
 * one in hand (its merge, maybe its destroy callback, is under way) or in
 * the chain of destroys its callback set off, or a release of a GC-owned
 * reference into the pool is under way. This thread's own do not count:
 * pool_destroy called by a destroy callback they run must not wait for
 * itself (it takes the chain's objects off its own pending list). */
static bool rc_pool_busy(pool_t *pool) {
    bool busy = false;
    pthread_mutex_lock(&mulch_rc_drain_lock);
    for (rc_taken_t *q = rc_drains; q && !busy; q = q->next)
        busy = q->thread != &thread_tag
               && ((q->in_hand != NULL && q->in_hand_pool == pool) || q->chain_any || chain_count_of(q, pool) != NULL);
    for (const rc_owned_release_t *r = owned_releases; r && !busy; r = r->next)
        busy = r->pool_id == pool->id && r->thread != &thread_tag;
    pthread_mutex_unlock(&mulch_rc_drain_lock);
    return busy;
}

/* Waits until no other thread is busy with the pool's objects
 * (rc_pool_busy); whether it waited. The wait is a
 * blocking region of every GC heap this thread is attached to (the
 * callback may collect, and its collection must not wait for this thread:
 * rc_wait_blocked, runtime/bridge.c), with cancellation off (no mulch
 * call is a cancellation point; nanosleep is one). */
bool rc_drains_wait_pool(pool_t *pool) {
    if (!rc_pool_busy(pool)) return false;
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    rc_wait_blocked(true);
    while (rc_pool_busy(pool)) {
        struct timespec pause = { 0, 100 * 1000 };
        nanosleep(&pause, NULL);
    }
    rc_wait_blocked(false);
    pthread_setcancelstate(cancel_state, NULL);
    return true;
}
