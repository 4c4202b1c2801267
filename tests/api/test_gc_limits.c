/* test_gc_limits.c — black-box tests of the heap policy and allocation misuse
 * (<mulch/gc.h>; docs: shared/API.md "GC" and "Errors and misuse"):
 * max_heap is honoured (gc_alloc returns NULL after a full collection, which
 * is not misuse, heap_bytes never passes max_heap, the heap stays usable and
 * allocation succeeds again once memory is dropped); requests that can never
 * fit return NULL quietly; gc_alloc with size 0 or a NULL type and gc_pin of
 * a foreign pointer are misuse: reported once, NULL / ignored.
 *
 * Deterministic: random choices come from a splitmix64 generator seeded from
 * MULCH_TEST_SEED (decimal or 0x-hex) or a fixed default; the seed is printed
 * at the start of each test and in every failure message. MULCH_TEST_QUICK=1
 * (and sanitizer / valgrind builds) scale the work down. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630b03)
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <mulch/gc.h>

#if defined(__GNUC__)
#  define MT_UNUSED __attribute__((unused))
#else
#  define MT_UNUSED
#endif

/* ------------------------------------------------------------------------ */
/* Build flavour detection                                                   */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#  define MT_SANITIZED 1
#endif
#if !defined(MT_SANITIZED) && defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
      __has_feature(memory_sanitizer)
#    define MT_SANITIZED 1
#  endif
#endif
#ifndef MT_SANITIZED
#  define MT_SANITIZED 0
#endif
#if defined(__has_include)
#  if __has_include(<valgrind/valgrind.h>)
#    include <valgrind/valgrind.h>
#    define MT_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#  endif
#endif
#ifndef MT_ON_VALGRIND
#  define MT_ON_VALGRIND() 0
#endif

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* ------------------------------------------------------------------------ */
/* Seed, PRNG, scaling                                                       */

static uint64_t g_seed = DEFAULT_SEED;
static int g_quick;

MT_UNUSED static uint64_t mix64(uint64_t z)
{
    z += UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

typedef struct { uint64_t s; } rng_t;

MT_UNUSED static uint64_t rng_next(rng_t *r)
{
    r->s += UINT64_C(0x9e3779b97f4a7c15);
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

MT_UNUSED static uint64_t rng_below(rng_t *r, uint64_t n) { return n ? rng_next(r) % n : 0; }

MT_UNUSED static rng_t test_rng(const char *name, uint64_t k)
{
    uint64_t h = g_seed;
    for (const char *c = name; *c; c++) h = mix64(h ^ (unsigned char)*c);
    rng_t r = { mix64(h ^ k) };
    return r;
}

MT_UNUSED static int env_flag(const char *name)
{
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

MT_UNUSED static size_t scaled(size_t full, size_t quick) { return g_quick ? quick : full; }

static struct timespec g_t0;

MT_UNUSED static double elapsed_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - g_t0.tv_sec) + (double)(t.tv_nsec - g_t0.tv_nsec) / 1e9;
}

#define TEST_START() \
    do { \
        clock_gettime(CLOCK_MONOTONIC, &g_t0); \
        print_message("[%s] seed=0x%016" PRIx64 "%s\n", __func__, g_seed, \
                      g_quick ? " (quick)" : ""); \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Assertion helpers that print both values and the seed (main thread only)  */

#define T_FAIL(...) \
    do { \
        print_error("FAIL %s:%d [seed=0x%016" PRIx64 "]: ", __FILE__, __LINE__, g_seed); \
        print_error(__VA_ARGS__); \
        print_error("\n"); \
        fail(); \
    } while (0)

#define EXPECT_EQ(a, b) \
    do { \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b); \
        if (a_ != b_) T_FAIL("%s == %s: %ju != %ju", #a, #b, a_, b_); \
    } while (0)
#define EXPECT_NE(a, b) \
    do { \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b); \
        if (a_ == b_) T_FAIL("%s != %s: both are %ju", #a, #b, a_); \
    } while (0)
#define EXPECT_GE(a, b) \
    do { \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b); \
        if (!(a_ >= b_)) T_FAIL("%s >= %s: %ju < %ju", #a, #b, a_, b_); \
    } while (0)
#define EXPECT_LE(a, b) \
    do { \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b); \
        if (!(a_ <= b_)) T_FAIL("%s <= %s: %ju > %ju", #a, #b, a_, b_); \
    } while (0)
#define EXPECT_LT(a, b) \
    do { \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b); \
        if (!(a_ < b_)) T_FAIL("%s < %s: %ju >= %ju", #a, #b, a_, b_); \
    } while (0)
#define EXPECT_PTR_EQ(a, b) \
    do { \
        const void *a_ = (const void *)(a), *b_ = (const void *)(b); \
        if (a_ != b_) T_FAIL("%s == %s: %p != %p", #a, #b, a_, b_); \
    } while (0)
#define EXPECT_NONNULL(p) \
    do { \
        if ((p) == NULL) T_FAIL("%s is NULL", #p); \
    } while (0)
#define EXPECT_NULL(p) \
    do { \
        const void *p_ = (const void *)(p); \
        if (p_ != NULL) T_FAIL("%s is %p, expected NULL", #p, p_); \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Failures recorded off the cmocka path (worker threads, finalizers, which   */
/* must not longjmp out of the collector).                                   */

static atomic_ulong g_failures;
static pthread_mutex_t g_fail_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_fail_msg[1024];

MT_UNUSED static void async_fail(int line, const char *fmt, ...)
{
    if (atomic_fetch_add(&g_failures, 1) == 0) {
        va_list ap;
        pthread_mutex_lock(&g_fail_mu);
        int n = snprintf(g_fail_msg, sizeof g_fail_msg, "line %d: ", line);
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof g_fail_msg)
            vsnprintf(g_fail_msg + n, sizeof g_fail_msg - (size_t)n, fmt, ap);
        va_end(ap);
        pthread_mutex_unlock(&g_fail_mu);
    }
}
#define AFAIL(...) async_fail(__LINE__, __VA_ARGS__)

#define EXPECT_NO_ASYNC_FAILURES() \
    do { \
        unsigned long n_ = atomic_load(&g_failures); \
        if (n_) { \
            pthread_mutex_lock(&g_fail_mu); \
            print_error("first recorded failure: %s\n", g_fail_msg); \
            pthread_mutex_unlock(&g_fail_mu); \
            T_FAIL("%lu failure(s) recorded in finalizers / worker threads", n_); \
        } \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Error handler recorder (thread-safe: it may be called inside a collection  */
/* on any thread).                                                           */

static struct {
    pthread_mutex_t mu;
    unsigned long count;
    char what[256];
    char first_what[256];
    const void *ptr;
} g_rec = { PTHREAD_MUTEX_INITIALIZER, 0, "", "", NULL };

MT_UNUSED static void rec_handler(const char *what, const void *ptr, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&g_rec.mu);
    if (g_rec.count == 0)
        snprintf(g_rec.first_what, sizeof g_rec.first_what, "%s", what ? what : "(null)");
    g_rec.count++;
    snprintf(g_rec.what, sizeof g_rec.what, "%s", what ? what : "(null)");
    g_rec.ptr = ptr;
    pthread_mutex_unlock(&g_rec.mu);
}

MT_UNUSED static unsigned long rec_count(void)
{
    pthread_mutex_lock(&g_rec.mu);
    unsigned long n = g_rec.count;
    pthread_mutex_unlock(&g_rec.mu);
    return n;
}

/* Copies the last report's text. */
MT_UNUSED static void rec_last(char *what, size_t n, const void **ptr)
{
    pthread_mutex_lock(&g_rec.mu);
    snprintf(what, n, "%s", g_rec.what);
    if (ptr) *ptr = g_rec.ptr;
    pthread_mutex_unlock(&g_rec.mu);
}

static mulch_error_fn g_prev_handler;

MT_UNUSED static int setup_rec(void **state)
{
    (void)state;
    pthread_mutex_lock(&g_rec.mu);
    g_rec.count = 0;
    g_rec.what[0] = 0;
    g_rec.first_what[0] = 0;
    g_rec.ptr = NULL;
    pthread_mutex_unlock(&g_rec.mu);
    atomic_store(&g_failures, 0);
    g_fail_msg[0] = 0;
    g_prev_handler = mulch_set_error_handler(rec_handler, NULL);
    return 0;
}

MT_UNUSED static int teardown_rec(void **state)
{
    (void)state;
    mulch_set_error_handler(g_prev_handler, NULL);
    print_message("  (%.2f s)\n", elapsed_s());
    return 0;
}

#define EXPECT_NO_REPORTS(since) \
    do { \
        unsigned long n_ = rec_count() - (since); \
        if (n_ != 0) { \
            char w_[256]; const void *p_; \
            rec_last(w_, sizeof w_, &p_); \
            T_FAIL("expected no error-handler call, got %lu (last: \"%s\" ptr %p)", n_, w_, p_); \
        } \
    } while (0)

/* At least one report since `since`, the last one's text starting with "gc_". */
#define EXPECT_GC_REPORTS(since) \
    do { \
        unsigned long n_ = rec_count() - (since); \
        char w_[256]; const void *p_; \
        rec_last(w_, sizeof w_, &p_); \
        if (n_ == 0) T_FAIL("expected an error-handler call, got none"); \
        else if (strncmp(w_, "gc_", 3) != 0) \
            T_FAIL("report \"%s\" does not start with a gc_ function name", w_); \
    } while (0)

MT_UNUSED static void *launder(void *p)
{
#if defined(__GNUC__)
    __asm__ volatile("" : "+r"(p) : : "memory");
#endif
    return p;
}

MT_UNUSED static gc_stats_t stats_of(gc_heap_t *heap)
{
    gc_stats_t s;
    memset(&s, 0xCD, sizeof s);
    gc_get_stats(heap, &s);
    return s;
}

#define EXPECT_VERIFY(heap) \
    do { \
        unsigned long r_ = rec_count(); \
        size_t v_ = gc_verify(heap); \
        if (v_ != 0) { \
            char w_[256]; const void *p_; \
            rec_last(w_, sizeof w_, &p_); \
            T_FAIL("gc_verify found %zu problem(s) (last report: \"%s\" ptr %p)", v_, w_, p_); \
        } \
        EXPECT_NO_REPORTS(r_); \
    } while (0)

MT_UNUSED static gc_heap_t *heap_new(size_t initial, size_t max, int compaction)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.initial_heap = initial;
    o.max_heap = max;
    o.compaction = compaction;
    gc_heap_t *h = gc_heap_create(&o);
    if (!h) {
        print_error("gc_heap_create(initial %zu, max %zu, compaction %d) returned NULL\n",
                    initial, max, compaction);
        fail();
    }
    return h;
}

/* ------------------------------------------------------------------------ */
/* Test objects: NSLOTS reference slots, a magic word, an id and `nwords`     */
/* payload words derived from the id. Finalizers record the id.              */

#define OBJ_MAGIC UINT64_C(0x6f626a2d6d756c63)
#define NSLOTS 4
#define MAX_IDS 4096

typedef struct tobj {
    void *slot[NSLOTS];
    uint64_t magic;
    uint64_t id;
    uint64_t nwords;
    uint64_t words[];
} tobj_t;

MT_UNUSED static uint64_t payload_word(uint64_t id, uint64_t i) { return mix64(id * 0x100000001b3u + i); }

static atomic_uint g_fin[MAX_IDS];     /* finalizer runs per id */
static atomic_ulong g_fin_total;        /* all finalizer runs of tobj types */

MT_UNUSED static void fin_reset(void)
{
    for (size_t i = 0; i < MAX_IDS; i++) atomic_store(&g_fin[i], 0);
    atomic_store(&g_fin_total, 0);
}

MT_UNUSED static unsigned fin_of(uint64_t id) { return id < MAX_IDS ? atomic_load(&g_fin[id]) : 0; }

/* NULL when o holds object `id` intact, else a description. */
MT_UNUSED static const char *obj_problem(const tobj_t *o, uint64_t id)
{
    if (o == NULL) return "NULL";
    if (((uintptr_t)o & 7u) != 0) return "misaligned";
    if (o->magic != OBJ_MAGIC) return "magic word damaged";
    if (o->id != id) return "wrong id";
    if (o->nwords > ((uint64_t)1 << 28)) return "payload length damaged";
    for (uint64_t i = 0; i < o->nwords; i++)
        if (o->words[i] != payload_word(id, i)) return "payload damaged";
    return NULL;
}

#define EXPECT_OBJ(p, want_id) \
    do { \
        const tobj_t *o_ = (const tobj_t *)(p); \
        uint64_t w_ = (uint64_t)(want_id); \
        const char *why_ = obj_problem(o_, w_); \
        if (why_) \
            T_FAIL("object %s = %p should be id %" PRIu64 ": %s (id there %" PRIu64 ")", #p, \
                   (const void *)o_, w_, why_, o_ && ((uintptr_t)o_ & 7u) == 0 ? o_->id : 0); \
    } while (0)

#define EXPECT_FIN(id, n) \
    do { \
        uint64_t i_ = (uint64_t)(id); \
        unsigned got_ = fin_of(i_), want_ = (unsigned)(n); \
        if (got_ != want_) \
            T_FAIL("object id %" PRIu64 " (%s) finalized %u time(s), expected %u", i_, #id, got_, \
                   want_); \
    } while (0)

MT_UNUSED static void trace_tobj(void *obj, gc_tracer_t *tracer)
{
    tobj_t *o = obj;
    gc_trace_range(tracer, o->slot, NSLOTS);
}

MT_UNUSED static void fin_tobj(void *obj)
{
    tobj_t *o = obj;
    const char *why = obj_problem(o, o->id);
    if (why) AFAIL("finalizer got a damaged object %p: %s", obj, why);
    if (o->id < MAX_IDS) {
        if (atomic_fetch_add(&g_fin[o->id], 1) != 0)
            AFAIL("object id %" PRIu64 " finalized twice", o->id);
    }
    atomic_fetch_add(&g_fin_total, 1);
}

MT_UNUSED static const gc_type_t T_PLAIN = { "test.plain", trace_tobj, NULL };
MT_UNUSED static const gc_type_t T_FIN   = { "test.fin", trace_tobj, fin_tobj };
MT_UNUSED static const gc_type_t T_RAW   = { "test.raw", NULL, NULL };

MT_UNUSED static size_t tobj_size(size_t nwords) { return sizeof(tobj_t) + nwords * sizeof(uint64_t); }

/* A GC point: the caller must have rooted whatever it still needs. */
MT_UNUSED static tobj_t *mk(gc_thread_t *t, const gc_type_t *type, uint64_t id, size_t nwords)
{
    tobj_t *o = gc_alloc(t, type, tobj_size(nwords));
    if (!o) {
        print_error("gc_alloc(%s, %zu) returned NULL\n", type->name, tobj_size(nwords));
        fail();
    }
    for (size_t i = 0; i < NSLOTS; i++)
        if (o->slot[i] != NULL) {
            print_error("gc_alloc returned an object whose slot %zu is %p, not zeroed\n", i,
                        o->slot[i]);
            fail();
        }
    o->magic = OBJ_MAGIC;
    o->id = id;
    o->nwords = nwords;
    for (size_t i = 0; i < nwords; i++) o->words[i] = payload_word(id, i);
    return o;
}

MT_UNUSED static void set_slot(gc_thread_t *t, void *obj, size_t k, void *value)
{
    tobj_t *o = obj;
    gc_write(t, o, &o->slot[k], value);
}

MT_UNUSED static void *slot_of(void *obj, size_t k) { return ((tobj_t *)obj)->slot[k]; }

/* Allocates a new object (a GC point) and only then stores it into slot k of
 * the object held in the rooted slot *parent. */
MT_UNUSED static void *mk_child(gc_thread_t *t, void **parent, size_t k, const gc_type_t *type, uint64_t id,
                      size_t nwords)
{
    void *n = mk(t, type, id, nwords);
    set_slot(t, *parent, k, n);
    return n;
}

MT_UNUSED static const int k_modes[] = { GC_COMPACT_AUTO, GC_COMPACT_ALWAYS, GC_COMPACT_NEVER };
MT_UNUSED static const char *const k_mode_names[] = { "auto", "always", "never" };
#define N_MODES (sizeof k_modes / sizeof k_modes[0])

/* Exactly one report since `before`, its text starting with `prefix`. */
#define EXPECT_ONE_REPORT(before, prefix) \
    do { \
        unsigned long n_ = rec_count() - (before); \
        char w_[256]; const void *p_; \
        rec_last(w_, sizeof w_, &p_); \
        if (n_ != 1) \
            T_FAIL("expected exactly one error-handler call, got %lu (last: \"%s\" ptr %p)", n_, \
                   w_, p_); \
        else if (strncmp(w_, (prefix), strlen(prefix)) != 0) \
            T_FAIL("report \"%s\" does not start with \"%s\"", w_, (prefix)); \
    } while (0)

static void expect_last_ptr(const void *want)
{
    char w[256];
    const void *got;
    rec_last(w, sizeof w, &got);
    if (got != want) T_FAIL("report \"%s\" names ptr %p, the caller passed %p", w, got, want);
}

static void expect_heap_within(gc_heap_t *h, size_t max, const char *when, size_t i)
{
    gc_stats_t s = stats_of(h);
    if (s.heap_bytes > max)
        T_FAIL("heap_bytes %zu > max_heap %zu (%s, step %zu)", s.heap_bytes, max, when, i);
}

/* Fills a max_heap-limited heap with rooted objects of `size` bytes until
 * gc_alloc returns NULL; returns how many were allocated. */
static size_t fill_until_null(gc_heap_t *h, gc_thread_t *t, void **slots, size_t nslots,
                              size_t size, size_t max, uint64_t id0, int *hit_null)
{
    size_t got = 0;
    *hit_null = 0;
    for (size_t i = 0; i < nslots; i++) {
        if (slots[i]) continue;
        size_t nw = (size - sizeof(tobj_t)) / 8;
        tobj_t *o = gc_alloc(t, &T_PLAIN, size);
        expect_heap_within(h, max, "filling", got);
        if (!o) {
            *hit_null = 1;
            break;
        }
        o->magic = OBJ_MAGIC;
        o->id = id0 + i;
        o->nwords = nw;
        for (size_t k = 0; k < nw; k++) o->words[k] = payload_word(o->id, k);
        slots[i] = o;
        got++;
    }
    return got;
}

static void max_heap_case(size_t max, size_t size, int compaction)
{
    fin_reset();
    unsigned long r0 = rec_count();
    gc_heap_t *h = heap_new(max / 8, max, compaction);
    gc_thread_t *t = gc_thread_attach(h);
    const size_t nslots = max / size + 16;
    void **slots = calloc(nslots, sizeof *slots);
    EXPECT_NONNULL(slots);
    gc_root_add_range(h, slots, nslots);

    int hit = 0;
    size_t n1 = fill_until_null(h, t, slots, nslots, size, max, 0, &hit);
    if (!hit)
        T_FAIL("max_heap %zu: %zu objects of %zu bytes (%zu bytes) allocated without a NULL", max,
               n1, size, n1 * size);
    EXPECT_LE(n1 * size, max);
    EXPECT_GE(n1 * size, max / 4);     /* the limit is not absurdly conservative */
    EXPECT_NO_REPORTS(r0);             /* running out is not misuse */
    gc_stats_t s = stats_of(h);
    print_message("  max_heap %zu, %zu-byte objects: %zu fit (%.0f%%), heap_bytes %zu, %ju collections\n",
                  max, size, n1, 100.0 * (double)(n1 * size) / (double)max, s.heap_bytes,
                  (uintmax_t)s.collections);
    EXPECT_GE(s.collections, 1);       /* a full collection before giving up */

    /* Still NULL on a second try, still no report, heap still sound. */
    void *again = gc_alloc(t, &T_PLAIN, size);
    EXPECT_NULL(again);
    EXPECT_NO_REPORTS(r0);
    EXPECT_VERIFY(h);
    /* A request that never fits is NULL too. */
    EXPECT_NULL(gc_alloc(t, &T_RAW, max + 1));
    EXPECT_NO_REPORTS(r0);

    /* Every kept object intact. */
    for (size_t i = 0; i < nslots; i++)
        if (slots[i]) EXPECT_OBJ(slots[i], i);

    /* Drop every other one: allocation works again. */
    size_t dropped = 0;
    for (size_t i = 0; i < nslots; i += 2)
        if (slots[i]) {
            slots[i] = NULL;
            dropped++;
        }
    size_t n2 = fill_until_null(h, t, slots, nslots, size, max, 1000000, &hit);
    print_message("  after dropping %zu: %zu more fit\n", dropped, n2);
    if (n2 == 0) T_FAIL("nothing could be allocated after dropping %zu of %zu objects", dropped, n1);
    EXPECT_GE(n2, dropped / 2);
    EXPECT_NO_REPORTS(r0);
    for (size_t i = 0; i < nslots; i++)
        if (slots[i]) EXPECT_OBJ(slots[i], (i < n1 && i % 2) ? i : 1000000 + i);
    /* Fresh objects are zeroed even in reused memory. */
    for (size_t i = 0; i < nslots; i++) slots[i] = NULL;
    gc_collect(t);
    for (int k = 0; k < 8; k++) {
        unsigned char *p = gc_alloc(t, &T_RAW, size);
        EXPECT_NONNULL(p);
        p = launder(p);
        for (size_t b = 0; b < size; b++)
            if (p[b]) T_FAIL("reused object %p not zeroed at byte %zu", (void *)p, b);
    }
    expect_heap_within(h, max, "end", 0);
    gc_root_remove(h, slots);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    free(slots);
    EXPECT_NO_REPORTS(r0);
}

static void test_gc_max_heap_small_objects(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        max_heap_case(scaled(16, 8) * MiB, 1 * KiB, k_modes[m]);
        max_heap_case(8 * MiB, 96, k_modes[m]);
    }
}

static void test_gc_max_heap_large_objects(void **state)
{
    (void)state;
    TEST_START();
    for (size_t m = 0; m < N_MODES; m++) {
        print_message("  compaction %s\n", k_mode_names[m]);
        max_heap_case(16 * MiB, 300 * KiB, k_modes[m]);
        max_heap_case(32 * MiB, 1 * MiB + 8, k_modes[m]);
    }
}

/* Random sizes and random drops against a limit: heap_bytes never exceeds it,
 * a NULL comes only when a full collection cannot make room. */
static void test_gc_max_heap_random(void **state)
{
    (void)state;
    TEST_START();
    rng_t r = test_rng(__func__, 0);
    unsigned long r0 = rec_count();
    const size_t max = 24 * MiB;
    gc_heap_t *h = heap_new(0, max, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    enum { N = 4096 };
    void **slots = calloc(N, sizeof *slots);
    size_t *sizes = calloc(N, sizeof *sizes);
    EXPECT_NONNULL(slots);
    EXPECT_NONNULL(sizes);
    gc_root_add_range(h, slots, N);
    size_t nulls = 0, live = 0;
    const size_t steps = scaled(40000, 8000);
    for (size_t s = 0; s < steps; s++) {
        size_t i = (size_t)rng_below(&r, N);
        if (slots[i] && rng_below(&r, 3) == 0) {
            live -= sizes[i];
            slots[i] = NULL;
            continue;
        }
        size_t sz;
        switch (rng_below(&r, 8)) {
        case 0: sz = 64 * KiB + (size_t)rng_below(&r, 2 * MiB); break;
        case 1: sz = 8 * KiB + (size_t)rng_below(&r, 56 * KiB); break;
        default: sz = 16 + (size_t)rng_below(&r, 2000); break;
        }
        unsigned char *p = gc_alloc(t, &T_RAW, sz);
        expect_heap_within(h, max, "random", s);
        if (!p) {
            nulls++;
            /* Only legitimate when the live data plus the request is a good
             * part of the limit. */
            if (live + sz < max / 4)
                T_FAIL("gc_alloc(%zu) NULL with only %zu bytes live under max_heap %zu", sz, live,
                       max);
            continue;
        }
        if (slots[i]) live -= sizes[i];
        p[0] = (unsigned char)i;
        p[sz - 1] = (unsigned char)(i >> 8);
        slots[i] = p;
        sizes[i] = sz;
        live += sz;
    }
    for (size_t i = 0; i < N; i++)
        if (slots[i]) {
            const unsigned char *p = launder(slots[i]);
            if (p[0] != (unsigned char)i || p[sizes[i] - 1] != (unsigned char)(i >> 8))
                T_FAIL("object %zu (%zu bytes) damaged", i, sizes[i]);
        }
    gc_stats_t st = stats_of(h);
    print_message("  %zu steps, %zu NULLs, live %zu, heap_bytes %zu, %ju collections\n", steps, nulls,
                  live, st.heap_bytes, (uintmax_t)st.collections);
    EXPECT_NO_REPORTS(r0);
    gc_root_remove(h, slots);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
    free(slots);
    free(sizes);
    EXPECT_NO_REPORTS(r0);
}

/* Dead finalizable objects are kept for their finalizers for one collection;
 * after a few explicit collections their memory is available again. */
static void test_gc_max_heap_finalizable_garbage(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    unsigned long r0 = rec_count();
    const size_t max = 8 * MiB, size = 1 * KiB;
    gc_heap_t *h = heap_new(0, max, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    const size_t nslots = max / size + 16;
    void **slots = calloc(nslots, sizeof *slots);
    EXPECT_NONNULL(slots);
    gc_root_add_range(h, slots, nslots);
    size_t n1 = 0;
    for (size_t i = 0; i < nslots; i++) {
        tobj_t *o = gc_alloc(t, &T_FIN, size);
        expect_heap_within(h, max, "filling", i);
        if (!o) break;
        o->magic = OBJ_MAGIC;
        o->id = i;
        o->nwords = 0;
        slots[i] = o;
        n1++;
    }
    EXPECT_LT(n1, nslots);
    EXPECT_NO_REPORTS(r0);
    memset(slots, 0, nslots * sizeof *slots);
    gc_collect(t);
    gc_collect(t);
    gc_collect(t);
    EXPECT_EQ(atomic_load(&g_fin_total), n1);
    size_t n2 = 0;
    for (size_t i = 0; i < nslots; i++) {
        void *o = gc_alloc(t, &T_PLAIN, size);
        expect_heap_within(h, max, "refilling", i);
        if (!o) break;
        slots[i] = o;
        n2++;
    }
    print_message("  %zu finalizable fit, then %zu plain after they died\n", n1, n2);
    EXPECT_GE(n2 + n2 / 8, n1);        /* about as many as before */
    EXPECT_NO_REPORTS(r0);
    gc_root_remove(h, slots);
    EXPECT_VERIFY(h);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
    free(slots);
    EXPECT_NO_REPORTS(r0);
}

/* Requests that can never fit: NULL, not misuse, heap unharmed. */
static void test_gc_alloc_impossible_sizes(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    for (int limited = 0; limited < 2; limited++) {
        gc_heap_t *h = heap_new(0, limited ? 4 * MiB : 0, GC_COMPACT_AUTO);
        gc_thread_t *t = gc_thread_attach(h);
        void *keep = NULL;
        gc_root_add(h, &keep);
        keep = mk(t, &T_PLAIN, 7, 9);
        const size_t sizes[] = { SIZE_MAX,          SIZE_MAX - 7,      SIZE_MAX - 8,
                                 SIZE_MAX - 4096,   SIZE_MAX / 2,      SIZE_MAX / 2 + 1,
                                 (size_t)1 << 62,   (size_t)1 << 56,   (size_t)1 << 52,
                                 (size_t)1 << 48 };
        size_t bad = 0;
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            void *p = gc_alloc(t, &T_RAW, sizes[k]);   /* never written to */
            if (p) {
                print_error("  gc_alloc(%zu = %#zx) = %p (gc_size_of %zu), expected NULL "
                            "(max_heap %s)\n", sizes[k], sizes[k], p, gc_size_of(p),
                            limited ? "4 MiB" : "none");
                bad++;
            }
        }
        if (bad) T_FAIL("%zu impossible request(s) were granted", bad);
        EXPECT_NO_REPORTS(r0);
        if (limited) {
            EXPECT_NULL(gc_alloc(t, &T_RAW, 4 * MiB + 1));
            EXPECT_NULL(gc_alloc(t, &T_RAW, 64 * MiB));
            EXPECT_NO_REPORTS(r0);
            expect_heap_within(h, 4 * MiB, "after impossible requests", 0);
            /* Half the limit in one object still works. */
            void *half = gc_alloc(t, &T_RAW, 1 * MiB);
            EXPECT_NONNULL(half);
        }
        EXPECT_OBJ(keep, 7);
        void *small = gc_alloc(t, &T_RAW, 100);
        EXPECT_NONNULL(small);
        gc_collect(t);
        EXPECT_OBJ(keep, 7);
        EXPECT_VERIFY(h);
        gc_root_remove(h, &keep);
        gc_thread_detach(t);
        gc_heap_destroy(h);
    }
    EXPECT_NO_REPORTS(r0);
}

/* ------------------------------------------------------------------------ */
/* Misuse                                                                    */

static void test_gc_alloc_misuse(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = NULL;
    gc_root_add(h, &keep);
    keep = mk(t, &T_FIN, 1, 4);

    unsigned long r0 = rec_count();
    void *p = gc_alloc(t, &T_PLAIN, 0);
    EXPECT_NULL(p);
    EXPECT_ONE_REPORT(r0, "gc_alloc");

    r0 = rec_count();
    p = gc_alloc(t, &T_RAW, 0);
    EXPECT_NULL(p);
    EXPECT_ONE_REPORT(r0, "gc_alloc");

    r0 = rec_count();
    p = gc_alloc(t, NULL, 64);
    EXPECT_NULL(p);
    EXPECT_ONE_REPORT(r0, "gc_alloc");

    r0 = rec_count();
    p = gc_alloc(t, NULL, 0);
    EXPECT_NULL(p);
    if (rec_count() - r0 < 1) T_FAIL("gc_alloc(NULL type, size 0) not reported");

    /* The heap is unharmed. */
    r0 = rec_count();
    void *q = gc_alloc(t, &T_RAW, 64);
    EXPECT_NONNULL(q);
    gc_collect(t);
    EXPECT_OBJ(keep, 1);
    EXPECT_FIN(1, 0);
    EXPECT_VERIFY(h);
    EXPECT_NO_REPORTS(r0);

    /* gc_pin of a pointer the heap does not own: reported, ignored. */
    _Alignas(16) uint64_t on_stack[4] = { 0 };
    uint64_t *on_malloc = malloc(64);
    EXPECT_NONNULL(on_malloc);
    r0 = rec_count();
    gc_pin(h, on_stack);
    EXPECT_ONE_REPORT(r0, "gc_pin");
    expect_last_ptr(on_stack);
    r0 = rec_count();
    gc_pin(h, on_malloc);
    EXPECT_ONE_REPORT(r0, "gc_pin");
    expect_last_ptr(on_malloc);
    r0 = rec_count();
    gc_collect(t);
    EXPECT_VERIFY(h);
    EXPECT_NO_REPORTS(r0);
    free(on_malloc);

    keep = NULL;
    gc_collect(t);
    EXPECT_FIN(1, 1);
    gc_root_remove(h, &keep);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

/* Other detectable misuse of roots, pins and weak references: each call is
 * reported once (its text naming the function) and otherwise ignored. */
static void test_gc_roots_pins_weak_misuse(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *keep = NULL;
    gc_root_add(h, &keep);
    keep = mk(t, &T_FIN, 1, 2);

    /* Unpinning an object that is not pinned. */
    unsigned long r0 = rec_count();
    gc_unpin(h, keep);
    EXPECT_ONE_REPORT(r0, "gc_unpin");
    expect_last_ptr(keep);
    /* Pinned once, unpinned twice: the second is reported. */
    gc_pin(h, keep);
    gc_unpin(h, keep);
    r0 = rec_count();
    gc_unpin(h, keep);
    EXPECT_ONE_REPORT(r0, "gc_unpin");

    /* Removing a root that was never added; a NULL slot; a slot inside a GC
     * object (its fields are traced, not registered). */
    void *never = NULL;
    r0 = rec_count();
    gc_root_remove(h, &never);
    EXPECT_ONE_REPORT(r0, "gc_root_remove");
    r0 = rec_count();
    gc_root_add(h, NULL);
    EXPECT_ONE_REPORT(r0, "gc_root_add");
    r0 = rec_count();
    gc_root_add(h, &((tobj_t *)keep)->slot[0]);
    EXPECT_ONE_REPORT(r0, "gc_root_add");

    /* A weak reference to something that is not a GC object of this heap;
     * gc_weak_get of something that is not a weak reference. */
    _Alignas(16) uint64_t local[2] = { 0, 0 };
    r0 = rec_count();
    void *w = gc_weak_new(t, local);
    EXPECT_NULL(w);
    EXPECT_ONE_REPORT(r0, "gc_weak_new");
    r0 = rec_count();
    void *got = gc_weak_get(keep);
    EXPECT_NULL(got);
    EXPECT_ONE_REPORT(r0, "gc_weak_get");

    /* The heap is unharmed. */
    r0 = rec_count();
    gc_collect(t);
    EXPECT_OBJ(keep, 1);
    EXPECT_FIN(1, 0);
    EXPECT_VERIFY(h);
    EXPECT_NO_REPORTS(r0);
    keep = NULL;
    gc_collect(t);
    EXPECT_FIN(1, 1);
    gc_root_remove(h, &keep);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
    EXPECT_NO_REPORTS(r0);
}

/* Popping more roots than were pushed, or "to" a depth above the current
 * one, is misuse: reported once and otherwise ignored (API.md: "reported
 * through the error handler and otherwise ignored: ... nothing is lost") —
 * the roots still pushed keep their objects alive. */
static void test_gc_pop_roots_misuse_ignored(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_heap_t *h = heap_new(0, 0, GC_COMPACT_AUTO);
    gc_thread_t *t = gc_thread_attach(h);
    void *a = NULL, *b = NULL;
    size_t d0 = gc_root_depth(t);
    gc_push_root(t, &a);
    gc_push_root(t, &b);
    a = mk(t, &T_FIN, 1, 0);
    b = mk(t, &T_FIN, 2, 3);

    unsigned long r0 = rec_count();
    gc_pop_roots_to(t, d0 + 5);
    EXPECT_ONE_REPORT(r0, "gc_pop_roots_to");
    EXPECT_EQ(gc_root_depth(t), d0 + 2);
    gc_collect(t);
    EXPECT_FIN(1, 0);
    EXPECT_FIN(2, 0);

    r0 = rec_count();
    gc_pop_roots(t, d0 + 3);
    EXPECT_ONE_REPORT(r0, "gc_pop_roots");
    if (gc_root_depth(t) != d0 + 2)
        T_FAIL("gc_pop_roots(%zu) with %zu pushed: depth is now %zu, expected the misuse to be "
               "ignored (depth %zu)", d0 + 3, d0 + 2, gc_root_depth(t), d0 + 2);
    gc_collect(t);
    EXPECT_FIN(1, 0);          /* still rooted: not finalized, not freed */
    EXPECT_FIN(2, 0);
    EXPECT_OBJ(a, 1);
    EXPECT_OBJ(b, 2);

    gc_pop_roots_to(t, d0);
    gc_collect(t);
    EXPECT_FIN(1, 1);
    EXPECT_FIN(2, 1);
    EXPECT_NO_ASYNC_FAILURES();
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    const char *e = getenv("MULCH_TEST_SEED");
    if (e && *e) g_seed = strtoull(e, NULL, 0);
    g_quick = env_flag("MULCH_TEST_QUICK") || MT_SANITIZED || MT_ON_VALGRIND();
    print_message("test_gc_limits: seed=0x%016" PRIx64 " (set MULCH_TEST_SEED to reproduce)%s\n",
                  g_seed, g_quick ? ", quick mode" : "");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_max_heap_small_objects),
        T(test_gc_max_heap_large_objects),
        T(test_gc_max_heap_random),
        T(test_gc_max_heap_finalizable_garbage),
        T(test_gc_alloc_impossible_sizes),
        T(test_gc_alloc_misuse),
        T(test_gc_roots_pins_weak_misuse),
        T(test_gc_pop_roots_misuse_ignored),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
