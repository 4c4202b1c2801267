/* test_gc_conservative.c — black-box tests of conservative stack scanning
 * (gc_options_t.conservative_stack): an object referenced only from a C
 * local (no registered root) survives a collection and stays at its address
 * even with GC_COMPACT_ALWAYS, by its start or an interior pointer, on the
 * collecting thread and on another thread parked at a safepoint or in a
 * blocking region (also when only a callee-saved register held it on
 * entering the region); without the option such an object is collected;
 * a collection of a heap with no span yet is clean.
 *
 * Deterministic (no randomness; MULCH_TEST_SEED only labels the run). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6367630e01)
#define MULCH_TEST_GC_OBJECTS 1
#include <pthread.h>

#include <mulch/gc.h>

#include "mulch_test.h"

#if !MT_SANITIZED
#  include <dlfcn.h>
#  include <errno.h>
/* Interposed on the C library's (the sanitizers' runtimes call it at start
 * and are left alone): fails while fail_stack_bounds is set. */
static atomic_int fail_stack_bounds;
int pthread_getattr_np(pthread_t thread, pthread_attr_t *attr)
{
    if (atomic_load(&fail_stack_bounds)) return ENOMEM;
    int (*real)(pthread_t, pthread_attr_t *);
    *(void **)&real = dlsym(RTLD_NEXT, "pthread_getattr_np");
    return real ? real(thread, attr) : ENOSYS;
}
#endif

static gc_heap_t *conservative_heap(int on)
{
    gc_options_t o;
    memset(&o, 0, sizeof o);
    o.compaction = GC_COMPACT_ALWAYS;
    o.conservative_stack = on;
    gc_heap_t *h = gc_heap_create(&o);
    if (!h) fail();
    return h;
}

static gc_heap_t *gc_thread_heap_of_test;

static __attribute__((noinline)) void collect_a_few(gc_thread_t *t)
{
    for (int i = 0; i < 3; i++) gc_collect(t);
}

static void test_conservative_local_keeps_object_in_place(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_heap_t *h = conservative_heap(1);
    gc_thread_t *t = gc_thread_attach(h);
    void *volatile by_start = mk(t, &T_FIN, 1, 3);
    tobj_t *second = mk(t, &T_FIN, 2, 3);
    /* only an interior pointer (to its id field) is kept */
    volatile uintptr_t by_interior = (uintptr_t)&second->id;
    uintptr_t where = (uintptr_t)by_start;
    second = NULL;
    collect_a_few(t);
    EXPECT_EQ((uintptr_t)by_start, where);
    EXPECT_OBJ(by_start, 1);
    tobj_t *again = (tobj_t *)(by_interior - offsetof(tobj_t, id));
    EXPECT_OBJ(again, 2);
    EXPECT_FIN(1, 0);
    EXPECT_FIN(2, 0);
    EXPECT_VERIFY(h);
    gc_heap_destroy(h);
}

static void test_without_option_unrooted_object_dies(void **state)
{
    (void)state;
    TEST_START();
    fin_reset();
    gc_heap_t *h = conservative_heap(0);
    gc_thread_t *t = gc_thread_attach(h);
    void *volatile local = mk(t, &T_FIN, 3, 1);
    collect_a_few(t);
    EXPECT_FIN(3, 1);
    EXPECT_NE((uintptr_t)local, 0);  /* the local still held it: only the option makes it count */
    gc_heap_destroy(h);
}

typedef struct {
    gc_heap_t *heap;
    atomic_int phase;        /* 0 start, 1 object made, 2 collected, 3 checked */
    atomic_int blocking;     /* wait in a blocking region instead of polling */
    int ok;
} other_t;

static void *other_thread(void *arg)
{
    other_t *o = arg;
    gc_thread_t *t = gc_thread_attach(o->heap);
    void *volatile mine = mk(t, &T_FIN, 4, 2);
    uintptr_t where = (uintptr_t)mine;
    atomic_store(&o->phase, 1);
    if (atomic_load(&o->blocking)) {
        gc_enter_blocking(t);
        while (atomic_load(&o->phase) < 2) sched_yield();
        gc_leave_blocking(t);
    } else {
        while (atomic_load(&o->phase) < 2) gc_safepoint(t);
    }
    o->ok = (uintptr_t)mine == where && obj_problem(mine, 4) == NULL;
    mine = NULL;
    gc_thread_detach(t);
    atomic_store(&o->phase, 3);
    return NULL;
}

static void test_conservative_other_threads_stacks(void **state)
{
    (void)state;
    TEST_START();
    for (int blocking = 0; blocking < 2; blocking++) {
        fin_reset();
        other_t o = { .heap = conservative_heap(1) };
        atomic_store(&o.blocking, blocking);
        gc_thread_t *t = gc_thread_attach(o.heap);
        pthread_t th;
        EXPECT_EQ(pthread_create(&th, NULL, other_thread, &o), 0);
        /* an attached thread that waits polls: the other thread's
         * allocation may collect (MULCH_GC_STRESS=1 makes it) */
        while (atomic_load(&o.phase) < 1) gc_safepoint(t);
        collect_a_few(t);
        EXPECT_FIN(4, 0);
        atomic_store(&o.phase, 2);
        pthread_join(th, NULL);
        if (!o.ok) T_FAIL("%s thread: its stack-only object moved or was damaged",
                          blocking ? "blocking" : "parked");
        EXPECT_VERIFY(o.heap);
        gc_heap_destroy(o.heap);
    }
}

#if defined(__x86_64__)
/* A pointer a caller keeps only in a callee-saved register across
 * gc_enter_blocking: the library's frames below the caller (which saved
 * that register) are dead once gc_enter_blocking returns, and the code of
 * the blocking region overwrites them while another thread collects. */
typedef struct {
    gc_thread_t *t;                  /* 0 */
    void (*enter)(gc_thread_t *);    /* 8 */
    void (*leave)(gc_thread_t *);    /* 16 */
    uintptr_t masked, key;           /* 24, 32: the object is masked ^ key */
    uintptr_t out;                   /* 40: the register after the region */
    atomic_int phase;                /* 48: 1 blocking, 2 collected */
} reg_ctx_t;
_Static_assert(offsetof(reg_ctx_t, out) == 40 && offsetof(reg_ctx_t, phase) == 48, "offsets used below");

/* Holds the object in rbp only (every other register cleared, 16 KiB of
 * stack below wiped), enters a blocking region, wipes the stack below
 * again as any call there would, waits for phase 2, leaves. */
static __attribute__((noinline)) void block_holding_only_rbp(reg_ctx_t *ctx)
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
                     "mov %%rbp, %%r14\n\t"
                     "mov 24(%%r13), %%rbp\n\t"
                     "xor 32(%%r13), %%rbp\n\t"
                     "xor %%ebx, %%ebx\n\t"
                     "xor %%r15d, %%r15d\n\t"
                     "xor %%edx, %%edx\n\t"
                     "xor %%esi, %%esi\n\t"
                     "xor %%r8d, %%r8d\n\t"
                     "xor %%r9d, %%r9d\n\t"
                     "xor %%r10d, %%r10d\n\t"
                     "xor %%r11d, %%r11d\n\t"
                     "mov 0(%%r13), %%rdi\n\t"
                     "call *8(%%r13)\n\t"
                     "sub $16384, %%rsp\n\t"
                     "mov %%rsp, %%rdi\n\t"
                     "mov $2048, %%ecx\n\t"
                     "xor %%eax, %%eax\n\t"
                     "rep stosq\n\t"
                     "add $16384, %%rsp\n\t"
                     "movl $1, 48(%%r13)\n\t"
                     "1: pause\n\t"
                     "cmpl $2, 48(%%r13)\n\t"
                     "jl 1b\n\t"
                     "mov 0(%%r13), %%rdi\n\t"
                     "call *16(%%r13)\n\t"
                     "mov %%rbp, 40(%%r13)\n\t"
                     "mov %%r14, %%rbp\n\t"
                     "mov %%r12, %%rsp\n\t"
                     "mov %%r13, %%rdi\n\t"
                     : "+D"(ctx)
                     :
                     : "rax", "rbx", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
                       "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
                       "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
}

static void *register_holder(void *arg)
{
    reg_ctx_t *ctx = arg;
    ctx->t = gc_thread_attach(gc_thread_heap_of_test);
    ctx->key = UINT64_C(0x5a5a5a5a5a5a5a58);
    ctx->masked = (uintptr_t)mk(ctx->t, &T_FIN, 6, 3) ^ ctx->key;
    block_holding_only_rbp(ctx);
    gc_thread_detach(ctx->t);
    return NULL;
}
#endif

/* An object its thread holds only in a callee-saved register while in a
 * blocking region survives collections by other threads, in place. */
static void test_conservative_register_across_blocking_region(void **state)
{
    (void)state;
    TEST_START();
#if !defined(__x86_64__)
    skip();
#else
    fin_reset();
    gc_thread_heap_of_test = conservative_heap(1);
    gc_thread_t *t = gc_thread_attach(gc_thread_heap_of_test);
    reg_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.enter = gc_enter_blocking;
    ctx.leave = gc_leave_blocking;
    pthread_t th;
    EXPECT_EQ(pthread_create(&th, NULL, register_holder, &ctx), 0);
    while (atomic_load(&ctx.phase) < 1) gc_safepoint(t);
    collect_a_few(t);
    EXPECT_FIN(6, 0);
    atomic_store(&ctx.phase, 2);
    pthread_join(th, NULL);
    EXPECT_EQ(ctx.out, ctx.masked ^ ctx.key); /* the register came back */
    EXPECT_FIN(6, 0);
    EXPECT_OBJ((void *)ctx.out, 6);
    EXPECT_VERIFY(gc_thread_heap_of_test);
    gc_thread_detach(t);
    gc_heap_destroy(gc_thread_heap_of_test);
    gc_thread_heap_of_test = NULL;
#endif
}

/* A thread whose stack bounds are unknown cannot have its stack scanned:
 * attaching says so once, instead of freeing objects only it holds. */
static void test_unknown_stack_bounds_reported(void **state)
{
    (void)state;
    TEST_START();
#if MT_SANITIZED
    skip();
#else
    gc_heap_t *h = conservative_heap(1);
    unsigned long before = rec_count();
    atomic_store(&fail_stack_bounds, 1);
    gc_thread_t *t = gc_thread_attach(h);
    atomic_store(&fail_stack_bounds, 0);
    EXPECT_ONE_REPORT(before, "gc_thread_attach: the thread's stack bounds are unknown", t);
    gc_thread_detach(t);
    before = rec_count();
    t = gc_thread_attach(h);
    EXPECT_NO_REPORTS(before);
    gc_thread_detach(t);
    gc_heap_destroy(h);
#endif
}

/* A collection of a conservative heap that holds no span yet (found by
 * gc_fuzz, heap option conservative_stack): sorting the empty span list
 * once passed the vector's NULL items to memcpy, undefined behaviour that
 * UBSan stops at. */
static void test_conservative_collection_of_empty_heap(void **state)
{
    (void)state;
    TEST_START();
    gc_heap_t *h = conservative_heap(1);
    gc_thread_t *t = gc_thread_attach(h);
    unsigned long before = rec_count();
    gc_collect(t);
    EXPECT_NO_REPORTS(before);
    assert_int_equal(gc_verify(h), 0);
    assert_int_equal(gc_verify_untraced(h), 0);
    void *o = mk(t, &T_PLAIN, 1, 2);
    assert_non_null(o);
    gc_collect(t);
    EXPECT_NO_REPORTS(before);
    gc_thread_detach(t);
    gc_heap_destroy(h);
}

int main(void)
{
    mt_init("test_gc_conservative");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_conservative_local_keeps_object_in_place),
        T(test_without_option_unrooted_object_dies),
        T(test_conservative_other_threads_stacks),
        T(test_conservative_register_across_blocking_region),
        T(test_unknown_stack_bounds_reported),
        T(test_conservative_collection_of_empty_heap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
