/* lisp.h — the value representation and the interpreter core's interface,
 * shared by every file of the Scheme-like example interpreter.
 *
 * A value is a `void *` so that it can sit in any collector slot:
 *   - fixnum:    (n << 1) | 1            low bit set
 *   - constant:  (k << 3) | 2            (), #f, #t, unspecified, eof, unbound
 *   - character: (c << 3) | 6
 *   - otherwise: a pointer to a heap object (8-byte aligned, low 3 bits 0).
 * Immediates have one of their low 3 bits set, so the collector skips them
 * (docs/gc.md, "tagged immediates"); Boehm ignores them as non-pointers.
 *
 * Every heap object starts with one word, `hdr`: the object kind in the low
 * 8 bits and a kind-specific number above (length of a string or vector,
 * line number of a pair made by the reader, arity of a primitive, the
 * special-form number of a symbol). The kind is ours, not the collector's,
 * so that both backends see the same layout and a type test is one load.
 *
 * The rooting rule (docs/embedding.md): a value used after a call that can
 * allocate lives in a rooted slot — a C local pushed with LISP_ROOT, a slot
 * of the value stack, or a field of an object reachable from them — and is
 * read again from that slot after the call.
 */
#ifndef LISP_H
#define LISP_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef void *value;

/* ---- immediates ----------------------------------------------------------- */

#define LISP_FIXNUM_MAX ((intptr_t)(INTPTR_MAX >> 1))
#define LISP_FIXNUM_MIN ((intptr_t)(INTPTR_MIN >> 1))

static inline int lisp_is_fixnum(value v) { return ((uintptr_t)v & 1u) != 0; }
static inline value lisp_fixnum(intptr_t n) { return (value)(((uintptr_t)n << 1) | 1u); }
static inline intptr_t lisp_fixnum_value(value v) { return (intptr_t)(uintptr_t)v >> 1; }

#define LISP_CONST(k) ((value)(uintptr_t)(((k) << 3) | 2u))
#define LISP_NIL    LISP_CONST(0)
#define LISP_FALSE  LISP_CONST(1)
#define LISP_TRUE   LISP_CONST(2)
#define LISP_UNSPEC LISP_CONST(3)
#define LISP_EOF    LISP_CONST(4)
#define LISP_UNBOUND LISP_CONST(5)   /* a global's value before its define */

static inline int lisp_is_char(value v) { return ((uintptr_t)v & 7u) == 6u; }
static inline value lisp_char(int c) { return (value)(((uintptr_t)(unsigned char)c << 3) | 6u); }
static inline int lisp_char_value(value v) { return (int)((uintptr_t)v >> 3); }
static inline int lisp_is_object(value v) { return ((uintptr_t)v & 7u) == 0 && v != NULL; }
static inline value lisp_bool(int b) { return b ? LISP_TRUE : LISP_FALSE; }

/* ---- heap objects --------------------------------------------------------- */

enum lisp_kind {
    LISP_PAIR = 1, LISP_SYMBOL, LISP_STRING, LISP_VECTOR,
    LISP_CLOSURE, LISP_PRIMITIVE, LISP_FRAME, LISP_PORT, LISP_EPHEMERON, LISP_KINDS
};

typedef uintptr_t lisp_hdr_t;
#define LISP_HDR(kind, aux) ((lisp_hdr_t)(kind) | ((lisp_hdr_t)(aux) << 8))

struct lisp_pair      { lisp_hdr_t hdr; value car, cdr; };               /* aux: line */
/* bound_locally: some closure has it as a parameter, or some let, letrec,
 * named let or internal define binds it. Until then no frame can name it,
 * and its lookups go straight to `global`. Never cleared. */
struct lisp_symbol    { lisp_hdr_t hdr; value name, global; uintptr_t bound_locally; }; /* aux: special form */
struct lisp_string    { lisp_hdr_t hdr; char text[]; };                  /* aux: length; NUL-terminated */
struct lisp_vector    { lisp_hdr_t hdr; value items[]; };                /* aux: length */
/* params: the parameter list (symbols, possibly improper for a rest
 * parameter; for named let, the binding list); body: the expression list. */
struct lisp_closure   { lisp_hdr_t hdr; value params, body, env, name; }; /* aux: required count | rest << 16 */
typedef value (*lisp_prim_fn)(value *args, int argc);
struct lisp_primitive { lisp_hdr_t hdr; lisp_prim_fn fn; const char *name; }; /* aux: min | max << 8 (max 255 = any) */
/* names: the list whose i-th element names values[i] (a symbol, or a
 * binding (symbol init) of a let); extras: an alist of internal defines. */
struct lisp_frame     { lisp_hdr_t hdr; value parent, names, extras; value values[]; }; /* aux: count */
struct lisp_port_res;                                                    /* rc object: ports.c */
struct lisp_port      { lisp_hdr_t hdr; struct lisp_port_res *res; };    /* aux: 1 input, 2 output */
/* the backend's ephemeron object (lisp_backend_ephemeron_new) */
struct lisp_ephemeron { lisp_hdr_t hdr; void *ephemeron; };

static inline unsigned lisp_kind_of(value v) { return (unsigned)(*(lisp_hdr_t *)v & 0xffu); }
static inline uintptr_t lisp_aux(value v) { return *(lisp_hdr_t *)v >> 8; }
static inline int lisp_is(value v, enum lisp_kind k) { return lisp_is_object(v) && lisp_kind_of(v) == (unsigned)k; }

#define LISP_PAIR_OF(v)    ((struct lisp_pair *)(v))
#define LISP_SYMBOL_OF(v)  ((struct lisp_symbol *)(v))
#define LISP_STRING_OF(v)  ((struct lisp_string *)(v))
#define LISP_VECTOR_OF(v)  ((struct lisp_vector *)(v))
#define LISP_CLOSURE_OF(v) ((struct lisp_closure *)(v))
#define LISP_FRAME_OF(v)   ((struct lisp_frame *)(v))
#define LISP_CAR(v) (LISP_PAIR_OF(v)->car)
#define LISP_CDR(v) (LISP_PAIR_OF(v)->cdr)

/* (see struct lisp_symbol) */
static inline void lisp_mark_bound_locally(value name)
{
    if (lisp_is(name, LISP_PAIR)) name = LISP_CAR(name);   /* a (var init) binding */
    if (lisp_is(name, LISP_SYMBOL)) LISP_SYMBOL_OF(name)->bound_locally = 1;
}

#include "backend.h"

/* ---- the interpreter's global state -------------------------------------- */

/* Global roots, registered once with lisp_backend_add_global_roots. */
enum lisp_global {
    LISP_G_SYMTAB,       /* vector: the intern table (open addressing) */
    LISP_G_ARGS,         /* *args*: the command-line arguments after the script */
    LISP_G_COUNT
};
extern value lisp_globals[LISP_G_COUNT];

/* The value stack: arguments of calls being evaluated and builtins'
 * scratch values. A root (only [0, sp) counts); never moves. */
extern value *lisp_stack, *lisp_sp, *lisp_stack_end;
void lisp_stack_overflow(void);
static inline void lisp_push(value v)
{
    if (lisp_sp == lisp_stack_end) lisp_stack_overflow();
    *lisp_sp++ = v;
}

/* Error unwinding: lisp_error longjmps to the innermost lisp_catch. The
 * catcher restores the root stack depth, the value stack and the eval
 * depth recorded when it was set up, before any allocation. */
struct lisp_catch {
    jmp_buf jump;
    struct lisp_catch *outer;
    size_t root_depth;
    value *sp;
    int eval_depth;
    char message[512];
    int line;
};
extern struct lisp_catch *lisp_catcher;
extern int lisp_current_line;
extern int lisp_eval_depth;
void lisp_catch_enter(struct lisp_catch *c);   /* after setjmp returned 0 */
void lisp_catch_leave(struct lisp_catch *c);   /* on the normal path */
void lisp_catch_landed(struct lisp_catch *c);  /* after setjmp returned 1 */
_Noreturn void lisp_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
_Noreturn void lisp_type_error(const char *who, const char *expected, value got);

/* LISP_EVAL_HOOK (fuzz/lisp_fuzz.c only): a function called at every
 * evaluation step (eval.c) and every object equal? compares (equal.c),
 * which may raise an error:
 * the fuzzer's step and time budget. Not defined in the interpreter's own
 * builds. */
#ifdef LISP_EVAL_HOOK
void LISP_EVAL_HOOK(void);
#endif

/* ---- object.c -------------------------------------------------------------- */
void  lisp_objects_init(void);
value lisp_cons(value car, value cdr);
value lisp_cons_slots(value *car, value *cdr);     /* slots are rooted: no pushes */
value lisp_make_string(const char *text, size_t len);
value lisp_make_string_uninit(size_t len);
value lisp_make_vector(size_t len, value fill);
value lisp_intern(const char *name);
value lisp_intern_len(const char *name, size_t len);   /* name must not be in a GC object */
extern const gc_type_t lisp_port_type;
value lisp_make_closure(value *params, value *body, value *env);
value lisp_make_frame(size_t count, value *parent, value *names);
void  lisp_define_primitive(const char *name, lisp_prim_fn fn, int min, int max);
value lisp_list_from_stack(value *first, int n, value tail);  /* [first, first+n) on the value stack */
int   lisp_push_elements(value list, const char *who);        /* a proper list's elements, onto the value stack */
value lisp_prim_apply(value *args, int argc);                 /* the apply primitive (eval.c calls it inline) */
intptr_t lisp_list_length(value list);                      /* -1 when not a proper list */
extern const char *const lisp_kind_names[LISP_KINDS];

/* Special forms, numbered in the symbol's aux field. */
enum lisp_special {
    LISP_SF_NONE, LISP_SF_QUOTE, LISP_SF_IF, LISP_SF_DEFINE, LISP_SF_SET, LISP_SF_LAMBDA,
    LISP_SF_BEGIN, LISP_SF_LET, LISP_SF_LETSTAR, LISP_SF_LETREC, LISP_SF_COND,
    LISP_SF_AND, LISP_SF_OR, LISP_SF_WHEN, LISP_SF_UNLESS, LISP_SF_ELSE
};

/* How deep the C recursions over data (reader, printer) may go
 * before they report an error: data nested deeper than this (built by a
 * loop, or read from text) would otherwise overflow the C stack. Together
 * with the deepest evaluation (LISP_MAX_EVAL_DEPTH) it stays well inside
 * the interpreter thread's stack (main.c). ThreadSanitizer's shadow call
 * stack holds about 64K frames: less there, as for evaluation. */
#if defined(__SANITIZE_THREAD__)
#define LISP_MAX_NESTING 10000
#else
#define LISP_MAX_NESTING 100000
#endif

/* ---- reader.c / printer.c --------------------------------------------------- */
struct lisp_reader { const char *text; size_t pos, len; int line, depth; };   /* depth: of read_form */
void  lisp_reader_init(struct lisp_reader *r, const char *text, size_t len);
int   lisp_read(struct lisp_reader *r, value *out);   /* 0 at end of input */
/* Whether text (len bytes, NUL bytes included) holds complete forms: > 0
 * while a list, string or |symbol| is open or a quote waits for its datum.
 * The scan goes on from where the last call on the same text stopped, so
 * text must only grow, by whole lines, between calls; reset for new text. */
struct lisp_scan {
    size_t pos;            /* how far the text has been scanned */
    int depth, quote_waiting;
    char in_string;        /* the closing '"' or '|' while in a string or |symbol| */
    int datum_start;       /* the previous character ends a token */
};
void  lisp_scan_reset(struct lisp_scan *s);
int   lisp_scan_open(struct lisp_scan *s, const char *text, size_t len);
/* R7RS character names (#\\space, #\\null, ...), which write prints and
 * the reader reads; other control and non-ASCII bytes go as #\\xHH. */
struct lisp_char_name { const char *name; unsigned char code; };
extern const struct lisp_char_name lisp_char_names[];
extern const size_t lisp_char_name_count;
void  lisp_print(FILE *out, value v, int write);
void  lisp_print_bounded(FILE *out, value v, int write, size_t size);   /* out takes <= size bytes */
/* v printed (cut to fit) into buf, NUL-terminated, for error messages: a
 * name or string printed by write keeps its NUL bytes escaped, so the
 * message is whole; displayed, its NUL bytes print as \x0; too (the rest
 * raw). Returns buf ("" when no stream could be made). */
char *lisp_print_to(char *buf, size_t size, value v, int write);

/* ---- eval.c ------------------------------------------------------------------ */
value lisp_eval(value x, value env);
value lisp_apply(value proc, int argc);   /* the argc arguments are on top of the value stack, popped */
void  lisp_eval_init(void);
void  lisp_init(void);                    /* every *_init below and above, in order */

/* ---- builtins.c, builtins_data.c, ports.c ------------------------------------------ */
void  lisp_builtins_init(void);
void  lisp_builtins_data_init(void);
void  lisp_ports_init(void);
void  lisp_ephemerons_init(void);
void  lisp_ports_shutdown(void);
FILE *lisp_output_file(value *args, int argc, int index, const char *who);
int   lisp_equal(value a, value b);                       /* equal.c; allocates nothing on the heap */
const char *lisp_string_arg(value v, const char *who);
intptr_t lisp_fixnum_arg(value v, const char *who);

#endif /* LISP_H */
