/* span.c — chunks and spans: where blocks come from and go back to.
 *
 * All functions here run under pool->lock. A chunk's usable blocks are
 * always covered exactly by spans: in-use spans (head + BLOCK_TAIL blocks)
 * and free spans (every block BLOCK_FREE; the head's span_blocks gives the
 * length and the last block's head_offset leads back to the head, which is
 * what coalescing with the left neighbour needs). Free spans sit in
 * pool->free_spans[bin], bin = floor(log2(length)), LIFO so that recently
 * freed (still resident) blocks are reused first. Two free spans are never
 * adjacent: release merges them.
 *
 * Accounting: a block is BLOCK_COMMITTED from the time it is handed out
 * until a trim decommits it; pool->committed counts those blocks, less the
 * release units of small spans that pool_trim decommitted (release.c), plus
 * each chunk's header pages, and is what `limit` caps and bytes_reserved
 * shows. A free block has no released units: release decommits such a
 * block whole. Each chunk's header_committed counts its descriptor pages
 * and the side-metadata pages a collector's spans made resident (side.c,
 * which also says when they go: a free span's decommit takes its idle
 * metadata pages with it). BLOCK_SIDE_TOUCHED is the one flag a free
 * block keeps besides BLOCK_COMMITTED.
 */
#include "pool_internal.h"
#include "side.h"
#include "release.h"

static unsigned span_bin(uint32_t n) {
    unsigned bin = 31u - (unsigned)__builtin_clz(n);
    return bin < MULCH_SPAN_BINS ? bin : MULCH_SPAN_BINS - 1;
}

static void bin_insert(pool_t *pool, block_t *head) {
    block_t **list = &pool->free_spans[span_bin(head->span_blocks)];
    head->prev = NULL;
    head->next = *list;
    if (*list) (*list)->prev = head;
    *list = head;
}

static void bin_remove(pool_t *pool, block_t *head) {
    if (head->prev) head->prev->next = head->next;
    else pool->free_spans[span_bin(head->span_blocks)] = head->next;
    if (head->next) head->next->prev = head->prev;
    head->next = head->prev = NULL;
}

static void span_set_free_length(block_t *head, uint32_t n) {
    head->span_blocks = n;
    head->head_offset = 0;
    head[n - 1].head_offset = n - 1;
}

bool pool_commit_fits_locked(const pool_t *pool, size_t bytes) {
    size_t now = atomic_load_explicit(&pool->committed, memory_order_relaxed);
    return !pool->limit || (bytes <= pool->limit && now <= pool->limit - bytes);
}

bool pool_commit_locked(pool_t *pool, size_t bytes) {
    if (!pool_commit_fits_locked(pool, bytes)) return false;
    size_t now = atomic_load_explicit(&pool->committed, memory_order_relaxed) + bytes;
    atomic_store_explicit(&pool->committed, now, memory_order_relaxed);
    if (now > atomic_load_explicit(&pool->peak_committed, memory_order_relaxed))
        atomic_store_explicit(&pool->peak_committed, now, memory_order_relaxed);
    return true;
}

void pool_uncommit_locked(pool_t *pool, size_t bytes) {
    pool_counter_add(&pool->committed, -(ptrdiff_t)bytes);
}

/* Geometry of a chunk able to hold a span of `blocks` blocks: the standard
 * chunk when it fits, else a bigger one (a whole number of regions) made for
 * that span (large collector objects); its leftover blocks serve as usual. */
static void chunk_geometry(const pool_t *pool, uint32_t blocks, size_t *size, uint32_t *count,
                           uint32_t *header_blocks) {
    *size = pool->chunk_size;
    *count = pool->blocks_per_chunk;
    *header_blocks = pool->header_blocks;
    while (*count - *header_blocks < blocks) {
        size_t want = ((size_t)blocks + *header_blocks) << pool->block_shift;
        *size = (want + MULCH_REGION - 1) & ~(MULCH_REGION - 1);
        *count = (uint32_t)(*size >> pool->block_shift);
        size_t header = chunk_header_bytes(*count, pool->block_size, pool->side_per_block);
        *header_blocks = (uint32_t)((header + pool->block_size - 1) >> pool->block_shift);
    }
}

static chunk_t *chunk_create_locked(pool_t *pool, uint32_t min_blocks) {
    size_t chunk_size;
    uint32_t block_count, header_blocks;
    chunk_geometry(pool, min_blocks, &chunk_size, &block_count, &header_blocks);
    size_t header = (offsetof(chunk_t, blocks) + block_count * sizeof(block_t)
                     + MULCH_PAGE - 1) & ~(MULCH_PAGE - 1);
    /* Counted only once the chunk is in place (still under the lock, so
     * the limit check holds): a refused mapping must not raise the peak. */
    if (!pool_commit_fits_locked(pool, header)) return NULL;
    chunk_t *chunk = os_map_aligned(chunk_size, MULCH_REGION, 0, false);
    if (chunk == NULL) return NULL;
    chunk->kind = CHUNK_BLOCKS;
    chunk->block_shift = pool->block_shift;
    chunk->pool = pool;
    chunk->size = chunk_size;
    chunk->block_count = block_count;
    chunk->first_block = header_blocks;
    chunk->header_committed = (uint32_t)header;
    chunk->side_per_block = pool->side_per_block;
    chunk->side = (unsigned char *)chunk + offsetof(chunk_t, blocks) + block_count * sizeof(block_t);
    for (uint32_t i = 0; i < chunk->block_count; i++) {
        block_t *b = &chunk->blocks[i];
        b->index = i;
        b->chunk = chunk;
        b->kind = i < chunk->first_block ? BLOCK_HEADER : BLOCK_FREE;
    }
    chunk->blocks_token = chunk_blocks_token(pool, chunk);
    /* last, release: a stale reader of a reused range that sees it sees
     * the rest of the header (pool_internal.h, chunk_t) */
    atomic_store_explicit(&chunk->magic, chunk_magic_of(chunk), memory_order_release);
    if (!chunk_map_insert(chunk)) {
        os_retire(chunk, chunk_size, chunk_size);
        return NULL;
    }
    pool_commit_locked(pool, header); /* fits: checked above, under the lock */
    uint32_t usable = chunk->block_count - chunk->first_block;
    chunk->free_blocks = usable;
    span_set_free_length(&chunk->blocks[chunk->first_block], usable);
    bin_insert(pool, &chunk->blocks[chunk->first_block]);
    chunk->next = pool->chunks;
    if (pool->chunks) pool->chunks->prev = chunk;
    pool->chunks = chunk;
    pool_counter_add(&pool->mapped, (ptrdiff_t)chunk->size);
    return chunk;
}

static block_t *span_find_locked(pool_t *pool, uint32_t n) {
    for (unsigned bin = span_bin(n); bin < MULCH_SPAN_BINS; bin++)
        for (block_t *s = pool->free_spans[bin]; s; s = s->next)
            if (s->span_blocks >= n) return s;
    return NULL;
}

static size_t span_uncommitted_bytes(const pool_t *pool, const block_t *head, uint32_t n) {
    size_t bytes = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!(head[i].flags & BLOCK_COMMITTED)) bytes += pool->block_size;
    return bytes;
}

/* A free span of n blocks whose missing commit fits under the limit. A
 * new chunk's blocks are all uncommitted: none is made for a span whose
 * blocks alone would not fit (a collector's object of gigabytes under a
 * small limit mapped one, wrote its descriptors, and unmapped it again). */
static block_t *span_find_committable_locked(pool_t *pool, uint32_t n, uint8_t kind, size_t *need, size_t *side) {
    block_t *s = span_find_locked(pool, n);
    if (s == NULL && pool_commit_fits_locked(pool, (size_t)n << pool->block_shift) && chunk_create_locked(pool, n) != NULL)
        s = span_find_locked(pool, n);
    if (s == NULL) return NULL;
    *need = span_uncommitted_bytes(pool, s, n);
    /* an external span's side metadata is zeroed, so resident (side.c) */
    *side = kind == BLOCK_EXTERNAL ? side_acquire_bytes_locked(s, n) : 0;
    return pool_commit_locked(pool, *need + *side) ? s : NULL;
}

block_t *span_acquire_locked(pool_t *pool, uint32_t n, uint8_t kind) {
    if (n == 0 || n > (UINT32_MAX >> 1) || ((size_t)n << pool->block_shift) >> CHUNK_MAP_ADDRESS_BITS) return NULL;
    size_t need = 0, side = 0;
    block_t *s = span_find_committable_locked(pool, n, kind, &need, &side);
    if (s == NULL && pool->limit) {
        /* At the limit: cached huge mappings, empty chunks and decommitted
         * spans make room; then try once more. */
        huge_cache_flush_locked(pool);
        span_trim_locked(pool, 0);
        s = span_find_committable_locked(pool, n, kind, &need, &side);
    }
    if (s == NULL) return NULL;
    bin_remove(pool, s);
    uint32_t length = s->span_blocks;
    if (length > n) {
        span_set_free_length(s + n, length - n);
        bin_insert(pool, s + n);
    }
    /* (a small span over blocks a collector left: what their side pages
     * counted, for side_acquire_locked to uncount) */
    if (kind != BLOCK_EXTERNAL && side_any_touched_locked(s, n)) side = side_counted_span_locked(s, n);
    size_t was_committed = (size_t)n * pool->block_size - need;
    pool_counter_add(&pool->free_committed, -(ptrdiff_t)was_committed);
    s->chunk->free_blocks -= n;
    for (uint32_t i = 0; i < n; i++) {
        block_t *b = &s[i];
        b->kind = i == 0 ? kind : BLOCK_TAIL;
        b->head_offset = i;
        b->flags = BLOCK_COMMITTED;
        b->next = b->prev = NULL;
    }
    s->span_blocks = n;
    side_acquire_locked(pool, s, n, side);
    return s;
}

void span_release_locked(pool_t *pool, block_t *head) {
    chunk_t *chunk = head->chunk;
    uint32_t n = head->span_blocks;
    span_forget_released_locked(pool, head);
    side_release_locked(head, n);
    tool_hide(pool->valgrind, block_start(chunk, head), (size_t)n << pool->block_shift);
    size_t committed = 0;
    for (uint32_t i = 0; i < n; i++) {
        block_t *b = &head[i];
        b->kind = BLOCK_FREE;
        b->flags &= BLOCK_COMMITTED | BLOCK_SIDE_TOUCHED; /* side.c's, set just above */
        if (b->flags & BLOCK_COMMITTED) committed += pool->block_size;
        b->external_owner = NULL;
        atomic_store_explicit(&b->owner, NULL, memory_order_relaxed);
        atomic_store_explicit(&b->thread_free, 0, memory_order_relaxed);
    }
    pool_counter_add(&pool->free_committed, (ptrdiff_t)committed);
    chunk->free_blocks += n;
    uint32_t index = head->index;
    if (index + n < chunk->block_count && chunk->blocks[index + n].kind == BLOCK_FREE) {
        block_t *right = &chunk->blocks[index + n];
        bin_remove(pool, right);
        n += right->span_blocks;
    }
    if (index > chunk->first_block && chunk->blocks[index - 1].kind == BLOCK_FREE) {
        block_t *left = &chunk->blocks[index - 1];
        left -= left->head_offset;
        bin_remove(pool, left);
        n += left->span_blocks;
        head = left;
    }
    span_set_free_length(head, n);
    bin_insert(pool, head);
}

static bool chunk_is_empty(const chunk_t *chunk) {
    return chunk->free_blocks == chunk->block_count - chunk->first_block;
}

/* destroying: pool_destroy's release, which may keep the chunk mapped for
 * the next pool (os_release_chunk); a trim retires it, so that its pages
 * are surely gone. */
static size_t chunk_unmap_locked(pool_t *pool, chunk_t *chunk, bool destroying) {
    size_t committed = chunk->header_committed;
    size_t free_committed = 0;
    for (uint32_t i = chunk->first_block; i < chunk->block_count; i++) {
        block_t *b = &chunk->blocks[i];
        if (b->kind == BLOCK_SMALL) block_sites_release(b);
        if (b->flags & BLOCK_COMMITTED) {
            committed += pool->block_size - block_released_bytes(pool, b); /* pool_destroy: live spans */
            if (b->kind == BLOCK_FREE) free_committed += pool->block_size;
        }
    }
    pool_uncommit_locked(pool, committed);
    pool_counter_add(&pool->free_committed, -(ptrdiff_t)free_committed);
    pool_counter_add(&pool->mapped, -(ptrdiff_t)chunk->size);
    if (chunk->prev) chunk->prev->next = chunk->next;
    else pool->chunks = chunk->next;
    if (chunk->next) chunk->next->prev = chunk->prev;
    chunk_map_remove(chunk);
    atomic_store_explicit(&chunk->magic, 0, memory_order_relaxed);
    chunk->blocks_token = 0;
    /* retired, not unmapped: a stale free racing this reads zeros (os.c) */
    if (destroying) os_release_chunk(chunk, chunk->size);
    else os_retire(chunk, chunk->size, chunk->size);
    return committed;
}

static size_t span_decommit_locked(pool_t *pool, block_t *head) {
    size_t released = 0;
    uint32_t n = head->span_blocks;
    uint32_t i = 0;
    while (i < n) {
        if (!(head[i].flags & BLOCK_COMMITTED)) { i++; continue; }
        uint32_t j = i;
        while (j < n && (head[j].flags & BLOCK_COMMITTED)) head[j++].flags &= (uint8_t)~BLOCK_COMMITTED;
        size_t bytes = (size_t)(j - i) * pool->block_size;
        os_decommit(block_start(head->chunk, &head[i]), bytes);
        released += bytes;
        i = j;
    }
    pool_uncommit_locked(pool, released);
    pool_counter_add(&pool->free_committed, -(ptrdiff_t)released);
    /* the collector's metadata of the blocks follows them (side.c) */
    return released + side_trim_span_locked(pool, head);
}

size_t span_trim_locked(pool_t *pool, size_t target) {
    size_t released = 0;
    /* Whole chunks first: unmapping also returns their header pages. A
     * full trim (target 0) unmaps every empty chunk, even when free
     * blocks hold no committed byte: a small span with released pages
     * comes back decommitted (release.c), so its chunk can be empty while
     * free_committed is 0 already, and would keep its header pages and
     * address space for good. */
    for (chunk_t *chunk = pool->chunks, *next; chunk; chunk = next) {
        next = chunk->next;
        if (target != 0 && atomic_load_explicit(&pool->free_committed, memory_order_relaxed) <= target) break;
        if (!chunk_is_empty(chunk)) continue;
        bin_remove(pool, &chunk->blocks[chunk->first_block]);
        released += chunk_unmap_locked(pool, chunk, false);
    }
    for (int bin = MULCH_SPAN_BINS - 1; bin >= 0; bin--) {
        for (block_t *s = pool->free_spans[bin]; s; s = s->next) {
            if (atomic_load_explicit(&pool->free_committed, memory_order_relaxed) <= target)
                return released;
            released += span_decommit_locked(pool, s);
        }
    }
    return released;
}

void chunks_unmap_all_locked(pool_t *pool) {
    while (pool->chunks) chunk_unmap_locked(pool, pool->chunks, true);
    for (unsigned bin = 0; bin < MULCH_SPAN_BINS; bin++) pool->free_spans[bin] = NULL;
}
