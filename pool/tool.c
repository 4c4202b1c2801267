/* tool.c — the out-of-line Valgrind client requests of tool.h.
 *
 * They are reached only when pool->valgrind is set (MULCH_VALGRIND compiled
 * in and RUNNING_ON_VALGRIND at pool creation), so the fast paths pay one
 * predictable branch on a field of the pool they already read, not the
 * client-request sequence itself. Without MULCH_VALGRIND they compile to
 * nothing and are never called.
 */
#include "pool_internal.h"

#if defined(MULCH_TOOL_VALGRIND)
void tool_vg_alloc(void *p, size_t usable) { VALGRIND_MALLOCLIKE_BLOCK(p, usable, 0, 0); }
void tool_vg_free(void *p) {
    VALGRIND_FREELIKE_BLOCK(p, 0);
    VALGRIND_MAKE_MEM_UNDEFINED(p, 2 * sizeof(uintptr_t));
}
void tool_vg_noaccess(void *p, size_t n) { VALGRIND_MAKE_MEM_NOACCESS(p, n); }
void tool_vg_undefined(void *p, size_t n) { VALGRIND_MAKE_MEM_UNDEFINED(p, n); }
int tool_vg_running(void) { return RUNNING_ON_VALGRIND != 0; }
#else
void tool_vg_alloc(void *p, size_t usable) { (void)p; (void)usable; }
void tool_vg_free(void *p) { (void)p; }
void tool_vg_noaccess(void *p, size_t n) { (void)p; (void)n; }
void tool_vg_undefined(void *p, size_t n) { (void)p; (void)n; }
int tool_vg_running(void) { return 0; }
#endif
