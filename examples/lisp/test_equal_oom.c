/* test_equal_oom.c — the ctest lisp_equal_oom: equal?'s slow path (equal.c,
 * union-find on malloc'd memory) frees its memory when it stops on an
 * error, and leaves the catchers as they were. Each round lets the first n
 * allocations of the comparison succeed and fails the next, n = 0, 1, ...
 * until the comparison gets through: every failing round must raise "out
 * of memory" to the caller's catcher with nothing left allocated, and the
 * last must answer right, with nothing left allocated either.
 *
 * Linked with -Wl,--wrap for malloc, calloc, realloc and free (the core's
 * own calls: counted, and failed on demand; the library's are not
 * wrapped). Prints "ok" and exits 0, or says what went wrong and exits 1.
 */
#include "lisp.h"

#include <stdlib.h>
#include <string.h>

static int counting;       /* count the core's allocations, and fail them on demand */
static int allowed;        /* allocations that still succeed while counting */
static long outstanding;   /* blocks allocated and not freed while counting */

static int allocation_allowed(void) { return !counting || allowed-- > 0; }

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_malloc(size_t size)
{
    if (!allocation_allowed()) return NULL;
    void *p = __real_malloc(size);
    if (p != NULL && counting) outstanding++;
    return p;
}

void *__real_calloc(size_t count, size_t size);
void *__wrap_calloc(size_t count, size_t size);
void *__wrap_calloc(size_t count, size_t size)
{
    if (!allocation_allowed()) return NULL;
    void *p = __real_calloc(count, size);
    if (p != NULL && counting) outstanding++;
    return p;
}

void *__real_realloc(void *old, size_t size);
void *__wrap_realloc(void *old, size_t size);
void *__wrap_realloc(void *old, size_t size)
{
    if (!allocation_allowed()) return NULL;
    void *p = __real_realloc(old, size);
    if (p != NULL && old == NULL && counting) outstanding++;
    return p;
}

void __real_free(void *p);
void __wrap_free(void *p);
void __wrap_free(void *p)
{
    if (p != NULL && counting) outstanding--;
    __real_free(p);
}

static int failures;
#define CHECK(cond, ...) \
    do { if (!(cond)) { fprintf(stderr, "line %d: ", __LINE__); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); failures++; } } while (0)

/* (cons x x) nested n times: 2^n paths through n + 1 pairs. */
static value nest(int n)
{
    value x = lisp_fixnum(1);
    LISP_ROOT(x);
    for (int i = 0; i < n; i++) x = lisp_cons(x, x);
    lisp_unroot(1);
    return x;
}

/* A list of n fixnums 0..n-1 whose last cdr points back to its start. */
static value circular(int n)
{
    value list = LISP_NIL, last = LISP_NIL;
    LISP_ROOT(list);
    LISP_ROOT(last);
    for (int i = n - 1; i >= 0; i--) {
        list = lisp_cons(lisp_fixnum(i), list);
        if (last == LISP_NIL) last = list;
    }
    lisp_write(last, &LISP_CDR(last), list);
    lisp_unroot(2);
    return list;
}

/* lisp_equal(a, b) with allocations failing after the first `allow`:
 * -1 when it raised "out of memory" (checked), else its answer. */
static int equal_with_allowance(value a, value b, int allow, const char *what)
{
    struct lisp_catch e;
    struct lisp_catch *before = lisp_catcher;
    volatile int answer = -1;
    outstanding = 0;
    if (setjmp(e.jump) == 0) {
        lisp_catch_enter(&e);
        allowed = allow;
        counting = 1;
        answer = lisp_equal(a, b);
        counting = 0;
        lisp_catch_leave(&e);
    } else {
        counting = 0;
        lisp_catch_landed(&e);
        CHECK(strcmp(e.message, "out of memory") == 0, "%s, %d allowed: error \"%s\"", what, allow, e.message);
    }
    CHECK(outstanding == 0, "%s, %d allowed: %ld block(s) left allocated", what, allow, outstanding);
    CHECK(lisp_catcher == before, "%s, %d allowed: the catcher was not restored", what, allow);
    return answer;
}

/* must_allocate: the answer needs the slow path (else the fast one may
 * find a difference first, without allocating). */
static void check_all_failure_points(value a, value b, int expected, int must_allocate, const char *what)
{
    int allow = 0, answer;
    while ((answer = equal_with_allowance(a, b, allow, what)) < 0 && allow < 1000) allow++;
    CHECK(answer == expected, "%s: answered %d after %d allocations, expected %d", what, answer, allow, expected);
    CHECK(allow > 0 || !must_allocate, "%s: the slow path allocated nothing", what);
}

enum { STACK_SLOTS = 1 << 12 };

int main(void)
{
    lisp_backend_process_init();
    lisp_stack = malloc(STACK_SLOTS * sizeof(value));
    if (lisp_stack == NULL) return 1;
    lisp_sp = lisp_stack;
    lisp_stack_end = lisp_stack + STACK_SLOTS;
    if (lisp_backend_init(lisp_globals, LISP_G_COUNT) != 0) return 1;

    struct lisp_catch c;
    if (setjmp(c.jump) != 0) {
        lisp_catch_landed(&c);
        fprintf(stderr, "start-up failed: %s\n", c.message);
        return 1;
    }
    lisp_catch_enter(&c);
    lisp_objects_init();
    lisp_eval_init();
    /* the value stack roots the data (nothing below allocates on the heap) */
    lisp_push(nest(40));
    lisp_push(nest(40));
    lisp_push(nest(39));
    lisp_push(circular(3000));
    lisp_push(circular(3000));
    lisp_push(circular(2999));
    lisp_catch_leave(&c);

    check_all_failure_points(lisp_stack[0], lisp_stack[1], 1, 1, "shared pairs");
    check_all_failure_points(lisp_stack[0], lisp_stack[2], 0, 0, "shared pairs, one level less");
    check_all_failure_points(lisp_stack[3], lisp_stack[4], 1, 1, "circular lists");
    check_all_failure_points(lisp_stack[3], lisp_stack[5], 0, 1, "circular lists of other lengths");
    /* small values take the fast path: no allocation at all */
    CHECK(equal_with_allowance(lisp_fixnum(1), lisp_fixnum(1), 0, "fixnums") == 1, "1 is not 1");

    lisp_sp = lisp_stack;
    lisp_backend_shutdown();
    free(lisp_stack);
    if (failures) return 1;
    puts("ok");
    return 0;
}
