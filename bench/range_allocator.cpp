// VA range allocator against a baseline in the same run: 100k live ranges in a 1 TiB
// space, steady state: free a random live range, allocate a new one. Reported per
// operation (one free + one allocate = 2 operations). Two workloads (the benchmark's
// argument):
//   0  aligned: sizes 64 KiB .. 2 MiB, powers of two, each aligned to its size;
//   1  uneven: 64 KiB x U[1, 32], aligned to the size's power-of-two ceiling.
// Half of the requests are top-down. The baseline is what a driver writes first: holes in
// a std::map by address plus a std::set by (size, address), best fit (the smallest hole
// the aligned request fits in), holes merged on free.
#include <benchmark/benchmark.h>

#include <bit>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "gpummu/alloc/range_allocator.hpp"
#include "support/random.hpp"

using namespace gpummu;

namespace {

constexpr u64 KiB = 1024, MiB = 1024 * KiB;
constexpr std::size_t live_target = 100'000;
const VirtualRange space = VirtualRange::from_size(VirtualAddress{1 * MiB}, u64{1} << 40).value();

RangeRequest draw(testing::Random &random, bool uneven)
{
    if (!uneven) {
        const u64 size = (64 * KiB) << random.below(6);  // 64 KiB .. 2 MiB
        return RangeRequest{.size = size, .alignment = size, .top_down = random.coin()};
    }
    const u64 size = 64 * KiB * (1 + random.below(32));
    return RangeRequest{.size = size, .alignment = std::bit_ceil(size), .top_down = random.coin()};
}

// gpummu's allocator.
struct Gpummu {
    std::vector<RangeNode> pool =
        std::vector<RangeNode>(RangeAllocator::nodes_for(live_target + 16));
    RangeAllocator ranges = RangeAllocator::create(space, pool).value();
    Result<VirtualRange> allocate(const RangeRequest &request) { return ranges.allocate(request); }
    void free(VirtualRange range) { (void)ranges.free(range); }
};

// The baseline: best fit over a std::map of holes.
struct StdMapBestFit {
    std::map<u64, u64> holes;               // begin -> end
    std::set<std::pair<u64, u64>> by_size;  // (size, begin)
    StdMapBestFit() { add(space.begin().value(), space.end().value()); }
    void add(u64 begin, u64 end)
    {
        holes.emplace(begin, end);
        by_size.emplace(end - begin, begin);
    }
    void remove(std::map<u64, u64>::iterator hole)
    {
        by_size.erase({hole->second - hole->first, hole->first});
        holes.erase(hole);
    }
    Result<VirtualRange> allocate(const RangeRequest &request)
    {
        for (auto it = by_size.lower_bound({request.size, 0}); it != by_size.end(); ++it) {
            const u64 begin = it->second, end = begin + it->first;
            const u64 mask = request.alignment - 1;
            const u64 at =
                request.top_down ? ((end - request.size) & ~mask) : ((begin + mask) & ~mask);
            if (at < begin || at + request.size > end) continue;
            remove(holes.find(begin));
            if (at > begin) add(begin, at);
            if (at + request.size < end) add(at + request.size, end);
            return VirtualRange::from_size(VirtualAddress{at}, request.size).value();
        }
        return failure(Error::out_of_va);
    }
    void free(VirtualRange range)
    {
        u64 begin = range.begin().value(), end = range.end().value();
        auto next = holes.lower_bound(begin);
        if (next != holes.end() && next->first == end) {
            end = next->second;
            auto after = std::next(next);
            remove(next);
            next = after;
        }
        if (next != holes.begin()) {
            auto previous = std::prev(next);
            if (previous->second == begin) {
                begin = previous->first;
                remove(previous);
            }
        }
        add(begin, end);
    }
};

template <class Allocator>
void churn(benchmark::State &state)
{
    const bool uneven = state.range(0) != 0;
    testing::Random random(5);
    Allocator ranges;
    std::vector<VirtualRange> live;
    live.reserve(live_target);
    while (live.size() < live_target) live.push_back(ranges.allocate(draw(random, uneven)).value());
    // Free a random half first so holes of every size are scattered through the space.
    for (std::size_t i = 0; i < live_target / 2; ++i) {
        const std::size_t pick = static_cast<std::size_t>(random.below(live.size()));
        ranges.free(live[pick]);
        live[pick] = live.back();
        live.pop_back();
    }
    while (live.size() < live_target) live.push_back(ranges.allocate(draw(random, uneven)).value());
    long failures = 0;
    for (auto _ : state) {
        const std::size_t pick = static_cast<std::size_t>(random.below(live.size()));
        ranges.free(live[pick]);
        auto next = ranges.allocate(draw(random, uneven));
        if (next) {
            live[pick] = *next;
        } else {
            ++failures;
            live[pick] = live.back();
            live.pop_back();
        }
    }
    state.SetItemsProcessed(state.iterations() * 2);
    state.counters["ns_per_operation"] =
        benchmark::Counter(static_cast<double>(state.iterations() * 2),
                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    state.counters["failures"] = static_cast<double>(failures);
}
// Arg 0: aligned powers of two; arg 1: uneven sizes.
BENCHMARK_TEMPLATE(churn, Gpummu)->Arg(0)->Arg(1);
BENCHMARK_TEMPLATE(churn, StdMapBestFit)->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
