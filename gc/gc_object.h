/* gc_object.h — the collector's object model: headers and their forwarding
 * bits, headerless (typed) spans, cell and object addresses, the side
 * bitmaps of a span, and the cell classes. Included by gc_internal.h
 * after the structures it works on; the gc sources reach it through
 * that header.
 *
 * Object model. A GC object lives in a cell of an external span taken from
 * the pool (pool/block.h). The cell's first word is the header: the object's
 * gc_type_t pointer. The object pointer the embedder sees is cell + 8, so an
 * object is 8-byte aligned and its slots' low 3 bits are free for tags.
 * Except in typed spans: a typed class (id GC_CLASSES and up, in
 * size_class) is one (type, cell class) pair, registered per heap; its
 * spans hold objects of that type only, the type is in the descriptor's
 * `free` field, and the cell is the object (no header). Small objects
 * (<= GC_HEADERLESS_MAX) of types without a finalizer get one. gc_span_header(b) is the header size of b's
 * cells (8 or 0); code that needs an object's type or address from a cell
 * goes through gc_span_object / gc_object_type_in, never GC_HEADER.
 * Spans hold one cell size each (GC classes: 8-byte steps up to 128 bytes,
 * then the pool's geometric classes up to GC_SMALL_MAX); bigger objects get
 * a span of their own (capacity 1). A class span is as many blocks as it
 * takes to hold GC_SPAN_MIN_CELLS cells or more with the least tail left
 * over (gc_class_span_blocks), so a medium object wastes no more than its
 * class rounding (12.5 %) plus a small share of a span tail, instead of the
 * rest of a block; but while a class has no span, its next one holds one
 * cell, so that a lone medium object takes no more than it did as a span
 * of its own (a span of several cells is contiguous memory the pool may
 * have to find in a fresh chunk). A large object's cell is its size
 * rounded up to a page (GC_LARGE_GRAIN): only that much is zeroed and
 * touched, the rest of its last block stays untouched (and, in a fresh
 * span, not resident).
 *
 * Side metadata per span (pool_block_side): three bitmaps indexed by cell:
 *   mark bits  (first third)  — set during marking;
 *   alloc bits (second third) — 1 for allocated cells and for the padding
 *                               bits past capacity;
 *   age bits   (last third)   — generational mode only: young objects that
 *                               survived one minor collection (generation.c).
 * Main invariant, outside a collection, for every *swept* span:
 *     mark bits are all 0, and a cell holds an object  <=>  its alloc bit is 1.
 * After marking, a span is *unswept* (span_epoch(b) != heap->epoch): its mark
 * bits say which objects survived, its alloc bits are stale. Sweeping is
 * alloc := mark | padding, mark := 0 — done lazily when a thread takes the
 * span to allocate in it, and for the rest at the start of the next
 * collection (gc_span_ensure_swept). Nothing reads alloc bits of an unswept
 * span.
 */
#ifndef MULCH_GC_OBJECT_H
#define MULCH_GC_OBJECT_H

#ifndef MULCH_GC_INTERNAL_H
#error "gc/gc_object.h is included through gc/gc_internal.h"
#endif

/* ---- objects -------------------------------------------------------------- */
/* Header bits below the 8-byte-aligned type pointer: bits 0-1 forwarding
 * and copy claims (during a collection, gc/evacuate.c). */
#define GC_HEADER_TAG_BITS   ((uintptr_t)7)
/* copy | 1: the object moved to copy (the word stays in the freed cell
 * until the cell is allocated again) */
#define GC_FORWARDED         ((uintptr_t)1)
/* header | 3: claimed by a marker, copy under way. The type bits stay, so a
 * marker that reads the header meanwhile still finds the type. */
#define GC_FORWARD_BUSY      ((uintptr_t)3)
static inline const gc_type_t *gc_header_type(const void *obj) {
    return (const gc_type_t *)(((const uintptr_t *)obj)[-1] & ~GC_HEADER_TAG_BITS);
}
/* A span of a typed class holds headerless objects of one type: the
 * object is the cell, and the type is the span's (kept in its `free`
 * field, which the pool leaves to the owner of an external span). */
static inline bool gc_span_headerless(const block_t *b) {
    return (unsigned)b->size_class - GC_CLASSES < GC_TYPED_CLASSES;
}
static inline size_t gc_span_header(const block_t *b) { return gc_span_headerless(b) ? 0 : GC_HEADER; }
static inline const gc_type_t *gc_span_type(const block_t *b) { return (const gc_type_t *)b->free; }
/* What a mark-stack entry carries for b's objects: the type if they have
 * no header, else NULL (the header says). */
static inline const gc_type_t *gc_span_entry_type(const block_t *b) {
    return gc_span_headerless(b) ? gc_span_type(b) : NULL;
}
static inline unsigned char *gc_span_object(const block_t *b, uint32_t i) {
    return b->start + (size_t)i * b->cell_size + gc_span_header(b);
}
/* The type of an object known to be a GC object (of span b). */
static inline const gc_type_t *gc_object_type_in(const block_t *b, const void *obj) {
    return gc_span_headerless(b) ? gc_span_type(b) : gc_header_type(obj);
}
static inline uint32_t gc_span_epoch(const block_t *b) { return b->owner_words[0]; }
static inline uint64_t *gc_span_mark_bits(const block_t *b) { return (uint64_t *)pool_block_mark_bits(b); }
static inline uint64_t *gc_span_alloc_bits(const block_t *b) { return (uint64_t *)pool_block_start_bits(b); }
/* Bits past capacity in the last word count as allocated forever. */
static inline uint64_t span_padding_bits(const block_t *b) {
    unsigned tail = b->capacity % 64u;
    return tail ? ~((UINT64_C(1) << tail) - 1) : 0;
}
/* The three bitmaps are equal thirds of the side area, in this order: the
 * age bits are as far past the alloc bits as these are past the mark bits
 * (mark.c's trace_slot_special relies on it; test_gc_cards checks it). */
static inline uint64_t *gc_span_age_bits(const block_t *b) { return (uint64_t *)pool_block_owner_bits(b); }
static inline uint32_t gc_span_words(const block_t *b) { return (b->capacity + 63u) / 64u; }

/* Whether p is an object start of external span b (any owner); its cell
 * index in *index. Never dereferences p. */
static inline bool gc_span_cell_of(const block_t *b, const void *p, uint32_t *index) {
    size_t offset = (size_t)((const unsigned char *)p - gc_span_header(b) - b->start);
    if (offset >= (size_t)b->capacity * b->cell_size) return false;
    uint32_t i = cell_divide(b->divisor, offset);
    if ((size_t)i * b->cell_size != offset) return false;
    *index = i;
    return true;
}

/* The span and cell index of a candidate object pointer, or NULL when it is
 * not the start of a cell of this heap. Never dereferences p. */
static inline block_t *gc_object_span(const gc_heap_t *heap, const void *p, uint32_t *index) {
    block_t *b = pool_block_of(p);
    if (b == NULL || b->kind != BLOCK_EXTERNAL || b->external_owner != heap) return NULL;
    return gc_span_cell_of(b, p, index) ? b : NULL;
}

static inline bool bit_test(const uint64_t *bits, uint32_t i) { return (bits[i / 64] >> (i % 64)) & 1u; }

/* ---- classes --------------------------------------------------------------- */
static inline unsigned gc_class_of(size_t cell_bytes) {
    if (cell_bytes <= 128) return cell_bytes <= 16 ? 0u : (unsigned)((cell_bytes + 7) / 8 - 2);
    return 15u + size_class_of(cell_bytes) - 8u;
}
static inline size_t gc_class_bytes(unsigned cls) {
    if (cls < 15) return ((size_t)cls + 2) * 8;
    return size_class_bytes(cls - 15u + 8u);
}
/* The cell class of a class id (a typed class's cells are of its base). */
static inline unsigned gc_cell_class(const gc_heap_t *heap, unsigned id) {
    return id < GC_CLASSES ? id : heap->typed_base[id - GC_CLASSES];
}
/* Blocks in a span of class cls: between what holds GC_SPAN_MIN_CELLS
 * cells and twice that, the count that leaves the smallest share of the
 * span unused (ties: fewer blocks). One block for the small classes. (The
 * first span of a medium class holds one cell: gc_span_new_locked.) */
static inline uint32_t gc_class_span_blocks(unsigned cls, size_t block_size) {
    size_t cell = gc_class_bytes(cls);
    size_t least = (GC_SPAN_MIN_CELLS * cell + block_size - 1) / block_size;
    if (least <= 1) return 1;
    size_t best = least, best_waste_per_mille = 1000;
    for (size_t n = least; n <= 2 * least; n++) {
        size_t bytes = n * block_size, waste = (bytes % cell) * 1000 / bytes;
        if (waste < best_waste_per_mille) {
            best = n;
            best_waste_per_mille = waste;
        }
    }
    return (uint32_t)best;
}

#endif /* MULCH_GC_OBJECT_H */
