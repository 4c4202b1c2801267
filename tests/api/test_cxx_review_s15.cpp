/* test_cxx_review_s15.cpp — regression tests from review session 15 of the
 * C++ adapters (<mulch/allocator.hpp>; docs/api.md "C++ adapters"):
 *
 *   - rc_ptr compared with nullptr by every operator docs/api.md lists
 *     (==, !=, <, >, <=, >=, both operand orders), as std::shared_ptr
 *     allows; only ==, != and < existed, so `p > nullptr` did not compile.
 *   - pool_deleter frees a const void * (std::unique_ptr<const void, ...>
 *     did not compile).
 *
 * Conventions as tests/api/test_cxx_smart_ptrs.cpp: CHECK* print and count,
 * CXX_TEST makes the single cmocka assertion, misuse reports fail. */
#include "cxx_test.hpp"

CXX_TEST(test_cxx_rc_ptr_nullptr_ordering)
{
    test_pool p;
    {
        using P = mulch::rc_ptr<int>;
        using CP = mulch::rc_ptr<const int>;
        void *raw = rc_alloc_in(p, sizeof(int), nullptr);
        CHECK(raw != nullptr);
        P a = P::adopt(static_cast<int *>(raw));
        CP c = a;
        P empty;

        CHECK(a > nullptr);
        CHECK(!(nullptr > a));
        CHECK(a >= nullptr);
        CHECK(!(a <= nullptr));
        CHECK(nullptr <= a);
        CHECK(!(nullptr >= a));
        CHECK(c > nullptr && c >= nullptr && nullptr < c && nullptr <= c);

        CHECK(!(empty > nullptr) && !(nullptr > empty));
        CHECK(empty >= nullptr && nullptr >= empty);
        CHECK(empty <= nullptr && nullptr <= empty);

        /* consistent with std::less on the raw pointers, as for shared_ptr */
        std::shared_ptr<int> sp(static_cast<int *>(nullptr));
        CHECK((a > nullptr) == (std::less<int *>()(nullptr, a.get())));
        CHECK((empty >= nullptr) == (sp >= nullptr));
        CHECK_EQ(a.use_count(), 2);
    }
    CHECK_EQ(p.live(), 0);
}

CXX_TEST(test_cxx_pool_deleter_const_void)
{
    test_pool p;
    {
        const void *bytes = pool_alloc(p, 64);
        CHECK(bytes != nullptr);
        std::unique_ptr<const void, mulch::pool_deleter> owner(bytes, mulch::pool_deleter(p));
        CHECK_EQ(p.live(), 1);
    }
    CHECK_EQ(p.live(), 0);
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    mulch_set_error_handler(count_misuse, nullptr);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cxx_rc_ptr_nullptr_ordering),
        cmocka_unit_test(test_cxx_pool_deleter_const_void),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
