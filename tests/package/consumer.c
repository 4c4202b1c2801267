/* consumer.c — a program outside mulch, built against an installed mulch
 * (find_package or pkg-config) by run_package_test.cmake. Exit 0 = the
 * library links, loads, and does the basic pool round trip. */
#include <mulch.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    if (strcmp(mulch_version(), MULCH_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: header says %s, library says %s\n",
                MULCH_VERSION_STRING, mulch_version());
        return 1;
    }

    pool_t *pool = pool_create(NULL);
    if (pool == NULL) {
        fprintf(stderr, "consumer: pool_create failed\n");
        return 2;
    }
    unsigned char *p = pool_alloc(pool, 100);
    if (p == NULL) {
        fprintf(stderr, "consumer: pool_alloc failed\n");
        pool_destroy(pool);
        return 3;
    }
    memset(p, 0xA5, 100);
    for (size_t i = 0; i < 100; i++) {
        if (p[i] != 0xA5) {
            fprintf(stderr, "consumer: byte %zu reads back 0x%02x\n", i, p[i]);
            pool_destroy(pool);
            return 4;
        }
    }
    pool_free(pool, p);
    pool_destroy(pool);

    printf("consumer: mulch %s ok\n", mulch_version());
    return 0;
}
