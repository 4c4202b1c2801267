/* rc_internal.h — reference-counted objects: header layout and counting.
 *
 * An rc object is a pool cell: a 48-byte header, then the payload (16-byte
 * aligned). Counting is biased (Choi, Shull and Torrellas, "Biased
 * Reference Counting", PACT 2018): the thread that allocated the object
 * (its owner) keeps its count in `biased` with plain loads and stores;
 * every other thread uses the atomic `shared` word. The true count is
 * biased + shared. At UINT32_MAX the owner's retains go to `shared` too
 * (biased never wraps).
 *
 * `shared` holds count << RC_SHIFT | flags:
 *   RC_MERGED — the owner has let go (biased reached 0, or was folded in):
 *               from now on `shared` alone is the count, every thread uses
 *               it atomically, and the release that takes it to 0 destroys.
 *   RC_QUEUED — the shared count went negative while the owner still counts
 *               references (another thread released one the owner handed
 *               it); the object sits in the owner's merge queue, and the
 *               owner folds biased into shared at its next rc_alloc or
 *               rc_release (retains skip the queue), or at its exit.
 * If the owner thread has exited, the releasing thread folds the counts
 * itself (the exit published `biased` through the owner's `dead` flag).
 *
 * `magic` is rc_live_magic(h) (RC_LIVE keyed by the header's address)
 * while the object lives; destruction clears it before
 * the memory goes back to the pool, so retain/release on a destroyed object
 * is caught until the cell is reused. `owner` is NULL before any object is
 * destroyed (destruction follows the merge), so <mulch/rc.h>'s inline
 * owner paths, which trust `owner == this thread` alone, never touch a
 * destroyed object.
 */
#ifndef MULCH_RC_INTERNAL_H
#define MULCH_RC_INTERNAL_H

#include <stdatomic.h>

#define MULCH_BUILDING_RC_ 1

#include <mulch/rc.h>

#include "block.h"

#define RC_SHIFT  2
#define RC_ONE    ((int64_t)1 << RC_SHIFT)
#define RC_MERGED ((int64_t)1)
#define RC_QUEUED ((int64_t)2)
#define RC_LIVE   0x72634c56u /* "rcLV" */

typedef struct mulch_rc_thread_ rc_thread_t; /* named in <mulch/rc.h> */

typedef struct rc_header {
    /* shared and magic share the first 16 bytes: a non-owner's retain or
     * release reads magic and updates shared on one cache line (owner, the
     * third word it reads, is written only at the merge, so its line stays
     * shared between cores when it is another one). The first 16 bytes are
     * also what a freed pool cell keeps addressable (its free link and free
     * mark, pool/tool.h), so the misuse check can read `magic` of a
     * destroyed object even under valgrind. */
    _Atomic int64_t        shared;  /* other threads' count << 2 | flags   */
    _Atomic uint32_t       magic;   /* rc_live_magic(h) while alive         */
    _Atomic uint32_t       biased;  /* owner's count: written by the owner only
                                       (relaxed: plain moves), read by rc_count */
    _Atomic(rc_thread_t *) owner;   /* NULL once merged                    */
    void                 (*destroy)(void *obj);
    _Atomic(struct rc_weak_control *) weak;
    struct rc_header      *link;    /* owner's merge queue, or the pending-destroy list */
} rc_header_t;

_Static_assert(sizeof(rc_header_t) % 16 == 0, "rc payload stays 16-byte aligned");

/* One per thread that has allocated rc objects; never unmapped, so a
 * stale pointer to one stays readable. It goes back on a free list, for
 * the next thread to use, once `holds` reaches 0: the thread has exited,
 * every object it owned was merged (no owner field names it any more) and
 * no releaser is between pushing to its queue and its check of `dead`.
 * Until the exit the owner counts its unmerged objects in `live` (plain:
 * before the exit only the owner merges them); the exit adds them to
 * `holds`, and merges done after it (by any thread) take 1 each. */
struct mulch_rc_thread_ {
    _Atomic(rc_header_t *) queue;   /* objects to merge (pushed by others);
                                       first: rc.h's inline release reads it */
    _Atomic int            dead;    /* the thread has exited               */
    size_t                 live;    /* owner only: its objects not merged  */
    _Atomic size_t         holds;   /* 1 for the running thread, + live at
                                       its exit, + releasers pushing now    */
    struct mulch_rc_thread_ *next_free; /* the free list (mulch_rc_records_lock)  */
    struct mulch_rc_thread_ *next_all;  /* every record ever made (same lock)    */
    /* objects of this (running) thread that pool_destroy merged for it
     * (rc_pool_destroying): taken off `live` at its exit, which then sets
     * it to RC_MERGED_CLOSED (later such merges drop a hold instead) */
    _Atomic size_t         merged_by_others;
};
#define RC_MERGED_CLOSED SIZE_MAX

/* The inline fast paths in <mulch/rc.h> read these words directly. */
_Static_assert(offsetof(rc_header_t, owner) == offsetof(struct mulch_rc_header_, owner),
               "rc.h reads owner at the same offset");
_Static_assert(offsetof(rc_header_t, shared) < 16 && offsetof(rc_header_t, magic) + sizeof(uint32_t) <= 16,
               "shared and magic share the first 16-byte granule");
_Static_assert(sizeof(((rc_header_t *)0)->owner) == sizeof(((struct mulch_rc_header_ *)0)->owner)
                   && sizeof(((rc_header_t *)0)->biased) == sizeof(((struct mulch_rc_header_ *)0)->biased),
               "rc.h reads words of the same size");
_Static_assert(offsetof(rc_header_t, biased) == offsetof(struct mulch_rc_header_, biased),
               "rc.h reads biased at the same offset");
_Static_assert(sizeof(rc_header_t) == MULCH_RC_HEADER_SIZE_, "rc.h knows the header size");
_Static_assert(offsetof(struct mulch_rc_thread_, queue) == 0, "rc.h reads the queue at offset 0");

/* Shared between an object and its weak references. Guarded by one of
 * weak.c's striped mutexes, chosen by the block's address (no mutex of
 * its own: fork holds every stripe). */
typedef struct rc_weak_control {
    void           *obj;            /* NULL once destroyed (stripe)        */
    _Atomic size_t  weak_refs;      /* rc_weak_t handles alive             */
    bool            object_gone;    /* the object no longer points here    */
} rc_weak_control_t;

/* `weak` of an object whose destroy started: no control block attaches
 * any more (a misused rc_weak_new racing the destroy would attach one that
 * nothing detached, whose locks then read the freed object). */
#define RC_WEAK_DEAD ((rc_weak_control_t *)(uintptr_t)1)

/* Every weak stripe, taken before fork and given back after it, in both
 * processes (weak.c; registered with rc_thread.c's fork handlers). */
MULCH_INTERNAL void rc_weak_stripes_take(void);
MULCH_INTERNAL void rc_weak_stripes_give(void);

static inline rc_header_t *rc_header_of(const void *obj) {
    return (rc_header_t *)((unsigned char *)(uintptr_t)obj - sizeof(rc_header_t));
}
static inline void *rc_object_of(rc_header_t *h) {
    return (unsigned char *)h + sizeof(rc_header_t);
}

MULCH_INTERNAL rc_thread_t *rc_thread_self_slow(void);
/* Guards the free list of thread records (rc_thread.c); held across fork. Not
 * static only so that a test can hold it while another thread forks. */
MULCH_INTERNAL extern pthread_mutex_t mulch_rc_records_lock;
/* Guards the drains in progress (rc.c); taken before the records lock,
 * held across fork with it (rc_thread.c). */
MULCH_INTERNAL extern pthread_mutex_t mulch_rc_drain_lock;
MULCH_INTERNAL void rc_drains_fork_child(void);

/* Objects taken off rec's merge queue and not merged yet: by a drain
 * (registered: rc_drains.c), or by pool_destroy's (which also holds rec). A
 * cleanup handler merges the rest if the thread ends inside a destroy one
 * of them ran. */
typedef struct rc_taken {
    rc_thread_t *rec;
    rc_header_t *rest;
    bool         for_owner;  /* merged for rec's running thread by another (rc_merge_as) */
    bool         registered; /* a drain, on rc_drains until its rest is empty */
    rc_header_t *in_hand;    /* registered: the object being merged (and maybe destroyed) */
    pool_t      *in_hand_pool;
    /* registered: the destroys in_hand's callback set off (it released
     * their last references) that have not finished, counted by pool
     * (rc_drains_chain_*); chain_any: more pools than slots, every pool
     * counts as busy until the chain ends */
    struct { pool_t *pool; size_t count; } chain[16];
    bool         chain_any;
    const void  *thread;     /* registered: rc_drains_thread_tag() of the draining thread */
    struct rc_taken *prev, *next;
} rc_taken_t;

/* The drains in progress (rc_drains.c), under mulch_rc_drain_lock. */
MULCH_INTERNAL void rc_drains_link_locked(rc_taken_t *q);
MULCH_INTERNAL void rc_drains_unlink_locked(rc_taken_t *q);
/* A destroy of an object of `pool` went on the pending list of the chain
 * q's in_hand set off; one of them finished; the chain ended (its
 * rc_destroy returned). Each takes the drain lock. */
MULCH_INTERNAL void rc_drains_chain_add(rc_taken_t *q, pool_t *pool);
MULCH_INTERNAL void rc_drains_chain_done(rc_taken_t *q, pool_t *pool);
MULCH_INTERNAL void rc_drains_chain_end_locked(rc_taken_t *q);
/* pool_destroy(pool) on the drain's own thread took the chain's objects of
 * pool off the pending list: its count goes. */
MULCH_INTERNAL void rc_drains_chain_forget(rc_taken_t *q, pool_t *pool);
/* A release of a GC-owned reference under way (runtime/bridge.c): from
 * before it asks whether the object's pool lives until it returns, in
 * sight of pool_destroy, which waits for those of its pool (after it set
 * the pool's `destroying`: a release registered later finds the pool
 * gone). Under mulch_rc_drain_lock (rc_drains.c). */
typedef struct rc_owned_release {
    uint64_t    pool_id;
    const void *thread; /* rc_drains_thread_tag() */
    struct rc_owned_release *prev, *next;
} rc_owned_release_t;
MULCH_INTERNAL void rc_owned_release_begin(rc_owned_release_t *r, uint64_t pool_id);
MULCH_INTERNAL void rc_owned_release_end(void *r);
/* The calling thread's tag for rc_taken_t.thread. */
MULCH_INTERNAL const void *rc_drains_thread_tag(void);
/* Takes the objects of `pool` out of *list onto `ours`, and returns the
 * new `ours` (rc.c; a pending list's entry whose pool is unmapped already
 * is reported, and the list cut there). */
MULCH_INTERNAL rc_header_t *rc_list_take_pool(rc_header_t **list, pool_t *pool, rc_header_t *ours);
/* The same for the rest of every drain of rec. */
MULCH_INTERNAL rc_header_t *rc_drains_take_pool_locked(rc_thread_t *rec, pool_t *pool, rc_header_t *ours);
/* Waits (blocked in every GC heap, uncancellable) while another thread's
 * drain has an object of `pool` in hand or in its chain, or another
 * thread's release of a GC-owned reference into it is under way; whether
 * it waited. */
MULCH_INTERNAL bool rc_drains_wait_pool(pool_t *pool);
/* Around a wait of pool_destroy's for another thread's destroy callback
 * (rc.c): true blocks the calling thread in every GC heap it is attached
 * to, false leaves those regions again (runtime/bridge.c). */
MULCH_INTERNAL void rc_wait_blocked(bool blocked);
/* True for a live rc object; otherwise reports "<fn>: <problem>". */
MULCH_INTERNAL bool rc_check(const void *obj, const char *fn);
/* rc_check's out-of-line part (rc_check.c): names the problem. */
MULCH_INTERNAL bool rc_check_slow(const void *obj, const char *fn);

/* Whether obj, in block b of a pool's chunk, lies where an rc object's
 * payload does: a header's size into a cell of a small span, 16-aligned,
 * the cell bigger than the header (a plain cell's pointer is a cell start,
 * and a payload is never at a cell's end: rc_alloc gives size 0 a byte). */
static inline bool rc_payload_place(const block_t *b, const void *obj) {
    return b->kind == BLOCK_SMALL && ((uintptr_t)obj & 15u) == 0 && b->cell_size > sizeof(rc_header_t)
           && cell_link_is_valid(b, (const unsigned char *)obj - sizeof(rc_header_t));
}

/* The magic of a maybe-destroyed object: a destroyed one is a free pool
 * cell, poisoned under ASan (pool/tool.h), and this check is how rc reports
 * that misuse itself, so the read is not instrumented. */
static inline MULCH_NO_ASAN uint32_t rc_magic_peek(const void *obj) {
    return atomic_load_explicit(&rc_header_of(obj)->magic, memory_order_relaxed);
}

/* `magic` of a live object whose header is at h: RC_LIVE keyed by the
 * address, so that memory holding a copy of a live header's bytes, or
 * the constant, does not pass for one elsewhere (only the value for its
 * own address does: by chance, 1 in 2^32).
 *
 * Keyed by the address itself, not h >> 4: a destroyed object's cell is
 * free, and its magic is the low half of the free mark, pool key ^ h
 * (cell_free_mark). Both are then h XORed with a constant, which differ
 * in bit 0 (the pool key always has it set, pool_secret; RC_LIVE has it
 * clear), so a free cell never reads as live, for any address or key.
 * With h >> 4 one cell in 2^32 did (tests/unit/test_rc_review_s25_g). */
_Static_assert((RC_LIVE & 1u) == 0, "a free mark (pool key | 1) never equals a live magic");
static inline uint32_t rc_live_magic(const rc_header_t *h) {
    return RC_LIVE ^ (uint32_t)(uintptr_t)h;
}
static inline bool rc_magic_is_live(const void *obj) {
    return rc_magic_peek(obj) == rc_live_magic(rc_header_of(obj));
}

/* PREFETCHW where there is one: __builtin_prefetch(p, 1) only emits it when
 * the target ISA names it (-mprfchw), and baseline x86-64 does not, though
 * every x86-64 CPU either runs it or treats it as a NOP (0F 0D). */
static inline void rc_prefetch_for_write(const void *p) {
#if defined(__x86_64__) && defined(__GNUC__)
    __asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p, 1, 3);
#endif
}

/* Whether obj, in `chunk` (its chunk_of), lies where an rc object's
 * payload does: in a small span (rc_payload_place), or a header's size
 * into a live huge object (an rc object above the size classes). Reads
 * only the chunk's header and a block descriptor, which stay readable
 * (zeros) while another thread releases the chunk. */
static inline bool rc_payload_in_chunk(const chunk_t *chunk, const void *obj) {
    if (mulch_likely(chunk->kind == CHUNK_BLOCKS)) {
        if ((uintptr_t)obj - (uintptr_t)chunk >= chunk->size) return false;
        return rc_payload_place(block_head(block_at((chunk_t *)(uintptr_t)chunk, obj)), obj);
    }
    return chunk->kind == CHUNK_HUGE
           && (uintptr_t)obj - sizeof(rc_header_t) == (uintptr_t)chunk + chunk->object_offset
           && atomic_load_explicit(&chunk->allocated, memory_order_relaxed);
}

static inline bool rc_looks_live(const void *obj, const char *fn) {
    /* Ask for the header's line in exclusive state before reading it: a
     * non-owner's read followed by its atomic update would otherwise cost
     * two coherence misses on a line that other threads keep writing.
     * A prefetch never faults, so a foreign pointer is still safe here. */
    /* integer arithmetic: obj may be NULL or wild, and is not validated yet */
    rc_prefetch_for_write((const void *)((uintptr_t)obj - sizeof(rc_header_t)));
    /* The live magic is keyed by the header's address (rc_live_magic): a
     * constant would be in front of any pointer into memory holding its
     * bytes (a plain cell, an rc object's payload), and the release that
     * trusted it counted down a "count" in the caller's memory. (Checking
     * the payload's place in its cell, rc_payload_in_chunk, doubled the
     * instructions of another thread's retain: rc_check_slow does it.) */
    if (mulch_likely(obj != NULL && chunk_of(obj) != NULL && rc_magic_is_live(obj)))
        return true;
    return rc_check_slow(obj, fn);
}

/* rc_retain that says whether it took the reference (false: reported, as
 * rc_retain does: not a live object, or its count is 0 already). */
MULCH_INTERNAL bool rc_retain_checked(void *obj);
#define rc_self mulch_rc_self_ /* exported: rc.h's inline paths read it */

/* Destroys the object whose count reached zero (weak references cleared,
 * destroy callback, memory back to the pool; nested destroys iterate). */
MULCH_INTERNAL void rc_destroy(rc_header_t *h);
/* rc_release whose destroys run before it returns, also inside a destroy
 * callback (rc_release would queue them behind it): the bridge's releases,
 * whose destroy callbacks may use the heap that gc_heap_destroy (called
 * from a destroy callback) is destroying, or that gc_collect released them
 * for. */
MULCH_INTERNAL void rc_release_now(void *obj);
/* Called by a destroy callback: the object's memory is not returned to the
 * pool afterwards (something that cannot be told now still points to it).
 * The object counts as destroyed at once, and rc touches its cell no more:
 * the cell is the callback's, which frees it with rc_free_kept (from
 * then on, or from inside the callback). */
MULCH_INTERNAL void rc_destroy_keep_memory(void);
MULCH_INTERNAL void rc_free_kept(void *obj);
/* rc_alloc_in and rc_release without merging the caller's queue first
 * (which runs destroy callbacks): for gc_handle_new, which is no GC point,
 * also when it lets go of the handle it could not register. The object
 * starts merged: a handle is made to cross threads, and with the creating
 * thread as its owner a last release on another thread waited in the
 * creator's queue, its object rooted, until the creator's next rc call. */
MULCH_INTERNAL void *rc_alloc_shared_no_merge(pool_t *pool, size_t size, void (*destroy)(void *obj),
                                              const void *caller);
MULCH_INTERNAL void rc_release_no_merge(void *obj);
/* Thread records (rc_thread.c), for rc_unown.c: every record ever made (the list
 * from a head read under mulch_rc_records_lock never changes); the free
 * list's push; n holds dropped (the last one frees the record, or, while
 * rc_records_put_later is set, links it there through next_free); n merges
 * done for rec's running thread by another one. */
MULCH_INTERNAL extern rc_thread_t *rc_records_all;
MULCH_INTERNAL extern _Thread_local rc_thread_t **rc_records_put_later MULCH_TLS_MODEL;
MULCH_INTERNAL void rc_records_free_push(rc_thread_t *rec);
MULCH_INTERNAL void rc_record_put(rc_thread_t *rec, size_t n);
MULCH_INTERNAL void rc_record_unown_for_running(rc_thread_t *rec, size_t n);
/* A thread's exit hook (rc.c; its key is rc_thread.c's): the thread's
 * pending destroys and queue, then its record let go. Its value on a
 * thread without a record is &rc_exit_no_record; rc_exit_hooked is set
 * once rc_exit_hook_without_record gave such a thread the hook. */
MULCH_INTERNAL void rc_thread_exit(void *arg);
MULCH_INTERNAL extern char rc_exit_no_record;
MULCH_INTERNAL extern _Thread_local bool rc_exit_hooked MULCH_TLS_MODEL;
MULCH_INTERNAL void rc_exit_hook_without_record(void);
/* pool_destroy(pool) frees the pool's live objects: those their owners
 * still count let go of the owners' records (rc_unown.c). */
MULCH_INTERNAL void rc_pool_live_unown(pool_t *pool);
/* Tests only: called by pool_destroy's hook with each record whose merge
 * queue it took (and has not pushed back yet). NULL: nothing. */
MULCH_INTERNAL extern void (*mulch_rc_queues_test_hook)(rc_thread_t *rec);
/* Tests only: called by rc_weak_free with the handle it was given, before
 * it takes it (another thread may free it then). NULL: nothing. */
MULCH_INTERNAL extern void (*mulch_rc_weak_free_test_hook)(rc_weak_t *weak);
/* pool_destroy's hook (pool/pool.c): merges the pool's queued objects. */
MULCH_INTERNAL void rc_pool_destroying(pool_t *pool);
/* Weak control: the object is dying; detaches it from its weak references
 * (always succeeds: weak locks never revive a dying object). control: what
 * the destroy took off the header (which it left RC_WEAK_DEAD). */
MULCH_INTERNAL bool rc_weak_detach(rc_weak_control_t *control);
/* The object's destroy starts (or pool_destroy frees it alive): its weak
 * references are cleared, and no control block attaches from now on
 * (RC_WEAK_DEAD: one that a misused rc_weak_new attached after a plain
 * look here was never detached, and its locks read the freed object). A
 * header closed already stays closed. */
static inline bool rc_weak_close(rc_header_t *h) {
    rc_weak_control_t *control = atomic_exchange_explicit(&h->weak, RC_WEAK_DEAD, memory_order_acq_rel);
    return control == NULL || control == RC_WEAK_DEAD || rc_weak_detach(control);
}

#endif /* MULCH_RC_INTERNAL_H */
