// Bind jobs against the same work done directly on a page table (both formats, host
// memory, table pages from a buddy):
//   - small binds: 100,000 operations on 64 KiB pieces at random 64 KiB-aligned VAs of a
//     1 TiB space: 80% new maps, 10% maps with replace over a mapping, 10% partial unmaps
//     (16 KiB out of a mapping). As jobs of 1 and of 64 operations (prepare + commit +
//     one flush per job), and directly on PageTable (map / unmap and one flush per 64
//     operations). Reported: ns per operation. Each jobs iteration is paired with a direct
//     run of the same workload (before and after it, alternating), and the row reports
//     that baseline and the median of the 9 pairs' ratios: this shared 2-core host
//     drifts in speed by 10-20% between seconds, which skewed ratios taken from two rows
//     run apart.
//   - rebind: a 1 GiB backing (512 runs of 2 MiB) mapped in 8 spaces moves from VRAM to
//     system memory; one rebind job per space, against the same maps done fresh.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <memory>
#include <unordered_set>
#include <vector>

#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/vmm/bind_job.hpp"
#include "support/random.hpp"
#include "support/space_storage.hpp"
#include "support/vram_image.hpp"

using namespace gpummu;

namespace {

constexpr u64 KiB = 1024, MiB = 1024 * KiB;
constexpr u64 space_bytes = u64{1} << 40;
constexpr u64 operations = 100'000;

struct NoInvalidator {
    Result<void> invalidate(const TlbInvalidation &) { return success(); }
};

// The operation list, drawn once: each entry names a 64 KiB slot of the space.
struct Workload {
    std::vector<BindOperation> list;
    explicit Workload(u64 seed)
    {
        testing::Random random(seed);
        std::vector<u64> mapped;
        std::unordered_set<u64> used;  // every slot ever mapped (a holed one is not reused)
        list.reserve(operations);
        for (u64 i = 0; i < operations; ++i) {
            BindOperation operation;
            const u64 roll = random.below(10);
            if (roll == 0 && !mapped.empty()) {
                const u64 va = mapped[random.below(mapped.size())];
                operation.kind = BindOperation::Kind::map;
                operation.replace = true;
                operation.range = VirtualRange::from_size(VirtualAddress{va}, 64 * KiB).value();
                operation.attributes.address = PhysicalAddress{(i % 4096) * 64 * KiB};
            } else if (roll == 1 && !mapped.empty()) {
                const std::size_t pick = random.below(mapped.size());
                const u64 va = mapped[pick];
                operation.kind = BindOperation::Kind::unmap;
                operation.range =
                    VirtualRange::from_size(VirtualAddress{va + 16 * KiB}, 16 * KiB).value();
                mapped[pick] = mapped.back();  // not picked again: it has a hole now
                mapped.pop_back();
            } else {
                u64 va;
                do {
                    va = random.below(space_bytes / (64 * KiB)) * 64 * KiB;
                } while (!used.insert(va).second);
                operation.kind = BindOperation::Kind::map;
                operation.range = VirtualRange::from_size(VirtualAddress{va}, 64 * KiB).value();
                operation.attributes.address = PhysicalAddress{(i % 4096) * 64 * KiB};
                mapped.push_back(va);
            }
            list.push_back(operation);
        }
    }
};

using testing::VramImage;

// Time per operation of the workload (the counter inverts a rate).
void report_per_operation(benchmark::State &state)
{
    state.counters["ns_per_operation"] = benchmark::Counter(
        static_cast<double>(operations) * static_cast<double>(state.iterations()),
        benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// VRAM for tables, a buddy and the storage a space needs for the workload.
template <MmuFormat F>
struct Rig {
    VramImage vram{512 * MiB};
    HostMemory &memory = vram.memory;
    BuddyAllocator &buddy = vram.buddy;
    std::vector<PageTableNode> nodes = std::vector<PageTableNode>(160'000);
    std::vector<PageTableChildren> children = std::vector<PageTableChildren>(8192);
    std::vector<BigTableSlot> slots = std::vector<BigTableSlot>(16'384);
    NoInvalidator invalidator;
};

// The record storage of a bind space for the workload, and its creation over a rig.
struct JobRecords {
    std::vector<MappingNode> records = std::vector<MappingNode>(2 * operations);
    std::vector<MappingNode> projected = std::vector<MappingNode>(2 * operations);
    std::vector<OrderedIndexNode> records_index =
        std::vector<OrderedIndexNode>(MappingRecords::index_nodes_for(2 * operations));
    std::vector<OrderedIndexNode> projected_index =
        std::vector<OrderedIndexNode>(MappingRecords::index_nodes_for(2 * operations));

    template <MmuFormat F>
    bool create(BindSpace<F, HostMemory, NoInvalidator> &space, Rig<F> &rig)
    {
        BindSpaceConfig config;
        config.space = VirtualRange::from_size(VirtualAddress{0}, space_bytes).value();
        return space
            .create(rig.memory, rig.buddy, rig.invalidator,
                    {{rig.nodes, rig.children},
                     rig.slots,
                     records,
                     projected,
                     records_index,
                     projected_index},
                    config)
            .has_value();
    }
};

// The workload's operations done directly on a page table (not inlined: profilers and
// simulators name the timed part by these two functions).
template <MmuFormat F, class Table>
[[gnu::noinline]] void direct_operations(const Workload &workload, Table &table, Rig<F> &rig,
                                         benchmark::State &state)
{
    TlbBatch all = table.empty_batch();
    u64 done = 0;
    for (const BindOperation &operation : workload.list) {
        auto batch =
            operation.kind == BindOperation::Kind::unmap
                ? table.unmap(operation.range)
                : table.map(operation.range, operation.attributes, {.replace = operation.replace});
        if (!batch) state.SkipWithError(error_name(batch.error()));
        (void)all.merge(std::move(*batch));
        if (++done % 64 == 0) (void)table.flush(all, rig.invalidator);
    }
    (void)table.flush(all, rig.invalidator);
}
// The workload's operations as jobs of `job_size` operations.
template <MmuFormat F>
[[gnu::noinline]] void job_operations(const Workload &workload, std::size_t job_size,
                                      BindSpace<F, HostMemory, NoInvalidator> &space,
                                      benchmark::State &state)
{
    auto ignore = [](const MappingStep &) {};
    for (std::size_t first = 0; first < workload.list.size(); first += job_size) {
        const std::span<const BindOperation> job =
            std::span(workload.list)
                .subspan(first, std::min(job_size, workload.list.size() - first));
        auto prepared = space.prepare(job);
        if (!prepared) {
            state.SkipWithError(error_name(prepared.error()));
            break;
        }
        auto batch = space.commit(std::move(*prepared), ignore);
        if (!batch || !space.flush(*batch)) state.SkipWithError("commit");
    }
}

// The workload done directly on a page table over a fresh rig: the seconds its operations
// took (rig set-up and teardown excluded).
template <MmuFormat F>
double run_direct(const Workload &workload, benchmark::State &state)
{
    auto rig = std::make_unique<Rig<F>>();
    BuddyTablePages<HostMemory> pages(rig->buddy, rig->memory, rig->slots);
    auto table = PageTable<F, HostMemory, BuddyTablePages<HostMemory>>::create(
                     rig->memory, pages, {rig->nodes, rig->children}, {})
                     .value();
    const auto start = std::chrono::steady_clock::now();
    direct_operations(workload, table, *rig, state);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The workload as jobs over a fresh space: the seconds its prepares and commits took.
template <MmuFormat F>
double run_jobs(const Workload &workload, std::size_t job_size, benchmark::State &state)
{
    auto rig = std::make_unique<Rig<F>>();
    auto records = std::make_unique<JobRecords>();
    auto space = std::make_unique<BindSpace<F, HostMemory, NoInvalidator>>();
    if (!records->create(*space, *rig)) state.SkipWithError("create");
    const auto start = std::chrono::steady_clock::now();
    job_operations(workload, job_size, *space, state);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    (void)space->destroy();
    return seconds;
}

template <MmuFormat F>
void small_binds_direct(benchmark::State &state)
{
    const Workload workload(7);
    for (auto _ : state) state.SetIterationTime(run_direct<F>(workload, state));
    report_per_operation(state);
}

// Jobs, each iteration paired with a direct run of the same workload right before or after
// it (alternating): `direct_ns_per_operation` and the pair's ratio come from the same
// minutes of the machine, which a slow phase of a shared host would otherwise skew between
// two rows. `ratio` is the median of the pairs' ratios (a phase that slows one run of a
// pair moves one ratio, not the figure).
template <MmuFormat F>
void small_binds_jobs(benchmark::State &state)
{
    const std::size_t job_size = static_cast<std::size_t>(state.range(0));
    const Workload workload(7);
    double direct = 0;
    std::vector<double> ratios;
    bool direct_first = false;
    for (auto _ : state) {
        direct_first = !direct_first;
        double paired = 0;
        if (direct_first) paired = run_direct<F>(workload, state);
        const double seconds = run_jobs<F>(workload, job_size, state);
        if (!direct_first) paired = run_direct<F>(workload, state);
        direct += paired;
        ratios.push_back(seconds / paired);
        state.SetIterationTime(seconds);
    }
    report_per_operation(state);
    const double runs = static_cast<double>(operations) * static_cast<double>(state.iterations());
    state.counters["direct_ns_per_operation"] = direct * 1e9 / runs;
    std::sort(ratios.begin(), ratios.end());
    const std::size_t middle = ratios.size() / 2;
    state.counters["ratio"] =
        ratios.size() % 2 == 1 ? ratios[middle] : (ratios[middle - 1] + ratios[middle]) / 2;
}

// A job that fails at its last operation, in a space that holds the small-binds workload
// (about 90,000 records): prepare validates the first operation (a fresh 64 KiB map) into
// the projected records, the second (an unmap of a VA nothing maps) fails, and prepare
// must leave no trace (it undoes its own steps). Arg 1: the first operation prepared alone
// and cancelled. Both used to rebuild every projected record (35-65 ms here).
template <MmuFormat F>
void failed_prepare(benchmark::State &state)
{
    const bool cancel = state.range(0) != 0;
    const Workload workload(7);
    auto rig = std::make_unique<Rig<F>>();
    auto records = std::make_unique<JobRecords>();
    auto space = std::make_unique<BindSpace<F, HostMemory, NoInvalidator>>();
    if (!records->create(*space, *rig)) state.SkipWithError("create");
    for (std::size_t first = 0; first < workload.list.size(); first += 64) {
        const auto job =
            std::span(workload.list)
                .subspan(first, std::min<std::size_t>(64, workload.list.size() - first));
        auto prepared = space->prepare(job);
        if (!prepared) {
            state.SkipWithError("workload");
            return;
        }
        auto batch = space->commit(std::move(*prepared), [](const MappingStep &) {});
        if (!batch || !space->flush(*batch)) state.SkipWithError("commit");
    }
    std::array<BindOperation, 2> job{};
    job[0].kind = BindOperation::Kind::map;  // VA 1 TiB - 64 KiB: never in the workload
    job[0].range =
        VirtualRange::from_size(VirtualAddress{space_bytes - 64 * KiB}, 64 * KiB).value();
    job[1].kind = BindOperation::Kind::unmap;
    job[1].range =
        VirtualRange::from_size(VirtualAddress{space_bytes - 128 * KiB}, 4 * KiB).value();
    for (auto _ : state) {
        if (cancel) {
            auto prepared = space->prepare(std::span(job).first(1));
            if (!prepared || !space->cancel(std::move(*prepared))) state.SkipWithError("cancel");
        } else if (space->prepare(job)) {
            state.SkipWithError("the job should fail");
        }
    }
    state.counters["records"] = static_cast<double>(space->records().count());
    (void)space->destroy();
}

// Eight spaces over one VRAM image and buddy, each mapping the same 1 GiB backing.
template <MmuFormat F>
struct EightSpaces {
    static constexpr std::size_t count = 8;
    static constexpr u64 backing_bytes = u64{1} << 30;
    VramImage vram{64 * MiB};
    HostMemory &memory = vram.memory;
    BuddyAllocator &buddy = vram.buddy;
    NoInvalidator invalidator;
    struct One {
        testing::BindStorage storage{4096, 64, 256, 16};
        BindSpace<F, HostMemory, NoInvalidator> space;
    };
    std::array<std::unique_ptr<One>, count> spaces;

    void create()
    {
        for (auto &one : spaces) {
            one = std::make_unique<One>();
            BindSpaceConfig config;
            config.space = VirtualRange::from_size(VirtualAddress{0}, space_bytes).value();
            config.vram_end = VramAddress{u64{1} << 40};
            (void)one->space.create(memory, buddy, invalidator, one->storage.get(), config);
        }
    }
    bool run(BindSpace<F, HostMemory, NoInvalidator> &space, const BindOperation &operation)
    {
        auto prepared = space.prepare(std::span(&operation, 1));
        if (!prepared) return false;
        auto batch = space.commit(std::move(*prepared), [](const MappingStep &) {});
        return batch && space.flush(*batch);
    }
    void destroy()
    {
        for (auto &one : spaces) {
            (void)one->space.destroy();
            one.reset();
        }
    }
};

// 512 runs of 2 MiB: in VRAM at 1 GiB, or in system memory at 64 GiB.
std::vector<PhysicalSegment> runs_at(u64 base)
{
    std::vector<PhysicalSegment> runs;
    for (u64 i = 0; i < 512; ++i)
        runs.push_back(PhysicalSegment{PhysicalAddress{base + i * 2 * MiB}, 2 * MiB});
    return runs;
}

template <MmuFormat F>
void rebind_gigabyte(benchmark::State &state)
{
    const bool fresh = state.range(0) != 0;
    const auto vram = runs_at(u64{1} << 30), system = runs_at(u64{64} << 30);
    const VirtualRange range =
        VirtualRange::from_size(VirtualAddress{u64{1} << 32}, u64{1} << 30).value();
    for (auto _ : state) {
        state.PauseTiming();
        EightSpaces<F> rig;
        rig.create();
        MappingBacking backing(Aperture::video, vram);
        BindOperation map;
        map.kind = BindOperation::Kind::map;
        map.range = range;
        map.target = {&backing, 0};
        if (!fresh)
            for (auto &one : rig.spaces)
                if (!rig.run(one->space, map)) state.SkipWithError("map");
        (void)backing.relocate(Aperture::system_coherent, system);
        BindOperation rebind;
        rebind.kind = BindOperation::Kind::rebind;
        rebind.range = range;
        state.ResumeTiming();
        for (auto &one : rig.spaces)
            if (!rig.run(one->space, fresh ? map : rebind)) state.SkipWithError("job");
        state.PauseTiming();
        rig.destroy();
        state.ResumeTiming();
    }
}

BENCHMARK(small_binds_direct<MmuV2>)->Unit(benchmark::kMillisecond)->UseManualTime()->Iterations(2);
BENCHMARK(small_binds_jobs<MmuV2>)
    ->Arg(1)
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime()
    ->Iterations(9);
BENCHMARK(small_binds_direct<MmuV3>)->Unit(benchmark::kMillisecond)->UseManualTime()->Iterations(2);
BENCHMARK(small_binds_jobs<MmuV3>)
    ->Arg(1)
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime()
    ->Iterations(9);
// Arg 0: a failed prepare; arg 1: a prepare and a cancel.
BENCHMARK(failed_prepare<MmuV2>)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(failed_prepare<MmuV3>)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
// Arg 0: rebind after the move; arg 1: the same maps done fresh in eight new spaces.
BENCHMARK(rebind_gigabyte<MmuV2>)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->Iterations(20);
BENCHMARK(rebind_gigabyte<MmuV3>)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->Iterations(20);

}  // namespace

BENCHMARK_MAIN();
