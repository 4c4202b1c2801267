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

rc_header_t *rc_drains_take_pool_locked(rc_thread_t *rec, pool_t *pool, rc_header_t *ours) {
    for (rc_taken_t *q = rc_drains; q; q = q->next)
        if (q->rec == rec) ours = rc_list_take_pool(&q->rest, pool, ours);
    return ours;
}

/* Whether a drain of another thread has an object of `pool` in hand (its
 * merge, maybe its destroy callback, is under way). This thread's own
 * drains do not count: pool_destroy called by a destroy callback they run
 * must not wait for itself. */
static bool rc_drains_busy_with(pool_t *pool) {
    bool busy = false;
    pthread_mutex_lock(&mulch_rc_drain_lock);
    for (rc_taken_t *q = rc_drains; q && !busy; q = q->next)
        busy = q->in_hand != NULL && q->in_hand_pool == pool && q->thread != &thread_tag;
    pthread_mutex_unlock(&mulch_rc_drain_lock);
    return busy;
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
