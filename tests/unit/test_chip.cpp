// hw/chip.hpp: BOOT_0 / BOOT_42 decoding and the per-architecture records.
#include <doctest/doctest.h>

#include "gpummu/hw/chip.hpp"

using namespace gpummu;

TEST_CASE("BOOT_42 is preferred, BOOT_0 is the fallback")
{
    // GA102 rev A1: BOOT_42 ARCHITECTURE 0x17, IMPLEMENTATION 2, MAJOR 0xA, MINOR 1.
    const ChipId from42 = decode_boot(0x172000A1u, 0x172A1000u);
    CHECK(from42.from_boot42);
    CHECK(from42.architecture_code == 0x17);
    CHECK(from42.implementation == 2);
    CHECK(from42.major_revision == 0xA);
    CHECK(from42.minor_revision == 1);
    CHECK(from42.chip_id() == 0x172);
    const ChipId from0 = decode_boot(0x172000A1u, 0);
    CHECK_FALSE(from0.from_boot42);
    CHECK(from0.chip_id() == 0x172);
    CHECK(from0.major_revision == 0xA);
    // Bits outside the fields do not leak in.
    CHECK(decode_boot42(0xC0000000u | 0x180A1000u).architecture_code == 0x18);
    CHECK(decode_boot42(0x1B2A10FFu).minor_revision == 1);
}

TEST_CASE("each architecture's record")
{
    struct Case {
        u32 boot42;
        MmuVersion mmu;
        u32 window_offset;
        unsigned base_bits;
        bool target;
        u64 reach;
    };
    const Case cases[] = {
        {0x16200000u, MmuVersion::v2, 0x1700, 24, true, u64{1} << 40},     // TU102
        {0x17200000u, MmuVersion::v2, 0x1700, 24, true, u64{1} << 40},     // GA102
        {0x19200000u, MmuVersion::v2, 0x1700, 24, true, u64{1} << 40},     // AD102
        {0x18000000u, MmuVersion::v3, 0x10FD40, 22, false, u64{1} << 38},  // GH100
        {0x1A000000u, MmuVersion::v3, 0x10FD40, 23, false, u64{1} << 39},  // GB100
        {0x1AB00000u, MmuVersion::v3, 0x10FD40, 25, false, u64{1} << 41},  // GB10B (integrated)
        {0x1B200000u, MmuVersion::v3, 0x10FD40, 23, false, u64{1} << 39},  // GB202
        {0x1BC00000u, MmuVersion::v3, 0x10FD40, 25, false, u64{1} << 41},  // GB20C (integrated)
    };
    for (const Case &c : cases) {
        auto record = chip_record(decode_boot42(c.boot42));
        REQUIRE(record.has_value());
        CAPTURE(c.boot42);
        CHECK(record->mmu_version == c.mmu);
        CHECK(record->window.offset == c.window_offset);
        CHECK(record->window.base_bits == c.base_bits);
        CHECK(record->window.has_target == c.target);
        CHECK(record->window.reach() == c.reach);
        CHECK(record->invalidate.control == 0xB830B0);
        CHECK(record->page_sizes == architecture_record(record->architecture).page_sizes);
    }
}

TEST_CASE("all-ones and poison reads are a lost device, not a chip")
{
    for (u32 dead : {0xFFFF'FFFFu, 0xBADF'1100u, 0xBADF'5040u, 0xBAD0'AC01u}) {
        CAPTURE(dead);
        CHECK(is_dead_register_value(dead));
        CHECK(identify_chip(dead, 0x17200000u).error() == Error::device_lost);
        CHECK(identify_chip(0x172000A1u, dead).error() == Error::device_lost);
    }
    CHECK_FALSE(is_dead_register_value(0x172000A1u));
    CHECK(identify_chip(0x172000A1u, 0x17200000u)->chip_id() == 0x172);
    CHECK(identify_chip(0x172000A1u, 0)->from_boot42 == false);  // BOOT_42 of 0: use BOOT_0
}

TEST_CASE("unknown chips are an error")
{
    CHECK(chip_record(decode_boot42(0x15000000u)).error() == Error::unknown_chip);  // Volta
    CHECK(chip_record(decode_boot42(0x1C000000u)).error() == Error::unknown_chip);  // future
    CHECK(chip_record(decode_boot(0, 0)).error() == Error::unknown_chip);
}
