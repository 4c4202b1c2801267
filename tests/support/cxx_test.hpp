/* cxx_test.hpp — the harness shared by the C++ adapter tests
 * tests/api/test_cxx_{pool_allocator,smart_ptrs,make_rc}.cpp (public headers
 * only):
 *
 *   - CHECK, CHECK_EQ, CHECK_GT, CHECK_THROWS: checks that print and count
 *     instead of longjmp-ing out of the test (which in C++ would skip
 *     destructors); CXX_TEST(name) wraps a test body, turns an unexpected
 *     exception into a failure and makes the single cmocka assertion after
 *     the body's objects are gone;
 *   - count_misuse: the mulch error handler main() installs; any report
 *     during a test fails it;
 *   - A<T> (mulch::pool_allocator<T>), pstring / pstring_hash /
 *     make_pstring (strings long enough to allocate), test_pool (a pool
 *     owned by one test, with its statistics) and MiB.
 *
 * Everything here is static (inline) and belongs to the including file. */
#ifndef MULCH_CXX_TEST_HPP
#define MULCH_CXX_TEST_HPP

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

static inline void count_misuse(const char *what, const void *ptr, void *)
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

static inline pstring make_pstring(pool_t *p, const char *prefix, int i)
{
    /* Longer than any small-string buffer, so it allocates. */
    pstring s{A<char>(p)};
    s.append(prefix);
    s.append(" number ");
    s.append(std::to_string(i).c_str());
    s.append(" with a tail long enough to leave the SSO buffer");
    return s;
}

#endif /* MULCH_CXX_TEST_HPP */
