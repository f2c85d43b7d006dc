// vmm/address_space.hpp: VA placement, fixed maps, sparse reservations, handles with
// generations, invalidation and reclaim, run-time format choice.
#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "gpummu/format/mmu_version.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/vmm/address_space.hpp"
#include "instantiation/spaces.hpp"
#include "support/buddy_fixture.hpp"
#include "support/page_table_fixture.hpp"

using namespace gpummu;
using testing::va_range;

namespace {

constexpr u64 kib = 1024, mib = 1024 * kib, gib = 1024 * mib;

struct Rig {
    std::vector<u64> image = std::vector<u64>(16 * mib / 8, 0);
    HostMemory memory{image};
    testing::BuddyFixture buddy = testing::BuddyFixture::make({testing::range_of(0, 16 * mib)});
    testing::RecordingInvalidator invalidator;
    std::vector<RangeNode> range_nodes = std::vector<RangeNode>(RangeAllocator::nodes_for(64));
    std::vector<PageTableNode> nodes = std::vector<PageTableNode>(1024);
    std::vector<PageTableChildren> children = std::vector<PageTableChildren>(32);
    std::vector<BigTableSlot> slots = std::vector<BigTableSlot>(32);
    std::vector<MappingRecord> records;

    explicit Rig(std::size_t handles = 16) : records(handles) {}
    AddressSpaceStorage storage() { return {range_nodes, {nodes, children}, slots, records}; }
    AddressSpaceConfig config() const
    {
        return {va_range(gib, 64 * gib), {architecture_record(Architecture::ampere).page_sizes}};
    }
};

PageAttributes attributes_at(u64 pa)
{
    PageAttributes attributes;
    attributes.address = PhysicalAddress{pa};
    return attributes;
}

}  // namespace

TEST_CASE_TEMPLATE("map anywhere picks a VA that keeps large pages", F, MmuV2, MmuV3)
{
    Rig rig;
    AddressSpace<F, HostMemory, testing::RecordingInvalidator> space;
    REQUIRE(space.create(rig.memory, rig.buddy.buddy, rig.invalidator, rig.storage(), rig.config())
                .has_value());
    const PhysicalSegment segment{PhysicalAddress{6 * gib}, 6 * mib};
    auto mapping = space.map({&segment, 1}, attributes_at(6 * gib));
    REQUIRE(mapping.has_value());
    CHECK(mapping->range.begin().is_aligned_to(2 * mib));
    auto translation = space.translate(mapping->range.begin() + 3 * mib + 8);
    REQUIRE(translation.has_value());
    CHECK(translation->page_size == PageSize::size_2m());
    CHECK(translation->address.value() == 6 * gib + 3 * mib + 8);
    CHECK(space.stats().mappings == 1);
    CHECK(space.stats().mapped_bytes == 6 * mib);
    CHECK(rig.invalidator.seen.size() == 1);
    REQUIRE(space.check_invariants().has_value());
    // A 64 KiB-aligned buffer is placed 64 KiB-aligned.
    const PhysicalSegment small{PhysicalAddress{6 * gib + 64 * kib}, 192 * kib};
    auto second = space.map({&small, 1}, attributes_at(0));
    REQUIRE(second.has_value());
    CHECK(second->range.begin().is_aligned_to(64 * kib));
    CHECK(space.translate(second->range.begin())->page_size == PageSize::size_64k());
}

TEST_CASE_TEMPLATE("handles: release, stale handles, slot reuse", F, MmuV2, MmuV3)
{
    Rig rig(2);
    AddressSpace<F, HostMemory, testing::RecordingInvalidator> space;
    REQUIRE(space.create(rig.memory, rig.buddy.buddy, rig.invalidator, rig.storage(), rig.config())
                .has_value());
    const u64 free_before = rig.buddy.buddy.free_bytes();
    const PhysicalSegment segment{PhysicalAddress{64 * mib}, 8 * kib};
    auto first = space.map({&segment, 1}, attributes_at(0));
    REQUIRE(first.has_value());
    REQUIRE(space.release(first->handle).has_value());
    CHECK(space.translate(first->range.begin())->state == TranslationState::unmapped);
    CHECK(space.release(first->handle).error() == Error::stale_handle);
    CHECK(space.range_of(first->handle).error() == Error::stale_handle);
    CHECK(rig.buddy.buddy.free_bytes() == free_before);  // tables reclaimed after the flush
    CHECK(rig.invalidator.seen.back().ack_globally);
    // The slot is reused with a new generation: the old handle stays stale.
    auto again = space.map({&segment, 1}, attributes_at(0));
    REQUIRE(again.has_value());
    CHECK(again->handle.index == first->handle.index);
    CHECK(again->handle.generation != first->handle.generation);
    CHECK(space.release(first->handle).error() == Error::stale_handle);
    CHECK(space.translate(again->range.begin())->state == TranslationState::mapped);
    // Out of handles: refused, nothing changed.
    auto other = space.map({&segment, 1}, attributes_at(0));
    REQUIRE(other.has_value());
    const u64 free_now = rig.buddy.buddy.free_bytes();
    CHECK(space.map({&segment, 1}, attributes_at(0)).error() == Error::out_of_storage);
    CHECK(rig.buddy.buddy.free_bytes() == free_now);
    CHECK(space.stats().mappings == 2);
    CHECK(space.release(MappingHandle{}).error() == Error::foreign_handle);  // never issued
    MappingHandle beyond = again->handle;
    beyond.index = 1000;
    CHECK(space.release(beyond).error() == Error::stale_handle);
}

TEST_CASE_TEMPLATE("handles are bound to their space: foreign handles change nothing", F, MmuV2,
                   MmuV3)
{
    // Two contexts over one VRAM and one buddy, each with its own storage.
    Rig rig;
    std::vector<RangeNode> other_ranges(RangeAllocator::nodes_for(64));
    std::vector<PageTableNode> other_nodes(1024);
    std::vector<PageTableChildren> other_children(32);
    std::vector<BigTableSlot> other_slots(32);
    std::vector<MappingRecord> other_records(16);
    AddressSpace<F, HostMemory, testing::RecordingInvalidator> first, second;
    REQUIRE(
        first.create(rig.memory, rig.buddy.buddy, rig.invalidator, rig.storage(), rig.config()));
    REQUIRE(second.create(rig.memory, rig.buddy.buddy, rig.invalidator,
                          {other_ranges, {other_nodes, other_children}, other_slots, other_records},
                          rig.config()));
    const PhysicalSegment segment{PhysicalAddress{64 * mib}, 64 * kib};
    auto mine = first.map({&segment, 1}, attributes_at(0));
    auto theirs = second.map({&segment, 1}, attributes_at(0));
    REQUIRE(mine);
    REQUIRE(theirs);
    // Same slot and generation in both spaces: only the space tells them apart.
    CHECK(mine->handle.index == theirs->handle.index);
    CHECK(mine->handle.generation == theirs->handle.generation);
    const u64 free_before = rig.buddy.buddy.free_bytes();
    const auto invalidations = rig.invalidator.seen.size();
    CHECK(first.release(theirs->handle).error() == Error::foreign_handle);
    CHECK(first.range_of(theirs->handle).error() == Error::foreign_handle);
    CHECK(first.translate(mine->range.begin())->state == TranslationState::mapped);
    CHECK(first.stats().mappings == 1);
    CHECK(rig.buddy.buddy.free_bytes() == free_before);
    CHECK(rig.invalidator.seen.size() == invalidations);
    REQUIRE(second.release(theirs->handle));
    REQUIRE(first.release(mine->handle));

    // A space made again over the same storage does not take the old space's handles.
    auto kept = first.map({&segment, 1}, attributes_at(0));
    REQUIRE(kept);
    AddressSpace<F, HostMemory, testing::RecordingInvalidator> again;
    std::vector<RangeNode> again_ranges(RangeAllocator::nodes_for(64));
    std::vector<PageTableNode> again_nodes(1024);
    std::vector<PageTableChildren> again_children(32);
    std::vector<BigTableSlot> again_slots(32);
    REQUIRE(again.create(rig.memory, rig.buddy.buddy, rig.invalidator,
                         {again_ranges, {again_nodes, again_children}, again_slots, rig.records},
                         rig.config()));
    auto fresh = again.map({&segment, 1}, attributes_at(0));
    REQUIRE(fresh);
    CHECK(fresh->handle.index == kept->handle.index);
    CHECK(again.release(kept->handle).error() == Error::stale_handle);
    CHECK(again.stats().mappings == 1);
}

TEST_CASE_TEMPLATE("fixed maps and sparse reservations", F, MmuV2, MmuV3)
{
    Rig rig;
    AddressSpace<F, HostMemory, testing::RecordingInvalidator> space;
    REQUIRE(space.create(rig.memory, rig.buddy.buddy, rig.invalidator, rig.storage(), rig.config())
                .has_value());
    const u64 free_before = rig.buddy.buddy.free_bytes();
    const PhysicalSegment page{PhysicalAddress{64 * mib}, 4 * kib};
    auto fixed = space.map_fixed(va_range(2 * gib, 4 * kib), {&page, 1}, attributes_at(0));
    REQUIRE(fixed.has_value());
    CHECK(space.map_fixed(va_range(2 * gib, 4 * kib), {&page, 1}, attributes_at(0)).error() ==
          Error::overlap);
    CHECK(space.map_fixed(va_range(128 * gib, 4 * kib), {&page, 1}, attributes_at(0)).error() ==
          Error::out_of_range);

    auto sparse = space.reserve_sparse_fixed(va_range(4 * gib, 4 * mib));
    REQUIRE(sparse.has_value());
    CHECK(space.translate(VirtualAddress{4 * gib + mib})->state == TranslationState::sparse);
    auto inside = space.map_fixed(va_range(4 * gib + mib, 4 * kib), {&page, 1}, attributes_at(0));
    REQUIRE(inside.has_value());
    CHECK(space.translate(VirtualAddress{4 * gib + mib})->state == TranslationState::mapped);
    CHECK(space.release(sparse->handle).error() == Error::in_use);  // holds a mapping
    REQUIRE(space.release(inside->handle).has_value());
    CHECK(space.translate(VirtualAddress{4 * gib + mib})->state == TranslationState::sparse);
    REQUIRE(space.release(sparse->handle).has_value());
    CHECK(space.translate(VirtualAddress{4 * gib + mib})->state == TranslationState::unmapped);
    REQUIRE(space.release(fixed->handle).has_value());
    CHECK(space.stats().tables.tables() == 1);
    CHECK(rig.buddy.buddy.free_bytes() == free_before);
    CHECK(space.stats().tlb_invalidations == rig.invalidator.seen.size());
    REQUIRE(space.check_invariants().has_value());

    auto anywhere = space.reserve_sparse(8 * mib, {.alignment = 2 * mib, .top_down = true});
    REQUIRE(anywhere.has_value());
    CHECK(anywhere->range.end().value() == 65 * gib);
    CHECK(space.translate(anywhere->range.begin())->state == TranslationState::sparse);
}

TEST_CASE("the MMU format is chosen at run time")
{
    for (Architecture architecture : {Architecture::ampere, Architecture::hopper}) {
        const ArchitectureRecord &record = architecture_record(architecture);
        Rig rig;
        AnyAddressSpace<HostMemory, testing::RecordingInvalidator> space;
        AddressSpaceConfig config = rig.config();
        config.page_table.page_sizes = record.page_sizes;
        REQUIRE(space
                    .create(record.mmu_version, rig.memory, rig.buddy.buddy, rig.invalidator,
                            rig.storage(), config)
                    .has_value());
        CHECK(space.version() == record.mmu_version);
        const PhysicalSegment segment{PhysicalAddress{gib}, 2 * mib};
        auto mapping = space.map({&segment, 1}, attributes_at(0));
        REQUIRE(mapping.has_value());
        CHECK(space.translate(mapping->range.begin() + 4096)->address.value() == gib + 4096);
        // The root's entries are in the format chosen: v3 has a 2-entry PD4, v2 a 4-entry PD3.
        const std::size_t levels =
            record.mmu_version == MmuVersion::v2 ? MmuV2::levels.size() : MmuV3::levels.size();
        CHECK(space.stats().tables.tables() == levels - 1);
        REQUIRE(space.release(mapping->handle).has_value());
        REQUIRE(space.check_invariants().has_value());
    }
}

TEST_CASE_TEMPLATE("destroy returns every table to the buddy after one invalidate", F, MmuV2, MmuV3)
{
    Rig rig;
    const u64 free_at_start = rig.buddy.buddy.free_bytes();
    AddressSpace<F, HostMemory, testing::RecordingInvalidator> space;
    REQUIRE(
        space.create(rig.memory, rig.buddy.buddy, rig.invalidator, rig.storage(), rig.config()));
    const PhysicalSegment small{PhysicalAddress{64 * mib}, 68 * kib};  // 64 KiB + 4 KiB pages
    const PhysicalSegment large{PhysicalAddress{512 * mib}, 4 * mib};  // 2 MiB pages
    auto first = space.map({&small, 1}, attributes_at(0));
    auto second = space.map({&large, 1}, attributes_at(0));
    auto reservation = space.reserve_sparse_fixed(va_range(8 * gib, 8 * mib));
    REQUIRE(first);
    REQUIRE(second);
    REQUIRE(reservation);
    const PhysicalSegment chunk{PhysicalAddress{96 * mib}, 64 * kib};
    auto inside =
        space.map_fixed(va_range(8 * gib + 2 * mib, 64 * kib), {&chunk, 1}, attributes_at(0));
    REQUIRE(inside);
    std::size_t visited = 0, in_reservation = 0;
    space.visit_mappings([&](const MappingInfo &info) {
        ++visited;
        if (info.reservation == reservation->handle) ++in_reservation;
    });
    CHECK(visited == 4);
    CHECK(in_reservation == 1);
    CHECK(space.stats().tables.tables() > 4);
    const auto invalidations = rig.invalidator.seen.size();

    REQUIRE(space.destroy());
    CHECK(rig.invalidator.seen.size() == invalidations + 1);  // one for everything
    CHECK(rig.buddy.buddy.free_bytes() == free_at_start);     // root and every table back
    CHECK(rig.buddy.buddy.check_invariants());
    CHECK(space.translate(VirtualAddress{8 * gib}).error() == Error::invalid_argument);
    CHECK(space.destroy().error() == Error::invalid_argument);

    // Made again over the same storage: the old handles are stale, the space works.
    REQUIRE(
        space.create(rig.memory, rig.buddy.buddy, rig.invalidator, rig.storage(), rig.config()));
    CHECK(space.release(first->handle).error() == Error::stale_handle);
    CHECK(space.release(inside->handle).error() == Error::stale_handle);
    auto again = space.map({&large, 1}, attributes_at(0));
    REQUIRE(again);
    REQUIRE(space.destroy());
    CHECK(rig.buddy.buddy.free_bytes() == free_at_start);
}

TEST_CASE_TEMPLATE("spare table pages: a mapping that comes back reuses its tables", F, MmuV2,
                   MmuV3)
{
    Rig rig;
    const u64 free_at_start = rig.buddy.buddy.free_bytes();
    AddressSpace<F, HostMemory, testing::RecordingInvalidator> space;
    AddressSpaceConfig config = rig.config();
    config.spare_table_pages = 8;
    REQUIRE(space.create(rig.memory, rig.buddy.buddy, rig.invalidator, rig.storage(), config));
    const u64 root_only = rig.buddy.buddy.free_bytes();
    const PhysicalSegment buffer{PhysicalAddress{64 * mib}, 68 * kib};  // 64 KiB + 4 KiB pages
    const VirtualRange where = va_range(4 * gib, 68 * kib);
    auto first = space.map_fixed(where, {&buffer, 1}, attributes_at(0));
    REQUIRE(first);
    const u64 with_tables = rig.buddy.buddy.free_bytes();
    const u64 tables_bytes = space.stats().table_vram_bytes;
    CHECK(with_tables < root_only);
    REQUIRE(space.release(first->handle));
    // The emptied tables are kept for reuse: held (in the stats and from the buddy).
    CHECK(rig.buddy.buddy.free_bytes() == with_tables);
    CHECK(space.stats().table_vram_bytes == tables_bytes);
    CHECK(space.stats().spare_table_bytes == tables_bytes - 4 * kib);  // all but the root
    CHECK(space.stats().tables.tables() == 1);
    // The same mapping again takes them back: the buddy sees nothing.
    auto second = space.map_fixed(where, {&buffer, 1}, attributes_at(0));
    REQUIRE(second);
    CHECK(rig.buddy.buddy.free_bytes() == with_tables);
    CHECK(space.translate(VirtualAddress{4 * gib + 64 * kib})->address.value() ==
          64 * mib + 64 * kib);
    REQUIRE(space.check_invariants());
    // Destroy gives the spares back with everything else.
    REQUIRE(space.release(second->handle));
    REQUIRE(space.destroy());
    CHECK(rig.buddy.buddy.free_bytes() == free_at_start);
    CHECK(rig.buddy.buddy.check_invariants());
}

TEST_CASE_TEMPLATE("destroy over a caller's root leaves the root, its entries invalid", F, MmuV2,
                   MmuV3)
{
    Rig rig;
    std::array<BuddyBlock, 1> root_block{};
    REQUIRE(rig.buddy.buddy.allocate(4 * kib, {.contiguous = true}, root_block));
    const VramAddress root = root_block[0].address;
    const u64 free_at_start = rig.buddy.buddy.free_bytes();
    AddressSpace<F, HostMemory, testing::RecordingInvalidator> space;
    REQUIRE(space.create_with_root(rig.memory, rig.buddy.buddy, rig.invalidator, rig.storage(),
                                   rig.config(), root));
    const PhysicalSegment segment{PhysicalAddress{64 * mib}, 2 * mib + 4 * kib};
    REQUIRE(space.map({&segment, 1}, attributes_at(0)));
    REQUIRE(space.reserve_sparse(16 * mib));
    REQUIRE(space.destroy());
    CHECK(rig.buddy.buddy.free_bytes() == free_at_start);  // the root is not freed
    CHECK(rig.buddy.buddy.block_at(root)->address == root);
    std::array<u64, 512> words{};
    REQUIRE(rig.memory.read(root, std::span<u64>(words.data(), F::levels[0].table_bytes() / 8)));
    for (u64 word : words) CHECK(word == 0);
}

TEST_CASE_TEMPLATE("regression: replacing inside a reservation leaves one record per page", F,
                   MmuV2, MmuV3)
{
    Rig rig;
    AddressSpace<F, HostMemory, testing::RecordingInvalidator> space;
    REQUIRE(
        space.create(rig.memory, rig.buddy.buddy, rig.invalidator, rig.storage(), rig.config()));
    auto reservation = space.reserve_sparse_fixed(va_range(4 * gib, 4 * mib));
    REQUIRE(reservation);
    const PhysicalSegment old_pages{PhysicalAddress{64 * mib}, 64 * kib};
    const PhysicalSegment new_pages{PhysicalAddress{128 * mib}, 64 * kib};
    auto first = space.map_fixed(va_range(4 * gib, 64 * kib), {&old_pages, 1}, attributes_at(0));
    REQUIRE(first);
    auto second = space.map_fixed(va_range(4 * gib, 64 * kib), {&new_pages, 1}, attributes_at(0),
                                  {.replace = true});
    REQUIRE(second);
    CHECK(space.stats().mappings == 1);  // the first mapping was replaced
    CHECK(space.release(first->handle).error() == Error::stale_handle);
    CHECK(space.translate(VirtualAddress{4 * gib})->address == PhysicalAddress{128 * mib});
    // A replace that would cut a mapping in two is refused and changes nothing.
    const PhysicalSegment half{PhysicalAddress{192 * mib}, 32 * kib};
    CHECK(
        space
            .map_fixed(va_range(4 * gib, 32 * kib), {&half, 1}, attributes_at(0), {.replace = true})
            .error() == Error::overlap);
    CHECK(space.translate(VirtualAddress{4 * gib})->address == PhysicalAddress{128 * mib});
    REQUIRE(space.release(second->handle));
    CHECK(space.translate(VirtualAddress{4 * gib})->state == TranslationState::sparse);
    REQUIRE(space.release(reservation->handle));  // nothing leaked: the reservation is empty
    CHECK(space.stats().mappings == 0);
    CHECK(space.stats().sparse_reservations == 0);
}

TEST_CASE_TEMPLATE("regression: a VRAM address beyond the end of VRAM is refused", F, MmuV2, MmuV3)
{
    Rig rig;
    AddressSpaceConfig config = rig.config();
    config.vram_end = VramAddress{256 * mib};  // a 256 MiB GPU
    AddressSpace<F, HostMemory, testing::RecordingInvalidator> space;
    REQUIRE(space.create(rig.memory, rig.buddy.buddy, rig.invalidator, rig.storage(), config));
    const u64 free_before = rig.buddy.buddy.free_bytes();
    const PhysicalSegment beyond{PhysicalAddress{256 * gib}, 64 * kib};
    CHECK(space.map({&beyond, 1}, attributes_at(0)).error() == Error::out_of_range);
    const PhysicalSegment straddling{PhysicalAddress{256 * mib - 4 * kib}, 8 * kib};
    CHECK(space.map({&straddling, 1}, attributes_at(0)).error() == Error::out_of_range);
    CHECK(space.map_fixed(va_range(2 * gib, 64 * kib), {&beyond, 1}, attributes_at(0)).error() ==
          Error::out_of_range);
    CHECK(space.stats().mappings == 0);
    CHECK(rig.buddy.buddy.free_bytes() == free_before);
    const PhysicalSegment last{PhysicalAddress{256 * mib - 64 * kib}, 64 * kib};
    CHECK(space.map({&last, 1}, attributes_at(0)));  // up to the end is fine
    PageAttributes system = attributes_at(0);
    system.aperture = Aperture::system_coherent;  // system memory is not VRAM
    CHECK(space.map({&beyond, 1}, system));
}

TEST_CASE_TEMPLATE("regression: the segments say where; attributes.address is not used", F, MmuV2,
                   MmuV3)
{
    Rig rig;
    AddressSpace<F, HostMemory, testing::RecordingInvalidator> space;
    REQUIRE(
        space.create(rig.memory, rig.buddy.buddy, rig.invalidator, rig.storage(), rig.config()));
    const PhysicalSegment segment{PhysicalAddress{64 * mib}, 64 * kib};
    PageAttributes attributes;
    attributes.address = PhysicalAddress{0x123};  // garbage: it used to be validated
    auto mapping = space.map({&segment, 1}, attributes);
    REQUIRE(mapping);
    CHECK(space.translate(mapping->range.begin())->address == PhysicalAddress{64 * mib});
}

TEST_CASE_TEMPLATE("regression: pages unmapped back to sparse fold, so large pages fit again", F,
                   MmuV2, MmuV3)
{
    Rig rig;
    AddressSpace<F, HostMemory, testing::RecordingInvalidator> space;
    REQUIRE(
        space.create(rig.memory, rig.buddy.buddy, rig.invalidator, rig.storage(), rig.config()));
    auto reservation = space.reserve_sparse_fixed(va_range(4 * gib, 4 * mib));
    REQUIRE(reservation);
    const PageTableStats sparse_only = space.stats().tables;
    // History: 4 KiB and 64 KiB pages come and go inside the reservation.
    const PhysicalSegment page{PhysicalAddress{64 * mib}, 4 * kib};
    const PhysicalSegment chunk{PhysicalAddress{96 * mib}, 64 * kib};
    auto small =
        space.map_fixed(va_range(4 * gib + 12 * kib, 4 * kib), {&page, 1}, attributes_at(0));
    auto big = space.map_fixed(va_range(4 * gib + 2 * mib + 64 * kib, 64 * kib), {&chunk, 1},
                               attributes_at(0), {.page_sizes = {PageSize::size_64k()}});
    REQUIRE(small);
    REQUIRE(big);
    CHECK(space.stats().tables.tables() > sparse_only.tables());
    REQUIRE(space.release(small->handle));
    REQUIRE(space.release(big->handle));
    // The same tables as before the history: every all-sparse table folded away.
    CHECK(space.stats().tables.tables_per_level == sparse_only.tables_per_level);
    CHECK(space.stats().tables.big_tables == sparse_only.big_tables);
    CHECK(space.translate(VirtualAddress{4 * gib + 12 * kib})->state == TranslationState::sparse);
    // So a pinned 2 MiB page and a pinned 64 KiB page fit where they did before.
    const PhysicalSegment two{PhysicalAddress{128 * mib}, 2 * mib};
    auto huge = space.map_fixed(va_range(4 * gib, 2 * mib), {&two, 1}, attributes_at(0),
                                {.page_sizes = {PageSize::size_2m()}});
    REQUIRE(huge);
    auto again = space.map_fixed(va_range(4 * gib + 2 * mib, 64 * kib), {&chunk, 1},
                                 attributes_at(0), {.page_sizes = {PageSize::size_64k()}});
    REQUIRE(again);
    CHECK(space.check_invariants());
    REQUIRE(space.release(huge->handle));
    REQUIRE(space.release(again->handle));
    CHECK(space.stats().tables.tables_per_level == sparse_only.tables_per_level);
    REQUIRE(space.release(reservation->handle));
    CHECK(space.stats().tables.tables() == 1);  // the root alone
}
