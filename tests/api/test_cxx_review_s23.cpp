/* test_cxx_review_s23.cpp — review session 23 of the C++ adapters
 * (<mulch/allocator.hpp>; docs/api.md "C++ adapters"). No bug found; what
 * was checked and had no test:
 *
 *   - std::allocate_shared with pool_allocator (the control block is a
 *     rebound allocation; an over-aligned T takes pool_alloc_aligned),
 *     and a std::map whose node allocator is rebound from another
 *     container's: equal allocators, the same pool, nothing left behind;
 *   - rc_ptr self-assignment and self-move keep the one reference, and
 *     `p = p->next` (the old object owns the new one) keeps the new one.
 *
 * Conventions as tests/api/test_cxx_smart_ptrs.cpp: CHECK* print and count,
 * CXX_TEST makes the single cmocka assertion, misuse reports fail. */
#include "cxx_test.hpp"

namespace {
struct alignas(64) wide {
    unsigned char bytes[64];
    int value;
};

struct link {
    mulch::rc_ptr<link> next;
    int id;
    explicit link(int i) : id(i) {}
};
} // namespace

CXX_TEST(test_cxx_allocate_shared_and_rebound_map)
{
    test_pool p;
    {
        auto w = std::allocate_shared<wide>(A<wide>(p.p));
        CHECK(w != nullptr);
        CHECK_EQ(reinterpret_cast<uintptr_t>(w.get()) % alignof(wide), 0);
        w->value = 7;
        std::weak_ptr<wide> weak = w;
        auto v = std::allocate_shared<std::vector<int, A<int>>>(A<int>(p.p), A<int>(p.p));
        for (int i = 0; i < 100; i++) v->push_back(i);
        CHECK_EQ(p.live(), 3); /* two control blocks with their objects, the vector's array */
        w.reset();
        CHECK(weak.expired());

        using entry = std::pair<const int, int>;
        std::map<int, int, std::less<int>, A<entry>> m(v->get_allocator());
        CHECK(m.get_allocator() == v->get_allocator());
        CHECK(m.get_allocator().pool() == p.p);
        for (int i = 0; i < 50; i++) m[i] = i * i;
        CHECK_EQ(m.at(7), 49);
    }
    CHECK_EQ(p.live(), 0);
}

CXX_TEST(test_cxx_rc_ptr_self_assignment_and_owned_next)
{
    test_pool p;
    {
        auto a = mulch::make_rc_in<link>(p.p, 1);
        mulch::rc_ptr<link> &alias = a;
        a = alias;
        CHECK_EQ(a.use_count(), 1);
        a = std::move(alias);
        CHECK(a != nullptr);
        CHECK_EQ(a.use_count(), 1);
        a->next = mulch::make_rc_in<link>(p.p, 2);
        a->next->next = mulch::make_rc_in<link>(p.p, 3);
        CHECK_EQ(p.live(), 3);
        a = a->next; /* the old head, destroyed here, held the new one */
        CHECK_EQ(a->id, 2);
        CHECK_EQ(a.use_count(), 1);
        a = std::move(a->next);
        CHECK_EQ(a->id, 3);
        CHECK_EQ(p.live(), 1);
    }
    CHECK_EQ(p.live(), 0);
}

int main(void)
{
    mulch_set_error_handler(count_misuse, nullptr);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cxx_allocate_shared_and_rebound_map),
        cmocka_unit_test(test_cxx_rc_ptr_self_assignment_and_owned_next),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
