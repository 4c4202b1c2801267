/* pool_fuzz.c — libFuzzer target for the block pool (<mulch/pool.h>).
 *
 * The input bytes are a program of pool operations over three pools with
 * different block sizes (one in secure mode, one with leak tracking, one
 * with a limit): alloc, alloc_at (the leak report names its site),
 * calloc, realloc, aligned and huge allocations, frees, remote frees by a
 * helper thread, trim, stats, usable sizes and injected misuse (double free,
 * interior, foreign and other-pool pointers, bad alignment). A model keeps
 * every live cell: its pool, requested size and id.
 *
 * Invariants checked: every live cell keeps the byte pattern derived from
 * its id (checked before each free/realloc, after trim and at the end: a
 * write into the wrong cell or a cell handed out twice breaks it); cells
 * are aligned and no smaller than asked; when the pool is quiescent its
 * stats (live allocations, bytes in use = sum of usable sizes) and leak
 * report agree with the model; each injected misuse produces exactly one
 * report starting with the called function's name and changes nothing
 * (stats, other cells); valid operations produce no report; only the
 * limited pool may answer NULL (out of memory). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#include <mulch/pool.h>

#include "fuzz_support.h"

#define N_POOLS 3
#define N_CELLS 64
#define LIMITED_POOL 2
#define TRACKING_POOL 1 /* leak tracking: sites recorded */
/* Only this many bytes at each end of a cell carry the pattern: big cells
 * would otherwise dominate the run time. */
#define PATTERN_SPAN 1024

typedef struct cell {
    uint8_t *p;         /* NULL: the slot is empty */
    size_t size;        /* requested */
    uint64_t id;
    int pool;
    /* pool_alloc_at's site (line 0: none, or not the cell's own any more) */
    const char *site_file;
    int site_line;
} cell_t;

typedef struct remote_job {
    pool_t *pool;
    uint8_t *p;
    size_t size;
    uint64_t id;
} remote_job_t;

typedef struct run {
    fz_input_t in;
    pool_t *pools[N_POOLS];
    cell_t cells[N_CELLS];
    uint64_t next_id;
    size_t expected_reports;    /* reports the program asked for so far */
    fz_worker_t worker;
} run_t;

static FILE *g_devnull;

/* ------------------------------------------------------------------------ */
/* Patterns                                                                  */

/* The pattern covers [0, min(size, SPAN)) and the last SPAN bytes. */
FZ_NO_COVERAGE static void pattern_fill(uint8_t *p, size_t size, uint64_t id)
{
    if (size <= 2 * PATTERN_SPAN) {
        fz_pattern_fill(p, id, 0, size);
    } else {
        fz_pattern_fill(p, id, 0, PATTERN_SPAN);
        fz_pattern_fill(p, id, size - PATTERN_SPAN, size);
    }
}

FZ_NO_COVERAGE static size_t check_range(const uint8_t *p, uint64_t id, size_t from, size_t to)
{
    return fz_pattern_check(p, id, from, to);
}

FZ_NO_COVERAGE static size_t pattern_check(const uint8_t *p, size_t size, uint64_t id)
{
    if (size <= 2 * PATTERN_SPAN) return check_range(p, id, 0, size);
    size_t bad = check_range(p, id, 0, PATTERN_SPAN);
    return bad != SIZE_MAX ? bad : check_range(p, id, size - PATTERN_SPAN, size);
}

static void cell_verify(run_t *r, const cell_t *c, const char *when)
{
    size_t bad = pattern_check(c->p, c->size, c->id);
    FZ_CHECK(&r->in, bad == SIZE_MAX,
             "%s: cell id %llu (%p, %zu bytes, pool %d) damaged at offset %zu",
             when, (unsigned long long)c->id, (void *)c->p, c->size, c->pool, bad);
}

static void verify_all(run_t *r, const char *when)
{
    for (size_t i = 0; i < N_CELLS; i++)
        if (r->cells[i].p) cell_verify(r, &r->cells[i], when);
}

/* ------------------------------------------------------------------------ */
/* Choices                                                                   */

/* Mostly small sizes, some medium, a few large (own mapping) ones. */
static size_t pick_size(fz_input_t *in)
{
    uint8_t kind = fz_u8(in);
    switch (kind >> 6) {
    case 0:  return fz_u8(in);                                  /* 0..255 */
    case 1:  return 256 + fz_u16(in) % (8 * 1024);              /* medium */
    case 2:  return fz_u16(in) % (64 * 1024) + 1;               /* up to a block */
    default: return 64 * 1024 + (size_t)fz_u16(in) * 16;        /* 64 KiB..1 MiB */
    }
}

static cell_t *pick_cell(run_t *r) { return &r->cells[fz_below(&r->in, N_CELLS)]; }

/* A live cell, looking forward from a chosen slot; NULL when none is live. */
static cell_t *pick_live(run_t *r)
{
    size_t start = fz_below(&r->in, N_CELLS);
    for (size_t k = 0; k < N_CELLS; k++) {
        cell_t *c = &r->cells[(start + k) % N_CELLS];
        if (c->p) return c;
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Valid operations                                                          */

static void expect_no_new_reports(run_t *r, const char *call)
{
    fz_expect_reports(&r->in, r->expected_reports, 0, NULL, call);
}

/* A fresh allocation: aligned, big enough, recorded and filled. */
static void cell_take(run_t *r, cell_t *c, int pool, void *p, size_t size, size_t align,
                      const char *call)
{
    FZ_CHECK(&r->in, ((uintptr_t)p & (align - 1)) == 0, "%s(%zu): %p is not %zu-aligned",
             call, size, p, align);
    size_t usable = pool_usable_size(r->pools[pool], p);
    FZ_CHECK(&r->in, usable >= size && usable > 0, "%s(%zu): usable size %zu", call, size, usable);
    c->p = p;
    c->size = size;
    c->pool = pool;
    c->id = r->next_id++;
    c->site_file = NULL;
    c->site_line = 0;
    pattern_fill(c->p, c->size, c->id);
}

static void null_result(run_t *r, int pool, const char *call, size_t size)
{
    FZ_CHECK(&r->in, pool == LIMITED_POOL, "%s(%zu) returned NULL in an unlimited pool",
             call, size);
    expect_no_new_reports(r, call);
}

static void cell_free(run_t *r, cell_t *c)
{
    cell_verify(r, c, "before pool_free");
    pool_free(r->pools[c->pool], c->p);
    c->p = NULL;
}

static void op_alloc(run_t *r)
{
    cell_t *c = pick_cell(r);
    int pool = (int)fz_below(&r->in, N_POOLS);
    size_t size = pick_size(&r->in);
    if (c->p) cell_free(r, c);
    void *p = pool_alloc(r->pools[pool], size);
    if (p == NULL) { null_result(r, pool, "pool_alloc", size); return; }
    cell_take(r, c, pool, p, size, 16, "pool_alloc");
}

/* pool_alloc_at: a site of static storage (NULL too) and any line (<= 0
 * is recorded as 1); the tracking pool's leak report names it (run_end). */
static void op_alloc_at(run_t *r)
{
    static const char *const files[] = { "site_a.c", "dir/site_b.c", NULL };
    cell_t *c = pick_cell(r);
    int pool = (int)fz_below(&r->in, N_POOLS);
    size_t size = pick_size(&r->in);
    const char *file = files[fz_below(&r->in, 3)];
    int line = (int)fz_u16(&r->in) - 8;
    if (c->p) cell_free(r, c);
    void *p = pool_alloc_at(r->pools[pool], size, file, line);
    if (p == NULL) { null_result(r, pool, "pool_alloc_at", size); return; }
    cell_take(r, c, pool, p, size, 16, "pool_alloc_at");
    c->site_file = file ? file : "<no file>";
    c->site_line = line > 0 ? line : 1;
}

static void op_calloc(run_t *r)
{
    cell_t *c = pick_cell(r);
    int pool = (int)fz_below(&r->in, N_POOLS);
    size_t n = fz_u8(&r->in), each = fz_u8(&r->in) + 1u;
    if (c->p) cell_free(r, c);
    if (n == 255) {                     /* n * size overflows: NULL, not misuse */
        void *p = pool_calloc(r->pools[pool], SIZE_MAX / (each + 1) + 1, each + 1);
        FZ_CHECK(&r->in, p == NULL, "pool_calloc with an overflowing product gave %p", p);
        expect_no_new_reports(r, "pool_calloc(overflow)");
        return;
    }
    uint8_t *p = pool_calloc(r->pools[pool], n, each);
    if (p == NULL) { null_result(r, pool, "pool_calloc", n * each); return; }
    size_t dirty = fz_first_nonzero(p, n * each);
    FZ_CHECK(&r->in, dirty == SIZE_MAX, "pool_calloc(%zu, %zu): byte %zu is not 0", n, each, dirty);
    cell_take(r, c, pool, p, n * each, 16, "pool_calloc");
}

static void op_realloc(run_t *r)
{
    cell_t *c = pick_live(r);
    size_t size = pick_size(&r->in);
    if (c == NULL) return;
    cell_verify(r, c, "before pool_realloc");
    if (size == 0) size = 1;            /* size 0 frees: op_realloc_edges */
    uint8_t *p = pool_realloc(r->pools[c->pool], c->p, size);
    if (p == NULL) {                    /* p untouched */
        null_result(r, c->pool, "pool_realloc", size);
        cell_verify(r, c, "after a failed pool_realloc");
        return;
    }
    /* The pattern is positional, so the kept prefix still matches the id
     * where the old cell carried it (its head, for a big cell). */
    size_t kept = c->size < size ? c->size : size;
    if (c->size > 2 * PATTERN_SPAN && kept > PATTERN_SPAN) kept = PATTERN_SPAN;
    size_t bad = check_range(p, c->id, 0, kept);
    FZ_CHECK(&r->in, bad == SIZE_MAX, "pool_realloc(%zu -> %zu) lost byte %zu of cell id %llu",
             c->size, size, bad, (unsigned long long)c->id);
    c->p = NULL;
    int pool = c->pool;
    cell_take(r, c, pool, p, size, 16, "pool_realloc");
}

/* realloc(NULL, n) allocates; realloc(p, 0) frees and gives NULL. */
static void op_realloc_edges(run_t *r)
{
    cell_t *c = pick_cell(r);
    int pool = (int)fz_below(&r->in, N_POOLS);
    size_t size = pick_size(&r->in);
    if (c->p) {
        cell_verify(r, c, "before pool_realloc(p, 0)");
        void *q = pool_realloc(r->pools[c->pool], c->p, 0);
        FZ_CHECK(&r->in, q == NULL, "pool_realloc(p, 0) returned %p", q);
        c->p = NULL;
        return;
    }
    void *p = pool_realloc(r->pools[pool], NULL, size);
    if (p == NULL) { null_result(r, pool, "pool_realloc(NULL)", size); return; }
    cell_take(r, c, pool, p, size, 16, "pool_realloc(NULL)");
}

static void op_aligned(run_t *r)
{
    cell_t *c = pick_cell(r);
    int pool = (int)fz_below(&r->in, N_POOLS);
    size_t align = (size_t)1 << fz_below(&r->in, 23);     /* 1 B .. 4 MiB */
    size_t size = pick_size(&r->in);
    if (c->p) cell_free(r, c);
    void *p = pool_alloc_aligned(r->pools[pool], size, align);
    if (p == NULL) { null_result(r, pool, "pool_alloc_aligned", size); return; }
    cell_take(r, c, pool, p, size, align < 16 ? 16 : align, "pool_alloc_aligned");
}

/* Sizes well above the largest class: each gets its own mapping. */
static void op_huge(run_t *r)
{
    cell_t *c = pick_cell(r);
    int pool = (int)fz_below(&r->in, N_POOLS);
    size_t size = 128 * 1024 + (size_t)fz_u8(&r->in) * 12 * 1024 + fz_u8(&r->in);
    if (c->p) cell_free(r, c);
    void *p = pool_alloc(r->pools[pool], size);
    if (p == NULL) { null_result(r, pool, "pool_alloc(huge)", size); return; }
    cell_take(r, c, pool, p, size, 16, "pool_alloc(huge)");
}

static void op_free(run_t *r)
{
    cell_t *c = pick_live(r);
    if (c) cell_free(r, c);
    else pool_free(r->pools[fz_below(&r->in, N_POOLS)], NULL);     /* no-op */
}

static void remote_free_job(void *arg, void *ctx)
{
    remote_job_t *job = arg;
    (void)ctx;
    /* The cell's bytes, written by the main thread, are visible here too. */
    size_t bad = pattern_check(job->p, job->size, job->id);
    FZ_CHECK(NULL, bad == SIZE_MAX, "remote free: cell id %llu damaged at offset %zu",
             (unsigned long long)job->id, bad);
    pool_free(job->pool, job->p);
    free(job);
}

/* The helper thread frees the cell while this thread goes on. */
static void op_remote_free(run_t *r)
{
    cell_t *c = pick_live(r);
    if (c == NULL) return;
    cell_verify(r, c, "before a remote free");
    remote_job_t *job = malloc(sizeof *job);
    if (job == NULL) abort();
    *job = (remote_job_t){ r->pools[c->pool], c->p, c->size, c->id };
    c->p = NULL;
    fz_worker_post(&r->worker, remote_free_job, NULL, job);
}

static void op_trim(run_t *r)
{
    int pool = (int)fz_below(&r->in, N_POOLS);
    (void)pool_trim(r->pools[pool]);
    expect_no_new_reports(r, "pool_trim");
    verify_all(r, "after pool_trim");
}

/* Quiescent (helper synced): stats agree with the model exactly. */
static void op_stats(run_t *r)
{
    fz_worker_sync(&r->worker);
    int pool = (int)fz_below(&r->in, N_POOLS);
    size_t live = 0, in_use = 0;
    for (size_t i = 0; i < N_CELLS; i++) {
        const cell_t *c = &r->cells[i];
        if (c->p && c->pool == pool) {
            live++;
            in_use += pool_usable_size(r->pools[pool], c->p);
        }
    }
    pool_stats_t s;
    pool_get_stats(r->pools[pool], &s);
    FZ_CHECK(&r->in, s.live_allocations == live, "pool %d: stats say %zu live, model %zu",
             pool, s.live_allocations, live);
    FZ_CHECK(&r->in, s.bytes_in_use == in_use, "pool %d: stats say %zu bytes in use, model %zu",
             pool, s.bytes_in_use, in_use);
    FZ_CHECK(&r->in, s.allocs - s.frees == live, "pool %d: allocs %llu - frees %llu != %zu live",
             pool, (unsigned long long)s.allocs, (unsigned long long)s.frees, live);
    FZ_CHECK(&r->in, s.bytes_reserved <= s.peak_reserved && s.bytes_reserved <= s.bytes_mapped,
             "pool %d: reserved %zu, peak %zu, mapped %zu", pool, s.bytes_reserved,
             s.peak_reserved, s.bytes_mapped);
    FZ_CHECK(&r->in, s.fragmentation >= 0.0 && s.fragmentation <= 1.0,
             "pool %d: fragmentation %f", pool, s.fragmentation);
    if (pool == LIMITED_POOL)
        FZ_CHECK(&r->in, s.bytes_reserved <= 8u * 1024 * 1024,
                 "limited pool reserves %zu bytes", s.bytes_reserved);
    expect_no_new_reports(r, "pool_get_stats");
}

/* ------------------------------------------------------------------------ */
/* Misuse                                                                    */

typedef struct snapshot {
    pool_stats_t s[N_POOLS];
} snapshot_t;

static void snapshot_take(run_t *r, snapshot_t *snap)
{
    for (int i = 0; i < N_POOLS; i++) pool_get_stats(r->pools[i], &snap->s[i]);
}

static void snapshot_expect_same(run_t *r, const snapshot_t *before, const char *call)
{
    snapshot_t after;
    snapshot_take(r, &after);
    for (int i = 0; i < N_POOLS; i++) {
        const pool_stats_t *a = &before->s[i], *b = &after.s[i];
        FZ_CHECK(&r->in, a->allocs == b->allocs && a->frees == b->frees &&
                 a->live_allocations == b->live_allocations && a->bytes_in_use == b->bytes_in_use,
                 "%s changed pool %d: allocs %llu->%llu frees %llu->%llu live %zu->%zu "
                 "in use %zu->%zu", call, i, (unsigned long long)a->allocs,
                 (unsigned long long)b->allocs, (unsigned long long)a->frees,
                 (unsigned long long)b->frees, a->live_allocations, b->live_allocations,
                 a->bytes_in_use, b->bytes_in_use);
    }
}

/* One misuse call: exactly one report with the function's prefix, nothing
 * changed in any pool, every live cell intact. */
#define MISUSE(r, call_expr, prefix, name)                                 \
    do {                                                                   \
        snapshot_t snap_;                                                  \
        snapshot_take((r), &snap_);                                        \
        size_t before_ = fz_report_count();                                \
        call_expr;                                                         \
        fz_expect_reports(&(r)->in, before_, 1, (prefix), (name));         \
        (r)->expected_reports++;                                           \
        snapshot_expect_same((r), &snap_, (name));                         \
    } while (0)

static int g_static_word[8];

static void op_misuse(run_t *r)
{
    fz_worker_sync(&r->worker);     /* stats must be exact around the call */
    uint8_t kind = fz_u8(&r->in) % 8;
    cell_t *c = pick_live(r);
    int other = (int)fz_below(&r->in, N_POOLS);
    size_t pick = fz_u8(&r->in);
    int stack_word[4] = { 0 };

    switch (kind) {
    case 0: {                       /* double free, right after the free */
        if (c == NULL) return;
        pool_t *pool = r->pools[c->pool];
        uint8_t *p = c->p;
        cell_free(r, c);
        MISUSE(r, pool_free(pool, p), "pool_free: ", "double pool_free");
        break;
    }
    case 1: case 2: {               /* interior pointer: free / realloc / usable size */
        if (c == NULL) return;
        pool_t *pool = r->pools[c->pool];
        size_t usable = pool_usable_size(pool, c->p);
        if (usable < 32) return;
        size_t off = pick & 1 ? 8 : 16 * (1 + pick % (usable / 16 - 1));
        uint8_t *inner = c->p + off;
        if (kind == 1) {
            MISUSE(r, pool_free(pool, inner), "pool_free: ", "pool_free(interior)");
        } else {
            void *q = NULL;
            size_t u = 1;
            if (pick & 2) {
                MISUSE(r, q = pool_realloc(pool, inner, 64), "pool_realloc: ",
                       "pool_realloc(interior)");
            } else {
                MISUSE(r, u = pool_usable_size(pool, inner), "pool_usable_size: ",
                       "pool_usable_size(interior)");
                u = u == 0;         /* must answer 0 */
            }
            FZ_CHECK(&r->in, q == NULL && u == 1, "misuse with an interior pointer answered");
        }
        cell_verify(r, c, "after an interior-pointer misuse");
        break;
    }
    case 3: {                       /* foreign pointers: stack, static, malloc */
        pool_t *pool = r->pools[other];
        void *foreign = pick % 3 == 0 ? (void *)stack_word
                      : pick % 3 == 1 ? (void *)&g_static_word[pick % 8] : malloc(48);
        if (foreign == NULL) abort();
        MISUSE(r, pool_free(pool, foreign), "pool_free: ", "pool_free(foreign)");
        if (pick % 3 == 2) free(foreign);
        break;
    }
    case 4: case 5: {               /* a live cell handed to another pool */
        if (c == NULL || other == c->pool) return;
        pool_t *wrong = r->pools[other];
        if (kind == 4) {
            MISUSE(r, pool_free(wrong, c->p), "pool_free: ", "pool_free(other pool)");
        } else {
            void *q = NULL;
            MISUSE(r, q = pool_realloc(wrong, c->p, 32), "pool_realloc: ",
                   "pool_realloc(other pool)");
            FZ_CHECK(&r->in, q == NULL, "pool_realloc into another pool gave %p", q);
        }
        cell_verify(r, c, "after an other-pool misuse");
        break;
    }
    case 6: {                       /* alignment that is not a power of two */
        size_t align = pick == 0 ? 0 : pick * 2 + 3;
        void *q = NULL;
        MISUSE(r, q = pool_alloc_aligned(r->pools[other], 32, align), "pool_alloc_aligned: ",
               "pool_alloc_aligned(bad alignment)");
        FZ_CHECK(&r->in, q == NULL, "pool_alloc_aligned(align %zu) gave %p", align, q);
        break;
    }
    default: {                      /* use of a pointer of a destroyed-then-freed cell */
        if (c == NULL) return;
        pool_t *pool = r->pools[c->pool];
        uint8_t *p = c->p;
        cell_free(r, c);
        size_t u = 1;
        MISUSE(r, u = pool_usable_size(pool, p), "pool_usable_size: ",
               "pool_usable_size(freed)");
        FZ_CHECK(&r->in, u == 0, "pool_usable_size of a freed cell is %zu", u);
        break;
    }
    }
}

#undef MISUSE

static void op_usable(run_t *r)
{
    cell_t *c = pick_live(r);
    if (c == NULL) {
        size_t u = pool_usable_size(r->pools[0], NULL);
        FZ_CHECK(&r->in, u == 0, "pool_usable_size(NULL) is %zu", u);
        return;
    }
    size_t u = pool_usable_size(r->pools[c->pool], c->p);
    FZ_CHECK(&r->in, u >= c->size, "usable size %zu < requested %zu", u, c->size);
    /* The whole usable size is writable: the tail past the request too. */
    if (u > c->size && u - c->size <= 4096) memset(c->p + c->size, 0xA5, u - c->size);
    pattern_fill(c->p, c->size, c->id);
    cell_verify(r, c, "after writing the usable tail");
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

/* The tracking pool's leak report lists each live pool_alloc_at cell
 * with its own site: "<address> size <n> allocated at <file>:<line>". */
static void check_sites(run_t *r)
{
    char *text = NULL;
    size_t length = 0;
    FILE *out = open_memstream(&text, &length);
    FZ_CHECK(&r->in, out != NULL, "open_memstream failed");
    (void)pool_report_leaks(r->pools[TRACKING_POOL], out);
    fclose(out);
    for (size_t i = 0; i < N_CELLS; i++) {
        const cell_t *c = &r->cells[i];
        if (c->p == NULL || c->pool != TRACKING_POOL || c->site_line == 0) continue;
        char line[160];
        snprintf(line, sizeof line, "%p size %zu allocated at %s:%d\n", (void *)c->p, c->size, c->site_file,
                 c->site_line);
        FZ_CHECK(&r->in, strstr(text, line) != NULL, "leak report lacks \"%.*s\"", (int)strlen(line) - 1, line);
    }
    free(text);
}

static void run_end(run_t *r)
{
    fz_worker_stop(&r->worker);
    verify_all(r, "at the end");
    for (int pool = 0; pool < N_POOLS; pool++) {
        size_t live = 0;
        for (size_t i = 0; i < N_CELLS; i++)
            live += r->cells[i].p && r->cells[i].pool == pool;
        size_t reported = pool_report_leaks(r->pools[pool], g_devnull);
        FZ_CHECK(&r->in, reported == live, "pool %d: leak report lists %zu, model %zu live",
                 pool, reported, live);
    }
    check_sites(r);
    expect_no_new_reports(r, "at the end");
    /* Half the cells are freed, the rest go with their pool. */
    for (size_t i = 0; i < N_CELLS; i += 2)
        if (r->cells[i].p) cell_free(r, &r->cells[i]);
    for (int pool = 0; pool < N_POOLS; pool++) pool_destroy(r->pools[pool]);
    expect_no_new_reports(r, "pool_destroy");
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fz_install_handler();
    g_devnull = fopen("/dev/null", "w");
    if (g_devnull == NULL) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static run_t r;
    memset(&r, 0, sizeof r);
    r.in = (fz_input_t){ data, size, 0, 0 };
    r.expected_reports = fz_report_count();

    static const pool_options_t opts[N_POOLS] = {
        { .block_size = 0, .secure = 1 },                          /* 64 KiB blocks, hardened */
        { .block_size = 16 * 1024, .track_leaks = 1 },             /* small blocks, sites */
        { .block_size = 256 * 1024, .limit = 8u * 1024 * 1024 },   /* big blocks, a limit */
    };
    for (int i = 0; i < N_POOLS; i++) {
        r.pools[i] = pool_create(&opts[i]);
        FZ_CHECK(&r.in, r.pools[i] != NULL, "pool_create(%d) failed", i);
    }

    while (fz_more(&r.in)) {
        r.in.step++;
        switch (fz_u8(&r.in) % 16) {
        case 0:  op_alloc(&r); break;
        case 1:  op_alloc_at(&r); break;
        case 2:  op_calloc(&r); break;
        case 3:  op_realloc(&r); break;
        case 4:  op_realloc_edges(&r); break;
        case 5:  op_aligned(&r); break;
        case 6:  op_huge(&r); break;
        case 7: case 8: op_free(&r); break;
        case 9:  op_remote_free(&r); break;
        case 10: fz_worker_sync(&r.worker); break;
        case 11: op_trim(&r); break;
        case 12: op_stats(&r); break;
        case 13: op_usable(&r); break;
        case 14: op_misuse(&r); break;
        default: verify_all(&r, "verify op"); break;
        }
        expect_no_new_reports(&r, "a valid operation");
    }
    run_end(&r);
    return 0;
}
