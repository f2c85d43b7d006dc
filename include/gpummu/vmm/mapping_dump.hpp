// gpummu/vmm/mapping_dump.hpp: an address space's mappings and tables as text or JSON.
//
// What it does
//   Writes what a driver developer looks at first when a context misbehaves:
//   - the mapping records in VA order, text (one line each) or JSON:
//
//       0x0000000040000000 +0x80000 pa 0x2000000 vram rw kind 0 backing+0x0
//       {"mappings":[{"va":"0x40000000","size":524288,"pa":"0x2000000","read_only":false},...]}
//
//     `pa` is where the record's first byte is now (through its backing's current
//     layout); the text form also says the aperture, access, kind and backing offset.
//   - the page-table statistics (tables per level, big tables, bytes), text or JSON.
//   Output goes to a callable taking std::string_view, piece by piece: no iostream, no
//   heap; the tools pass one that writes to stdout, tests one that appends to a string.
//
// What it does not do
//   - It reads the records and the statistics only (no VRAM); gpummu-inspect walks tables
//     in a VRAM image.
#pragma once

#include <array>
#include <charconv>
#include <cstddef>
#include <string_view>

#include "gpummu/core/types.hpp"
#include "gpummu/paging/page_table.hpp"
#include "gpummu/vmm/mapping_records.hpp"

namespace gpummu {

namespace detail {
template <class Out>
void write_number(Out &out, u64 value, int base, bool prefix) noexcept
{
    std::array<char, 24> digits{};
    auto [end, error] = std::to_chars(digits.data(), digits.data() + digits.size(), value, base);
    (void)error;  // 24 characters hold any u64 in base 10 or 16
    if (prefix) out(std::string_view("0x"));
    out(std::string_view(digits.data(), static_cast<std::size_t>(end - digits.data())));
}
// Hex, zero-padded to `width` digits.
template <class Out>
void write_padded_hex(Out &out, u64 value, unsigned width) noexcept
{
    std::array<char, 16> digits{};
    for (unsigned i = 0; i < 16; ++i)
        digits[15 - i] = "0123456789abcdef"[(value >> (4 * i)) & 0xFu];
    out(std::string_view("0x"));
    out(std::string_view(digits.data() + (16 - width), width));
}
// Where a record's first byte is now.
[[nodiscard]] inline u64 first_physical_byte(const MappingView &view) noexcept
{
    if (view.backing == nullptr) return view.attributes.address.value();
    std::array<PhysicalSegment, 1> run{};
    auto count = view.backing->physical_runs(view.offset, 4096, run);
    return count ? run[0].address.value() : 0;
}
}  // namespace detail

// One line per record, in VA order.
template <class Out>
void dump_mappings_text(const MappingRecords &records, Out &&out) noexcept
{
    records.visit(VirtualAddress{0}, [&](const MappingView &view) {
        const Aperture aperture =
            view.backing != nullptr ? view.backing->aperture() : view.attributes.aperture;
        detail::write_padded_hex(out, view.range.begin().value(), 16);
        out(std::string_view(" +"));
        detail::write_number(out, view.range.size(), 16, true);
        out(std::string_view(" pa "));
        detail::write_number(out, detail::first_physical_byte(view), 16, true);
        out(std::string_view(" "));
        out(std::string_view(aperture_name(aperture)));
        out(std::string_view(view.attributes.read_only ? " ro" : " rw"));
        if (view.attributes.privileged) out(std::string_view(" priv"));
        if (view.attributes.atomics_disabled) out(std::string_view(" noatomic"));
        if (view.attributes.uncached) out(std::string_view(" uncached"));
        out(std::string_view(" kind "));
        detail::write_number(out, view.attributes.kind, 10, false);
        if (view.backing != nullptr) {
            out(std::string_view(" backing+"));
            detail::write_number(out, view.offset, 16, true);
        }
        out(std::string_view("\n"));
        return true;
    });
}

// {"mappings":[{"va":"0x...","size":N,"pa":"0x...","read_only":B},...]}, no newline.
template <class Out>
void dump_mappings_json(const MappingRecords &records, Out &&out) noexcept
{
    out(std::string_view("{\"mappings\":["));
    bool first = true;
    records.visit(VirtualAddress{0}, [&](const MappingView &view) {
        out(std::string_view(first ? "{\"va\":\"" : ",{\"va\":\""));
        first = false;
        detail::write_number(out, view.range.begin().value(), 16, true);
        out(std::string_view("\",\"size\":"));
        detail::write_number(out, view.range.size(), 10, false);
        out(std::string_view(",\"pa\":\""));
        detail::write_number(out, detail::first_physical_byte(view), 16, true);
        out(std::string_view(view.attributes.read_only ? "\",\"read_only\":true}"
                                                       : "\",\"read_only\":false}"));
        return true;
    });
    out(std::string_view("]}"));
}

// {"tables":N,"table_bytes":N,"per_level":[N,...],"big_tables":N}, no newline.
template <class Out>
void dump_table_stats_json(const PageTableStats &stats, unsigned levels, Out &&out) noexcept
{
    out(std::string_view("{\"tables\":"));
    detail::write_number(out, stats.tables(), 10, false);
    out(std::string_view(",\"table_bytes\":"));
    detail::write_number(out, stats.table_bytes, 10, false);
    out(std::string_view(",\"per_level\":["));
    for (unsigned depth = 0; depth < levels && depth < stats.tables_per_level.size(); ++depth) {
        if (depth != 0) out(std::string_view(","));
        detail::write_number(out, stats.tables_per_level[depth], 10, false);
    }
    out(std::string_view("],\"big_tables\":"));
    detail::write_number(out, stats.big_tables, 10, false);
    out(std::string_view("}"));
}

// "tables N (level 0: N, level 1: N, ...; big N), N bytes" and a newline.
template <class Out>
void dump_table_stats_text(const PageTableStats &stats, unsigned levels, Out &&out) noexcept
{
    out(std::string_view("tables "));
    detail::write_number(out, stats.tables(), 10, false);
    out(std::string_view(" ("));
    for (unsigned depth = 0; depth < levels && depth < stats.tables_per_level.size(); ++depth) {
        out(std::string_view(depth == 0 ? "level 0: " : ", level "));
        if (depth != 0) {
            detail::write_number(out, depth, 10, false);
            out(std::string_view(": "));
        }
        detail::write_number(out, stats.tables_per_level[depth], 10, false);
    }
    out(std::string_view("; big "));
    detail::write_number(out, stats.big_tables, 10, false);
    out(std::string_view("), "));
    detail::write_number(out, stats.table_bytes, 10, false);
    out(std::string_view(" bytes\n"));
}

}  // namespace gpummu
