/* test_cxx_allocator.cpp — black-box tests of the C++ adapters
 * (<mulch/allocator.hpp>; shared/API.md "C++" and "RC").
 *
 * pool_allocator with vector, map, unordered_map, list and basic_string on a
 * pool of the test's own (stats: allocations grow, live_allocations is back
 * to 0 once the containers are gone), propagation on assignment/swap, OOM as
 * std::bad_alloc from a pool with a small limit, unique_ptr with pool_deleter
 * and pool_delete, rc_ptr's counting (copy retains, move does not, reset,
 * use_count, comparisons, hashing), make_rc running the constructor and the
 * destructor exactly once, and make_rc with a throwing constructor (nothing
 * leaks, ~T() never runs).
 *
 * cmocka's assert_* longjmp out of the test, which in C++ would skip
 * destructors. So the checks here (CHECK*) only print and count; every test
 * body runs inside CXX_TEST's wrapper, which also turns an unexpected
 * exception into a failure, and the single cmocka assertion is made there
 * after the body's objects are gone. A mulch error handler counts misuse
 * reports (double free, foreign pointer, release at count 0...): any report
 * fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

extern "C" {
#include <cmocka.h>
}

#include <algorithm>
#include <array>
#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <mulch/allocator.hpp>
#include <mulch/pool.h>
#include <mulch/rc.h>

/* ------------------------------------------------------------------------ */
/* Checks that count instead of longjmp-ing                                  */

static int g_failures;
static std::atomic<int> g_misuse{0};

static void count_misuse(const char *what, const void *ptr, void *)
{
    g_misuse.fetch_add(1, std::memory_order_relaxed);
    std::fprintf(stdout, "mulch error handler: %s (%p)\n", what, ptr);
}

#define CHECK(cond) \
    do { \
        if (!(cond)) { \
            print_error("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            g_failures++; \
        } \
    } while (0)

#define CHECK_EQ(a, b) \
    do { \
        const uintmax_t a_ = static_cast<uintmax_t>(a), b_ = static_cast<uintmax_t>(b); \
        if (a_ != b_) { \
            print_error("FAIL %s:%d: %s == %s: %ju != %ju\n", __FILE__, __LINE__, #a, #b, a_, b_); \
            g_failures++; \
        } \
    } while (0)

#define CHECK_GT(a, b) \
    do { \
        const uintmax_t a_ = static_cast<uintmax_t>(a), b_ = static_cast<uintmax_t>(b); \
        if (!(a_ > b_)) { \
            print_error("FAIL %s:%d: %s > %s: %ju <= %ju\n", __FILE__, __LINE__, #a, #b, a_, b_); \
            g_failures++; \
        } \
    } while (0)

/* Expects `expr` to throw `Exc` (or something derived from it). */
#define CHECK_THROWS(Exc, expr) \
    do { \
        bool thrown_ = false; \
        try { \
            (void)(expr); \
        } catch (const Exc &) { \
            thrown_ = true; \
        } \
        if (!thrown_) { \
            print_error("FAIL %s:%d: %s did not throw %s\n", __FILE__, __LINE__, #expr, #Exc); \
            g_failures++; \
        } \
    } while (0)

#define CXX_TEST(name) \
    static void name##_body(); \
    static void name(void **state) \
    { \
        (void)state; \
        g_failures = 0; \
        g_misuse.store(0); \
        try { \
            name##_body(); \
        } catch (const std::exception &e) { \
            print_error("FAIL %s: unexpected exception: %s\n", #name, e.what()); \
            g_failures++; \
        } catch (...) { \
            print_error("FAIL %s: unexpected exception\n", #name); \
            g_failures++; \
        } \
        if (g_misuse.load() != 0) { \
            print_error("FAIL %s: %d misuse report(s)\n", #name, g_misuse.load()); \
            g_failures++; \
        } \
        assert_int_equal(g_failures, 0); \
    } \
    static void name##_body()

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

#define MiB (static_cast<size_t>(1) << 20)

template <class T>
using A = mulch::pool_allocator<T>;
using pstring = std::basic_string<char, std::char_traits<char>, A<char>>;

struct pstring_hash {
    size_t operator()(const pstring &s) const noexcept
    {
        return std::hash<std::string_view>()(std::string_view(s.data(), s.size()));
    }
};

/* A pool owned by one test; destroyed by the destructor. */
struct test_pool {
    pool_t *p;
    explicit test_pool(size_t limit = 0)
    {
        pool_options_t o;
        std::memset(&o, 0, sizeof o);
        o.limit = limit;
        p = pool_create(&o);
        if (p == nullptr)
            throw std::runtime_error("pool_create failed");
    }
    ~test_pool() { pool_destroy(p); }
    test_pool(const test_pool &) = delete;
    test_pool &operator=(const test_pool &) = delete;
    operator pool_t *() const { return p; }

    pool_stats_t stats() const
    {
        pool_stats_t s;
        pool_get_stats(p, &s);
        return s;
    }
    size_t live() const { return stats().live_allocations; }
    uint64_t allocs() const { return stats().allocs; }
};

static pstring make_pstring(pool_t *p, const char *prefix, int i)
{
    /* Longer than any small-string buffer, so it allocates. */
    pstring s{A<char>(p)};
    s.append(prefix);
    s.append(" number ");
    s.append(std::to_string(i).c_str());
    s.append(" with a tail long enough to leave the SSO buffer");
    return s;
}

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
/* unique_ptr deleters                                                       */

static int g_tracked_live;
struct tracked {
    int v;
    explicit tracked(int x) : v(x) { g_tracked_live++; }
    ~tracked() { g_tracked_live--; }
};

struct base1 {
    long a = 1;
    virtual ~base1() = default;
};
struct base2 {
    long b = 2;
    virtual ~base2() = default;
};
static int g_derived_dtors;
struct derived : base1, base2 {
    long c = 3;
    ~derived() override { g_derived_dtors++; }
};

struct throws_in_ctor {
    std::string s;
    explicit throws_in_ctor(bool t) : s("a string that is long enough to allocate on the heap")
    {
        if (t)
            throw std::runtime_error("throws_in_ctor");
    }
};

CXX_TEST(test_cxx_allocator_unique_ptr)
{
    test_pool p;
    {
        std::unique_ptr<int, mulch::pool_deleter> u(static_cast<int *>(pool_alloc(p, sizeof(int))),
                                                    mulch::pool_deleter(p.p));
        *u = 5;
        CHECK(u.get_deleter().pool() == p.p);
        CHECK_EQ(p.live(), 1);
        u.reset(static_cast<int *>(pool_alloc(p, sizeof(int))));
        CHECK_EQ(p.live(), 1);
        u.reset();
        CHECK_EQ(p.live(), 0);

        std::unique_ptr<void, mulch::pool_deleter> raw(pool_alloc(p, 100), mulch::pool_deleter(p.p));
        std::unique_ptr<char[], mulch::pool_deleter> arr(static_cast<char *>(pool_alloc(p, 4096)),
                                                         mulch::pool_deleter(p.p));
        arr[4095] = 'x';
        CHECK_EQ(p.live(), 2);

        /* pool_delete runs the destructor. */
        g_tracked_live = 0;
        mulch::pool_unique_ptr<tracked> t = mulch::make_pool_unique<tracked>(p, 9);
        CHECK_EQ(t->v, 9);
        CHECK_EQ(g_tracked_live, 1);
        CHECK_EQ(p.live(), 3);
        t.reset();
        CHECK_EQ(g_tracked_live, 0);
        CHECK_EQ(p.live(), 2);

        /* Deleting a derived object through its second base (a different
         * address): the whole object is freed, no misuse report. */
        g_derived_dtors = 0;
        mulch::pool_unique_ptr<derived> d = mulch::make_pool_unique<derived>(p.p);
        void *whole = d.get();
        std::unique_ptr<base2, mulch::pool_delete<base2>> b2(std::move(d));
        CHECK(static_cast<void *>(b2.get()) != whole);
        CHECK_EQ(b2->b, 2);
        b2.reset();
        CHECK_EQ(g_derived_dtors, 1);
        CHECK_EQ(p.live(), 2);

        /* A constructor that throws leaks nothing. */
        CHECK_THROWS(std::runtime_error, mulch::make_pool_unique<throws_in_ctor>(p, true));
        CHECK_EQ(p.live(), 2);
        auto ok = mulch::make_pool_unique<throws_in_ctor>(p, false);
        CHECK_EQ(p.live(), 3);
    }
    CHECK_EQ(p.live(), 0);
}

/* ------------------------------------------------------------------------ */
/* rc_ptr                                                                    */

struct node {
    int v;
    char pad[28];
};

static int g_node_destroys;
static void node_destroy(void *obj)
{
    static_cast<node *>(obj)->v = -1;
    g_node_destroys++;
}

static node *new_node(pool_t *p, int v)
{
    node *n = static_cast<node *>(rc_alloc_in(p, sizeof(node), node_destroy));
    if (n == nullptr)
        throw std::bad_alloc();
    n->v = v;
    return n;
}

CXX_TEST(test_cxx_rc_ptr_counting)
{
    test_pool p;
    g_node_destroys = 0;
    {
        using P = mulch::rc_ptr<node>;
        P a = P::adopt(new_node(p, 1)); /* takes over the count-1 reference */
        CHECK_EQ(a.use_count(), 1);
        CHECK(a);
        CHECK_EQ(a->v, 1);
        CHECK_EQ((*a).v, 1);

        P b = a; /* copy retains */
        CHECK_EQ(a.use_count(), 2);
        CHECK(b.get() == a.get());

        P c(std::move(b)); /* move transfers */
        CHECK(!b);
        CHECK(b.get() == nullptr);
        CHECK_EQ(b.use_count(), 0);
        CHECK_EQ(c.use_count(), 2);

        P d(a.get()); /* from T*: retains */
        CHECK_EQ(a.use_count(), 3);
        d.reset();
        CHECK(!d);
        CHECK_EQ(a.use_count(), 2);
        d.reset(a.get()); /* reset(T*) retains */
        CHECK_EQ(a.use_count(), 3);

        P e;
        e = std::move(d); /* move assignment transfers */
        CHECK(!d);
        CHECK_EQ(a.use_count(), 3);
        P &e_ref = e;
        e = e_ref; /* self copy-assignment */
        CHECK_EQ(a.use_count(), 3);
        e = std::move(e_ref); /* self move-assignment keeps the object */
        CHECK(e == a);
        CHECK_EQ(a.use_count(), 3);
        e = nullptr;
        CHECK_EQ(a.use_count(), 2);

        P other = P::adopt(new_node(p, 2));
        P o2 = other;
        o2 = a; /* copy assignment: retain new, release old */
        CHECK_EQ(other.use_count(), 1);
        CHECK_EQ(a.use_count(), 3);
        o2 = other;
        CHECK_EQ(other.use_count(), 2);
        CHECK_EQ(a.use_count(), 2);

        /* detach / adopt round trip */
        node *raw = o2.detach();
        CHECK(!o2);
        CHECK_EQ(other.use_count(), 2);
        P back = P::adopt(raw);
        CHECK_EQ(other.use_count(), 2);

        /* swap */
        P s1 = a, s2 = other;
        swap(s1, s2);
        CHECK(s1 == other);
        CHECK(s2 == a);
        s1.swap(s2);
        CHECK(s1 == a);
        CHECK_EQ(a.use_count(), 3);

        /* rc_ptr<const node> from rc_ptr<node> */
        mulch::rc_ptr<const node> k = a;
        CHECK_EQ(a.use_count(), 4);
        CHECK_EQ(k->v, 1);
        mulch::rc_ptr<const node> k2 = std::move(s1);
        CHECK_EQ(a.use_count(), 4);
        CHECK(k == k2);
        CHECK(k == a);

        CHECK_EQ(g_node_destroys, 0);
    }
    /* The last release of each ran destroy exactly once. */
    CHECK_EQ(g_node_destroys, 2);
    CHECK_EQ(p.live(), 0);
}

CXX_TEST(test_cxx_rc_ptr_comparisons_and_hash)
{
    test_pool p;
    g_node_destroys = 0;
    {
        using P = mulch::rc_ptr<node>;
        P a = P::adopt(new_node(p, 1));
        P b = P::adopt(new_node(p, 2));
        P a2 = a;
        P empty;
        P empty2 = nullptr;

        CHECK(a == a2);
        CHECK(!(a != a2));
        CHECK(a != b);
        CHECK((a < b) != (b < a));
        CHECK(!(a < a2) && !(a2 < a));
        CHECK(a <= a2 && a >= a2);
        CHECK((a > b) == (b < a));
        CHECK(empty == nullptr);
        CHECK(nullptr == empty);
        CHECK(a != nullptr);
        CHECK(nullptr != a);
        CHECK(empty == empty2);
        CHECK(empty != a);
        CHECK(!empty);
        CHECK(!(empty < nullptr) && !(nullptr < empty));
        CHECK(nullptr < a);

        CHECK(std::hash<P>()(a) == std::hash<P>()(a2));
        CHECK(std::hash<P>()(a) == std::hash<node *>()(a.get()));
        std::unordered_set<P> set;
        set.insert(a);
        set.insert(a2);
        set.insert(b);
        set.insert(empty);
        CHECK_EQ(set.size(), 3);
        CHECK_EQ(a.use_count(), 3); /* a, a2, one copy in the set */
        CHECK_EQ(b.use_count(), 2);
        CHECK(set.count(a2) == 1);

        std::map<P, int> ordered;
        ordered[a] = 1;
        ordered[b] = 2;
        ordered[a2] = 3;
        CHECK_EQ(ordered.size(), 2);
        CHECK_EQ(ordered[a], 3);

        std::vector<P> v{b, a, b, a2};
        std::sort(v.begin(), v.end());
        CHECK(v[0] == v[1] && v[2] == v[3] && v[1] != v[2]);
        CHECK_EQ(a.use_count(), 6);
        set.clear();
        ordered.clear();
        v.clear();
        CHECK_EQ(a.use_count(), 2);
        CHECK_EQ(b.use_count(), 1);
    }
    CHECK_EQ(g_node_destroys, 2);
    CHECK_EQ(p.live(), 0);
}

/* ------------------------------------------------------------------------ */
/* make_rc                                                                   */

static int g_ctors, g_dtors;
struct counted {
    int v;
    std::vector<int, A<int>> payload; /* memory of its own, in the same pool */
    counted(int x, pool_t *p) : v(x), payload(p)
    {
        payload.assign(100, x);
        g_ctors++;
    }
    ~counted() { g_dtors++; }
    counted(const counted &) = delete;
    counted &operator=(const counted &) = delete;
};

struct nothrow_counted {
    long v;
    explicit nothrow_counted(long x) noexcept : v(x) { g_ctors++; }
    ~nothrow_counted() { g_dtors++; }
};

struct plain_pod {
    int a, b;
};

CXX_TEST(test_cxx_make_rc_ctor_dtor_once)
{
    test_pool p;
    g_ctors = g_dtors = 0;
    {
        mulch::rc_ptr<counted> c = mulch::make_rc_in<counted>(p, 7, p.p);
        CHECK_EQ(g_ctors, 1);
        CHECK_EQ(g_dtors, 0);
        CHECK_EQ(c.use_count(), 1);
        CHECK_EQ(c->v, 7);
        CHECK_EQ(c->payload.size(), 100);
        CHECK_EQ(reinterpret_cast<uintptr_t>(c.get()) % 16, 0);
        CHECK_EQ(p.live(), 2); /* the rc object and its vector */
        {
            mulch::rc_ptr<counted> c2 = c, c3 = c;
            CHECK_EQ(c.use_count(), 3);
            std::vector<mulch::rc_ptr<counted>> many(50, c);
            CHECK_EQ(c.use_count(), 53);
        }
        CHECK_EQ(c.use_count(), 1);
        CHECK_EQ(g_ctors, 1);
        CHECK_EQ(g_dtors, 0);
        c.reset();
        CHECK_EQ(g_dtors, 1);
        CHECK_EQ(p.live(), 0);

        /* The default pool (rc_alloc). */
        auto d = mulch::make_rc<counted>(8, pool_default());
        CHECK_EQ(g_ctors, 2);
        CHECK_EQ(d->v, 8);
        d = nullptr;
        CHECK_EQ(g_dtors, 2);

        /* noexcept constructor (no marker) and a trivially destructible type
         * (no destroy callback). */
        auto n = mulch::make_rc_in<nothrow_counted>(p, 11L);
        CHECK_EQ(g_ctors, 3);
        CHECK_EQ(n->v, 11);
        auto q = mulch::make_rc_in<plain_pod>(p, plain_pod{1, 2});
        CHECK_EQ(q->b, 2);
        auto q2 = mulch::make_rc_in<const plain_pod>(p.p);
        CHECK_EQ(q2->a, 0);
        CHECK_EQ(p.live(), 3);
        /* A NULL pool means pool_default(), as for pool_allocator. */
        CHECK_EQ(mulch::make_rc_in<plain_pod>(static_cast<pool_t *>(nullptr), plain_pod{4, 5})->b, 5);
        CHECK_EQ(p.live(), 3);
        n.reset();
        CHECK_EQ(g_dtors, 3);
    }
    CHECK_EQ(g_ctors, 3);
    CHECK_EQ(g_dtors, 3);
    CHECK_EQ(p.live(), 0);
}

/* A destroy (~T) that releases further rc objects: a long chain is released
 * iteratively by the library (rc.h), not by recursion. */
struct link {
    mulch::rc_ptr<link> next;
    int v;
    link(mulch::rc_ptr<link> n, int x) : next(std::move(n)), v(x) { g_ctors++; }
    ~link() { g_dtors++; }
};

CXX_TEST(test_cxx_make_rc_long_chain)
{
    test_pool p;
    g_ctors = g_dtors = 0;
    const int n = 200000;
    {
        mulch::rc_ptr<link> head;
        for (int i = 0; i < n; i++)
            head = mulch::make_rc_in<link>(p, std::move(head), i);
        CHECK_EQ(head->v, n - 1);
        CHECK_EQ(head->next.use_count(), 1);
        CHECK_EQ(p.live(), static_cast<size_t>(n));
    }
    CHECK_EQ(g_ctors, n);
    CHECK_EQ(g_dtors, n);
    CHECK_EQ(p.live(), 0);
}

static int g_thrower_dtors;
struct thrower {
    pstring s; /* non-trivial destructor: the marked path */
    thrower(pool_t *p, bool t) : s(make_pstring(p, "thrower", 1))
    {
        if (t)
            throw std::runtime_error("thrower");
    }
    ~thrower() { g_thrower_dtors++; }
};

/* Leaks `this` to a global owner before throwing. */
struct leaker;
static mulch::rc_ptr<leaker> g_leaked;
static int g_leaker_dtors;
struct leaker {
    int v = 5;
    explicit leaker(bool t)
    {
        g_leaked = mulch::rc_ptr<leaker>(this);
        if (t)
            throw std::logic_error("leaker");
    }
    ~leaker() { g_leaker_dtors++; }
};

struct trivial_thrower {
    int v;
    explicit trivial_thrower(int x) : v(x)
    {
        if (x < 0)
            throw std::invalid_argument("trivial_thrower");
    }
};
static_assert(std::is_trivially_destructible_v<trivial_thrower>);

struct huge_object {
    unsigned char bytes[64 << 20];
};

CXX_TEST(test_cxx_make_rc_throwing_ctor)
{
    test_pool p;
    g_thrower_dtors = 0;
    const uint64_t allocs0 = p.allocs();
    CHECK_THROWS(std::runtime_error, mulch::make_rc_in<thrower>(p, p.p, true));
    CHECK_EQ(g_thrower_dtors, 0);
    CHECK_GT(p.allocs(), allocs0); /* it did allocate... */
    CHECK_EQ(p.live(), 0);         /* ...and gave everything back */
    {
        auto ok = mulch::make_rc_in<thrower>(p, p.p, false);
        CHECK_EQ(ok.use_count(), 1);
        CHECK_EQ(p.live(), 2);
    }
    CHECK_EQ(g_thrower_dtors, 1);
    CHECK_EQ(p.live(), 0);

    /* Default pool too. */
    CHECK_THROWS(std::runtime_error, mulch::make_rc<thrower>(p.p, true));
    CHECK_EQ(g_thrower_dtors, 1);
    CHECK_EQ(p.live(), 0);

    /* The constructor handed `this` to another owner before throwing: the
     * memory lives on until that owner lets go, and ~T() never runs. */
    g_leaker_dtors = 0;
    CHECK_THROWS(std::logic_error, mulch::make_rc_in<leaker>(p, true));
    CHECK(g_leaked);
    CHECK_EQ(g_leaked.use_count(), 1);
    CHECK_EQ(p.live(), 1);
    g_leaked.reset();
    CHECK_EQ(g_leaker_dtors, 0);
    CHECK_EQ(p.live(), 0);
    {
        auto l = mulch::make_rc_in<leaker>(p, false);
        CHECK(g_leaked == l);
        CHECK_EQ(l.use_count(), 2);
        g_leaked.reset();
    }
    CHECK_EQ(g_leaker_dtors, 1);
    CHECK_EQ(p.live(), 0);

    /* Trivially destructible T with a throwing constructor. */
    CHECK_THROWS(std::invalid_argument, mulch::make_rc_in<trivial_thrower>(p, -1));
    CHECK_EQ(p.live(), 0);
    CHECK_EQ(mulch::make_rc_in<trivial_thrower>(p, 3)->v, 3);
    CHECK_EQ(p.live(), 0);

    /* Out of memory: bad_alloc, nothing constructed. */
    test_pool small(8 * MiB);
    CHECK_THROWS(std::bad_alloc, mulch::make_rc_in<huge_object>(small));
    CHECK_EQ(small.live(), 0);

    /* Fill the small pool with make_rc until it refuses: the refusal may come
     * from rc_alloc_in (nothing constructed) or from inside the constructor
     * (its vector: ~counted() must not run); either way nothing leaks. */
    g_ctors = g_dtors = 0;
    {
        std::vector<mulch::rc_ptr<counted>> all;
        bool oom = false;
        for (int i = 0; i < 1000000 && !oom; i++) {
            try {
                all.push_back(mulch::make_rc_in<counted>(small, i, small.p));
            } catch (const std::bad_alloc &) {
                oom = true;
            }
        }
        CHECK(oom);
        CHECK_GT(all.size(), 1000);
        CHECK_EQ(static_cast<size_t>(g_ctors), all.size());
        CHECK_EQ(g_dtors, 0);
        CHECK_EQ(small.live(), 2 * all.size());
    }
    CHECK_EQ(g_dtors, g_ctors);
    CHECK_EQ(small.live(), 0);
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
        cmocka_unit_test(test_cxx_allocator_unique_ptr),
        cmocka_unit_test(test_cxx_rc_ptr_counting),
        cmocka_unit_test(test_cxx_rc_ptr_comparisons_and_hash),
        cmocka_unit_test(test_cxx_make_rc_ctor_dtor_once),
        cmocka_unit_test(test_cxx_make_rc_long_chain),
        cmocka_unit_test(test_cxx_make_rc_throwing_ctor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
