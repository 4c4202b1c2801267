/* rc_unown.c — pool_destroy's release of the thread records that the
 * pool's live rc objects still name (rc_pool_live_unown, called by
 * rc.c's rc_pool_destroying).
 *
 * pool_destroy frees live rc objects without destroying them; an object
 * its owner still counts (not merged) holds its owner's record (`live`,
 * then `holds` after the owner's exit: rc_internal.h). The walk below, over
 * the pool's live cells under the pool's lock, clears each such object's
 * owner and lets go of the record as a merge would. Under the pool's lock
 * no record goes on the free list (the records lock must not nest with
 * it): rc_records_put_later collects them for after the walk.
 *
 * The same walk finds the live objects that have weak references: their
 * control blocks (in the default pool, which outlives this one) would
 * keep pointing at the freed cells, and a later rc_weak_lock would read
 * (and count a reference in) dead memory. The walk links such objects
 * through their headers' `link` (free: a live object of this pool is in
 * no merge queue or pending list once rc_pool_destroying merged them);
 * after the pool's lock is released (weak stripes must not nest under
 * it: fork takes both), each control block is detached as a destroy
 * would, so its locks answer NULL. The cells stay mapped until
 * pool_destroy unmaps them after its hook returns. A cell counts as an rc
 * object by its magic; its `weak` word is followed only when the control
 * block it names names the cell back (rc_weak_control_of): a plain cell
 * may hold the magic's bytes by chance.
 */
#include <stdlib.h>

#include "rc_internal.h"

/* Every thread record, sorted by address: which owner words name one;
 * with, for each, how many of the pool's objects still name it. */
typedef struct {
    rc_thread_t **items;
    size_t       *freed;
    size_t        count, bytes;
    rc_header_t  *weak_list;  /* live objects with a control block (`link`) */
} rc_records_sorted_t;

/* rc_cell_unown_unsorted's context: the record list, and the same
 * weak_list. */
typedef struct {
    rc_thread_t *first;
    rc_header_t *weak_list;
} rc_records_unsorted_t;

/* Whether `control`, read from the `weak` word of a cell whose magic says
 * RC_LIVE, is that object's control block. The magic alone does not tell
 * an rc object from a plain pool_alloc'd cell whose bytes happen to hold
 * it, and detaching whatever such a cell's word points to wrote through a
 * wild pointer (or freed another object's control block). A control block
 * is a cell of a pool's small block whose `obj` names the object it
 * watches: only this object's own block names this cell (a destroy or a
 * detach sets `obj` to NULL before the cell is reused). Costs nothing on
 * rc's fast paths: only pool_destroy's walk asks. (Not instrumented: the
 * word may point into any cell, as rc_magic_peek.) */
static MULCH_NO_ASAN bool rc_weak_control_of(const rc_header_t *h, const rc_weak_control_t *control) {
    if ((uintptr_t)control & 15u) return false;
    const block_t *b = pool_block_of(control);
    if (b == NULL || b->kind != BLOCK_SMALL || b->cell_size < sizeof *control) return false;
    return control->obj == rc_object_of((rc_header_t *)(uintptr_t)h);
}

/* A live object that pool_destroy is about to free: linked onto *list if
 * weak references watch it (under the pool's lock: takes no lock). */
static MULCH_NO_ASAN void rc_cell_weak_collect(rc_header_t *h, rc_header_t **list) {
    rc_weak_control_t *control = atomic_load_explicit(&h->weak, memory_order_relaxed);
    if (control == NULL || control == RC_WEAK_DEAD || !rc_weak_control_of(h, control)) return;
    h->link = *list;
    *list = h;
}

/* After the walk, outside the pool's lock: the collected objects' weak
 * references let go of them, as at a destroy (rc_weak_close), so
 * rc_weak_lock answers NULL and the last rc_weak_free frees the block. */
static void rc_weak_list_detach(rc_header_t *list) {
    while (list) {
        rc_header_t *next = list->link;
        (void)rc_weak_close(list);
        list = next;
    }
}

static int rc_record_order(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)*(rc_thread_t *const *)a, y = (uintptr_t)*(rc_thread_t *const *)b;
    return x < y ? -1 : x > y;
}

/* A live cell pool_destroy is about to free: if it is an rc object whose
 * owner still counts it (not merged), count it for that owner. (Under the
 * pool's lock: takes no lock. Reads a cell that may be any allocation:
 * not instrumented, as rc_magic_peek.) */
static MULCH_NO_ASAN void rc_cell_unown(void *ctx, void *cell, size_t size) {
    rc_records_sorted_t *records = ctx;
    if (size < sizeof(rc_header_t)) return;
    rc_header_t *h = cell;
    if (atomic_load_explicit(&h->magic, memory_order_relaxed) != rc_live_magic(h)) return;
    rc_cell_weak_collect(h, &records->weak_list);
    rc_thread_t *rec = atomic_load_explicit(&h->owner, memory_order_relaxed);
    if (rec == NULL) return;
    rc_thread_t **at = bsearch(&rec, records->items, records->count, sizeof *records->items, rc_record_order);
    if (at == NULL) return;
    atomic_store_explicit(&h->owner, NULL, memory_order_relaxed);
    records->freed[at - records->items]++;
}

/* n of the pool's objects named rec and stopped (pool_destroy freed them). */
static void rc_record_unown_freed(rc_thread_t *rec, size_t n) {
    if (rec == rc_self) rec->live -= n;
    else if (atomic_load_explicit(&rec->dead, memory_order_acquire)) rc_record_put(rec, n);
    else rc_record_unown_for_running(rec, n);
}

/* rc_cell_unown when the sorted records could not be mapped: the owner is
 * looked up in the list from `first` (ctx: rc_records_unsorted_t), and
 * let go of at once (under the pool's lock: rc_records_put_later is set). */
static MULCH_NO_ASAN void rc_cell_unown_unsorted(void *ctx, void *cell, size_t size) {
    if (size < sizeof(rc_header_t)) return;
    rc_header_t *h = cell;
    if (atomic_load_explicit(&h->magic, memory_order_relaxed) != rc_live_magic(h)) return;
    rc_records_unsorted_t *unsorted = ctx;
    rc_cell_weak_collect(h, &unsorted->weak_list);
    rc_thread_t *owner = atomic_load_explicit(&h->owner, memory_order_relaxed), *rec = unsorted->first;
    if (owner == NULL) return;
    while (rec && rec != owner) rec = rec->next_all;
    if (rec == NULL) return;
    atomic_store_explicit(&h->owner, NULL, memory_order_relaxed);
    rc_record_unown_freed(rec, 1);
}

/* pool_destroy frees the pool's live rc objects without destroying them:
 * those their owners still count would hold the owners' records for ever
 * (an exited thread's record never went back on the free list: a page
 * leaked per thread in a thread-per-task program whose tasks end with
 * pool_destroy). Each such object lets go of its record now, as a merge
 * would. Their weak references are detached (top of file). */
void rc_pool_live_unown(pool_t *pool) {
    rc_records_sorted_t records = { NULL, NULL, 0, 0, NULL };
    pthread_mutex_lock(&mulch_rc_records_lock);
    rc_thread_t *first = rc_records_all;
    pthread_mutex_unlock(&mulch_rc_records_lock);
    /* the list from `first` on never changes (records only come in front;
     * newer ones belong to threads that cannot own the pool's objects) */
    for (rc_thread_t *rec = first; rec; rec = rec->next_all) records.count++;
    records.bytes = records.count * (sizeof *records.items + sizeof *records.freed);
    if (records.bytes == 0) return;
    if ((records.items = os_map(records.bytes)) == NULL) { /* zeroed */
        rc_thread_t *later = NULL;
        rc_records_unsorted_t unsorted = { first, NULL };
        rc_records_put_later = &later;
        pool_live_cells_walk(pool, rc_cell_unown_unsorted, &unsorted); /* slower, needs no memory */
        rc_records_put_later = NULL;
        rc_weak_list_detach(unsorted.weak_list);
        while (later) {
            rc_thread_t *next = later->next_free;
            rc_records_free_push(later);
            later = next;
        }
        return;
    }
    records.freed = (size_t *)(records.items + records.count);
    size_t n = 0;
    for (rc_thread_t *rec = first; rec; rec = rec->next_all) records.items[n++] = rec;
    qsort(records.items, records.count, sizeof *records.items, rc_record_order);
    pool_live_cells_walk(pool, rc_cell_unown, &records);
    rc_weak_list_detach(records.weak_list);
    for (size_t i = 0; i < records.count; i++) {
        rc_thread_t *rec = records.items[i];
        size_t freed = records.freed[i];
        if (freed != 0) rc_record_unown_freed(rec, freed);
    }
    os_unmap(records.items, records.bytes);
}
