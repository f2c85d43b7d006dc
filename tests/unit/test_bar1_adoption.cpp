// Adopting GSP's BAR1 tables: the simulated GSP leaves them as RM does (the whole BAR1 space
// sparse, its own 64 KiB mapped at offset 0); Bar1User starts on them, never touches GSP's
// entries, and destroying the BAR1 space leaves GSP's tables byte for byte as they were.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "gpummu/hw/gpu_mm.hpp"
#include "gpummu/sim/gpu.hpp"
#include "instantiation/sim_spaces.hpp"
#include "support/random.hpp"
#include "support/sim_rig.hpp"

using namespace gpummu;
using testing::SimGpuRigStorage;

namespace {

constexpr u64 kib = 1024, mib = 1024 * kib;

VirtualRange bar1_range(u64 begin, u64 size)
{
    return *VirtualRange::from_size(VirtualAddress{begin}, size);
}

// GSP's share at the top of VRAM (its tables and its pages) as bytes.
std::vector<u64> reserved_top(const sim::Gpu &gpu, std::span<const u64> vram)
{
    const u64 first = gpu.bar1_pdb().value() / 8;
    return std::vector<u64>(vram.begin() + static_cast<std::ptrdiff_t>(first), vram.end());
}

std::vector<ForeignRange> foreign_ranges_of(SimGpuRigStorage &rig)
{
    return rig.mm->bar1().address_space().with_page_table([](auto &table) {
        auto ranges = table.foreign_ranges();
        return std::vector<ForeignRange>(ranges.begin(), ranges.end());
    });
}

}  // namespace

TEST_CASE("GSP's RM-like BAR1 tables are adopted, left alone and restored on destroy")
{
    for (const sim::ChipModel *chip : {&sim::ga102, &sim::gh100}) {
        INFO(chip->name);
        // What GSP built, from a Gpu no driver has touched.
        std::vector<u64> pristine_vram(256 * mib / 8);
        auto pristine = sim::Gpu::create(*chip, pristine_vram);
        REQUIRE(pristine.has_value());
        const std::vector<u64> gsp_bytes = reserved_top(*pristine, pristine_vram);

        SimGpuRigStorage rig(*chip);
        REQUIRE(rig.ready);
        // Adoption read the tables and wrote nothing.
        CHECK(reserved_top(*rig.gpu, rig.vram) == gsp_bytes);
        const u64 free_before = rig.mm->buddy().free_bytes();
        const u64 bar1_bytes = rig.gpu->bar1_bytes();
        const u64 gsp_pages = rig.gpu->bar1_pdb().value() + sim::Gpu::gsp_pages_offset;

        // The foreign ranges: GSP's 64 KiB mapped, the rest of the space sparse.
        const std::vector<ForeignRange> foreign = foreign_ranges_of(rig);
        REQUIRE(!foreign.empty());
        CHECK(foreign.front() == ForeignRange{0, sim::Gpu::gsp_pages_bytes, true});
        u64 sparse_bytes = 0;
        for (const ForeignRange &range : foreign)
            if (!range.mapped) sparse_bytes += range.end - range.begin;
        CHECK(sparse_bytes == bar1_bytes - sim::Gpu::gsp_pages_bytes);
        auto stats = rig.mm->bar1().stats();
        CHECK(stats.tables.tables() == 1);  // the root; GSP's tables are not ours
        CHECK(stats.tables.foreign_tables >= 3);

        // GSP's pages translate as GSP made them, through the reference MMU.
        for (u64 offset : {u64{0}, 60 * kib}) {
            const sim::ReferenceTranslation walked =
                rig.gpu->mmu().walk(rig.gpu->bar1_pdb().value(), offset);
            REQUIRE(walked.kind == sim::ReferenceTranslation::Kind::mapped);
            CHECK(walked.pa == gsp_pages + offset);
        }

        // Bar1User maps around GSP's pages, into the sparse space, and reads back.
        std::vector<Bar1Mapping<sim::Gpu::Bar1>> mappings;
        std::vector<BuddyBlock> blocks;
        for (u64 size : {4 * kib, 64 * kib, 2 * mib, 16 * kib}) {
            BuddyBlock block;
            auto allocated =
                rig.mm->buddy().allocate(size, {.contiguous = true}, std::span(&block, 1));
            REQUIRE(allocated.has_value());
            blocks.push_back(block);
            auto mapping = rig.mm->bar1().map(std::span<const BuddyBlock>(&block, 1));
            REQUIRE(mapping.has_value());
            CHECK(mapping->range().begin().value() >= sim::Gpu::gsp_pages_bytes);
            REQUIRE(mapping->write64(size - 8, 0x600DF00D00000000ull | size).has_value());
            CHECK(rig.vram[(block.address.value() + size - 8) / 8] ==
                  (0x600DF00D00000000ull | size));
            mappings.push_back(*mapping);
        }
        REQUIRE(rig.mm->bar1().check_invariants().has_value());

        // GSP's VAs are refused with foreign_entry at every entry point.
        auto &space = rig.mm->bar1().address_space();
        const PhysicalSegment segment{physical(blocks[0].address), 4 * kib};
        PageAttributes attributes;
        attributes.aperture = Aperture::video;
        CHECK(space.map_fixed(bar1_range(0, 4 * kib), std::span(&segment, 1), attributes).error() ==
              Error::foreign_entry);
        CHECK(space.reserve_sparse_fixed(bar1_range(32 * kib, 64 * kib)).error() ==
              Error::foreign_entry);
        space.with_page_table([&](auto &table) {
            CHECK(table.unmap(bar1_range(0, 4 * kib)).error() == Error::foreign_entry);
            CHECK(table.make_sparse(bar1_range(0, 64 * kib)).error() == Error::foreign_entry);
            // GSP's sparse space may be mapped over, but not cleared.
            CHECK(table.clear_sparse(bar1_range(128 * mib, 2 * mib)).error() ==
                  Error::foreign_entry);
            return 0;
        });
        // A fixed mapping into GSP's sparse space goes back to sparse when released.
        auto fixed =
            space.map_fixed(bar1_range(64 * mib, 4 * kib), std::span(&segment, 1), attributes);
        REQUIRE(fixed.has_value());
        CHECK(space.translate(VirtualAddress{64 * mib})->state == TranslationState::mapped);
        REQUIRE(space.release(fixed->handle).has_value());
        CHECK(space.translate(VirtualAddress{64 * mib})->state == TranslationState::sparse);
        CHECK(reserved_top(*rig.gpu, rig.vram) != gsp_bytes);  // our tables hang below GSP's

        // A sparse reservation there leaves GSP's sparse space as it was when released.
        auto reservation = space.reserve_sparse_fixed(bar1_range(96 * mib, 4 * mib));
        REQUIRE(reservation.has_value());
        REQUIRE(space.release(reservation->handle).has_value());
        CHECK(space.translate(VirtualAddress{97 * mib})->state == TranslationState::sparse);

        // GSP's own pages were never touched.
        CHECK(rig.gpu->mmu().walk(rig.gpu->bar1_pdb().value(), 0).pa == gsp_pages);

        // Destroy: our mappings and tables go, GSP's tables are exactly as GSP left them.
        for (auto &mapping : mappings) REQUIRE(rig.mm->bar1().release(mapping).has_value());
        REQUIRE(space.destroy().has_value());
        CHECK(reserved_top(*rig.gpu, rig.vram) == gsp_bytes);
        for (const BuddyBlock &block : blocks) REQUIRE(rig.mm->buddy().free(block).has_value());
        CHECK(rig.mm->buddy().free_bytes() == free_before);
    }
}

TEST_CASE("destroying the BAR1 space with mappings still in it restores GSP's tables too")
{
    for (const sim::ChipModel *chip : {&sim::ga102, &sim::gh100}) {
        INFO(chip->name);
        SimGpuRigStorage rig(*chip);
        REQUIRE(rig.ready);
        const std::vector<u64> gsp_bytes = reserved_top(*rig.gpu, rig.vram);
        const u64 free_before = rig.mm->buddy().free_bytes();
        std::vector<BuddyBlock> blocks(64);
        auto allocated = rig.mm->buddy().allocate(6 * mib + 20 * kib, {}, blocks);
        REQUIRE(allocated.has_value());
        auto mapping = rig.mm->bar1().map(allocated->blocks);
        REQUIRE(mapping.has_value());
        REQUIRE(rig.mm->bar1().address_space().destroy().has_value());
        CHECK(reserved_top(*rig.gpu, rig.vram) == gsp_bytes);
        REQUIRE(rig.mm->buddy().free(allocated->blocks).has_value());
        CHECK(rig.mm->buddy().free_bytes() == free_before);
    }
}

TEST_CASE("a BAR1 root GSP left empty is used as before")
{
    for (const sim::ChipModel *chip : {&sim::ga102, &sim::gh100}) {
        INFO(chip->name);
        std::vector<u64> vram(64 * mib / 8);
        auto gpu = sim::Gpu::create(*chip, vram, 32 * mib, sim::Bar1Tables::empty);
        REQUIRE(gpu.has_value());
        const u64 root = gpu->bar1_pdb().value() / 8;
        CHECK(std::all_of(vram.begin() + static_cast<std::ptrdiff_t>(root),
                          vram.begin() + static_cast<std::ptrdiff_t>(root + 512),
                          [](u64 word) { return word == 0; }));
        CHECK(gpu->mmu().walk(gpu->bar1_pdb().value(), 0).kind !=
              sim::ReferenceTranslation::Kind::mapped);
    }
}

TEST_CASE("random maps, fixed maps, sparse reservations and releases over GSP's tables")
{
    // Whatever happens in between, the audit holds after every step, GSP's pages keep
    // translating, and destroy gives GSP's tables back byte for byte.
    for (const sim::ChipModel *chip : {&sim::ga102, &sim::gh100}) {
        for (u64 seed = 1; seed <= 8; ++seed) {
            INFO(chip->name << " seed " << seed);
            testing::Random random(seed * 0x9E37u + (chip == &sim::gh100 ? 1 : 0));
            SimGpuRigStorage rig(*chip);
            REQUIRE(rig.ready);
            const std::vector<u64> gsp_bytes = reserved_top(*rig.gpu, rig.vram);
            const u64 free_before = rig.mm->buddy().free_bytes();
            const u64 gsp_pages = rig.gpu->bar1_pdb().value() + sim::Gpu::gsp_pages_offset;
            auto &space = rig.mm->bar1().address_space();
            struct Live {
                MappingHandle handle;
                std::vector<BuddyBlock> blocks;
            };
            std::vector<Live> live;
            PageAttributes attributes;
            attributes.aperture = Aperture::video;
            for (int step = 0; step < 600; ++step) {
                const u64 op = random.below(10);
                if ((op < 6 || live.empty()) && live.size() < 40) {
                    // A buffer of 4 KiB .. 4 MiB, scattered or contiguous, at a VA the space
                    // picks or (op 5) at a fixed VA in GSP's sparse space.
                    const u64 size = (1 + random.below(1024)) * 4 * kib;
                    std::vector<BuddyBlock> blocks(64);
                    auto allocated =
                        rig.mm->buddy().allocate(size, {.contiguous = random.coin()}, blocks);
                    if (!allocated) continue;
                    blocks.resize(allocated->blocks.size());
                    std::vector<PhysicalSegment> segments;
                    for (const BuddyBlock &block : blocks)
                        segments.push_back({physical(block.address), block.size});
                    Result<Mapping> mapping = failure(Error::invalid_argument);
                    if (op == 5) {
                        const u64 va = (16 + random.below(200)) * mib + random.below(256) * 4 * kib;
                        mapping = space.map_fixed(bar1_range(va, size), segments, attributes);
                    } else {
                        mapping = space.map(segments, attributes);
                    }
                    if (!mapping) {
                        // Only a VA already taken may refuse a fixed map here.
                        CHECK((op == 5 && mapping.error() == Error::overlap));
                        REQUIRE(rig.mm->buddy().free(blocks).has_value());
                        continue;
                    }
                    CHECK(mapping->range.begin().value() >= sim::Gpu::gsp_pages_bytes);
                    live.push_back({mapping->handle, blocks});
                } else if (op < 8 && live.size() < 40) {
                    auto reserved = space.reserve_sparse((1 + random.below(64)) * 64 * kib);
                    REQUIRE(reserved.has_value());
                    live.push_back({reserved->handle, {}});
                } else {
                    const std::size_t victim = random.below(live.size());
                    auto released = space.release(live[victim].handle);
                    if (!released) {
                        // A sparse reservation a fixed map landed in must wait for it.
                        CHECK(live[victim].blocks.empty());
                        CHECK(released.error() == Error::in_use);
                        continue;
                    }
                    if (!live[victim].blocks.empty())
                        REQUIRE(rig.mm->buddy().free(live[victim].blocks).has_value());
                    live.erase(live.begin() + static_cast<std::ptrdiff_t>(victim));
                }
                REQUIRE(space.check_invariants().has_value());
                const sim::ReferenceTranslation gsp =
                    rig.gpu->mmu().walk(rig.gpu->bar1_pdb().value(), 4 * kib);
                REQUIRE(gsp.kind == sim::ReferenceTranslation::Kind::mapped);
                REQUIRE(gsp.pa == gsp_pages + 4 * kib);
            }
            REQUIRE(space.destroy().has_value());
            CHECK(reserved_top(*rig.gpu, rig.vram) == gsp_bytes);
            for (const Live &entry : live)
                if (!entry.blocks.empty()) REQUIRE(rig.mm->buddy().free(entry.blocks).has_value());
            CHECK(rig.mm->buddy().free_bytes() == free_before);
        }
    }
}
