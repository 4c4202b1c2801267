/* test_cxx_allocator_no_default_pool.cpp — the C++ adapters made while the
 * default pool cannot be created (the OS refused its mapping: os_fail_after,
 * hence a unit test). A default-constructed pool_allocator then holds no
 * pool; its allocate used to call pool_alloc(NULL, ...), which does not
 * check its pool (the fast path) and crashed. It must throw std::bad_alloc
 * while the default pool is missing, and draw from pool_default() once the
 * next call creates it, as documented ("uses pool_default()").
 *
 * One process, one default pool: everything runs in one test, from a
 * start where nothing has created the default pool yet. */
#include "cxx_test.hpp"

extern "C" uint64_t mulch_os_fail_after(uint64_t n); /* pool/os.c */

CXX_TEST(test_cxx_allocator_without_default_pool)
{
    mulch_os_fail_after(1); /* the default pool's own mapping */
    A<int> a;
    CHECK(a.pool() == nullptr);
    /* the deleters too: they kept NULL, and freed into it (a report and a
     * leak) once the default pool existed */
    mulch_os_fail_after(1); /* (each asks pool_default(), which tries again) */
    mulch::pool_deleter deleter;
    mulch_os_fail_after(1);
    mulch::pool_delete<std::string> delete_string;
    CHECK(deleter.pool() == nullptr);
    CHECK(delete_string.pool() == nullptr);
    A<long> copy(a);
    CHECK(copy == a);
    mulch_os_fail_after(1);
    CHECK_THROWS(std::bad_alloc, a.allocate(4));
    mulch_os_fail_after(0);
    /* memory is back: the same allocator draws from the default pool */
    int *p = a.allocate(4);
    CHECK(p != nullptr);
    CHECK(pool_default() != nullptr);
    p[3] = 7;
    pool_stats_t st;
    pool_get_stats(pool_default(), &st);
    CHECK_EQ(st.live_allocations, 1);
    A<int>(copy).deallocate(p, 4); /* an equal allocator frees it */
    pool_get_stats(pool_default(), &st);
    CHECK_EQ(st.live_allocations, 0);
    {
        std::vector<int, A<int>> v(a);
        v.assign(1000, 5);
        CHECK_EQ(v[999], 5);
        auto u = mulch::make_pool_unique<std::string>(nullptr, "made without a pool");
        CHECK_EQ(u->size(), 19);
        std::unique_ptr<void, mulch::pool_deleter> bytes(pool_alloc(pool_default(), 64), deleter);
        CHECK(bytes != nullptr);
        void *cell = pool_alloc(pool_default(), sizeof(std::string));
        CHECK(cell != nullptr);
        mulch::pool_unique_ptr<std::string> s(new (cell) std::string(40, 'x'), delete_string);
        CHECK_EQ(s->size(), 40);
    }
    pool_get_stats(pool_default(), &st);
    CHECK_EQ(st.live_allocations, 0);
}

int main(void)
{
    mulch_set_error_handler(count_misuse, nullptr);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cxx_allocator_without_default_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
