// hw/fb_layout.hpp, hw/bar1.hpp, hw/gpu_mm.hpp and hw/selftest.hpp on simulated GA102 (MMU v2)
// and GH100 (MMU v3).
#include <doctest/doctest.h>

#include <vector>

#include "gpummu/hw/selftest.hpp"
#include "instantiation/sim_spaces.hpp"
#include "support/random.hpp"
#include "support/space_storage.hpp"
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

TEST_CASE("FB layout: a limit at the top of the 64-bit space never wraps VRAM's end")
{
    const u64 top = ~u64{0};
    // A reserved record up to 2^64 - 1 once wrapped the end to 0, so that a later usable
    // record inside the reserved one was accepted and firmware memory reached the buddy.
    const FbRegionRecord wrapping[] = {
        {0, 64 * mib - 1, false, false, false, false},
        {64 * mib, top, true, false, false, false},
        {128 * mib, 129 * mib - 1, false, false, false, false},
    };
    CHECK(FbLayout::from_records(wrapping, VramAddress{64 * mib}).error() ==
          Error::malformed_record);
    const FbRegionRecord usable_to_top[] = {{top - 64 * mib + 1, top}};
    CHECK(FbLayout::from_records(usable_to_top, VramAddress{0}).error() == Error::malformed_record);
    // The highest end that is representable is fine.
    const FbRegionRecord highest[] = {{top - 128 * mib + 1, top - 64 * mib},
                                      {top - 64 * mib + 1, top - 4096, true}};
    auto layout = FbLayout::from_records(highest, VramAddress{top - 64 * mib + 1});
    REQUIRE(layout);
    CHECK(layout->vram_end().value() == top - 4095);
}

TEST_CASE("FB layout: random records, limits at the edges, against a plain model")
{
    testing::Random random(0xfb);
    const u64 top = ~u64{0};
    long accepted = 0;
    for (int trial = 0; trial < 200000; ++trial) {
        std::vector<FbRegionRecord> records(1 + random.below(5));
        u64 cursor = random.below(4) == 0 ? top - (random.below(64) << 20) : random.below(64) << 20;
        for (FbRegionRecord &record : records) {
            record.base = cursor & ~u64{0xFFF};
            if (random.below(16) == 0) record.base |= random.below(0x1000);  // misaligned
            u64 length = (1 + random.below(64)) << 20;
            record.limit = record.base + length - 1;  // may wrap: that record is invalid
            if (random.below(8) == 0) record.limit = top;
            if (random.below(16) == 0) record.limit -= random.below(0x1000);
            record.reserved = random.below(3) == 0;
            record.protected_memory = random.below(5) == 0;
            cursor = record.limit + 1 + (random.below(3) == 0 ? random.below(8) << 20 : 0);
            if (random.below(10) == 0) cursor = record.base;  // overlap
        }
        u64 pdb = random.below(3) == 0 ? records.back().base : (random.below(256) << 20);
        if (random.below(8) == 0) pdb |= 8;
        // The model: every record aligned, base <= limit < 2^64 - 1, strictly after the
        // previous limit; some record usable; the PDB aligned, below the end, not usable.
        bool valid = true, any_usable = false;
        for (std::size_t i = 0; i < records.size(); ++i) {
            const FbRegionRecord &record = records[i];
            valid = valid && (record.base & 0xFFF) == 0 && (record.limit & 0xFFF) == 0xFFF &&
                    record.base <= record.limit && record.limit != top &&
                    (i == 0 || record.base > records[i - 1].limit);
            any_usable = any_usable || (!record.reserved && !record.protected_memory);
        }
        valid = valid && any_usable && (pdb & 0xFFF) == 0 && pdb <= records.back().limit;
        for (const FbRegionRecord &record : records)
            if (!record.reserved && !record.protected_memory && pdb >= record.base &&
                pdb <= record.limit)
                valid = false;
        auto layout = FbLayout::from_records(records, VramAddress{pdb});
        CAPTURE(trial);
        REQUIRE(layout.has_value() == valid);
        if (!layout) {
            CHECK(layout.error() == Error::malformed_record);
            continue;
        }
        ++accepted;
        CHECK(layout->vram_end().value() == records.back().limit + 1);
        std::size_t next = 0;
        for (const FbRegionRecord &record : records) {
            if (record.reserved || record.protected_memory) continue;
            REQUIRE(next < layout->usable_regions().size());
            CHECK(layout->usable_regions()[next].begin().value() == record.base);
            CHECK(layout->usable_regions()[next].end().value() == record.limit + 1);
            ++next;
        }
        CHECK(next == layout->usable_regions().size());
    }
    CHECK(accepted > 1000);
}

TEST_CASE("GpuMm refuses a GPU that reads all-ones: device_lost, nothing built")
{
    testing::SimGpuRigStorage rig(sim::ga102);
    REQUIRE(rig.ready);
    rig.gpu->fall_off_bus(true);
    auto layout = FbLayout::from_records(rig.gpu->fb_regions(), rig.gpu->bar1_pdb());
    REQUIRE(layout);
    testing::SimGpuRigStorage::Mm fresh;
    auto created = fresh.create(
        rig.gpu->bar0(), rig.gpu->bar1(), *layout, rig.gpu->bar1_bytes(),
        {rig.buddy_metadata,
         {{rig.range_nodes, {rig.nodes, rig.children}, rig.slots, rig.records}, rig.scratch}});
    CHECK(created.error() == Error::device_lost);
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
        // GSP's BAR1 space is sparse, as RM leaves it: the released offset reads zero
        // instead of faulting (prefetches never fault), and nothing else faulted either.
        CHECK(rig.gpu->bar1_faults() == 0);
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

using ContextStorage = testing::SpaceStorage;

TEST_CASE("GPU contexts: two address spaces over one buddy, walked through instance blocks")
{
    for (const sim::ChipModel *chip : {&sim::ga102, &sim::gh100}) {
        INFO(chip->name);
        SimGpuRig rig(*chip);
        auto &mm = *rig.mm;
        const u64 free_at_start = mm.buddy().free_bytes();
        ContextStorage storage_a, storage_b;
        testing::SimGpuRigStorage::Mm::Context first, second;
        REQUIRE(mm.create_context(first, storage_a.get()));
        REQUIRE(mm.create_context(second, storage_b.get()));
        CHECK(mm.create_context(first, storage_a.get()).error() == Error::invalid_argument);
        CHECK(first.version() == mm.chip().mmu_version);

        // One 4 MiB buffer mapped in both contexts; one instance block per context.
        std::array<BuddyBlock, 8> buffer{};
        auto allocated = mm.buddy().allocate(4 * mib, {.contiguous = true}, buffer);
        REQUIRE(allocated);
        std::array<BuddyBlock, 2> blocks{};
        REQUIRE(mm.buddy().allocate(4 * kib, {}, std::span(&blocks[0], 1)));
        REQUIRE(mm.buddy().allocate(4 * kib, {}, std::span(&blocks[1], 1)));
        const PhysicalSegment segment{PhysicalAddress{buffer[0].address.value()}, 4 * mib};
        PageAttributes attributes;
        auto in_first = first.map({&segment, 1}, attributes);
        auto in_second = second.map({&segment, 1}, attributes);
        REQUIRE(in_first);
        REQUIRE(in_second);
        auto pdb_first = mm.page_directory_base(first);
        auto pdb_second = mm.page_directory_base(second);
        REQUIRE(pdb_first);
        REQUIRE(pdb_second);
        CHECK(pdb_first->root != pdb_second->root);
        REQUIRE(write_page_directory_base(mm.pramin(), blocks[0].address, *pdb_first));
        REQUIRE(write_page_directory_base(mm.pramin(), blocks[1].address, *pdb_second));

        // An engine bound to either block finds the buffer (the reference MMU decodes the
        // instance block and the tables with its own masks).
        sim::ReferenceMmu reference(mm.chip().mmu_version == MmuVersion::v2
                                        ? sim::MmuGeneration::ver2
                                        : sim::MmuGeneration::ver3,
                                    rig.vram);
        for (u64 offset : {u64{0}, 2 * mib + 12 * kib, 4 * mib - 8}) {
            for (auto [block, mapping] :
                 {std::pair{blocks[0], *in_first}, std::pair{blocks[1], *in_second}}) {
                auto walked = reference.walk_instance(block.address.value(),
                                                      mapping.range.begin().value() + offset);
                REQUIRE(walked.kind == sim::ReferenceTranslation::Kind::mapped);
                CHECK(walked.pa == buffer[0].address.value() + offset);
            }
        }
        // Per-space accounting.
        CHECK(first.stats().mapped_bytes == 4 * mib);
        CHECK(first.stats().table_vram_bytes >= first.stats().tables.table_bytes);
        CHECK(first.stats().table_vram_bytes > 0);
        // Releasing in one context leaves the other mapped.
        REQUIRE(first.release(in_first->handle));
        CHECK(reference.walk_instance(blocks[0].address.value(), in_first->range.begin().value())
                  .kind == sim::ReferenceTranslation::Kind::unmapped);
        CHECK(reference.walk_instance(blocks[1].address.value(), in_second->range.begin().value())
                  .kind == sim::ReferenceTranslation::Kind::mapped);
        // Destroying both gives every table back.
        REQUIRE(first.destroy());
        REQUIRE(second.destroy());
        REQUIRE(mm.buddy().free(blocks));
        REQUIRE(mm.buddy().free(allocated->blocks));
        CHECK(mm.buddy().free_bytes() == free_at_start);
    }
}

TEST_CASE("GPU contexts: a VRAM budget bounds a context's tables; VRAM's end bounds its maps")
{
    SimGpuRig rig(sim::ga102);
    auto &mm = *rig.mm;
    ContextStorage storage;
    testing::SimGpuRigStorage::Mm::Context context;
    REQUIRE(mm.create_context(context, storage.get(), {.vram_budget = 8 * kib}));
    CHECK(context.stats().table_vram_bytes == 4 * kib);  // the root
    const u64 free_before = mm.buddy().free_bytes();
    const PhysicalSegment small{PhysicalAddress{0}, 64 * kib};
    PageAttributes attributes;
    // A 4 KiB-page map needs PD2, PD1, PD0 and a PT: more than the 4 KiB left.
    CHECK(context.map({&small, 1}, attributes, {.page_sizes = {PageSize::size_4k()}}).error() ==
          Error::out_of_memory);
    CHECK(mm.buddy().free_bytes() == free_before);
    CHECK(context.stats().mappings == 0);
    const PhysicalSegment beyond{PhysicalAddress{mm.layout().vram_end().value()}, 64 * kib};
    CHECK(context.map({&beyond, 1}, attributes).error() == Error::out_of_range);
    REQUIRE(context.destroy());
}

TEST_CASE("GPU contexts: spare table pages are kept between mappings, given back by destroy")
{
    SimGpuRig rig(sim::ga102);
    auto &mm = *rig.mm;
    ContextStorage storage;
    testing::SimGpuRigStorage::Mm::Context context;
    const u64 free_at_start = mm.buddy().free_bytes();
    REQUIRE(mm.create_context(context, storage.get(), {.spare_table_pages = 4}));
    const PhysicalSegment small{PhysicalAddress{0}, 64 * kib};
    PageAttributes attributes;
    auto mapping = context.map({&small, 1}, attributes, {.page_sizes = {PageSize::size_4k()}});
    REQUIRE(mapping);
    const u64 mapped = mm.buddy().free_bytes();
    const u64 held = context.stats().table_vram_bytes;
    REQUIRE(context.release(mapping->handle));
    // PD2, PD1, PD0 and the PT are emptied: kept (four spares), still held.
    CHECK(context.stats().tables.tables() == 1);
    CHECK(context.stats().table_vram_bytes == held);
    CHECK(mm.buddy().free_bytes() == mapped);
    mapping = context.map({&small, 1}, attributes, {.page_sizes = {PageSize::size_4k()}});
    REQUIRE(mapping);
    CHECK(mm.buddy().free_bytes() == mapped);  // the spares served the tables
    REQUIRE(context.release(mapping->handle));
    REQUIRE(context.destroy());
    CHECK(mm.buddy().free_bytes() == free_at_start);
}
