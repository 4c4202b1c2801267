/* pool_internal.h — the pool's data structures, shared by the pool sources only.
 *
 * Layout (docs/architecture.md has the picture):
 *   chunk  = a mapping aligned to MULCH_REGION (4 MiB), registered in the
 *            chunk map so that any address finds its chunk in O(1) and
 *            foreign addresses are recognised without touching them.
 *            A blocks chunk starts with its header: chunk_t, then one block_t
 *            descriptor per block, then per-block side metadata (for the GC);
 *            the header is rounded up to whole blocks.
 *            A huge chunk holds one large object after a small header.
 *   block  = block_size bytes, aligned to block_size. A *span* is a run of
 *            blocks handed out together; its first descriptor (the head)
 *            describes it, the others are BLOCK_TAIL with head_offset.
 *   cell   = one allocation inside a span of a size class.
 *
 * Cell states. A free cell holds in its first word the encoded next free
 * cell, and in its second word cell_free_mark(pool, cell). An allocated cell
 * has a second word != the mark (it is zeroed when handed out). Cells of a
 * span at index >= bump were never handed out. A free cell may also be
 * *parked*: pool_trim decommitted a page it overlaps (release.c), so its
 * words read as zeros and it is on no free list; the span's released-unit
 * bits (block.released) say which (cell_is_parked, in release.h). Hence
 * the predicate used by free, the leak report and the verifier:
 *     cell_is_allocated(b, i)  ==  i < bump && !parked(cell i)
 *                                  && word1(cell i) != mark(cell i)
 *
 * Block ownership (the lock-free part). A SMALL span is either
 *   owned    by one thread heap (block.owner == heap): only that thread
 *            touches free/used/bump, the flags and the list links; other
 *            threads push freed cells onto thread_free with one CAS. An
 *            owned span is in the heap's bin for its class (it may have free
 *            cells) or in its full list (BLOCK_IN_FULL, and BLOCK_TF_FULL set
 *            in thread_free). The first remote free into a full span sees
 *            the list empty with TF_FULL set and raises the owner's
 *            full_pending[class]; the owner rescans that class's full list
 *            before taking a new span. A span whose only free cells are
 *            parked sits in the dormant list (BLOCK_IN_DORMANT, release.c),
 *            taken back when the bin runs dry, before a new span. A local
 *            free moves its span to the front of the bin (out of the full or
 *            dormant list if need be), so the next
 *            allocation reuses the cell just freed while it is in cache.
 *            TF_FULL may outlive the full list; the next collect clears it.
 *   floating (thread_free has BLOCK_TF_FLOATING, owner == NULL): abandoned
 *            by an exited thread and listed in pool->abandoned. The first
 *            thread that frees into it, or an allocator that pops it from
 *            the abandoned list, takes it with a CAS and becomes its owner.
 * The CAS on thread_free carries the happens-before between owners, so the
 * owner-only fields need no atomics. Invariant for an owned span:
 *     used == bump - |local free list| - |parked cells|,
 * and used counts cells in thread_free and the heap's recent cells.
 * Thread heap structs are recycled, never unmapped, so a remote freer that
 * read a stale owner can still store to its full_pending harmlessly.
 *
 * Locks: pool->lock guards spans (free span bins, span headers while free),
 * chunk lists, huge lists, the heap list and the abandoned lists. The global
 * heap registry lock (thread_heap.c) orders pool_destroy against thread exit.
 */
#ifndef MULCH_POOL_INTERNAL_H
#define MULCH_POOL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <mulch/pool.h>

#include "namespace.h" /* before any declaration: the link-time names */
#include "size_class.h"

#if defined(__GNUC__)
/* Thread-locals of the library: initial-exec, so that the shared library
 * reads them at a fixed offset from the thread pointer instead of calling
 * __tls_get_addr (rc_retain and rc_release each made such calls). The
 * library is linked at start-up or dlopened into glibc's static TLS
 * reserve, which these few words fit. */
#  define MULCH_TLS_MODEL   __attribute__((tls_model("initial-exec")))
#  define mulch_likely(x)   __builtin_expect(!!(x), 1)
#  define mulch_unlikely(x) __builtin_expect(!!(x), 0)
#  define MULCH_NOINLINE    __attribute__((noinline))
#  define MULCH_COLD        __attribute__((cold, noinline))
#  define MULCH_INTERNAL    __attribute__((visibility("hidden")))
/* Pins a value in one register: GCC otherwise keeps two forms of a
 * computed address and computes each (pool_free_in_chunk). No code. */
#  define mulch_in_register(x) __asm__("" : "+r"(x))
#else
#  define MULCH_TLS_MODEL
#  define mulch_likely(x)   (x)
#  define mulch_unlikely(x) (x)
#  define MULCH_NOINLINE
#  define MULCH_COLD
#  define MULCH_INTERNAL
#  define mulch_in_register(x) ((void)0)
#endif

/* Bits set in a 64-bit word. Builds for baseline x86-64 (no POPCNT) turn
 * __builtin_popcountll into a call to libgcc's __popcountdi2, which showed
 * at 1.6 % of GCBench in generational mode (a popcount per bitmap word the
 * collector's allocator loads, and per mark word at every collection);
 * the shift-and-mask count below is a dozen inline instructions. */
static inline unsigned bits_count64(uint64_t x) {
#if defined(__POPCNT__) || !defined(__GNUC__)
#  if defined(__GNUC__)
    return (unsigned)__builtin_popcountll(x);
#  else
    unsigned n = 0;
    for (; x; x &= x - 1) n++;
    return n;
#  endif
#else
    x = x - ((x >> 1) & UINT64_C(0x5555555555555555));
    x = (x & UINT64_C(0x3333333333333333)) + ((x >> 2) & UINT64_C(0x3333333333333333));
    x = (x + (x >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
    return (unsigned)((x * UINT64_C(0x0101010101010101)) >> 56);
#endif
}

#if defined(__SANITIZE_THREAD__)
#  define MULCH_TSAN 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define MULCH_TSAN 1
#  endif
#endif

#include "tool.h"

#ifndef MULCH_ASSERT_LEVEL
#  define MULCH_ASSERT_LEVEL 1
#endif
#if MULCH_ASSERT_LEVEL >= 2
#  include <assert.h>
#  define mulch_assert_internal(x) assert(x)
#else
#  define mulch_assert_internal(x) ((void)0)
#endif

#define MULCH_REGION_SHIFT 22u
#define MULCH_REGION       ((size_t)1 << MULCH_REGION_SHIFT)
#define MULCH_PAGE         ((size_t)4096)
#define MULCH_CACHE_LINE   64
#define MULCH_ALIGN        16u
#define MULCH_MIN_BLOCK    ((size_t)16 << 10)
/* Card table granularity (chunk_t.cards): one byte per 512 bytes. */
#define POOL_CARD_SHIFT    9u
#define MULCH_MAX_BLOCK    ((size_t)4 << 20)
#define MULCH_DEFAULT_BLOCK ((size_t)64 << 10)
#define MULCH_SPAN_BINS    24

enum chunk_kind { CHUNK_BLOCKS = 0x42, CHUNK_HUGE = 0x48 };

enum block_kind {
    BLOCK_FREE = 0,     /* in a free span (pool->lock)                       */
    BLOCK_HEADER,       /* holds the chunk header; never handed out          */
    BLOCK_SMALL,        /* head of a size-classed span of cells              */
    BLOCK_EXTERNAL,     /* head of a span owned by another layer (the GC)    */
    BLOCK_TAIL,         /* non-head block of a span: see head_offset         */
};

/* block.flags: written under pool->lock or by the span's owner. */
enum {
    BLOCK_COMMITTED   = 1u << 0, /* pages may be resident (not decommitted)   */
    BLOCK_ABANDONED   = 1u << 1, /* listed in pool->abandoned (pool->lock)     */
    BLOCK_EVACUATE    = 1u << 2, /* GC: evacuation candidate                  */
    BLOCK_SIDE_TOUCHED = 1u << 3, /* free block, was a collector's: its side
                                     metadata may be resident (side.c)       */
    BLOCK_IN_FULL     = 1u << 4, /* (owner) in the heap's full list            */
    BLOCK_IN_DORMANT  = 1u << 5, /* (owner) in the heap's dormant list         */
    BLOCK_TRIM_ADOPTED = 1u << 6, /* (owner) adopted by a running pool_trim    */
    BLOCK_SITES       = 1u << 7, /* sites != NULL: the free fast path reads the
                                    flag on the descriptor's first line, not
                                    the pointer on its second                 */
};

/* Low bits of block.thread_free (cells are 16-byte aligned). */
#define BLOCK_FLOATING ((uintptr_t)1)
#define BLOCK_TF_FULL  ((uintptr_t)2)
#define BLOCK_TF_FLAGS ((uintptr_t)3)
/* The top 16 bits count the cells in the list (saturating at TF_COUNT_MAX,
 * which means "walk it"), so the owner can take a list without walking it:
 * the cells were written by other threads and walking them costs a cache
 * miss each. */
#define TF_COUNT_SHIFT 48u
#define TF_COUNT_MAX   0xFFFFu
#define TF_LIST_MASK   ((((uintptr_t)1 << TF_COUNT_SHIFT) - 1) & ~BLOCK_TF_FLAGS)

static inline uintptr_t tf_list(uintptr_t word) { return word & TF_LIST_MASK; }
static inline uint32_t tf_count(uintptr_t word) { return (uint32_t)(word >> TF_COUNT_SHIFT); }
static inline uintptr_t tf_push(uintptr_t old, const void *cell) {
    uint32_t count = tf_count(old);
    if (count < TF_COUNT_MAX) count++;
    return (uintptr_t)cell | (old & BLOCK_TF_FLAGS) | ((uintptr_t)count << TF_COUNT_SHIFT);
}

struct thread_heap;

typedef struct leak_site {
    const void *where;  /* file name when line > 0, else caller address */
    uint32_t    line;
    uint32_t    size;   /* requested size */
} leak_site_t;

/* One per block, two cache lines; the first holds everything the fast paths
 * touch. Fields marked (owner) are touched only by the owning thread heap,
 * or under pool->lock while the span is free/floating-in-abandoned-list. */
typedef struct block {
    void            *free;        /* (owner) first free cell, raw pointer   */
    unsigned char   *start;       /* first cell of the span                 */
    uint32_t         used;        /* (owner) cells out, incl. thread_free   */
    _Atomic uint32_t bump;        /* (owner writes) cells ever carved       */
    uint32_t         cell_size;
    uint32_t         span_bytes;  /* capacity * cell_size rounded to blocks */
    uint16_t         size_class;
    uint8_t          kind;        /* enum block_kind                        */
    uint8_t          flags;
    _Atomic uint32_t check;       /* block_check_of() or block_check_released() */
    uint64_t         divisor;     /* fast division by cell_size (Lemire)    */
    _Atomic(struct thread_heap *) owner;
    _Atomic uintptr_t thread_free; /* cells freed by other threads | FLOATING*/
    /* second line: list links and span bookkeeping (slow paths) */
    struct block    *next, *prev; /* owner's bin / free-span bin / abandoned*/
    uint32_t         span_blocks; /* blocks in the span (head; free: last too)*/
    uint32_t         index;       /* block index in its chunk               */
    struct chunk    *chunk;
    void            *external_owner; /* BLOCK_EXTERNAL: owning GC heap      */
    leak_site_t     *sites;       /* per-cell sites when tracking leaks     */
    uint32_t         capacity;    /* cells in the span                      */
    uint32_t         head_offset; /* BLOCK_TAIL / last of free span: to head*/
    union {
        uint32_t     owner_words[2]; /* BLOCK_EXTERNAL: the owner's to use   */
        /* BLOCK_SMALL span (every block of it): bit k set = release unit k
         * of this block is decommitted (release.c). Owner writes, anyone
         * reads (relaxed). */
        _Atomic uint64_t released;
    };
} block_t;

_Static_assert(sizeof(block_t) == 2 * MULCH_CACHE_LINE, "block descriptor is two cache lines");

typedef struct chunk {
    /* chunk_magic_of(chunk) while mapped, 0 once released (a retired
     * range reads as zeros). Written last when a chunk is made (release),
     * so a stale reader that loads it with acquire and finds it right
     * sees the whole header, even in a range just taken from the retired
     * set. */
    _Atomic uint64_t magic;
    /* CHUNK_BLOCKS: chunk_blocks_token(pool, chunk) while mapped, else 0.
     * The free fast path tests the chunk once, magic ^ blocks_token ==
     * chunk_blocks_seal(pool) (chunk_is_pools_blocks): it stands for the
     * pool, kind and magic tests that pointer_check makes one by one. */
    uint64_t      blocks_token;
    uint16_t      kind;       /* enum chunk_kind                            */
    uint16_t      block_shift;
    /* CHUNK_HUGE: the object is live. Written under pool->lock; atomic
     * because pointer_check reads it without the lock (a racing double
     * free, which huge_free settles under the lock). */
    _Atomic int   allocated;
    pool_t       *pool;
    size_t        size;       /* bytes mapped                               */
    struct chunk *next, *prev;
    /* CHUNK_BLOCKS */
    uint32_t      block_count;   /* including header blocks                 */
    uint32_t      first_block;   /* first usable block                      */
    uint32_t      free_blocks;   /* blocks in free spans                    */
    uint32_t      header_committed; /* bytes of header counted as committed:
                                     descriptor pages, and side pages a
                                     collector's span touched (side.c)      */
    unsigned char *side;         /* side metadata of block 0                */
    size_t        side_per_block;
    /* CHUNK_HUGE */
    size_t        object_offset; /* object = (char *)chunk + object_offset  */
    size_t        object_size;   /* usable bytes                            */
    size_t        requested;
    leak_site_t   site;
    block_t       blocks[];      /* CHUNK_BLOCKS: block_count descriptors   */
} chunk_t;

_Static_assert(offsetof(chunk_t, blocks) % MULCH_CACHE_LINE == 0, "descriptors are cache-line aligned");
_Static_assert(sizeof(chunk_t) % MULCH_ALIGN == 0, "huge object header keeps 16-byte alignment");

/* A thread's private heap in one pool. bins[c] is the list of spans of class
 * c this thread owns and that may have free cells; bins[c] itself is the one
 * being allocated from. Counters are written by the owning thread only, read
 * by pool_get_stats (relaxed atomics: plain moves on x86). */
#define HEAP_RECENT 8


typedef struct thread_heap {
    uint64_t            pool_id;
    struct thread_heap *recycle_next;          /* free heap structs (registry lock) */
    pool_t             *pool;
    struct thread_heap *pool_next, *pool_prev; /* pool->heaps (pool->lock)   */
    struct thread_heap *thread_next, *thread_prev; /* this thread's heaps (TLS) */
    uint64_t            owner_serial;          /* its thread's tls_cache_t.serial */
    int                 dead;                  /* pool destroyed (registry lock) */
    block_t            *bins[MULCH_MAX_CLASSES];
    block_t            *full[MULCH_MAX_CLASSES];  /* owned spans with no free cell */
    /* The last cells this thread freed into its own spans, per class: the
     * next allocation of the class takes them back while they are still in
     * cache, without touching the span. They carry the free mark, so they
     * count as free everywhere, but stay counted in their span's `used`
     * until heap_recent_flush pushes them on their span's free list. */
    /* Cells of each class this heap handed out and took back (a remote
     * free counts in the freeing thread's heap). alloc_count and
     * free_count: by every path but the recent cells'. recent_state: the
     * number of recent cells (its low RECENT_COUNT_BITS) and, above them,
     * the cells handed out from the recent cells (recycled; one word, so
     * that the allocation fast path's pop writes one word: session 27). A
     * free into the recent cells is counted by where the cell goes next:
     * handed out again (recycled counts it as a free and an allocation),
     * pushed on its span's list (free_count), or still there (the count
     * of recent cells). So the free fast path writes no counter besides
     * the recent cells' count and the allocation paths one word each, a
     * word per class in its own array (one scaled address, no
     * multiplication); no size to load: pool_get_stats derives the totals
     * and the bytes in use (heap_counts_sum). Relaxed stores by the owner,
     * read by pool_get_stats. */
    _Atomic uint64_t    recent_state[MULCH_MAX_CLASSES];
    _Atomic uint64_t    alloc_count[MULCH_MAX_CLASSES];
    _Atomic uint64_t    free_count[MULCH_MAX_CLASSES];
    void               *recent[MULCH_MAX_CLASSES][HEAP_RECENT];
    /* Owned spans with no free cell on a committed page but parked cells on
     * released ones (release.c): taken back, and a page recommitted, when
     * the bin runs dry, before a new span is taken. */
    block_t            *dormant[MULCH_MAX_CLASSES];
    /* Set by remote frees into full spans; must stay last (not memset on reuse). */
    _Atomic uint8_t     full_pending[MULCH_MAX_CLASSES];
} thread_heap_t;

struct pool {
    uint64_t        id;            /* unique for the process; never reused  */
    uint64_t        key;           /* secret for free-list encoding          */
    uint64_t        chunk_seal;    /* chunk_blocks_seal(key): the free fast
                                      path's chunk test compares with it     */
    size_t          block_size;
    uint32_t        block_shift;
    uint32_t        class_count;   /* classes served from spans             */
    size_t          small_max;     /* largest size served from spans        */
    size_t          fast_max;      /* small_max, or 0 when tracking leaks:
                                      the allocation fast path's one test is
                                      size - 1 < fast_max                      */
    size_t          chunk_size;
    uint32_t        blocks_per_chunk;
    uint32_t        header_blocks;
    size_t          side_per_block;
    uint32_t        release_shift;   /* log2 of the release unit (release.c)  */
    uint32_t        units_shift;     /* log2 of release units per block (<= 6) */
    size_t          limit;
    int             track_leaks;
    int             valgrind;      /* tool.h: memcheck client requests on    */
    int             secure;        /* guard pages, no huge cache, shuffled carve */
    /* set by rc_alloc_in (runtime/rc.c) on the pool's first rc object: then
     * pool_destroy's hook looks at the live cells it frees (relaxed) */
    _Atomic int     has_rc;
    _Atomic int     destroying;    /* pool_destroy has begun: pool_id_alive says no */
    _Atomic uint64_t shuffle_state; /* secure mode's carve order (alloc.c)    */
    pthread_mutex_t lock;
    chunk_t        *chunks;        /* blocks chunks                          */
    chunk_t        *huge;          /* live huge objects                      */
    chunk_t        *huge_cache;    /* freed huge mappings kept for reuse     */
    size_t          huge_cache_bytes;
    uint32_t        huge_cache_count;
    block_t        *free_spans[MULCH_SPAN_BINS];
    block_t        *abandoned[MULCH_MAX_CLASSES];
    thread_heap_t  *heaps;
    pool_t         *list_next, *list_prev; /* every live pool (fork.c)      */
    /* under lock; read by stats with relaxed loads */
    _Atomic size_t  committed, mapped, peak_committed, free_committed;
    _Atomic size_t  huge_live, huge_bytes;
    _Atomic uint64_t huge_allocs, huge_frees;
    /* counters of heaps whose thread exited (lock) */
    uint64_t        retired_allocs, retired_frees;
    int64_t         retired_bytes;
};

/* ---- error reporting (error.c) ---------------------------------------- */
MULCH_INTERNAL MULCH_COLD void mulch_report(const char *what, const void *ptr);
/* false, reported as "<fn>: pool is NULL", when pool is NULL (pool.c) */
MULCH_INTERNAL bool pool_given(const pool_t *pool, const char *fn);

/* ---- OS layer (os.c, declared in os.h) -------------------------------- */
#include "os.h"

/* ---- chunk map (chunk_map.c) ------------------------------------------- */
MULCH_INTERNAL bool chunk_map_insert(chunk_t *chunk);
MULCH_INTERNAL void chunk_map_remove(chunk_t *chunk);
/* chunk->size changed from old_size in place: the map follows; false
 * (nothing changed) when a grown region's leaf cannot be mapped. */
MULCH_INTERNAL bool chunk_map_resize(chunk_t *chunk, size_t old_size);
MULCH_INTERNAL extern _Atomic(chunk_t **) chunk_map_top[];
/* The chunk whose own mapping holds p, or NULL (also for the rest of a huge
 * chunk's last region, which chunk_of attributes to it); reads no chunk
 * header, so it is safe on an address whose chunk another thread may be
 * unmapping (chunk_map.c). */
MULCH_INTERNAL chunk_t *chunk_covering(const void *p);

#define CHUNK_MAP_LEVEL_BITS 13u
#define CHUNK_MAP_ADDRESS_BITS 48u
/* Regions of the 48-bit address space, each with a byte in the start map. */
#define CHUNK_MAP_REGIONS ((size_t)1 << (CHUNK_MAP_ADDRESS_BITS - MULCH_REGION_SHIFT))
typedef _Atomic uint8_t chunk_start_byte_t;
/* The region start map (chunk_map.c), mapped by chunk_map_init: pool_create
 * calls it, and fails when it cannot, so any pool's free finds it. */
MULCH_INTERNAL extern chunk_start_byte_t *_Atomic chunk_map_blocks_start;
MULCH_INTERNAL bool chunk_map_init(void);

#define CHUNK_MAGIC UINT64_C(0x6d756c6368636b31)
static inline uint64_t chunk_magic_of(const chunk_t *chunk) {
    return CHUNK_MAGIC ^ (uint64_t)(uintptr_t)chunk;
}
/* Ties a blocks chunk to its pool through the pool's secret key, so that a
 * chunk of another pool, a huge chunk (token 0) or a header overwritten by
 * a stray write fails one comparison. */
#define CHUNK_BLOCKS_SALT UINT64_C(0x626c6f636b73)
static inline uint64_t chunk_blocks_token(const pool_t *pool, const chunk_t *chunk) {
    return pool->key ^ CHUNK_BLOCKS_SALT ^ (uint64_t)(uintptr_t)chunk;
}
/* magic ^ token of every blocks chunk of the pool (the address cancels
 * out): a constant of the pool, kept in pool->chunk_seal, so the test is
 * three loads and a compare. A huge chunk (token 0), another pool's chunk,
 * or a stray write into either word fails it. */
static inline uint64_t chunk_blocks_seal(uint64_t key) {
    return key ^ CHUNK_BLOCKS_SALT ^ CHUNK_MAGIC;
}
static inline bool chunk_is_pools_blocks(const pool_t *pool, const chunk_t *chunk) {
    return (atomic_load_explicit(&chunk->magic, memory_order_relaxed) ^ chunk->blocks_token) == pool->chunk_seal;
}

/* The chunk holding `p`, or NULL for any address mulch did not map.
 * Never dereferences `p`. */
static inline chunk_t *chunk_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    if (mulch_unlikely(a >> CHUNK_MAP_ADDRESS_BITS)) return NULL;
    uintptr_t region = a >> MULCH_REGION_SHIFT;
    chunk_t **leaf = atomic_load_explicit(&chunk_map_top[region >> CHUNK_MAP_LEVEL_BITS],
                                          memory_order_acquire);
    if (mulch_unlikely(leaf == NULL)) return NULL;
    _Atomic(chunk_t *) *slot = (_Atomic(chunk_t *) *)&leaf[region & ((1u << CHUNK_MAP_LEVEL_BITS) - 1)];
    return atomic_load_explicit(slot, memory_order_acquire);
}

/* Whether a blocks chunk starts at the start of p's region: then it is the
 * chunk of p (chunks are whole regions). One compare and one byte load
 * (a byte per region, not a bit: no shift and bit test, session 27);
 * false for any address mulch did not map and for the other regions of
 * multi-region chunks. Never dereferences `p`. */
static inline bool chunk_starts_blocks(const void *p) {
    uintptr_t region = (uintptr_t)p >> MULCH_REGION_SHIFT;
    if (mulch_unlikely(region >= CHUNK_MAP_REGIONS)) return false;
    chunk_start_byte_t *map = atomic_load_explicit(&chunk_map_blocks_start, memory_order_relaxed);
    return atomic_load_explicit(&map[region], memory_order_acquire) != 0;
}

/* Bytes of a blocks chunk's header for `count` blocks: the chunk record,
 * the block descriptors, the side metadata and the card table (a byte per
 * 2^POOL_CARD_SHIFT bytes of the chunk, after the side metadata; the
 * owner's, for the collector's write barrier; not counted as committed:
 * only a generational collector touches it). */
static inline size_t chunk_header_bytes(size_t count, size_t block_size, size_t side_per_block) {
    return offsetof(chunk_t, blocks) + count * (sizeof(block_t) + side_per_block + (block_size >> POOL_CARD_SHIFT));
}
static inline unsigned char *chunk_cards(const chunk_t *chunk) {
    return chunk->side + chunk->block_count * chunk->side_per_block;
}

/* ---- blocks and spans (span.c) ------------------------------------------ */
static inline unsigned char *block_start(const chunk_t *chunk, const block_t *b) {
    return (unsigned char *)chunk + ((size_t)b->index << chunk->block_shift);
}
/* Descriptor of the block holding p (p inside a blocks chunk). */
static inline block_t *block_at(chunk_t *chunk, const void *p) {
    size_t i = ((uintptr_t)p - (uintptr_t)chunk) >> chunk->block_shift;
    return &chunk->blocks[i];
}
static inline block_t *block_head(block_t *b) {
    return b->kind == BLOCK_TAIL ? b - b->head_offset : b;
}

/* Take a span of n blocks (committed) for kind; NULL at the limit or OOM.
 * Caller holds pool->lock. */
MULCH_INTERNAL block_t *span_acquire_locked(pool_t *pool, uint32_t n, uint8_t kind);
/* Return a span to the free bins, coalescing; caller holds pool->lock. */
MULCH_INTERNAL void span_release_locked(pool_t *pool, block_t *head);
/* Decommit free spans (and unmap empty chunks) until free_committed <= target;
 * target 0 unmaps every empty chunk, committed blocks or not. */
MULCH_INTERNAL size_t span_trim_locked(pool_t *pool, size_t target);

MULCH_INTERNAL void chunks_unmap_all_locked(pool_t *pool);

/* A small span's descriptor is trusted by the free fast path; this word,
 * set when the span gets its class, ties the fields it trusts together so
 * that a stray write into the descriptor is reported instead of followed. */
/* The class in the low 16 bits, the kind above: the free fast path, which
 * knows the kind, xors one constant-or-ed load into its check test. */
static inline uint32_t block_class_and_kind(const block_t *b) {
    return (uint32_t)b->size_class | ((uint32_t)b->kind << 16);
}
static inline uint32_t block_check_of(const pool_t *pool, const block_t *b) {
    return (uint32_t)pool->key ^ b->cell_size ^ block_class_and_kind(b);
}
/* The check word's second valid value: the span has released pages
 * (release.c). The free fast path compares with block_check_of only, so
 * frees into such a span take the slow path, which knows about parked
 * cells; no fast path pays for the feature. */
#define BLOCK_CHECK_RELEASED 0x9E3779B9u
static inline uint32_t block_check_released(const pool_t *pool, const block_t *b) {
    return block_check_of(pool, b) ^ BLOCK_CHECK_RELEASED;
}
static inline uint32_t block_check_load(const block_t *b) {
    return atomic_load_explicit(&b->check, memory_order_relaxed);
}
/* Acquire: pairs with release.c's release stores of the check word, so a
 * reader that sees it flip also sees the bits (release) or the unparked
 * cells' free marks (recommit) written before it. */
static inline uint32_t block_check_load_acquire(const block_t *b) {
    return atomic_load_explicit(&b->check, memory_order_acquire);
}
static inline bool block_has_released(const pool_t *pool, const block_t *b) {
    return block_check_load_acquire(b) == block_check_released(pool, b);
}

/* ---- cells ------------------------------------------------------------- */
static inline uintptr_t cell_free_mark(const pool_t *pool, const void *cell) {
    return (uintptr_t)pool->key ^ (uintptr_t)cell;
}
/* Free-list links are stored encoded so that a stray write into a freed cell
 * is caught when the list is popped, not followed. */
static inline uintptr_t cell_link_encode(const pool_t *pool, const void *cell, const void *next) {
    return (uintptr_t)next ^ (uintptr_t)pool->key ^ ((uintptr_t)cell >> 4);
}
static inline void *cell_link_decode(const pool_t *pool, const void *cell, uintptr_t stored) {
    return (void *)(stored ^ (uintptr_t)pool->key ^ ((uintptr_t)cell >> 4));
}
static inline void cell_mark_free(const pool_t *pool, void *cell, const void *next) {
    cell_word_store(cell, 0, cell_link_encode(pool, cell, next));
    cell_word_store(cell, 1, cell_free_mark(pool, cell));
}
/* The free-list link of a free cell, decoded (not yet checked). */
static inline void *cell_next(const pool_t *pool, const void *cell) {
    return cell_link_decode(pool, cell, cell_word_load(cell, 0));
}
static inline bool cell_has_free_mark(const pool_t *pool, const void *cell) {
    return cell_word_load(cell, 1) == cell_free_mark(pool, cell);
}
/* A decoded free-list link may be followed only if it starts a cell of span
 * b: inside the payload, and a whole number of cells from its start. The
 * second test is Lemire's divisibility check with the span's divisor
 * (offset * c mod 2^64 < c, exact for offsets below 2^32, and span_bytes is
 * 32-bit): one multiplication, no division. NULL (end of list) fails it;
 * callers test for NULL themselves. */
static inline bool cell_link_is_valid(const block_t *b, const void *next) {
    uint64_t offset = (uint64_t)((uintptr_t)next - (uintptr_t)b->start);
    return offset < b->span_bytes && offset * b->divisor < b->divisor;
}
static inline uint32_t cell_divide(uint64_t divisor, size_t offset) {
    __extension__ typedef unsigned __int128 u128;
    return (uint32_t)(((u128)divisor * (uint64_t)offset) >> 64);
}
/* offset / cell_size into *index, and whether the division is exact, from
 * one 64x64 multiplication: with divisor = ceil(2^64 / cell_size), the high
 * half is the quotient and the low half is below the divisor exactly when
 * the remainder is 0, for every offset below 2^32 (Lemire, Kaser and
 * Kurz, "Faster remainder by direct computation", 2019). A span's offsets
 * are: span_bytes is 32 bits. (Only a stray write into the descriptor's
 * start could make one larger; the free path trusts start as it trusts
 * the cell size, and pointer_check compares it with the block's.) */
static inline bool cell_divide_exact(uint64_t divisor, size_t offset, uint32_t *index) {
    __extension__ typedef unsigned __int128 u128;
    u128 product = (u128)divisor * (uint64_t)offset;
    *index = (uint32_t)(product >> 64);
    return (uint64_t)product < divisor;
}
static inline uint64_t cell_divisor(uint32_t cell_size) {
    return UINT64_MAX / cell_size + 1;
}

/* ---- pool commit accounting (pool.c) ---------------------------------- */
static inline void pool_counter_add(_Atomic size_t *c, ptrdiff_t d) {
    atomic_fetch_add_explicit(c, (size_t)d, memory_order_relaxed);
}
/* Caller holds pool->lock. Fails (false) past the limit. */
MULCH_INTERNAL bool pool_commit_locked(pool_t *pool, size_t bytes);
/* Whether pool_commit_locked(bytes) would succeed now: callers that map
 * first check with it and commit once the mapping exists (under the same
 * hold of the lock), so that a refused mapping leaves peak_reserved alone. */
MULCH_INTERNAL bool pool_commit_fits_locked(const pool_t *pool, size_t bytes);
MULCH_INTERNAL void pool_uncommit_locked(pool_t *pool, size_t bytes);

/* ---- thread heaps and their spans (thread_heap.h) ------------------------ */
#include "thread_heap.h"

/* ---- pointer classification (free.c) --------------------------------------- */
typedef struct pointer_info {
    chunk_t *chunk;
    block_t *block;       /* SMALL spans */
    uint32_t cell_index;
    size_t   usable;
} pointer_info_t;
/* Classifies p as a live allocation of pool; on misuse reports
 * "<fn>: <problem>" and returns false. */
MULCH_INTERNAL bool pointer_check(pool_t *pool, const void *p, const char *fn, pointer_info_t *out);

/* ---- huge objects (huge.c) ------------------------------------------------ */
MULCH_INTERNAL void  *huge_alloc(pool_t *pool, size_t size, size_t align, const leak_site_t *site);
/* Zeroed (clears only a reused mapping: fresh ones are zero). */
MULCH_INTERNAL void  *huge_alloc_zeroed(pool_t *pool, size_t size, const leak_site_t *site);
MULCH_INTERNAL void   huge_free(pool_t *pool, chunk_t *chunk, void *p);
/* Records a realloc in place of the huge object p (its requested size and
 * site); false, reported, when p was freed since it was checked. */
MULCH_INTERNAL bool   huge_resized(pool_t *pool, chunk_t *chunk, void *p, size_t size, const leak_site_t *site);
/* Resizes the huge object p to size (> small_max) keeping its pages; with
 * *handled false nothing changed and the caller copies (huge.c). */
MULCH_INTERNAL void  *huge_realloc(pool_t *pool, chunk_t *chunk, void *p, size_t size, const leak_site_t *site,
                                   bool *handled);
MULCH_INTERNAL size_t huge_cache_flush_locked(pool_t *pool);
MULCH_INTERNAL void   huge_unmap_all_locked(pool_t *pool);

/* ---- leak tracking (leak.c) ------------------------------------------------- */
MULCH_INTERNAL bool block_sites_attach(pool_t *pool, block_t *b);

/* ---- for the malloc drop-in (preload/) ------------------------------------- */
/* The allocating calls with the leak site given by the caller: a wrapper
 * (malloc) passes its own return address, so reports name its caller. */
MULCH_INTERNAL void *pool_alloc_from(pool_t *pool, size_t size, const void *caller);
MULCH_INTERNAL void *pool_calloc_from(pool_t *pool, size_t n, size_t size, const void *caller);
MULCH_INTERNAL void *pool_realloc_from(pool_t *pool, void *p, size_t size, const void *caller);
MULCH_INTERNAL void *pool_alloc_aligned_from(pool_t *pool, size_t size, size_t align, const void *caller);
/* Options of the default pool; effective only before its first use. */
MULCH_INTERNAL void pool_default_set_options(const pool_options_t *opts);
/* fork.c's child handler: the default pool's creation lock, afresh. */
MULCH_INTERNAL void pool_default_fork_child(void);
/* fork.c: the list of live pools, whose locks are held across fork(), and
 * their ids; false when the OS refused the ids' room (nothing added). */
MULCH_INTERNAL bool pool_list_add(pool_t *pool);
/* Tests: how many more pools the ids' array holds before it must grow. */
MULCH_INTERNAL size_t pool_list_room(void);
MULCH_INTERNAL void pool_list_remove(pool_t *pool);
/* Whether the pool with this id (pool_t.id, never reused) is still listed
 * and no pool_destroy of it has begun (`destroying`, set before its hook
 * runs: pool/fork.c). Later calls are the caller's race with pool_destroy
 * (the rc bridge registers first: runtime/bridge.c). */
MULCH_INTERNAL bool pool_id_alive(uint64_t id);
/* How many pools left the list so far (pool_destroy): a caller that saw
 * the same count before need not ask pool_id_alive again. */
MULCH_INTERNAL uint64_t pool_destroy_count(void);
/* Run by pool_destroy before anything is torn down, when set: a layer above
 * (the rc objects' merge queues, runtime/rc.c) lets go of the pool's cells
 * it still links to. Set once, never cleared. */
typedef void (*pool_destroy_hook_t)(pool_t *pool);
MULCH_INTERNAL extern _Atomic(pool_destroy_hook_t) mulch_pool_destroy_hook;

/* Registers the pool's fork handlers, once (gc/fork.c registers its own
 * after them: see fork.c). */
MULCH_INTERNAL void pool_fork_register(void);
MULCH_INTERNAL void heap_registry_lock(void);
MULCH_INTERNAL void heap_registry_unlock(void);
MULCH_INTERNAL void chunk_map_lock(void);
MULCH_INTERNAL void chunk_map_unlock(void);
MULCH_INTERNAL void mulch_report_lock(void);
MULCH_INTERNAL void mulch_report_unlock(void);

/* leak.c: under valgrind, pool_destroy tells memcheck its live cells are gone. */
MULCH_INTERNAL void pool_tool_forget_live_locked(pool_t *pool);
/* leak.c: calls fn(ctx, cell, size) for every live cell and huge object of
 * the pool (size: the requested size when tracked, else the cell's), under
 * the pool's lock (fn takes no pool lock). For pool_destroy's hook. */
MULCH_INTERNAL void pool_live_cells_walk(pool_t *pool, void (*fn)(void *ctx, void *cell, size_t size), void *ctx);

/* env.c: an on/off environment switch (MULCH_TRACK_LEAKS, MULCH_SECURE,
 * MULCH_VALGRIND, MULCH_LEAK_REPORT, MULCH_MALLOC_STATS, and the
 * collector's MULCH_GC_GENERATIONAL and MULCH_GC_VERIFY): 1 on (1, on,
 * true, yes), 0 off (0, off, false, no), `fallback` when unset or blank;
 * anything else is reported once, as "WHO: NAME=VALUE ...", and read as on
 * (off when it starts with '0'). */
MULCH_INTERNAL int mulch_env_switch(const char *name, const char *who, int fallback);
/* env.c: the variable's value without surrounding blanks (space, tab,
 * newline, carriage return) and its *length; NULL when unset, empty or
 * blank. Not NUL-terminated at *length: the environment's own string. */
MULCH_INTERNAL const char *mulch_env_trimmed(const char *name, size_t *length);

#endif /* MULCH_POOL_INTERNAL_H */
