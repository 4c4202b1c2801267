/* leak.c — a program with planted leaks, for run_leak_report.sh: the
 * 12345 bytes allocated in plant_leak and the 3 x 4321 bytes allocated
 * through reallocarray in plant_leak_array are never freed. The program is
 * linked with -rdynamic so that dladdr can name both functions in the
 * report.
 *
 * With an argument FILE, it also opens FILE, puts it on every descriptor
 * from 3 to 255 (as a program that picks its own descriptor numbers may),
 * writes one line to it and leaves them open: nothing else may appear in
 * FILE, whichever descriptor the drop-in kept for its report. With
 * --fork instead, it first forks a child that allocates and calls exit:
 * only the parent may print the reports.
 *
 * Its fdopen, found before the C library's, reallocs a block the program
 * still holds (from plant_kept) when the drop-in opens its report: the
 * drop-in's own allocations go to its bootstrap arena then, and the block
 * must still be moved, its bytes copied and the pool's block freed (the
 * report must not list plant_kept). */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE 1 /* reallocarray */
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline, visibility("default"))) void *plant_leak(void);

void *plant_leak(void)
{
    char *p = malloc(12345);
    if (p != NULL) memset(p, 1, 12345);
    return p;
}

__attribute__((noinline, visibility("default"))) void *plant_leak_array(void);

void *plant_leak_array(void)
{
    char *p = reallocarray(NULL, 3, 4321);
    if (p != NULL) memset(p, 2, 3 * 4321);
    return p;
}

static void *volatile forgotten;

enum { KEPT = 100 };
static char *kept;

__attribute__((noinline, visibility("default"))) char *plant_kept(void);

char *plant_kept(void)
{
    char *p = malloc(KEPT);
    if (p != NULL) memset(p, 3, KEPT);
    return p;
}

static void say(const char *line)
{
    if (write(STDERR_FILENO, line, strlen(line)) < 0) return;
}

FILE *fdopen(int fd, const char *mode)
{
    if (kept != NULL) {
        char *moved = realloc(kept, 5000);
        kept = NULL;
        if (moved == NULL) say("leak.c: realloc in the exit report failed\n");
        else
            for (int i = 0; i < KEPT; i++)
                if (moved[i] != 3) {
                    say("leak.c: realloc in the exit report lost the block's bytes\n");
                    break;
                }
    }
    void *sym = dlsym(RTLD_NEXT, "fdopen");
    FILE *(*next)(int, const char *);
    memcpy(&next, &sym, sizeof next); /* ISO C has no object-to-function cast */
    return sym != NULL ? next(fd, mode) : NULL;
}

static int take_descriptors(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 1;
    for (int n = 3; n < 256; n++)
        if (n != fd && dup2(fd, n) != n) return 1;
    const char line[] = "program data\n";
    return write(fd, line, sizeof line - 1) == (ssize_t)(sizeof line - 1) ? 0 : 1;
}

/* --fork: a child that allocates and calls exit, waited for. */
static int fork_child_that_exits(void)
{
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        forgotten = malloc(777);
        exit(forgotten != NULL ? 0 : 1);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--fork") == 0) {
        if (fork_child_that_exits() != 0) return 1;
    } else if (argc > 1 && take_descriptors(argv[1]) != 0) {
        return 1;
    }
    forgotten = plant_leak();
    if (forgotten == NULL) return 1;
    forgotten = plant_leak_array();
    if (forgotten == NULL) return 1;
    forgotten = NULL; /* the only references are gone: two leaks */
    kept = plant_kept();
    if (kept == NULL) return 1;

    for (int i = 0; i < 1000; i++) { /* balanced work is not reported */
        char *s = malloc((size_t)i + 1);
        if (s == NULL) return 1;
        s[i] = 0;
        free(s);
    }
    puts("leaked");
    return 0;
}
