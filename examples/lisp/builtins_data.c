/* builtins_data.c — primitives on strings, characters, symbols and vectors.
 *
 * Strings are immutable byte strings (string-append and substring make new
 * ones). A primitive that builds a string from other strings allocates the
 * result first and copies from its (rooted) arguments afterwards: the
 * sources' bytes are read only once no allocation can move them.
 */
#include "lisp.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

const char *lisp_string_arg(value v, const char *who)
{
    if (!lisp_is(v, LISP_STRING)) lisp_type_error(who, "string", v);
    return LISP_STRING_OF(v)->text;
}

static size_t string_length(value v) { return lisp_aux(v); }

static value prim_stringp(value *args, int argc) { (void)argc; return lisp_bool(lisp_is(args[0], LISP_STRING)); }

static value prim_string_length(value *args, int argc)
{
    (void)argc;
    lisp_string_arg(args[0], "string-length");
    return lisp_fixnum((intptr_t)string_length(args[0]));
}

static size_t index_arg(value v, size_t limit, const char *who)
{
    intptr_t i = lisp_fixnum_arg(v, who);
    if (i < 0 || (size_t)i > limit) lisp_error("%s: index %" PRIdPTR " out of range", who, i);
    return (size_t)i;
}

static value prim_string_ref(value *args, int argc)
{
    (void)argc;
    const char *s = lisp_string_arg(args[0], "string-ref");
    size_t len = string_length(args[0]);
    if (len == 0) lisp_error("string-ref: empty string");
    return lisp_char(s[index_arg(args[1], len - 1, "string-ref")]);
}

static value prim_substring(value *args, int argc)
{
    lisp_string_arg(args[0], "substring");
    size_t len = string_length(args[0]);
    size_t start = index_arg(args[1], len, "substring");
    size_t end = argc > 2 ? index_arg(args[2], len, "substring") : len;
    if (end < start) lisp_error("substring: end %zu before start %zu", end, start);
    value result = lisp_make_string_uninit(end - start);
    memcpy(LISP_STRING_OF(result)->text, LISP_STRING_OF(args[0])->text + start, end - start);
    return result;
}

static value prim_string_append(value *args, int argc)
{
    size_t total = 0;
    for (int i = 0; i < argc; i++) {
        lisp_string_arg(args[i], "string-append");
        total += string_length(args[i]);
    }
    value result = lisp_make_string_uninit(total);
    char *out = LISP_STRING_OF(result)->text;   /* sources read after the allocation */
    for (int i = 0; i < argc; i++) {
        memcpy(out, LISP_STRING_OF(args[i])->text, string_length(args[i]));
        out += string_length(args[i]);
    }
    return result;
}

static int string_compare(value *args, const char *who)
{
    lisp_string_arg(args[0], who);
    lisp_string_arg(args[1], who);
    size_t la = string_length(args[0]), lb = string_length(args[1]);
    int c = memcmp(LISP_STRING_OF(args[0])->text, LISP_STRING_OF(args[1])->text, la < lb ? la : lb);
    return c != 0 ? c : (la > lb) - (la < lb);
}
static value prim_string_eq(value *args, int argc) { (void)argc; return lisp_bool(string_compare(args, "string=?") == 0); }
static value prim_string_lt(value *args, int argc) { (void)argc; return lisp_bool(string_compare(args, "string<?") < 0); }
static value prim_string_gt(value *args, int argc) { (void)argc; return lisp_bool(string_compare(args, "string>?") > 0); }

static value prim_number_to_string(value *args, int argc)
{
    (void)argc;
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%" PRIdPTR, lisp_fixnum_arg(args[0], "number->string"));
    return lisp_make_string(buf, (size_t)len);
}

static value prim_string_to_number(value *args, int argc)
{
    (void)argc;
    const char *s = lisp_string_arg(args[0], "string->number");
    size_t len = string_length(args[0]);
    /* The reader's syntax, all of the string: strtoll alone would also take
     * leading white space ("  12") and stop at an embedded NUL byte. */
    size_t first = len > 0 && (s[0] == '+' || s[0] == '-') ? 1 : 0;
    if (first == len) return LISP_FALSE;
    for (size_t i = first; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) return LISP_FALSE;
    }
    errno = 0;
    long long n = strtoll(s, NULL, 10);
    if (errno != 0 || n > LISP_FIXNUM_MAX || n < LISP_FIXNUM_MIN) return LISP_FALSE;
    return lisp_fixnum((intptr_t)n);
}

static value prim_symbol_to_string(value *args, int argc)
{
    (void)argc;
    if (!lisp_is(args[0], LISP_SYMBOL)) lisp_type_error("symbol->string", "symbol", args[0]);
    return LISP_SYMBOL_OF(args[0])->name;   /* strings are immutable: share it */
}

static value prim_string_to_symbol(value *args, int argc)
{
    (void)argc;
    const char *s = lisp_string_arg(args[0], "string->symbol");
    size_t len = string_length(args[0]);
    char name[256];   /* intern must not read a GC string: copy it out first */
    if (len >= sizeof name) lisp_error("string->symbol: name longer than %zu bytes", sizeof name - 1);
    memcpy(name, s, len);
    value sym = lisp_intern_len(name, len);
    return sym;
}

static value prim_string_to_list(value *args, int argc)
{
    (void)argc;
    lisp_string_arg(args[0], "string->list");
    size_t len = string_length(args[0]);
    value *first = lisp_sp;
    if ((size_t)(lisp_stack_end - lisp_sp) < len) lisp_stack_overflow();
    for (size_t i = 0; i < len; i++) *lisp_sp++ = lisp_char(LISP_STRING_OF(args[0])->text[i]);
    return lisp_list_from_stack(first, (int)len, LISP_NIL);
}

static value prim_list_to_string(value *args, int argc)
{
    (void)argc;
    intptr_t n = lisp_list_length(args[0]);
    if (n < 0) lisp_type_error("list->string", "list", args[0]);
    value result = lisp_make_string_uninit((size_t)n);
    char *out = LISP_STRING_OF(result)->text;
    for (value l = args[0]; l != LISP_NIL; l = LISP_CDR(l)) {
        if (!lisp_is_char(LISP_CAR(l))) lisp_type_error("list->string", "character", LISP_CAR(l));
        *out++ = (char)lisp_char_value(LISP_CAR(l));
    }
    return result;
}

static value prim_charp(value *args, int argc) { (void)argc; return lisp_bool(lisp_is_char(args[0])); }

static int char_arg(value v, const char *who)
{
    if (!lisp_is_char(v)) lisp_type_error(who, "character", v);
    return lisp_char_value(v);
}

static value prim_char_to_integer(value *args, int argc) { (void)argc; return lisp_fixnum(char_arg(args[0], "char->integer")); }
static value prim_integer_to_char(value *args, int argc)
{
    (void)argc;
    return lisp_char((int)index_arg(args[0], 255, "integer->char"));
}
static value prim_char_eq(value *args, int argc) { (void)argc; return lisp_bool(char_arg(args[0], "char=?") == char_arg(args[1], "char=?")); }

/* ---- vectors ------------------------------------------------------------------------- */

static value vector_arg(value v, const char *who)
{
    if (!lisp_is(v, LISP_VECTOR)) lisp_type_error(who, "vector", v);
    return v;
}

static value prim_vectorp(value *args, int argc) { (void)argc; return lisp_bool(lisp_is(args[0], LISP_VECTOR)); }

static value prim_make_vector(value *args, int argc)
{
    intptr_t n = lisp_fixnum_arg(args[0], "make-vector");
    if (n < 0) lisp_error("make-vector: negative length");
    return lisp_make_vector((size_t)n, argc > 1 ? args[1] : LISP_FALSE);
}

static value prim_vector(value *args, int argc)
{
    value v = lisp_make_vector((size_t)argc, LISP_FALSE);
    for (int i = 0; i < argc; i++) lisp_write_init(v, &LISP_VECTOR_OF(v)->items[i], args[i]);
    return v;
}

static value prim_vector_length(value *args, int argc) { (void)argc; return lisp_fixnum((intptr_t)lisp_aux(vector_arg(args[0], "vector-length"))); }

static value prim_vector_ref(value *args, int argc)
{
    (void)argc;
    size_t len = lisp_aux(vector_arg(args[0], "vector-ref"));
    if (len == 0) lisp_error("vector-ref: empty vector");
    return LISP_VECTOR_OF(args[0])->items[index_arg(args[1], len - 1, "vector-ref")];
}

static value prim_vector_set(value *args, int argc)
{
    (void)argc;
    size_t len = lisp_aux(vector_arg(args[0], "vector-set!"));
    if (len == 0) lisp_error("vector-set!: empty vector");
    size_t i = index_arg(args[1], len - 1, "vector-set!");
    lisp_write(args[0], &LISP_VECTOR_OF(args[0])->items[i], args[2]);
    return LISP_UNSPEC;
}

static value prim_vector_to_list(value *args, int argc)
{
    (void)argc;
    size_t len = lisp_aux(vector_arg(args[0], "vector->list"));
    if ((size_t)(lisp_stack_end - lisp_sp) < len) lisp_stack_overflow();
    value *first = lisp_sp;
    for (size_t i = 0; i < len; i++) *lisp_sp++ = LISP_VECTOR_OF(args[0])->items[i];
    return lisp_list_from_stack(first, (int)len, LISP_NIL);
}

static value prim_list_to_vector(value *args, int argc)
{
    (void)argc;
    intptr_t n = lisp_list_length(args[0]);
    if (n < 0) lisp_type_error("list->vector", "list", args[0]);
    value v = lisp_make_vector((size_t)n, LISP_FALSE);
    size_t i = 0;
    for (value l = args[0]; l != LISP_NIL; l = LISP_CDR(l)) lisp_write_init(v, &LISP_VECTOR_OF(v)->items[i++], LISP_CAR(l));
    return v;
}

void lisp_builtins_data_init(void)
{
    static const struct { const char *name; lisp_prim_fn fn; int min, max; } table[] = {
        { "string?", prim_stringp, 1, 1 }, { "string-length", prim_string_length, 1, 1 },
        { "string-ref", prim_string_ref, 2, 2 }, { "substring", prim_substring, 2, 3 },
        { "string-append", prim_string_append, 0, -1 }, { "string=?", prim_string_eq, 2, 2 },
        { "string<?", prim_string_lt, 2, 2 }, { "string>?", prim_string_gt, 2, 2 },
        { "number->string", prim_number_to_string, 1, 1 },
        { "string->number", prim_string_to_number, 1, 1 },
        { "symbol->string", prim_symbol_to_string, 1, 1 },
        { "string->symbol", prim_string_to_symbol, 1, 1 },
        { "string->list", prim_string_to_list, 1, 1 }, { "list->string", prim_list_to_string, 1, 1 },
        { "char?", prim_charp, 1, 1 }, { "char->integer", prim_char_to_integer, 1, 1 },
        { "integer->char", prim_integer_to_char, 1, 1 }, { "char=?", prim_char_eq, 2, 2 },
        { "vector?", prim_vectorp, 1, 1 }, { "make-vector", prim_make_vector, 1, 2 },
        { "vector", prim_vector, 0, -1 }, { "vector-length", prim_vector_length, 1, 1 },
        { "vector-ref", prim_vector_ref, 2, 2 }, { "vector-set!", prim_vector_set, 3, 3 },
        { "vector->list", prim_vector_to_list, 1, 1 }, { "list->vector", prim_list_to_vector, 1, 1 },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        lisp_define_primitive(table[i].name, table[i].fn, table[i].min, table[i].max);
    }
}
