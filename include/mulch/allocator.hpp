/* mulch/allocator.hpp — C++17 adapters over the pool and rc modules.
 *
 * Header-only; everything is in namespace mulch (helpers in mulch::detail).
 *
 *   pool_allocator<T>   a standard Allocator drawing from one pool_t; usable
 *                       with every STL container (vector, map, unordered_map,
 *                       list, basic_string, ...). Throws std::bad_alloc when
 *                       the pool returns NULL (and std::bad_array_new_length,
 *                       a bad_alloc, when n * sizeof(T) would overflow).
 *   pool_deleter        std::unique_ptr deleter that only frees: for
 *                       trivially destructible T (checked at compile time).
 *   pool_delete<T>      std::unique_ptr deleter that runs ~T() then frees;
 *                       make_pool_unique<T>(pool, args...) builds one.
 *   rc_ptr<T>           owning smart pointer to an rc object (intrusive: the
 *                       count lives in the rc object, see <mulch/rc.h>).
 *   make_rc<T>(args...) / make_rc_in<T>(pool, args...)
 *                       construct a T in a new rc object whose destroy
 *                       callback runs ~T(); returns rc_ptr<T>.
 *
 * rc_ptr<T> invariants: get() is NULL or the start address of a live rc
 * object (the pointer rc_alloc returned) on which this rc_ptr owns exactly
 * one reference. Constructing from T* (and reset(T*)) takes a new reference
 * (rc_retain); rc_ptr<T>::adopt(T*) takes over one the caller already owns
 * (e.g. the count-1 reference of rc_alloc); detach() hands it back. Copies
 * retain, destruction and reset() release, moves transfer without touching
 * the count. Because the pointer must be the rc object's own address, there
 * is no Derived -> Base conversion (it may change the address); only
 * rc_ptr<T> -> rc_ptr<const T>.
 *
 * make_rc: the T sits at offset 0 of the rc payload (so T* is the rc object's
 * address); T must therefore be aligned to at most 16 bytes (rc_alloc's
 * alignment; checked at compile time). When T's constructor may throw and T
 * has a non-trivial destructor, a one-byte "constructed" marker follows the T
 * in the payload (rc_alloc zeroes it) and is set once the constructor
 * returned; the destroy callback runs ~T() only when the marker is set. So if
 * the constructor throws, make_rc releases its reference and the memory goes
 * back to the pool without ~T() — also when the constructor had leaked `this`
 * to another owner (then the memory is freed by that owner's last release,
 * still without ~T()). Trivially destructible T get no destroy callback at
 * all; nothrow-constructible T get no marker.
 *
 * Thread safety: as the underlying C calls. An rc_ptr object itself is not
 * atomic (like std::shared_ptr: copies of it may be used on any threads). */
#ifndef MULCH_ALLOCATOR_HPP
#define MULCH_ALLOCATOR_HPP

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include <mulch/pool.h>
#include <mulch/rc.h>

namespace mulch {

/* Alignment pool_alloc and rc_alloc guarantee. */
inline constexpr std::size_t pool_min_alignment = 16;
inline constexpr std::size_t rc_alignment = 16;

namespace detail {

template <class T>
inline void *void_ptr(T *p) noexcept
{
    return const_cast<void *>(static_cast<const volatile void *>(p));
}

/* Start of the most derived object (what the pool returned), computed before
 * the destructor runs. */
template <class T>
inline void *allocation_start(T *p) noexcept
{
    if constexpr (std::is_polymorphic_v<T>)
        return const_cast<void *>(dynamic_cast<const volatile void *>(p));
    else
        return void_ptr(p);
}

} // namespace detail

/* ------------------------------------------------------ pool_allocator -- */

namespace detail {
/* An adapter made while pool_default() was NULL holds no pool: it uses the
 * default pool as it is when it allocates or frees. */
inline pool_t *pool_or_default(pool_t *pool) noexcept
{
    return pool ? pool : pool_default();
}
} // namespace detail

/* A standard Allocator over one pool. Two allocators compare equal when they
 * use the same pool (memory from one can be freed by the other). The pool
 * propagates with the container on copy/move assignment and swap, so a
 * container never ends up holding memory of a pool its allocator does not
 * name. The pool must outlive every container using it.
 * A default-constructed (or nullptr-constructed) allocator uses
 * pool_default(). Made while the default pool could not be created (the
 * OS refused it: pool_default() was NULL), it holds no pool (pool() is
 * NULL) and asks pool_default() again at each allocate and deallocate:
 * std::bad_alloc while it is still missing. */
template <class T>
class pool_allocator {
public:
    using value_type = T;
    using size_type = std::size_t;
    using difference_type = std::ptrdiff_t;
    using propagate_on_container_copy_assignment = std::true_type;
    using propagate_on_container_move_assignment = std::true_type;
    using propagate_on_container_swap = std::true_type;
    using is_always_equal = std::false_type;

    template <class U>
    struct rebind {
        using other = pool_allocator<U>;
    };

    pool_allocator() noexcept : pool_(pool_default()) {}
    /* Implicit, like std::pmr::polymorphic_allocator(memory_resource *):
     * `std::vector<int, mulch::pool_allocator<int>> v(pool);` works. */
    pool_allocator(pool_t *pool) noexcept : pool_(pool ? pool : pool_default()) {}
    pool_allocator(const pool_allocator &) noexcept = default;
    template <class U>
    pool_allocator(const pool_allocator<U> &other) noexcept : pool_(other.pool())
    {
    }
    pool_allocator &operator=(const pool_allocator &) noexcept = default;

    [[nodiscard]] T *allocate(size_type n)
    {
        if (n > max_size())
            throw std::bad_array_new_length();
        const size_type bytes = n * sizeof(T);
        pool_t *pool = detail::pool_or_default(pool_); /* pool_alloc does not check for NULL */
        if (pool == nullptr)
            throw std::bad_alloc();
        void *p;
        if constexpr (alignof(T) > pool_min_alignment)
            p = pool_alloc_aligned(pool, bytes, alignof(T));
        else
            p = pool_alloc(pool, bytes);
        if (p == nullptr)
            throw std::bad_alloc();
        return static_cast<T *>(p);
    }

    void deallocate(T *p, size_type) noexcept
    {
        pool_free(detail::pool_or_default(pool_), detail::void_ptr(p));
    }

    size_type max_size() const noexcept
    {
        return std::numeric_limits<size_type>::max() / sizeof(T);
    }

    pool_t *pool() const noexcept { return pool_; }

private:
    pool_t *pool_;
};

template <class T, class U>
inline bool operator==(const pool_allocator<T> &a, const pool_allocator<U> &b) noexcept
{
    return a.pool() == b.pool();
}

template <class T, class U>
inline bool operator!=(const pool_allocator<T> &a, const pool_allocator<U> &b) noexcept
{
    return a.pool() != b.pool();
}

/* ---------------------------------------------------- unique_ptr deleters -- */

/* Frees into a pool without running any destructor (made while the
 * default pool is missing, it frees into pool_default() as it is then):
 *   std::unique_ptr<T, mulch::pool_deleter> p(
 *       static_cast<T *>(pool_alloc(pool, sizeof(T))), mulch::pool_deleter(pool));
 * Only for trivially destructible T (a typed pointer to anything else is a
 * compile-time error: use pool_delete<T>); a void pointer is simply freed. */
class pool_deleter {
public:
    pool_deleter() noexcept : pool_(pool_default()) {}
    explicit pool_deleter(pool_t *pool) noexcept : pool_(pool ? pool : pool_default()) {}

    void operator()(void *p) const noexcept { pool_free(detail::pool_or_default(pool_), p); }
    /* std::unique_ptr<const void, pool_deleter>: read-only bytes are freed too */
    void operator()(const void *p) const noexcept { pool_free(detail::pool_or_default(pool_), const_cast<void *>(p)); }

    template <class T, class = std::enable_if_t<!std::is_void_v<std::remove_cv_t<T>>>>
    void operator()(T *p) const noexcept
    {
        static_assert(std::is_trivially_destructible_v<std::remove_extent_t<T>>,
                      "mulch::pool_deleter does not run destructors: use mulch::pool_delete<T>");
        pool_free(detail::pool_or_default(pool_), detail::void_ptr(p));
    }

    pool_t *pool() const noexcept { return pool_; }

private:
    pool_t *pool_;
};

/* Runs ~T() and frees into the pool: the deleter of make_pool_unique. For a
 * polymorphic T the memory freed is that of the most derived object, so
 * pool_delete<Base> may delete a Derived (Base needs a virtual destructor). */
template <class T>
class pool_delete {
    static_assert(!std::is_array_v<T>, "mulch::pool_delete<T[]> is not supported");

public:
    pool_delete() noexcept : pool_(pool_default()) {}
    explicit pool_delete(pool_t *pool) noexcept : pool_(pool ? pool : pool_default()) {}
    template <class U, class = std::enable_if_t<std::is_convertible_v<U *, T *>>>
    pool_delete(const pool_delete<U> &other) noexcept : pool_(other.pool())
    {
    }

    void operator()(T *p) const noexcept
    {
        if (p == nullptr)
            return;
        void *start = detail::allocation_start(p);
        p->~T();
        pool_free(detail::pool_or_default(pool_), start);
    }

    pool_t *pool() const noexcept { return pool_; }

private:
    pool_t *pool_;
};

template <class T>
using pool_unique_ptr = std::unique_ptr<T, pool_delete<T>>;

/* Allocates and constructs a T in `pool`; throws std::bad_alloc on NULL (the
 * memory is freed if the constructor throws). */
template <class T, class... Args>
pool_unique_ptr<T> make_pool_unique(pool_t *pool, Args &&...args)
{
    static_assert(!std::is_array_v<T>, "mulch::make_pool_unique<T[]> is not supported");
    pool_allocator<std::remove_cv_t<T>> alloc(pool);
    std::remove_cv_t<T> *mem = alloc.allocate(1);
    T *obj;
    try {
        obj = ::new (static_cast<void *>(mem)) T(std::forward<Args>(args)...);
    } catch (...) {
        alloc.deallocate(mem, 1);
        throw;
    }
    return pool_unique_ptr<T>(obj, pool_delete<T>(alloc.pool()));
}

/* -------------------------------------------------------------- rc_ptr -- */

template <class T>
class rc_ptr {
    static_assert(!std::is_array_v<T>, "mulch::rc_ptr<T[]> is not supported");

    template <class U>
    friend class rc_ptr;

    struct adopt_tag {};
    rc_ptr(T *p, adopt_tag) noexcept : p_(p) {}

public:
    using element_type = T;

    constexpr rc_ptr() noexcept = default;
    constexpr rc_ptr(std::nullptr_t) noexcept {}
    /* Takes a new reference on p (rc_retain); p NULL gives an empty rc_ptr. */
    explicit rc_ptr(T *p) noexcept : p_(p)
    {
        if (p_)
            rc_retain(detail::void_ptr(p_));
    }
    /* Takes over a reference the caller owns (does not retain). */
    [[nodiscard]] static rc_ptr adopt(T *p) noexcept { return rc_ptr(p, adopt_tag{}); }

    rc_ptr(const rc_ptr &other) noexcept : rc_ptr(other.p_) {}
    rc_ptr(rc_ptr &&other) noexcept : p_(std::exchange(other.p_, nullptr)) {}

    /* rc_ptr<T> -> rc_ptr<const T> (never a conversion that may change the
     * address, see the header comment). */
    template <class U, class = std::enable_if_t<std::is_same_v<std::remove_cv_t<U>, std::remove_cv_t<T>> &&
                                                std::is_convertible_v<U *, T *>>>
    rc_ptr(const rc_ptr<U> &other) noexcept : rc_ptr(static_cast<T *>(other.p_))
    {
    }
    template <class U, class = std::enable_if_t<std::is_same_v<std::remove_cv_t<U>, std::remove_cv_t<T>> &&
                                                std::is_convertible_v<U *, T *>>>
    rc_ptr(rc_ptr<U> &&other) noexcept : p_(std::exchange(other.p_, nullptr))
    {
    }

    ~rc_ptr()
    {
        if (p_)
            rc_release(detail::void_ptr(p_));
    }

    /* Retains the new object before releasing the old one: self-assignment
     * and an old object that owns the new one are both safe. */
    rc_ptr &operator=(const rc_ptr &other) noexcept
    {
        rc_ptr(other).swap(*this);
        return *this;
    }
    rc_ptr &operator=(rc_ptr &&other) noexcept
    {
        rc_ptr(std::move(other)).swap(*this);
        return *this;
    }
    rc_ptr &operator=(std::nullptr_t) noexcept
    {
        reset();
        return *this;
    }

    /* The pointer is cleared before the release, so a destroy callback that
     * reaches this rc_ptr sees it empty. */
    void reset() noexcept
    {
        T *old = std::exchange(p_, nullptr);
        if (old)
            rc_release(detail::void_ptr(old));
    }
    /* Retains p, then releases the old object. */
    void reset(T *p) noexcept { rc_ptr(p).swap(*this); }

    /* Gives up ownership without releasing: the caller now owns the
     * reference (the inverse of adopt). */
    [[nodiscard]] T *detach() noexcept { return std::exchange(p_, nullptr); }

    void swap(rc_ptr &other) noexcept { std::swap(p_, other.p_); }

    T *get() const noexcept { return p_; }
    T &operator*() const noexcept { return *p_; }
    T *operator->() const noexcept { return p_; }
    explicit operator bool() const noexcept { return p_ != nullptr; }

    /* rc_count of the object (exact when no retain/release is concurrent);
     * 0 when empty. */
    std::size_t use_count() const noexcept { return p_ ? rc_count(detail::void_ptr(p_)) : 0; }

    friend void swap(rc_ptr &a, rc_ptr &b) noexcept { a.swap(b); }

private:
    T *p_ = nullptr;
};

template <class T, class U>
inline bool operator==(const rc_ptr<T> &a, const rc_ptr<U> &b) noexcept
{
    return a.get() == b.get();
}
template <class T, class U>
inline bool operator!=(const rc_ptr<T> &a, const rc_ptr<U> &b) noexcept
{
    return a.get() != b.get();
}
template <class T, class U>
inline bool operator<(const rc_ptr<T> &a, const rc_ptr<U> &b) noexcept
{
    return std::less<const volatile void *>()(a.get(), b.get());
}
template <class T, class U>
inline bool operator>(const rc_ptr<T> &a, const rc_ptr<U> &b) noexcept
{
    return b < a;
}
template <class T, class U>
inline bool operator<=(const rc_ptr<T> &a, const rc_ptr<U> &b) noexcept
{
    return !(b < a);
}
template <class T, class U>
inline bool operator>=(const rc_ptr<T> &a, const rc_ptr<U> &b) noexcept
{
    return !(a < b);
}

template <class T>
inline bool operator==(const rc_ptr<T> &a, std::nullptr_t) noexcept
{
    return !a;
}
template <class T>
inline bool operator==(std::nullptr_t, const rc_ptr<T> &a) noexcept
{
    return !a;
}
template <class T>
inline bool operator!=(const rc_ptr<T> &a, std::nullptr_t) noexcept
{
    return static_cast<bool>(a);
}
template <class T>
inline bool operator!=(std::nullptr_t, const rc_ptr<T> &a) noexcept
{
    return static_cast<bool>(a);
}
template <class T>
inline bool operator<(const rc_ptr<T> &a, std::nullptr_t) noexcept
{
    return std::less<T *>()(a.get(), nullptr);
}
template <class T>
inline bool operator<(std::nullptr_t, const rc_ptr<T> &a) noexcept
{
    return std::less<T *>()(nullptr, a.get());
}
/* The rest of the orderings with nullptr (docs/api.md lists all six, as
 * std::shared_ptr has them): without these `p > nullptr` did not compile. */
template <class T>
inline bool operator>(const rc_ptr<T> &a, std::nullptr_t) noexcept
{
    return nullptr < a;
}
template <class T>
inline bool operator>(std::nullptr_t, const rc_ptr<T> &a) noexcept
{
    return a < nullptr;
}
template <class T>
inline bool operator<=(const rc_ptr<T> &a, std::nullptr_t) noexcept
{
    return !(nullptr < a);
}
template <class T>
inline bool operator<=(std::nullptr_t, const rc_ptr<T> &a) noexcept
{
    return !(a < nullptr);
}
template <class T>
inline bool operator>=(const rc_ptr<T> &a, std::nullptr_t) noexcept
{
    return !(a < nullptr);
}
template <class T>
inline bool operator>=(std::nullptr_t, const rc_ptr<T> &a) noexcept
{
    return !(nullptr < a);
}

/* ------------------------------------------------------------- make_rc -- */

namespace detail {

/* Where the "constructed" marker sits: right after the T. */
template <class T>
inline constexpr std::size_t rc_marker_offset = sizeof(T);

/* A T whose destructor matters and whose construction from Args may throw
 * needs the marker. */
template <class T, class... Args>
inline constexpr bool rc_needs_marker =
    !std::is_trivially_destructible_v<T> && !std::is_nothrow_constructible_v<T, Args...>;

/* destroy callbacks (static function templates, one per T). */
template <class T>
void rc_destroy(void *obj) noexcept
{
    static_cast<T *>(obj)->~T();
}

template <class T>
void rc_destroy_marked(void *obj) noexcept
{
    if (static_cast<unsigned char *>(obj)[rc_marker_offset<T>] != 0)
        static_cast<T *>(obj)->~T();
}

template <class T, class... Args>
rc_ptr<T> make_rc_with(void *(*alloc)(pool_t *, std::size_t, void (*)(void *)), pool_t *pool,
                       Args &&...args)
{
    static_assert(!std::is_array_v<T>, "mulch::make_rc<T[]> is not supported");
    static_assert(alignof(T) <= rc_alignment,
                  "mulch::make_rc: T must not be aligned to more than 16 bytes (rc objects are "
                  "16-byte aligned and T sits at their start)");
    using U = std::remove_cv_t<T>;
    constexpr bool marked = rc_needs_marker<U, Args...>;
    void (*destroy)(void *) = nullptr;
    std::size_t size = sizeof(U);
    if constexpr (marked) {
        destroy = &rc_destroy_marked<U>;
        size = rc_marker_offset<U> + 1;
    } else if constexpr (!std::is_trivially_destructible_v<U>) {
        destroy = &rc_destroy<U>;
    }
    void *mem = alloc(pool, size, destroy);
    if (mem == nullptr)
        throw std::bad_alloc();
    T *obj;
    if constexpr (std::is_nothrow_constructible_v<U, Args...>) {
        obj = ::new (mem) U(std::forward<Args>(args)...);
    } else {
        try {
            obj = ::new (mem) U(std::forward<Args>(args)...);
        } catch (...) {
            /* The marker is still 0 (or there is no destroy callback):
             * this frees the memory without running ~T(). */
            rc_release(mem);
            throw;
        }
    }
    if constexpr (marked)
        static_cast<unsigned char *>(mem)[rc_marker_offset<U>] = 1;
    return rc_ptr<T>::adopt(obj);
}

inline void *rc_alloc_default(pool_t *, std::size_t size, void (*destroy)(void *))
{
    return rc_alloc(size, destroy);
}

inline void *rc_alloc_pool(pool_t *pool, std::size_t size, void (*destroy)(void *))
{
    return rc_alloc_in(pool, size, destroy);
}

} // namespace detail

/* Constructs T(args...) in a new rc object from the default pool (rc_alloc);
 * its destroy callback runs ~T(). Throws std::bad_alloc on OOM and whatever
 * the constructor throws (then nothing leaks and ~T() does not run). */
template <class T, class... Args>
rc_ptr<T> make_rc(Args &&...args)
{
    return detail::make_rc_with<T>(&detail::rc_alloc_default, nullptr, std::forward<Args>(args)...);
}

/* Same, in `pool` (rc_alloc_in; NULL = pool_default(), as for
 * pool_allocator). */
template <class T, class... Args>
rc_ptr<T> make_rc_in(pool_t *pool, Args &&...args)
{
    return detail::make_rc_with<T>(&detail::rc_alloc_pool, pool ? pool : pool_default(),
                                   std::forward<Args>(args)...);
}

} // namespace mulch

namespace std {
/* Hashes the pointer, consistent with operator==. */
template <class T>
struct hash<mulch::rc_ptr<T>> {
    size_t operator()(const mulch::rc_ptr<T> &p) const noexcept { return hash<T *>()(p.get()); }
};
} // namespace std

#endif /* MULCH_ALLOCATOR_HPP */
