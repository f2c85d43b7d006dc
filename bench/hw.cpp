// The hardware layer on the simulated GPU (sim/gpu.hpp):
//   - PRAMIN bulk writes of 4 MiB: throughput, bytes per window move, and the time as a
//     ratio to a memset of the same bytes in the same run (`x_memset`: what the window's
//     per-access work costs over plain stores; on hardware each store is an MMIO write);
//   - BAR1 map + release of a 64 MiB buddy allocation (2 MiB pages; tables through PRAMIN,
//     hub-only invalidates), with the invalidates and window moves per cycle.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "gpummu/hw/gpu_mm.hpp"
#include "gpummu/sim/gpu.hpp"
#include "support/sim_rig.hpp"

using namespace gpummu;

namespace {

constexpr u64 mib = 1u << 20;

double memset_seconds(std::size_t bytes)
{
    std::vector<u64> buffer(bytes / 8, 1);
    double best = 1e9;
    for (int round = 0; round < 50; ++round) {
        auto start = std::chrono::steady_clock::now();
        std::memset(buffer.data(), round & 0xFF, bytes);
        benchmark::ClobberMemory();
        best = std::min(
            best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return best;
}

void pramin_bulk_write(benchmark::State &state)
{
    std::vector<u64> vram((64 * mib) / 8, 0);
    auto gpu = sim::Gpu::create(state.range(0) == 2 ? sim::ga102 : sim::gh100, vram).value();
    auto pramin = Pramin<sim::Gpu::Bar0>::create(gpu.bar0(), gpu.record().window,
                                                 VramAddress{gpu.vram_bytes()})
                      .value();
    std::vector<u64> words((4 * mib) / 8);
    for (std::size_t i = 0; i < words.size(); ++i) words[i] = i;
    u64 offset = 0, failures = 0;
    const u64 moves_before = pramin.moves();
    const auto start = std::chrono::steady_clock::now();
    for (auto _ : state) {
        // Start at a different 64 KiB each time so every run crosses window boundaries.
        if (!pramin.write(VramAddress{(offset % 32) * 64 * 1024 + 8 * mib}, words)) ++failures;
        ++offset;
    }
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double bytes = static_cast<double>(words.size() * 8);
    const double iterations = static_cast<double>(state.iterations());
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(bytes));
    state.counters["failures"] = static_cast<double>(failures);
    state.counters["bytes_per_move"] =
        bytes * iterations / static_cast<double>(std::max<u64>(1, pramin.moves() - moves_before));
    state.counters["x_memset"] = elapsed / iterations / memset_seconds(words.size() * 8);
}

void bar1_map_release_64m(benchmark::State &state)
{
    testing::SimGpuRigStorage rig(state.range(0) == 2 ? sim::ga102 : sim::gh100);
    if (!rig.ready) {
        state.SkipWithError("simulated GPU not built");
        return;
    }
    auto &mm = *rig.mm;
    std::vector<BuddyBlock> blocks(64);
    auto allocation = mm.buddy().allocate(64 * mib, {}, blocks);
    if (!allocation) {
        state.SkipWithError("allocation failed");
        return;
    }
    u64 failures = 0;
    const u64 invalidates = rig.gpu->invalidate_count();
    const u64 moves = mm.pramin().moves();
    for (auto _ : state) {
        auto mapping = mm.bar1().map(allocation->blocks);
        if (!mapping || !mm.bar1().release(*mapping)) ++failures;
    }
    const double cycles = static_cast<double>(state.iterations());
    state.counters["failures"] = static_cast<double>(failures);
    state.counters["invalidates_per_cycle"] =
        static_cast<double>(rig.gpu->invalidate_count() - invalidates) / cycles;
    state.counters["window_moves_per_cycle"] =
        static_cast<double>(mm.pramin().moves() - moves) / cycles;
}

// Argument: the MMU version of the simulated chip (2: GA102, 3: GH100).
BENCHMARK(pramin_bulk_write)->Arg(2)->Arg(3)->Unit(benchmark::kMicrosecond);
BENCHMARK(bar1_map_release_64m)->Arg(2)->Arg(3)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
