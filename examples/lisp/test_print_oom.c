/* test_print_oom.c — the ctest lisp_print_oom: lisp_print_to, which prints
 * a value into an error message through a stdio stream over the message's
 * buffer (fmemopen), closes that stream when printing raises an error (out
 * of memory in the printer's cycle search). The jump to the catcher used
 * to skip the fclose: one stream leaked per error.
 *
 * Linked with -Wl,--wrap for malloc (fails on demand: the printer's
 * malloc calls, not the C library's own), fmemopen and fclose (counted:
 * nothing else in this test opens or closes a stream). Prints "ok" and
 * exits 0, or says what went wrong and exits 1.
 */
#include "lisp.h"

#include <stdlib.h>
#include <string.h>

static int fail_malloc;
static int streams_open;

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_malloc(size_t size) { return fail_malloc ? NULL : __real_malloc(size); }

FILE *__real_fmemopen(void *buf, size_t size, const char *mode);
FILE *__wrap_fmemopen(void *buf, size_t size, const char *mode);
FILE *__wrap_fmemopen(void *buf, size_t size, const char *mode)
{
    FILE *f = __real_fmemopen(buf, size, mode);
    if (f != NULL) streams_open++;
    return f;
}

int __real_fclose(FILE *f);
int __wrap_fclose(FILE *f);
int __wrap_fclose(FILE *f)
{
    streams_open--;
    return __real_fclose(f);
}

static int failures;
#define CHECK(cond, ...) \
    do { if (!(cond)) { fprintf(stderr, "line %d: ", __LINE__); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); failures++; } } while (0)

/* lisp_print_to of `list` with malloc failing: it raises "out of memory"
 * and leaves no stream open. */
static void print_without_memory(value list, int round)
{
    char buf[128];
    struct lisp_catch e;
    volatile int raised = 0;
    if (setjmp(e.jump) == 0) {
        lisp_catch_enter(&e);
        fail_malloc = 1;
        lisp_print_to(buf, sizeof buf, list, 1);   /* (nothing allocates on the GC heap) */
        fail_malloc = 0;
        lisp_catch_leave(&e);
    } else {
        fail_malloc = 0;
        lisp_catch_landed(&e);
        raised = 1;
        CHECK(strcmp(e.message, "out of memory") == 0, "error \"%s\"", e.message);
    }
    CHECK(raised, "round %d: no error without memory", round);
    CHECK(streams_open == 0, "round %d: %d stream(s) left open by a print that failed", round, streams_open);
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
    value list = LISP_NIL;
    if (setjmp(c.jump) != 0) {
        lisp_catch_landed(&c);
        fprintf(stderr, "start-up failed: %s\n", c.message);
        return 1;
    }
    lisp_catch_enter(&c);
    lisp_objects_init();
    lisp_eval_init();
    LISP_ROOT(list);
    /* 200 pairs: more than the printer's small-tree walk takes, so it
     * runs the cycle search, which mallocs */
    for (int i = 0; i < 200; i++) list = lisp_cons(lisp_fixnum(i), list);
    lisp_catch_leave(&c);

    char buf[128];
    lisp_print_to(buf, sizeof buf, list, 1);
    CHECK(strncmp(buf, "(199 198 197", 12) == 0, "printed \"%s\"", buf);
    CHECK(streams_open == 0, "%d stream(s) open after a print", streams_open);

    for (int round = 0; round < 3; round++) print_without_memory(list, round);

    lisp_unroot(1);
    lisp_backend_shutdown();
    free(lisp_stack);
    if (failures) return 1;
    puts("ok");
    return 0;
}
