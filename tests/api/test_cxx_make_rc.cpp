/* test_cxx_make_rc.cpp — black-box tests of the C++ adapters
 * (<mulch/allocator.hpp>; shared/API.md "C++" and "RC"), make_rc:
 *
 * make_rc / make_rc_in running the constructor and the destructor exactly
 * once (in a pool of the test's own and the default pool), a long chain
 * released without recursion, and make_rc with a throwing constructor
 * (nothing leaks, ~T() never runs) or out of memory.
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
        cmocka_unit_test(test_cxx_make_rc_ctor_dtor_once),
        cmocka_unit_test(test_cxx_make_rc_long_chain),
        cmocka_unit_test(test_cxx_make_rc_throwing_ctor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
