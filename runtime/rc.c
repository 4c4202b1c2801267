/* rc.c — rc_alloc, rc_retain, rc_release, rc_count with biased counting
 * (see rc_internal.h for the count words and flags).
 *
 * Fast paths: the owner thread touches only `biased` (no atomic
 * instruction); another thread does one atomic CAS. Slow paths: the owner's
 * last release (merge), a non-owner release that sends the shared count
 * negative (queue to the owner, or fold the counts if the owner is gone),
 * the owner draining its merge queue, and destruction. Destroy callbacks
 * that release other objects do not recurse: a thread already destroying
 * appends to its pending list and the outermost call drains it; a merge
 * of the queue asked for inside a callback waits until then too
 * (rc_owner_slow). The
 * bridge's releases (rc_release_now) are the exception: they drain a list
 * of their own before returning, the outer one set aside (pending_saved),
 * so that a gc_collect or gc_heap_destroy called by a destroy callback
 * runs the destroys of what it releases while the heap is there.
 * A thread may end inside a destroy callback (pthread_exit, cancellation):
 * the frames that hold objects of their own (rc_release_now's set-aside
 * list, a queue drain's rest, what pool_destroy took off a queue) give
 * them back in cleanup handlers as it
 * unwinds, and its exit hook runs every destroy left pending.
 *
 * pool_destroy calls rc_pool_destroying first (a pool hook set with the
 * first thread record): the pool's objects still in some owner's merge
 * queue are merged, and destroyed if dead, before their memory goes; the
 * pool's live objects, freed without destroys, let go of their owners'
 * records (a pool that ever held an rc object: `has_rc`; rc_unown.c).
 *
 * The drains in progress, where pool_destroy finds what they hold, are
 * rc_drains.c's. The thread records (made, reused, held, and their lock
 * across fork) are rc_thread.c's; what a thread's exit does with its objects
 * (rc_thread_exit) is here.
 */
#include <stdio.h>
#include <stdlib.h>

#include "rc_internal.h"

__thread rc_thread_t *mulch_rc_self_ MULCH_TLS_MODEL;

static _Thread_local rc_header_t *pending_destroy MULCH_TLS_MODEL;
static _Thread_local bool destroying MULCH_TLS_MODEL;
/* The pending lists that rc_release_now set aside (innermost first), on
 * its stack. */
typedef struct rc_pending_saved {
    rc_header_t             *list;
    struct rc_pending_saved *outer;
    bool                     outer_destroying; /* `destroying` before */
} rc_pending_saved_t;
static _Thread_local rc_pending_saved_t *pending_saved MULCH_TLS_MODEL;
static _Thread_local bool keep_memory MULCH_TLS_MODEL; /* rc_destroy_keep_memory */
/* The object whose destroy callback runs on this thread (obj NULL: none),
 * with whether its pool was destroyed meanwhile (pool_destroy took its
 * memory already: rc must not touch its cell afterwards). Callbacks nest
 * when one runs inside a pool_destroy called by another: `outer` then
 * points to the enclosing callback's state, saved on rc_destroy_one's
 * stack. The innermost stays here, not on the stack, so a thread that
 * ended inside a callback leaves no pointer into its unwound stack
 * (unless callbacks were nested then). */
typedef struct rc_running {
    rc_header_t       *obj;
    bool               pool_gone;
    struct rc_running *outer;
} rc_running_t;
static _Thread_local rc_running_t running_now MULCH_TLS_MODEL;

static void rc_queue_drain(rc_thread_t *self);
static void rc_destroy_hand_done(rc_header_t *h);
static _Thread_local struct rc_taken *merging_drain MULCH_TLS_MODEL;
static inline bool rc_pending_unmapped(rc_header_t *h);
void (*mulch_rc_queues_test_hook)(rc_thread_t *rec);
static inline rc_thread_t *rc_self_checked(void);

void rc_thread_exit(void *arg) {
    rc_thread_t *self = arg;
    if (destroying) {
        /* The thread ended inside a destroy callback (pthread_exit, or a
         * cancellation point the callback reached: gc.md "Cancellation").
         * That object stays unfinished; the destroys queued behind it run
         * now, and the drains below destroy instead of queueing behind it
         * for ever. */
        destroying = false;
        merging_drain = NULL; /* (the drains' cleanup handlers cleared it too) */
        running_now = (rc_running_t){ NULL, false, NULL };
        pending_saved = NULL; /* (rc_release_now_unwound put the set-aside lists back) */
        rc_header_t *h = pending_destroy;
        if (h && !rc_pending_unmapped(h)) {
            pending_destroy = h->link;
            rc_destroy(h);
        }
    }
    if (arg == &rc_exit_no_record) return;
    rc_queue_drain(self);
    /* From here on this thread is not the owner of anything: once `dead`
     * is visible, other threads fold its objects' biased counts, so destroy
     * callbacks run by the drain below must not update them (they take the
     * non-owner path). */
    rc_self = NULL;
    /* its unmerged objects now hold the record: merges from here on, on
     * any thread, drop one each (published with `dead`) */
    atomic_fetch_add_explicit(&self->holds, self->live, memory_order_relaxed);
    /* closes merged_by_others: a merge for this thread from now on (a
     * pool_destroy that saw it running) drops a hold, as after the exit */
    size_t by_others = atomic_exchange_explicit(&self->merged_by_others, RC_MERGED_CLOSED, memory_order_acq_rel);
    self->live -= by_others;
    atomic_fetch_sub_explicit(&self->holds, by_others, memory_order_relaxed); /* our own hold stays */
    /* publishes every biased count this thread wrote; seq_cst pairs with
     * the releaser's push-then-check in rc_queue_to_owner (Dekker style) */
    atomic_store_explicit(&self->dead, 1, memory_order_seq_cst);
    rc_queue_drain(self); /* anything queued before others saw `dead` */
    rc_record_put(self, 1); /* the running thread's own hold */
}

static MULCH_COLD void rc_report(const char *what, const void *obj) {
    mulch_report(what, obj);
}

/* merge: whether to merge the caller's queue first (rc_alloc_in does; a
 * merge runs destroy callbacks, which may collect). shared: the object
 * starts merged (no owner; every thread counts it atomically, and the
 * last release on any thread destroys it at once). */
static void *rc_alloc_merging(pool_t *pool, size_t size, void (*destroy)(void *obj), bool merge, bool shared,
                              const void *caller) {
    if (pool == NULL || size > SIZE_MAX - sizeof(rc_header_t)) return NULL;
    rc_thread_t *self = rc_self ? (merge ? rc_self_checked() : rc_self) : rc_thread_self_slow();
    if (self == NULL) return NULL;
    /* Above the pool's size classes the cell is a mapping of its own, which
     * pool_calloc leaves untouched when fresh (it reads as zeros): a memset
     * of the payload faulted in every page up front (rc_alloc(1 TiB) under
     * overcommit ran the machine out of memory instead of being lazy like
     * any big calloc). */
    /* At least one payload byte: a 0-byte object's pointer would be its
     * cell's end, the next cell's start, which rc_check_slow cannot tell
     * from a plain pool cell (a destroyed one was reported as "not an rc
     * object"), and which may lie past its chunk. */
    size_t bytes = sizeof(rc_header_t) + (size != 0 ? size : 1);
    bool big = bytes > pool->small_max;
    /* (the leak site: the program's call, not this function) */
    rc_header_t *h = big ? pool_calloc_from(pool, 1, bytes, caller) : pool_alloc_from(pool, bytes, caller);
    if (h == NULL) return NULL;
    if (mulch_unlikely(!atomic_load_explicit(&pool->has_rc, memory_order_relaxed)))
        atomic_store_explicit(&pool->has_rc, 1, memory_order_relaxed);
    if (shared) {
        atomic_store_explicit(&h->owner, NULL, memory_order_relaxed);
        atomic_store_explicit(&h->biased, 0, memory_order_relaxed);
        atomic_store_explicit(&h->shared, RC_ONE | RC_MERGED, memory_order_relaxed);
    } else {
        self->live++;
        atomic_store_explicit(&h->owner, self, memory_order_relaxed);
        atomic_store_explicit(&h->biased, 1, memory_order_relaxed);
        atomic_store_explicit(&h->shared, 0, memory_order_relaxed);
    }
    h->destroy = destroy;
    atomic_store_explicit(&h->weak, NULL, memory_order_relaxed);
    h->link = NULL;
    if (!big) memset(rc_object_of(h), 0, size);
    atomic_store_explicit(&h->magic, rc_live_magic(h), memory_order_release);
    return rc_object_of(h);
}

void *rc_alloc_in(pool_t *pool, size_t size, void (*destroy)(void *obj)) {
    return rc_alloc_merging(pool, size, destroy, true, false, __builtin_return_address(0));
}

void *rc_alloc_shared_no_merge(pool_t *pool, size_t size, void (*destroy)(void *obj), const void *caller) {
    return rc_alloc_merging(pool, size, destroy, false, true, caller);
}

void *rc_alloc(size_t size, void (*destroy)(void *obj)) {
    return rc_alloc_merging(pool_default(), size, destroy, true, false, __builtin_return_address(0));
}

/* Under memcheck a freed cell keeps only its first two words addressable
 * (the pool's link and mark; a freed large object none), and a use after
 * release read the rest of the header: the inline rc_retain/rc_release
 * read the owner word before validating, and rc_looks_live the magic of a
 * large object, so a misuse the library reports was also a memcheck
 * error. The header's first words, up to the owner word (NULL once
 * merged, as every destroyed object is), are made readable again. (If
 * another thread took the cell meanwhile, its first 24 bytes count as
 * initialised: memcheck misses an uninitialised read there, no more.) */
static inline void rc_header_open_after_free(const pool_t *pool, rc_header_t *h) {
    if (TOOL_VG(pool->valgrind)) tool_vg_defined(h, offsetof(rc_header_t, owner) + sizeof h->owner);
    (void)pool;
    (void)h;
}

/* One object: weak references cleared, destroy callback, memory back. */
static void rc_destroy_one(rc_header_t *h) {
    uint32_t live = rc_live_magic(h);
    if (!atomic_compare_exchange_strong_explicit(&h->magic, &live, rc_live_magic(h) ^ 1u, memory_order_relaxed,
                                                 memory_order_relaxed)) {
        /* a second destroy would clobber the pool's free mark: refuse */
        mulch_report("rc_release: object destroyed twice", rc_object_of(h));
    } else if (rc_weak_close(h)) {
        void *obj = rc_object_of(h);
        rc_running_t outer = running_now; /* pool_destroy may mark it meanwhile */
        running_now = (rc_running_t){ h, false, outer.obj ? &outer : NULL };
        keep_memory = false;
        if (h->destroy) h->destroy(obj);
        bool pool_gone = running_now.pool_gone;
        running_now = outer;
        /* (kept: the callback took the cell over, and may have freed it) */
        if (!pool_gone && !keep_memory) {
            atomic_store_explicit(&h->magic, 0, memory_order_relaxed);
            pool_t *pool = chunk_of(h)->pool;
            pool_free(pool, h);
            rc_header_open_after_free(pool, h);
        }
        keep_memory = false;
    }
}

/* The next object on this thread's pending list is in no pool any more:
 * another thread destroyed its pool while it waited here (a destroy
 * callback released its last reference, then had another thread call
 * pool_destroy: misuse, docs/rc.md "Destroy callbacks"). Reported; the
 * list from it on is dropped (it links through unmapped memory). Detected only while
 * no new chunk took the address. */
static MULCH_NOINLINE bool rc_pending_unmapped_slow(rc_header_t *h, rc_header_t **at) {
    rc_report("rc_release: the pool of an object whose destroy was pending on this thread was destroyed by "
              "another thread (destroy it on this thread, or after the destroy callback returns)",
              rc_object_of(h));
    *at = NULL;
    return true;
}
static inline bool rc_pending_unmapped(rc_header_t *h) {
    return mulch_unlikely(chunk_of(h) == NULL) && rc_pending_unmapped_slow(h, &pending_destroy);
}

static _Thread_local bool draining_deferred MULCH_TLS_MODEL;
static _Thread_local bool drain_deferred MULCH_TLS_MODEL;

/* The drains rc_owner_slow put off while callbacks ran, once the pending
 * list is empty: the objects come off the queue only now, and each
 * destroy runs at once (its own rc_destroy, in the registered drain's
 * hands), not on the pending list. Whether it merged any. Only a drain
 * some call asked for (drain_deferred: a release or allocation inside a
 * callback) is made: the destroys of a call that merges nothing
 * (rc_release_no_merge, a gc_handle_new that fails) merge nothing either.
 * Only the outermost rc_destroy runs it (draining_deferred), so the
 * nesting stays one level deep however long other threads keep queueing. */
static bool rc_destroy_drain_deferred(void) {
    rc_thread_t *self = rc_self;
    if (!drain_deferred || draining_deferred || self == NULL) return false;
    drain_deferred = false;
    draining_deferred = true;
    destroying = false;
    rc_queue_drain(self);
    destroying = true;
    draining_deferred = false;
    return true;
}

/* Runs destroy callbacks; nested releases that reach zero are queued. */
void rc_destroy(rc_header_t *h) {
    if (destroying) {
        h->link = pending_destroy;
        pending_destroy = h;
        /* (in sight of pool_destroy on other threads: rc_drains_chain_add) */
        if (merging_drain) rc_drains_chain_add(merging_drain, chunk_of(h)->pool);
        return;
    }
    if (mulch_unlikely(rc_self == NULL) && !rc_exit_hooked) rc_exit_hook_without_record();
    destroying = true;
    rc_destroy_one(h);
    rc_destroy_hand_done(h); /* (its own callback returned) */
    for (;;) {
        h = pending_destroy;
        while (h == NULL && rc_destroy_drain_deferred()) h = pending_destroy;
        if (h == NULL || rc_pending_unmapped(h)) break;
        pending_destroy = h->link;
        rc_taken_t *chain = merging_drain;
        pool_t *pool = chain ? chunk_of(h)->pool : NULL;
        rc_destroy_one(h);
        if (chain) rc_drains_chain_done(chain, pool);
    }
    destroying = false;
}

void rc_destroy_keep_memory(void) {
    atomic_store_explicit(&running_now.obj->magic, 0, memory_order_relaxed);
    keep_memory = true;
}

void rc_free_kept(void *obj) {
    rc_header_t *h = rc_header_of(obj);
    pool_t *pool = chunk_of(h)->pool;
    pool_free(pool, h);
    rc_header_open_after_free(pool, h);
}

/* An object of rec's stopped naming it (merged). Before rec's thread
 * exits only that thread merges its objects. */
static inline void rc_record_unown(rc_thread_t *rec) {
    if (rec == rc_self) rec->live--;
    else rc_record_put(rec, 1);
}


/* The merged count `now` (a value of h->shared) is below zero: other
 * threads released more references than the object had, which their
 * releases could not tell while the owner still counted some. Each extra
 * release is reported and taken back, as the merged path does; returns
 * the count word after that (count 0, unless references came meanwhile). */
static MULCH_NOINLINE int64_t rc_take_back_extra_releases(rc_header_t *h, int64_t now) {
    int64_t extra = -(now >> RC_SHIFT);
    for (int64_t i = 0; i < extra; i++) rc_report("rc_release: object's count is already 0", rc_object_of(h));
    return atomic_fetch_add_explicit(&h->shared, extra * RC_ONE, memory_order_acq_rel) + extra * RC_ONE;
}

/* The count as one number: merged objects count in `shared` only.
 * for_owner: this thread merges for rec's thread, which is running
 * (rc_pool_destroying); only that thread may change rec's `live`, so the
 * merge is counted in merged_by_others, which its exit subtracts. */
static void rc_merge_as(rc_header_t *h, uint32_t biased, rc_thread_t *rec, bool for_owner) {
    atomic_store_explicit(&h->owner, NULL, memory_order_relaxed);
    int64_t add = (int64_t)biased * RC_ONE + RC_MERGED;
    int64_t now = atomic_fetch_add_explicit(&h->shared, add, memory_order_acq_rel) + add;
    if (mulch_unlikely((now >> RC_SHIFT) < 0)) now = rc_take_back_extra_releases(h, now);
    if (for_owner) rc_record_unown_for_running(rec, 1);
    else rc_record_unown(rec); /* last touch of rec */
    if ((now >> RC_SHIFT) == 0) rc_destroy(h);
}

static void rc_merge(rc_header_t *h, uint32_t biased, rc_thread_t *rec) {
    rc_merge_as(h, biased, rec, false);
}

/* Puts h on rec's merge queue (a lock-free stack through h->link). */
static void rc_queue_push(rc_thread_t *rec, rc_header_t *h) {
    rc_header_t *head = atomic_load_explicit(&rec->queue, memory_order_relaxed);
    do {
        h->link = head;
    } while (!atomic_compare_exchange_weak_explicit(&rec->queue, &head, h, memory_order_seq_cst,
                                                    memory_order_relaxed));
}



/* merging_drain (declared above): the registered drain whose in_hand
 * this thread merges now (NULL: none). rc_destroy lets go of in_hand once
 * that object's own callback returned, so a pool_destroy waits for no
 * destroy of another pool that callback caused (rc_destroy_hand_done). */

static void rc_destroy_hand_done(rc_header_t *h) {
    rc_taken_t *q = merging_drain;
    if (q == NULL || q->in_hand != h) return;
    pthread_mutex_lock(&mulch_rc_drain_lock);
    q->in_hand = NULL;
    pthread_mutex_unlock(&mulch_rc_drain_lock);
}

static void rc_taken_merge(rc_taken_t *q) {
    for (;;) {
        rc_header_t *h;
        if (q->registered) {
            pthread_mutex_lock(&mulch_rc_drain_lock);
            h = q->rest;
            q->in_hand = h; /* (the one before is done, with its chain) */
            rc_drains_chain_end_locked(q);
            if (h) {
                q->rest = h->link;
                q->in_hand_pool = chunk_of(h)->pool;
            } else {
                rc_drains_unlink_locked(q);
            }
            pthread_mutex_unlock(&mulch_rc_drain_lock);
        } else {
            h = q->rest;
            if (h) q->rest = h->link;
        }
        if (h == NULL) return;
        uint32_t biased = atomic_load_explicit(&h->biased, memory_order_relaxed);
        atomic_store_explicit(&h->biased, 0, memory_order_relaxed);
        rc_taken_t *outer = merging_drain;
        merging_drain = q->registered ? q : NULL;
        rc_merge_as(h, biased, q->rec, q->for_owner);
        merging_drain = outer;
    }
}


/* The thread ends inside a destroy callback the drain ran (pthread_exit,
 * or a cancellation point): the rest was in this frame only. The thread's
 * own queue's rest goes back on the queue, in one step with the drain's
 * unlinking, for the exit hook's drain (in sight of pool_destroy
 * meanwhile: merged here, the dead ones would wait on the pending list,
 * behind the unfinished callback). Another record's is merged now, its
 * destroys queued behind the unfinished callback for the exit hook. */
static void rc_queue_drain_unwound(void *arg) {
    rc_taken_t *d = arg;
    merging_drain = NULL; /* (its frames are gone) */
    if (d->registered && d->rec == rc_self) {
        pthread_mutex_lock(&mulch_rc_drain_lock);
        while (d->rest) {
            rc_header_t *h = d->rest;
            d->rest = h->link;
            rc_queue_push(d->rec, h);
        }
        rc_drains_unlink_locked(d);
        pthread_mutex_unlock(&mulch_rc_drain_lock);
        return;
    }
    destroying = true;
    rc_taken_merge(d);
}

/* rec is the calling thread's record, or an exited thread's. The queue is
 * taken and the drain registered in one step (rc_drains). */
static void rc_queue_drain(rc_thread_t *rec) {
    rc_taken_t d = { .rec = rec, .thread = rc_drains_thread_tag() };
    pthread_mutex_lock(&mulch_rc_drain_lock);
    d.rest = atomic_exchange_explicit(&rec->queue, NULL, memory_order_seq_cst);
    /* (decided under the lock: once it is released a pool_destroy may take
     * the whole rest, and d must still be unlinked, by rc_taken_merge) */
    bool took = d.rest != NULL;
    if (took) rc_drains_link_locked(&d);
    pthread_mutex_unlock(&mulch_rc_drain_lock);
    if (!took) return;
    pthread_cleanup_push(rc_queue_drain_unwound, &d);
    rc_taken_merge(&d);
    pthread_cleanup_pop(0);
}

/* Destroys the objects of `pool` on this thread's pending list (a destroy
 * callback released their last references, then called pool_destroy:
 * the list would link into unmapped memory). Their own callbacks may
 * queue more: repeat until none of the pool's is left. Whether it found
 * any. */
rc_header_t *rc_list_take_pool(rc_header_t **list, pool_t *pool, rc_header_t *ours) {
    /* (an entry of a pending list may be unmapped already; a drain's never is) */
    rc_header_t **at = list;
    while (*at) {
        rc_header_t *h = *at;
        if (chunk_of(h) == NULL) {
            (void)rc_pending_unmapped_slow(h, at); /* the rest links through it */
            break;
        }
        if (chunk_of(h)->pool == pool) {
            *at = h->link;
            h->link = ours;
            ours = h;
        } else {
            at = &h->link;
        }
    }
    return ours;
}

/* The thread ends inside one of the destroys below (pthread_exit, or a
 * cancellation point): the objects after it were in that frame only, and
 * were lost; they go back on the pending list, for the exit hook to run. */
static void rc_pending_pool_unwound(void *arg) {
    rc_header_t **rest = arg;
    while (*rest) {
        rc_header_t *h = *rest;
        *rest = h->link;
        h->link = pending_destroy;
        pending_destroy = h;
    }
    destroying = true;
}

/* Destroys the objects of *list, taken off the pending lists. (A function
 * of its own: no local of the caller lives across the cleanup's setjmp.) */
static void rc_destroy_taken(rc_header_t **list) {
    pthread_cleanup_push(rc_pending_pool_unwound, list);
    while (*list) {
        rc_header_t *h = *list;
        *list = h->link;
        rc_destroy_one(h);
    }
    pthread_cleanup_pop(0);
}

static bool rc_pending_destroy_pool(pool_t *pool) {
    bool found = false;
    for (;;) {
        /* (the lists rc_release_now set aside too) */
        rc_header_t *ours = rc_list_take_pool(&pending_destroy, pool, NULL);
        for (rc_pending_saved_t *s = pending_saved; s; s = s->outer) ours = rc_list_take_pool(&s->list, pool, ours);
        if (ours == NULL) return found;
        found = true;
        /* the running callback's rc_destroy_keep_memory */
        bool keep = keep_memory;
        rc_destroy_taken(&ours);
        keep_memory = keep;
    }
}

/* The thread ends inside a destroy callback one of those merges ran
 * (pthread_exit, or a cancellation point): the rest was in this frame
 * only (never merged nor destroyed), and so was the hold on rec (which
 * then never went back on the free list). Merged now, their destroys
 * queued behind the unfinished callback for the exit hook to run; the
 * hold goes. */
static void rc_queue_taken_unwound(void *arg) {
    rc_taken_t *q = arg;
    merging_drain = NULL; /* (its frames are gone) */
    destroying = true;
    rc_taken_merge(q);
    rc_record_put(q->rec, 1);
}

/* Merges q's objects, then drops the hold on q->rec. (A function of its
 * own: no local of the caller lives across the cleanup's setjmp.) */
static void rc_queue_taken_finish(rc_taken_t *q) {
    pthread_cleanup_push(rc_queue_taken_unwound, q);
    rc_taken_merge(q);
    pthread_cleanup_pop(0);
    rc_record_put(q->rec, 1);
}

/* One pass over every record's queue; whether it found any of the pool's. */
static bool rc_queues_destroy_pool(pool_t *pool) {
    bool found = false;
    pthread_mutex_lock(&mulch_rc_records_lock);
    rc_thread_t *first = rc_records_all;
    pthread_mutex_unlock(&mulch_rc_records_lock);
    /* records are never unmapped, and new ones go in front: this walk is
     * safe without the lock, which the destroys below must not hold */
    for (rc_thread_t *rec = first; rec; rec = rec->next_all) {
        /* rec's queue, and the rest of every drain of it, give up the
         * pool's objects in one step under the drain lock: a drain or
         * another pool_destroy never holds them where this one cannot see */
        pthread_mutex_lock(&mulch_rc_drain_lock);
        /* (an empty queue is not written: its line is the one the inline
         * release path reads) */
        rc_header_t *h = atomic_load_explicit(&rec->queue, memory_order_acquire) == NULL
                             ? NULL
                             : atomic_exchange_explicit(&rec->queue, NULL, memory_order_seq_cst);
        bool from_queue = h != NULL;
        rc_header_t *ours = NULL;
        bool pushed = false;
        while (h) {
            rc_header_t *next = h->link;
            if (chunk_of(h)->pool == pool) {
                h->link = ours;
                ours = h;
            } else {
                rc_queue_push(rec, h);
                pushed = true;
            }
            h = next;
        }
        ours = rc_drains_take_pool_locked(rec, pool, ours);
        /* the objects taken (unmerged) keep rec from going back on the free
         * list: hold it until the check of `dead` below, as a releaser does */
        if (from_queue || ours) atomic_fetch_add_explicit(&rec->holds, 1, memory_order_relaxed);
        pthread_mutex_unlock(&mulch_rc_drain_lock);
        if (!from_queue && !ours) continue;
        if (mulch_rc_queues_test_hook) mulch_rc_queues_test_hook(rec);
        /* The owner may have exited while the queue was in our hands: its
         * last drain found it empty, and the objects pushed back would wait
         * for ever (their destroys never ran). seq_cst: the exit's store of
         * `dead` and its drain, as in rc_queue_to_owner. */
        if (pushed && atomic_load_explicit(&rec->dead, memory_order_seq_cst)) rc_queue_drain(rec);
        /* (rec's thread had not exited: the merges are made for it) */
        bool dead = atomic_load_explicit(&rec->dead, memory_order_acquire);
        rc_taken_t taken = { .rec = rec, .rest = ours, .for_owner = !dead && rec != rc_self };
        found |= ours != NULL;
        rc_queue_taken_finish(&taken);
    }
    return found;
}

/* pool_destroy(pool) is about to unmap the pool's cells: objects of the
 * pool that wait in some thread's merge queue (a non-owner's release left
 * them there, their destroy pending) are merged now, on this thread, and
 * destroyed if their count is 0 — else the owner's next drain would follow
 * links into unmapped memory. The other queued objects go back to their
 * queues. Objects of the pool that a drain took off a queue and has not
 * merged yet are taken from it as well, and an object of the pool that
 * another thread's drain merges (or destroys) now is waited for
 * (rc_drains). The program released every object of the pool
 * (pool_destroy's contract), so no owner touches them otherwise. The same
 * goes for this thread's pending list when pool_destroy runs inside a destroy
 * callback that released the pool's last objects (or that destroys the
 * pool of its own object). The destroys may queue more of the pool's
 * objects: repeat until a round finds none. */
void rc_pool_destroying(pool_t *pool) {
    /* objects whose callbacks run (this one's, or an outer one's) and
     * whose pool this is: rc_destroy_one must not touch their cells
     * afterwards (nor look them up again: their chunks are unmapped) */
    for (rc_running_t *r = &running_now; r && r->obj; r = r->outer)
        if (!r->pool_gone && chunk_of(r->obj)->pool == pool) r->pool_gone = true;
    for (;;) {
        bool found = rc_queues_destroy_pool(pool);
        if (destroying || pending_saved) found |= rc_pending_destroy_pool(pool);
        /* (this thread's own chain: it destroyed them, the count goes, or
         * a pool later created at this address would look busy) */
        if (merging_drain) rc_drains_chain_forget(merging_drain, pool);
        /* (a destroy that finishes may release more of the pool's objects) */
        found |= rc_drains_wait_pool(pool);
        if (!found) break;
    }
    if (atomic_load_explicit(&pool->has_rc, memory_order_relaxed)) rc_pool_live_unown(pool);
}

/* Inside a destroy callback the drain is put off until the outermost
 * rc_destroy's loop ends (rc_destroy_drain_deferred): merged now, an
 * object another thread released would wait on this thread's pending list,
 * where a pool_destroy on another thread cannot see it; left in the queue,
 * it is found there. */
static MULCH_NOINLINE void rc_owner_slow(rc_thread_t *self) {
    if (destroying) drain_deferred = true;
    else rc_queue_drain(self);
}

static inline rc_thread_t *rc_self_checked(void) {
    rc_thread_t *self = rc_self;
    if (self && mulch_unlikely(atomic_load_explicit(&self->queue, memory_order_relaxed) != NULL))
        rc_owner_slow(self);
    return self;
}

bool rc_retain_checked(void *obj) {
    if (!rc_looks_live(obj, "rc_retain")) return false;
    rc_header_t *h = rc_header_of(obj);
    rc_thread_t *self = rc_self; /* retains need no merge: releases drain the queue */
    if (self && atomic_load_explicit(&h->owner, memory_order_relaxed) == self) {
        uint32_t biased = atomic_load_explicit(&h->biased, memory_order_relaxed);
        /* Queued to us by another thread's release: only the owner can add
         * the halves (it alone writes biased). A sum at 0 means nobody
         * holds a reference (the caller would hold one, counted in either
         * half): its destroy waits for our merge, and a retain now would
         * revive it (gc_own_rc recorded the pair) instead of reporting. */
        int64_t shared = atomic_load_explicit(&h->shared, memory_order_relaxed);
        if (mulch_unlikely((shared & RC_QUEUED) && (int64_t)biased + (shared >> RC_SHIFT) <= 0)) {
            rc_report("rc_retain: object's count is 0 (retain after the last release)", obj);
            return false;
        }
        /* At its cap the 32-bit owner's count would wrap to 0 (a referenced
         * object counting 0): the reference goes to the 64-bit shared
         * count instead, as another thread's would. The owner's releases
         * take biased down first; its last one merges, and the shared
         * count keeps the rest. */
        if (mulch_likely(biased != UINT32_MAX)) {
            atomic_store_explicit(&h->biased, biased + 1, memory_order_relaxed);
            return true;
        }
    }
    /* A CAS, not an add taken back: a merged 0 is final, and a weak lock
     * that saw the transient 1 of a refused retain handed out the object
     * whose destroy then ran. */
    int64_t old = atomic_load_explicit(&h->shared, memory_order_relaxed);
    do {
        if (mulch_unlikely((old & RC_MERGED) && (old >> RC_SHIFT) <= 0)) {
            rc_report("rc_retain: object's count is 0 (retain after the last release)", obj);
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(&h->shared, &old, old + RC_ONE, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void *rc_retain(void *obj) {
    (void)rc_retain_checked(obj);
    return obj;
}

/* A non-owner's release set RC_QUEUED (it took the shared count below
 * zero while the owner still counts references). Holding QUEUED keeps the
 * object alive until it is merged, and only the owner's queue (or this
 * thread, if the owner is gone) merges it; after the push, h is not ours
 * to touch. */
static MULCH_NOINLINE void rc_queue_to_owner(rc_header_t *h, rc_thread_t *owner) {
    if (atomic_load_explicit(&owner->dead, memory_order_acquire)) {
        /* published by the owner's exit */
        uint32_t biased = atomic_load_explicit(&h->biased, memory_order_relaxed);
        atomic_store_explicit(&h->biased, 0, memory_order_relaxed);
        rc_merge(h, biased, owner);
        return;
    }
    /* Hold the record until the check below: once h is in the queue,
     * another thread may merge it, and the record could go to a new
     * thread whose queue the check must not drain. */
    atomic_fetch_add_explicit(&owner->holds, 1, memory_order_relaxed);
    rc_queue_push(owner, h);
    if (atomic_load_explicit(&owner->dead, memory_order_seq_cst)) {
        /* raced with the owner's exit: its final drain may have missed us */
        rc_queue_drain(owner);
    }
    rc_record_put(owner, 1);
}

/* The owner's last own reference went: fold into `shared` unless the
 * object is queued for merging (then the queue, drained now, does it). */
static MULCH_NOINLINE void rc_owner_last(rc_thread_t *self, rc_header_t *h) {
    /* Give up ownership before merging: once MERGED is visible another
     * thread may drop the count to zero and free the object. */
    atomic_store_explicit(&h->owner, NULL, memory_order_relaxed);
    int64_t expected = atomic_load_explicit(&h->shared, memory_order_relaxed);
    for (;;) {
        if (expected & RC_QUEUED) {
            if (destroying) drain_deferred = true; /* (put off: rc_owner_slow) */
            else rc_queue_drain(self);
            return;
        }
        if (atomic_compare_exchange_weak_explicit(&h->shared, &expected, expected | RC_MERGED,
                                                  memory_order_acq_rel, memory_order_relaxed))
            break;
    }
    self->live--;
    /* (below zero: another thread released between `owner = NULL` and the
     * merge, more than the object had; it saw no owner to queue to) */
    if (mulch_unlikely((expected >> RC_SHIFT) < 0)) expected = rc_take_back_extra_releases(h, expected);
    if ((expected >> RC_SHIFT) == 0) rc_destroy(h);
}

/* rc_release once the caller's queue was merged (or, for
 * rc_release_no_merge, left alone). */
static inline void rc_release_as(rc_thread_t *self, void *obj) {
    if (!rc_looks_live(obj, "rc_release")) return;
    rc_header_t *h = rc_header_of(obj);
    if (self && atomic_load_explicit(&h->owner, memory_order_relaxed) == self) {
        uint32_t biased = atomic_load_explicit(&h->biased, memory_order_relaxed) - 1;
        atomic_store_explicit(&h->biased, biased, memory_order_relaxed);
        if (mulch_likely(biased != 0)) return;
        rc_owner_last(self, h);
        return;
    }
    /* One CAS both drops our reference and, when that takes an unmerged
     * count below zero, claims the right to queue the object: after it we
     * touch h only if we hold that claim (otherwise another thread may merge
     * and free it at any moment). */
    rc_thread_t *owner = atomic_load_explicit(&h->owner, memory_order_relaxed);
    int64_t old = atomic_load_explicit(&h->shared, memory_order_relaxed);
    int64_t now;
    bool queue;
    do {
        now = old - RC_ONE;
        queue = owner != NULL && !(old & (RC_MERGED | RC_QUEUED)) && (now >> RC_SHIFT) < 0;
        if (queue) now |= RC_QUEUED;
    } while (!atomic_compare_exchange_weak_explicit(&h->shared, &old, now, memory_order_acq_rel,
                                                    memory_order_relaxed));
    if (now & RC_MERGED) {
        if ((now >> RC_SHIFT) == 0) rc_destroy(h);
        else if ((now >> RC_SHIFT) < 0) {
            atomic_fetch_add_explicit(&h->shared, RC_ONE, memory_order_relaxed);
            rc_report("rc_release: object's count is already 0", obj);
        }
        return;
    }
    if (queue) rc_queue_to_owner(h, owner);
}

void rc_release(void *obj) {
    /* Merge the queue first: it may destroy obj (a release too many by the
     * owner, after another thread's release left it queued at count 0),
     * which the check in rc_release_as must then see. */
    rc_release_as(rc_self_checked(), obj);
}

void rc_release_no_merge(void *obj) {
    rc_release_as(rc_self, obj);
}

/* The thread ends inside rc_release_now (a destroy callback it ran called
 * pthread_exit, or reached a cancellation point): the set-aside list, on
 * the stack being unwound, goes back behind what is still pending, for the
 * exit hook to run (it was lost: those objects were never destroyed). */
static void rc_release_now_unwound(void *arg) {
    rc_pending_saved_t *saved = arg;
    rc_header_t **end = &pending_destroy;
    while (*end && !(chunk_of(*end) == NULL && rc_pending_unmapped_slow(*end, end))) end = &(*end)->link;
    *end = saved->list;
    pending_saved = saved->outer;
    destroying = destroying || saved->outer_destroying;
}

void rc_release_now(void *obj) {
    /* a list of its own: the destroys this release causes run before it
     * returns, those already queued behind the running callback after */
    rc_pending_saved_t saved = { pending_destroy, pending_saved, destroying }; /* pool_destroy may take from it */
    pending_saved = &saved;
    pending_destroy = NULL;
    destroying = false;
    pthread_cleanup_push(rc_release_now_unwound, &saved);
    rc_release(obj);
    pthread_cleanup_pop(0);
    pending_destroy = saved.list;
    pending_saved = saved.outer;
    destroying = saved.outer_destroying;
}

size_t rc_count(const void *obj) {
    if (!rc_looks_live(obj, "rc_count")) return 0;
    rc_header_t *h = rc_header_of(obj);
    int64_t shared = atomic_load_explicit(&h->shared, memory_order_acquire) >> RC_SHIFT;
    int64_t total = shared + (atomic_load_explicit(&h->owner, memory_order_relaxed)
                                  ? (int64_t)atomic_load_explicit(&h->biased, memory_order_relaxed)
                                  : 0);
    return total > 0 ? (size_t)total : 0;
}
