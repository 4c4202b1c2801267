// consumer_cxx.cpp — the public C headers used from C++17 (extern "C",
// no C-only constructs), their inline paths included. Exit 0 on success.
#include <mulch.h>

#include <cstdio>
#include <cstring>

static void list_trace(void *obj, gc_tracer_t *tracer)
{
    gc_trace_range(tracer, static_cast<void **>(obj), 2);
}
static const gc_type_t list_type = { "consumer.list", list_trace, nullptr };

int main()
{
    if (std::strcmp(mulch_version(), MULCH_VERSION_STRING) != 0)
        return 1;
    pool_t *pool = pool_create(nullptr);
    if (pool == nullptr)
        return 2;
    void *p = pool_alloc(pool, 64);
    if (p == nullptr)
        return 3;
    pool_free(pool, p);
    pool_destroy(pool);

    // the collector's inline paths: gc_alloc, gc_push_root, gc_write, gc_write_init, gc_pop_roots
    gc_heap_t *heap = gc_heap_create(nullptr);
    if (heap == nullptr)
        return 4;
    gc_thread_t *thread = gc_thread_attach(heap);
    if (thread == nullptr)
        return 5;
    void *head = nullptr;
    gc_push_root(thread, &head);
    for (int i = 0; i < 10000; i++) {
        void **cell = static_cast<void **>(gc_alloc(thread, &list_type, 2 * sizeof(void *)));
        if (cell == nullptr)
            return 6;
        gc_write_init(thread, cell, &cell[0], head); // cell: allocated after the last GC point
        gc_write(thread, cell, &cell[1], head);
        head = cell;
    }
    gc_collect(thread);
    int length = 0;
    for (void **cell = static_cast<void **>(head); cell != nullptr; cell = static_cast<void **>(cell[0]))
        length++;
    gc_pop_roots(thread, 1);
    gc_thread_detach(thread);
    gc_heap_destroy(heap);
    if (length != 10000)
        return 7;

    // and rc's
    void *counted = rc_alloc(32, nullptr);
    if (counted == nullptr)
        return 8;
    rc_release(rc_retain(counted));
    rc_release(counted);
    std::printf("consumer_cxx: mulch %s ok\n", mulch_version());
    return 0;
}
