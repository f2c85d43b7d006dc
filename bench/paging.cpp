// Page tables in host memory, both formats.
//   - translate: random addresses in 1 GiB mapped with 4 KiB pages (262144 PTEs in 512 small
//     tables) or with 2 MiB pages; these tables are built directly with the format encoders,
//     so the walk is measured alone.
//   - map / unmap / protect / rebind: PageTable mapping 1 GiB with 4 KiB pages (262144 PTEs,
//     2 MiB of PTE bytes), 64 KiB pages and automatic sizes (2 MiB pages), table pages from a
//     buddy allocator; protect and rebind are maps with replace over the mapped gigabyte
//     (read-only in place, or other memory). Each reports `x_same_words`: its time over a
//     plain loop storing the words it changed (mean call over the loop's best round),
//     `x_same_words_median` (median call over the loop's median round) and `x_memset`: over
//     a memset of the same PTE bytes, all measured in the same process (the goal:
//     x_same_words <= 2).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "gpummu/alloc/buddy.hpp"
#include "gpummu/memory/table_pages.hpp"
#include "gpummu/paging/page_table.hpp"

#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/paging/walker.hpp"
#include "support/random.hpp"

using namespace gpummu;

namespace {

constexpr u64 MiB = 1024 * 1024, GiB = 1024 * MiB;
constexpr u64 mapped_base = 0x40'0000'0000;  // VA of the mapped gigabyte
constexpr u64 physical_base = 0x1'0000'0000;

template <class F>
struct MappedGigabyte {
    std::vector<u64> image = std::vector<u64>(8 * MiB / 8, 0);
    HostMemory memory{image};
    u64 next = 0x1000;
    TablePointer root{Aperture::video, PhysicalAddress{0}};

    VramAddress new_page()
    {
        VramAddress page{next};
        next += 4096;
        return page;
    }
    void put(VramAddress address, u64 word)
    {
        (void)memory.write(address, std::span<const u64>(&word, 1));
    }
    u64 get(VramAddress address)
    {
        std::array<u64, 1> word{};
        (void)memory.read(address, word);
        return word[0];
    }
    VramAddress pd0_table(VirtualAddress va)
    {
        VramAddress table{0};
        for (std::size_t d = 0; d + 2 < F::levels.size(); ++d) {
            VramAddress entry = table + F::levels[d].index_of(va) * 8u;
            auto pde = F::Pde::from_raw(get(entry));
            if (pde.state() == PdeState::valid) {
                table = VramAddress{pde.pointer().address.value()};
                continue;
            }
            VramAddress child = new_page();
            put(entry, F::Pde::point_to({Aperture::video, physical(child)}).value().raw());
            table = child;
        }
        return table;
    }

    explicit MappedGigabyte(PageSize page)
    {
        const std::size_t pd0 = F::levels.size() - 2;
        for (u64 offset = 0; offset < GiB; offset += 2 * MiB) {
            VirtualAddress va{mapped_base + offset};
            VramAddress entry = pd0_table(va) + F::levels[pd0].index_of(va) * 16u;
            if (page == PageSize::size_2m()) {
                auto dual = F::DualPde::from_pte(
                    F::Pte::map({.address = PhysicalAddress{physical_base + offset}}).value());
                put(entry, dual.low());
                put(entry + 8, dual.high());
                continue;
            }
            VramAddress small = new_page();
            auto dual = F::DualPde::point_to({}, {Aperture::video, physical(small)}).value();
            put(entry, dual.low());
            put(entry + 8, dual.high());
            std::vector<u64> ptes(512);
            for (u64 i = 0; i < 512; ++i)
                ptes[i] =
                    F::Pte::map({.address = PhysicalAddress{physical_base + offset + i * 4096}})
                        .value()
                        .raw();
            (void)memory.write(small, ptes);
        }
    }
};

template <class F>
void translate_random(benchmark::State &state, PageSize page)
{
    MappedGigabyte<F> tables(page);
    testing::Random random(9);
    std::vector<VirtualAddress> addresses(1 << 16);
    for (VirtualAddress &va : addresses)
        va = VirtualAddress{mapped_base + (random.below(GiB) & ~u64{7})};
    std::size_t i = 0;
    u64 wrong = 0;
    for (auto _ : state) {
        VirtualAddress va = addresses[i++ & (addresses.size() - 1)];
        auto translation = translate<F>(tables.memory, tables.root, va);
        if (!translation ||
            translation->address.value() != physical_base + (va.value() - mapped_base))
            ++wrong;
        benchmark::DoNotOptimize(translation);
    }
    state.counters["wrong"] = static_cast<double>(wrong);  // must stay 0
    state.SetItemsProcessed(state.iterations());
}

void translate_4k_v2(benchmark::State &state)
{
    translate_random<MmuV2>(state, PageSize::size_4k());
}
void translate_4k_v3(benchmark::State &state)
{
    translate_random<MmuV3>(state, PageSize::size_4k());
}
void translate_2m_v2(benchmark::State &state)
{
    translate_random<MmuV2>(state, PageSize::size_2m());
}
void translate_2m_v3(benchmark::State &state)
{
    translate_random<MmuV3>(state, PageSize::size_2m());
}
BENCHMARK(translate_4k_v2);
BENCHMARK(translate_4k_v3);
BENCHMARK(translate_2m_v2);
BENCHMARK(translate_2m_v3);

// ---- map / unmap through PageTable ----------------------------------------------------

using Clock = std::chrono::steady_clock;

// Seconds for one memset of `bytes`, best of many (the denominator of every x_memset).
double memset_seconds(std::size_t bytes)
{
    static std::vector<u64> buffer;
    buffer.assign(bytes / 8, 1);
    double best = 1e9;
    for (int round = 0; round < 200; ++round) {
        auto start = Clock::now();
        std::memset(buffer.data(), round & 0xFF, bytes);
        benchmark::ClobberMemory();
        best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
    }
    benchmark::DoNotOptimize(buffer.data());
    return best;
}

struct NoInvalidator {
    Result<void> invalidate(const TlbInvalidation &) { return success(); }
};

template <class F>
struct PagingRig {
    using Pages = BuddyTablePages<HostMemory>;
    using Table = PageTable<F, HostMemory, Pages>;
    static constexpr u64 vram = 16 * MiB;
    std::vector<u64> image = std::vector<u64>(vram / 8, 0);
    HostMemory memory{image};
    std::vector<u64> metadata;
    std::unique_ptr<BuddyAllocator> buddy;
    std::vector<BigTableSlot> slots = std::vector<BigTableSlot>(128);
    std::unique_ptr<Pages> pages;
    std::vector<PageTableNode> nodes = std::vector<PageTableNode>(2048);
    std::vector<PageTableChildren> children = std::vector<PageTableChildren>(16);
    std::unique_ptr<Table> table;
    NoInvalidator invalidator;
    u64 va = mapped_base;

    PagingRig()
    {
        const VramRange all = VramRange::from_size(VramAddress{0}, vram).value();
        metadata.resize(BuddyAllocator::metadata_words({&all, 1}, 4096).value());
        buddy = std::make_unique<BuddyAllocator>(
            BuddyAllocator::create({&all, 1}, metadata, 4096).value());
        pages = std::make_unique<Pages>(*buddy, memory, slots);
        // Emptied tables are kept for the next map (a driver's setting for map/unmap churn;
        // without it each 2 MiB-page map of 1 GiB also splits and merges five buddy pages).
        pages->set_spare_limit(16);
        PageTableConfig config{{PageSize::size_4k(), PageSize::size_64k(), PageSize::size_2m(),
                                PageSize::size_512m()}};
        table = std::make_unique<Table>(
            Table::create(memory, *pages, {nodes, children}, config).value());
    }
    bool map(PageSizeSet sizes,
             PageAttributes attributes = {.address = PhysicalAddress{physical_base}},
             bool replace = false)
    {
        auto batch = table->map(VirtualRange::from_size(VirtualAddress{va}, GiB).value(),
                                attributes, {.page_sizes = sizes, .replace = replace});
        return batch && table->flush(*batch, invalidator).has_value();
    }
    bool unmap()
    {
        auto batch = table->unmap(VirtualRange::from_size(VirtualAddress{va}, GiB).value());
        return batch && table->flush(*batch, invalidator).has_value();
    }
};

// The words a change stores, as (word index, final value): every word of the image that
// differs between `before` and `after`.
std::vector<std::pair<std::size_t, u64>> changed_words(const std::vector<u64> &before,
                                                       const std::vector<u64> &after)
{
    std::vector<std::pair<std::size_t, u64>> out;
    for (std::size_t i = 0; i < after.size(); ++i)
        if (before[i] != after[i]) out.emplace_back(i, after[i]);
    return out;
}

double median_of(std::vector<double> samples)
{
    std::sort(samples.begin(), samples.end());
    return samples.empty() ? 0 : samples[samples.size() / 2];
}

// Seconds for a plain loop that stores `words` at their indices into an image of `size`
// words, 200 rounds: the limit of any code that must leave the same words there. `best` is
// the fastest round (x_same_words divides by it), `median` the middle one.
struct SameWords {
    double best = 1e9;
    double median = 0;
};
SameWords same_words_seconds(const std::vector<std::pair<std::size_t, u64>> &words,
                             std::size_t size)
{
    std::vector<u64> image(size, 0);
    std::vector<double> rounds;
    rounds.reserve(200);
    for (int round = 0; round < 200; ++round) {
        auto start = Clock::now();
        for (const auto &[index, word] : words) image[index] = word + static_cast<u64>(round & 1);
        benchmark::ClobberMemory();
        rounds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
    benchmark::DoNotOptimize(image.data());
    return {*std::min_element(rounds.begin(), rounds.end()), median_of(rounds)};
}

// What a timed step does to the mapped gigabyte.
enum class Step {
    map,      // map 1 GiB (the unmap runs untimed)
    unmap,    // unmap it (the map runs untimed)
    protect,  // make every page read-only in place: a map with replace, same addresses
    rebind,   // move every page to other physical memory: a map with replace, new addresses
};
// The attributes a protect or rebind leaves.
PageAttributes attributes_after(Step step)
{
    if (step == Step::protect)
        return {.address = PhysicalAddress{physical_base}, .read_only = true};
    if (step == Step::rebind) return {.address = PhysicalAddress{physical_base + 4 * GiB}};
    return {.address = PhysicalAddress{physical_base}};
}

// Times one step over 1 GiB; what sets it up runs untimed. Besides x_memset (a memset of
// the PTE bytes) it reports x_same_words: the time over a plain loop storing exactly the
// words the step changed (PTEs, PDEs, table pointers) at their addresses.
template <class F>
void map_gigabyte(benchmark::State &state, PageSizeSet sizes, PageSize expected, Step step,
                  u64 va = mapped_base)
{
    PagingRig<F> rig;
    rig.va = va;
    u64 failures = 0;
    const bool replaces = step == Step::protect || step == Step::rebind;
    // One untimed cycle to learn which words the step changes.
    const std::vector<u64> empty = rig.image;
    if (!rig.map(sizes)) ++failures;
    const std::vector<u64> mapped = rig.image;
    if (replaces && !rig.map(sizes, attributes_after(step), true)) ++failures;
    const std::vector<u64> replaced = rig.image;
    if (!rig.unmap()) ++failures;
    const auto words = step == Step::map     ? changed_words(empty, mapped)
                       : step == Step::unmap ? changed_words(mapped, rig.image)
                                             : changed_words(mapped, replaced);
    const SameWords limit = same_words_seconds(words, rig.image.size());
    double timed = 0;
    std::vector<double> calls;  // every timed call, for the median (no growth while timing)
    calls.reserve(static_cast<std::size_t>(state.max_iterations));
    for (auto _ : state) {
        if (step != Step::map && !rig.map(sizes)) ++failures;
        auto start = Clock::now();
        bool ok = step == Step::map     ? rig.map(sizes)
                  : step == Step::unmap ? rig.unmap()
                                        : rig.map(sizes, attributes_after(step), true);
        double seconds = std::chrono::duration<double>(Clock::now() - start).count();
        state.SetIterationTime(seconds);
        timed += seconds;
        calls.push_back(seconds);
        if (!ok) ++failures;
        if (step != Step::unmap) {
            // The probe checks the page size and what the step left.
            const u64 offset = GiB / 3 / expected.bytes() * expected.bytes();
            auto probe = rig.table->translate(VirtualAddress{va + offset});
            const PageAttributes after = attributes_after(step);
            if (!probe || probe->page_size != expected ||
                probe->address != after.address + offset ||
                probe->attributes.read_only != after.read_only)
                ++failures;
            if (!rig.unmap()) ++failures;
        }
    }
    const u64 ptes = GiB / expected.bytes();
    state.counters["failures"] = static_cast<double>(failures);  // must stay 0
    state.counters["x_memset"] =
        timed / static_cast<double>(state.iterations()) / memset_seconds(ptes * 8);
    state.counters["x_same_words"] = timed / static_cast<double>(state.iterations()) / limit.best;
    // The same comparison like for like, median call against median round: the mean of
    // short calls carries the host's interruptions that the best round leaves out.
    state.counters["x_same_words_median"] = median_of(calls) / limit.median;
    state.counters["ns_per_pte"] =
        timed / static_cast<double>(state.iterations()) / static_cast<double>(ptes) * 1e9;
}

// One benchmark per step and page size: 4 KiB, 64 KiB, and automatic sizes (512 MiB pages
// are allowed but the VA is only 2 MiB-aligned: 2 MiB pages everywhere).
#define GPUMMU_GIGABYTE_STEP(name, step)                                                           \
    template <class F>                                                                             \
    void name##_1g_4k(benchmark::State &state)                                                     \
    {                                                                                              \
        map_gigabyte<F>(state, {PageSize::size_4k()}, PageSize::size_4k(), step);                  \
    }                                                                                              \
    template <class F>                                                                             \
    void name##_1g_64k(benchmark::State &state)                                                    \
    {                                                                                              \
        map_gigabyte<F>(state, {PageSize::size_64k()}, PageSize::size_64k(), step);                \
    }                                                                                              \
    template <class F>                                                                             \
    void name##_1g_auto(benchmark::State &state)                                                   \
    {                                                                                              \
        map_gigabyte<F>(state, {}, PageSize::size_2m(), step, mapped_base + 2 * MiB);              \
    }
GPUMMU_GIGABYTE_STEP(map, Step::map)
GPUMMU_GIGABYTE_STEP(unmap, Step::unmap)
GPUMMU_GIGABYTE_STEP(protect, Step::protect)
GPUMMU_GIGABYTE_STEP(rebind, Step::rebind)

// PageTable::translate: directories followed in the shadow, one PTE read.
template <class F>
void table_translate(benchmark::State &state, PageSizeSet sizes)
{
    PagingRig<F> rig;
    if (!rig.map(sizes)) state.SkipWithError("map failed");
    testing::Random random(9);
    std::vector<VirtualAddress> addresses(1 << 16);
    for (VirtualAddress &va : addresses)
        va = VirtualAddress{mapped_base + (random.below(GiB) & ~u64{7})};
    std::size_t i = 0;
    u64 wrong = 0;
    for (auto _ : state) {
        VirtualAddress va = addresses[i++ & (addresses.size() - 1)];
        auto translation = rig.table->translate(va);
        if (!translation ||
            translation->address.value() != physical_base + (va.value() - mapped_base))
            ++wrong;
        benchmark::DoNotOptimize(translation);
    }
    state.counters["wrong"] = static_cast<double>(wrong);  // must stay 0
}
template <class F>
void page_table_translate_4k(benchmark::State &state)
{
    table_translate<F>(state, {PageSize::size_4k()});
}
template <class F>
void page_table_translate_2m(benchmark::State &state)
{
    table_translate<F>(state, {PageSize::size_2m()});
}
BENCHMARK_TEMPLATE(page_table_translate_4k, MmuV2);
BENCHMARK_TEMPLATE(page_table_translate_4k, MmuV3);
BENCHMARK_TEMPLATE(page_table_translate_2m, MmuV2);
BENCHMARK_TEMPLATE(page_table_translate_2m, MmuV3);

BENCHMARK_TEMPLATE(map_1g_4k, MmuV2)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(map_1g_4k, MmuV3)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(map_1g_64k, MmuV2)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(map_1g_64k, MmuV3)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(map_1g_auto, MmuV2)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(map_1g_auto, MmuV3)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(unmap_1g_4k, MmuV2)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(unmap_1g_4k, MmuV3)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(unmap_1g_64k, MmuV2)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(unmap_1g_64k, MmuV3)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(unmap_1g_auto, MmuV2)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(unmap_1g_auto, MmuV3)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(protect_1g_4k, MmuV2)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(protect_1g_4k, MmuV3)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(protect_1g_64k, MmuV2)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(protect_1g_64k, MmuV3)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(protect_1g_auto, MmuV2)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(protect_1g_auto, MmuV3)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(rebind_1g_4k, MmuV2)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(rebind_1g_4k, MmuV3)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(rebind_1g_64k, MmuV2)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(rebind_1g_64k, MmuV3)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(rebind_1g_auto, MmuV2)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(rebind_1g_auto, MmuV3)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
