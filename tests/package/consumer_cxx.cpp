// consumer_cxx.cpp — the public C headers used from C++17 (extern "C",
// no C-only constructs). Exit 0 on success.
#include <mulch.h>

#include <cstdio>
#include <cstring>

int main()
{
    if (std::strcmp(mulch_version(), MULCH_VERSION_STRING) != 0)
        return 1;
    pool_t *pool = pool_create(nullptr);
    if (pool == nullptr)
        return 2;
    void *p = pool_alloc(pool, 64);
    if (p == nullptr)
        return 3;
    pool_free(pool, p);
    pool_destroy(pool);
    std::printf("consumer_cxx: mulch %s ok\n", mulch_version());
    return 0;
}
