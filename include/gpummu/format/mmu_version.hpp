// gpummu/format/mmu_version.hpp: which chip uses which format, and the run-time to
// compile-time bridge.
//
// What it does
//   - `Architecture` and `architecture_records`: per GPU architecture (as BOOT_42 names it)
//     the MMU version and the page sizes that architecture maps. The formats describe what
//     the entry layout can express; this table says what the chip allows (512 MiB PTEs at
//     PD1 only from Ampere on, 256 GiB PTEs at PD2 only on Blackwell).
//   - `with_format(version, visitor)`: calls `visitor(MmuV2{})` or `visitor(MmuV3{})`, so a
//     version chosen at run time selects code that is fully compile-time below.
//
// What it does not do
//   - Registers, windows and BOOT decoding belong to hw/chip.hpp. Generic code never tests
//     an Architecture value; it asks the record.
//
//     Architecture     BOOT_42 code  MMU  page sizes
//     Turing           0x16          v2   4K 64K 2M
//     Ampere           0x17          v2   4K 64K 2M 512M
//     Ada              0x19          v2   4K 64K 2M 512M
//     Hopper           0x18          v3   4K 64K 2M 512M
//     Blackwell GB10x  0x1A          v3   4K 64K 2M 512M 256G
//     Blackwell GB20x  0x1B          v3   4K 64K 2M 512M 256G
#pragma once

#include <array>
#include <type_traits>

#include "gpummu/format/format_concepts.hpp"
#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"

namespace gpummu {

enum class Architecture : u8 { turing, ampere, ada, hopper, blackwell_gb10x, blackwell_gb20x };

struct ArchitectureRecord {
    Architecture architecture;
    const char *name;
    u8 boot42_code;  // NV_PMC_BOOT_42 ARCHITECTURE field
    MmuVersion mmu_version;
    PageSizeSet page_sizes;
};

namespace detail {
inline constexpr PageSizeSet base_page_sizes{PageSize::size_4k(), PageSize::size_64k(),
                                             PageSize::size_2m()};
}  // namespace detail

inline constexpr std::array<ArchitectureRecord, 6> architecture_records{{
    {Architecture::turing, "Turing", 0x16, MmuVersion::v2, detail::base_page_sizes},
    {Architecture::ampere, "Ampere", 0x17, MmuVersion::v2,
     detail::base_page_sizes.with(PageSize::size_512m())},
    {Architecture::ada, "Ada", 0x19, MmuVersion::v2,
     detail::base_page_sizes.with(PageSize::size_512m())},
    {Architecture::hopper, "Hopper", 0x18, MmuVersion::v3,
     detail::base_page_sizes.with(PageSize::size_512m())},
    {Architecture::blackwell_gb10x, "Blackwell GB10x", 0x1A, MmuVersion::v3,
     detail::base_page_sizes.with(PageSize::size_512m()).with(PageSize::size_256g())},
    {Architecture::blackwell_gb20x, "Blackwell GB20x", 0x1B, MmuVersion::v3,
     detail::base_page_sizes.with(PageSize::size_512m()).with(PageSize::size_256g())},
}};

[[nodiscard]] constexpr const ArchitectureRecord &
architecture_record(Architecture architecture) noexcept
{
    for (const ArchitectureRecord &record : architecture_records)
        if (record.architecture == architecture) return record;
    GPUMMU_ASSERT(false);
    return architecture_records[0];
}

[[nodiscard]] constexpr Result<Architecture> architecture_from_boot42_code(u64 code) noexcept
{
    for (const ArchitectureRecord &record : architecture_records)
        if (record.boot42_code == code) return record.architecture;
    return failure(Error::unknown_chip);
}

[[nodiscard]] constexpr Result<MmuVersion> mmu_version_from_number(u64 number) noexcept
{
    if (number == 2) return MmuVersion::v2;
    if (number == 3) return MmuVersion::v3;
    return failure(Error::invalid_argument);
}

// The page sizes the format itself can express (union of its levels and the big table).
template <MmuFormat F>
[[nodiscard]] constexpr PageSizeSet format_page_sizes() noexcept
{
    PageSizeSet sizes = F::big_page_table.pte_sizes;
    for (const LevelDescriptor &level : F::levels)
        for (unsigned shift = 0; shift < 64; ++shift)
            if ((level.pte_sizes.bits() >> shift) & 1u)
                sizes = sizes.with(PageSize::from_shift(shift).value());
    return sizes;
}

template <class Visitor>
constexpr decltype(auto) with_format(MmuVersion version, Visitor &&visitor)
{
    static_assert(std::is_same_v<decltype(visitor(MmuV2{})), decltype(visitor(MmuV3{}))>,
                  "with_format: the visitor must return the same type for every format");
    if (version == MmuVersion::v2) return visitor(MmuV2{});
    return visitor(MmuV3{});
}

static_assert(MmuFormat<MmuV2> && MmuFormat<MmuV3>);
// Every architecture's page sizes are a subset of what its format can express.
static_assert([] {
    for (const ArchitectureRecord &record : architecture_records) {
        PageSizeSet format_sizes = record.mmu_version == MmuVersion::v2
                                       ? format_page_sizes<MmuV2>()
                                       : format_page_sizes<MmuV3>();
        if ((record.page_sizes.bits() & ~format_sizes.bits()) != 0) return false;
    }
    return true;
}());
static_assert(
    !architecture_record(Architecture::turing).page_sizes.contains(PageSize::size_512m()));
static_assert(architecture_record(Architecture::ada).page_sizes.contains(PageSize::size_512m()));
static_assert(
    !architecture_record(Architecture::hopper).page_sizes.contains(PageSize::size_256g()));
static_assert(architecture_from_boot42_code(0x18).value() == Architecture::hopper);

}  // namespace gpummu
