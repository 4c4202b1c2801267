/* weak.c — weak rc references.
 *
 * An object's weak references share one control block (created by the
 * first rc_weak_new, pool-allocated). rc_weak_lock never revives a dying
 * object: under the control block's mutex it increments the count with a
 * CAS only if the count is not a merged zero, so every transition to zero
 * is final and its destroyer alone clears the control block (under the
 * same mutex) before destroying. The mutex also orders freeing the control
 * block: the last of the object and its weak handles frees it. A handle is
 * a small rc_weak_t pointing at the control block.
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

#define RC_WEAK_LIVE UINT64_C(0x72634c56776b4c56) /* "rcLVwkLV" */

struct rc_weak {
    rc_weak_control_t *control;
    /* RC_WEAK_LIVE until freed; the second word of the cell, which a freed
     * pool cell keeps addressable and overwrites with its free mark
     * (pool/tool.h), so a double free or use after free is caught until
     * the cell is reused. */
    uint64_t           magic;
};

/* Reads a maybe-freed handle's magic (poisoned under ASan: not
 * instrumented, as rc.c's rc_magic_peek). */
static inline MULCH_NO_ASAN bool weak_is_live(const rc_weak_t *weak) {
    return ((const volatile rc_weak_t *)weak)->magic == RC_WEAK_LIVE;
}

static rc_weak_control_t *weak_control_get(rc_header_t *h) {
    rc_weak_control_t *control = atomic_load_explicit(&h->weak, memory_order_acquire);
    if (control) return control;
    chunk_t *chunk = chunk_of(h);
    control = pool_alloc(chunk->pool, sizeof *control);
    if (control == NULL) return NULL;
    pthread_mutex_init(&control->lock, NULL);
    control->obj = rc_object_of(h);
    atomic_store_explicit(&control->weak_refs, 0, memory_order_relaxed);
    control->object_gone = false;
    rc_weak_control_t *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&h->weak, &expected, control, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        pthread_mutex_destroy(&control->lock);
        pool_free(chunk->pool, control);
        return expected;
    }
    return control;
}

static void weak_control_free(rc_weak_control_t *control) {
    pthread_mutex_destroy(&control->lock);
    pool_free(chunk_of(control)->pool, control);
}

rc_weak_t *rc_weak_new(void *obj) {
    if (!rc_check(obj, "rc_weak_new")) return NULL;
    rc_header_t *h = rc_header_of(obj);
    rc_weak_control_t *control = weak_control_get(h);
    if (control == NULL) return NULL;
    rc_weak_t *weak = pool_alloc(chunk_of(h)->pool, sizeof *weak);
    if (weak == NULL) return NULL;
    pthread_mutex_lock(&control->lock);
    atomic_fetch_add_explicit(&control->weak_refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&control->lock);
    weak->control = control;
    weak->magic = RC_WEAK_LIVE;
    return weak;
}

void *rc_weak_lock(rc_weak_t *weak) {
    if (weak == NULL) return NULL;
    if (!weak_is_live(weak)) {
        mulch_report("rc_weak_lock: weak reference already freed (use after rc_weak_free)", weak);
        return NULL;
    }
    rc_weak_control_t *control = weak->control;
    pthread_mutex_lock(&control->lock);
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
    pthread_mutex_unlock(&control->lock);
    return obj;
}

void rc_weak_free(rc_weak_t *weak) {
    if (weak == NULL) return;
    if (!weak_is_live(weak)) {
        mulch_report("rc_weak_free: weak reference already freed (double free)", weak);
        return;
    }
    weak->magic = 0;
    rc_weak_control_t *control = weak->control;
    pthread_mutex_lock(&control->lock);
    size_t left = atomic_fetch_sub_explicit(&control->weak_refs, 1, memory_order_relaxed) - 1;
    bool free_control = left == 0 && control->object_gone;
    pthread_mutex_unlock(&control->lock);
    if (free_control) weak_control_free(control);
    pool_free(chunk_of(weak)->pool, weak);
}

bool rc_weak_detach(rc_header_t *h) {
    rc_weak_control_t *control = atomic_load_explicit(&h->weak, memory_order_acquire);
    pthread_mutex_lock(&control->lock);
    control->obj = NULL;
    control->object_gone = true;
    bool free_control = atomic_load_explicit(&control->weak_refs, memory_order_relaxed) == 0;
    pthread_mutex_unlock(&control->lock);
    if (free_control) weak_control_free(control);
    return true;
}
