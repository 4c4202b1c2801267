/* rc_check.c — telling a live rc object from anything else a caller may
 * pass (NULL, a foreign or interior pointer, a plain pool cell, a
 * destroyed object), off the fast paths: rc_internal.h's rc_looks_live
 * answers the common case inline and calls rc_check_slow for the rest,
 * which names the problem through the error handler. Nothing here trusts
 * the pointer before the pool has vouched for the cell it lies in.
 */
#include <stdio.h>

#include "rc_internal.h"

/* Checks that obj looks like a live rc object, without trusting it. */
MULCH_NOINLINE bool rc_check_slow(const void *obj, const char *fn) {
    char what[128];
    if (obj == NULL) {
        snprintf(what, sizeof what, "%s: NULL object", fn);
        mulch_report(what, obj);
        return false;
    }
    block_t *b = pool_block_of(obj);
    /* an rc object's payload is a header's size into a cell (a pool_alloc
     * cell was reported as a use after release), never at its end (rc_alloc
     * gives size 0 a byte, rc.c): in a cell no bigger than a header, obj
     * would be the next cell's start, as a plain cell's pointer is */
    if (b == NULL || !rc_payload_place(b, obj)) {
        snprintf(what, sizeof what, "%s: not an rc object", fn);
        mulch_report(what, obj);
        return false;
    }
    if (rc_magic_peek(obj) != RC_LIVE) {
        snprintf(what, sizeof what, "%s: object already destroyed (use after release)", fn);
        mulch_report(what, obj);
        return false;
    }
    return true;
}

bool rc_check(const void *obj, const char *fn) {
    return rc_looks_live(obj, fn);
}
