/* env.c — the trimmed value of a MULCH_* variable (gc/env.c's numbers
 * and words read it too), and the one reading of every on/off switch: the pool's
 * (MULCH_TRACK_LEAKS, MULCH_SECURE, MULCH_VALGRIND), the malloc drop-in's
 * (MULCH_LEAK_REPORT, MULCH_MALLOC_STATS) and the collector's
 * (MULCH_GC_GENERATIONAL, MULCH_GC_VERIFY, through gc_env_flag).
 *
 * Invariants (docs/tuning.md, "Environment variables", says the same):
 *   - Blanks round the value are dropped; unset, empty or blank means
 *     "not set": the caller's fallback, no report.
 *   - Off: 0, off, false, no; on: 1, on, true, yes (words in any case).
 *     The pool read off, false and no and the collector no word at all
 *     (MULCH_GC_GENERATIONAL=yes was ignored): one rule for all now.
 *   - Another number ([+-]digits) is on unless every digit is 0, and is
 *     reported once ("is not 0 or 1 (on)"), however many digits it has
 *     (a value too big for a size_t was reported twice).
 *   - Anything else is reported once and read as before the words were
 *     shared: off when it starts with '0' (documented as off from the
 *     start), else on (the pool's switches took any value as on).
 *   - Reports go through mulch_report as "WHO: NAME=VALUE problem (on)",
 *     the environment's string as the pointer (gc/env.c's format).
 *   - No locale, no allocation: the malloc drop-in reads its switches
 *     before it has a pool.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"

static bool env_is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

const char *mulch_env_trimmed(const char *name, size_t *length) {
    const char *value = getenv(name);
    if (value == NULL) return NULL;
    while (env_is_space(*value)) value++;
    size_t n = strlen(value);
    while (n > 0 && env_is_space(value[n - 1])) n--;
    if (n == 0) return NULL;
    *length = n;
    return value;
}

/* Whether value[0..n) is `word` (lower case), in any case. */
static bool switch_word_is(const char *value, size_t n, const char *word) {
    size_t i = 0;
    for (; i < n && word[i] != '\0'; i++)
        if ((value[i] | 0x20) != word[i]) return false;
    return i == n && word[i] == '\0';
}

int mulch_env_switch(const char *name, const char *who, int fallback) {
    size_t n;
    const char *value = mulch_env_trimmed(name, &n);
    if (value == NULL) return fallback;
    static const char *const off_words[] = { "0", "off", "false", "no" };
    static const char *const on_words[] = { "1", "on", "true", "yes" };
    for (size_t w = 0; w < sizeof off_words / sizeof off_words[0]; w++) {
        if (switch_word_is(value, n, off_words[w])) return 0;
        if (switch_word_is(value, n, on_words[w])) return 1;
    }
    /* a number: its digits tell, however many there are */
    size_t i = value[0] == '-' || value[0] == '+';
    bool digits = i < n, non_zero = false;
    for (; i < n && digits; i++) {
        if (value[i] < '0' || value[i] > '9') digits = false;
        else if (value[i] != '0') non_zero = true;
    }
    if (digits && !non_zero) return 0; /* 00, -0 */
    int result = digits || value[0] != '0';
    const char *problem = digits ? "is not 0 or 1" : "is not 0, 1, on, off, true, false, yes or no";
    char what[256];
    snprintf(what, sizeof what, "%s: %s=%.*s %s (%s)", who, name, (int)(n < 64 ? n : 64), value, problem,
             result ? "on" : "off");
    mulch_report(what, getenv(name)); /* the environment's string */
    return result;
}
