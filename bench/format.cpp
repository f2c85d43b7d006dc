// Encode and decode throughput of the entry codecs, with a memset of the same PTE bytes as
// the in-run baseline (quote ratios, not absolute times). Every case handles one 4 KiB
// page table's worth of entries (512 PTEs) per iteration.
#include <benchmark/benchmark.h>

#include <array>
#include <cstring>

#include "gpummu/format/describe.hpp"

using namespace gpummu;

namespace {

constexpr std::int64_t entries_per_table = 512;

void count(benchmark::State &state, std::int64_t items, std::int64_t bytes = 0)
{
    state.SetItemsProcessed(state.iterations() * items);
    if (bytes != 0) state.SetBytesProcessed(state.iterations() * bytes);
}

void memset_table(benchmark::State &state)
{
    std::array<u64, static_cast<std::size_t>(entries_per_table)> table{};
    u64 value = 0;
    for (auto _ : state) {
        std::memset(table.data(), static_cast<int>(value++ & 0xFF), sizeof(table));
        benchmark::DoNotOptimize(table.data());
        benchmark::ClobberMemory();
    }
    count(state, entries_per_table, static_cast<std::int64_t>(sizeof(table)));
}
BENCHMARK(memset_table);

// Encodes a contiguous run of 4 KiB pages, as a page table fills one table.
template <class Format>
void encode_pte(benchmark::State &state)
{
    std::array<u64, static_cast<std::size_t>(entries_per_table)> table{};
    u64 base = 0x100000;
    for (auto _ : state) {
        PageAttributes attributes{.address = PhysicalAddress{base}, .kind = 6};
        for (std::size_t i = 0; i < table.size(); ++i) {
            auto pte = Format::Pte::map(attributes);
            table[i] = pte ? pte->raw() : 0;
            attributes.address = attributes.address + 0x1000;
        }
        base = (base + 0x200000) & 0xF'FFFF'F000;
        benchmark::DoNotOptimize(table.data());
        benchmark::ClobberMemory();
    }
    count(state, entries_per_table, static_cast<std::int64_t>(sizeof(table)));
}
BENCHMARK_TEMPLATE(encode_pte, MmuV2);
BENCHMARK_TEMPLATE(encode_pte, MmuV3);

// Decodes a table of mapped PTEs back into attributes (what translate does per level).
template <class Format>
void decode_pte(benchmark::State &state)
{
    std::array<u64, static_cast<std::size_t>(entries_per_table)> table{};
    for (std::size_t i = 0; i < table.size(); ++i)
        table[i] =
            Format::Pte::map({.address = PhysicalAddress{0x100000 + i * 0x1000}, .kind = 6})->raw();
    for (auto _ : state) {
        u64 checksum = 0;
        for (u64 raw : table) {
            auto pte = Format::Pte::from_raw(raw);
            PageAttributes attributes = pte.attributes();
            checksum +=
                attributes.address.value() + static_cast<u64>(pte.state()) + attributes.kind;
        }
        benchmark::DoNotOptimize(checksum);
    }
    count(state, entries_per_table);
}
BENCHMARK_TEMPLATE(decode_pte, MmuV2);
BENCHMARK_TEMPLATE(decode_pte, MmuV3);

// The dual PDE, both halves pointing at tables.
template <class Format>
void encode_dual_pde(benchmark::State &state)
{
    std::array<u64, 2 * 256> table{};
    for (auto _ : state) {
        for (std::size_t i = 0; i < 256; ++i) {
            auto dual = Format::DualPde::point_to(
                {Aperture::video, PhysicalAddress{0x10000 + i * 0x100}},
                {Aperture::video, PhysicalAddress{0x200000 + i * 0x1000}});
            table[2 * i] = dual ? dual->low() : 0;
            table[2 * i + 1] = dual ? dual->high() : 0;
        }
        benchmark::DoNotOptimize(table.data());
        benchmark::ClobberMemory();
    }
    count(state, 256);
}
BENCHMARK_TEMPLATE(encode_dual_pde, MmuV2);
BENCHMARK_TEMPLATE(encode_dual_pde, MmuV3);

// What gpummu-decode --json does per word, without the process around it.
void describe_json(benchmark::State &state)
{
    u64 word = 0x0600000000000101;
    for (auto _ : state) {
        TextBuffer<1024> out;
        render_json(describe(MmuVersion::v2, EntryKind::pte, word), out);
        benchmark::DoNotOptimize(out.view().data());
        word += 0x100;
    }
    count(state, 1);
}
BENCHMARK(describe_json);

}  // namespace

BENCHMARK_MAIN();
