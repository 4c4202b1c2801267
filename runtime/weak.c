/* weak.c — weak rc references.
 *
 * An object's weak references share one control block (created by the
 * first rc_weak_new, pool-allocated). rc_weak_lock never revives a dying
 * object: under the control block's mutex (one of 16 stripes, chosen by
 * the block's address, which fork holds) it increments the count with a
 * CAS only if the count is not a merged zero, so every transition to zero
 * is final and its destroyer alone clears the control block (under the
 * same mutex) before destroying. The mutex also orders freeing the control
 * block: the last of the object and its weak handles frees it. A handle is
 * a small rc_weak_t pointing at the control block. The destroy takes the
 * block off the header, leaving RC_WEAK_DEAD: a misused rc_weak_new (no
 * reference of its caller's) racing it attaches nothing, and is reported.
 *
 * An unmerged count (RC_QUEUED, or not yet MERGED) is not a decision: the
 * true count is biased + shared and only the owner can read `biased`
 * consistently (its fast paths write it with plain stores). A lock cannot
 * tell "queued, no reference left" from "queued, the owner still holds
 * some", so it counts itself in `shared` and the merge, an atomic add on
 * the same word, includes it: the object lives on until that reference is
 * released (docs/rc.md). Refusing instead would return NULL for live
 * objects; waiting for the owner could wait forever.
 */
#include "rc_internal.h"

/* The control blocks' mutexes, striped by address. A block has none of
 * its own (24 bytes instead of 64), and fork can hold them all: a weak
 * operation in flight on another thread when the process forked left its
 * block's own mutex locked in the child, whose first use of that weak
 * reference then waited for ever. Each critical section below takes one
 * stripe and nothing else (no call that could take another), so stripes
 * never nest and two blocks sharing one only wait for each other's few
 * instructions. One cache line each. Sixteen: fork holds them all at
 * once, with the pools' and heaps' locks, and ThreadSanitizer's deadlock
 * detector aborts a thread that holds 64 locks (64 stripes did). */
#define RC_WEAK_STRIPES 16u
typedef struct weak_stripe {
    _Alignas(64) pthread_mutex_t mutex;
} weak_stripe_t;
#define WEAK_STRIPE_1  { PTHREAD_MUTEX_INITIALIZER }
#define WEAK_STRIPE_4  WEAK_STRIPE_1, WEAK_STRIPE_1, WEAK_STRIPE_1, WEAK_STRIPE_1
#define WEAK_STRIPE_16 WEAK_STRIPE_4, WEAK_STRIPE_4, WEAK_STRIPE_4, WEAK_STRIPE_4
static weak_stripe_t weak_stripes[RC_WEAK_STRIPES] = { WEAK_STRIPE_16 };
_Static_assert(RC_WEAK_STRIPES == 16u, "the initializer writes 16 stripes");

static inline pthread_mutex_t *weak_stripe(const rc_weak_control_t *control) {
    uint64_t x = (uint64_t)((uintptr_t)control >> 4) * UINT64_C(0x9e3779b97f4a7c15);
    return &weak_stripes[x >> 60].mutex;
}
static inline void control_lock(const rc_weak_control_t *control) { pthread_mutex_lock(weak_stripe(control)); }
static inline void control_unlock(const rc_weak_control_t *control) { pthread_mutex_unlock(weak_stripe(control)); }

void rc_weak_stripes_take(void) {
    for (unsigned i = 0; i < RC_WEAK_STRIPES; i++) pthread_mutex_lock(&weak_stripes[i].mutex);
}
void rc_weak_stripes_give(void) {
    for (unsigned i = RC_WEAK_STRIPES; i-- > 0;) pthread_mutex_unlock(&weak_stripes[i].mutex);
}

#define RC_WEAK_LIVE UINT64_C(0x72634c56776b4c56) /* "rcLVwkLV" */

struct rc_weak {
    rc_weak_control_t *control;
    /* RC_WEAK_LIVE until freed; the second word of the cell, which a freed
     * pool cell keeps addressable and overwrites with its free mark
     * (pool/tool.h), so a double free or use after free is caught until
     * the cell is reused. */
    _Atomic uint64_t   magic;
};

/* Reads a maybe-freed handle's magic (poisoned under ASan: not
 * instrumented, as rc_internal.h's rc_magic_peek). */
static inline MULCH_NO_ASAN bool weak_is_live(const rc_weak_t *weak) {
    return atomic_load_explicit(&((rc_weak_t *)(uintptr_t)weak)->magic, memory_order_relaxed) == RC_WEAK_LIVE;
}

/* Takes a maybe-freed handle for rc_weak_free: one CAS, so of two threads
 * freeing it at once only one gets it (a check, then a store, let both
 * through: both took a reference off the control block and freed the
 * cell). A failed CAS writes nothing (a freed cell's second word is the
 * pool's free mark). Not instrumented, as weak_is_live. */
static inline MULCH_NO_ASAN bool weak_claim(rc_weak_t *weak) {
    uint64_t live = RC_WEAK_LIVE;
    return atomic_compare_exchange_strong_explicit(&weak->magic, &live, 0, memory_order_acquire,
                                                   memory_order_relaxed);
}

void (*mulch_rc_weak_free_test_hook)(rc_weak_t *weak);

/* Handles and control blocks come from the default pool (never destroyed
 * once made; NULL before, if the OS refused its creation: rc_weak_new then
 * fails as out of memory, and no weak reference exists to lock or free),
 * not from the object's: a weak reference may be locked or freed after the
 * object died and its pool (rc_alloc_in) was destroyed, which took every
 * cell of that pool with it (rc_weak_free then wrote into unmapped memory).
 * An object pool_destroy frees while it still lives has no destroy: the
 * pool's hook detaches its control block instead (rc_unown.c). */
static pool_t *weak_pool(void) { return pool_default(); }

/* The control block of a live object (made on first use); NULL when out
 * of memory, RC_WEAK_DEAD when its destroy started (misuse: the caller
 * holds no reference). */
static rc_weak_control_t *weak_control_get(rc_header_t *h) {
    rc_weak_control_t *control = atomic_load_explicit(&h->weak, memory_order_acquire);
    if (control) return control;
    control = pool_alloc(weak_pool(), sizeof *control); /* (rc_weak_new checked the pool) */
    if (control == NULL) return NULL;
    control->obj = rc_object_of(h);
    atomic_store_explicit(&control->weak_refs, 0, memory_order_relaxed);
    control->object_gone = false;
    rc_weak_control_t *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&h->weak, &expected, control, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        pool_free(weak_pool(), control);
        return expected;
    }
    return control;
}

static void weak_control_free(rc_weak_control_t *control) {
    pool_free(weak_pool(), control);
}

rc_weak_t *rc_weak_new(void *obj) {
    if (!rc_check(obj, "rc_weak_new")) return NULL;
    /* pool_default() is NULL while the OS refuses its creation (an object
     * of another pool may live meanwhile): out of memory, and pool_alloc,
     * which does not check its pool, would crash */
    if (mulch_unlikely(weak_pool() == NULL)) return NULL;
    rc_header_t *h = rc_header_of(obj);
    /* A merged 0 is final (its destroy is pending): the caller holds no
     * reference, as with rc_retain, which reports the same. (An unmerged
     * count cannot be judged here; the destroy detaches a block attached
     * meanwhile.) */
    int64_t shared = atomic_load_explicit(&h->shared, memory_order_relaxed);
    if (mulch_unlikely((shared & RC_MERGED) && (shared >> RC_SHIFT) <= 0)) {
        mulch_report("rc_weak_new: object's count is 0 (weak reference after the last release)", obj);
        return NULL;
    }
    rc_weak_control_t *control = weak_control_get(h);
    if (control == RC_WEAK_DEAD) goto destroyed;
    if (control == NULL) return NULL;
    rc_weak_t *weak = pool_alloc(weak_pool(), sizeof *weak);
    if (weak == NULL) return NULL;
    /* Misuse (no reference of the caller's) may race the destroy, which
     * takes the block off the header before it detaches it under this
     * lock: still there, the block counts us before the destroy looks;
     * gone, it may be freed already (only its stripe is touched). */
    control_lock(control);
    bool attached = atomic_load_explicit(&h->weak, memory_order_relaxed) == control;
    if (attached) atomic_fetch_add_explicit(&control->weak_refs, 1, memory_order_relaxed);
    control_unlock(control);
    if (!attached) {
        pool_free(weak_pool(), weak);
        goto destroyed;
    }
    weak->control = control;
    atomic_store_explicit(&weak->magic, RC_WEAK_LIVE, memory_order_relaxed);
    return weak;
destroyed:
    mulch_report("rc_weak_new: object already destroyed (use after release)", obj);
    return NULL;
}

void *rc_weak_lock(rc_weak_t *weak) {
    if (weak == NULL) return NULL;
    if (!weak_is_live(weak)) {
        mulch_report("rc_weak_lock: weak reference already freed (use after rc_weak_free)", weak);
        return NULL;
    }
    rc_weak_control_t *control = weak->control;
    control_lock(control);
    void *obj = control->obj;
    if (obj) {
        rc_header_t *h = rc_header_of(obj);
        int64_t count = atomic_load_explicit(&h->shared, memory_order_relaxed);
        for (;;) {
            if ((count & RC_MERGED) && (count >> RC_SHIFT) <= 0) {
                obj = NULL; /* dying: its destroyer is on the way to this lock */
                break;
            }
            if (atomic_compare_exchange_weak_explicit(&h->shared, &count, count + RC_ONE, memory_order_acquire,
                                                      memory_order_relaxed))
                break;
        }
    }
    control_unlock(control);
    return obj;
}

void rc_weak_free(rc_weak_t *weak) {
    if (weak == NULL) return;
    if (mulch_unlikely(mulch_rc_weak_free_test_hook != NULL)) mulch_rc_weak_free_test_hook(weak);
    if (!weak_claim(weak)) {
        mulch_report("rc_weak_free: weak reference already freed (double free)", weak);
        return;
    }
    rc_weak_control_t *control = weak->control;
    control_lock(control);
    size_t left = atomic_fetch_sub_explicit(&control->weak_refs, 1, memory_order_relaxed) - 1;
    bool free_control = left == 0 && control->object_gone;
    control_unlock(control);
    if (free_control) weak_control_free(control);
    pool_free(weak_pool(), weak);
}

bool rc_weak_detach(rc_weak_control_t *control) {
    control_lock(control);
    control->obj = NULL;
    control->object_gone = true;
    bool free_control = atomic_load_explicit(&control->weak_refs, memory_order_relaxed) == 0;
    control_unlock(control);
    if (free_control) weak_control_free(control);
    return true;
}
