/* test_gc_bridge_report_stream.c — gc_report_bridge_cycles writes its
 * report to the caller's FILE *, and a FILE * may run user code on each
 * write (fopencookie, funopen, a stream a language runtime wraps). The
 * report was written with the world stopped and the heap's lock held:
 * a write function that allocated, collected, released a handle or
 * asked for the report again deadlocked. Here such a stream's write
 * function makes each of those calls, and the report is still whole.
 *
 * Deterministic: no randomness (DEFAULT_SEED is only the harness's). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6272737472656d31)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>
#include <mulch/rc.h>

#include <stdio.h>
#include <string.h>

#include "mulch_test.h"

static struct {
    gc_heap_t *heap;
    gc_thread_t *t;
    gc_handle_t *extra;   /* a handle the write function releases */
    int depth;            /* nested reports (each to a plain stream) */
    unsigned writes;
    size_t nested_cycles;
    char text[4096];
    size_t length;
} g;

/* The stream's write function: keeps the text and calls into mulch. */
static ssize_t write_calling_mulch(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    size_t room = sizeof g.text - 1 - g.length;
    size_t n = size < room ? size : room;
    memcpy(g.text + g.length, buf, n);
    g.length += n;
    g.text[g.length] = '\0';
    g.writes++;
    EXPECT_NONNULL(gc_alloc(g.t, &T_RAW, 64));
    gc_collect(g.t);
    if (g.extra != NULL) {
        rc_release(g.extra);
        g.extra = NULL;
    }
    if (g.depth == 0) {
        g.depth++;
        FILE *devnull = fopen("/dev/null", "w");
        EXPECT_NONNULL(devnull);
        g.nested_cycles += gc_report_bridge_cycles(g.heap, devnull);
        fclose(devnull);
        g.depth--;
    }
    return (ssize_t)size;
}

static void test_report_stream_may_call_mulch(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    memset(&g, 0, sizeof g);
    g.heap = gc_heap_create(NULL);
    EXPECT_NONNULL(g.heap);
    g.t = gc_thread_attach(g.heap);
    EXPECT_NONNULL(g.t);
    /* one cycle: a handle whose object owns the handle */
    gc_handle_t *h = gc_handle_new(g.heap, mk(g.t, &T_PLAIN, 1, 0));
    EXPECT_NONNULL(h);
    EXPECT_EQ(gc_own_rc(g.t, gc_handle_get(h), h), 0);
    g.extra = gc_handle_new(g.heap, mk(g.t, &T_PLAIN, 2, 0));
    EXPECT_NONNULL(g.extra);

    cookie_io_functions_t io = { .write = write_calling_mulch };
    FILE *out = fopencookie(NULL, "w", io);
    EXPECT_NONNULL(out);
    setvbuf(out, NULL, _IONBF, 0); /* each write reaches the function at once */
    size_t cycles = gc_report_bridge_cycles(g.heap, out);
    fclose(out);
    print_message("  %zu cycle(s), %u write(s), nested reports found %zu: %s", cycles, g.writes,
                  g.nested_cycles, g.text);
    EXPECT_EQ(cycles, 1u);
    EXPECT_GE(g.writes, 1u);
    EXPECT_EQ(g.nested_cycles, 1u);
    if (strstr(g.text, "mulch bridge cycle 1: never collected") == NULL) T_FAIL("report: \"%s\"", g.text);
    char member[64];
    snprintf(member, sizeof member, " %p -> ", (void *)h);
    if (strstr(g.text, member) == NULL) T_FAIL("the handle is not listed: \"%s\"", g.text);
    EXPECT_NULL(g.extra);
    rc_release(h);
    gc_thread_detach(g.t);
    gc_heap_destroy(g.heap); /* ends the cycle */
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_bridge_report_stream");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_report_stream_may_call_mulch),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
