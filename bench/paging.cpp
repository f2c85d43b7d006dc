// Page-table walks: translate random addresses in 1 GiB mapped with 4 KiB pages (262144 PTEs
// in 512 small tables) or with 2 MiB pages, tables in host memory, both formats. The tables
// are built directly with the format encoders (the page table's map path is not here yet).
#include <benchmark/benchmark.h>

#include <vector>

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

}  // namespace

BENCHMARK_MAIN();
