// The README's code snippets, compiled and checked: if the library changes under them, this
// test fails before a reader copies something that no longer works.
#include <doctest/doctest.h>

#include <array>
#include <vector>

#include <gpummu/gpummu.hpp>

#include "instantiation/sim_spaces.hpp"
#include "instantiation/spaces.hpp"
#include "support/sim_fixture.hpp"

using namespace gpummu;

namespace {

// "Quick start", as a function that may return an error name.
const char *quick_start(u64 &word_out, unsigned &va_bits_out, mmu_v2::PteFields &fields_out)
{
    // A 4 KiB read-only page of VRAM at 0x12345000 as an MMU v3 PTE.
    Result<MmuV3::Pte> pte =
        MmuV3::Pte::map({.address = PhysicalAddress{0x1234'5000}, .read_only = true, .kind = 6});
    if (!pte) return error_name(pte.error());  // e.g. "misaligned"
    u64 word = pte->raw();                     // 0x0000000012345621
    word_out = word;

    // PD0: a dual PDE pointing at a 64 KiB page table (256 B aligned) and a 4 KiB one.
    auto pd0 = MmuV2::DualPde::point_to({Aperture::video, PhysicalAddress{0x20'0100}},
                                        {Aperture::video, PhysicalAddress{0x20'1000}});
    if (!pd0) return error_name(pd0.error());

    // Decode any word found in a dump.
    auto fields =
        mmu_v2::Pte::from_raw(0x0600000000000101).fields();  // valid, vram, 0x1000, kind 6
    fields_out = fields;

    // Pick the format at run time, run compile-time code below it.
    unsigned va_bits = with_format(MmuVersion::v3, [](auto f) { return decltype(f)::va_bits; });
    va_bits_out = va_bits;
    return nullptr;
}

// "VRAM buddy allocator", in a function returning Result<void> as a caller's would.
Result<void> buddy_example(std::size_t &block_count, u64 &allocated, bool &all_free_again)
{
    std::array regions{VramRange::from_size(VramAddress{0}, 1ull << 30).value()};
    std::vector<u64> metadata(
        BuddyAllocator::metadata_words(regions).value());  // or a static array
    BuddyAllocator vram = BuddyAllocator::create(regions, metadata).value();

    std::array<BuddyBlock, 64> blocks;  // the result is written here: no heap
    auto buffer = vram.allocate(3 * 1024 * 1024 + 4096, {.min_block_size = 64 * 1024}, blocks);
    if (!buffer) return failure(buffer.error());  // out_of_memory, invalid_argument, ...
    block_count = buffer->blocks.size();
    allocated = 0;
    auto use = [&](VramAddress, u64 size) { allocated += size; };
    for (BuddyBlock block : buffer->blocks) use(block.address, block.size);
    if (auto freed = vram.free(buffer->blocks, /*cleared=*/false); !freed) return freed;
    all_free_again = vram.free_bytes() == vram.total_bytes();
    return success();
}

// "No false refusals": every other page freed cleared, the rest dirty, then 2 MiB.
Result<void> merged_on_demand_example(bool &handed_out_dirty, u64 &zeroed)
{
    std::array regions{VramRange::from_size(VramAddress{0}, 16ull << 20).value()};
    std::vector<u64> metadata(BuddyAllocator::metadata_words(regions).value());
    BuddyAllocator vram = BuddyAllocator::create(regions, metadata).value();
    std::vector<BuddyBlock> pages(4096);
    for (BuddyBlock &page : pages) GPUMMU_TRY(vram.allocate(4096, {}, std::span(&page, 1)));
    for (std::size_t i = 0; i < pages.size(); ++i) GPUMMU_TRY(vram.free(pages[i], i % 2 == 0));
    std::array<BuddyBlock, 64> blocks;
    auto zero = [&zeroed](const BuddyBlock &block) { zeroed += block.size; };

    // Every other page freed cleared, the rest dirty: no two free buddies share a kind, yet a
    // 2 MiB block is there, merged on demand (and handed out dirty).
    auto big = vram.allocate(2 << 20, {.min_block_size = 2 << 20}, blocks);  // ok
    if (!big->blocks[0].cleared) zero(big->blocks[0]);

    handed_out_dirty = !big->blocks[0].cleared;
    return success();
}

// "GPU contexts", as a driver function over a GpuMm.
using Mm = testing::SimGpuRigStorage::Mm;
Result<void> context_example(Mm &mm, AddressSpaceStorage storage,
                             std::span<const PhysicalSegment> segments, VramAddress instance_block,
                             u64 &root, u64 &mapped)
{
    Mm::Context context;  // kept in place by the caller
    if (auto made = mm.create_context(context, storage, {.vram_budget = 1 << 20}); !made)
        return made;
    auto mapping = context.map(segments, PageAttributes{});  // VA chosen for large pages
    if (!mapping) return failure(mapping.error());
    auto pdb = mm.page_directory_base(context);  // for the channel's RAMIN
    if (!pdb) return failure(pdb.error());
    GPUMMU_TRY(write_page_directory_base(mm.pramin(), instance_block, *pdb));
    // ... the channel runs ...
    root = pdb->root.value();
    mapped = context.stats().mapped_bytes;
    GPUMMU_TRY(context.destroy());  // every table back to the buddy
    return success();
}

}  // namespace

// "Page tables and address spaces": an address space over a VRAM image.
struct Recorder {  // a TlbInvalidator; on a GPU this is hw/tlb.hpp
    unsigned invalidates = 0;
    Result<void> invalidate(const TlbInvalidation &)
    {
        ++invalidates;
        return success();
    }
};

// docs/consuming.md, "Compile time": the address space is compiled once per program, at the
// end of this file, and only declared here (Recorder has external linkage for that).
extern template class gpummu::AddressSpace<gpummu::MmuV2, gpummu::HostMemory, Recorder>;

namespace {

Result<void> address_space_example(Translation &seen, u64 &tables_after, unsigned &invalidates)
{
    std::vector<u64> image(64 << 20 >> 3);  // 64 MiB of "VRAM" in host memory
    HostMemory vram(image);
    std::array regions{VramRange::from_size(VramAddress{0}, 64 << 20).value()};
    std::vector<u64> buddy_words(BuddyAllocator::metadata_words(regions, 4096).value());
    auto buddy = BuddyAllocator::create(regions, buddy_words, 4096);
    if (!buddy) return failure(buddy.error());

    // Caller-supplied storage: nothing below allocates.
    std::vector<RangeNode> range_nodes(RangeAllocator::nodes_for(256));
    std::vector<PageTableNode> table_nodes(1024);
    std::vector<PageTableChildren> directories(64);
    std::vector<BigTableSlot> big_tables(64);
    std::vector<MappingRecord> handles(256);
    Recorder tlb;

    AddressSpace<MmuV2, HostMemory, Recorder> space;
    GPUMMU_TRY(space.create(
        vram, *buddy, tlb, {range_nodes, {table_nodes, directories}, big_tables, handles},
        {.space = VirtualRange::from_size(VirtualAddress{1ull << 32}, 1ull << 40).value(),
         .page_table = {architecture_record(Architecture::ampere).page_sizes}}));

    // 6 MiB of physically contiguous, 2 MiB-aligned memory: placed 2 MiB-aligned, 2 MiB pages.
    const PhysicalSegment buffer{PhysicalAddress{0x1'0000'0000}, 6 << 20};
    auto mapping = space.map({&buffer, 1}, {.read_only = true});
    if (!mapping) return failure(mapping.error());
    auto translation = space.translate(mapping->range.begin() + 0x1234);
    if (!translation) return failure(translation.error());
    seen = *translation;  // mapped, 2 MiB page, PA 0x1'0000'1234, read-only

    GPUMMU_TRY(space.release(mapping->handle));  // unmap, invalidate, free emptied tables
    u64 tables = space.stats().tables.tables();  // 1: only the root is left
    tables_after = tables;
    invalidates = tlb.invalidates;  // 2
    return success();
}

// "Bind jobs": the job part of the README's example; `space` is a created BindSpace.
template <class Space>
Result<void> bind_job_example(Space &space, MappingBacking &buffer, unsigned &steps_seen)
{
    const VirtualAddress base{0x4000'0000};
    auto range = [&](u64 offset, u64 size) {
        return VirtualRange::from_size(base + offset, size).value();
    };
    // One job: map the buffer, punch a 64 KiB hole, make 256 KiB read-only.
    const std::array<BindOperation, 3> job{
        BindOperation{
            .kind = BindOperation::Kind::map, .range = range(0, 2 << 20), .target = {&buffer, 0}},
        BindOperation{.kind = BindOperation::Kind::unmap, .range = range(0x80000, 0x10000)},
        BindOperation{
            .kind = BindOperation::Kind::protect,
            .range = range(0x100000, 0x40000),
            .change = {.fields = AttributeChange::read_only, .values = {.read_only = true}}}};
    auto prepared = space.prepare(job);  // validated, worst-case tables set aside; or refused
    if (!prepared) return failure(prepared.error());

    // Later, where nothing may allocate (a fence callback): cannot run out of memory.
    auto record = [&](const MappingStep &) { ++steps_seen; };
    auto batch = space.commit(std::move(*prepared), [&](const MappingStep &step) {
        record(step);  // mapped, remapped (prev + next), remapped, protected
    });
    if (!batch) return failure(batch.error());
    return space.flush(*batch);  // one TLB invalidate for the whole job
}

}  // namespace

TEST_CASE("README bind job example")
{
    std::vector<u64> image(64 << 20 >> 3);
    HostMemory vram(image);
    std::array regions{VramRange::from_size(VramAddress{0}, 32 << 20).value()};
    std::vector<u64> buddy_words(BuddyAllocator::metadata_words(regions, 4096).value());
    auto buddy = BuddyAllocator::create(regions, buddy_words, 4096);
    REQUIRE(buddy);
    std::vector<PageTableNode> table_nodes(256);
    std::vector<PageTableChildren> directories(32);
    std::vector<BigTableSlot> big_tables(16);
    std::vector<MappingNode> records(64), projected(64);
    std::vector<OrderedIndexNode> records_index(MappingRecords::index_nodes_for(64)),
        projected_index(MappingRecords::index_nodes_for(64));
    Recorder tlb;
    BindSpace<MmuV3, HostMemory, Recorder> space;
    REQUIRE(space.create(vram, *buddy, tlb,
                         {{table_nodes, directories},
                          big_tables,
                          records,
                          projected,
                          records_index,
                          projected_index},
                         {.space = VirtualRange::from_size(VirtualAddress{0}, 1ull << 40).value(),
                          .vram_end = VramAddress{64 << 20}}));
    // A buffer object whose 2 MiB live in two runs of VRAM.
    std::array layout{PhysicalSegment{PhysicalAddress{0x0200'0000}, 1 << 20},
                      PhysicalSegment{PhysicalAddress{0x0300'0000}, 1 << 20}};
    MappingBacking buffer(Aperture::video, layout);
    unsigned steps_seen = 0;
    REQUIRE(bind_job_example(space, buffer, steps_seen).has_value());
    CHECK(steps_seen == 4);
    CHECK(tlb.invalidates == 1);
    CHECK(space.records().count() == 4);
    auto translation = space.translate(VirtualAddress{0x4010'0000});
    REQUIRE(translation);
    CHECK(translation->address == PhysicalAddress{0x0300'0000});
    CHECK(translation->attributes.read_only);
    REQUIRE(space.destroy());
}

TEST_CASE("README address space example")
{
    Translation seen;
    u64 tables_after = 0;
    unsigned invalidates = 0;
    REQUIRE(address_space_example(seen, tables_after, invalidates).has_value());
    CHECK(seen.state == TranslationState::mapped);
    CHECK(seen.page_size == PageSize::size_2m());
    CHECK(seen.address.value() == 0x1'0000'1234);
    CHECK(seen.attributes.read_only);
    CHECK(tables_after == 1);
    CHECK(invalidates == 2);
}

TEST_CASE("README quick start")
{
    u64 word = 0;
    unsigned va_bits = 0;
    mmu_v2::PteFields fields;
    CHECK(quick_start(word, va_bits, fields) == nullptr);
    CHECK(word == 0x0000000012345621ull);
    CHECK(va_bits == 57);
    CHECK(fields.valid);
    CHECK(fields.aperture == Aperture::video);
    CHECK(fields.address == PhysicalAddress{0x1000});
    CHECK(fields.kind == 6);
}

TEST_CASE("README buddy example")
{
    std::size_t blocks = 0;
    u64 allocated = 0;
    bool all_free_again = false;
    REQUIRE(buddy_example(blocks, allocated, all_free_again));
    CHECK(allocated == 3 * 1024 * 1024 + 64 * 1024);  // rounded up to the 64 KiB minimum block
    CHECK(blocks == 3);                               // 2 MiB + 1 MiB + 64 KiB
    CHECK(all_free_again);
}

TEST_CASE("README no-false-refusal example")
{
    bool handed_out_dirty = false;
    u64 zeroed = 0;
    REQUIRE(merged_on_demand_example(handed_out_dirty, zeroed));
    CHECK(handed_out_dirty);
    CHECK(zeroed == 2u << 20);
}

TEST_CASE("README GPU contexts example")
{
    testing::SimGpuRig rig(sim::ga102);
    std::vector<RangeNode> range_nodes(RangeAllocator::nodes_for(16));
    std::vector<PageTableNode> nodes(256);
    std::vector<PageTableChildren> children(16);
    std::vector<BigTableSlot> slots(16);
    std::vector<MappingRecord> records(16);
    std::array<BuddyBlock, 2> blocks{};
    REQUIRE(rig.mm->buddy().allocate(2u << 20, {.contiguous = true}, std::span(&blocks[0], 1)));
    REQUIRE(rig.mm->buddy().allocate(4096, {}, std::span(&blocks[1], 1)));
    const u64 free_before = rig.mm->buddy().free_bytes();
    const PhysicalSegment segment{PhysicalAddress{blocks[0].address.value()}, 2u << 20};
    u64 root = 0, mapped = 0;
    REQUIRE(context_example(*rig.mm, {range_nodes, {nodes, children}, slots, records},
                            {&segment, 1}, blocks[1].address, root, mapped));
    CHECK(mapped == 2u << 20);
    CHECK(rig.mm->buddy().free_bytes() == free_before);  // the context gave everything back
    // The instance block names the context's (now freed) root, in the v2 format.
    auto word = rig.mm->pramin().read64(blocks[1].address + 0x200);
    REQUIRE(word);
    CHECK((*word & ~u64{0xFFF}) == root);
    CHECK((*word & 0xC00) == 0xC00);
}

// docs/consuming.md: the one translation unit that compiles the address space.
template class gpummu::AddressSpace<gpummu::MmuV2, gpummu::HostMemory, Recorder>;
