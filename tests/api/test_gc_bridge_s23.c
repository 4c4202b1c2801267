/* test_gc_bridge_s23.c — review session 23: gc_report_bridge_cycles and
 * ephemerons (docs/rc.md "Cycles through the bridge").
 *
 * A handle roots a GC object A; A holds an ephemeron whose key is A itself
 * and whose value B owns the handle (gc_own_rc). A collection keeps B (its
 * key A is reachable, through the handle), so the handle is never released:
 * a cycle through the bridge, which the report did not list (its walks did
 * not follow ephemeron values). Next to it, the same shape whose key is
 * rooted elsewhere is no cycle: dropping that root frees it all, and the
 * report must not list it. Also run as _compact_always and _generational.
 *
 * Deterministic: no randomness (the seed is printed as in every test). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1
#endif
#define DEFAULT_SEED UINT64_C(0x6d756c6362722317)
#define MULCH_TEST_GC_OBJECTS 1
#include <mulch/gc.h>
#include <mulch/rc.h>

#include <stdbool.h>
#include <string.h>

#include "mulch_test.h"

/* The report's text and count. */
static size_t cycles_to_text(gc_heap_t *heap, char *buf, size_t n)
{
    FILE *f = tmpfile();
    if (f == NULL) T_FAIL("tmpfile failed");
    size_t c = gc_report_bridge_cycles(heap, f);
    rewind(f);
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = 0;
    fclose(f);
    return c;
}

static bool listed(const char *text, const gc_handle_t *h)
{
    char name[64];
    snprintf(name, sizeof name, " %p -> ", (const void *)h);
    return strstr(text, name) != NULL;
}

/* Whether the handle is still alive (its weak reference locks). */
static bool alive(rc_weak_t *weak)
{
    void *h = rc_weak_lock(weak);
    if (h != NULL) rc_release(h);
    return h != NULL;
}

/* A handle to a new object (id), holding in slot 0 an ephemeron keyed by
 * *key (NULL: the handle's own object) whose value (id + 1) owns the
 * handle. The caller's reference to the handle is dropped; a weak
 * reference to it is returned. */
static rc_weak_t *ephemeron_shape(gc_heap_t *heap, gc_thread_t *t, uint64_t id, void **key, gc_handle_t **out)
{
    void *value = mk(t, &T_PLAIN, id + 1, 0);
    gc_push_root(t, &value);
    gc_handle_t *h = gc_handle_new(heap, mk(t, &T_PLAIN, id, 0));
    EXPECT_NONNULL(h);
    void *e = gc_ephemeron_new(t, key ? *key : gc_handle_get(h), value);
    EXPECT_NONNULL(e);
    set_slot(t, gc_handle_get(h), 0, e);
    EXPECT_EQ(gc_own_rc(t, value, h), 0);
    gc_pop_roots(t, 1);
    rc_weak_t *weak = rc_weak_new(h);
    EXPECT_NONNULL(weak);
    rc_release(h); /* the value's reference is the only one now */
    *out = h;
    return weak;
}

static void test_gc_bridge_cycle_through_ephemeron(void **state)
{
    (void)state;
    TEST_START();
    unsigned long r0 = rec_count();
    gc_heap_t *heap = gc_heap_create(NULL);
    EXPECT_NONNULL(heap);
    gc_thread_t *t = gc_thread_attach(heap);
    EXPECT_NONNULL(t);

    void *key = mk(t, &T_PLAIN, 30, 0);
    gc_push_root(t, &key);
    gc_handle_t *cyclic, *keyed;
    rc_weak_t *cyclic_weak = ephemeron_shape(heap, t, 10, NULL, &cyclic);
    rc_weak_t *keyed_weak = ephemeron_shape(heap, t, 20, &key, &keyed);
    gc_collect(t);
    gc_collect(t);
    if (!alive(cyclic_weak) || !alive(keyed_weak)) T_FAIL("a handle whose owner is live was released");

    char text[2048];
    size_t c = cycles_to_text(heap, text, sizeof text);
    print_message("  report: %s", text);
    if (c != 1 || !listed(text, cyclic))
        T_FAIL("gc_report_bridge_cycles = %zu, want 1 (the handle whose object keys the ephemeron "
               "whose value owns it, %p); it wrote:\n%s",
               c, (void *)cyclic, text);
    if (listed(text, keyed)) T_FAIL("the handle whose ephemeron key is rooted elsewhere is listed:\n%s", text);

    /* the second shape is no cycle: without its key's root it all goes */
    gc_pop_roots(t, 1);
    gc_collect(t);
    gc_collect(t);
    if (alive(keyed_weak)) T_FAIL("the handle whose ephemeron key died was not released");
    /* the first one is a cycle: only the heap's destroy ends it */
    if (!alive(cyclic_weak)) T_FAIL("the handle on a cycle was released");
    EXPECT_EQ(cycles_to_text(heap, text, sizeof text), 1);
    EXPECT_VERIFY(heap);

    gc_thread_detach(t);
    gc_heap_destroy(heap);
    if (alive(cyclic_weak)) T_FAIL("the handle on a cycle outlived gc_heap_destroy's release");
    rc_weak_free(cyclic_weak);
    rc_weak_free(keyed_weak);
    EXPECT_NO_ASYNC_FAILURES();
    EXPECT_NO_REPORTS(r0);
}

int main(void)
{
    mt_init("test_gc_bridge_s23");
#define T(f) cmocka_unit_test_setup_teardown(f, setup_rec, teardown_rec)
    const struct CMUnitTest tests[] = {
        T(test_gc_bridge_cycle_through_ephemeron),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
