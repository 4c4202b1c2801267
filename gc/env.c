/* env.c — reading the MULCH_GC_* environment variables gc_heap_create
 * honours: sizes and counts, decimal numbers, and words.
 *
 * Invariants:
 *   - A value is taken whole or not at all. Trailing text, an unknown
 *     suffix or word, a comma for a decimal point: the value is malformed,
 *     reported, and ignored (the caller's fallback, the option field or
 *     its default, stays). "12X" was 12 bytes and "alwys" auto compaction,
 *     with no word said.
 *   - A value out of its range is reported and clamped to the range, as
 *     docs/tuning.md says.
 *   - Unset and empty variables are silent: they mean "not overridden".
 *   - The on/off switches (gc_env_flag) are read by pool/env.c, with the
 *     pool's: the same words, the same reports.
 *   - Every report goes through mulch_report, one per bad value and read
 *     (gc_heap_create reads each variable once), as
 *     "gc_heap_create: NAME=VALUE problem (replacement)" (VALUE without
 *     surrounding blanks), with the environment's string as the pointer.
 *   - Nothing here depends on the C library's locale: decimal numbers are
 *     parsed by hand, '.' always the decimal point. strtod follows
 *     LC_NUMERIC, and an embedder's interpreter that called
 *     setlocale(LC_NUMERIC, "de_DE.UTF-8") made "1.5" read as 1 (and so a
 *     heap_growth of 2.0); switching the locale round the call (uselocale)
 *     is per thread but not async-signal-safe or free, and strtod_l is a
 *     glibc/BSD extension. isspace and the like are avoided for the same
 *     reason.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc_internal.h"

static bool env_is_digit(char c) { return c >= '0' && c <= '9'; }

/* The variable's value without surrounding blanks (pool/env.c's
 * mulch_env_trimmed), copied into `buffer`; NULL when unset, empty or
 * blank. */
static const char *env_value(const char *name, char *buffer, size_t size) {
    size_t n;
    const char *v = mulch_env_trimmed(name, &n);
    if (v == NULL) return NULL;
    /* a value too long for any number: cut, and marked malformed with a
     * '?' (taking its first digits would be taking it in part) */
    bool too_long = n >= size;
    if (too_long) n = size - 2;
    memcpy(buffer, v, n);
    if (too_long) buffer[n++] = '?';
    buffer[n] = '\0';
    return buffer;
}

enum { ENV_VALUE_MAX = 96 };

/* The one report every bad value gets; `value` NULL: the variable's,
 * trimmed like every other report's (heap.c's range reports pass NULL). */
void gc_env_report(const char *name, const char *value, const char *problem, const char *replacement) {
    char buffer[ENV_VALUE_MAX];
    if (value == NULL) value = env_value(name, buffer, sizeof buffer);
    if (value == NULL) value = "";
    char what[256];
    snprintf(what, sizeof what, "gc_heap_create: %s=%.64s %s (%s)", name, value, problem, replacement);
    mulch_report(what, getenv(name)); /* the environment's string, not a copy */
}

/* Decimal digits, an optional k/m/g suffix (×1024ⁿ, either case): sets
 * *out and returns true, saturating (and reporting) at `max`; a negative
 * number reads as 0 (reported); anything else is reported and false. */
static bool env_parse_size(const char *name, const char *value, size_t max, const char *max_text, size_t *out) {
    const char *p = value;
    bool negative = *p == '-';
    if (*p == '-' || *p == '+') p++;
    if (!env_is_digit(*p)) goto malformed;
    size_t n = 0;
    bool over = false;
    for (; env_is_digit(*p); p++) {
        size_t digit = (size_t)(*p - '0');
        if (n > (SIZE_MAX - digit) / 10) over = true;
        else n = n * 10 + digit;
    }
    unsigned shift = 0;
    if (*p == 'k' || *p == 'K') shift = 10;
    else if (*p == 'm' || *p == 'M') shift = 20;
    else if (*p == 'g' || *p == 'G') shift = 30;
    if (shift) p++;
    if (*p != '\0') goto malformed;
    if (negative) {
        if (n != 0 || over) gc_env_report(name, value, "is negative", "0 used");
        *out = 0;
        return true;
    }
    if (over || n > (max >> shift)) {
        gc_env_report(name, value, "is too big", max_text);
        *out = max;
        return true;
    }
    *out = n << shift;
    return true;
malformed:
    gc_env_report(name, value, "is not a number (digits, then an optional k, m or g)", "ignored");
    return false;
}

size_t gc_env_size(const char *name, size_t fallback) {
    char buffer[ENV_VALUE_MAX];
    const char *value = env_value(name, buffer, sizeof buffer);
    size_t n;
    if (value == NULL || !env_parse_size(name, value, SIZE_MAX, "the largest size used", &n)) return fallback;
    return n;
}

size_t gc_env_count(const char *name, size_t fallback, size_t max) {
    char buffer[ENV_VALUE_MAX];
    const char *value = env_value(name, buffer, sizeof buffer);
    char max_text[40];
    snprintf(max_text, sizeof max_text, "%zu used", max);
    size_t n;
    if (value == NULL || !env_parse_size(name, value, max, max_text, &n)) return fallback;
    return n;
}

/* The pool's switches and the collector's read the same words, in one
 * place (pool/env.c): MULCH_GC_GENERATIONAL=yes was ignored (reported)
 * while MULCH_SECURE=yes was on, and a number too big for a size_t was
 * reported twice. */
int gc_env_flag(const char *name, int fallback) { return mulch_env_switch(name, "gc_heap_create", fallback); }

/* 10^k for 0 <= k <= 22 is exact in a double. */
static double env_power_of_ten(int k) {
    double r = 1.0;
    for (int i = 0; i < k; i++) r *= 10.0;
    return r;
}

/* A decimal number: [+-]digits[.digits][e[+-]digits], '.' whatever the
 * locale; at least one digit. The result is exact for up to 15
 * significant digits and an exponent within 22 (every value a person
 * writes here), else within an ulp or two; false when malformed. */
static bool env_parse_decimal(const char *s, double *out) {
    bool negative = *s == '-';
    if (*s == '-' || *s == '+') s++;
    uint64_t mantissa = 0;
    int exponent = 0, digits = 0;
    for (; env_is_digit(*s); s++, digits++) {
        if (mantissa < UINT64_C(100000000000000000)) mantissa = mantissa * 10 + (uint64_t)(*s - '0');
        else exponent++; /* past 17 significant digits: the rest only scale */
    }
    if (*s == '.') {
        for (s++; env_is_digit(*s); s++, digits++) {
            if (mantissa < UINT64_C(100000000000000000)) {
                mantissa = mantissa * 10 + (uint64_t)(*s - '0');
                exponent--;
            }
        }
    }
    if (digits == 0) return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        bool exponent_negative = *s == '-';
        if (*s == '-' || *s == '+') s++;
        if (!env_is_digit(*s)) return false;
        int e = 0;
        for (; env_is_digit(*s); s++)
            if (e < 10000) e = e * 10 + (*s - '0');
        exponent += exponent_negative ? -e : e;
    }
    if (*s != '\0') return false;
    double value = (double)mantissa;
    if (mantissa != 0) {
        /* (far out of range: the callers clamp to at most 1000) */
        if (exponent > 400) value = HUGE_VAL;
        else if (exponent < -400) value = 0.0;
        else {
            for (; exponent > 22; exponent -= 22) value *= env_power_of_ten(22);
            for (; exponent < -22; exponent += 22) value /= env_power_of_ten(22);
            value = exponent >= 0 ? value * env_power_of_ten(exponent) : value / env_power_of_ten(-exponent);
        }
    }
    *out = negative ? -value : value;
    return true;
}

bool gc_env_decimal(const char *name, double *out) {
    char buffer[ENV_VALUE_MAX];
    const char *value = env_value(name, buffer, sizeof buffer);
    if (value == NULL) return false;
    if (env_parse_decimal(value, out)) return true;
    /* "1,5": written for a comma locale; '.' is the decimal point here */
    if (strchr(value, ',')) gc_env_report(name, value, "is not a decimal number: the decimal point is '.'", "ignored");
    else gc_env_report(name, value, "is not a decimal number", "ignored");
    return false;
}

int gc_env_word(const char *name, int fallback, const char *const *words, const int *values, size_t count,
                const char *expected) {
    char buffer[ENV_VALUE_MAX];
    const char *value = env_value(name, buffer, sizeof buffer);
    if (value == NULL) return fallback;
    for (size_t i = 0; i < count; i++)
        if (!strcmp(value, words[i])) return values[i];
    gc_env_report(name, value, expected, "ignored");
    return fallback;
}
