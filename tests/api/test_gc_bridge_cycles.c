/* test_gc_bridge_cycles.c — gc_report_bridge_cycles finds exactly the
 * handles on cycles (a handle roots a GC object that owns, through
 * gc_own_rc and maybe other GC objects and handles, the handle itself),
 * each cycle once, whatever the other handles around them; and it scales
 * with the handles that GC objects own, not with all handles: it marked
 * the heap once per handle and mapped an n × n table, so with 300,000
 * handles held by C code it asked for 90 GB (where the address space is
 * limited, it wrote "out of memory" and reported no cycle) and took 25 s.
 *
 * Deterministic: no randomness (the seed is printed as in every test). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6272636379636c65)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>
#include <mulch/rc.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mulch_test.h"

/* The search's memory must not grow with the square of the handles: with
 * `bounded`, it runs with the address space limited to 1 GiB more than
 * the process has mapped (the old n × n table of 300,000 handles was 90
 * GB; refused, it reported no cycle). Not in quick runs: sanitizers
 * reserve their shadow memory with the same limit in force. */
static size_t report_bounded(gc_heap_t *heap, FILE *f, bool bounded)
{
    struct rlimit old;
    bool limited = false;
    if (bounded && getrlimit(RLIMIT_AS, &old) == 0) {
        unsigned long pages = 0;
        FILE *statm = fopen("/proc/self/statm", "r");
        if (statm != NULL) {
            if (fscanf(statm, "%lu", &pages) != 1) pages = 0;
            fclose(statm);
        }
        struct rlimit tight = old;
        tight.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)1 << 30);
        if (pages != 0 && (old.rlim_cur == RLIM_INFINITY || tight.rlim_cur < old.rlim_cur))
            limited = setrlimit(RLIMIT_AS, &tight) == 0;
    }
    size_t c = gc_report_bridge_cycles(heap, f);
    if (limited && setrlimit(RLIMIT_AS, &old) != 0) T_FAIL("setrlimit could not restore the limit");
    return c;
}

static size_t cycles_to_text(gc_heap_t *heap, char *buf, size_t n)
{
    FILE *f = tmpfile();
    if (f == NULL) T_FAIL("tmpfile failed");
    size_t c = report_bounded(heap, f, !g_quick);
    rewind(f);
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = 0;
    fclose(f);
    return c;
}

static size_t count_of(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what)) n++;
    return n;
}

/* Whether the report names handle h as a member. */
static bool listed(const char *text, const gc_handle_t *h)
{
    char name[64];
    snprintf(name, sizeof name, " %p -> ", (const void *)h);
    return strstr(text, name) != NULL;
}

/* A handle rooting a new plain object (id), the caller's reference
 * returned. */
static gc_handle_t *handle_to_new(gc_heap_t *heap, gc_thread_t *t, uint64_t id)
{
    gc_handle_t *h = gc_handle_new(heap, mk(t, &T_PLAIN, id, 0));
    EXPECT_NONNULL(h);
    return h;
}

static void own(gc_thread_t *t, void *obj, gc_handle_t *h)
{
    EXPECT_EQ(gc_own_rc(t, obj, h), 0);
}

enum { SELF, PAIR1, PAIR2, RING0, RING1, RING2, TAIL, SIDE, SHAPE_HANDLES };

/* Three cycles (one handle owning itself; two handles; three handles, one
 * link through an intermediate GC object), a handle leading into a cycle
 * and one led to from it (neither on a cycle), and `plain` handles that
 * C code holds and nothing owns. */
static void check_shapes(size_t plain)
{
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);
    gc_handle_t **plain_handles = calloc(plain ? plain : 1, sizeof *plain_handles);
    EXPECT_NONNULL(plain_handles);
    for (size_t i = 0; i < plain; i++) plain_handles[i] = handle_to_new(heap, t, 1000 + i % 1000);

    gc_handle_t *h[SHAPE_HANDLES];
    for (int i = 0; i < SHAPE_HANDLES; i++) h[i] = handle_to_new(heap, t, (uint64_t)i + 1);
    own(t, gc_handle_get(h[SELF]), h[SELF]);
    own(t, gc_handle_get(h[PAIR1]), h[PAIR2]);
    own(t, gc_handle_get(h[PAIR2]), h[PAIR1]);
    own(t, gc_handle_get(h[RING0]), h[RING1]);
    /* RING1's object reaches the owner of RING2 through a field */
    void *ring1 = gc_handle_get(h[RING1]);
    void *middle = mk(t, &T_PLAIN, 20, 0);
    set_slot(t, ring1, 0, middle);
    own(t, middle, h[RING2]);
    own(t, middle, h[SIDE]); /* SIDE's object owns nothing: not on a cycle */
    own(t, gc_handle_get(h[RING2]), h[RING0]);
    /* TAIL leads into the ring and is owned from outside any cycle */
    own(t, gc_handle_get(h[TAIL]), h[RING0]);
    void *outside = mk(t, &T_PLAIN, 21, 0);
    gc_push_root(t, &outside);
    own(t, outside, h[TAIL]);

    char text[8192];
    size_t c = cycles_to_text(heap, text, sizeof text);
    print_message("  report (%zu plain handles): %s", plain, text);
    if (c != 3) T_FAIL("gc_report_bridge_cycles = %zu, want 3; it wrote:\n%s", c, text);
    EXPECT_EQ(count_of(text, "mulch bridge cycle "), 3);
    EXPECT_EQ(count_of(text, " -> "), 6);
    for (int i = SELF; i <= RING2; i++)
        if (!listed(text, h[i])) T_FAIL("handle %d (on a cycle) is not listed:\n%s", i, text);
    if (listed(text, h[TAIL]) || listed(text, h[SIDE]))
        T_FAIL("a handle next to a cycle, not on it, is listed:\n%s", text);
    /* members of one cycle are on one line: the ring's three together */
    const char *ring_line = strstr(text, "mulch bridge cycle 3:");
    if (ring_line == NULL || count_of(ring_line, " -> ") != 3)
        T_FAIL("the third cycle (handles in order: the ring) should list three handles:\n%s", text);
    EXPECT_VERIFY(heap);

    /* breaking the pair by a collection cannot happen: still three */
    for (int i = 0; i < SHAPE_HANDLES; i++) rc_release(h[i]);
    gc_collect(t);
    c = cycles_to_text(heap, text, sizeof text);
    if (c != 3) T_FAIL("after dropping C's references: %zu cycles, want 3:\n%s", c, text);
    EXPECT_EQ(count_of(text, " -> "), 6);

    for (size_t i = 0; i < plain; i++) rc_release(plain_handles[i]);
    free(plain_handles);
    gc_pop_roots(t, 1);
    gc_thread_detach(t);
    gc_heap_destroy(heap); /* ends the cycles */
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

static void test_cycles_of_every_shape(void **state)
{
    (void)state;
    check_shapes(0);
}

static void test_cycles_among_many_handles(void **state)
{
    (void)state;
    check_shapes(scaled(300000, 20000));
}

int main(void)
{
    mt_init("test_gc_bridge_cycles");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_cycles_of_every_shape),
        T(test_cycles_among_many_handles),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
