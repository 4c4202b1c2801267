/* test_cxx_pool_allocator.cpp — black-box tests of the C++ adapters
 * (<mulch/allocator.hpp>; shared/API.md "C++"), pool_allocator:
 *
 * its compile-time contract and equality; vector, map, unordered_map, list
 * and basic_string on a pool of the test's own (stats: allocations grow,
 * live_allocations is back to 0 once the containers are gone), propagation
 * on assignment/swap, and OOM as std::bad_alloc from a pool with a small
 * limit.
 *
 * cmocka's assert_* longjmp out of the test, which in C++ would skip
 * destructors. So the checks here (CHECK*) only print and count; every test
 * body runs inside CXX_TEST's wrapper, which also turns an unexpected
 * exception into a failure, and the single cmocka assertion is made there
 * after the body's objects are gone. A mulch error handler counts misuse
 * reports (double free, foreign pointer, release at count 0...): any report
 * fails the test. */
#include "cxx_test.hpp"

/* ------------------------------------------------------------------------ */
/* pool_allocator                                                            */

/* Compile-time contract of the allocator. */
static_assert(std::is_same_v<std::allocator_traits<A<int>>::rebind_alloc<long>, A<long>>);
static_assert(std::allocator_traits<A<int>>::propagate_on_container_copy_assignment::value);
static_assert(std::allocator_traits<A<int>>::propagate_on_container_move_assignment::value);
static_assert(std::allocator_traits<A<int>>::propagate_on_container_swap::value);
static_assert(!std::allocator_traits<A<int>>::is_always_equal::value);
static_assert(std::is_nothrow_copy_constructible_v<A<int>>);
static_assert(std::is_nothrow_constructible_v<A<int>, const A<double> &>);
static_assert(std::is_convertible_v<pool_t *, A<int>>);

CXX_TEST(test_cxx_allocator_traits_and_equality)
{
    test_pool p1, p2;
    A<int> a(p1.p), b(p1.p), c(p2.p);
    A<double> d(a);
    CHECK(a == b);
    CHECK(!(a != b));
    CHECK(a != c);
    CHECK(a == d);
    CHECK(d != c);
    CHECK(a.pool() == p1.p);
    CHECK(d.pool() == p1.p);
    A<int> dflt;
    CHECK(dflt.pool() == pool_default());
    A<int> null_pool(static_cast<pool_t *>(nullptr));
    CHECK(null_pool.pool() == pool_default());
    A<int> copy = c;
    CHECK(copy == c);
    copy = a;
    CHECK(copy == a);
    CHECK_EQ(a.max_size(), SIZE_MAX / sizeof(int));

    int *x = a.allocate(10);
    CHECK(x != nullptr);
    CHECK_EQ(reinterpret_cast<uintptr_t>(x) % alignof(int), 0);
    CHECK_EQ(p1.live(), 1);
    b.deallocate(x, 10); /* equal allocators free each other's memory */
    CHECK_EQ(p1.live(), 0);
}

CXX_TEST(test_cxx_allocator_vector)
{
    test_pool p;
    const uint64_t allocs0 = p.allocs();
    CHECK_EQ(p.live(), 0);
    {
        std::vector<int, A<int>> v(p.p);
        for (int i = 0; i < 100000; i++)
            v.push_back(i * 3);
        CHECK(v.get_allocator().pool() == p.p);
        CHECK_GT(p.allocs(), allocs0 + 10); /* it grew more than 10 times */
        CHECK_EQ(p.live(), 1);
        long long sum = 0;
        for (int x : v)
            sum += x;
        CHECK_EQ(sum, 3LL * 99999 * 100000 / 2);
        v.resize(10);
        v.shrink_to_fit();
        CHECK_EQ(v.size(), 10);
        CHECK_EQ(v[9], 27);
        CHECK_EQ(p.live(), 1);

        /* Over-aligned element type: pool_alloc_aligned. */
        struct alignas(64) wide {
            unsigned char b[64];
        };
        std::vector<wide, A<wide>> w(p.p);
        for (int i = 0; i < 1000; i++) {
            w.emplace_back();
            CHECK_EQ(reinterpret_cast<uintptr_t>(w.data()) % 64, 0);
        }
        w.back().b[63] = 7;
        CHECK_EQ(w[999].b[63], 7);

        /* vector<pstring>: nested allocations in the same pool (the inner
         * strings get their own allocator; no scoped adaptor needed). */
        std::vector<pstring, A<pstring>> vs(p.p);
        for (int i = 0; i < 200; i++)
            vs.push_back(make_pstring(p, "item", i));
        CHECK(vs[123] == make_pstring(p, "item", 123));
        CHECK_GT(p.live(), 200);
    }
    CHECK_EQ(p.live(), 0);
    const pool_stats_t s = p.stats();
    CHECK_EQ(s.allocs, s.frees);
}

CXX_TEST(test_cxx_allocator_map)
{
    test_pool p;
    {
        using M = std::map<int, pstring, std::less<int>, A<std::pair<const int, pstring>>>;
        M m{A<std::pair<const int, pstring>>(p.p)};
        for (int i = 0; i < 5000; i++)
            m.emplace(i, make_pstring(p, "map", i));
        CHECK_EQ(m.size(), 5000);
        CHECK_GT(p.live(), 5000); /* nodes + strings */
        for (int i = 0; i < 5000; i += 2)
            m.erase(i);
        CHECK_EQ(m.size(), 2500);
        CHECK(m.at(4321) == make_pstring(p, "map", 4321));
        CHECK(m.find(4320) == m.end());
        M copy = m;
        CHECK(copy.get_allocator() == m.get_allocator());
        CHECK(copy == m);
    }
    CHECK_EQ(p.live(), 0);
}

CXX_TEST(test_cxx_allocator_unordered_map)
{
    test_pool p;
    {
        using U = std::unordered_map<int, long, std::hash<int>, std::equal_to<int>,
                                     A<std::pair<const int, long>>>;
        U u(16, std::hash<int>(), std::equal_to<int>(), A<std::pair<const int, long>>(p.p));
        for (int i = 0; i < 20000; i++)
            u[i * 7] = i;
        CHECK_EQ(u.size(), 20000);
        CHECK_EQ(u.at(7 * 1234), 1234);
        u.rehash(100000);
        CHECK_EQ(u.at(7 * 19999), 19999);

        using S = std::unordered_map<pstring, int, pstring_hash, std::equal_to<pstring>,
                                     A<std::pair<const pstring, int>>>;
        S s(8, pstring_hash(), std::equal_to<pstring>(), A<std::pair<const pstring, int>>(p.p));
        for (int i = 0; i < 1000; i++)
            s.emplace(make_pstring(p, "key", i), i);
        CHECK_EQ(s.at(make_pstring(p, "key", 999)), 999);
        CHECK(s.find(make_pstring(p, "nokey", 1)) == s.end());
        CHECK_GT(p.live(), 1000);
    }
    CHECK_EQ(p.live(), 0);
}

CXX_TEST(test_cxx_allocator_list)
{
    test_pool p;
    {
        std::list<int, A<int>> l(p.p), other(p.p);
        for (int i = 0; i < 10000; i++)
            l.push_front(i);
        CHECK_EQ(p.live(), 10000);
        l.sort();
        CHECK_EQ(l.front(), 0);
        CHECK_EQ(l.back(), 9999);
        for (int i = 0; i < 10; i++)
            other.push_back(-i);
        l.splice(l.begin(), other); /* same allocator: nodes move, no allocation */
        CHECK_EQ(other.size(), 0);
        CHECK_EQ(l.size(), 10010);
        CHECK_EQ(p.live(), 10010);
        l.remove_if([](int x) { return x % 2 != 0; });
        CHECK_EQ(p.live(), l.size());
    }
    CHECK_EQ(p.live(), 0);
}

CXX_TEST(test_cxx_allocator_string)
{
    test_pool p;
    {
        pstring s{A<char>(p.p)};
        for (int i = 0; i < 1000; i++)
            s += "0123456789";
        CHECK_EQ(s.size(), 10000);
        CHECK_GT(p.allocs(), 3);
        CHECK_EQ(p.live(), 1);
        CHECK(std::strlen(s.c_str()) == 10000);
        pstring t = s.substr(5000, 20);
        CHECK(t == "01234567890123456789");
        /* substr builds its result with a default-constructed allocator
         * (C++17 [string.substr]): that is pool_default(). */
        CHECK(t.get_allocator().pool() == pool_default());
        pstring t2(s, 5000, 20, s.get_allocator());
        CHECK(t2 == t);
        CHECK(t2.get_allocator() == s.get_allocator());
        pstring u = s + t;
        CHECK_EQ(u.size(), 10020);
        s.clear();
        s.shrink_to_fit();
    }
    CHECK_EQ(p.live(), 0);
}

CXX_TEST(test_cxx_allocator_stats_all_containers)
{
    test_pool p;
    const pool_stats_t before = p.stats();
    CHECK_EQ(before.live_allocations, 0);
    {
        std::vector<double, A<double>> v(p.p);
        std::map<int, int, std::less<int>, A<std::pair<const int, int>>> m{
            A<std::pair<const int, int>>(p.p)};
        std::unordered_map<int, int, std::hash<int>, std::equal_to<int>, A<std::pair<const int, int>>>
            u(0, std::hash<int>(), std::equal_to<int>(), A<std::pair<const int, int>>(p.p));
        std::list<int, A<int>> l(p.p);
        pstring s{A<char>(p.p)};
        for (int i = 0; i < 500; i++) {
            v.push_back(i);
            m[i] = i;
            u[i] = i;
            l.push_back(i);
            s += "abc";
        }
        const pool_stats_t mid = p.stats();
        CHECK_GT(mid.allocs, before.allocs + 1500); /* 500 map + 500 list + 500 umap nodes */
        CHECK_GT(mid.live_allocations, 1500);
        CHECK_GT(mid.bytes_in_use, 0);
    }
    const pool_stats_t after = p.stats();
    CHECK_EQ(after.live_allocations, 0);
    CHECK_EQ(after.allocs, after.frees);
    CHECK_EQ(after.bytes_in_use, 0);
}

CXX_TEST(test_cxx_allocator_propagation)
{
    test_pool p1, p2;
    {
        using V = std::vector<int, A<int>>;
        V a(p1.p), b(p2.p);
        for (int i = 0; i < 100; i++) {
            a.push_back(i);
            b.push_back(-i);
        }
        b = a; /* copy assignment propagates p1 */
        CHECK(b.get_allocator().pool() == p1.p);
        CHECK(b == a);
        CHECK_EQ(p2.live(), 0);
        CHECK_EQ(p1.live(), 2);

        V c(p2.p);
        c.push_back(42);
        a = std::move(c); /* move assignment propagates p2 and steals */
        CHECK(a.get_allocator().pool() == p2.p);
        CHECK_EQ(a.size(), 1);
        CHECK_EQ(p1.live(), 1);
        CHECK_EQ(p2.live(), 1);

        V d(p1.p);
        d.push_back(1);
        d.push_back(2);
        std::swap(a, d); /* swap propagates: allocators follow the buffers */
        CHECK(a.get_allocator().pool() == p1.p);
        CHECK(d.get_allocator().pool() == p2.p);
        CHECK_EQ(a.size(), 2);
        CHECK_EQ(d[0], 42);

        std::list<int, A<int>> l1(p1.p), l2(p2.p);
        l1.push_back(1);
        l2.push_back(2);
        l2.push_back(3);
        l1.swap(l2);
        CHECK(l1.get_allocator().pool() == p2.p);
        CHECK_EQ(l1.size(), 2);
        l1.clear();
        l2.clear();
    }
    CHECK_EQ(p1.live(), 0);
    CHECK_EQ(p2.live(), 0);
}

CXX_TEST(test_cxx_allocator_bad_alloc)
{
    test_pool p(8 * MiB);
    A<char> a(p.p);
    /* n * sizeof(T) overflows: bad_array_new_length (a bad_alloc). */
    CHECK_THROWS(std::bad_array_new_length, A<uint64_t>(p.p).allocate(SIZE_MAX / 4));
    CHECK_THROWS(std::bad_alloc, A<uint64_t>(p.p).allocate(SIZE_MAX / 8 + 1));
    /* Representable but far above the limit: NULL from the pool. */
    CHECK_THROWS(std::bad_alloc, a.allocate(SIZE_MAX / 2));
    CHECK_THROWS(std::bad_alloc, a.allocate(64 * MiB));
    struct alignas(128) wide {
        char b[128];
    };
    CHECK_THROWS(std::bad_alloc, A<wide>(p.p).allocate(64 * MiB / sizeof(wide)));
    {
        std::vector<char, A<char>> v(p.p);
        CHECK_THROWS(std::bad_alloc, v.reserve(64 * MiB));
        CHECK_EQ(v.capacity(), 0);
    }
    CHECK_EQ(p.live(), 0);

    /* Fill the pool node by node until it refuses: the list keeps the strong
     * guarantee and everything comes back afterwards. */
    {
        std::list<std::array<char, 200>, A<std::array<char, 200>>> l(p.p);
        size_t n = 0;
        bool oom = false;
        for (; n < 1000000; n++) {
            try {
                l.emplace_back();
            } catch (const std::bad_alloc &) {
                oom = true;
                break;
            }
        }
        CHECK(oom);
        CHECK_EQ(l.size(), n);
        CHECK_GT(n, 8 * MiB / 2 / 256); /* at least half the limit was usable */
        CHECK_EQ(p.live(), n);
        l.pop_back();
        l.emplace_back(); /* usable again after OOM */
        CHECK_EQ(l.size(), n);
    }
    CHECK_EQ(p.live(), 0);
    {
        std::vector<int, A<int>> v(p.p);
        v.assign(1000, 5);
        CHECK_EQ(v[999], 5);
    }
    CHECK_EQ(p.live(), 0);
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    mulch_set_error_handler(count_misuse, nullptr);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cxx_allocator_traits_and_equality),
        cmocka_unit_test(test_cxx_allocator_vector),
        cmocka_unit_test(test_cxx_allocator_map),
        cmocka_unit_test(test_cxx_allocator_unordered_map),
        cmocka_unit_test(test_cxx_allocator_list),
        cmocka_unit_test(test_cxx_allocator_string),
        cmocka_unit_test(test_cxx_allocator_stats_all_containers),
        cmocka_unit_test(test_cxx_allocator_propagation),
        cmocka_unit_test(test_cxx_allocator_bad_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
