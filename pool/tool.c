/* tool.c — whether this process runs under valgrind (pool->valgrind, set
 * at pool creation). The requests themselves are in tool.h; they run only
 * when pool->valgrind is set, and without MULCH_VALGRIND they compile to
 * nothing.
 */
#include <stdlib.h>

#include "pool_internal.h"

#if defined(MULCH_TOOL_VALGRIND)
/* MULCH_VALGRIND=0 (or off, false, no: pool/env.c) in the environment
 * keeps the requests off under any valgrind tool (callgrind instruction
 * counts of the native paths). */
int tool_vg_running(void) {
    if (!mulch_env_switch("MULCH_VALGRIND", "pool_create", 1)) return 0;
    return RUNNING_ON_VALGRIND != 0;
}
#else
int tool_vg_running(void) { return 0; }
#endif
