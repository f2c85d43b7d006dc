// Architecture records and the run-time -> compile-time format bridge.
#include <doctest/doctest.h>

#include "gpummu/format/mmu_version.hpp"

using namespace gpummu;

TEST_CASE("BOOT_42 architecture codes map to records")
{
    CHECK(architecture_from_boot42_code(0x16).value() == Architecture::turing);
    CHECK(architecture_from_boot42_code(0x17).value() == Architecture::ampere);
    CHECK(architecture_from_boot42_code(0x19).value() == Architecture::ada);
    CHECK(architecture_from_boot42_code(0x1A).value() == Architecture::blackwell_gb10x);
    CHECK(architecture_from_boot42_code(0x1B).value() == Architecture::blackwell_gb20x);
    CHECK(architecture_from_boot42_code(0x14).error() == Error::unknown_chip);  // Volta
    CHECK(architecture_from_boot42_code(0).error() == Error::unknown_chip);
}

TEST_CASE("each architecture's MMU version and page sizes")
{
    for (const ArchitectureRecord &record : architecture_records) {
        CAPTURE(record.name);
        bool v3 = record.boot42_code == 0x18 || record.boot42_code >= 0x1A;
        CHECK(record.mmu_version == (v3 ? MmuVersion::v3 : MmuVersion::v2));
        CHECK(record.page_sizes.contains(PageSize::size_4k()));
        CHECK(record.page_sizes.contains(PageSize::size_64k()));
        CHECK(record.page_sizes.contains(PageSize::size_2m()));
        CHECK(record.page_sizes.contains(PageSize::size_512m()) ==
              (record.architecture != Architecture::turing));
        bool blackwell = record.architecture == Architecture::blackwell_gb10x ||
                         record.architecture == Architecture::blackwell_gb20x;
        CHECK(record.page_sizes.contains(PageSize::size_256g()) == blackwell);
    }
}

TEST_CASE("with_format selects the compile-time format from a run-time version")
{
    auto va_bits = [](MmuVersion version) {
        return with_format(version, [](auto format) { return decltype(format)::va_bits; });
    };
    CHECK(va_bits(MmuVersion::v2) == 49);
    CHECK(va_bits(MmuVersion::v3) == 57);
    auto sparse = [](MmuVersion version) {
        return with_format(version,
                           [](auto format) { return decltype(format)::Pte::sparse().raw(); });
    };
    CHECK(sparse(MmuVersion::v2) == 0x8);
    CHECK(sparse(MmuVersion::v3) == 0x8);
    CHECK(mmu_version_from_number(3).value() == MmuVersion::v3);
    CHECK(mmu_version_from_number(1).error() == Error::invalid_argument);
}

TEST_CASE("format page sizes: v2 without 256 GiB, v3 with it")
{
    CHECK(format_page_sizes<MmuV2>().count() == 4);
    CHECK_FALSE(format_page_sizes<MmuV2>().contains(PageSize::size_256g()));
    CHECK(format_page_sizes<MmuV3>().count() == 5);
}

TEST_CASE("level arithmetic: index extraction per level")
{
    VirtualAddress va{(u64{3} << 47) | (u64{5} << 38) | (u64{7} << 29) | (u64{9} << 21) |
                      (u64{11} << 12) | 0x123};
    CHECK(MmuV2::levels[0].index_of(va) == 3);
    CHECK(MmuV2::levels[1].index_of(va) == 5);
    CHECK(MmuV2::levels[2].index_of(va) == 7);
    CHECK(MmuV2::levels[3].index_of(va) == 9);
    CHECK(MmuV2::levels[4].index_of(va) == 11);
    CHECK(MmuV2::big_page_table.index_of(va) == (11 >> 4));
    VirtualAddress high{u64{1} << 56};
    CHECK(MmuV3::levels[0].index_of(high) == 1);
    CHECK(MmuV3::levels[1].index_of(high) == 0);
}
