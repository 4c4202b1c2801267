/* printer.c — values to text, for display (strings and characters raw) and
 * write (readable: quoted strings, #\ characters).
 *
 * Printing never allocates, so it walks raw pointers: nothing can collect
 * or move while it runs. Lists recurse on the car only (long lists print in
 * a loop); a list nested tens of thousands deep would exhaust the C stack.
 * A cyclic structure prints forever on stdout; into an error message's
 * fixed buffer (lisp_type_error, error) it stops once the buffer is full
 * and the stream reports an error.
 */
#include "lisp.h"

#include <inttypes.h>

static void print_string(FILE *out, const struct lisp_string *s, int write)
{
    size_t len = lisp_aux((value)s);
    if (!write) {
        fwrite(s->text, 1, len, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        char c = s->text[i];
        if (c == '"' || c == '\\') fputc('\\', out), fputc(c, out);
        else if (c == '\n') fputs("\\n", out);
        else if (c == '\t') fputs("\\t", out);
        else fputc(c, out);
    }
    fputc('"', out);
}

static void print_char(FILE *out, int c, int write)
{
    if (!write) fputc(c, out);
    else if (c == ' ') fputs("#\\space", out);
    else if (c == '\n') fputs("#\\newline", out);
    else if (c == '\t') fputs("#\\tab", out);
    else fprintf(out, "#\\%c", c);
}

void lisp_print(FILE *out, value v, int write)
{
    if (ferror(out)) return;   /* a full error message buffer (fmemopen): stop, even in a cycle */
    if (lisp_is_fixnum(v)) {
        fprintf(out, "%" PRIdPTR, lisp_fixnum_value(v));
        return;
    }
    if (lisp_is_char(v)) {
        print_char(out, lisp_char_value(v), write);
        return;
    }
    if (!lisp_is_object(v)) {
        const char *name = v == LISP_NIL ? "()" : v == LISP_TRUE ? "#t" : v == LISP_FALSE ? "#f"
                         : v == LISP_EOF ? "#<eof>" : v == LISP_UNSPEC ? "" : "#<unbound>";
        fputs(name, out);
        return;
    }
    switch (lisp_kind_of(v)) {
    case LISP_PAIR:
        fputc('(', out);
        for (;;) {
            lisp_print(out, LISP_CAR(v), write);
            v = LISP_CDR(v);
            if (!lisp_is(v, LISP_PAIR)) break;
            if (ferror(out)) return;   /* (a cyclic list) */
            fputc(' ', out);
        }
        if (v != LISP_NIL) {
            fputs(" . ", out);
            lisp_print(out, v, write);
        }
        fputc(')', out);
        break;
    case LISP_SYMBOL: print_string(out, LISP_STRING_OF(LISP_SYMBOL_OF(v)->name), 0); break;
    case LISP_STRING: print_string(out, LISP_STRING_OF(v), write); break;
    case LISP_VECTOR: {
        size_t n = lisp_aux(v);
        fputs("#(", out);
        for (size_t i = 0; i < n; i++) {
            if (i) fputc(' ', out);
            lisp_print(out, LISP_VECTOR_OF(v)->items[i], write);
        }
        fputc(')', out);
        break;
    }
    case LISP_CLOSURE: {
        value name = LISP_CLOSURE_OF(v)->name;
        fputs("#<procedure", out);
        if (lisp_is(name, LISP_SYMBOL)) fputc(' ', out), lisp_print(out, name, 0);
        fputc('>', out);
        break;
    }
    case LISP_PRIMITIVE: fprintf(out, "#<primitive %s>", ((struct lisp_primitive *)v)->name); break;
    case LISP_PORT: fputs("#<port>", out); break;
    default: fputs("#<frame>", out); break;
    }
}
