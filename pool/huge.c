/* huge.c — allocations above the largest size class, each in its own
 * mapping (a CHUNK_HUGE chunk: header, then the object).
 *
 * The mapping is region-aligned so the chunk map can find it from the
 * object's address; the object starts right after the header (or at the
 * requested alignment: the first multiple of it after the header, and
 * for an alignment above a region, one region in, the mapping placed so
 * that this is a multiple of the alignment; so the gap before the object
 * never exceeds a region, whatever the alignment). Freed mappings are kept
 * in a small cache (at most HUGE_CACHE_COUNT mappings and HUGE_CACHE_BYTES)
 * so that a program that frees and reallocates big buffers does not pay
 * mmap/munmap and page faults each time; pool_trim empties the cache. All
 * list work is under pool->lock. A released mapping keeps its address
 * range (os_retire), so a racing stale free reads zeros, not a fault.
 *
 * Secure mode (pool->secure): the mapping ends with an inaccessible guard
 * page and the object is placed as late as its alignment allows, so that it
 * ends at the guard (to the 16-byte granule): a linear overflow faults at
 * once. The guard is never a region's first page (a page more when it
 * would be): an older chunk's header may be there, which a racing stale
 * free reads (os.c). Freed mappings are released instead of cached, all
 * but the pages up to the object's first 32 bytes (HUGE_FREED_READABLE)
 * and each region's first page inaccessible (os_retire), so a use after
 * free faults too.
 * Invariant either way: the object lies inside
 * [chunk + huge_offset(align), chunk + size - guard).
 *
 * huge_realloc resizes an object that stays huge without copying it
 * (outside secure mode, whose object must end at the guard: it copies, in
 * alloc.c; under valgrind, whose client requests describe the block, a
 * grow copies into the new mapping and a shrink resizes memcheck's block
 * in place): a shrink below half retires the tail pages; a grow extends the mapping in
 * place when the address space after it is free (never into a retired
 * range: those stay mapped), else moves the pages to a new region-aligned
 * mapping at the same object offset (os_move_pages; a copy into it where
 * the kernel cannot) and retires the old range as huge_unmap_locked does,
 * so a stale free of the old pointer reads zeros and reports. The cache is
 * not used for it: a cached mapping would still need the object copied
 * in, where moving costs page-table updates. Every path keeps chunk->size,
 * the chunk map (every region, the last one's coverage), the huge list,
 * committed/mapped/huge_bytes and the leak site exact; a failure leaves
 * the object as it was.
 */
#include "pool_internal.h"

#define HUGE_CACHE_COUNT 4u
#define HUGE_CACHE_BYTES ((size_t)64 << 20)
/* A secure pool's freed object keeps its first bytes readable (zeros), as
 * a freed cell keeps its first two words: rc reads its header there (the
 * owner word, which rc.h's inline paths read before validating, is the
 * fourth word of an rc object's cell) to report a use after release
 * instead of faulting. The header page is readable anyway; this adds the
 * next page only when the object's first words cross into it. */
#define HUGE_FREED_READABLE ((size_t)32)

static void huge_list_remove(chunk_t **list, chunk_t *chunk) {
    if (chunk->prev) chunk->prev->next = chunk->next;
    else *list = chunk->next;
    if (chunk->next) chunk->next->prev = chunk->prev;
    chunk->next = chunk->prev = NULL;
}

static void huge_list_push(chunk_t **list, chunk_t *chunk) {
    chunk->prev = NULL;
    chunk->next = *list;
    if (*list) (*list)->prev = chunk;
    *list = chunk;
}

static size_t huge_offset(size_t align) {
    size_t header = sizeof(chunk_t);
    if (align > MULCH_REGION) return MULCH_REGION;
    return align <= MULCH_ALIGN ? header : (header + align - 1) & ~(align - 1);
}

/* A cached mapping that fits without wasting more than a quarter, and
 * whose byte at offset is aligned. */
static chunk_t *huge_cache_take_locked(pool_t *pool, size_t total, size_t align, size_t offset) {
    for (chunk_t *c = pool->huge_cache; c; c = c->next) {
        if (c->size >= total && c->size - total <= total / 4 && (((uintptr_t)c + offset) & (align - 1)) == 0) {
            huge_list_remove(&pool->huge_cache, c);
            pool->huge_cache_count--;
            pool->huge_cache_bytes -= c->size;
            return c;
        }
    }
    return NULL;
}

/* Secure mode's guard page at the end of each mapping (0 otherwise). */
static size_t huge_guard(const pool_t *pool) {
    return pool->secure ? MULCH_PAGE : 0;
}

static void huge_unmap_locked(pool_t *pool, chunk_t *chunk) {
    pool_uncommit_locked(pool, chunk->size);
    pool_counter_add(&pool->mapped, -(ptrdiff_t)chunk->size);
    chunk_map_remove(chunk);
    atomic_store_explicit(&chunk->magic, 0, memory_order_relaxed);
    /* retired, not unmapped: a stale free racing this reads zeros (os.c);
     * in secure mode only the page(s) up to the object's first
     * HUGE_FREED_READABLE bytes do, and a use after free past them faults */
    os_retire(chunk, chunk->size, pool->secure ? chunk->object_offset + HUGE_FREED_READABLE : chunk->size);
}

static void *huge_alloc_once(pool_t *pool, size_t size, size_t align, const leak_site_t *site, bool *reused);

/* Whether `bytes` more fit under the limit, after giving back every idle
 * byte (the huge cache, free spans) if they did not at first. */
static bool huge_commit_fits_locked(pool_t *pool, size_t bytes) {
    if (pool_commit_fits_locked(pool, bytes)) return true;
    huge_cache_flush_locked(pool);
    span_trim_locked(pool, 0);
    return pool_commit_fits_locked(pool, bytes);
}

static void *huge_alloc_retry(pool_t *pool, size_t size, size_t align, const leak_site_t *site, bool *reused) {
    void *p = huge_alloc_once(pool, size, align, site, reused);
    if (p == NULL && pool->limit) {
        /* At the limit, this thread's idle spans may be what stands in the way. */
        /* (no heap made for a thread whose exit destructor ran: nothing
         * would hand it back) */
        thread_heap_t *heap = mulch_tls.exited ? NULL : heap_current(pool);
        if (heap && heap_release_empty(pool, heap) > 0) p = huge_alloc_once(pool, size, align, site, reused);
    }
    return p;
}

void *huge_alloc(pool_t *pool, size_t size, size_t align, const leak_site_t *site) {
    bool reused;
    return huge_alloc_retry(pool, size, align, site, &reused);
}

/* A fresh mapping reads as zeros already: only a cached one is cleared, so
 * a big calloc does not fault in every page up front. */
void *huge_alloc_zeroed(pool_t *pool, size_t size, const leak_site_t *site) {
    bool reused = false;
    void *p = huge_alloc_retry(pool, size, MULCH_ALIGN, site, &reused);
    if (p && reused) memset(p, 0, size);
    /* Zero because fresh: memcheck saw a malloc-like (undefined) block. */
    else if (p && TOOL_VG(pool->valgrind)) tool_vg_defined(p, size);
    return p;
}

static void *huge_alloc_once(pool_t *pool, size_t size, size_t align, const leak_site_t *site, bool *reused) {
    if (align < MULCH_ALIGN) align = MULCH_ALIGN;
    size_t requested = size; /* what the leak report shows */
    /* Size 0 (pool_alloc_aligned with a big alignment) still gets a byte of
     * its own: with an aligned offset the object would otherwise start at
     * the end of the mapping, outside it. */
    if (size == 0) size = 1;
    size_t offset = huge_offset(align);
    if (size > ((size_t)1 << CHUNK_MAP_ADDRESS_BITS) || align > ((size_t)1 << CHUNK_MAP_ADDRESS_BITS))
        return NULL; /* can never fit: plain OOM */
    size_t guard = huge_guard(pool);
    size_t total = ((offset + size + MULCH_PAGE - 1) & ~(MULCH_PAGE - 1)) + guard;
    /* The guard never on a region's first page (os.c: an older chunk's
     * header may be there, which a stale free is about to read): a page
     * more, and the object, placed late, moves up a page. */
    if (guard && ((total - guard) & (MULCH_REGION - 1)) == 0) total += MULCH_PAGE;

    pthread_mutex_lock(&pool->lock);
    chunk_t *chunk = huge_cache_take_locked(pool, total, align, offset);
    *reused = chunk != NULL;
    if (chunk == NULL) {
        /* Committed only once mapped (the lock is held throughout, so the
         * check stands): a mapping the OS refuses must not raise
         * peak_reserved. */
        if (!huge_commit_fits_locked(pool, total)) {
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        /* charged: a size the kernel would not commit (16 TiB) gives NULL, as
         * glibc's malloc does, not a mapping that faults when touched */
        chunk = align > MULCH_REGION ? os_map_aligned(total, align, offset, true)
                                     : os_map_aligned(total, MULCH_REGION, 0, true);
        if (chunk == NULL) {
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        chunk->kind = CHUNK_HUGE;
        chunk->blocks_token = 0; /* never a blocks chunk's: frees go to the slow path */
        chunk->pool = pool;
        chunk->size = total;
        /* last, release: see chunk_t's magic */
        atomic_store_explicit(&chunk->magic, chunk_magic_of(chunk), memory_order_release);
        if (!chunk_map_insert(chunk)) {
            os_retire(chunk, total, total);
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        pool_commit_locked(pool, total); /* fits: checked above */
        pool_counter_add(&pool->mapped, (ptrdiff_t)total);
        if (guard && !os_protect_none((unsigned char *)chunk + total - guard, guard)) {
            huge_unmap_locked(pool, chunk);
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
    }
    if (guard) {
        /* end at the guard: the latest aligned start that still fits
         * (aligned as an address: the chunk itself need not be) */
        uintptr_t base = (uintptr_t)chunk;
        size_t end = chunk->size - guard;
        size_t rounded = (size + MULCH_ALIGN - 1) & ~(size_t)(MULCH_ALIGN - 1);
        size_t late = (size_t)(((base + end - rounded) & ~(uintptr_t)(align - 1)) - base);
        if (late > offset) offset = late;
    }
    chunk->object_offset = offset;
    chunk->object_size = chunk->size - guard - offset;
    chunk->requested = requested;
    atomic_store_explicit(&chunk->allocated, 1, memory_order_relaxed);
    chunk->site = *site;
    huge_list_push(&pool->huge, chunk);
    pool_counter_add(&pool->huge_live, 1);
    pool_counter_add(&pool->huge_bytes, (ptrdiff_t)chunk->object_size);
    atomic_fetch_add_explicit(&pool->huge_allocs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&pool->lock);
    void *object = (unsigned char *)chunk + offset;
    tool_cell_alloc(pool->valgrind, object, size, chunk->object_size);
    return object;
}

/* Whether chunk still holds the live huge object p of pool. Under
 * pool->lock, so a chunk of this pool is either whole or not one (made and
 * released under the lock); one of another pool, or a range just retired
 * (zeros), fails the magic or the pool test. */
static bool huge_still_live_locked(const pool_t *pool, const chunk_t *chunk, const void *p) {
    return atomic_load_explicit(&chunk->magic, memory_order_acquire) == chunk_magic_of(chunk)
           && chunk->kind == CHUNK_HUGE && chunk->pool == pool
           && atomic_load_explicit(&chunk->allocated, memory_order_relaxed)
           && (const unsigned char *)p == (const unsigned char *)chunk + chunk->object_offset;
}

/* Room in the cache for a mapping of `bytes` (at most half the cache):
 * the oldest entries go (the cache is a list, newest first). The mapping
 * just freed is the likeliest to be asked for again; refused when the
 * cache was full, four smaller mappings cached earlier kept every larger
 * one out for good, each of its frees an munmap and each allocation an
 * mmap and fresh page faults (a loop of 300 KiB malloc/free after four
 * 200 KiB frees: 17x glibc's time; review session 36). */
static void huge_cache_make_room_locked(pool_t *pool, size_t bytes) {
    while (pool->huge_cache_count >= HUGE_CACHE_COUNT || pool->huge_cache_bytes + bytes > HUGE_CACHE_BYTES) {
        chunk_t *oldest = pool->huge_cache;
        while (oldest->next) oldest = oldest->next;
        huge_list_remove(&pool->huge_cache, oldest);
        pool->huge_cache_count--;
        pool->huge_cache_bytes -= oldest->size;
        huge_unmap_locked(pool, oldest);
    }
}

/* p: the object, checked by pointer_check without the lock. */
void huge_free(pool_t *pool, chunk_t *chunk, void *p) {
    pthread_mutex_lock(&pool->lock);
    if (!huge_still_live_locked(pool, chunk, p)) {
        /* Lost a race with another free of it, which may have released
         * the chunk since: what is there now (zeros) says nothing of p. */
        pthread_mutex_unlock(&pool->lock);
        mulch_report("pool_free: double free", p);
        return;
    }
    atomic_store_explicit(&chunk->allocated, 0, memory_order_relaxed);
    huge_list_remove(&pool->huge, chunk);
    pool_counter_add(&pool->huge_live, -1);
    pool_counter_add(&pool->huge_bytes, -(ptrdiff_t)chunk->object_size);
    atomic_fetch_add_explicit(&pool->huge_frees, 1, memory_order_relaxed);
    /* the object and any alignment gap before it stay hidden while cached */
    tool_cell_free(pool->valgrind, (unsigned char *)chunk + chunk->object_offset, chunk->object_size);
    tool_hide(0, (unsigned char *)chunk + sizeof(chunk_t), chunk->size - sizeof(chunk_t) - huge_guard(pool));
    if (!pool->secure && chunk->size <= HUGE_CACHE_BYTES / 2) {
        huge_cache_make_room_locked(pool, chunk->size);
        huge_list_push(&pool->huge_cache, chunk);
        pool->huge_cache_count++;
        pool->huge_cache_bytes += chunk->size;
    } else {
        huge_unmap_locked(pool, chunk);
    }
    pthread_mutex_unlock(&pool->lock);
}

bool huge_resized(pool_t *pool, chunk_t *chunk, void *p, size_t size, const leak_site_t *site) {
    pthread_mutex_lock(&pool->lock); /* the leak report reads them under the lock */
    bool live = huge_still_live_locked(pool, chunk, p);
    if (live) {
        chunk->requested = size;
        if (pool->track_leaks) chunk->site = *site;
    }
    pthread_mutex_unlock(&pool->lock);
    /* a stale pointer whose other free released the (now read-only) chunk
     * since pointer_check: no write, a report */
    if (!live) mulch_report("pool_realloc: double free or stale pointer (its chunk was released)", p);
    return live;
}

size_t huge_cache_flush_locked(pool_t *pool) {
    size_t released = 0;
    while (pool->huge_cache) {
        chunk_t *chunk = pool->huge_cache;
        huge_list_remove(&pool->huge_cache, chunk);
        released += chunk->size;
        huge_unmap_locked(pool, chunk);
    }
    pool->huge_cache_count = 0;
    pool->huge_cache_bytes = 0;
    return released;
}

void huge_unmap_all_locked(pool_t *pool) {
    huge_cache_flush_locked(pool);
    while (pool->huge) {
        chunk_t *chunk = pool->huge;
        huge_list_remove(&pool->huge, chunk);
        huge_unmap_locked(pool, chunk);
    }
}

/* ---- realloc that keeps the pages --------------------------------------- */

static size_t huge_page_round(size_t size) {
    return (size + MULCH_PAGE - 1) & ~(MULCH_PAGE - 1);
}

/* The chunk's mapping now spans total bytes (was old_total) at the same
 * address, holding the object p of size bytes: the counters follow. */
static void huge_account_resize_locked(pool_t *pool, chunk_t *chunk, size_t old_total, size_t total) {
    ptrdiff_t delta = (ptrdiff_t)total - (ptrdiff_t)old_total;
    if (delta > 0) (void)pool_commit_locked(pool, (size_t)delta); /* fits: checked */
    else pool_uncommit_locked(pool, (size_t)-delta);
    pool_counter_add(&pool->mapped, delta);
    pool_counter_add(&pool->huge_bytes, delta);
    chunk->object_size = total - chunk->object_offset;
}

/* A shrink by more than half: the tail pages are released (retired, as a
 * released chunk is: the chunk map forgets them first). Never fails. */
static void *huge_shrink_locked(pool_t *pool, chunk_t *chunk, void *p, size_t size, size_t total) {
    size_t old_total = chunk->size, old_usable = chunk->object_size;
    chunk->size = total;
    (void)chunk_map_resize(chunk, old_total); /* a shrink maps no leaf */
    huge_account_resize_locked(pool, chunk, old_total, total);
    os_retire((unsigned char *)chunk + total, old_total - total, old_total - total);
    tool_cell_resize(p, size, chunk->object_size);
    /* memcheck: the block shrinks in place (the tail it forgets is
     * noaccess again, after the retired pages' fresh mapping) */
    if (TOOL_VG(pool->valgrind)) tool_vg_resize(p, old_usable, chunk->object_size);
    return p;
}

/* Grows the mapping where it is, if the address space after it is free. */
static bool huge_grow_in_place_locked(pool_t *pool, chunk_t *chunk, void *p, size_t size, size_t total) {
    size_t old_total = chunk->size;
    if (!os_resize_in_place(chunk, old_total, total)) return false;
    chunk->size = total;
    if (!chunk_map_resize(chunk, old_total)) {
        chunk->size = old_total;
        (void)os_resize_in_place(chunk, total, old_total); /* a shrink: cannot fail */
        return false;
    }
    huge_account_resize_locked(pool, chunk, old_total, total);
    tool_cell_resize(p, size, chunk->object_size);
    return true;
}

/* Moves the object to a new region-aligned mapping of total bytes (the
 * object at the same offset, so an aligned one stays aligned): its pages
 * move (os_move_pages), or are copied where the kernel cannot move them.
 * The old range is then retired as huge_unmap_locked does: a stale free
 * of p reads zeros. NULL (p intact) when the OS refuses. */
static void *huge_move_locked(pool_t *pool, chunk_t *chunk, void *p, size_t size, size_t total, bool copy) {
    size_t old_total = chunk->size, old_object_size = chunk->object_size, offset = chunk->object_offset;
    chunk_t *dest = os_map_aligned(total, MULCH_REGION, 0, true);
    if (dest == NULL) return NULL;
    /* what chunk_map_insert reads: the move overwrites it */
    dest->kind = CHUNK_HUGE;
    dest->size = total;
    if (!chunk_map_insert(dest)) {
        os_retire(dest, total, total);
        return NULL;
    }
    void *q = (unsigned char *)dest + offset;
    chunk_map_remove(chunk); /* reads the header: before it moves */
    huge_list_remove(&pool->huge, chunk);
    /* memcheck: q is a new block before the copy brings p's definedness */
    tool_cell_alloc(pool->valgrind, q, size, total - offset);
    os_move_t moved = copy ? OS_MOVE_UNSUPPORTED : os_move_pages(chunk, old_total, dest);
    if (moved == OS_MOVE_REFUSED) {
        tool_cell_free(pool->valgrind, q, total - offset);
        chunk_map_remove(dest);
        os_retire(dest, total, total);
        (void)chunk_map_insert(chunk); /* its leaves are there: cannot fail */
        huge_list_push(&pool->huge, chunk);
        return NULL;
    }
    if (moved == OS_MOVE_UNSUPPORTED) {
        memcpy(dest, chunk, sizeof(chunk_t));
        memcpy(q, p, tool_accessible(p, old_object_size)); /* ASan: the requested bytes */
    }
    /* the header came along: it is the new chunk's once its fields are */
    dest->size = total;
    dest->requested = size;
    huge_list_push(&pool->huge, dest);
    huge_account_resize_locked(pool, dest, old_total, total);
    /* counted as a realloc that moves by copy is: an allocation and a free */
    atomic_fetch_add_explicit(&pool->huge_allocs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->huge_frees, 1, memory_order_relaxed);
    /* last, release: see chunk_t's magic */
    atomic_store_explicit(&dest->magic, chunk_magic_of(dest), memory_order_release);
    tool_cell_free(pool->valgrind, p, old_object_size);
    os_retire(chunk, old_total, old_total);
    return q;
}

void *huge_realloc(pool_t *pool, chunk_t *chunk, void *p, size_t size, const leak_site_t *site, bool *handled) {
    *handled = true;
    if (size > ((size_t)1 << CHUNK_MAP_ADDRESS_BITS)) return NULL; /* can never fit: plain OOM */
    /* Secure mode places the object against its guard page: it copies, as
     * any other block does. */
    if (pool->secure) {
        *handled = false;
        return NULL;
    }
    /* Memcheck knows the object as a block of its usable size: under
     * valgrind a grow always goes to a new mapping (copied: valgrind has
     * no DONTUNMAP anyway); a shrink stays in place and tells memcheck
     * (tool_vg_resize), as it must to keep an aligned object's alignment
     * (a copy into a plain block lost it). */
    bool memcheck = TOOL_VG(pool->valgrind);
    bool released = false; /* this thread's idle spans, once, at the limit */
again:
    pthread_mutex_lock(&pool->lock);
    if (!huge_still_live_locked(pool, chunk, p)) {
        pthread_mutex_unlock(&pool->lock);
        mulch_report("pool_realloc: double free or stale pointer (its chunk was released)", p);
        return NULL;
    }
    size_t offset = chunk->object_offset; /* the header may move: read now */
    size_t total = huge_page_round(offset + size);
    void *q = NULL;
    if (total <= chunk->size) {
        q = huge_shrink_locked(pool, chunk, p, size, total);
    } else {
        size_t more = total - chunk->size;
        if (!huge_commit_fits_locked(pool, more)) {
            /* As huge_alloc_retry: this thread's idle spans may be what
             * stands in the way, given back without the pool's lock (the
             * chunk is looked up again after). */
            pthread_mutex_unlock(&pool->lock);
            if (released || mulch_tls.exited) return NULL;
            released = true;
            thread_heap_t *heap = heap_current(pool);
            if (heap && heap_release_empty(pool, heap) > 0) goto again;
            return NULL;
        } else if (!memcheck && huge_grow_in_place_locked(pool, chunk, p, size, total)) q = p;
        /* An alignment above a region is in the mapping's address, which
         * a region-aligned destination would not keep: copied. */
        else if (offset >= MULCH_REGION) *handled = false;
        else q = huge_move_locked(pool, chunk, p, size, total, memcheck);
    }
    if (q != NULL) {
        /* the leak report shows this call's size and site, as for a move
         * by copy (the chunk is p's, or the one it moved to) */
        chunk_t *now = (chunk_t *)((unsigned char *)q - offset);
        now->requested = size;
        now->site = *site;
    }
    pthread_mutex_unlock(&pool->lock);
    return q;
}
