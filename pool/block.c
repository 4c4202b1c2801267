/* block.c — whole spans for other layers (see block.h): acquisition and
 * release under pool->lock, address → span, and object-start lookup for
 * interior pointers.
 */
#include "block.h"
#include "release.h"

block_t *pool_block_acquire(pool_t *pool, uint32_t nblocks, void *owner) {
    pthread_mutex_lock(&pool->lock);
    block_t *span = span_acquire_locked(pool, nblocks, BLOCK_EXTERNAL);
    pthread_mutex_unlock(&pool->lock);
    if (span == NULL) return NULL;
    /* the collector's objects are its own business: the whole span is open */
    tool_expose(pool->valgrind, pool_block_memory(span), pool_block_bytes(span));
    span->external_owner = owner;
    span->start = pool_block_memory(span);
    span->span_bytes = (uint32_t)pool_block_bytes(span);
    span->cell_size = 0;
    span->capacity = 0;
    memset(pool_block_side(span), 0, pool_block_side_bytes(span));
    return span;
}

void pool_block_release(pool_t *pool, block_t *span) {
    pthread_mutex_lock(&pool->lock);
    span_release_locked(pool, span);
    pthread_mutex_unlock(&pool->lock);
}

void pool_block_trim(pool_t *pool, size_t keep) {
    pthread_mutex_lock(&pool->lock);
    span_trim_locked(pool, keep);
    pthread_mutex_unlock(&pool->lock);
}

static void *external_object_start(block_t *span, const void *addr) {
    const unsigned char *bits = pool_block_start_bits(span);
    size_t g = pool_block_granule(span, addr);
    /* Scan back a byte at a time; the first byte may hold bits above g. */
    size_t byte = g / 8;
    unsigned mask = (2u << (g % 8)) - 1u;
    for (;;) {
        unsigned v = bits[byte] & mask;
        if (v) {
            unsigned top = 31u - (unsigned)__builtin_clz(v);
            return pool_block_memory(span) + (byte * 8 + top) * POOL_GRANULE;
        }
        if (byte == 0) return NULL;
        byte--;
        mask = 0xffu;
    }
}

void *pool_block_object_start(block_t *span, const void *addr) {
    if (span->kind == BLOCK_EXTERNAL) return external_object_start(span, addr);
    pool_t *pool = span->chunk->pool;
    size_t offset = (size_t)((const unsigned char *)addr - span->start);
    uint32_t i = cell_divide(span->divisor, offset);
    if (i >= atomic_load_explicit(&span->bump, memory_order_relaxed)) return NULL;
    unsigned char *cell = span->start + (size_t)i * span->cell_size;
    return cell_is_allocated_at(pool, span, cell) ? cell : NULL;
}

void pool_block_for_each_cell(pool_t *pool, block_t *span, void (*fn)(void *cell, size_t size, void *ctx),
                              void *ctx) {
    uint32_t bump = atomic_load_explicit(&span->bump, memory_order_relaxed);
    for (uint32_t i = 0; i < bump; i++) {
        unsigned char *cell = span->start + (size_t)i * span->cell_size;
        if (cell_is_allocated_at(pool, span, cell)) fn(cell, span->cell_size, ctx);
    }
}
