/* parallel.c — parallel marking: helper marker threads and the work they share.
 *
 * The collecting thread traces the roots into its own stack, then it and
 * options.markers - 1 helper threads (started on the first collection that
 * wants them, parked between collections) drain the graph together. A
 * minor collection's card scan (gc_mark_parallel's `first`) runs on every
 * marker as it joins (the collector once it woke the helpers, which may
 * start before it), each taking spans from a shared cursor (generation.c);
 * it reads mark bits and cards that markers write meanwhile, with relaxed
 * loads. A marker that is still scanning is not idle, so marking cannot
 * end before every span was scanned. Each
 * marker owns a tracer with a private stack; work moves between markers in
 * packets through one shared list: a marker that sees an idle marker gives
 * away, when a range entry of two chunks or more lies near the bottom of
 * its stack (a wide object's untraced slots, mark.c), half of that
 * range's chunks; else, from a short stack, its bottom entry (for trees,
 * the biggest subtree left), else the bottom half (gc_mark_donate);
 * a marker whose stack is empty takes a packet or goes idle.
 * Marking ends when every marker that joined is idle and the list is
 * empty; a helper that wakes late (a loaded machine) finds marking done
 * and stays out, so the collector never waits for a thread to be scheduled.
 *
 * Owning marking (every parallel marking): the first marker to look a
 * span up claims it (shared->claims, by span index), unless the span is
 * being evacuated or was taken for copies since the marking began (those
 * keep atomic mark bits); its owner sets the span's mark bits with plain
 * stores, any other marker sets the span's remote bits by atomic OR (in
 * a heap without generations its age bits, zero there; in one with
 * generations, whose age bits are in use, a bitmap of shared->remote_bits,
 * zero between markings, remote_bits_place); when every
 * marker is out, the collector ORs the remote bits into the mark bits and
 * clears them. A locked OR for every object marked cost a marker a third
 * of its time, and two markers that marked in the same bitmap words
 * passed the cache lines between them; with owning marking, and work
 * given away in big separate parts (gc_mark_donate), two markers mark
 * binary-trees 20 at 10.4 ns an object each, against 14.9 ns before
 * (one marker alone: 10.0 ns).
 * Invariants: while markers run (tracer->shared != NULL), a span's mark
 * bits are written only by its owner (owning marking) or only by atomic
 * OR (otherwise), so no marker's bit is lost; each object is pushed at
 * most once per bitmap that holds its bit (by exactly one marker in the
 * non-owning mode, by at most two in the owning one: tracing twice is
 * harmless); every marked or remote bit of a marking is a mark bit once
 * gc_mark_parallel returns, and the remote bits are zero again; new
 * evacuation target spans are taken under target_lock; the collector
 * holds heap->lock throughout, helpers never take it. Helpers run no user
 * code but trace functions. Live set and results are those of serial
 * marking: marking is idempotent and order-independent. Both shared locks
 * are held across fork (after heap->lock); a child has no helpers and
 * starts its own when it next marks in parallel.
 */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "gc_internal.h"
#include "gc_mark.h"

#define PACKET_ITEMS   127u
#define PACKETS_PER_MAP 32u

struct gc_mark_packet {
    struct gc_mark_packet *next;
    size_t                 count;
    gc_mark_entry_t        items[PACKET_ITEMS];
};

/* Smaller heaps are marked by the collector alone: waking helpers costs
 * more than it saves. At 8 MiB a helper already pays on 2 cores (session
 * 32, owning marking: GCBench 0.141-0.145 -> 0.119-0.132 s for 4 % more
 * CPU, Lisp binary-trees 2.80 -> 2.65-2.67 s); the 4 MiB Lisp strings
 * program gains nothing from it (0.110-0.112 s either way). */
#define PARALLEL_MIN_HEAP ((size_t)8 << 20)
/* How long an idle marker waits for a packet before it sleeps. */
#define MARK_SPIN_NS 20000u

static gc_mark_packet_t *packet_new_locked(gc_mark_shared_t *shared) {
    if (shared->free_packets == NULL) {
        gc_mark_packet_t *batch = os_map(PACKETS_PER_MAP * sizeof *batch);
        if (batch == NULL) return NULL;
        /* The first packet of a mapping links the mappings (for destroy). */
        batch[0].next = shared->mappings;
        shared->mappings = batch;
        for (unsigned i = 1; i < PACKETS_PER_MAP; i++) {
            batch[i].next = shared->free_packets;
            shared->free_packets = &batch[i];
        }
    }
    gc_mark_packet_t *p = shared->free_packets;
    shared->free_packets = p->next;
    p->next = NULL;
    p->count = 0;
    return p;
}

/* Above this many entries left after a donation, the gap the donation
 * left at the bottom is filled from the top instead of by sliding the
 * whole stack down. Sliding keeps the order (a tree's stack is a few
 * dozen entries: its order is the donor's locality), but costs the whole
 * stack each time: an object with a million slots pushes a million
 * entries, an idle marker asks again every MARK_SHARE_INTERVAL objects,
 * and two markers took 2.4 s to mark what one marked in 0.16 s. */
#define DONATE_SLIDE_MAX (4u * PACKET_ITEMS)

/* Closes the gap left by giving away the bottom n entries, in O(n) time:
 * marking does not depend on the order of the stack. */
static void tracer_close_gap(gc_tracer_t *tracer, size_t n) {
    size_t rest = tracer->depth - n;
    if (rest <= DONATE_SLIDE_MAX) memmove(tracer->stack, tracer->stack + n, rest * sizeof *tracer->stack);
    else memcpy(tracer->stack, tracer->stack + tracer->depth - n, n * sizeof *tracer->stack); /* rest > n: disjoint */
    tracer->depth = rest;
}

/* Puts a filled packet on the shared list (shared->lock held) and wakes
 * an idle marker. */
static void packet_offer_locked(gc_mark_shared_t *shared, gc_mark_packet_t *p) {
    p->next = shared->packets;
    shared->packets = p;
    atomic_fetch_add_explicit(&shared->offered, 1, memory_order_relaxed);
    pthread_cond_signal(&shared->work);
}

/* A stack of at most this many entries gives its bottom entry alone. */
#define DONATE_ONE_MAX 256u

/* Gives work away: half of a range entry of two chunks or more near the
 * bottom of the stack when there is one (the donor keeps its stack and
 * the cache lines it works on, and the taker gets as many slots as the
 * donor kept); else, from a short stack (DONATE_ONE_MAX entries), its
 * bottom entry; else the bottom half of the stack (at most a packet). A
 * range entry given whole made two markers pass it back and forth every
 * few dozen objects: hash_table's pauses doubled with a second marker.
 * A short stack is a depth-first path (a tree's, a list's), whose bottom
 * entry is the biggest part of the graph left, and in memory allocated
 * together, apart from the rest: given alone, it sends the taker to spans
 * of its own. Given half the stack, the taker got the big subtrees and the
 * donor kept the small ones near its path, ran dry, and took a share
 * back: the two traced the same spans by turns, so that most spans had
 * cells of both and owning marking (mark.c) helped nothing. With the
 * bottom entry alone, binary-trees 20's pause went from 2.24-2.60 s to
 * 1.58-1.60 s with two markers (one marker: 2.95 s), GCBench's from
 * 46-67 ms to 35-45 ms (session 32). A longer stack holds the many
 * children of wide objects, often small: one at a time would feed an idle
 * marker an object per MARK_SHARE_INTERVAL of the donor's. */
void gc_mark_donate(gc_tracer_t *tracer) {
    gc_mark_shared_t *shared = tracer->shared;
    size_t n = tracer->depth <= DONATE_ONE_MAX ? (tracer->depth > 1) : tracer->depth / 2;
    if (n > PACKET_ITEMS) n = PACKET_ITEMS;
    gc_mark_entry_t half;
    bool split = gc_mark_split_range(tracer, PACKET_ITEMS, &half);
    if (n == 0 && !split) return;
    pthread_mutex_lock(&shared->lock);
    gc_mark_packet_t *p = packet_new_locked(shared);
    if (p == NULL) {
        pthread_mutex_unlock(&shared->lock);
        if (split) gc_tracer_push_entry(tracer, half); /* (kept: the donor traces it) */
        return;
    }
    if (split) {
        p->items[0] = half;
        p->count = 1;
    } else {
        memcpy(p->items, tracer->stack, n * sizeof *p->items);
        p->count = n;
    }
    packet_offer_locked(shared, p);
    pthread_mutex_unlock(&shared->lock);
    if (!split) tracer_close_gap(tracer, n);
}

/* Moves a packet (shared->lock held) onto the tracer's stack. */
static void packet_take_locked(gc_mark_shared_t *shared, gc_tracer_t *tracer) {
    gc_mark_packet_t *p = shared->packets;
    shared->packets = p->next;
    atomic_fetch_sub_explicit(&shared->offered, 1, memory_order_relaxed);
    for (size_t i = 0; i < p->count; i++) gc_tracer_push_entry(tracer, p->items[i]);
    p->next = shared->free_packets;
    shared->free_packets = p;
}

/* Drains until every marker is out of work. */
static void marker_loop(gc_tracer_t *tracer) {
    gc_mark_shared_t *shared = tracer->shared;
    for (;;) {
        gc_mark_drain_local(tracer);
        pthread_mutex_lock(&shared->lock);
        if (shared->packets) {
            packet_take_locked(shared, tracer);
            pthread_mutex_unlock(&shared->lock);
            continue;
        }
        atomic_fetch_add_explicit(&shared->idle, 1, memory_order_relaxed);
        if (atomic_load_explicit(&shared->idle, memory_order_relaxed) == shared->active) {
            shared->done = true;
            pthread_cond_broadcast(&shared->work);
            pthread_mutex_unlock(&shared->lock);
            return;
        }
        /* Out of work: spin a little before sleeping. A marker that shares
         * usually does so within microseconds, and waking a sleeper costs
         * a futex call on each side (GCBench: 9 % of its time in the
         * kernel, most of it there). */
        pthread_mutex_unlock(&shared->lock);
        uint64_t spin_until = gc_now_ns() + MARK_SPIN_NS;
        while (atomic_load_explicit(&shared->offered, memory_order_relaxed) == 0
               && !atomic_load_explicit(&shared->done, memory_order_relaxed) && gc_now_ns() < spin_until)
            gc_cpu_relax();
        pthread_mutex_lock(&shared->lock);
        while (shared->packets == NULL && !shared->done) gc_cond_wait(&shared->work, &shared->lock);
        if (shared->done) {
            pthread_mutex_unlock(&shared->lock);
            return;
        }
        atomic_fetch_sub_explicit(&shared->idle, 1, memory_order_relaxed);
        packet_take_locked(shared, tracer);
        pthread_mutex_unlock(&shared->lock);
    }
}

static void *marker_main(void *arg) {
    gc_heap_t *heap = arg;
    gc_mark_shared_t *shared = &heap->mark_shared;
    pthread_mutex_lock(&shared->lock);
    /* (the thread library's start-up code is over: fork may go ahead) */
    shared->ready++;
    pthread_cond_broadcast(&shared->finished);
    uint64_t seen = 0;
    for (;;) {
        while (shared->generation == seen && !shared->quit) gc_cond_wait(&shared->start, &shared->lock);
        if (shared->quit) break;
        seen = shared->generation;
        /* A helper that wakes after the others finished stays out: the
         * collector does not wait for helpers that never joined. */
        if (shared->done) continue;
        shared->active++;
        shared->joined++;
        bool evacuate = shared->evacuate, aging = shared->aging;
        bool owning = shared->owning;
        void (*first)(gc_tracer_t *) = shared->first;
        unsigned char id = (unsigned char)shared->active; /* (2.., the collector is 1) */
        pthread_mutex_unlock(&shared->lock);

        gc_tracer_t tracer;
        gc_tracer_init(&tracer, heap, "gc_collect");
        gc_tracer_set_mode(&tracer, evacuate, aging);
        tracer.shared = shared;
        tracer.owning = owning;
        tracer.marker_id = id;
        if (first != NULL) first(&tracer);
        marker_loop(&tracer);
        gc_tracer_free(&tracer);

        pthread_mutex_lock(&shared->lock);
        shared->bytes_moved += tracer.bytes_moved;
        shared->overflowed |= tracer.overflowed;
        gc_rescan_range_add(&shared->rescan_low, &shared->rescan_end, tracer.rescan_low, tracer.rescan_end);
        if (--shared->joined == 0) pthread_cond_broadcast(&shared->finished);
    }
    pthread_mutex_unlock(&shared->lock);
    return NULL;
}

static unsigned markers_wanted(const gc_heap_t *heap) {
    long markers = heap->options.markers;
    if (markers <= 0) markers = sysconf(_SC_NPROCESSORS_ONLN);
    if (markers < 1) markers = 1;
    if (markers > GC_MAX_MARKERS) markers = GC_MAX_MARKERS;
    return (unsigned)markers;
}

/* A helper's stack size, set explicitly: the thread library's default is
 * RLIMIT_STACK (commonly 8 MiB of address space per helper, for each heap
 * with helpers), and a small RLIMIT_STACK left too little for the helper's
 * gc_tracer_t (about 20.6 KiB since session 28's 64-byte span cache
 * entries, in marker_main's frame). Besides that, a helper runs the heap's
 * trace functions and, for a bad slot, the error handler (the default one
 * calls fprintf). Measured in session 27 with the marking tests
 * (mark_split, mark_overflow, misuse, wide_range, mix, headerless, the
 * s20/s21 thread tests): 24 KiB crashed and 32 KiB sufficed, in the
 * default, ASan and TSan builds alike (glibc takes static TLS and the
 * guard from it too). 256 KiB leaves 8 times that for trace functions and
 * error handlers; only the pages touched are committed. The sanitizers
 * get 1 MiB: their report paths (symbolising a stack) run on the
 * faulting thread and need far more than marking does. */
#if defined(MULCH_ASAN) || defined(MULCH_TSAN)
#  define MARKER_STACK_BYTES ((size_t)1 << 20)
#else
#  define MARKER_STACK_BYTES ((size_t)256 << 10)
#endif

/* Starts helpers up to markers - 1; returns how many run. Helpers block
 * every signal (the embedder's handlers, and signalfd or sigwait users,
 * expect process signals on their own threads, not on ours: the mask is
 * inherited from the creating thread, so it is set around the create) and
 * are named "mulch-marker-N" for top, gdb and perf. */
static unsigned helpers_start(gc_heap_t *heap) {
    gc_mark_shared_t *shared = &heap->mark_shared;
    unsigned wanted = markers_wanted(heap) - 1;
    if (shared->helper_count >= wanted) return shared->helper_count;
    pthread_attr_t attr;
    bool sized = pthread_attr_init(&attr) == 0;
    /* (if refused, as below PTHREAD_STACK_MIN, the default size stays) */
    if (sized) (void)pthread_attr_setstacksize(&attr, MARKER_STACK_BYTES);
    sigset_t all, old;
    sigfillset(&all);
    bool masked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
    while (shared->helper_count < wanted) {
        pthread_t *helper = &shared->helpers[shared->helper_count];
        if (pthread_create(helper, sized ? &attr : NULL, marker_main, heap) != 0) break;
        char name[16];
        snprintf(name, sizeof name, "mulch-marker-%u", (shared->helper_count + 1) % 100);
        (void)pthread_setname_np(*helper, name);
        shared->helper_count++;
    }
    if (masked) pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (sized) pthread_attr_destroy(&attr);
    return shared->helper_count;
}

/* Per span: its claim, its remote flag and its remote bits' offset. */
#define CLAIM_BYTES (2u + sizeof(uint32_t))

/* A heap with generations: the remote bits of its `count` spans, their
 * words laid out in span order in shared->remote_bits, which grows by
 * doubling (a fresh mapping is zero; the merge leaves every word it used
 * zero again); false when it cannot be had, or the offsets would not fit
 * 32 bits. */
static bool remote_bits_place(gc_heap_t *heap, size_t count) {
    gc_mark_shared_t *shared = &heap->mark_shared;
    size_t words = 0;
    for (size_t s = 0; s < count; s++) {
        if (words > UINT32_MAX) return false;
        shared->remote_offsets[s] = (uint32_t)words;
        words += gc_span_words(heap->spans.items[s]);
    }
    if (words > shared->remote_bits_capacity) {
        size_t capacity = shared->remote_bits_capacity ? shared->remote_bits_capacity : 4096;
        while (capacity < words) capacity *= 2;
        uint64_t *bits = os_map(capacity * sizeof *bits);
        if (bits == NULL) return false;
        if (shared->remote_bits) os_unmap(shared->remote_bits, shared->remote_bits_capacity * sizeof *bits);
        shared->remote_bits = bits;
        shared->remote_bits_capacity = capacity;
    }
    return true;
}

/* Owning marking (mark.c): the claims and remote flags, zeroed, for
 * every span of the heap; false when they cannot be had (the marking then
 * sets mark bits by atomic OR). The mapping grows by doubling and is kept
 * for the next collection (a few bytes per span). No span is removed
 * while markers run; an evacuation's new target spans come after
 * claims_count and are not owned. */
static bool claims_reset(gc_heap_t *heap) {
    gc_mark_shared_t *shared = &heap->mark_shared;
    size_t count = heap->spans.count;
    if (shared->claims == NULL || count > shared->claims_capacity) {
        size_t capacity = shared->claims_capacity ? shared->claims_capacity : 4096;
        while (capacity < count) capacity *= 2;
        unsigned char *claims = os_map(CLAIM_BYTES * capacity);
        if (claims == NULL) return false;
        if (shared->claims) os_unmap(shared->claims, CLAIM_BYTES * shared->claims_capacity);
        shared->claims = claims;
        shared->remote = claims + capacity;
        shared->remote_offsets = (uint32_t *)(void *)(claims + 2 * capacity);
        shared->claims_capacity = capacity;
    }
    if (heap->generational && !remote_bits_place(heap, count)) return false;
    memset(shared->claims, 0, count);
    memset(shared->remote, 0, count);
    shared->claims_count = count;
    return true;
}

/* Owning marking is over (every marker out): each remote bit joins the
 * mark bits and is cleared (a heap without generations keeps its age
 * bits zero; the other's remote_bits stay zero between markings). */
static void remote_bits_merge(gc_heap_t *heap) {
    gc_mark_shared_t *shared = &heap->mark_shared;
    for (size_t s = 0; s < shared->claims_count; s++) {
        if (!shared->remote[s]) continue;
        block_t *b = heap->spans.items[s];
        shared->remote_spans++;
        uint64_t *mark = gc_span_mark_bits(b), *remote = gc_mark_remote_bits(shared, b);
        for (uint32_t w = 0; w < gc_span_words(b); w++) {
            if (remote[w] == 0) continue;
            __atomic_store_n(&mark[w], mark[w] | remote[w], __ATOMIC_RELAXED);
            remote[w] = 0;
        }
    }
}

void gc_mark_parallel(gc_tracer_t *tracer, void (*first)(gc_tracer_t *tracer)) {
    gc_heap_t *heap = tracer->heap;
    gc_mark_shared_t *shared = &heap->mark_shared;
    size_t heap_bytes = atomic_load_explicit(&heap->heap_bytes, memory_order_relaxed);
    unsigned helpers = 0;
    /* An explicit markers > 1 is honoured at any heap size (tests rely on it). */
    if (markers_wanted(heap) > 1 && (heap_bytes >= PARALLEL_MIN_HEAP || heap->options.markers > 1))
        helpers = helpers_start(heap);
    if (helpers == 0) {
        heap->last_markers = 1;
        if (first != NULL) first(tracer);
        gc_mark_drain(tracer);
        return;
    }
    pthread_mutex_lock(&shared->lock);
    shared->generation++;
    shared->evacuate = tracer->evacuate;
    shared->aging = tracer->aging;
    shared->active = 1; /* helpers count themselves in as they wake */
    shared->joined = 0;
    atomic_store_explicit(&shared->idle, 0, memory_order_relaxed);
    shared->done = false;
    atomic_store_explicit(&shared->offered, 0, memory_order_relaxed);
    shared->bytes_moved = 0;
    shared->overflowed = false;
    shared->rescan_low = shared->rescan_end = 0;
    atomic_store_explicit(&shared->bad_slots, tracer->bad_slots, memory_order_relaxed);
    shared->owning = claims_reset(heap);
    shared->first = first;
    atomic_store_explicit(&shared->card_next, 0, memory_order_relaxed);
    pthread_cond_broadcast(&shared->start);
    pthread_mutex_unlock(&shared->lock);

    tracer->shared = shared;
    tracer->owning = shared->owning;
    tracer->marker_id = 1;
    /* (its entries' `owned` predate the claims) */
    if (tracer->owning) gc_tracer_forget_spans(tracer);
    if (first != NULL) first(tracer);
    marker_loop(tracer);
    pthread_mutex_lock(&shared->lock);
    while (shared->joined) gc_cond_wait(&shared->finished, &shared->lock);
    if (tracer->owning) remote_bits_merge(heap);
    heap->last_markers = shared->active; /* the collector and the helpers that joined */
    tracer->owning = false;
    tracer->bytes_moved += shared->bytes_moved;
    tracer->overflowed |= shared->overflowed;
    gc_rescan_range_add(&tracer->rescan_low, &tracer->rescan_end, shared->rescan_low, shared->rescan_end);
    tracer->bad_slots = atomic_load_explicit(&shared->bad_slots, memory_order_relaxed);
    pthread_mutex_unlock(&shared->lock);
    tracer->shared = NULL;
    gc_mark_drain(tracer); /* serial: rescans after an overflow, if any */
}

void gc_mark_shared_init(gc_heap_t *heap) {
    gc_mark_shared_t *shared = &heap->mark_shared;
    pthread_mutex_init(&shared->lock, NULL);
    pthread_mutex_init(&shared->target_lock, NULL);
    pthread_cond_init(&shared->work, NULL);
    pthread_cond_init(&shared->start, NULL);
    pthread_cond_init(&shared->finished, NULL);
}

void gc_mark_shared_destroy(gc_heap_t *heap) {
    gc_mark_shared_t *shared = &heap->mark_shared;
    pthread_mutex_lock(&shared->lock);
    shared->quit = true;
    pthread_cond_broadcast(&shared->start);
    pthread_mutex_unlock(&shared->lock);
    /* pthread_join is a cancellation point, and gc_heap_destroy is none
     * (docs/gc.md "Cancellation"): a pending cancel ended the destroyer
     * here, the heap half torn down. It acts at the caller's next
     * cancellation point instead. */
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    for (unsigned i = 0; i < shared->helper_count; i++) pthread_join(shared->helpers[i], NULL);
    pthread_setcancelstate(cancel_state, NULL);
    if (shared->claims) os_unmap(shared->claims, CLAIM_BYTES * shared->claims_capacity);
    if (shared->remote_bits) os_unmap(shared->remote_bits, shared->remote_bits_capacity * sizeof(uint64_t));
    while (shared->mappings) {
        gc_mark_packet_t *batch = shared->mappings;
        shared->mappings = batch->next;
        os_unmap(batch, PACKETS_PER_MAP * sizeof *batch);
    }
    pthread_cond_destroy(&shared->finished);
    pthread_cond_destroy(&shared->start);
    pthread_cond_destroy(&shared->work);
    pthread_mutex_destroy(&shared->target_lock);
    pthread_mutex_destroy(&shared->lock);
}

/* ---- fork (gc/fork.c) -------------------------------------------------------
 * With heap->lock held no marking runs (the collector holds it throughout),
 * so helpers, if any, sleep on `start`, and target_lock is free or about
 * to be. In the child the helpers are gone: helper_count 0, and the next
 * parallel marking starts new ones (helpers_start). The condition
 * variables may record waiters that no longer exist (a broadcast could
 * wait for them to leave): they are initialized anew. */
void gc_mark_shared_fork_lock(gc_heap_t *heap) {
    gc_mark_shared_t *shared = &heap->mark_shared;
    pthread_mutex_lock(&shared->lock);
    /* A helper just created may still be in the thread library's start-up
     * code, which can hold locks of its own (AddressSanitizer's allocator
     * in GCC 12's runtime, which takes no fork handler): forked then, the
     * child inherits them held, and its first helper's start-up waits for
     * them for ever. Wait until every helper reached marker_main: they
     * need no lock but this one to get there, and take no other. */
    while (shared->ready < shared->helper_count) gc_cond_wait(&shared->finished, &shared->lock);
    pthread_mutex_lock(&shared->target_lock);
}

void gc_mark_shared_fork_unlock(gc_heap_t *heap) {
    pthread_mutex_unlock(&heap->mark_shared.target_lock);
    pthread_mutex_unlock(&heap->mark_shared.lock);
}

void gc_mark_shared_fork_child(gc_heap_t *heap) {
    gc_mark_shared_t *shared = &heap->mark_shared;
    shared->helper_count = shared->ready = 0;
    shared->active = shared->joined = 0;
    shared->quit = false;
    atomic_store_explicit(&shared->idle, 0, memory_order_relaxed);
    /* No marking runs (heap->lock was held). done stays true: a helper
     * started later finds the last generation done and waits for the next
     * one, instead of joining a marking that is over (marker_main). */
    atomic_store_explicit(&shared->done, true, memory_order_relaxed);
    /* (packets left over would be in no marker's hands: back to the free list) */
    while (shared->packets) {
        gc_mark_packet_t *p = shared->packets;
        shared->packets = p->next;
        p->next = shared->free_packets;
        shared->free_packets = p;
    }
    atomic_store_explicit(&shared->offered, 0, memory_order_relaxed);
    pthread_cond_init(&shared->work, NULL);
    pthread_cond_init(&shared->start, NULL);
    pthread_cond_init(&shared->finished, NULL);
}
