// hw/fb_layout.hpp, hw/bar1.hpp, hw/gpu_mm.hpp and hw/selftest.hpp on simulated GA102 (MMU v2)
// and GH100 (MMU v3).
#include <doctest/doctest.h>

#include <vector>

#include "gpummu/hw/selftest.hpp"
#include "support/sim_fixture.hpp"

using namespace gpummu;
using testing::SimGpuRig;

namespace {
constexpr u64 kib = 1024, mib = 1024 * kib;
}

TEST_CASE("FB layout: every usable region, VRAM end, BAR1 root; malformed records refused")
{
    const FbRegionRecord good[] = {
        {0, 64 * mib - 1, false, false, true, true},
        {64 * mib, 65 * mib - 1, false, true, false, false},
        {65 * mib, 126 * mib - 1, false, false, true, true},
        {126 * mib, 128 * mib - 1, true, false, false, false},
    };
    auto layout = FbLayout::from_records(good, VramAddress{126 * mib});
    REQUIRE(layout.has_value());
    REQUIRE(layout->usable_regions().size() == 2);
    CHECK(layout->usable_regions()[1].begin().value() == 65 * mib);
    CHECK(layout->usable_bytes() == 125 * mib);
    CHECK(layout->vram_end().value() == 128 * mib);
    CHECK(layout->bar1_pdb().value() == 126 * mib);

    auto refuse = [](std::vector<FbRegionRecord> records, u64 pdb) {
        auto got = FbLayout::from_records(records, VramAddress{pdb});
        REQUIRE_FALSE(got.has_value());
        CHECK(got.error() == Error::malformed_record);
    };
    refuse({}, 0);
    refuse({{0x800, 64 * mib - 1}, {64 * mib, 65 * mib - 1, true}}, 64 * mib);  // base
    refuse({{0, 64 * mib - 2}, {64 * mib, 65 * mib - 1, true}}, 64 * mib);      // limit
    refuse({{0, 64 * mib - 1}, {32 * mib, 65 * mib - 1, true}}, 64 * mib);      // overlap
    refuse({{64 * mib, 65 * mib - 1, true}, {0, 64 * mib - 1}}, 64 * mib);      // order
    refuse({{0, 64 * mib - 1, true}}, 0);                                       // no usable
    refuse({{0, 64 * mib - 1}, {64 * mib, 65 * mib - 1, true}}, 4096);          // PDB usable
    refuse({{0, 64 * mib - 1}, {64 * mib, 65 * mib - 1, true}}, 65 * mib);      // PDB outside
    refuse({{0, 64 * mib - 1}, {64 * mib, 65 * mib - 1, true}}, 64 * mib + 8);  // PDB unaligned
    refuse({{2 * mib, mib - 1}, {64 * mib, 65 * mib - 1, true}}, 64 * mib);     // base > limit
}

TEST_CASE("GpuMm builds itself from BAR0 and the GSP layout")
{
    for (const sim::ChipModel *chip : {&sim::ga102, &sim::gh100}) {
        SimGpuRig rig(*chip);
        auto &mm = *rig.mm;
        INFO(chip->name);
        CHECK(mm.chip().mmu_version == (chip == &sim::ga102 ? MmuVersion::v2 : MmuVersion::v3));
        CHECK(mm.chip_id().chip_id() == (chip == &sim::ga102 ? 0x172 : 0x180));
        // The buddy spans both usable regions; the protected hole and GSP's top are not in it.
        CHECK(mm.buddy().stats().total_bytes == mm.layout().usable_bytes());
        CHECK(mm.layout().usable_regions().size() == 2);
        CHECK(mm.bar1().root().address.value() == rig.gpu->bar1_pdb().value());
        std::array<BuddyBlock, 128> blocks{};
        auto got = mm.buddy().allocate(mm.buddy().free_bytes(), {}, blocks);
        REQUIRE(got.has_value());
        for (const BuddyBlock &block : got->blocks) {
            CHECK_FALSE(
                VramRange::from_size(VramAddress{64 * mib}, mib).value().contains(block.address));
            CHECK(block.address.value() + block.size <= rig.gpu->bar1_pdb().value());
        }
        REQUIRE(mm.buddy().free(got->blocks).has_value());
    }
}

TEST_CASE("BAR1 maps scattered blocks, reads and writes them, and frees its tables")
{
    for (const sim::ChipModel *chip : {&sim::ga102, &sim::gh100}) {
        SimGpuRig rig(*chip);
        auto &mm = *rig.mm;
        const u64 free_before = mm.buddy().free_bytes();
        std::array<BuddyBlock, 64> blocks{};
        auto got = mm.buddy().allocate(3 * mib + 192 * kib, {.min_block_size = 64 * kib}, blocks);
        REQUIRE(got.has_value());
        auto mapping = mm.bar1().map(got->blocks);
        REQUIRE(mapping.has_value());
        CHECK(mapping->size() == got->size);
        // Every block is reachable at its place in the mapping.
        u64 offset = 0;
        for (const BuddyBlock &block : got->blocks) {
            REQUIRE(mapping->write32(offset + 12, static_cast<u32>(block.address.value() >> 12))
                        .has_value());
            CHECK(*mm.pramin().read32(block.address + 12) == block.address.value() >> 12);
            offset += block.size;
        }
        // Bounds and alignment are checked.
        CHECK(mapping->read8(mapping->size()).error() == Error::out_of_range);
        CHECK(mapping->read32(2).error() == Error::misaligned);
        CHECK(mapping->write64(mapping->size() - 4, 1).error() == Error::out_of_range);
        std::vector<u64> words(512, 0x1234);
        REQUIRE(mapping->copy_in(4096, words).has_value());
        std::vector<u64> back(512);
        REQUIRE(mapping->copy_out(4096, back).has_value());
        CHECK(back == words);
        // Invalidates are hub-only.
        CHECK((rig.gpu->last_invalidate().control & (1u << 2)) != 0);
        REQUIRE(mm.bar1().release(*mapping).has_value());
        CHECK(mm.bar1().stats().tables.tables() == 1);  // only GSP's root is left, never freed
        CHECK(rig.gpu->last_invalidate().pdb == rig.gpu->bar1_pdb().value());
        CHECK((rig.gpu->last_invalidate().control & (1u << 7)) != 0);  // acknowledged
        REQUIRE(mm.buddy().free(got->blocks).has_value());
        CHECK(mm.buddy().free_bytes() == free_before);
        CHECK(rig.gpu->unordered_invalidates() == 0);
        CHECK(rig.gpu->bar1_faults() == 0);
    }
}

TEST_CASE("a skipped invalidate shows as a stale BAR1 translation")
{
    for (const sim::ChipModel *chip : {&sim::ga102, &sim::gh100}) {
        SimGpuRig rig(*chip);
        auto &mm = *rig.mm;
        std::array<BuddyBlock, 2> blocks{};
        REQUIRE(
            mm.buddy().allocate(4096, {.contiguous = true}, std::span(&blocks[0], 1)).has_value());
        REQUIRE(
            mm.buddy().allocate(4096, {.contiguous = true}, std::span(&blocks[1], 1)).has_value());
        REQUIRE(mm.pramin().write64(blocks[0].address, 0xAAAA).has_value());
        REQUIRE(mm.pramin().write64(blocks[1].address, 0xBBBB).has_value());
        auto mapping = mm.bar1().map(std::span<const BuddyBlock>(&blocks[0], 1));
        REQUIRE(mapping.has_value());
        CHECK(*mapping->read64(0) == 0xAAAA);  // now cached in the simulated TLB
        // Point the PTE at the second block without invalidating.
        std::array<u64, 1> pte{};
        auto walked =
            rig.gpu->mmu().walk(rig.gpu->bar1_pdb().value(), mapping->range().begin().value());
        REQUIRE(walked.kind == sim::ReferenceTranslation::Kind::mapped);
        REQUIRE(mm.pramin().read(VramAddress{rig.gpu->mmu().last_entry()}, pte).has_value());
        const u64 moved =
            pte[0] + (chip == &sim::ga102
                          ? (blocks[1].address.value() - blocks[0].address.value()) >> 4
                          : blocks[1].address.value() - blocks[0].address.value());
        REQUIRE(rig.gpu->corrupt_bar1_pte(mapping->range().begin().value(), moved));
        CHECK(*mapping->read64(0) == 0xAAAA);  // stale
        TlbBatch batch(physical(rig.gpu->bar1_pdb()), Aperture::video, true);
        batch.record_write(Level{0});
        REQUIRE(batch.finish(mm.tlb()).has_value());
        CHECK(*mapping->read64(0) == 0xBBBB);  // fresh after the invalidate
        (void)mm.bar1().release(*mapping);
    }
}

TEST_CASE("self-tests pass on both simulated chips")
{
    for (const sim::ChipModel *chip : {&sim::ga102, &sim::gh100}) {
        SimGpuRig rig(*chip);
        const u64 free_before = rig.mm->buddy().free_bytes();
        const SelfTestReport report = run_selftests(*rig.mm);
        INFO(chip->name);
        CHECK(report.count == 8);
        for (std::size_t i = 0; i < report.count; ++i) {
            INFO(report.results[i].name << ": " << report.results[i].detail);
            CHECK(report.results[i].passed);
        }
        CHECK(report.all_passed());
        CHECK(rig.mm->buddy().free_bytes() == free_before);  // cleaned up after itself
        CHECK(rig.mm->bar1().stats().tables.tables() == 1);
        CHECK(rig.gpu->bar1_faults() == 1);  // exactly the one unmap_faults provokes
    }
}

TEST_CASE("a corrupted PTE makes the BAR1 self-test fail")
{
    for (const sim::ChipModel *chip : {&sim::ga102, &sim::gh100}) {
        SimGpuRig rig(*chip);
        SelfTestOptions<SimGpuRig::Mm> options;
        options.context = rig.gpu.get();
        options.after_map = [](void *context, SimGpuRig::Mm &, VirtualRange mapped) {
            // A valid-looking PTE pointing at VRAM address 0, behind gpummu's back.
            auto &gpu = *static_cast<sim::Gpu *>(context);
            (void)gpu.corrupt_bar1_pte(mapped.begin().value(), 0x1);
            gpu.mmu().invalidate(0, true);
        };
        const SelfTestReport report = run_selftests(*rig.mm, options);
        INFO(chip->name);
        CHECK_FALSE(report.all_passed());
        bool bar1_failed = false;
        for (std::size_t i = 0; i < report.count; ++i)
            if (std::string_view(report.results[i].name) == "bar1.pramin_to_bar1")
                bar1_failed = !report.results[i].passed;
        CHECK(bar1_failed);
    }
}
