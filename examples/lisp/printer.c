/* printer.c — values to text, for display (strings, characters and symbols
 * raw) and write (readable: quoted strings, their control bytes as \xH;,
 * #\ characters, and symbols whose name would not read back as that symbol
 * between bars, |a b|).
 *
 * Printing never allocates on the GC heap, so it walks raw pointers: nothing
 * can collect or move while it runs, and object addresses can key a table.
 *
 * Cycles (made by set-car!, set-cdr!, vector-set!) print with datum labels,
 * #0=(1 2 . #0#), as R7RS write does: a first pass, an iterative depth-first
 * walk with its own malloc'd stack, finds the objects that a walk reaches
 * again while still inside them (the targets of its back edges; every
 * cycle has one); the second pass prints, labelling those objects at their
 * first appearance and printing #n# after. Shared parts that form no cycle
 * print in full each time, as before. The first pass is skipped for values
 * whose tree is small (no cycle then), and bounded by the output's size
 * when that is small (lisp_print_bounded, for error messages).
 *
 * The printing pass recurses on cars and vector items (a list's cdrs are a
 * loop): nesting deeper than LISP_MAX_NESTING stops it with an error rather
 * than a C stack overflow. Into an error message's fixed buffer
 * (lisp_type_error, error) printing stops once the buffer is full and the
 * stream reports an error.
 */
#include "lisp.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>

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
        else if ((unsigned char)c < 0x20 || c == 0x7f) fprintf(out, "\\x%x;", (unsigned char)c);
        else fputc(c, out);
    }
    fputc('"', out);
}

static void print_char(FILE *out, int c, int write)
{
    if (!write) {
        fputc(c, out);
        return;
    }
    for (size_t i = 0; i < lisp_char_name_count; i++) {
        if (lisp_char_names[i].code == c) {
            fprintf(out, "#\\%s", lisp_char_names[i].name);
            return;
        }
    }
    /* a control or non-ASCII byte: readable, unlike the raw byte */
    if (c < 0x20 || c >= 0x7f) fprintf(out, "#\\x%02x", c);
    else fprintf(out, "#\\%c", c);
}

/* Whether the reader would read the name back as this symbol when it is
 * printed plain (reader.c: a token runs to a delimiter; one that starts
 * with # ' or | or looks like a number, or is ".", is something else). */
static int symbol_needs_bars(const char *name, size_t len)
{
    if (len == 0 || name[0] == '#' || name[0] == '\'' || name[0] == '|') return 1;
    if (len == 1 && name[0] == '.') return 1;
    size_t sign = name[0] == '+' || name[0] == '-' ? 1 : 0, digits = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == ' ' || c == '(' || c == ')' || c == '"' || c == ';') return 1;
        if (i >= sign && isdigit(c)) digits++;
    }
    return len > sign && digits == len - sign;
}

static void print_symbol(FILE *out, const struct lisp_string *name, int write)
{
    size_t len = lisp_aux((value)name);
    if (!write || !symbol_needs_bars(name->text, len)) {
        fwrite(name->text, 1, len, out);
        return;
    }
    fputc('|', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name->text[i];
        if (c == '|' || c == '\\') fputc('\\', out), fputc(c, out);
        else if (c < 0x20 || c == 0x7f) fprintf(out, "\\x%x;", c);
        else fputc(c, out);
    }
    fputc('|', out);
}

/* ---- the cycle table ------------------------------------------------------- */

/* VISITED: reached by the first pass; OPEN: the first pass is inside it;
 * CYCLE: reached again while OPEN, so it gets a label. */
enum { SEEN_VISITED = 1, SEEN_OPEN = 2, SEEN_CYCLE = 4 };

struct seen { value obj; int flags; int label; };   /* label: -1 until printed */

struct printer {
    FILE *out;
    int write;
    struct seen *table;   /* open addressing, power-of-two capacity; NULL: no cycles */
    size_t capacity, count;
    size_t budget;        /* the first pass stops after this many objects; 0: no limit */
    int next_label;
    int too_deep;
};

static int is_container(value v) { return lisp_is(v, LISP_PAIR) || lisp_is(v, LISP_VECTOR); }

static struct seen *seen_slot(struct seen *table, size_t capacity, value obj)
{
    size_t mask = capacity - 1;
    for (size_t i = ((uintptr_t)obj >> 3) * (size_t)0x9e3779b97f4a7c15u & mask;; i = (i + 1) & mask) {
        if (table[i].obj == NULL || table[i].obj == obj) return &table[i];
    }
}

/* The entry of obj, added (flags 0) when new; NULL when out of memory. */
static struct seen *seen_add(struct printer *p, value obj)
{
    if (2 * (p->count + 1) > p->capacity) {
        size_t capacity = p->capacity ? 2 * p->capacity : 256;
        struct seen *bigger = calloc(capacity, sizeof *bigger);
        if (bigger == NULL) return NULL;
        for (size_t i = 0; i < p->capacity; i++) {
            if (p->table[i].obj != NULL) *seen_slot(bigger, capacity, p->table[i].obj) = p->table[i];
        }
        free(p->table);
        p->table = bigger;
        p->capacity = capacity;
    }
    struct seen *e = seen_slot(p->table, p->capacity, obj);
    if (e->obj == NULL) {
        e->obj = obj;
        e->flags = 0;
        e->label = -1;
        p->count++;
    }
    return e;
}

struct walk_frame { value obj; size_t next; };   /* next: the child to visit */

/* Whether the tree under v has fewer than *left containers: a walk
 * without a table that gives up early, so most values (small ones) need
 * no first pass; a cyclic value's tree is infinite and never fits. */
static int small_tree(value v, int *left)
{
    while (is_container(v)) {
        if (--*left <= 0) return 0;
        if (lisp_is(v, LISP_VECTOR)) {
            for (size_t i = 0; i < lisp_aux(v); i++) {
                if (!small_tree(LISP_VECTOR_OF(v)->items[i], left)) return 0;
            }
            return 1;
        }
        if (!small_tree(LISP_CAR(v), left)) return 0;
        v = LISP_CDR(v);
    }
    return 1;
}

/* The first pass: sets SEEN_CYCLE on the objects that need a label. Keeps
 * p->table when some do, frees it when none do. Returns -1 when out of
 * memory (the table freed: without it a cycle would print forever). */
static int find_cycles(struct printer *p, value root)
{
    size_t depth = 0, capacity = 64;
    struct walk_frame *stack = malloc(capacity * sizeof *stack);
    struct seen *e = stack != NULL ? seen_add(p, root) : NULL;
    int ok = e != NULL, cycles = 0;
    if (ok) {
        e->flags = SEEN_VISITED | SEEN_OPEN;
        stack[depth++] = (struct walk_frame){ root, 0 };
    }
    while (ok && depth > 0) {
        struct walk_frame *f = &stack[depth - 1];
        int pair = lisp_is(f->obj, LISP_PAIR);
        if (f->next == (pair ? 2 : lisp_aux(f->obj))) {
            seen_slot(p->table, p->capacity, f->obj)->flags &= ~SEEN_OPEN;
            depth--;
            continue;
        }
        value child = !pair ? LISP_VECTOR_OF(f->obj)->items[f->next]
                    : f->next == 0 ? LISP_CAR(f->obj) : LISP_CDR(f->obj);
        f->next++;
        if (!is_container(child)) continue;
        if (p->budget != 0 && p->count >= p->budget) break;   /* output that short: enough */
        e = seen_add(p, child);
        if (e == NULL) {
            ok = 0;
        } else if (e->flags & SEEN_OPEN) {
            e->flags |= SEEN_CYCLE;
            cycles = 1;
        } else if (!(e->flags & SEEN_VISITED)) {
            e->flags = SEEN_VISITED | SEEN_OPEN;
            if (depth == capacity) {
                struct walk_frame *bigger = realloc(stack, 2 * capacity * sizeof *stack);
                if (bigger == NULL) {
                    ok = 0;
                    break;
                }
                stack = bigger;
                capacity *= 2;
            }
            stack[depth++] = (struct walk_frame){ child, 0 };
        }
    }
    free(stack);
    if (!ok || !cycles) {
        free(p->table);
        p->table = NULL;
    }
    return ok ? 0 : -1;
}

/* The label of a cycle target: prints #n# and returns 1 when it has been
 * printed already; prints #n= and returns 0 at its first appearance. */
static int print_label(struct printer *p, value v)
{
    if (p->table == NULL) return 0;
    struct seen *e = seen_slot(p->table, p->capacity, v);
    if (e->obj == NULL || !(e->flags & SEEN_CYCLE)) return 0;
    if (e->label >= 0) {
        fprintf(p->out, "#%d#", e->label);
        return 1;
    }
    e->label = p->next_label++;
    fprintf(p->out, "#%d=", e->label);
    return 0;
}

static int has_label(struct printer *p, value v)
{
    if (p->table == NULL) return 0;
    struct seen *e = seen_slot(p->table, p->capacity, v);
    return e->obj != NULL && (e->flags & SEEN_CYCLE);
}

/* ---- printing ------------------------------------------------------------------ */

static void print_value(struct printer *p, value v, int depth)
{
    FILE *out = p->out;
    int write = p->write;
    if (ferror(out) || p->too_deep) return;   /* a full error message buffer: stop */
    if (depth > LISP_MAX_NESTING) {
        p->too_deep = 1;
        return;
    }
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
        if (print_label(p, v)) break;
        fputc('(', out);
        for (;;) {
            print_value(p, LISP_CAR(v), depth + 1);
            v = LISP_CDR(v);
            /* a labelled pair in the cdr prints as a dotted tail, #n# or #n=(...) */
            if (!lisp_is(v, LISP_PAIR) || has_label(p, v)) break;
            if (ferror(out) || p->too_deep) return;
            fputc(' ', out);
        }
        if (v != LISP_NIL) {
            fputs(" . ", out);
            print_value(p, v, depth + 1);
        }
        fputc(')', out);
        break;
    case LISP_SYMBOL: print_symbol(out, LISP_STRING_OF(LISP_SYMBOL_OF(v)->name), write); break;
    case LISP_STRING: print_string(out, LISP_STRING_OF(v), write); break;
    case LISP_VECTOR: {
        size_t n = lisp_aux(v);
        if (print_label(p, v)) break;
        fputs("#(", out);
        for (size_t i = 0; i < n && !ferror(out) && !p->too_deep; i++) {
            if (i) fputc(' ', out);
            print_value(p, LISP_VECTOR_OF(v)->items[i], depth + 1);
        }
        fputc(')', out);
        break;
    }
    case LISP_CLOSURE: {
        /* the name as write prints the symbol, by display too: printed
         * raw, |f g| showed as two words and a NUL byte ended a message */
        value name = LISP_CLOSURE_OF(v)->name;
        fputs("#<procedure", out);
        if (lisp_is(name, LISP_SYMBOL)) {
            fputc(' ', out);
            print_symbol(out, LISP_STRING_OF(LISP_SYMBOL_OF(name)->name), 1);
        }
        fputc('>', out);
        break;
    }
    case LISP_PRIMITIVE: fprintf(out, "#<primitive %s>", ((struct lisp_primitive *)v)->name); break;
    case LISP_PORT: fputs("#<port>", out); break;
    case LISP_EPHEMERON: fputs("#<ephemeron>", out); break;
    default: fputs("#<frame>", out); break;
    }
}

static void print_top(FILE *out, value v, int write, size_t budget)
{
    struct printer p = { out, write, NULL, 0, 0, budget, 0, 0 };
    int left = 64;
    if (is_container(v) && !small_tree(v, &left) && find_cycles(&p, v) != 0) lisp_out_of_memory();
    print_value(&p, v, 0);
    free(p.table);
    if (p.too_deep) lisp_error("%s: nesting too deep", write ? "write" : "display");
}

void lisp_print(FILE *out, value v, int write) { print_top(out, v, write, 0); }

/* Into a stream that takes at most `size` bytes (an error message): each
 * object printed takes at least one byte, so the first pass need not look
 * at more than `size` of them, however big the value. */
void lisp_print_bounded(FILE *out, value v, int write, size_t size)
{
    print_top(out, v, write, size + 1);
}

/* Display prints a string's or a symbol's bytes raw, NUL bytes too (the
 * error primitive displays its message): each becomes \x0; here, its
 * write form, or the C string would end there. The text (len bytes, NUL
 * bytes included) is widened in place from the back, cut to size - 1. */
static void escape_nul_bytes(char *buf, size_t size, size_t len)
{
    size_t nuls = 0;
    for (size_t i = 0; i < len; i++) nuls += buf[i] == '\0';
    if (nuls == 0) return;
    static const char escape[] = "\\x0;";
    size_t out = len + 3 * nuls;   /* past the widened text; always >= the byte read */
    for (size_t i = len; i-- > 0;) {
        if (buf[i] != '\0') {
            if (--out < size - 1) buf[out] = buf[i];
            continue;
        }
        for (size_t k = 4; k-- > 0;) {
            if (--out < size - 1) buf[out] = escape[k];
        }
    }
    len += 3 * nuls;
    buf[len < size - 1 ? len : size - 1] = '\0';
}

char *lisp_print_to(char *buf, size_t size, value v, int write)
{
    FILE *f = fmemopen(buf, size, "w");
    if (f == NULL) {
        buf[0] = '\0';
        return buf;
    }
    /* An error while printing (out of memory in find_cycles) closes the
     * stream before it goes on up: the jump used to skip the fclose and
     * leak one stream per error. */
    struct lisp_catch c;
    if (setjmp(c.jump) != 0) {
        lisp_catch_landed(&c);
        fclose(f);
        buf[0] = '\0';
        lisp_error("%s", c.message);
    }
    lisp_catch_enter(&c);
    lisp_print_bounded(f, v, write, size);
    lisp_catch_leave(&c);
    fflush(f);
    long end = ftell(f);   /* (past size - 1 once the stream is full) */
    fclose(f);   /* fmemopen NUL-terminates within the buffer */
    if (!write && end > 0) escape_nul_bytes(buf, size, (size_t)end < size ? (size_t)end : size - 1);
    return buf;
}
