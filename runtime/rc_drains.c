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
void rc_drains_chain_add(rc_taken_t *q, pool_t *pool) {
    pthread_mutex_lock(&mulch_rc_drain_lock);
    size_t free_slot = sizeof q->chain / sizeof q->chain[0];
    for (size_t i = 0; i < sizeof q->chain / sizeof q->chain[0]; i++) {
        if (q->chain[i].count && q->chain[i].pool == pool) {
            q->chain[i].count++;
            pthread_mutex_unlock(&mulch_rc_drain_lock);
            return;
        }
        if (q->chain[i].count == 0 && free_slot == sizeof q->chain / sizeof q->chain[0]) free_slot = i;
    }
    if (free_slot < sizeof q->chain / sizeof q->chain[0]) {
        q->chain[free_slot].pool = pool;
        q->chain[free_slot].count = 1;
    } else {
        q->chain_any = true;
    }
    pthread_mutex_unlock(&mulch_rc_drain_lock);
}

void rc_drains_chain_done(rc_taken_t *q, pool_t *pool) {
    pthread_mutex_lock(&mulch_rc_drain_lock);
    for (size_t i = 0; i < sizeof q->chain / sizeof q->chain[0]; i++) {
        if (q->chain[i].count && q->chain[i].pool == pool) {
            q->chain[i].count--;
            break;
        }
    }
    pthread_mutex_unlock(&mulch_rc_drain_lock);
}

void rc_drains_chain_forget(rc_taken_t *q, pool_t *pool) {
    pthread_mutex_lock(&mulch_rc_drain_lock);
    for (size_t i = 0; i < sizeof q->chain / sizeof q->chain[0]; i++)
        if (q->chain[i].pool == pool) q->chain[i].count = 0;
    pthread_mutex_unlock(&mulch_rc_drain_lock);
}

void rc_drains_chain_end_locked(rc_taken_t *q) {
    for (size_t i = 0; i < sizeof q->chain / sizeof q->chain[0]; i++) q->chain[i].count = 0;
    q->chain_any = false;
}

static bool rc_drains_chain_has(const rc_taken_t *q, const pool_t *pool) {
    if (q->chain_any) return true;
    for (size_t i = 0; i < sizeof q->chain / sizeof q->chain[0]; i++)
        if (q->chain[i].count && q->chain[i].pool == pool) return true;
    return false;
}

rc_header_t *rc_drains_take_pool_locked(rc_thread_t *rec, pool_t *pool, rc_header_t *ours) {
    for (rc_taken_t *q = rc_drains; q; q = q->next)
        if (q->rec == rec) ours = rc_list_take_pool(&q->rest, pool, ours);
    return ours;
}

/* Whether a drain of another thread has an object of `pool` in hand (its
 * merge, maybe its destroy callback, is under way) or in the chain of
 * destroys its callback set off. This thread's own drains do not count:
 * pool_destroy called by a destroy callback they run must not wait for
 * itself (it takes the chain's objects off its own pending list). */
static bool rc_drains_busy_with(pool_t *pool) {
    bool busy = false;
    pthread_mutex_lock(&mulch_rc_drain_lock);
    for (rc_taken_t *q = rc_drains; q && !busy; q = q->next)
        busy = q->thread != &thread_tag
               && ((q->in_hand != NULL && q->in_hand_pool == pool) || rc_drains_chain_has(q, pool));
    pthread_mutex_unlock(&mulch_rc_drain_lock);
    return busy;
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

/* Another thread's (this thread's own is the caller's callback: pool_destroy
 * inside it must not wait for itself). */
static bool owned_release_busy(uint64_t pool_id) {
    bool busy = false;
    pthread_mutex_lock(&mulch_rc_drain_lock);
    for (const rc_owned_release_t *r = owned_releases; r && !busy; r = r->next)
        busy = r->pool_id == pool_id && r->thread != &thread_tag;
    pthread_mutex_unlock(&mulch_rc_drain_lock);
    return busy;
}

bool rc_owned_releases_wait(pool_t *pool) {
    if (!owned_release_busy(pool->id)) return false;
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    rc_wait_blocked(true);
    while (owned_release_busy(pool->id)) {
        struct timespec pause = { 0, 100 * 1000 };
        nanosleep(&pause, NULL);
    }
    rc_wait_blocked(false);
    pthread_setcancelstate(cancel_state, NULL);
    return true;
}

/* Waits until no such drain is left; whether it waited. The wait is a
 * blocking region of every GC heap this thread is attached to (the
 * callback may collect, and its collection must not wait for this thread:
 * rc_wait_blocked, runtime/bridge.c), with cancellation off (no mulch
 * call is a cancellation point; nanosleep is one). */
bool rc_drains_wait_pool(pool_t *pool) {
    if (!rc_drains_busy_with(pool)) return false;
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    rc_wait_blocked(true);
    while (rc_drains_busy_with(pool)) {
        struct timespec pause = { 0, 100 * 1000 };
        nanosleep(&pause, NULL);
    }
    rc_wait_blocked(false);
    pthread_setcancelstate(cancel_state, NULL);
    return true;
}
