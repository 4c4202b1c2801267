/* late_pool.c — the reports at exit when the drop-in's pool could not be
 * created at start-up and is created later, at the first allocation that
 * succeeds. Run with LD_PRELOAD=libmulch-malloc.so, MULCH_LEAK_REPORT=1 and
 * MULCH_MALLOC_STATS=1.
 *
 * Without an argument it runs itself again ("child") under an address
 * space limit (RLIMIT_AS, soft) that leaves room for the program but not
 * for the pool's 8 MiB chunk map, so the pool cannot be created when the
 * drop-in's constructor first asks for it. The child checks that malloc
 * fails then, raises the limit again, leaks 12345 bytes from plant_leak
 * and exits: its stderr must hold the statistics line and the leak. The
 * parent leaves with _exit (no report of its own). Exit status 0 when
 * everything holds. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline, visibility("default"))) void *plant_leak(void);

void *plant_leak(void)
{
    char *p = malloc(12345);
    if (p != NULL) memset(p, 1, 12345);
    return p;
}

static void *volatile forgotten;
static void *(*volatile malloc_opaque)(size_t) = malloc;

/* VmSize from /proc/self/status, in bytes (0 if unknown); read with
 * read(2), so that nothing here allocates. */
static size_t vm_size(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char *at = strstr(buf, "VmSize:");
    return at ? (size_t)strtoull(at + 7, NULL, 10) * 1024 : 0;
}

static int child(void)
{
    if (malloc_opaque(100) != NULL) {
        fprintf(stderr, "late_pool: malloc succeeded under the limit: the pool was created at start-up\n");
        return 2;
    }
    struct rlimit lim;
    if (getrlimit(RLIMIT_AS, &lim) != 0) return 3;
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_AS, &lim) != 0) return 3;
    forgotten = plant_leak();
    if (forgotten == NULL) return 4;
    forgotten = NULL;
    return 0;
}

static int fail(const char *why, const char *out)
{
    fprintf(stderr, "late_pool: %s\n--- child's stderr:\n%s\n", why, out);
    _exit(1);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0) return child();

    /* The parent holds the pool (chunk map included); the child starts
     * without it: 6 MiB less leaves the child 2 MiB of room (6
     * when the parent holds a chunk too), not the 8 the map takes. */
    size_t now = vm_size();
    if (now < ((size_t)8 << 20)) fail("cannot read VmSize, or it is smaller than the pool's map", "");
    int pipefd[2];
    if (pipe(pipefd) != 0) fail("pipe", "");
    pid_t pid = fork();
    if (pid < 0) fail("fork", "");
    if (pid == 0) {
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        close(pipefd[1]);
        struct rlimit lim;
        if (getrlimit(RLIMIT_AS, &lim) != 0) _exit(5);
        lim.rlim_cur = now - ((size_t)6 << 20);
        if (setrlimit(RLIMIT_AS, &lim) != 0) _exit(5);
        execl("/proc/self/exe", argv[0], "child", (char *)NULL);
        _exit(6);
    }
    close(pipefd[1]);
    static char out[1 << 16];
    size_t used = 0;
    ssize_t n;
    while (used < sizeof out - 1 && (n = read(pipefd[0], out + used, sizeof out - 1 - used)) > 0) used += (size_t)n;
    out[used] = '\0';
    int status;
    if (waitpid(pid, &status, 0) != pid) fail("waitpid", out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char why[64];
        snprintf(why, sizeof why, "the child failed (status 0x%x)", (unsigned)status);
        fail(why, out);
    }
    if (strstr(out, "mulch-malloc: allocs ") == NULL) fail("no statistics line at exit", out);
    if (strstr(out, "size 12345 allocated at plant_leak+0x") == NULL) fail("the leak report does not name plant_leak", out);
    fputs("late_pool: reports at exit ok\n", stderr);
    _exit(0);
}
