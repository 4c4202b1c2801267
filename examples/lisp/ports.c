/* ports.c — ports as deterministic resources, and the primitives that read
 * (read-line, read) and write through them.
 *
 * A port is two objects: the resource, an rc object holding the FILE *
 * (rc_alloc with a destructor that fcloses it), and its GC wrapper, which
 * owns one reference to the resource (lisp_backend_own_rc: gc_own_rc under
 * mulch). So:
 *   - (close-port p) closes the file at once; the resource stays (closed)
 *     until the wrapper is reclaimed;
 *   - a port nobody can reach is closed by the collector: the wrapper dies,
 *     its reference is released, the destructor fcloses;
 *   - the standard output port is held by the host through a handle
 *     (lisp_backend_handle_new: gc_handle_new), so it survives every
 *     collection although no Scheme value refers to it; its resource only
 *     borrows stdout.
 * The wrapper keeps a raw pointer to its resource: rc objects never move.
 */
#include "lisp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct lisp_port_res {
    FILE *file;
    int   output;      /* 1: written to, 0: read from */
    int   borrowed;    /* stdout: never fclose'd */
    int   closed;      /* by close-port */
    /* read's text read ahead: the file's bytes [ahead_start, ahead_start +
     * ahead_len), whole lines (the last one may end at the end of the
     * file); malloc'd, freed with the port. See prim_read. */
    char *ahead;
    size_t ahead_len, ahead_cap;
    long  ahead_start;
};

enum { PORT_INPUT = 1, PORT_OUTPUT = 2 };

static void *stdout_handle;     /* the host's hold on the standard output port */
static long closed_by_collector;
static char *line_buffer;       /* read-line's and read's, reused; freed at shutdown */
static size_t line_capacity;

static void port_res_destroy(void *obj)
{
    struct lisp_port_res *res = obj;
    if (!res->closed && !res->borrowed) {
        fclose(res->file);
        closed_by_collector++;
    }
    free(res->ahead);
}

/* A port's GC wrapper, without its resource yet (res NULL). Allocated
 * before the file is opened: an allocation that fails (out of memory)
 * unwinds, and a FILE opened before it would never be closed. The
 * wrapper never escapes before port_attach fills it. */
static value port_new(int output)
{
    value port = lisp_alloc(&lisp_port_type, sizeof(struct lisp_port));
    ((struct lisp_port *)port)->hdr = LISP_HDR(LISP_PORT, output ? PORT_OUTPUT : PORT_INPUT);
    return port;
}

/* Gives the wrapper in the rooted slot `port` its resource, for `file`
 * (closed here if that fails, unless borrowed); returns the wrapper. */
static value port_attach(value *port, FILE *file, int output, int borrowed)
{
    struct lisp_port_res *res = rc_alloc(sizeof *res, port_res_destroy);
    if (res == NULL) {
        if (!borrowed) fclose(file);
        lisp_out_of_memory();
    }
    res->file = file;
    res->output = output;
    res->borrowed = borrowed;
    ((struct lisp_port *)*port)->res = res;
    int failed = lisp_backend_own_rc(*port, res);   /* a GC point: *port is read again after */
    rc_release(res);   /* the port's reference is the only one now (or none: then it closed) */
    if (failed) lisp_out_of_memory();
    return *port;
}

static value make_port(FILE *file, int output, int borrowed)
{
    value port = port_new(output);
    LISP_ROOT(port);
    port = port_attach(&port, file, output, borrowed);
    lisp_unroot(1);
    return port;
}

static struct lisp_port_res *port_arg(value v, int want, const char *who)
{
    if (!lisp_is(v, LISP_PORT)) lisp_type_error(who, "port", v);
    if (want != 0 && lisp_aux(v) != (uintptr_t)want) {
        lisp_type_error(who, want == PORT_OUTPUT ? "output port" : "input port", v);
    }
    struct lisp_port_res *res = ((struct lisp_port *)v)->res;
    if (want != 0 && res->closed) lisp_error("%s: port is closed", who);
    return res;
}

FILE *lisp_output_file(value *args, int argc, int index, const char *who)
{
    if (argc > index) return port_arg(args[index], PORT_OUTPUT, who)->file;
    value port = lisp_backend_handle_get(stdout_handle);
    return ((struct lisp_port *)port)->res->file;
}

static value open_file(value *args, int output, const char *who)
{
    /* A NUL byte would end the name fopen sees: another file. */
    if (strlen(lisp_string_arg(args[0], who)) != lisp_aux(args[0]))
        lisp_error("%s: file name contains a NUL byte", who);
    value port = port_new(output);   /* first: see port_new */
    LISP_ROOT(port);
    const char *mode = output ? "w" : "r";
    FILE *file = fopen(lisp_string_arg(args[0], who), mode);
    int error = errno;
    if (file == NULL && (error == EMFILE || error == ENFILE)) {
        /* Out of descriptors: ports nobody can reach hold theirs until the
         * collector closes them. Collect, then try once more (the string
         * is read again: the collection may have moved it). */
        lisp_backend_collect();
        file = fopen(lisp_string_arg(args[0], who), mode);
        error = errno;
    }
    if (file == NULL) lisp_error("%s: cannot open \"%s\": %s", who, lisp_string_arg(args[0], who), strerror(error));
    port = port_attach(&port, file, output, 0);
    lisp_unroot(1);
    return port;
}

static value prim_open_input_file(value *args, int argc) { (void)argc; return open_file(args, 0, "open-input-file"); }
static value prim_open_output_file(value *args, int argc) { (void)argc; return open_file(args, 1, "open-output-file"); }

static value prim_close_port(value *args, int argc)
{
    (void)argc;
    struct lisp_port_res *res = port_arg(args[0], 0, "close-port");
    if (!res->closed && !res->borrowed) {
        res->closed = 1;
        fclose(res->file);
    }
    free(res->ahead);
    res->ahead = NULL;
    res->ahead_len = res->ahead_cap = 0;
    return LISP_UNSPEC;
}

static value prim_read_line(value *args, int argc)
{
    (void)argc;
    struct lisp_port_res *res = port_arg(args[0], PORT_INPUT, "read-line");
    ssize_t len = getline(&line_buffer, &line_capacity, res->file);
    if (len < 0) return LISP_EOF;
    if (len > 0 && line_buffer[len - 1] == '\n') len--;
    return lisp_make_string(line_buffer, (size_t)len);
}

/* One datum from text, read by *r: 1 and *out, r->pos the bytes it took;
 * 0 when the text holds only blanks and comments; -1 on a syntax error
 * when `report` is 0. Reported, a syntax error is raised again with the
 * line of the read call (its own line counts from the position where read
 * started, which says nothing to the program). */
static int read_datum(struct lisp_reader *r, const char *text, size_t len, value *out, int report)
{
    lisp_reader_init(r, text, len);
    int line = lisp_current_line;
    struct lisp_catch c;
    if (setjmp(c.jump) != 0) {
        lisp_catch_landed(&c);
        lisp_current_line = line;
        if (!report) return -1;
        lisp_error("%s", c.message);
    }
    lisp_catch_enter(&c);
    int got = lisp_read(r, out);
    lisp_catch_leave(&c);
    lisp_current_line = line;   /* (lisp_read sets it to the datum's line) */
    return got;
}

/* One more line of the file (from where the text read ahead ends) onto
 * that text; 0 at the end of the file. */
static int read_ahead_line(struct lisp_port_res *res)
{
    ssize_t n = getline(&line_buffer, &line_capacity, res->file);
    if (n <= 0) return 0;
    if (res->ahead_len + (size_t)n > res->ahead_cap) {
        size_t cap = res->ahead_cap ? res->ahead_cap : 4096;
        while (cap < res->ahead_len + (size_t)n) cap *= 2;
        char *bigger = realloc(res->ahead, cap);
        if (bigger == NULL) lisp_out_of_memory();
        res->ahead = bigger;
        res->ahead_cap = cap;
    }
    memcpy(res->ahead + res->ahead_len, line_buffer, (size_t)n);
    res->ahead_len += (size_t)n;
    return 1;
}

/* (read port): the next datum of an input port, or the eof object. The
 * reader works on text in memory: whole lines of the file, which the port
 * keeps (ahead) for the reads that follow, and the port's position is put
 * back just after the datum (fseek), so that a read-line that follows
 * reads the rest of its line. A port that cannot seek (a pipe) is an
 * error.
 *
 * Linear in the text read: the reads of many data on one long line each
 * took the rest of the line again (getline, the scan, the copy): 100,000
 * numbers on a line of 600 KB took minutes. A read first reads the text
 * ahead as it is (whole lines: a datum read from it is complete); only
 * when that fails does it scan (lisp_scan_open) whether the datum goes on
 * past its end, taking lines until the scan says it ends (or the file
 * does), and read again, reporting errors. Blank and comment lines before
 * a datum are dropped as they come. Like a stdio buffer, the text read
 * ahead is not read again when the file changes meanwhile. */
static value prim_read(value *args, int argc)
{
    (void)argc;
    struct lisp_port_res *res = port_arg(args[0], PORT_INPUT, "read");
    long pos = ftell(res->file);
    if (pos < 0) lisp_error("read: the port cannot seek: %s", strerror(errno));
    if (pos < res->ahead_start || (size_t)(pos - res->ahead_start) >= res->ahead_len) {
        res->ahead_start = pos;   /* not in the text read ahead: start anew */
        res->ahead_len = 0;
    }
    size_t from = (size_t)(pos - res->ahead_start);
    struct lisp_reader r;
    value datum;
    int got = -1;
    if (res->ahead_len > 0) got = read_datum(&r, res->ahead + from, res->ahead_len - from, &datum, 0);
    if (got <= 0) {
        /* the rest of the datum's line, then lines until the datum ends
         * (the lines after it read ahead are taken again: after an error
         * the port is where the lines the datum took end, as before) */
        if (res->ahead_len > 0) {
            memmove(res->ahead, res->ahead + from, res->ahead_len - from);
            res->ahead_len -= from;
            res->ahead_start = pos;
            const char *line_end = memchr(res->ahead, '\n', res->ahead_len);
            if (line_end != NULL) res->ahead_len = (size_t)(line_end - res->ahead) + 1;
        }
        if (fseek(res->file, res->ahead_start + (long)res->ahead_len, SEEK_SET) != 0)
            lisp_error("read: cannot seek the port: %s", strerror(errno));
        struct lisp_scan scan;
        lisp_scan_reset(&scan);
        for (;;) {
            int more = lisp_scan_open(&scan, res->ahead, res->ahead_len) > 0 || res->ahead_len == 0;
            if (more && read_ahead_line(res)) continue;
            got = read_datum(&r, res->ahead, res->ahead_len, &datum, 1);
            if (got > 0 || !read_ahead_line(res)) break;
            /* blanks and comments so far: dropped; the line read is the text */
            size_t n = res->ahead_len - r.pos;
            memmove(res->ahead, res->ahead + r.pos, n);
            res->ahead_start += (long)r.pos;
            res->ahead_len = n;
            pos = res->ahead_start;
            lisp_scan_reset(&scan);
        }
        if (got <= 0) {
            res->ahead_len = 0;
            return LISP_EOF;
        }
    }
    if (fseek(res->file, pos + (long)r.pos, SEEK_SET) != 0)
        lisp_error("read: cannot seek the port: %s", strerror(errno));
    return datum;
}

static value prim_display(value *args, int argc)
{
    lisp_print(lisp_output_file(args, argc, 1, "display"), args[0], 0);
    return LISP_UNSPEC;
}

static value prim_write(value *args, int argc)
{
    lisp_print(lisp_output_file(args, argc, 1, "write"), args[0], 1);
    return LISP_UNSPEC;
}

static value prim_write_string(value *args, int argc)
{
    const char *s = lisp_string_arg(args[0], "write-string");
    fwrite(s, 1, lisp_aux(args[0]), lisp_output_file(args, argc, 1, "write-string"));
    return LISP_UNSPEC;
}

static value prim_newline(value *args, int argc)
{
    fputc('\n', lisp_output_file(args, argc, 0, "newline"));
    return LISP_UNSPEC;
}

static value prim_current_output_port(value *args, int argc)
{
    (void)args;
    (void)argc;
    return lisp_backend_handle_get(stdout_handle);
}

static value prim_portp(value *args, int argc) { (void)argc; return lisp_bool(lisp_is(args[0], LISP_PORT)); }
static value prim_eof_objectp(value *args, int argc) { (void)argc; return lisp_bool(args[0] == LISP_EOF); }

static value prim_port_closedp(value *args, int argc)
{
    (void)argc;
    return lisp_bool(port_arg(args[0], 0, "port-closed?")->closed);
}

/* How many ports the collector has closed (unreachable, never closed). */
static value prim_ports_closed_by_gc(value *args, int argc)
{
    (void)args;
    (void)argc;
    return lisp_fixnum(closed_by_collector);
}

void lisp_ports_init(void)
{
    static const struct { const char *name; lisp_prim_fn fn; int min, max; } table[] = {
        { "open-input-file", prim_open_input_file, 1, 1 },
        { "open-output-file", prim_open_output_file, 1, 1 },
        { "close-port", prim_close_port, 1, 1 }, { "close-input-port", prim_close_port, 1, 1 },
        { "close-output-port", prim_close_port, 1, 1 }, { "read-line", prim_read_line, 1, 1 },
        { "read", prim_read, 1, 1 },
        { "display", prim_display, 1, 2 }, { "write", prim_write, 1, 2 },
        { "write-string", prim_write_string, 1, 2 }, { "newline", prim_newline, 0, 1 },
        { "current-output-port", prim_current_output_port, 0, 0 },
        { "port?", prim_portp, 1, 1 }, { "eof-object?", prim_eof_objectp, 1, 1 },
        { "port-closed?", prim_port_closedp, 1, 1 },
        { "ports-closed-by-gc", prim_ports_closed_by_gc, 0, 0 },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        lisp_define_primitive(table[i].name, table[i].fn, table[i].min, table[i].max);
    }
    value port = make_port(stdout, 1, 1);
    stdout_handle = lisp_backend_handle_new(port);   /* no Scheme value needs to hold it */
    if (stdout_handle == NULL) lisp_out_of_memory();
}

void lisp_ports_shutdown(void)
{
    fflush(stdout);
    if (stdout_handle != NULL) lisp_backend_handle_release(stdout_handle);
    stdout_handle = NULL;
    free(line_buffer);
    line_buffer = NULL;
    line_capacity = 0;
}
