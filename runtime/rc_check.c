/* rc_check.c — telling a live rc object from anything else a caller may
 * pass (NULL, a foreign or interior pointer, a plain pool cell, a
 * destroyed object), off the fast paths: rc_internal.h's rc_looks_live
 * answers the common case inline and calls rc_check_slow for the rest,
 * which names the problem through the error handler. Nothing here trusts
 * the pointer before the pool has vouched for the place it lies in.
 *
 * The names, whatever the object's size (docs/rc.md "Errors and misuse"):
 * "object already destroyed (use after release)" for a pointer where an
 * rc payload lies (a header's size into a small cell, or into a large
 * object's own mapping) whose header is not live, and for a pointer into
 * memory the pool took back whole since (a free span, a released
 * mapping: nothing there is live, so it is a use after release of
 * whatever was there); "not an rc object" for the rest.
 */
#include <stdio.h>

#include "rc_internal.h"

typedef enum rc_place {
    RC_PLACE_NONE,  /* no rc object could lie there */
    RC_PLACE_FREED, /* memory the pool gave back */
    RC_PLACE_CELL,  /* an rc payload's place: the header decides */
} rc_place_t;

/* Where obj lies, for the report. */
static rc_place_t rc_place_of(const void *obj) {
    const chunk_t *chunk = chunk_of(obj);
    if (chunk == NULL)
        /* a chunk or large mapping released (read-only zeros until the
         * address is mapped again), or memory the pool never had */
        return os_retired_contains(obj) ? RC_PLACE_FREED : RC_PLACE_NONE;
    if (chunk->kind == CHUNK_HUGE) {
        if ((uintptr_t)obj - sizeof(rc_header_t) == (uintptr_t)chunk + chunk->object_offset) return RC_PLACE_CELL;
        /* anywhere else in a freed (cached) mapping: a stale pointer */
        return atomic_load_explicit(&chunk->allocated, memory_order_relaxed) ? RC_PLACE_NONE : RC_PLACE_FREED;
    }
    if (chunk->kind != CHUNK_BLOCKS || (uintptr_t)obj - (uintptr_t)chunk >= chunk->size) return RC_PLACE_NONE;
    const block_t *b = block_head(block_at((chunk_t *)(uintptr_t)chunk, obj));
    if (b->kind == BLOCK_FREE) return RC_PLACE_FREED;
    /* an rc object's payload is a header's size into a cell (a pool_alloc
     * cell was reported as a use after release), never at its end (rc_alloc
     * gives size 0 a byte, rc.c): in a cell no bigger than a header, obj
     * would be the next cell's start, as a plain cell's pointer is */
    return rc_payload_place(b, obj) ? RC_PLACE_CELL : RC_PLACE_NONE;
}

/* Checks that obj looks like a live rc object, without trusting it. */
MULCH_NOINLINE bool rc_check_slow(const void *obj, const char *fn) {
    char what[128];
    const char *problem;
    if (obj == NULL) {
        problem = "NULL object";
    } else {
        rc_place_t place = rc_place_of(obj);
        if (place == RC_PLACE_CELL) {
            /* live after all: rc_looks_live's look raced the object's
             * allocation (itself a misuse: the pointer came before it) */
            const chunk_t *chunk = chunk_of(obj);
            if (chunk != NULL && rc_magic_is_live(obj) && rc_payload_in_chunk(chunk, obj)) return true;
        }
        problem = place == RC_PLACE_NONE ? "not an rc object" : "object already destroyed (use after release)";
    }
    snprintf(what, sizeof what, "%s: %s", fn, problem);
    mulch_report(what, obj);
    return false;
}

bool rc_check(const void *obj, const char *fn) {
    return rc_looks_live(obj, fn);
}
