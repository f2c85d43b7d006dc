// vmm/address_space.hpp and paging/page_table.hpp used through `extern template`: this
// translation unit compiles none of AddressSpace's and PageTable's work (check_symbols.sh checks
// its object file for that), and the space behaves as when the members are compiled here.
#include <doctest/doctest.h>

#include <array>
#include <vector>

#include "gpummu/format/mmu_version.hpp"
#include "spaces.hpp"
#include "support/buddy_fixture.hpp"
#include "support/space_storage.hpp"

using namespace gpummu;

namespace {
constexpr u64 mib = 1024 * 1024, gib = 1024 * mib;
}  // namespace

TEST_CASE_TEMPLATE("an extern-declared address space maps, translates and is destroyed", F, MmuV2,
                   MmuV3)
{
    std::vector<u64> image(16 * mib / 8, 0);
    HostMemory memory{image};
    auto buddy = testing::BuddyFixture::make({testing::range_of(0, 16 * mib)});
    const u64 free_before = buddy.buddy.stats().free_bytes;
    testing::RecordingInvalidator invalidator;
    testing::SpaceStorage storage(8, 256, 16);
    const AddressSpaceConfig config{testing::va_range(gib, 64 * gib),
                                    {architecture_record(Architecture::ampere).page_sizes}};

    testing::HostSpace<F> space;
    REQUIRE(space.create(memory, buddy.buddy, invalidator, storage.get(), config).has_value());
    const PhysicalSegment segment{PhysicalAddress{4 * gib}, 4 * mib};
    PageAttributes attributes;
    auto mapping = space.map({&segment, 1}, attributes);
    REQUIRE(mapping.has_value());
    auto translation = space.translate(mapping->range.begin() + 2 * mib + 16);
    REQUIRE(translation.has_value());
    CHECK(translation->page_size == PageSize::size_2m());
    CHECK(translation->address.value() == 4 * gib + 2 * mib + 16);
    CHECK(space.stats().mappings == 1);
    REQUIRE(space.check_invariants().has_value());
    REQUIRE(space.release(mapping->handle).has_value());
    CHECK(space.release(mapping->handle).error() == Error::stale_handle);
    CHECK(space.translate(mapping->range.begin())->state == TranslationState::unmapped);
    CHECK(invalidator.seen.size() == 2);
    REQUIRE(space.destroy().has_value());
    CHECK(buddy.buddy.stats().free_bytes == free_before);
}

TEST_CASE("an extern-declared page table maps, unmaps and gives its tables back")
{
    std::vector<u64> image(16 * mib / 8, 0);
    HostMemory memory{image};
    auto buddy = testing::BuddyFixture::make({testing::range_of(0, 16 * mib)});
    const u64 free_before = buddy.buddy.stats().free_bytes;
    std::vector<BigTableSlot> slots(16);
    BuddyTablePages<HostMemory> pages(buddy.buddy, memory, slots);
    std::vector<PageTableNode> nodes(64);
    std::vector<PageTableChildren> children(8);
    testing::RecordingInvalidator invalidator;

    auto table = testing::HostTable::create(memory, pages, {nodes, children}, {});
    REQUIRE(table.has_value());
    const VirtualRange range = testing::va_range(gib, 64 * 1024);
    PageAttributes attributes;
    attributes.address = PhysicalAddress{8 * mib};
    auto mapped = table->map(range, attributes);
    REQUIRE(mapped.has_value());
    REQUIRE(table->flush(*mapped, invalidator).has_value());
    CHECK(table->translate(range.begin() + 4096)->address.value() == 8 * mib + 4096);
    REQUIRE(table->check_invariants().has_value());
    auto unmapped = table->unmap(range);
    REQUIRE(unmapped.has_value());
    REQUIRE(table->flush(*unmapped, invalidator).has_value());
    CHECK(table->translate(range.begin())->state == TranslationState::unmapped);
    REQUIRE(table->release_root().has_value());
    CHECK(buddy.buddy.stats().free_bytes == free_before);
    CHECK(invalidator.seen.size() == 2);
}

TEST_CASE("an extern-declared bind space prepares, commits and is destroyed")
{
    std::vector<u64> image(16 * mib / 8, 0);
    HostMemory memory{image};
    auto buddy = testing::BuddyFixture::make({testing::range_of(0, 16 * mib)});
    const u64 free_before = buddy.buddy.stats().free_bytes;
    testing::RecordingInvalidator invalidator;
    testing::BindStorage storage(64, 8, 8, 16);
    BindSpaceConfig config;
    config.space = testing::va_range(0, u64{1} << 40);
    config.vram_end = VramAddress{16 * mib};

    testing::HostBindSpace space;
    REQUIRE(space.create(memory, buddy.buddy, invalidator, storage.get(), config).has_value());
    const std::array layout{PhysicalSegment{PhysicalAddress{4 * gib}, 2 * mib}};
    MappingBacking buffer(Aperture::system_coherent, layout);
    std::array<BindOperation, 2> job;
    job[0].kind = BindOperation::Kind::map;
    job[0].range = testing::va_range(gib, 2 * mib);
    job[0].target = {&buffer, 0};
    job[1].kind = BindOperation::Kind::unmap;
    job[1].range = testing::va_range(gib + mib, 64 * 1024);
    auto prepared = space.prepare(job);
    REQUIRE(prepared.has_value());
    std::size_t steps = 0;
    auto batch = space.commit(std::move(*prepared), [&steps](const MappingStep &) { ++steps; });
    REQUIRE(batch.has_value());
    REQUIRE(space.flush(*batch).has_value());
    CHECK(steps == 2);  // mapped, then cut by the unmap
    CHECK(space.translate(VirtualAddress{gib + 4096})->address.value() == 4 * gib + 4096);
    CHECK(space.translate(VirtualAddress{gib + mib})->state == TranslationState::unmapped);
    CHECK(space.records().count() == 2);  // the two sides of the cut
    REQUIRE(space.check_invariants().has_value());
    CHECK(invalidator.seen.size() == 1);
    REQUIRE(space.destroy().has_value());
    CHECK(buddy.buddy.stats().free_bytes == free_before);
}
