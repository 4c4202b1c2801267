/* bench/rc_bench.cpp — reference counting: mulch's rc objects against
 * std::shared_ptr and a naive atomic count, on the slot-assignment workload.
 *
 * Workload: N shared objects (--objects, default 256) created by the main
 * thread, and per worker thread an array of M slots (--slots, default 1024),
 * each slot holding one reference. One op takes the next random (slot,
 * object) pair from a table of 32768 drawn before the timed loop (seeded
 * xorshift64*), retains the object into the slot and
 * releases the slot's old object: exactly one retain and one release per
 * op, never reaching zero during the timed loop (the main thread keeps a
 * reference to every object). --threads 1 runs the loop on the main thread
 * itself, the objects' creator (for mulch: the owner, whose counts are
 * biased and non-atomic); --threads T>1 runs T worker threads, each with its
 * own slots, all on the same objects (for mulch: non-owners, atomic adds on
 * contended cache lines, like shared_ptr and naive).
 *
 * Variants, one executable (--variant):
 *   mulch       void* from rc_alloc (default pool), rc_retain / rc_release
 *   rc_ptr      mulch::rc_ptr<payload> from mulch::make_rc, `slots[i] = objs[j]`
 *   shared_ptr  std::make_shared<payload>, `slots[i] = objs[j]`
 *   naive       struct { std::atomic<long> count; payload }, fetch_add relaxed /
 *               fetch_sub acq_rel, delete at zero
 *   plain       raw pointer assignment, no counting: the harness floor
 *               (pick table read, slot load/store)
 * The payload is 32 bytes in every variant.
 *
 * Checks (errors=, exit status 2): after the timed loop, with every thread
 * quiescent, each object's count must be 1 + the number of slots (over all
 * threads) holding it; after teardown every object must have been destroyed
 * exactly once.
 *
 * Output: exactly one line on stdout,
 *   RESULT bench=rc variant=mulch threads=1 ns_per_op=4.21 ops=20000000
 *     seconds=0.084 mops=237.5 slots=1024 objects=256 seed=42 errors=0
 * (one line). ns_per_op = summed per-thread time of the timed loops / total
 * ops (the average cost of one op on one thread); seconds = wall time from
 * the start signal to the last thread's end; mops = total ops / seconds.
 *
 * Usage: rc_bench --variant V [--threads T] [--ops N (per thread)]
 *                 [--slots M] [--objects N] [--seed S]
 * Numbers accept a k/M/G suffix (decimal). */
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <mulch/allocator.hpp>
#include <mulch/pool.h>
#include <mulch/rc.h>

namespace {

struct payload {
    unsigned char bytes[32];
};

std::atomic<long> g_destroyed{0};

/* ------------------------------------------------------------- harness -- */

double now_seconds()
{
    using clock = std::chrono::steady_clock;
    return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

inline uint64_t rng_next(uint64_t &s)
{
    uint64_t x = s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

uint64_t rng_seed(uint64_t seed, uint64_t stream)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z ? z : 0x1234567ULL;
}

/* Two uniform indices from one draw (Lemire's multiply-shift on each half). */
inline void rng_pick(uint64_t &s, uint32_t m, uint32_t n, uint32_t &i, uint32_t &j)
{
    const uint64_t x = rng_next(s);
    i = static_cast<uint32_t>(((x >> 32) * m) >> 32);
    j = static_cast<uint32_t>(((x & 0xffffffffu) * n) >> 32);
}

struct args_t {
    std::string variant;
    unsigned threads = 1;
    uint64_t ops = 20000000;
    uint32_t slots = 1024;
    uint32_t objects = 256;
    uint64_t seed = 42;
    bool mt = false;
};

[[noreturn]] void usage(const char *msg)
{
    std::fprintf(stderr,
                 "rc_bench: %s\nusage: rc_bench --variant mulch|rc_ptr|shared_ptr|naive|plain "
                 "[--threads T] [--ops N] [--slots M] [--objects N] [--seed S]\n",
                 msg);
    std::exit(64);
}

uint64_t parse_num(const char *s)
{
    char *end = nullptr;
    double v = std::strtod(s, &end);
    if (end == s || v < 0)
        usage("bad number");
    switch (*end) {
    case 'k': v *= 1e3; break;
    case 'M': v *= 1e6; break;
    case 'G': v *= 1e9; break;
    case '\0': break;
    default: usage("bad number suffix");
    }
    return static_cast<uint64_t>(v);
}

/* ------------------------------------------------------------ variants -- */
/* Each variant: obj (what the main thread holds), slot (what a slot holds),
 * make(), fill(slot, obj) and assign(slot, obj) (the timed op), clear(slot),
 * count(obj), drop(obj). */

struct v_mulch {
    using obj = void *;
    using slot = void *;
    static void destroy(void *) { g_destroyed.fetch_add(1, std::memory_order_relaxed); }
    static obj make()
    {
        void *p = rc_alloc(sizeof(payload), destroy);
        if (p == nullptr) {
            std::fprintf(stderr, "rc_bench: rc_alloc returned NULL\n");
            std::exit(3);
        }
        return p;
    }
    static void fill(slot &s, obj o) { s = rc_retain(o); }
    static inline void assign(slot &s, obj o)
    {
        rc_retain(o);
        void *old = s;
        s = o;
        rc_release(old);
    }
    static void clear(slot &s)
    {
        rc_release(s);
        s = nullptr;
    }
    static size_t count(const obj &o) { return rc_count(o); }
    static void drop(obj &o)
    {
        rc_release(o);
        o = nullptr;
    }
};

struct counted_payload : payload {
    counted_payload() : payload() {}
    ~counted_payload() { g_destroyed.fetch_add(1, std::memory_order_relaxed); }
};

struct v_rc_ptr {
    using obj = mulch::rc_ptr<counted_payload>;
    using slot = mulch::rc_ptr<counted_payload>;
    static obj make() { return mulch::make_rc<counted_payload>(); }
    static void fill(slot &s, const obj &o) { s = o; }
    static inline void assign(slot &s, const obj &o) { s = o; }
    static void clear(slot &s) { s.reset(); }
    static size_t count(const obj &o) { return o.use_count(); }
    static void drop(obj &o) { o.reset(); }
};

struct v_shared_ptr {
    using obj = std::shared_ptr<counted_payload>;
    using slot = std::shared_ptr<counted_payload>;
    static obj make() { return std::make_shared<counted_payload>(); }
    static void fill(slot &s, const obj &o) { s = o; }
    static inline void assign(slot &s, const obj &o) { s = o; }
    static void clear(slot &s) { s.reset(); }
    static size_t count(const obj &o) { return static_cast<size_t>(o.use_count()); }
    static void drop(obj &o) { o.reset(); }
};

struct naive_obj {
    std::atomic<long> count{1};
    counted_payload data;
};

struct v_naive {
    using obj = naive_obj *;
    using slot = naive_obj *;
    static obj make() { return new naive_obj; }
    static inline void retain(naive_obj *o) { o->count.fetch_add(1, std::memory_order_relaxed); }
    static inline void release(naive_obj *o)
    {
        if (o->count.fetch_sub(1, std::memory_order_acq_rel) == 1)
            delete o;
    }
    static void fill(slot &s, obj o)
    {
        retain(o);
        s = o;
    }
    static inline void assign(slot &s, obj o)
    {
        retain(o);
        naive_obj *old = s;
        s = o;
        release(old);
    }
    static void clear(slot &s)
    {
        release(s);
        s = nullptr;
    }
    static size_t count(const obj &o) { return static_cast<size_t>(o->count.load()); }
    static void drop(obj &o)
    {
        release(o);
        o = nullptr;
    }
};

struct v_plain {
    using obj = counted_payload *;
    using slot = counted_payload *;
    static obj make() { return new counted_payload; }
    static void fill(slot &s, obj o) { s = o; }
    static inline void assign(slot &s, obj o) { s = o; }
    static void clear(slot &s) { s = nullptr; }
    static size_t count(const obj &) { return 0; } /* not counted: no check */
    static void drop(obj &o)
    {
        delete o;
        o = nullptr;
    }
};

/* --------------------------------------------------------------- run -- */

struct alignas(64) worker_state {
    double elapsed = 0;
    double end = 0;
};

template <class V>
struct bench {
    const args_t &a;
    std::vector<typename V::obj> objs;
    std::vector<std::vector<typename V::slot>> slots; /* one array per thread */
    std::vector<worker_state> st;
    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false};
    std::atomic<unsigned> finished{0};
    std::atomic<bool> may_clear{false};

    explicit bench(const args_t &args) : a(args), slots(args.threads), st(args.threads) {}

    void setup_slots(unsigned t)
    {
        auto &s = slots[t];
        s.resize(a.slots);
        for (uint32_t k = 0; k < a.slots; k++)
            V::fill(s[k], objs[(k + t * 7) % a.objects]);
    }

    /* The timed loop. The random (slot, object) picks are drawn before it
     * into a table the loop walks cyclically: drawing them inside the loop
     * put a serial chain of shifts and multiplies (~3 ns) into every op,
     * a floor that hid most of what the counting itself costs. */
    void loop(unsigned t)
    {
        auto *s = slots[t].data();
        const auto *o = objs.data();
        uint64_t rng = rng_seed(a.seed, t);
        const uint32_t m = a.slots, n = a.objects;
        constexpr uint32_t picks_len = 1u << 15; /* 256 KiB: stays in L2 */
        std::vector<std::pair<uint32_t, uint32_t>> picks(picks_len);
        for (auto &p : picks)
            rng_pick(rng, m, n, p.first, p.second);
        const auto *pk = picks.data();
        const double t0 = now_seconds();
        for (uint64_t k = 0; k < a.ops; k++) {
            const auto &p = pk[k & (picks_len - 1)];
            V::assign(s[p.first], o[p.second]);
        }
        const double t1 = now_seconds();
        st[t].elapsed = t1 - t0;
        st[t].end = t1;
    }

    void clear_slots(unsigned t)
    {
        for (auto &x : slots[t])
            V::clear(x);
    }

    void worker(unsigned t)
    {
        setup_slots(t);
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire))
            std::this_thread::yield();
        loop(t);
        finished.fetch_add(1, std::memory_order_release);
        while (!may_clear.load(std::memory_order_acquire))
            std::this_thread::yield();
        clear_slots(t); /* release on the thread that retained */
    }

    /* Every object's count is 1 (main) + the slots holding it. */
    long check_counts()
    {
        if constexpr (std::is_same_v<V, v_plain>)
            return 0;
        std::vector<size_t> expect(a.objects, 1);
        for (auto &arr : slots)
            for (auto &x : arr)
                for (uint32_t j = 0; j < a.objects; j++)
                    if (x == objs[j]) {
                        expect[j]++;
                        break;
                    }
        long errors = 0;
        for (uint32_t j = 0; j < a.objects; j++) {
            const size_t c = V::count(objs[j]);
            if (c != expect[j]) {
                if (errors < 5)
                    std::fprintf(stderr, "rc_bench: object %u: count %zu, expected %zu\n", j, c,
                                 expect[j]);
                errors++;
            }
        }
        return errors;
    }

    int run()
    {
        objs.reserve(a.objects);
        for (uint32_t j = 0; j < a.objects; j++)
            objs.push_back(V::make());
        const unsigned nt = a.threads;
        double start, wall;
        long errors = 0;
        if (nt == 1) {
            setup_slots(0);
            start = now_seconds();
            loop(0);
            wall = st[0].end - start;
            errors += check_counts();
            clear_slots(0);
        } else {
            std::vector<std::thread> th;
            for (unsigned t = 0; t < nt; t++)
                th.emplace_back([this, t] { worker(t); });
            while (ready.load() < nt)
                std::this_thread::yield();
            start = now_seconds();
            go.store(true, std::memory_order_release);
            while (finished.load(std::memory_order_acquire) < nt)
                std::this_thread::yield();
            double last = 0;
            for (auto &w : st)
                last = std::max(last, w.end);
            wall = last - start;
            errors += check_counts();
            may_clear.store(true, std::memory_order_release);
            for (auto &x : th)
                x.join();
        }
        for (auto &o : objs)
            V::drop(o);
        const long want = static_cast<long>(a.objects);
        if (g_destroyed.load() != want) {
            std::fprintf(stderr, "rc_bench: %ld objects destroyed, expected %ld\n", g_destroyed.load(),
                         want);
            errors++;
        }

        double thread_time = 0;
        for (auto &w : st)
            thread_time += w.elapsed;
        const double total_ops = static_cast<double>(a.ops) * nt;
        std::printf("RESULT bench=rc variant=%s threads=%u ns_per_op=%.3f ops=%.0f seconds=%.4f "
                    "mops=%.1f slots=%u objects=%u mt=%d seed=%" PRIu64 " errors=%ld\n",
                    a.variant.c_str(), nt, thread_time * 1e9 / total_ops, total_ops, wall,
                    total_ops / wall / 1e6, a.slots, a.objects, a.mt ? 1 : 0, a.seed, errors);
        std::fflush(stdout);
        return errors ? 2 : 0;
    }
};

} // namespace

int main(int argc, char **argv)
{
    args_t a;
    for (int k = 1; k < argc; k++) {
        const std::string opt = argv[k];
        auto val = [&]() -> const char * {
            if (k + 1 >= argc)
                usage("missing value");
            return argv[++k];
        };
        if (opt == "--variant")
            a.variant = val();
        else if (opt == "--threads")
            a.threads = static_cast<unsigned>(parse_num(val()));
        else if (opt == "--ops")
            a.ops = parse_num(val());
        else if (opt == "--slots")
            a.slots = static_cast<uint32_t>(parse_num(val()));
        else if (opt == "--objects")
            a.objects = static_cast<uint32_t>(parse_num(val()));
        else if (opt == "--seed")
            a.seed = parse_num(val());
        else if (opt == "--mt")
            a.mt = true;
        else if (opt == "-h" || opt == "--help")
            usage("help");
        else
            usage(("unknown option " + opt).c_str());
    }
    if (a.threads < 1 || a.threads > 256 || a.slots < 1 || a.objects < 1 || a.ops < 1)
        usage("threads 1..256, slots, objects and ops >= 1");
    if (a.threads > 1)
        a.mt = true;
    if (a.mt) {
        /* Once a thread has been created glibc clears __libc_single_threaded
         * for good, and libstdc++'s shared_ptr stops using plain increments. */
        std::thread([] {}).join();
    }
    std::fprintf(stderr, "rc_bench: mulch %s, variant %s, %u thread(s), %" PRIu64 " ops each%s\n",
                 mulch_version(), a.variant.c_str(), a.threads, a.ops,
                 a.mt ? ", multi-threaded process" : ", single-threaded process");

    if (a.variant == "mulch")
        return bench<v_mulch>(a).run();
    if (a.variant == "rc_ptr")
        return bench<v_rc_ptr>(a).run();
    if (a.variant == "shared_ptr")
        return bench<v_shared_ptr>(a).run();
    if (a.variant == "naive")
        return bench<v_naive>(a).run();
    if (a.variant == "plain")
        return bench<v_plain>(a).run();
    usage("unknown variant");
}
