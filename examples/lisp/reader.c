/* reader.c — text to values: lists (with dotted tails), vectors #( ),
 * quote ', strings with R7RS escapes, characters #\x, booleans, fixnums and
 * symbols (plain, or between bars with the strings' escapes: |a b|, which
 * is how write prints a name that would not read back plain); `;` comments.
 *
 * The source text is plain memory owned by the caller, never a GC object,
 * so the reader may keep pointers into it across allocations. Elements of a
 * list being read wait on the value stack (a root) until the list is built
 * from the back; the first pair of each list records the line of its `(`,
 * which is what runtime errors report. Nesting is bounded (LISP_MAX_NESTING)
 * because the reader recurses on it. A syntax error is a lisp_error with
 * the reader's line: nothing is held outside the heap, so unwinding leaks
 * nothing. lisp_scan_open tells whether text holds complete forms yet.
 */
#include "lisp.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void lisp_reader_init(struct lisp_reader *r, const char *text, size_t len)
{
    r->text = text;
    r->pos = 0;
    r->len = len;
    r->line = 1;
    r->depth = 0;
}

static int peek(struct lisp_reader *r) { return r->pos < r->len ? (unsigned char)r->text[r->pos] : EOF; }

static int next(struct lisp_reader *r)
{
    int c = peek(r);
    if (c != EOF) {
        r->pos++;
        if (c == '\n') r->line++;
    }
    return c;
}

static _Noreturn void syntax_error(struct lisp_reader *r, const char *what)
{
    lisp_current_line = r->line;
    lisp_error("read: %s", what);
}

static void skip_space(struct lisp_reader *r)
{
    for (;;) {
        int c = peek(r);
        if (c == ';') {
            while (c != EOF && c != '\n') c = next(r);
        } else if (c != EOF && isspace(c)) {
            next(r);
        } else {
            return;
        }
    }
}

static int is_delimiter(int c) { return c == EOF || isspace(c) || c == '(' || c == ')' || c == '"' || c == ';'; }

static value read_form(struct lisp_reader *r);

/* After the opening parenthesis. */
static value read_list_tail(struct lisp_reader *r, int line, int vector)
{
    value *first = lisp_sp;
    value tail = LISP_NIL;
    for (;;) {
        skip_space(r);
        int c = peek(r);
        if (c == EOF) syntax_error(r, "unexpected end of input in a list");
        if (c == ')') {
            next(r);
            break;
        }
        if (c == '.' && (r->pos + 1 >= r->len || is_delimiter((unsigned char)r->text[r->pos + 1]))) {
            next(r);
            if (vector) syntax_error(r, "'.' in a vector");
            if (lisp_sp == first) syntax_error(r, "'.' at the start of a list");
            tail = read_form(r);
            skip_space(r);
            if (next(r) != ')') syntax_error(r, "expected ')' after the dotted tail");
            break;
        }
        value item = read_form(r);
        lisp_push(item);
    }
    int n = (int)(lisp_sp - first);
    value result;
    if (vector) {
        result = lisp_make_vector((size_t)n, LISP_FALSE);
        for (int i = 0; i < n; i++) lisp_write_init(result, &LISP_VECTOR_OF(result)->items[i], first[i]);
    } else {
        result = lisp_list_from_stack(first, n, tail);
        if (n > 0) LISP_PAIR_OF(result)->hdr = LISP_HDR(LISP_PAIR, (uintptr_t)line);
    }
    lisp_sp = first;
    return result;
}

/* The escape after a backslash at text[*i] (R7RS: \a \b \t \n \r \" \\ \|
 * and \x<hex>; up to ff): its byte, with *i on its last character; -1
 * for an unknown or malformed escape. ESCAPE_NOTHING for a line
 * continuation (spaces or tabs, a line break, spaces or tabs: R7RS strings
 * drop them all), with *i on its last character too. */
enum { ESCAPE_NOTHING = -2 };

static int escape_at(const struct lisp_reader *r, size_t *i)
{
    if (*i >= r->len) return -1;
    switch (r->text[*i]) {
    case 'a': return '\a';
    case 'b': return '\b';
    case 't': return '\t';
    case 'n': return '\n';
    case 'r': return '\r';
    case '"': return '"';
    case '\\': return '\\';
    case '|': return '|';
    case ' ': case '\t': case '\r': case '\n': {
        size_t k = *i;
        while (k < r->len && (r->text[k] == ' ' || r->text[k] == '\t')) k++;
        if (k < r->len && r->text[k] == '\r') k++;
        if (k < r->len && r->text[k] == '\n') k++;
        else if (k == *i || r->text[k - 1] != '\r') return -1;   /* no line break */
        while (k < r->len && (r->text[k] == ' ' || r->text[k] == '\t')) k++;
        *i = k - 1;
        return ESCAPE_NOTHING;
    }
    case 'x': {
        int byte = 0, digits = 0;
        for (size_t k = *i + 1; k < r->len; k++) {
            int c = (unsigned char)r->text[k];
            if (c == ';' && digits > 0) {
                *i = k;
                return byte;
            }
            if (!isxdigit(c)) return -1;
            byte = byte * 16 + (isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
            if (byte > 0xff) return -1;   /* strings hold bytes */
            digits++;
        }
        return -1;
    }
    default: return -1;
    }
}

/* After the opening quote. Two passes over the text: the length first,
 * then the bytes, into a string allocated in between (no allocation
 * after it, so the raw pointer into it stays valid; the second pass
 * trusts the first's checks, and runs to the closing quote, past a line
 * continuation that adds no byte at the end). An unknown escape is
 * an error rather than the escaped character taken as is, so that a typo
 * such as "\d" does not silently change the string. */
static value read_string(struct lisp_reader *r)
{
    size_t len = 0;
    for (size_t i = r->pos;; i++) {          /* first pass: length, and checks */
        if (i >= r->len) syntax_error(r, "unterminated string");
        if (r->text[i] == '"') break;
        if (r->text[i] == '\\') {
            i++;
            if (i >= r->len) syntax_error(r, "unterminated string");
            int c = escape_at(r, &i);
            if (c == ESCAPE_NOTHING) continue;
            if (c < 0) syntax_error(r, "unknown escape in a string");
        }
        len++;
    }
    value s = lisp_make_string_uninit(len);
    char *out = LISP_STRING_OF(s)->text;    /* no allocation below */
    for (int c; (c = next(r)) != '"';) {
        if (c == '\\') {
            size_t i = r->pos;
            c = escape_at(r, &i);
            while (r->pos <= i) next(r);
            if (c == ESCAPE_NOTHING) continue;
        }
        *out++ = (char)c;
    }
    return s;
}

/* After the opening bar of |name|: the symbol, its name taken with the
 * strings' escapes (\| for a bar). A name without escapes is interned
 * straight from the text (never a GC object); one with escapes is decoded
 * into a C buffer first, as string->symbol copies its name, and is
 * limited to the same 255 bytes. */
static value read_bar_symbol(struct lisp_reader *r)
{
    size_t start = r->pos, len = 0;
    int escapes = 0;
    for (size_t i = start;; i++) {          /* first pass: length, and checks */
        if (i >= r->len) syntax_error(r, "unterminated |symbol|");
        if (r->text[i] == '|') break;
        if (r->text[i] == '\\') {
            i++;
            if (escape_at(r, &i) < 0) syntax_error(r, "unknown escape in a |symbol|");
            escapes = 1;
        }
        len++;
    }
    char name[256];
    if (escapes && len >= sizeof name) syntax_error(r, "|symbol| with escapes longer than 255 bytes");
    for (size_t k = 0; k < len; k++) {
        int c = next(r);
        if (c == '\\') {
            size_t i = r->pos;
            c = escape_at(r, &i);
            while (r->pos <= i) next(r);
        }
        if (escapes) name[k] = (char)c;
    }
    next(r);   /* the closing bar */
    return escapes ? lisp_intern_len(name, len) : lisp_intern_len(r->text + start, len);
}

static value read_atom(struct lisp_reader *r)
{
    size_t start = r->pos;
    while (!is_delimiter(peek(r))) next(r);
    const char *tok = r->text + start;
    size_t len = r->pos - start;
    /* (a '.' alone in a list's tail position is read_list_tail's) */
    if (len == 1 && tok[0] == '.') syntax_error(r, "unexpected '.'");
    size_t digits = (tok[0] == '-' || tok[0] == '+') ? 1 : 0;
    int numeric = len > digits;
    for (size_t i = digits; i < len && numeric; i++) numeric = isdigit((unsigned char)tok[i]) != 0;
    if (numeric) {
        /* Leading zeros do not count against the buffer: 000...01 is 1,
         * as string->number reads it, however many zeros. */
        size_t zeros = 0;
        while (digits + zeros + 1 < len && tok[digits + zeros] == '0') zeros++;
        char buf[32];
        if (len - zeros >= sizeof buf) syntax_error(r, "number too large");
        memcpy(buf, tok, digits);
        memcpy(buf + digits, tok + digits + zeros, len - digits - zeros);
        buf[len - zeros] = '\0';
        errno = 0;
        long long n = strtoll(buf, NULL, 10);
        if (errno != 0 || n > LISP_FIXNUM_MAX || n < LISP_FIXNUM_MIN) syntax_error(r, "number too large");
        return lisp_fixnum((intptr_t)n);
    }
    return lisp_intern_len(tok, len);
}

static value read_hash(struct lisp_reader *r)
{
    next(r);   /* '#' */
    int c = peek(r);
    if (c == '(') {
        int line = r->line;
        next(r);
        return read_list_tail(r, line, 1);
    }
    if (c == '\\') {
        next(r);
        /* (at the end of the text, name[0] below was the byte past it) */
        if (peek(r) == EOF) syntax_error(r, "unexpected end of input in a character");
        size_t start = r->pos;
        next(r);
        while (!is_delimiter(peek(r))) next(r);
        size_t len = r->pos - start;
        const char *name = r->text + start;
        if (len == 1) return lisp_char(name[0]);
        for (size_t i = 0; i < lisp_char_name_count; i++)
            if (strlen(lisp_char_names[i].name) == len && memcmp(name, lisp_char_names[i].name, len) == 0)
                return lisp_char(lisp_char_names[i].code);
        if (name[0] == 'x' && len >= 2 && len <= 3) { /* #\xHH: a byte */
            int code = 0;
            for (size_t i = 1; i < len; i++) {
                int d = isdigit((unsigned char)name[i]) ? name[i] - '0'
                        : isxdigit((unsigned char)name[i]) ? tolower((unsigned char)name[i]) - 'a' + 10 : -1;
                if (d < 0) syntax_error(r, "unknown character name");
                code = code * 16 + d;
            }
            return lisp_char(code);
        }
        syntax_error(r, "unknown character name");
    }
    size_t start = r->pos;
    while (!is_delimiter(peek(r))) next(r);
    size_t len = r->pos - start;
    if (len == 1 && r->text[start] == 't') return LISP_TRUE;
    if (len == 1 && r->text[start] == 'f') return LISP_FALSE;
    syntax_error(r, "unknown # syntax");
}

const struct lisp_char_name lisp_char_names[] = {
    { "alarm", 7 }, { "backspace", 8 }, { "delete", 127 }, { "escape", 27 }, { "newline", '\n' },
    { "null", 0 },  { "return", '\r' }, { "space", ' ' },   { "tab", '\t' },
};
const size_t lisp_char_name_count = sizeof lisp_char_names / sizeof lisp_char_names[0];

static value read_form_at(struct lisp_reader *r);

/* Lists and quotes recurse here: text nested deeper than LISP_MAX_NESTING
 * is an error rather than a C stack overflow. An error abandons the
 * reader, so the depth needs no reset on that path. */
static value read_form(struct lisp_reader *r)
{
    if (++r->depth > LISP_MAX_NESTING) syntax_error(r, "nesting too deep");
    value v = read_form_at(r);
    r->depth--;
    return v;
}

static value read_form_at(struct lisp_reader *r)
{
    skip_space(r);
    int line = r->line;
    int c = peek(r);
    switch (c) {
    case EOF: syntax_error(r, "unexpected end of input");
    case '(': next(r); return read_list_tail(r, line, 0);
    case ')': syntax_error(r, "unexpected ')'");
    case '"': next(r); return read_string(r);
    case '|': next(r); return read_bar_symbol(r);
    case '#': return read_hash(r);
    case '\'': {
        next(r);
        value quoted = read_form(r);
        LISP_ROOT(quoted);
        value tail = lisp_cons(quoted, LISP_NIL);
        LISP_ROOT(tail);
        /* (each call may allocate: rooted tail, and the symbol taken
         * before the cons, whatever order C evaluates arguments in) */
        value quote = lisp_intern("quote");
        value form = lisp_cons(quote, tail);
        LISP_PAIR_OF(form)->hdr = LISP_HDR(LISP_PAIR, (uintptr_t)line);
        lisp_unroot(2);
        return form;
    }
    default: return read_atom(r);
    }
}

/* Whether text holds complete forms, or more lines must come first (the
 * REPL asks before it runs what it has read, read before it reads a datum
 * from a port): the parenthesis depth outside strings, |symbols| and
 * comments, or 1 while a string or a |symbol| is open or a quote waits for
 * its datum ("'" at the end of a line quotes the datum on the next, as in a
 * script). It follows the reader's tokens: #\ starts a character only
 * where a datum starts (in a token such as a#\( it is part of the name,
 * and the '(' after it opens a list), and so do a quote (a' is a name) and
 * a bar (a|b( opens a list).
 *
 * The scan goes on from where the last one stopped (the REPL rescanned the
 * whole pending text at every line: a form of 20,000 lines took over a
 * minute). That gives the same answer as a scan from the start because
 * each line but the last (at end of input, after which the text is read
 * anyway) ends with '\n': no look-ahead (an escape's next byte, #\x, a
 * comment's end) reaches past it. The text may hold NUL bytes: the reader
 * reads them. */
void lisp_scan_reset(struct lisp_scan *s)
{
    *s = (struct lisp_scan){ 0, 0, 0, 0, 1 };
}

int lisp_scan_open(struct lisp_scan *s, const char *text, size_t len)
{
    int depth = s->depth, quote_waiting = s->quote_waiting;
    char in_string = s->in_string;
    int datum_start = s->datum_start;
    size_t i;
    for (i = s->pos; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\' && i + 1 < len) i++;
            else if (c == in_string) in_string = 0, datum_start = 1;
            continue;
        }
        if (c == ';') {
            while (i + 1 < len && text[i + 1] != '\n') i++;
            continue;   /* (a waiting quote still waits) */
        }
        if (isspace((unsigned char)c)) {
            datum_start = 1;
            continue;
        }
        int quote = c == '\'' && datum_start;
        if (c == '#' && datum_start && i + 2 < len && text[i + 1] == '\\') {
            i += 2;        /* a character: #\( #\) #\; #\" are no delimiters */
            datum_start = 0;
        } else if (c == '"' || (c == '|' && datum_start)) {
            in_string = c;
        } else if (c == '(') {
            depth++;
            datum_start = 1;
        } else if (c == ')') {
            depth--;
            datum_start = 1;
        } else {
            datum_start = quote;   /* '' quotes twice; a' is a name */
        }
        quote_waiting = quote;
    }
    *s = (struct lisp_scan){ i, depth, quote_waiting, in_string, datum_start };
    if (in_string) return 1;
    return depth == 0 && quote_waiting ? 1 : depth;
}

int lisp_read(struct lisp_reader *r, value *out)
{
    skip_space(r);
    if (peek(r) == EOF) return 0;
    /* The line an error in this form reports when no pair of it sets one
     * (a top-level variable): not the line of an earlier form. */
    lisp_current_line = r->line;
    *out = read_form(r);
    return 1;
}
