/* leak.c — a program with one planted leak, for run_leak_report.sh: the
 * 12345 bytes allocated in plant_leak are never freed. The program is
 * linked with -rdynamic so that dladdr can name plant_leak in the report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline, visibility("default"))) void *plant_leak(void);

void *plant_leak(void)
{
    char *p = malloc(12345);
    if (p != NULL) memset(p, 1, 12345);
    return p;
}

static void *volatile forgotten;

int main(void)
{
    forgotten = plant_leak();
    if (forgotten == NULL) return 1;
    forgotten = NULL; /* the only reference is gone: a leak */

    for (int i = 0; i < 1000; i++) { /* balanced work is not reported */
        char *s = malloc((size_t)i + 1);
        if (s == NULL) return 1;
        s[i] = 0;
        free(s);
    }
    puts("leaked");
    return 0;
}
