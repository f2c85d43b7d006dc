// Scale curves: how the cost of one operation grows with the size of what it works on.
//   - buddy_scale/GiB: a buddy over 16 .. 256 GiB of 4 KiB chunks, filled to about half
//     with random 4 KiB .. 2 MiB blocks, then steady churn (free a random block, allocate a
//     random size). Reported: ns per operation, metadata bytes.
//   - mappings_scale/N: one address space (MMU v3) holding N = 10^3 .. 10^6 live 64 KiB
//     mappings at VAs it picks, then steady map + release of one mapping. Reported: ns per
//     map + release, bookkeeping bytes per live mapping (its mapping record, two
//     range-allocator nodes, its share of page-table nodes and children blocks: host memory)
//     and page-table bytes per live mapping (VRAM).
//   - spaces_scale/N: N = 100 .. 4096 address spaces sharing one buddy, each holding a few
//     mappings, then steady map + release in a random space. Reported: ns per map + release.
// A curve that grows no faster than log n shows as a per-operation time that rises by a
// bounded step per doubling (or not at all); compare the rows of one run.
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "gpummu/alloc/buddy.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/format/mmu_version.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/vmm/address_space.hpp"
#include "support/random.hpp"
#include "support/space_storage.hpp"
#include "support/vram_image.hpp"

using namespace gpummu;

namespace {

constexpr u64 KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;

using NoInvalidator = testing::NoTlb;

// The counter of a time per operation (a rate inverted).
benchmark::Counter per_operation(u64 operations, benchmark::State &state)
{
    return benchmark::Counter(static_cast<double>(operations) *
                                  static_cast<double>(state.iterations()),
                              benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void buddy_scale(benchmark::State &state)
{
    const u64 bytes = static_cast<u64>(state.range(0)) * GiB;
    const std::array<VramRange, 1> regions{VramRange::from_size(VramAddress{0}, bytes).value()};
    std::vector<u64> metadata(BuddyAllocator::metadata_words(regions).value());
    BuddyAllocator buddy = BuddyAllocator::create(regions, metadata).value();
    testing::Random random(static_cast<u64>(state.range(0)));
    std::vector<BuddyBlock> live;
    live.reserve(1 << 20);
    auto random_size = [&] { return u64{4096} << random.below(10); };  // 4 KiB .. 2 MiB
    std::array<BuddyBlock, 1> out{};
    while (buddy.free_bytes() > bytes / 2) {
        if (!buddy.allocate(random_size(), {.contiguous = true}, out)) break;
        live.push_back(out[0]);
    }
    constexpr u64 operations = 200'000;
    u64 failures = 0;
    for (auto _ : state) {
        for (u64 i = 0; i < operations; ++i) {
            const std::size_t pick = random.below(live.size());
            if (!buddy.free(live[pick])) ++failures;
            if (buddy.allocate(random_size(), {.contiguous = true}, out))
                live[pick] = out[0];
            else
                live[pick] = live.back(), live.pop_back();
        }
    }
    state.counters["failures"] = static_cast<double>(failures);
    state.counters["ns_per_operation"] = per_operation(2 * operations, state);
    state.counters["metadata_bytes"] = static_cast<double>(buddy.metadata_bytes());
    state.counters["live_blocks"] = static_cast<double>(live.size());
}

// One address space's storage, sized for `mappings` live 64 KiB mappings: a node per
// big-page table (one per 2 MiB) and directory, a host page per 16 big tables.
testing::SpaceStorage storage_for(std::size_t mappings)
{
    return testing::SpaceStorage(mappings + 2, mappings / 16 + 64, mappings / 8192 + 16,
                                 mappings / 256 + 16);
}

using Space = AddressSpace<MmuV3, HostMemory, NoInvalidator>;

using Vram = testing::VramImage;

const AddressSpaceConfig scale_config{
    VirtualRange::from_size(VirtualAddress{GiB}, u64{1} << 46).value(),
    {architecture_record(Architecture::hopper).page_sizes}};

void mappings_scale(benchmark::State &state)
{
    const auto count = static_cast<std::size_t>(state.range(0));
    Vram vram(64 * MiB + count * 512);  // about 256 B of tables per 64 KiB mapping, and room
    testing::SpaceStorage storage = storage_for(count);
    NoInvalidator invalidator;
    Space space;
    if (!space.create(vram.memory, vram.buddy, invalidator, storage.get(), scale_config)) {
        state.SkipWithError("create failed");
        return;
    }
    const PhysicalSegment segment{PhysicalAddress{0}, 64 * KiB};
    std::vector<MappingHandle> live;
    live.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        auto mapping = space.map({&segment, 1}, PageAttributes{});
        if (!mapping) {
            state.SkipWithError(error_name(mapping.error()));
            return;
        }
        live.push_back(mapping->handle);
    }
    const PageTableStats tables = space.stats().tables;
    // Host memory a live mapping holds: its record, its share of the range allocator's tree
    // nodes (the segments of ranges and holes, up to 12 per node), and its share of the
    // page-table nodes (one per table) and children blocks (one per directory).
    u64 directories = 0;
    for (std::size_t depth = 0; depth + 1 < MmuV3::levels.size(); ++depth)
        directories += tables.tables_per_level[depth];
    const double bookkeeping = static_cast<double>(sizeof(MappingRecord)) +
                               static_cast<double>(space.stats().range_nodes * sizeof(RangeNode) +
                                                   tables.tables() * sizeof(PageTableNode) +
                                                   directories * sizeof(PageTableChildren)) /
                                   static_cast<double>(count);
    testing::Random random(count);
    constexpr u64 operations = 20'000;
    u64 failures = 0;
    for (auto _ : state) {
        for (u64 i = 0; i < operations; ++i) {
            const std::size_t pick = random.below(live.size());
            if (!space.release(live[pick])) ++failures;
            auto mapping = space.map({&segment, 1}, PageAttributes{});
            if (mapping)
                live[pick] = mapping->handle;
            else
                ++failures;
        }
    }
    state.counters["failures"] = static_cast<double>(failures);
    state.counters["ns_per_map_release"] = per_operation(operations, state);
    state.counters["bookkeeping_bytes_per_mapping"] = bookkeeping;
    state.counters["table_bytes_per_mapping"] =
        static_cast<double>(tables.table_bytes) / static_cast<double>(count);
    (void)space.destroy();
}

void spaces_scale(benchmark::State &state)
{
    const auto count = static_cast<std::size_t>(state.range(0));
    constexpr std::size_t per_space = 8;
    Vram vram(count * 64 * KiB + 64 * MiB);  // a space's root and tables: a few 4 KiB pages
    NoInvalidator invalidator;
    std::vector<std::unique_ptr<testing::SpaceStorage>> storage;
    std::vector<std::unique_ptr<Space>> spaces;
    std::vector<std::vector<MappingHandle>> live(count);
    const PhysicalSegment segment{PhysicalAddress{0}, 64 * KiB};
    for (std::size_t s = 0; s < count; ++s) {
        storage.push_back(std::make_unique<testing::SpaceStorage>(storage_for(per_space * 4)));
        spaces.push_back(std::make_unique<Space>());
        if (!spaces[s]->create(vram.memory, vram.buddy, invalidator, storage[s]->get(),
                               scale_config)) {
            state.SkipWithError("create failed");
            return;
        }
        for (std::size_t m = 0; m < per_space; ++m) {
            auto mapping = spaces[s]->map({&segment, 1}, PageAttributes{});
            if (!mapping) {
                state.SkipWithError(error_name(mapping.error()));
                return;
            }
            live[s].push_back(mapping->handle);
        }
    }
    testing::Random random(count);
    constexpr u64 operations = 20'000;
    u64 failures = 0;
    for (auto _ : state) {
        for (u64 i = 0; i < operations; ++i) {
            const std::size_t s = random.below(count);
            const std::size_t pick = random.below(per_space);
            if (!spaces[s]->release(live[s][pick])) ++failures;
            auto mapping = spaces[s]->map({&segment, 1}, PageAttributes{});
            if (mapping)
                live[s][pick] = mapping->handle;
            else
                ++failures;
        }
    }
    state.counters["failures"] = static_cast<double>(failures);
    state.counters["ns_per_map_release"] = per_operation(operations, state);
    for (auto &space : spaces) (void)space->destroy();
}

}  // namespace

BENCHMARK(buddy_scale)
    ->Arg(16)
    ->Arg(32)
    ->Arg(64)
    ->Arg(128)
    ->Arg(256)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(mappings_scale)
    ->Arg(1'000)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(spaces_scale)
    ->Arg(100)
    ->Arg(1000)
    ->Arg(4096)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
