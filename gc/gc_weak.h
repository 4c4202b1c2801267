/* gc_weak.h — the collector's internal interface to weak references and
 * ephemerons (gc/weak.c): telling them apart, clearing the lists, and the
 * steps a collection runs on them after marking.
 *
 * Invariants (weak.c states them in full): the lists (each thread's, then
 * heap->weaks) hold every weak object whose slots a collection may still
 * clear; an unlisted one reads NULL for good. A collection runs, in this
 * order, gc_ephemerons_converge, gc_weak_list_clear_dead on every list,
 * (finalizable objects revived, converging again), then
 * gc_weak_list_forget_dead; gc_heap_destroy clears them all
 * (gc_weak_lists_clear_all_locked) before each finalizer it runs. */
#ifndef MULCH_GC_WEAK_H
#define MULCH_GC_WEAK_H

#include "gc_internal.h"

/* obj (an allocated object of the heap) is a weak reference (weak.c). */
MULCH_INTERNAL bool gc_object_is_weak(const void *obj);
/* obj (an allocated object of the heap) is an ephemeron (weak.c). */
MULCH_INTERNAL bool gc_object_is_ephemeron(const void *obj);
/* Clears every weak reference listed in `list`, as if its target had died. */
MULCH_INTERNAL void gc_weak_list_clear(const gc_vector_t *list);
MULCH_INTERNAL void gc_weak_lists_clear_all_locked(gc_heap_t *heap);
/* A collection, after marking: clears the weak slots of `weaks` whose
 * target is unmarked (an ephemeron's value with its key). */
MULCH_INTERNAL void gc_weak_list_clear_dead(gc_heap_t *heap, gc_vector_t *weaks);
/* ... and, after the finalizable objects were revived, forgets the dead
 * weak objects of `weaks` and follows those that moved. */
MULCH_INTERNAL void gc_weak_list_forget_dead(gc_heap_t *heap, gc_vector_t *weaks);
/* A collection, after marking: traces the values of live ephemerons whose
 * keys are marked until nothing new is marked (weak.c). */
MULCH_INTERNAL void gc_ephemerons_converge(gc_tracer_t *tracer);
/* Whether a listed ephemeron is marked (weak.c). */
MULCH_INTERNAL bool gc_ephemerons_marked(gc_heap_t *heap);

#endif /* MULCH_GC_WEAK_H */
