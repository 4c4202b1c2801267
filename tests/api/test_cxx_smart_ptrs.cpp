/* test_cxx_smart_ptrs.cpp — black-box tests of the C++ adapters
 * (<mulch/allocator.hpp>; shared/API.md "C++" and "RC"), the smart pointers:
 *
 * unique_ptr with pool_deleter and pool_delete (destructors run, deletion
 * through a second base, a throwing constructor leaks nothing), and rc_ptr's
 * counting (copy retains, move does not, reset, detach/adopt, use_count,
 * comparisons, hashing; destroy runs exactly once).
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

int main(void)
{
    mulch_set_error_handler(count_misuse, nullptr);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cxx_allocator_unique_ptr),
        cmocka_unit_test(test_cxx_rc_ptr_counting),
        cmocka_unit_test(test_cxx_rc_ptr_comparisons_and_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
