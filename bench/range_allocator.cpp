// VA range allocator: 100k live ranges in a 49-bit space, aligned requests 64 KiB..2 MiB
// (each size aligned to itself), steady state: free a random live range, allocate a new
// one. Reported per operation (one free + one allocate = 2 operations).
#include <benchmark/benchmark.h>

#include <vector>

#include "gpummu/alloc/range_allocator.hpp"
#include "support/random.hpp"

using namespace gpummu;

namespace {

constexpr u64 KiB = 1024, MiB = 1024 * KiB;
constexpr std::size_t live_target = 100'000;

void aligned_churn(benchmark::State &state)
{
    testing::Random random(5);
    std::vector<RangeNode> pool(RangeAllocator::nodes_for(live_target + 16));
    auto ranges = RangeAllocator::create(
                      VirtualRange::from_size(VirtualAddress{1 * MiB}, u64{1} << 40).value(), pool)
                      .value();
    std::vector<VirtualRange> live;
    live.reserve(live_target);
    auto request = [&] {
        u64 size = (64 * KiB) << random.below(6);  // 64 KiB .. 2 MiB
        return RangeRequest{.size = size, .alignment = size, .top_down = random.coin()};
    };
    while (live.size() < live_target) live.push_back(ranges.allocate(request()).value());
    // Free a random half first so holes of every size are scattered through the space.
    for (std::size_t i = 0; i < live_target / 2; ++i) {
        std::size_t pick = static_cast<std::size_t>(random.below(live.size()));
        (void)ranges.free(live[pick]);
        live[pick] = live.back();
        live.pop_back();
    }
    while (live.size() < live_target) live.push_back(ranges.allocate(request()).value());
    long failures = 0;
    for (auto _ : state) {
        std::size_t pick = static_cast<std::size_t>(random.below(live.size()));
        (void)ranges.free(live[pick]);
        auto next = ranges.allocate(request());
        if (next)
            live[pick] = *next;
        else {
            ++failures;
            live[pick] = live.back();
            live.pop_back();
        }
    }
    state.SetItemsProcessed(state.iterations() * 2);
    state.counters["live_ranges"] = static_cast<double>(ranges.live_ranges());
    state.counters["failures"] = static_cast<double>(failures);
}
BENCHMARK(aligned_churn);

}  // namespace

BENCHMARK_MAIN();
