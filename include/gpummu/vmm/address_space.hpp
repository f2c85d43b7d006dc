// gpummu/vmm/address_space.hpp: one GPU virtual address space, ready to use.
//
// What it does
//   `AddressSpace<Format, Memory, Invalidator>` joins the pieces below it:
//
//       RangeAllocator (which VAs are taken)      mapping records (handles)
//               |                                          |
//       PageTable<Format> ---- BuddyTablePages ---- BuddyAllocator (VRAM for tables)
//               |
//       TableMemory (host image, PRAMIN, ...)      TlbInvalidator (registers, recorder)
//
//   - map(segments, attributes): picks a VA (aligned to the largest page size the physical
//     layout allows, so large pages can be used), writes the tables, invalidates, and
//     returns a handle. map_fixed(range, ...) does the same at a given VA; inside a sparse
//     reservation it maps over the sparse pages, and with `replace` over mappings there:
//     those the range covers whole are replaced (their handles go stale), one the range
//     would cut is refused with overlap, so every mapped page has exactly one record.
//   - reserve_sparse / reserve_sparse_fixed: a VA range whose pages read zero until mapped.
//   - release(handle): unmaps a mapping (pages inside a sparse reservation go back to
//     sparse) or drops a sparse reservation (one that still holds mappings is in_use),
//     invalidates, frees the emptied tables and the VA. Handles carry their space and a
//     generation: another space's handle is Error::foreign_handle, a released one
//     Error::stale_handle, even after its slot is reused.
//   - translate(va), stats().
//   Every mutation ends with the TLB invalidate done and emptied tables freed, so callers
//   hold no TlbBatch. `AnyAddressSpace` chooses the MMU format once at run time; everything
//   below it is compiled per format.
//
// What it does not do
//   - No locking. Storage (range nodes, table nodes, handles) is supplied by the caller.
//   - Its work is compiled in every TU that calls it, unless the TU declares the
//     instantiation `extern template` and one TU instantiates it (the members that carry
//     the work are defined below the class for that; see docs/consuming.md).
//   - If the invalidator fails (a device timeout) the tables already hold the change; the
//     error is returned and the operation is not rolled back (the device needs attention).
//
// Invariants
//   - Every live handle names a VA range that the range allocator holds (mappings inside a
//     sparse reservation use the reservation's VA) and that the page table maps as recorded.
//   - Failed calls other than invalidator failures leave VA, tables and handles unchanged.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <span>
#include <utility>

#include "gpummu/alloc/buddy.hpp"
#include "gpummu/alloc/range_allocator.hpp"
#include "gpummu/core/deferred.hpp"
#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/memory/table_pages.hpp"
#include "gpummu/paging/page_table.hpp"

namespace gpummu {

// Names one mapping or reservation of one address space. `space` identifies the issuing
// space (its record storage), so a handle given to another space is foreign_handle; the
// generation makes a released handle stale_handle, even after its slot is reused or the
// space is destroyed and made again over the same storage.
struct MappingHandle {
    u32 index = 0xFFFF'FFFFu;
    u32 generation = 0;
    std::uintptr_t space = 0;
    constexpr bool operator==(const MappingHandle &) const noexcept = default;
};

struct Mapping {
    MappingHandle handle{};
    VirtualRange range{};
};

// One slot per live mapping or sparse reservation.
struct MappingRecord {
    enum class Kind : u8 { free, mapping, sparse, mapping_in_sparse };
    VirtualRange range{};
    u32 generation = 0;
    u32 next_free = 0xFFFF'FFFFu;
    u32 parent = 0xFFFF'FFFFu;  // mapping_in_sparse: the reservation's slot
    u32 children = 0;           // sparse: mappings inside it
    Kind kind = Kind::free;
};

// What visit_mappings() reports for one live handle.
struct MappingInfo {
    MappingHandle handle{};
    VirtualRange range{};
    bool sparse_reservation = false;  // a reservation, not a mapping
    MappingHandle reservation{};      // a mapping inside a reservation: the reservation
};

struct AddressSpaceStorage {
    std::span<RangeNode> range_nodes;  // RangeAllocator::nodes_for(live ranges)
    PageTableStorage tables;           // see page_table_node.hpp for sizing
    std::span<BigTableSlot> big_table_pages;
    std::span<MappingRecord> mappings;  // one per live handle
};

struct AddressSpaceConfig {
    VirtualRange space{};  // the VAs this address space hands out (and accepts as fixed)
    PageTableConfig page_table{};
    // The end of VRAM: a video-aperture segment ending beyond it is out_of_range (the
    // default accepts any address the format can encode).
    VramAddress vram_end{~u64{0}};
    // The most VRAM this space's tables may hold at once (root included); past it a map
    // is out_of_memory. The default is no limit beyond the buddy's.
    u64 vram_budget = ~u64{0};
    // Emptied table pages kept for the next tables (BuddyTablePages::set_spare_limit, at
    // most 16): map/unmap churn then costs no buddy round trip per table, for up to this
    // many 4 KiB pages held out of the buddy (counted in the budget and table_vram_bytes;
    // given back by destroy, or when a promise needs them). 0: every page goes back.
    unsigned spare_table_pages = 0;
};

// Where map() and reserve_sparse() may place a range.
struct Placement {
    u64 alignment = 0;  // 0: the largest page size the physical layout allows
    VirtualAddress window_begin{0};
    VirtualAddress window_end{~u64{0}};
    bool top_down = false;
    PageSizeSet page_sizes{};  // as MapOptions::page_sizes
};

struct AddressSpaceStats {
    PageTableStats tables{};
    u64 mappings = 0;
    u64 sparse_reservations = 0;
    u64 mapped_bytes = 0;
    u64 tlb_invalidations = 0;
    u64 table_vram_bytes = 0;   // VRAM the tables hold from the buddy (whole host pages)
    u64 spare_table_bytes = 0;  // of which emptied pages kept for reuse (spare_table_pages)
    u64 range_nodes = 0;        // range-allocator tree nodes in use (of range_nodes storage)
};

template <MmuFormat F, TableMemory M, TlbInvalidator T>
class AddressSpace {
public:
    using Pages = BuddyTablePages<M>;
    using Table = PageTable<F, M, Pages>;
    using Format = F;

    // The address space keeps pointers to `memory`, `buddy`, `invalidator` and the storage:
    // they must outlive it. It is not movable once created (its page source is referenced
    // by its page table), hence the two-step construction into caller-provided memory:
    //     AddressSpace<...> space;  auto made = space.create(...);
    AddressSpace() noexcept = default;
    AddressSpace(const AddressSpace &) = delete;
    AddressSpace &operator=(const AddressSpace &) = delete;

    [[nodiscard]] Result<void> create(M &memory, BuddyAllocator &buddy, T &invalidator,
                                      AddressSpaceStorage storage,
                                      AddressSpaceConfig config) noexcept
    {
        return create_impl(memory, buddy, invalidator, storage, config, nullptr);
    }
    // Over a root page the caller owns (never freed), for example a BAR1 root.
    [[nodiscard]] Result<void> create_with_root(M &memory, BuddyAllocator &buddy, T &invalidator,
                                                AddressSpaceStorage storage,
                                                AddressSpaceConfig config,
                                                VramAddress root) noexcept
    {
        return create_impl(memory, buddy, invalidator, storage, config, &root);
    }

    [[nodiscard]] Result<Mapping> map(std::span<const PhysicalSegment> segments,
                                      const PageAttributes &attributes,
                                      Placement placement = {}) noexcept;

    [[nodiscard]] Result<Mapping> map_fixed(VirtualRange range,
                                            std::span<const PhysicalSegment> segments,
                                            const PageAttributes &attributes,
                                            MapOptions options = {}) noexcept;

    [[nodiscard]] Result<Mapping> reserve_sparse(u64 size, Placement placement = {}) noexcept;

    [[nodiscard]] Result<Mapping> reserve_sparse_fixed(VirtualRange range) noexcept;

    // Unmaps a mapping or drops a sparse reservation.
    [[nodiscard]] Result<void> release(MappingHandle handle) noexcept;

    [[nodiscard]] Result<Translation> translate(VirtualAddress va) const noexcept;
    // Ends the address space: unmaps every mapping and drops every sparse reservation
    // (their handles go stale), with one TLB invalidate for all of it, then frees every
    // table it made, root included, so all their VRAM is back in the buddy. A root the
    // caller owns (create_with_root, e.g. GSP's BAR1 root) is left in place, its entries
    // invalid again. Afterwards the object may be created again. Errors: invalid_argument
    // (not created); a device error from the invalidate or table writes (then the space is
    // half torn down: the device needs attention, as for any failed invalidate).
    [[nodiscard]] Result<void> destroy() noexcept;

    // The range a live handle names.
    [[nodiscard]] Result<VirtualRange> range_of(MappingHandle handle) const noexcept;

    // Calls visit(const MappingInfo &) for every live mapping and sparse reservation, in
    // slot order (not VA order). O(handle slots).
    template <class Visit>
    void visit_mappings(Visit &&visit) const noexcept
    {
        for (u32 slot = 0; slot < records_.size(); ++slot) {
            const MappingRecord &record = records_[slot];
            if (record.kind == MappingRecord::Kind::free) continue;
            MappingInfo info;
            info.handle = MappingHandle{slot, record.generation, space_tag()};
            info.range = record.range;
            info.sparse_reservation = record.kind == MappingRecord::Kind::sparse;
            if (record.kind == MappingRecord::Kind::mapping_in_sparse)
                info.reservation =
                    MappingHandle{record.parent, records_[record.parent].generation, space_tag()};
            visit(info);
        }
    }

    [[nodiscard]] AddressSpaceStats stats() const noexcept;
    // The root table ("no table" before create and after destroy).
    [[nodiscard]] TablePointer root() const noexcept;
    [[nodiscard]] bool created() const noexcept { return created_; }
    [[nodiscard]] Result<void> check_invariants() const noexcept;
    [[nodiscard]] Table &page_table() noexcept { return *table_; }

private:
    static constexpr u32 no_slot = 0xFFFF'FFFFu;
    static constexpr u32 foreign_owner = 0xFFFF'FFFEu;  // VA of an adopted root's pages

    [[nodiscard]] Result<void> create_impl(M &memory, BuddyAllocator &buddy, T &invalidator,
                                           AddressSpaceStorage storage, AddressSpaceConfig config,
                                           const VramAddress *root) noexcept;

    [[nodiscard]] Result<void> ready() const noexcept
    {
        return created_ ? success() : failure(Error::invalid_argument);
    }

    // VRAM segments must lie below the end of VRAM given at creation.
    [[nodiscard]] Result<void> check_segments(std::span<const PhysicalSegment> segments,
                                              const PageAttributes &attributes) const noexcept
    {
        if (attributes.aperture != Aperture::video) return success();
        for (const PhysicalSegment &segment : segments) {
            auto end = checked_add(segment.address.value(), segment.size);
            if (!end || *end > vram_end_.value()) return failure(Error::out_of_range);
        }
        return success();
    }

    // The largest power of two (4 KiB .. 512 MiB, at most the size) that the first
    // segment's physical address is aligned to: a VA with the same alignment lets the page
    // table use the same large pages.
    [[nodiscard]] static u64 natural_alignment(std::span<const PhysicalSegment> segments,
                                               u64 size) noexcept
    {
        u64 alignment = PageSize::size_512m().bytes();
        const u64 pa = segments.empty() ? 0 : segments.front().address.value();
        while (alignment > 4096 && (alignment > size || (pa & (alignment - 1)) != 0))
            alignment >>= 1;
        return alignment;
    }

    [[nodiscard]] static RangeRequest range_request(u64 size, const Placement &placement,
                                                    u64 alignment) noexcept
    {
        RangeRequest request;
        request.size = size;
        request.alignment = alignment;
        request.window_begin = placement.window_begin;
        request.window_end = placement.window_end;
        request.top_down = placement.top_down;
        return request;
    }

    // A handle slot and a VA range for `request`, or neither.
    struct Claim {
        u32 slot;
        VirtualRange range;
    };
    [[nodiscard]] Result<Claim> claim_range(const RangeRequest &request) noexcept
    {
        auto slot = take_slot();
        if (!slot) return failure(slot.error());
        RangeRequest owned = request;
        owned.owner = *slot;  // the VA range names its record: sparse_holding() in O(log n)
        auto range = ranges_->allocate(owned);
        if (!range) {
            give_back_slot(*slot);
            return failure(range.error());
        }
        return Claim{*slot, *range};
    }

    // A sparse reservation's pages go back to what they were before it: invalid, or sparse
    // where an adopted root's own sparse space was (GSP's BAR1 space), which is left as is.
    [[nodiscard]] Result<TlbBatch> clear_reservation(VirtualRange range) noexcept
    {
        const std::span<const ForeignRange> foreign = table_->foreign_ranges();
        if (foreign.empty()) return table_->clear_sparse(range);
        TlbBatch all = table_->empty_batch();
        u64 cursor = range.begin().value();
        const u64 end = range.end().value();
        while (cursor < end) {
            u64 piece_end = end;
            bool inside = false;
            for (const ForeignRange &sparse : foreign) {
                if (sparse.mapped || sparse.end <= cursor || sparse.begin >= end) continue;
                if (sparse.begin <= cursor) {
                    inside = true;
                    piece_end = std::min(sparse.end, end);
                    break;
                }
                piece_end = std::min(piece_end, sparse.begin);
            }
            if (!inside) {
                auto piece =
                    VirtualRange::from_bounds(VirtualAddress{cursor}, VirtualAddress{piece_end});
                Result<TlbBatch> cleared =
                    piece ? table_->clear_sparse(*piece) : failure(piece.error());
                if (!cleared) {
                    (void)flush(all);  // what was cleared before stays cleared
                    return failure(cleared.error());
                }
                GPUMMU_TRY(all.merge(std::move(*cleared)));
            }
            cursor = piece_end;
        }
        return all;
    }

    // Fixed VAs over an adopted root's pages are foreign_entry (not a mere overlap: no
    // record of this space holds them).
    [[nodiscard]] Result<void> check_foreign(VirtualRange range) const noexcept
    {
        for (const ForeignRange &foreign : table_->foreign_ranges())
            if (foreign.mapped && foreign.begin < range.end().value() &&
                range.begin().value() < foreign.end)
                return failure(Error::foreign_entry);
        return success();
    }

    [[nodiscard]] Result<u32> take_slot() noexcept
    {
        if (free_slot_ == no_slot) return failure(Error::out_of_storage);
        const u32 slot = free_slot_;
        free_slot_ = records_[slot].next_free;
        return slot;
    }
    // Drops a live record from the books (counts, its reservation's children) and frees
    // its slot; the caller has dealt with its pages and VA.
    void forget(u32 slot) noexcept
    {
        const MappingRecord &record = records_[slot];
        switch (record.kind) {
        case MappingRecord::Kind::mapping:
        case MappingRecord::Kind::mapping_in_sparse:
            --stats_.mappings;
            stats_.mapped_bytes -= record.range.size();
            if (record.kind == MappingRecord::Kind::mapping_in_sparse)
                --records_[record.parent].children;
            break;
        case MappingRecord::Kind::sparse: --stats_.sparse_reservations; break;
        case MappingRecord::Kind::free: break;
        }
        give_back_slot(slot);
    }
    void give_back_slot(u32 slot) noexcept
    {
        MappingRecord &record = records_[slot];
        const u32 generation = record.generation + 1;  // stale handles stay stale
        record = MappingRecord{};
        record.generation = generation;
        record.next_free = free_slot_;
        free_slot_ = slot;
    }
    [[nodiscard]] std::uintptr_t space_tag() const noexcept
    {
        return reinterpret_cast<std::uintptr_t>(records_.data());
    }
    [[nodiscard]] Result<u32> lookup(MappingHandle handle) const noexcept
    {
        if (handle.space != space_tag()) return failure(Error::foreign_handle);
        if (handle.index >= records_.size()) return failure(Error::stale_handle);
        const MappingRecord &record = records_[handle.index];
        if (record.kind == MappingRecord::Kind::free || record.generation != handle.generation)
            return failure(Error::stale_handle);
        return handle.index;
    }

    // The sparse reservation that contains all of `range`, if any: the VA range's owner
    // tag is its record's slot (O(log n), no scan of the records).
    [[nodiscard]] u32 sparse_holding(VirtualRange range) const noexcept
    {
        auto holder = ranges_->owner_of(range.begin());
        if (!holder || !holder->range.contains(range) || holder->owner >= records_.size())
            return no_slot;
        const MappingRecord &record = records_[holder->owner];
        return record.kind == MappingRecord::Kind::sparse && record.range == holder->range
                   ? holder->owner
                   : no_slot;
    }

    [[nodiscard]] Result<Mapping> finish_mapping(u32 slot, VirtualRange range,
                                                 MappingRecord::Kind kind, u32 parent,
                                                 TlbBatch &batch) noexcept
    {
        MappingRecord &record = records_[slot];
        record.kind = kind;
        record.range = range;
        record.parent = parent;
        if (parent != no_slot) ++records_[parent].children;
        ++stats_.mappings;
        stats_.mapped_bytes += range.size();
        GPUMMU_TRY(flush(batch));
        return Mapping{{slot, record.generation, space_tag()}, range};
    }

    [[nodiscard]] Result<Mapping> finish_sparse(u32 slot, VirtualRange range) noexcept
    {
        auto batch = table_->make_sparse(range);
        if (!batch) {
            (void)ranges_->free(range);
            give_back_slot(slot);
            return failure(batch.error());
        }
        MappingRecord &record = records_[slot];
        record.kind = MappingRecord::Kind::sparse;
        record.range = range;
        ++stats_.sparse_reservations;
        GPUMMU_TRY(flush(*batch));
        return Mapping{{slot, record.generation, space_tag()}, range};
    }

    [[nodiscard]] Result<void> flush(TlbBatch &batch) noexcept
    {
        if (batch.pending()) ++stats_.tlb_invalidations;
        auto done = table_->flush(batch, *invalidator_);
        if (!done) batch.abandon();  // reported to the caller; the batch cannot be retried here
        return done;
    }

    // Built by create(): the page table refers to the page source beside it.
    Deferred<Pages> pages_;
    Deferred<Table> table_;
    Deferred<RangeAllocator> ranges_;
    T *invalidator_ = nullptr;
    std::span<MappingRecord> records_{};
    u32 free_slot_ = no_slot;
    VirtualRange space_{};
    VramAddress vram_end_{~u64{0}};
    AddressSpaceStats stats_{};
    bool created_ = false;
};

// Member functions defined outside the class, so that an `extern template` declaration
// of an instantiation keeps them out of the including translation unit (docs/consuming.md).
template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto AddressSpace<F, M, T>::map(std::span<const PhysicalSegment> segments,
                                const PageAttributes &attributes, Placement placement) noexcept
    -> Result<Mapping>
{
    GPUMMU_TRY(ready());
    u64 size = 0;
    for (const PhysicalSegment &segment : segments) {
        auto sum = checked_add(size, segment.size);
        if (!sum) return failure(Error::arithmetic_overflow);
        size = *sum;
    }
    if (size == 0) return failure(Error::invalid_argument);
    GPUMMU_TRY(check_segments(segments, attributes));
    const RangeRequest request = range_request(
        size, placement,
        placement.alignment != 0 ? placement.alignment : natural_alignment(segments, size));
    auto claim = claim_range(request);
    if (!claim) return failure(claim.error());
    auto batch =
        table_->map(claim->range, segments, attributes, {.page_sizes = placement.page_sizes});
    if (!batch) {
        (void)ranges_->free(claim->range);
        give_back_slot(claim->slot);
        return failure(batch.error());
    }
    return finish_mapping(claim->slot, claim->range, MappingRecord::Kind::mapping, no_slot, *batch);
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto AddressSpace<F, M, T>::map_fixed(VirtualRange range, std::span<const PhysicalSegment> segments,
                                      const PageAttributes &attributes, MapOptions options) noexcept
    -> Result<Mapping>
{
    GPUMMU_TRY(ready());
    if (!space_.contains(range)) return failure(Error::out_of_range);
    GPUMMU_TRY(check_segments(segments, attributes));
    GPUMMU_TRY(check_foreign(range));
    auto slot = take_slot();
    if (!slot) return failure(slot.error());
    const u32 parent = sparse_holding(range);
    if (parent == no_slot) {
        auto reserved = ranges_->reserve(range, *slot);
        if (!reserved) {
            give_back_slot(*slot);
            return failure(reserved.error());
        }
    }
    // Replacing inside a reservation: a mapping the range covers whole is replaced (its
    // handle goes stale); one the range would cut is refused, so that every mapped page
    // keeps exactly one record (cutting mappings is for bind jobs).
    if (parent != no_slot && options.replace) {
        for (u32 other = 0; other < records_.size(); ++other) {
            const MappingRecord &record = records_[other];
            if (record.kind != MappingRecord::Kind::mapping_in_sparse || record.parent != parent ||
                !record.range.overlaps(range) || range.contains(record.range))
                continue;
            give_back_slot(*slot);
            return failure(Error::overlap);
        }
    }
    auto batch = table_->map(range, segments, attributes, options);
    if (!batch) {
        if (parent == no_slot) (void)ranges_->free(range);
        give_back_slot(*slot);
        return failure(batch.error());
    }
    if (parent != no_slot && options.replace) {
        for (u32 other = 0; other < records_.size(); ++other) {
            const MappingRecord &record = records_[other];
            if (other == *slot || record.kind != MappingRecord::Kind::mapping_in_sparse ||
                record.parent != parent || !range.contains(record.range))
                continue;
            forget(other);
        }
    }
    return finish_mapping(*slot, range,
                          parent == no_slot ? MappingRecord::Kind::mapping
                                            : MappingRecord::Kind::mapping_in_sparse,
                          parent, *batch);
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto AddressSpace<F, M, T>::reserve_sparse(u64 size, Placement placement) noexcept
    -> Result<Mapping>
{
    GPUMMU_TRY(ready());
    const RangeRequest request =
        range_request(size, placement, placement.alignment != 0 ? placement.alignment : 4096);
    auto claim = claim_range(request);
    if (!claim) return failure(claim.error());
    return finish_sparse(claim->slot, claim->range);
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto AddressSpace<F, M, T>::reserve_sparse_fixed(VirtualRange range) noexcept -> Result<Mapping>
{
    GPUMMU_TRY(ready());
    if (!space_.contains(range)) return failure(Error::out_of_range);
    GPUMMU_TRY(check_foreign(range));
    auto slot = take_slot();
    if (!slot) return failure(slot.error());
    auto reserved = ranges_->reserve(range, *slot);
    if (!reserved) {
        give_back_slot(*slot);
        return failure(reserved.error());
    }
    return finish_sparse(*slot, range);
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto AddressSpace<F, M, T>::release(MappingHandle handle) noexcept -> Result<void>
{
    GPUMMU_TRY(ready());
    auto slot = lookup(handle);
    if (!slot) return failure(slot.error());
    MappingRecord &record = records_[*slot];
    if (record.kind == MappingRecord::Kind::sparse && record.children != 0)
        return failure(Error::in_use);  // mappings inside it: release those first
    auto batch = record.kind == MappingRecord::Kind::sparse ? clear_reservation(record.range)
                                                            : table_->unmap(record.range);
    if (!batch) return failure(batch.error());
    if (record.kind != MappingRecord::Kind::mapping_in_sparse) (void)ranges_->free(record.range);
    forget(*slot);
    return flush(*batch);
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto AddressSpace<F, M, T>::translate(VirtualAddress va) const noexcept -> Result<Translation>
{
    GPUMMU_TRY(ready());
    return table_->translate(va);
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto AddressSpace<F, M, T>::destroy() noexcept -> Result<void>
{
    GPUMMU_TRY(ready());
    // One batch for everything (merges of batches of this space cannot fail): one invalidate.
    TlbBatch all = table_->empty_batch();
    auto collect = [&](Result<TlbBatch> batch) -> Result<void> {
        if (!batch) return failure(batch.error());
        return all.merge(std::move(*batch));
    };
    auto fail = [&](Error error) -> Result<void> {
        all.abandon();
        return failure(error);
    };
    // Mappings first (those inside a reservation turn sparse), then the reservations.
    for (MappingRecord::Kind pass : {MappingRecord::Kind::mapping, MappingRecord::Kind::sparse}) {
        for (u32 slot = 0; slot < records_.size(); ++slot) {
            MappingRecord &record = records_[slot];
            const bool mapping = record.kind == MappingRecord::Kind::mapping ||
                                 record.kind == MappingRecord::Kind::mapping_in_sparse;
            if (pass == MappingRecord::Kind::mapping ? !mapping
                                                     : record.kind != MappingRecord::Kind::sparse)
                continue;
            auto collected =
                collect(mapping ? table_->unmap(record.range) : clear_reservation(record.range));
            if (!collected) return fail(collected.error());
            if (record.kind != MappingRecord::Kind::mapping_in_sparse)
                (void)ranges_->free(record.range);
            forget(slot);
        }
    }
    GPUMMU_TRY(flush(all));
    GPUMMU_TRY(table_->release_root());
    table_.reset();
    pages_.reset();
    ranges_.reset();
    invalidator_ = nullptr;
    stats_ = AddressSpaceStats{};
    created_ = false;
    return success();
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto AddressSpace<F, M, T>::range_of(MappingHandle handle) const noexcept -> Result<VirtualRange>
{
    auto slot = lookup(handle);
    if (!slot) return failure(slot.error());
    return records_[*slot].range;
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto AddressSpace<F, M, T>::stats() const noexcept -> AddressSpaceStats
{
    AddressSpaceStats out = stats_;
    if (!created_) return out;
    out.tables = table_->stats();
    out.table_vram_bytes = (*pages_).vram_bytes();
    out.spare_table_bytes = (*pages_).spare_pages() * Pages::page_bytes;
    out.range_nodes = ranges_->nodes_in_use();
    return out;
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto AddressSpace<F, M, T>::root() const noexcept -> TablePointer
{
    return created_ ? table_->root() : TablePointer{};
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto AddressSpace<F, M, T>::check_invariants() const noexcept -> Result<void>
{
    GPUMMU_TRY(ready());
    GPUMMU_TRY(ranges_->check_invariants());
    return table_->check_invariants();
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto AddressSpace<F, M, T>::create_impl(M &memory, BuddyAllocator &buddy, T &invalidator,
                                        AddressSpaceStorage storage, AddressSpaceConfig config,
                                        const VramAddress *root) noexcept -> Result<void>
{
    if (created_) return failure(Error::invalid_argument);
    if (storage.mappings.empty() || storage.mappings.size() >= no_slot)
        return failure(Error::invalid_argument);
    if ((F::va_bits < 64) && config.space.end().value() > (u64{1} << F::va_bits))
        return failure(Error::out_of_range);
    auto ranges = RangeAllocator::create(config.space, storage.range_nodes);
    if (!ranges) return failure(ranges.error());
    pages_.emplace(buddy, memory, storage.big_table_pages);
    (*pages_).set_budget(config.vram_budget);
    (*pages_).set_spare_limit(config.spare_table_pages);
    auto table = root == nullptr
                     ? Table::create(memory, *pages_, storage.tables, config.page_table)
                     : Table::with_root(memory, *pages_, storage.tables, *root, config.page_table);
    if (!table) {
        pages_.reset();
        return failure(table.error());
    }
    // An adopted root's pages (GSP's, under BAR1) are never handed out: their VAs are
    // taken in the range allocator under an owner no record has.
    for (const ForeignRange &foreign : table->foreign_ranges()) {
        if (!foreign.mapped) continue;
        const u64 begin = std::max(foreign.begin, config.space.begin().value());
        const u64 end = std::min(foreign.end, config.space.end().value());
        if (begin >= end) continue;
        auto taken = VirtualRange::from_bounds(VirtualAddress{begin}, VirtualAddress{end});
        Result<VirtualRange> reserved =
            taken ? ranges->reserve(*taken, foreign_owner) : failure(taken.error());
        if (!reserved) {
            (void)table->release_root();
            pages_.reset();
            return failure(reserved.error());
        }
    }
    ranges_.emplace(std::move(*ranges));
    table_.emplace(std::move(*table));
    invalidator_ = &invalidator;
    records_ = storage.mappings;
    for (std::size_t i = 0; i < records_.size(); ++i) {
        // Generations carry on from whatever the storage held (even garbage), one up:
        // handles of an earlier space over this storage stay stale.
        const u32 generation = records_[i].generation + 1;
        records_[i] = MappingRecord{};
        records_[i].generation = generation;
        records_[i].next_free = i + 1 < records_.size() ? static_cast<u32>(i + 1) : no_slot;
    }
    free_slot_ = 0;
    space_ = config.space;
    vram_end_ = config.vram_end;
    created_ = true;
    return success();
}

// The MMU format chosen at run time (from the chip); each format's code is compiled.
template <TableMemory M, TlbInvalidator T>
class AnyAddressSpace {
public:
    AnyAddressSpace() noexcept = default;
    AnyAddressSpace(const AnyAddressSpace &) = delete;
    AnyAddressSpace &operator=(const AnyAddressSpace &) = delete;

    [[nodiscard]] Result<void> create(MmuVersion version, M &memory, BuddyAllocator &buddy,
                                      T &invalidator, AddressSpaceStorage storage,
                                      AddressSpaceConfig config) noexcept
    {
        if (created()) return failure(Error::invalid_argument);
        version_ = version;
        return visit(
            [&](auto &space) { return space.create(memory, buddy, invalidator, storage, config); });
    }
    [[nodiscard]] Result<void> create_with_root(MmuVersion version, M &memory,
                                                BuddyAllocator &buddy, T &invalidator,
                                                AddressSpaceStorage storage,
                                                AddressSpaceConfig config,
                                                VramAddress root) noexcept
    {
        if (created()) return failure(Error::invalid_argument);
        version_ = version;
        return visit([&](auto &space) {
            return space.create_with_root(memory, buddy, invalidator, storage, config, root);
        });
    }
    [[nodiscard]] MmuVersion version() const noexcept { return version_; }
    [[nodiscard]] bool created() const noexcept { return v2_.created() || v3_.created(); }

    [[nodiscard]] Result<Mapping> map(std::span<const PhysicalSegment> segments,
                                      const PageAttributes &attributes,
                                      Placement placement = {}) noexcept
    {
        return visit([&](auto &space) { return space.map(segments, attributes, placement); });
    }
    [[nodiscard]] Result<Mapping> map_fixed(VirtualRange range,
                                            std::span<const PhysicalSegment> segments,
                                            const PageAttributes &attributes,
                                            MapOptions options = {}) noexcept
    {
        return visit(
            [&](auto &space) { return space.map_fixed(range, segments, attributes, options); });
    }
    [[nodiscard]] Result<Mapping> reserve_sparse(u64 size, Placement placement = {}) noexcept
    {
        return visit([&](auto &space) { return space.reserve_sparse(size, placement); });
    }
    [[nodiscard]] Result<Mapping> reserve_sparse_fixed(VirtualRange range) noexcept
    {
        return visit([&](auto &space) { return space.reserve_sparse_fixed(range); });
    }
    [[nodiscard]] Result<void> release(MappingHandle handle) noexcept
    {
        return visit([&](auto &space) { return space.release(handle); });
    }
    [[nodiscard]] Result<void> destroy() noexcept
    {
        return visit([&](auto &space) { return space.destroy(); });
    }
    [[nodiscard]] Result<Translation> translate(VirtualAddress va) const noexcept
    {
        return visit([&](const auto &space) { return space.translate(va); });
    }
    [[nodiscard]] Result<VirtualRange> range_of(MappingHandle handle) const noexcept
    {
        return visit([&](const auto &space) { return space.range_of(handle); });
    }
    template <class Visit>
    void visit_mappings(Visit &&visit_mapping) const noexcept
    {
        visit([&](const auto &space) { space.visit_mappings(visit_mapping); });
    }
    // The page table of the format chosen: calls with(table) with PageTable<MmuV2, ...> or
    // PageTable<MmuV3, ...>, as a generic lambda.
    template <class With>
    decltype(auto) with_page_table(With &&with) noexcept
    {
        return visit([&](auto &space) -> decltype(auto) { return with(space.page_table()); });
    }
    [[nodiscard]] AddressSpaceStats stats() const noexcept
    {
        return visit([&](const auto &space) { return space.stats(); });
    }
    [[nodiscard]] TablePointer root() const noexcept
    {
        return visit([&](const auto &space) { return space.root(); });
    }
    [[nodiscard]] Result<void> check_invariants() const noexcept
    {
        return visit([&](const auto &space) { return space.check_invariants(); });
    }

private:
    template <class Visit>
    decltype(auto) visit(Visit &&visit_space) noexcept
    {
        if (version_ == MmuVersion::v2) return visit_space(v2_);
        return visit_space(v3_);
    }
    template <class Visit>
    decltype(auto) visit(Visit &&visit_space) const noexcept
    {
        if (version_ == MmuVersion::v2) return visit_space(v2_);
        return visit_space(v3_);
    }

    MmuVersion version_ = MmuVersion::v2;
    AddressSpace<MmuV2, M, T> v2_;
    AddressSpace<MmuV3, M, T> v3_;
};

}  // namespace gpummu
