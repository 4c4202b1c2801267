/* test_gc_review_s22_conservative.c — conservative stack scanning next to
 * other pools that come and go, and across fork (session 22 review).
 *
 * A conservative scan looks at every word of the attached threads' stacks;
 * a word that happens to point into a chunk of ANOTHER pool or heap must
 * be rejected without reading that chunk: another thread may unmap it at
 * any moment (pool_destroy, gc_heap_destroy, pool_free of a huge object,
 * pool_trim). test_conservative_scan_beside_unmapping_pools keeps
 * thousands of words pointing into another pool's chunks on the stack
 * while that pool is destroyed under the scan (a signal handler holds the
 * scanning thread still meanwhile): before the fix the scan read the
 * unmapped chunk headers (SIGSEGV in scan_words, in most runs).
 *
 * test_conservative_register_across_fork: a thread holding an object only
 * in a callee-saved register forks while another thread's collection
 * runs; the object survives in place in the parent, and in the child's
 * own collections.
 *
 * test_conservative_interior_pointers_large_and_last_byte: a pointer into
 * the middle of a large object, and one to a small object's last byte,
 * keep them in place.
 *
 * Seeded (MULCH_TEST_SEED) offsets into the chunks; the interleavings are
 * driven by flags, a signal and short sleeps. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367631601)
#define MULCH_TEST_GC_OBJECTS 1
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mulch/gc.h>
#include <mulch/pool.h>

#include "mulch_test.h"

#define STACK_WORDS 16384u

/* The window: the scan looks a word up in the chunk map, then reads the
 * chunk's header. To land another thread's unmapping inside it, the
 * scanning thread is interrupted by a signal whose handler waits until
 * the chunks it is looking at are gone (or 50 ms, should the signal have
 * come while the scanner held a lock the unmapping needs). */
typedef struct {
    _Atomic uintptr_t small;   /* a small cell of the current pool */
    _Atomic uintptr_t huge;    /* a huge object of the current pool */
    atomic_uint published;     /* round whose addresses are published */
    atomic_uint scanning;      /* round the scanner is collecting in */
    atomic_uint unmapped;      /* round whose pool is destroyed */
    atomic_uint done;          /* round the scanner finished */
    atomic_int in_handler;
    atomic_int stop;
    pthread_t scanner;
} churn_t;

static churn_t *g_churn;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void stall_handler(int sig)
{
    (void)sig;
    churn_t *c = g_churn;
    unsigned round = atomic_load(&c->scanning);
    atomic_store(&c->in_handler, 1);
    double until = now_s() + 0.05;
    while (atomic_load(&c->unmapped) != round && now_s() < until) {
    }
    atomic_store(&c->in_handler, 0);
}

/* Each round: a new pool with a small and a huge allocation, published;
 * once the scanner collects, it is interrupted, and meanwhile the pool is
 * destroyed (every chunk unmapped). */
static void *churn_thread(void *arg)
{
    churn_t *c = arg;
    for (unsigned round = 1; !atomic_load(&c->stop); round++) {
        pool_t *p = pool_create(NULL);
        if (p == NULL) { AFAIL("pool_create failed"); break; }
        void *small = pool_alloc(p, 64);
        void *huge = pool_alloc(p, 5 * MiB);
        atomic_store(&c->small, (uintptr_t)small);
        atomic_store(&c->huge, (uintptr_t)huge);
        atomic_store(&c->published, round);
        while (atomic_load(&c->scanning) != round && !atomic_load(&c->stop)) sched_yield();
        if (atomic_load(&c->stop)) {
            pool_free(p, small);
            pool_free(p, huge);
            pool_destroy(p);
            break;
        }
        pthread_kill(c->scanner, SIGUSR1);
        double until = now_s() + 0.05;
        while (!atomic_load(&c->in_handler) && atomic_load(&c->done) != round && now_s() < until) sched_yield();
        pool_free(p, small);
        pool_free(p, huge);
        pool_destroy(p);
        atomic_store(&c->unmapped, round);
        while (atomic_load(&c->done) != round && !atomic_load(&c->stop)) sched_yield();
    }
    return NULL;
}

/* Fills STACK_WORDS words of this frame with addresses inside the chunks
 * of this round's pool (near its cells and anywhere in their 4 MiB
 * regions), then collects. */
static __attribute__((noinline)) uintptr_t collect_with_foreign_words(gc_thread_t *t, churn_t *c, unsigned round,
                                                                      rng_t *rng)
{
    volatile uintptr_t words[STACK_WORDS];
    uintptr_t small = atomic_load(&c->small), huge = atomic_load(&c->huge);
    uintptr_t region = (uintptr_t)4 * MiB;
    for (unsigned i = 0; i < STACK_WORDS; i++) {
        uintptr_t base = (i & 1) ? huge : small;
        uintptr_t offset = rng_below(rng, region) & ~(uintptr_t)7;
        words[i] = (i & 2) ? base + (i & 255) * 16 : (base & ~(region - 1)) + offset;
    }
    atomic_store(&c->scanning, round);
    gc_collect(t);
    atomic_store(&c->done, round);
    /* (read back: keeps the array live across the collection) */
    uintptr_t sum = 0;
    for (unsigned i = 0; i < STACK_WORDS; i++) sum += words[i];
    return sum;
}

static void test_conservative_scan_beside_unmapping_pools(void **state)
{
    (void)state;
    TEST_START();
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.conservative_stack = 1;
    gc_heap_t *h = gc_heap_create(&o);
    if (h == NULL) fail();
    gc_thread_t *t = gc_thread_attach(h);
    void *volatile kept = mk(t, &T_PLAIN, 7, 1);
    static churn_t c;
    memset(&c, 0, sizeof c);
    c.scanner = pthread_self();
    g_churn = &c;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stall_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    EXPECT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
    pthread_t th;
    EXPECT_EQ(pthread_create(&th, NULL, churn_thread, &c), 0);
    rng_t rng = test_rng("beside_unmapping", 0);
    unsigned rounds = (unsigned)scaled(150, 40);
    uintptr_t sum = 0;
    for (unsigned round = 1; round <= rounds; round++) {
        while (atomic_load(&c.published) != round) sched_yield();
        sum += collect_with_foreign_words(t, &c, round, &rng);
        while (atomic_load(&c.unmapped) != round) sched_yield();
    }
    (void)sum;
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    EXPECT_EQ(sigaction(SIGUSR1, &old, NULL), 0);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_OBJ(kept, 7);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

static __attribute__((noinline)) void collect_a_few(gc_thread_t *t)
{
    for (int i = 0; i < 3; i++) gc_collect(t);
}

/* Interior pointers: into the middle of a large object (a span of its
 * own), and to the last byte of a small one, keep them, in place, with
 * compaction at every collection (and in the generational variant). */
static void test_conservative_interior_pointers_large_and_last_byte(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.conservative_stack = 1;
    o.compaction = GC_COMPACT_ALWAYS;
    gc_heap_t *h = gc_heap_create(&o);
    if (h == NULL) fail();
    gc_thread_t *t = gc_thread_attach(h);
    size_t large_words = 40000; /* about 320 KB: past the largest class */
    tobj_t *large = mk(t, &T_FIN, 31, large_words);
    tobj_t *small = mk(t, &T_FIN, 32, 3);
    volatile uintptr_t large_middle = (uintptr_t)large + tobj_size(large_words) / 2 + 3;
    volatile uintptr_t small_last = (uintptr_t)small + tobj_size(3) - 1;
    /* (masked: only the interior pointers point into the objects) */
    const uintptr_t key = UINT64_C(0x5a5a5a5a5a5a5a58);
    volatile uintptr_t large_masked = (uintptr_t)large ^ key, small_masked = (uintptr_t)small ^ key;
    large = small = NULL;
    collect_a_few(t);
    uintptr_t large_at = large_masked ^ key, small_at = small_masked ^ key;
    EXPECT_FIN(31, 0);
    EXPECT_FIN(32, 0);
    EXPECT_OBJ((void *)large_at, 31);
    EXPECT_OBJ((void *)small_at, 32);
    EXPECT_EQ(small_last, small_at + tobj_size(3) - 1);
    EXPECT_EQ(large_middle, large_at + tobj_size(large_words) / 2 + 3);
    EXPECT_VERIFY(h);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

#if defined(__x86_64__)
/* fork() while the forking thread holds an object only in r15 (glibc's
 * fork saves the other callee-saved registers in its own frame, which
 * stays live; r15 only in its handler runners, and mulch's atfork handlers
 * run in between), and another thread's collection runs while the forking
 * thread is inside fork: the atfork handlers block the thread in the heap
 * (its context saved in the prepare handler), and the parent handler waits
 * for that collection to end. The object must survive, in place, in the
 * parent; and in the child, where only the forking thread is left, it
 * survives the child's own collections. */
typedef struct {
    gc_thread_t *t;                  /* 0 */
    pid_t (*fork_fn)(void);          /* 8 */
    void (*child_fn)(void *);        /* 16: never returns */
    uintptr_t masked, key;           /* 24, 32: the object is masked ^ key */
    uintptr_t out;                   /* 40: r15 after fork, in the parent */
    int64_t pid;                     /* 48 */
    int pipe_write;
} fork_ctx_t;
_Static_assert(offsetof(fork_ctx_t, out) == 40 && offsetof(fork_ctx_t, pid) == 48, "offsets used below");

#define FORK_OBJECT_ID 21

static __attribute__((noinline)) void fork_holding_only_r15(fork_ctx_t *ctx)
{
    __asm__ volatile("mov %%rdi, %%r13\n\t"
                     "mov %%rsp, %%r12\n\t"
                     "sub $128, %%rsp\n\t"
                     "and $-16, %%rsp\n\t"
                     "sub $16384, %%rsp\n\t"
                     "mov %%rsp, %%rdi\n\t"
                     "mov $2048, %%ecx\n\t"
                     "xor %%eax, %%eax\n\t"
                     "rep stosq\n\t"
                     "add $16384, %%rsp\n\t"
                     "mov 24(%%r13), %%r15\n\t"
                     "xor 32(%%r13), %%r15\n\t"
                     "xor %%ebx, %%ebx\n\t"
                     "xor %%r14d, %%r14d\n\t"
                     "xor %%edx, %%edx\n\t"
                     "xor %%esi, %%esi\n\t"
                     "xor %%edi, %%edi\n\t"
                     "xor %%r8d, %%r8d\n\t"
                     "xor %%r9d, %%r9d\n\t"
                     "xor %%r10d, %%r10d\n\t"
                     "xor %%r11d, %%r11d\n\t"
                     "call *8(%%r13)\n\t"
                     "test %%eax, %%eax\n\t"
                     "jnz 1f\n\t"
                     "mov %%r13, %%rdi\n\t"
                     "call *16(%%r13)\n\t"
                     "1: movslq %%eax, %%rax\n\t"
                     "mov %%rax, 48(%%r13)\n\t"
                     "sub $16384, %%rsp\n\t"
                     "mov %%rsp, %%rdi\n\t"
                     "mov $2048, %%ecx\n\t"
                     "xor %%eax, %%eax\n\t"
                     "rep stosq\n\t"
                     "add $16384, %%rsp\n\t"
                     "mov %%r15, 40(%%r13)\n\t"
                     "mov %%r12, %%rsp\n\t"
                     "mov %%r13, %%rdi\n\t"
                     : "+D"(ctx)
                     :
                     : "rax", "rbx", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
                       "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                       "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
}

/* In the child: tells the parent's parked thread to go on, collects
 * (only this thread is left), checks the object, and exits with 0 when it
 * is intact and unfinalized. */
static void fork_child_check(void *arg)
{
    fork_ctx_t *ctx = arg;
    char byte = 1;
    if (write(ctx->pipe_write, &byte, 1) != 1) _exit(4);
    for (int i = 0; i < 3; i++) gc_collect(ctx->t);
    const tobj_t *o = (const tobj_t *)(ctx->masked ^ ctx->key);
    _exit(obj_problem(o, FORK_OBJECT_ID) == NULL && fin_of(FORK_OBJECT_ID) == 0 ? 0 : 3);
}

typedef struct {
    gc_heap_t *heap;
    fork_ctx_t ctx;
    int pipe_read;
    atomic_int x_ready, f_ready, collect_started, done;
    int child_status;
} fork_test_t;

/* Attached and running (no safepoint) until the child exists, so that the
 * main thread's collection waits; then parks, letting it run while the
 * forking thread is still inside fork. */
static void *fork_holdup_thread(void *arg)
{
    fork_test_t *f = arg;
    gc_thread_t *t = gc_thread_attach(f->heap);
    atomic_store(&f->x_ready, 1);
    char byte;
    if (read(f->pipe_read, &byte, 1) != 1) AFAIL("no byte from the child");
    struct timespec pause = { 0, 30 * 1000 * 1000 };
    nanosleep(&pause, NULL);
    while (!atomic_load(&f->done)) gc_safepoint(t);
    gc_thread_detach(t);
    return NULL;
}

static void *fork_thread(void *arg)
{
    fork_test_t *f = arg;
    f->ctx.t = gc_thread_attach(f->heap);
    f->ctx.key = UINT64_C(0x5a5a5a5a5a5a5a58);
    f->ctx.masked = (uintptr_t)mk(f->ctx.t, &T_FIN, FORK_OBJECT_ID, 3) ^ f->ctx.key;
    atomic_store(&f->f_ready, 1);
    while (!atomic_load(&f->collect_started)) sched_yield();
    struct timespec pause = { 0, 30 * 1000 * 1000 };
    nanosleep(&pause, NULL); /* (the collection now waits for this thread) */
    fork_holding_only_r15(&f->ctx);
    if (f->ctx.pid > 0) waitpid((pid_t)f->ctx.pid, &f->child_status, 0);
    gc_thread_detach(f->ctx.t);
    return NULL;
}
#endif

static void test_conservative_register_across_fork(void **state)
{
    (void)state;
    TEST_START();
#if !defined(__x86_64__)
    skip();
#else
    fin_reset();
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.conservative_stack = 1;
    o.compaction = GC_COMPACT_ALWAYS;
    o.markers = 1; /* (no marker threads to start in the child) */
    static fork_test_t f;
    memset(&f, 0, sizeof f);
    f.heap = gc_heap_create(&o);
    if (f.heap == NULL) fail();
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    f.pipe_read = fds[0];
    f.ctx.pipe_write = fds[1];
    f.ctx.fork_fn = fork;
    f.ctx.child_fn = fork_child_check;
    gc_thread_t *t = gc_thread_attach(f.heap);
    pthread_t x, th;
    EXPECT_EQ(pthread_create(&x, NULL, fork_holdup_thread, &f), 0);
    EXPECT_EQ(pthread_create(&th, NULL, fork_thread, &f), 0);
    while (!atomic_load(&f.x_ready) || !atomic_load(&f.f_ready)) sched_yield();
    atomic_store(&f.collect_started, 1);
    gc_collect(t); /* waits for the other two; runs while the fork's parent handler waits */
    atomic_store(&f.done, 1);
    pthread_join(x, NULL);
    pthread_join(th, NULL);
    close(fds[0]);
    close(fds[1]);
    EXPECT_NO_ASYNC_FAILURES();
    if (f.ctx.pid <= 0) T_FAIL("fork failed");
    if (!WIFEXITED(f.child_status) || WEXITSTATUS(f.child_status) != 0)
        T_FAIL("child: status %d (3: the object was freed, moved or damaged in the child)", f.child_status);
    EXPECT_EQ(f.ctx.out, f.ctx.masked ^ f.ctx.key); /* r15 came back */
    EXPECT_FIN(FORK_OBJECT_ID, 0);
    EXPECT_OBJ((void *)f.ctx.out, FORK_OBJECT_ID);
    EXPECT_VERIFY(f.heap);
    gc_thread_detach(t);
    gc_heap_destroy(f.heap);
#endif
}

int main(void)
{
    mt_init("test_gc_review_s22_conservative");
    mt_env_ignore_markers_under_tsan();
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_conservative_scan_beside_unmapping_pools),
        T(test_conservative_register_across_fork),
        T(test_conservative_interior_pointers_large_and_last_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
