/* rc_fuzz.c — libFuzzer target for reference counting (<mulch/rc.h>).
 *
 * The input bytes are a program over rc objects in a per-input pool (a few
 * in the default pool): alloc with or without a destroy callback, retain,
 * release, links (an object owns a reference to another, released by its
 * destroy: chains and cycles), weak references (new, lock, free), releases
 * made by a helper thread, and injected misuse (use after release, foreign
 * and NULL pointers, a destroy that releases its own object).
 *
 * The model counts, per object, the references the program holds and the
 * links to it. Invariants checked whenever no helper work is in flight
 * ("settled": helper synced and the owner thread passed an rc call):
 *   - rc_count equals the model's count;
 *   - destroy ran exactly once for exactly the objects whose count reached
 *     0 (transitively through links), never while references remained, and
 *     saw its payload intact;
 *   - rc_weak_lock returns the object (one more reference) while it lives
 *     and NULL once it is destroyed;
 *   - each misuse is reported once with the function's name and changes
 *     nothing; valid calls report nothing;
 *   - at the end the pool holds exactly the objects kept by cycles (weak
 *     handles and control blocks are in the default pool). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#include <mulch/rc.h>

#include "fuzz_support.h"

#define N_OBJ 48
#define N_WEAK 8
#define N_CHILD 2
#define MAGIC 0x7263667au

typedef struct payload {
    uint32_t id, magic;
    void *child[N_CHILD];       /* references this object owns */
    uint8_t misbehave;          /* destroy releases or retains its own object */
    uint8_t bytes[];            /* pattern up to the allocated size */
} payload_t;

typedef struct mrc {
    payload_t *p;
    size_t size;
    long held;                  /* references the program holds */
    long count;                 /* held + links to it + pending remote ones */
    int16_t child[N_CHILD];     /* model of payload.child, -1 = none */
    uint8_t exists, destroyed, has_destroy, in_default_pool, had_weak, misbehave;
} mrc_t;

typedef struct run {
    fz_input_t in;
    pool_t *pool;
    mrc_t obj[N_OBJ];
    uint32_t nobj;
    rc_weak_t *weak[N_WEAK];
    int16_t weak_m[N_WEAK];     /* target id; -1 = no weak in this slot */
    size_t expected_reports;
    int unsettled;              /* helper work posted since the last settle */
    fz_worker_t worker;
} run_t;

static run_t g_run;
static atomic_uint g_destroyed[N_OBJ];
static atomic_size_t g_self_reports;   /* reports asked for by misbehaving destroys */

/* ------------------------------------------------------------------------ */
/* Objects                                                                   */

static size_t bytes_len(size_t size) { return size - sizeof(payload_t); }

FZ_NO_COVERAGE static void payload_check(const fz_input_t *in, const payload_t *p, uint32_t id, size_t size,
                          const char *when)
{
    FZ_CHECK(in, p->id == id && p->magic == MAGIC, "%s: object %u has id %u magic %#x",
             when, id, p->id, p->magic);
    size_t bad = fz_pattern_check(p->bytes, id, 0, bytes_len(size));
    FZ_CHECK(in, bad == SIZE_MAX, "%s: object %u byte %zu damaged", when, id, bad);
}

/* May run on the helper thread: touches only atomics and the object. */
static void rc_destroy(void *obj)
{
    payload_t *p = obj;
    FZ_CHECK(NULL, p->magic == MAGIC && p->id < N_OBJ, "destroy got a damaged object %p", obj);
    unsigned before = atomic_fetch_add(&g_destroyed[p->id], 1);
    FZ_CHECK(NULL, before == 0, "object %u destroyed twice", p->id);
    if (p->misbehave) {                 /* count is 0: both calls are misuse */
        size_t reports = fz_thread_report_count();     /* destroys may run on both threads */
        if (p->misbehave & 1) rc_release(obj);
        else (void)rc_retain(obj);
        FZ_CHECK(NULL, fz_thread_report_count() == reports + 1,
                 "%s of its own object in destroy: %zu reports",
                 p->misbehave & 1 ? "rc_release" : "rc_retain", fz_thread_report_count() - reports);
        atomic_fetch_add(&g_self_reports, 1);
    }
    for (int j = 0; j < N_CHILD; j++)
        if (p->child[j]) rc_release(p->child[j]);
}

/* The model's side of a count reaching 0: destroyed, links released. */
static void model_drop(run_t *r, int16_t id)
{
    int16_t stack[N_OBJ * N_CHILD + 1];
    size_t n = 0;
    stack[n++] = id;
    while (n > 0) {
        mrc_t *m = &r->obj[stack[--n]];
        FZ_CHECK(&r->in, m->count > 0, "model: dropping a reference of a count-0 object");
        if (--m->count > 0) continue;
        m->destroyed = 1;
        for (int j = 0; j < N_CHILD; j++)
            if (m->child[j] >= 0) stack[n++] = m->child[j];
    }
}

/* Destroy counts and rc_count against the model (settled only). */
FZ_NO_COVERAGE static void check_all(run_t *r, const char *when)
{
    for (uint32_t id = 0; id < r->nobj; id++) {
        const mrc_t *m = &r->obj[id];
        unsigned got = atomic_load(&g_destroyed[id]);
        unsigned want = m->destroyed && m->has_destroy;
        FZ_CHECK(&r->in, got == want, "%s: object %u destroyed %u times, model %u (count %ld)",
                 when, id, got, want, m->count);
        if (m->destroyed) continue;
        payload_check(&r->in, m->p, id, m->size, when);
        size_t c = rc_count(m->p);
        FZ_CHECK(&r->in, c == (size_t)m->count, "%s: rc_count(object %u) = %zu, model %ld",
                 when, id, c, m->count);
    }
}

static void expect_no_new_reports(run_t *r, const char *call)
{
    fz_expect_reports(&r->in, r->expected_reports + atomic_load(&g_self_reports), 0, NULL, call);
}

/* Waits for the helper, then lets the owner thread run destroys that were
 * handed to it (docs/rc.md: at its next rc_alloc or rc_release). */
static void settle(run_t *r)
{
    fz_worker_sync(&r->worker);
    rc_release(rc_alloc_in(r->pool, 1, NULL));
    r->unsettled = 0;
    check_all(r, "settled");
}

/* A held object (one the program has a reference to), or -1. */
static int16_t pick_held(run_t *r)
{
    size_t start = fz_u8(&r->in);
    for (uint32_t k = 0; k < r->nobj; k++) {
        int16_t id = (int16_t)((start + k) % r->nobj);
        if (r->obj[id].held > 0) return id;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                                */

static void op_alloc(run_t *r)
{
    uint8_t shape = fz_u8(&r->in);
    size_t size = sizeof(payload_t) + fz_u8(&r->in);
    if (r->nobj >= N_OBJ) return;
    int with_destroy = (shape & 3) != 0, in_default = (shape & 0x1c) == 0x1c;
    payload_t *p = in_default ? rc_alloc(size, with_destroy ? rc_destroy : NULL)
                              : rc_alloc_in(r->pool, size, with_destroy ? rc_destroy : NULL);
    FZ_CHECK(&r->in, p != NULL, "rc_alloc(%zu) returned NULL", size);
    FZ_CHECK(&r->in, ((uintptr_t)p & 15u) == 0, "rc_alloc: %p is not 16-byte aligned", (void *)p);
    size_t dirty = fz_first_nonzero(p, size);
    FZ_CHECK(&r->in, dirty == SIZE_MAX, "rc_alloc(%zu): byte %zu not zeroed", size, dirty);
    int16_t id = (int16_t)r->nobj++;
    mrc_t *m = &r->obj[id];
    *m = (mrc_t){ p, size, 1, 1, { -1, -1 }, 1, 0, (uint8_t)with_destroy, (uint8_t)in_default,
                  0, 0 };
    atomic_store(&g_destroyed[id], 0);
    p->id = (uint32_t)id;
    p->magic = MAGIC;
    fz_pattern_fill(p->bytes, (uint32_t)id, 0, bytes_len(size));
    /* Only settled misbehaving destroys: their report is checked in place. */
    if (with_destroy && (shape >> 5) == 7) {
        m->misbehave = 1;
        p->misbehave = (uint8_t)(1 + (shape & 1));
    }
}

static void op_retain(run_t *r)
{
    int16_t id = pick_held(r);
    if (id < 0) return;
    void *got = rc_retain(r->obj[id].p);
    FZ_CHECK(&r->in, got == r->obj[id].p, "rc_retain returned %p, not %p", got, (void *)r->obj[id].p);
    r->obj[id].held++;
    r->obj[id].count++;
}

static void op_release(run_t *r)
{
    int16_t id = pick_held(r);
    if (id < 0) return;
    mrc_t *m = &r->obj[id];
    if (!r->unsettled) payload_check(&r->in, m->p, (uint32_t)id, m->size, "before rc_release");
    m->held--;
    model_drop(r, id);
    rc_release(m->p);
    if (!r->unsettled) check_all(r, "after rc_release");
}

/* parent takes a reference of its own to child (released by its destroy).
 * Objects of the default pool stay out of links: a cycle there would
 * outlive the input. */
static void op_link(run_t *r)
{
    int16_t parent = pick_held(r), child = pick_held(r);
    size_t j = fz_u8(&r->in) % N_CHILD;
    if (parent < 0 || child < 0) return;
    mrc_t *pm = &r->obj[parent], *cm = &r->obj[child];
    if (!pm->has_destroy || pm->in_default_pool || cm->in_default_pool || pm->child[j] >= 0) return;
    pm->p->child[j] = rc_retain(cm->p);
    pm->child[j] = child;
    cm->count++;
}

static void op_weak_new(run_t *r)
{
    size_t w = fz_u8(&r->in) % N_WEAK;
    int16_t id = pick_held(r);
    if (id < 0) return;
    if (r->weak[w]) rc_weak_free(r->weak[w]);
    r->weak[w] = rc_weak_new(r->obj[id].p);
    FZ_CHECK(&r->in, r->weak[w] != NULL, "rc_weak_new of a live object returned NULL");
    r->weak_m[w] = id;
    r->obj[id].had_weak = 1;
}

static void op_weak_lock(run_t *r)
{
    size_t w = fz_u8(&r->in) % N_WEAK;
    int keep = fz_u8(&r->in) & 1;
    if (r->weak[w] == NULL) {
        FZ_CHECK(&r->in, rc_weak_lock(NULL) == NULL, "rc_weak_lock(NULL) is not NULL");
        return;
    }
    mrc_t *m = &r->obj[r->weak_m[w]];
    payload_t *got = rc_weak_lock(r->weak[w]);
    if (m->destroyed) {
        /* Unsettled, the helper may not have destroyed it yet: both answers
         * are right, and a reference it hands out must be given back. */
        if (r->unsettled && got != NULL) { rc_release(got); return; }
        FZ_CHECK(&r->in, got == NULL, "rc_weak_lock of destroyed object %d gave %p",
                 r->weak_m[w], (void *)got);
        return;
    }
    FZ_CHECK(&r->in, got == m->p, "rc_weak_lock of live object %d gave %p, not %p",
             r->weak_m[w], (void *)got, (void *)m->p);
    m->count++;
    m->held++;
    if (!keep) {
        m->held--;
        model_drop(r, r->weak_m[w]);
        rc_release(got);
    }
}

static void op_weak_free(run_t *r)
{
    size_t w = fz_u8(&r->in) % N_WEAK;
    rc_weak_free(r->weak[w]);       /* NULL: nothing */
    r->weak[w] = NULL;
    r->weak_m[w] = -1;
}

static void remote_release_job(void *arg, void *ctx)
{
    (void)ctx;
    rc_release(arg);
}

static void op_remote_release(run_t *r)
{
    int16_t id = pick_held(r);
    if (id < 0) return;
    mrc_t *m = &r->obj[id];
    m->held--;
    model_drop(r, id);
    r->unsettled = 1;
    fz_worker_post(&r->worker, remote_release_job, NULL, m->p);
}

/* One misuse call, settled: exactly one report with the function's prefix;
 * check_all afterwards shows nothing changed. */
#define MISUSE(r, call_expr, prefix, name)                                 \
    do {                                                                   \
        size_t before_ = fz_report_count();                                \
        call_expr;                                                         \
        fz_expect_reports(&(r)->in, before_, 1, (prefix), (name));         \
        (r)->expected_reports++;                                           \
    } while (0)

static void op_misuse(run_t *r)
{
    uint8_t kind = fz_u8(&r->in) % 6;
    int16_t id = pick_held(r);
    long local[8] = { 0 };
    size_t count = 1;
    void *got = (void *)1;
    settle(r);

    switch (kind) {
    case 0: case 1: case 2: {       /* use right after the last release */
        if (id < 0) return;
        mrc_t *m = &r->obj[id];
        if (m->count != 1 || m->misbehave) return;
        void *p = m->p;
        m->held--;
        model_drop(r, id);
        rc_release(p);
        check_all(r, "after the last release");
        if (kind == 0) {
            MISUSE(r, rc_release(p), "rc_release: ", "rc_release(destroyed)");
        } else if (kind == 1) {
            MISUSE(r, (void)rc_retain(p), "rc_retain: ", "rc_retain(destroyed)");
        } else {
            MISUSE(r, count = rc_count(p), "rc_count: ", "rc_count(destroyed)");
            FZ_CHECK(&r->in, count == 0, "rc_count(destroyed) = %zu", count);
        }
        break;
    }
    case 3:
        MISUSE(r, rc_release(local + 2), "rc_release: ", "rc_release(stack address)");
        break;
    case 4:
        MISUSE(r, got = rc_weak_new(local + 2), "rc_weak_new: ", "rc_weak_new(stack address)");
        FZ_CHECK(&r->in, got == NULL, "rc_weak_new(foreign) gave %p", got);
        break;
    default:
        MISUSE(r, (void)rc_retain(NULL), "rc_retain: ", "rc_retain(NULL)");
        break;
    }
    check_all(r, "after misuse");
}

#undef MISUSE

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

static void run_end(run_t *r)
{
    settle(r);
    /* Weak references first read what they must, then go. */
    for (size_t w = 0; w < N_WEAK; w++) {
        if (r->weak[w] == NULL) continue;
        mrc_t *m = &r->obj[r->weak_m[w]];
        void *got = rc_weak_lock(r->weak[w]);
        FZ_CHECK(&r->in, got == (m->destroyed ? NULL : (void *)m->p),
                 "at the end, rc_weak_lock of object %d gave %p", r->weak_m[w], got);
        if (got) rc_release(got);
        rc_weak_free(r->weak[w]);
    }
    for (uint32_t id = 0; id < r->nobj; id++) {
        mrc_t *m = &r->obj[id];
        while (m->held > 0) {
            m->held--;
            model_drop(r, (int16_t)id);
            rc_release(m->p);
        }
    }
    fz_worker_stop(&r->worker);
    rc_release(rc_alloc_in(r->pool, 1, NULL));
    check_all(r, "at the end");
    size_t kept = 0;
    for (uint32_t id = 0; id < r->nobj; id++) {
        const mrc_t *m = &r->obj[id];
        FZ_CHECK(&r->in, m->destroyed || !m->in_default_pool,
                 "object %u of the default pool outlived its references", id);
        if (!m->destroyed) kept++; /* weak control blocks: default pool */
    }
    pool_stats_t s;
    pool_get_stats(r->pool, &s);
    FZ_CHECK(&r->in, s.live_allocations == kept,
             "the pool holds %zu allocations, model %zu (objects in cycles)",
             s.live_allocations, kept);
    expect_no_new_reports(r, "at the end");
    pool_destroy(r->pool);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fz_install_handler();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_t *r = &g_run;
    memset(r, 0, sizeof *r);
    r->in = (fz_input_t){ data, size, 0, 0 };
    atomic_store(&g_self_reports, 0);
    r->expected_reports = fz_report_count();
    for (size_t w = 0; w < N_WEAK; w++) r->weak_m[w] = -1;
    r->pool = pool_create(NULL);
    FZ_CHECK(&r->in, r->pool != NULL, "pool_create failed");

    while (fz_more(&r->in)) {
        r->in.step++;
        switch (fz_u8(&r->in) % 13) {
        case 0: case 1: op_alloc(r); break;
        case 2: op_retain(r); break;
        case 3: case 4: op_release(r); break;
        case 5: op_link(r); break;
        case 6: op_weak_new(r); break;
        case 7: op_weak_lock(r); break;
        case 8: op_weak_free(r); break;
        case 9: op_remote_release(r); break;
        case 10: settle(r); break;
        case 11: op_misuse(r); break;
        default:
            if (!r->unsettled) check_all(r, "check op");
            break;
        }
        if (!r->unsettled) expect_no_new_reports(r, "a valid operation");
    }
    run_end(r);
    expect_no_new_reports(r, "pool_destroy");
    return 0;
}
