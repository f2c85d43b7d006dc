// gpummu/vmm/bind_job.hpp: VM_BIND-style operation lists over one address space.
//
// What it does
//   `BindSpace<Format, Memory, Invalidator>` is an address space driven by bind jobs, the
//   way Vulkan sparse binding and VM_BIND (Xe, nouveau, panthor, msm) drive one: the
//   driver chooses the VAs, and a job is an ordered list of operations that takes effect
//   as a whole.
//
//       prepare(job A) --+                          (validated, tables reserved)
//       prepare(job B) --+--> commit(A) --> commit(B)   (in order, no allocation)
//                        +--> cancel(B)                 (the newest may be cancelled)
//
//   - Operations: map (a backing at an offset, or raw physical memory; with `replace`
//     over mapped pages, the records it cuts keep their remainders), unmap of any range
//     whose pages are all mapped (records cut at its edges), protect (new attributes for
//     mapped pages, physical addresses unchanged), rebind (rewrite the pages of the
//     records in a range from their backings' current layout: after eviction or
//     defragmentation moved the bytes, see MappingBacking::relocate).
//   - prepare(job) validates every operation against the records as the jobs prepared
//     before it and its own earlier operations leave them (mapping_records.hpp), then
//     reserves everything the job can need: the worst case of table pages
//     (PageTable::tables_needed, summed over its operations) taken from the buddy now
//     into the job's TableReserve, and page-table node slots. A failed prepare leaves no
//     trace. Reservations of several prepared jobs are disjoint: each stays valid
//     whatever the jobs committed before it do.
//   - commit(job) applies the job (the oldest prepared one first) to the records and the
//     tables, drawing table pages only from its reserve, reports the record steps
//     (unmapped / remapped with previous and next / mapped / protected) and returns one
//     TlbBatch for the whole job; a protect that takes access away marks it ack-globally
//     + sys-membar. Unused reserved pages go back to the buddy. commit fails only on a
//     device error (then the space needs attention, as for any failed table write).
//   - Keep hints: a protect that leaves a record's attributes as they are neither cuts
//     it nor rewrites its pages.
//   - Queries: records() (the committed records: find by VA, visit in VA order), and each
//     MappingBacking lists its records across every space.
//
// What it does not do
//   - No VA allocation (vmm/address_space.hpp hands VAs out), no sparse ranges yet
//     (make_sparse / clear_sparse operations are to come), no locking.
//   - flush(batch) finishes the batch and frees the tables the commits unlinked: pass it
//     every batch (merged) since the last flush, as for PageTable::flush.
//   - Reserves are worst cases: a map reserves one table per entry it touches at every
//     level (4 KiB + 256 bytes per 2 MiB of VA, about 0.2%), unmap two per level; they
//     are held only between prepare and commit.
//
// Invariants
//   - Every mapped page of the tables belongs to exactly one committed record and shows
//     that record's backing bytes (or physical address) with its attributes.
//   - The projected records equal the committed ones with every outstanding job applied.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <utility>

#include "gpummu/alloc/buddy.hpp"
#include "gpummu/core/deferred.hpp"
#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/memory/table_pages.hpp"
#include "gpummu/paging/page_table.hpp"
#include "gpummu/vmm/mapping_records.hpp"

namespace gpummu {

struct BindOperation {
    enum class Kind : u8 { map, unmap, protect, rebind };
    Kind kind = Kind::map;
    VirtualRange range{};
    MappingTarget target{};       // map
    PageAttributes attributes{};  // map: flags and aperture (a backing's aperture wins);
                                  // without a backing, `address` is the PA of the range
    bool replace = false;         // map: over mapped pages
    PageSizeSet page_sizes{};     // map: as MapOptions::page_sizes
    AttributeChange change{};     // protect
};

struct BindSpaceStorage {
    PageTableStorage tables;  // see page_table_node.hpp for sizing
    std::span<BigTableSlot> big_table_pages;
    std::span<MappingNode> records;    // one node per committed record
    std::span<MappingNode> projected;  // as many: the records once prepared jobs commit
};

struct BindSpaceConfig {
    VirtualRange space{};  // the VAs jobs may name
    PageTableConfig page_table{};
    VramAddress vram_end{~u64{0}};  // video-aperture memory must end below it
};

template <MmuFormat F, TableMemory M, TlbInvalidator T>
class BindSpace {
public:
    using Pages = ReservingTablePages<M>;
    using Table = PageTable<F, M, Pages>;
    using Needs = typename Table::TableNeeds;
    static constexpr std::size_t max_outstanding = 16;  // prepared, not yet committed

    // A prepared job: its operations (caller storage, unchanged until commit or cancel),
    // its reserve and its place in the queue. Move-only; commit or cancel it.
    class [[nodiscard]] PreparedJob {
    public:
        PreparedJob(PreparedJob &&other) noexcept
            : owner_(std::exchange(other.owner_, nullptr)),
              sequence_(other.sequence_),
              operations_(other.operations_),
              reserve_(std::move(other.reserve_)),
              needs_(other.needs_)
        {
        }
        PreparedJob(const PreparedJob &) = delete;
        PreparedJob &operator=(const PreparedJob &) = delete;
        ~PreparedJob() { GPUMMU_ASSERT(owner_ == nullptr); }  // committed or cancelled
        [[nodiscard]] const Needs &reserved() const noexcept { return needs_; }

    private:
        friend class BindSpace;
        PreparedJob(BindSpace *owner, u64 sequence, std::span<const BindOperation> operations,
                    std::span<TablePage> reserve_storage) noexcept
            : owner_(owner),
              sequence_(sequence),
              operations_(operations),
              reserve_(reserve_storage)
        {
        }
        BindSpace *owner_ = nullptr;
        u64 sequence_ = 0;
        std::span<const BindOperation> operations_{};
        TableReserve reserve_{};
        Needs needs_{};
    };

    BindSpace() noexcept = default;
    BindSpace(const BindSpace &) = delete;
    BindSpace &operator=(const BindSpace &) = delete;

    [[nodiscard]] Result<void> create(M &memory, BuddyAllocator &buddy, T &invalidator,
                                      BindSpaceStorage storage, BindSpaceConfig config) noexcept
    {
        if (created_ || storage.records.size() != storage.projected.size() ||
            storage.records.empty())
            return failure(Error::invalid_argument);
        if ((F::va_bits < 64) && config.space.end().value() > (u64{1} << F::va_bits))
            return failure(Error::out_of_range);
        GPUMMU_TRY(records_.create(storage.records));
        if (auto made = projected_.create(storage.projected, 0x5bd1e995u, false); !made) {
            records_.destroy();
            return made;
        }
        buddy_pages_.emplace(buddy, memory, storage.big_table_pages);
        pages_.emplace(*buddy_pages_);
        auto table = Table::create(memory, *pages_, storage.tables, config.page_table);
        if (!table) {
            pages_.reset();
            buddy_pages_.reset();
            records_.destroy();
            projected_.destroy();
            return failure(table.error());
        }
        table_.emplace(std::move(*table));
        invalidator_ = &invalidator;
        config_ = config;
        next_sequence_ = oldest_ = 0;
        outstanding_ = 0;
        reserved_nodes_ = reserved_blocks_ = 0;
        created_ = true;
        return success();
    }

    // Validates `operations` and reserves what committing them needs; `reserve_storage`
    // holds the addresses of the reserved table pages (PageTable::tables_needed summed
    // over the operations: pages() + big_tables). Errors: invalid_argument (not created,
    // empty job, too many outstanding jobs), out_of_range (outside the space, past VRAM or
    // the backing), misaligned, already_mapped, not_mapped, page_size_not_supported or an
    // encoding error of the format, out_of_storage (records, table nodes or reserve
    // storage), out_of_memory (VRAM for the reserve). Nothing changes on error.
    [[nodiscard]] Result<PreparedJob> prepare(std::span<const BindOperation> operations,
                                              std::span<TablePage> reserve_storage) noexcept
    {
        if (!created_ || operations.empty() || outstanding_ == max_outstanding)
            return failure(Error::invalid_argument);
        for (const BindOperation &operation : operations) GPUMMU_TRY(check_operation(operation));
        const Needs needs = job_needs(operations);
        if (needs.nodes() + reserved_nodes_ > table_->spare_nodes() ||
            needs.directories + reserved_blocks_ > table_->spare_child_blocks())
            return failure(Error::out_of_storage);
        for (std::size_t i = 0; i < operations.size(); ++i) {
            if (auto applied = apply_projected(operations[i]); !applied) {
                rebuild_projected();
                return failure(applied.error());
            }
        }
        PreparedJob job(this, next_sequence_, operations, reserve_storage);
        if (auto reserved = (*pages_).reserve(job.reserve_, needs.pages(), needs.big_tables);
            !reserved) {
            rebuild_projected();
            job.owner_ = nullptr;
            return failure(reserved.error());
        }
        job.needs_ = needs;
        reserved_nodes_ += needs.nodes();
        reserved_blocks_ += needs.directories;
        queue_[next_sequence_ % max_outstanding] = operations;
        ++next_sequence_;
        ++outstanding_;
        return job;
    }

    // Applies the oldest prepared job; sink(const MappingStep &) hears every record step.
    // Errors: invalid_argument (not this space's job, or not the oldest), device errors.
    template <class Sink>
    [[nodiscard]] Result<TlbBatch> commit(PreparedJob &&job, Sink &&sink) noexcept
    {
        if (job.owner_ != this || job.sequence_ != oldest_) return failure(Error::invalid_argument);
        TlbBatch all = table_->empty_batch();
        (*pages_).draw_from(&job.reserve_);
        Result<void> applied = success();
        for (const BindOperation &operation : job.operations_) {
            applied = apply_committed(operation, all, sink);
            if (!applied) break;
        }
        (*pages_).draw_from(nullptr);
        finish_job(job);
        ++oldest_;
        if (!applied) {
            all.abandon();  // a device error: the tables of the job's ranges are undefined
            // The projected records held the whole job; the committed ones stop where the
            // error hit. Later prepares must see what is committed plus what is queued.
            rebuild_projected();
            return failure(applied.error());
        }
        return all;
    }
    // Drops the newest prepared job: its reserve goes back. Errors: invalid_argument (not
    // this space's job), in_use (a job prepared after it is still outstanding: cancel that
    // one first, since it was validated against this one's result).
    [[nodiscard]] Result<void> cancel(PreparedJob &&job) noexcept
    {
        if (job.owner_ != this) return failure(Error::invalid_argument);
        if (job.sequence_ + 1 != next_sequence_) return failure(Error::in_use);
        --next_sequence_;
        finish_job(job);
        rebuild_projected();
        return success();
    }

    // Finishes `batch` (every commit's batch since the last flush, merged) and frees the
    // tables the commits unlinked.
    [[nodiscard]] Result<void> flush(TlbBatch &batch) noexcept
    {
        return table_->flush(batch, *invalidator_);
    }

    // Unmaps everything (one invalidate) and frees every table, root included. Errors:
    // invalid_argument (not created), in_use (prepared jobs are outstanding), device errors.
    [[nodiscard]] Result<void> destroy() noexcept
    {
        if (!created_) return failure(Error::invalid_argument);
        if (outstanding_ != 0) return failure(Error::in_use);
        TlbBatch all = table_->empty_batch();
        Result<void> failed = success();
        records_.visit(VirtualAddress{0}, [&](const MappingView &view) {
            auto batch = table_->unmap(view.range);
            if (batch) failed = all.merge(std::move(*batch));
            if (!batch) failed = failure(batch.error());
            return failed.has_value();
        });
        if (!failed) {
            all.abandon();
            return failed;
        }
        GPUMMU_TRY(flush(all));
        GPUMMU_TRY(table_->release_root());
        records_.destroy();
        projected_.destroy();
        table_.reset();
        pages_.reset();
        buddy_pages_.reset();
        created_ = false;
        return success();
    }

    [[nodiscard]] bool created() const noexcept { return created_; }
    [[nodiscard]] const MappingRecords &records() const noexcept { return records_; }
    [[nodiscard]] std::size_t outstanding() const noexcept { return outstanding_; }
    [[nodiscard]] Result<Translation> translate(VirtualAddress va) const noexcept
    {
        if (!created_) return failure(Error::invalid_argument);
        return table_->translate(va);
    }
    [[nodiscard]] TablePointer root() const noexcept
    {
        return created_ ? table_->root() : TablePointer{};
    }
    [[nodiscard]] const PageTableStats &table_stats() const noexcept { return table_->stats(); }
    [[nodiscard]] Table &page_table() noexcept { return *table_; }

    // The audit: tables (PageTable::check_invariants), both record sets, and every
    // committed record's pages translate to its bytes with its attributes.
    [[nodiscard]] Result<void> check_invariants() const noexcept
    {
        if (!created_) return failure(Error::invalid_argument);
        GPUMMU_TRY(table_->check_invariants());
        GPUMMU_TRY(records_.check_invariants());
        GPUMMU_TRY(projected_.check_invariants());
        Result<void> result = success();
        records_.visit(VirtualAddress{0}, [&](const MappingView &view) {
            for (u64 offset = 0; offset < view.range.size() && result; offset += 4096) {
                auto translation = table_->translate(view.range.begin() + offset);
                auto expected = physical_at(view, offset);
                if (!translation || !expected || translation->state != TranslationState::mapped ||
                    translation->address != *expected ||
                    translation->attributes.read_only != view.attributes.read_only)
                    result = failure(Error::malformed_record);
            }
            return result.has_value();
        });
        return result;
    }

private:
    [[nodiscard]] Result<void> check_operation(const BindOperation &operation) const noexcept
    {
        if (!config_.space.contains(operation.range) || operation.range.empty())
            return failure(operation.range.empty() ? Error::invalid_argument : Error::out_of_range);
        if (operation.kind != BindOperation::Kind::map) return success();
        if ((operation.page_sizes.bits() & ~config_.page_table.page_sizes.bits()) != 0)
            return failure(Error::page_size_not_supported);
        PageAttributes attributes = operation.attributes;
        u64 first = attributes.address.value();
        if (const MappingBacking *backing = operation.target.backing; backing != nullptr) {
            attributes.aperture = backing->aperture();
            auto end = checked_add(operation.target.offset, operation.range.size());
            if (!end || *end > backing->size()) return failure(Error::out_of_range);
            // Every run must encode; the first and last byte of each run are enough.
            return check_runs(*backing, operation.target.offset, operation.range.size(),
                              attributes);
        }
        auto last = checked_add(first, operation.range.size() - 1);
        if (!last) return failure(Error::arithmetic_overflow);
        if (attributes.aperture == Aperture::video && *last >= config_.vram_end.value())
            return failure(Error::out_of_range);
        return check_encodes(attributes, first, *last);
    }
    [[nodiscard]] Result<void> check_runs(const MappingBacking &backing, u64 offset, u64 size,
                                          PageAttributes attributes) const noexcept
    {
        std::array<PhysicalSegment, 16> runs{};
        while (size != 0) {
            const u64 piece = std::min(size, run_bytes(backing, offset));
            auto count = backing.physical_runs(offset, piece, runs);
            if (!count) return failure(count.error());
            for (std::size_t i = 0; i < *count; ++i) {
                const u64 first = runs[i].address.value();
                const u64 last = first + runs[i].size - 1;
                if (attributes.aperture == Aperture::video && last >= config_.vram_end.value())
                    return failure(Error::out_of_range);
                GPUMMU_TRY(check_encodes(attributes, first, last));
            }
            offset += piece;
            size -= piece;
        }
        return success();
    }
    [[nodiscard]] static Result<void> check_encodes(PageAttributes attributes, u64 first,
                                                    u64 last) noexcept
    {
        if ((first & 0xFFFu) != 0) return failure(Error::misaligned);
        attributes.address = PhysicalAddress{first};
        GPUMMU_TRY(F::Pte::map(attributes));
        attributes.address = PhysicalAddress{last & ~u64{0xFFF}};
        GPUMMU_TRY(F::Pte::map(attributes));
        return success();
    }
    // Bytes from `offset` to the end of the physical run holding it.
    [[nodiscard]] static u64 run_bytes(const MappingBacking &backing, u64 offset) noexcept
    {
        u64 position = 0;
        for (const PhysicalSegment &segment : backing.layout()) {
            if (offset < position + segment.size) return position + segment.size - offset;
            position += segment.size;
        }
        return 0;
    }
    [[nodiscard]] static Result<PhysicalAddress> physical_at(const MappingView &view,
                                                             u64 offset) noexcept
    {
        if (view.backing == nullptr) return view.attributes.address + offset;
        std::array<PhysicalSegment, 1> run{};
        auto count = view.backing->physical_runs(view.offset + offset, 4096, run);
        if (!count) return failure(count.error());
        return run[0].address;
    }

    // The worst case of tables for the whole job: per kind of table, the sum of the
    // operations' worst cases, but never more than every table the hull of their ranges
    // touches (operations on neighbouring VAs share their directories).
    [[nodiscard]] static Needs job_needs(std::span<const BindOperation> operations) noexcept
    {
        u64 low = ~u64{0}, high = 0;
        for (const BindOperation &operation : operations) {
            low = std::min(low, operation.range.begin().value());
            high = std::max(high, operation.range.end().value());
        }
        const VirtualRange hull =
            VirtualRange::from_bounds(VirtualAddress{low}, VirtualAddress{high}).value();
        Needs needs;
        for (unsigned depth = 1; depth <= Table::table_kinds; ++depth) {
            u64 sum = 0;
            for (const BindOperation &operation : operations)
                sum += Table::tables_at(operation.range,
                                        operation.kind != BindOperation::Kind::unmap, depth);
            needs.add(depth, std::min(sum, Table::tables_at(hull, true, depth)));
        }
        return needs;
    }

    // ---- the projected records ---------------------------------------------------------
    [[nodiscard]] Result<void> apply_projected(const BindOperation &operation) noexcept
    {
        auto ignore = [](const MappingStep &) {};
        switch (operation.kind) {
        case BindOperation::Kind::map:
            return projected_.map(operation.range, operation.target, operation.attributes,
                                  operation.replace, ignore);
        case BindOperation::Kind::unmap: return projected_.unmap(operation.range, ignore);
        case BindOperation::Kind::protect:
            return projected_.protect(operation.range, operation.change, ignore);
        case BindOperation::Kind::rebind:
            return projected_.covers(operation.range) ? success() : failure(Error::not_mapped);
        }
        return failure(Error::invalid_argument);
    }
    // The committed records with every outstanding job applied again (after a failed
    // prepare or a cancel). The outstanding jobs were validated in this order, so they
    // apply again.
    void rebuild_projected() noexcept
    {
        projected_.clear([](const MappingStep &) {});
        records_.visit(VirtualAddress{0}, [&](const MappingView &view) {
            (void)projected_.map(view.range, MappingTarget{view.backing, view.offset},
                                 view.attributes, false, [](const MappingStep &) {});
            return true;
        });
        for (u64 sequence = oldest_; sequence < next_sequence_; ++sequence)
            for (const BindOperation &operation : queue_[sequence % max_outstanding])
                (void)apply_projected(operation);
    }
    void finish_job(PreparedJob &job) noexcept
    {
        (*pages_).release(job.reserve_);
        reserved_nodes_ -= job.needs_.nodes();
        reserved_blocks_ -= job.needs_.directories;
        --outstanding_;
        job.owner_ = nullptr;
    }

    // ---- commit --------------------------------------------------------------------------
    template <class Sink>
    [[nodiscard]] Result<void> apply_committed(const BindOperation &operation, TlbBatch &all,
                                               Sink &sink) noexcept
    {
        switch (operation.kind) {
        case BindOperation::Kind::map: {
            // Tables first: the records cannot refuse what prepare validated.
            const MappingView view{operation.range, operation.target.backing,
                                   operation.target.offset, operation.attributes, &records_};
            GPUMMU_TRY(
                write_pages(view, operation.range, operation.replace, operation.page_sizes, all));
            return records_.map(operation.range, operation.target, operation.attributes,
                                operation.replace, sink);
        }
        case BindOperation::Kind::unmap: {
            auto batch = table_->unmap(operation.range);
            if (!batch) return failure(batch.error());
            GPUMMU_TRY(all.merge(std::move(*batch)));
            return records_.unmap(operation.range, sink);
        }
        case BindOperation::Kind::protect: {
            Result<void> written = success();
            bool downgrade = false;
            auto each = [&](const MappingStep &step) {
                sink(step);
                if (step.kind != MappingStep::Kind::protected_ || !written) return;
                downgrade = downgrade || operation.change.downgrades(step.before);
                written = write_pages(step.record, step.record.range, true, {}, all);
            };
            GPUMMU_TRY(records_.protect(operation.range, operation.change, each));
            if (downgrade) all.record_downgrade(all.invalidation().shallowest_level);
            return written;
        }
        case BindOperation::Kind::rebind: {
            Result<void> written = success();
            records_.visit(operation.range.begin(), [&](const MappingView &view) {
                if (view.range.begin() >= operation.range.end()) return false;
                const u64 begin =
                    std::max(view.range.begin().value(), operation.range.begin().value());
                const u64 end = std::min(view.range.end().value(), operation.range.end().value());
                const VirtualRange part =
                    VirtualRange::from_bounds(VirtualAddress{begin}, VirtualAddress{end}).value();
                written = write_pages(view, part, true, {}, all);
                return written.has_value();
            });
            return written;
        }
        }
        return failure(Error::invalid_argument);
    }

    // Writes the pages of `part` (inside the record `view`) from the record's bytes.
    [[nodiscard]] Result<void> write_pages(const MappingView &view, VirtualRange part, bool replace,
                                           PageSizeSet sizes, TlbBatch &all) noexcept
    {
        PageAttributes attributes = view.attributes;
        const u64 skip = part.begin() - view.range.begin();
        const MapOptions options{sizes, replace};
        if (view.backing == nullptr) {
            attributes.address = view.attributes.address + skip;
            auto batch = table_->map(part, attributes, options);
            if (!batch) return failure(batch.error());
            return all.merge(std::move(*batch));
        }
        attributes.aperture = view.backing->aperture();
        u64 offset = view.offset + skip, va = part.begin().value();
        const u64 end = part.end().value();
        while (va < end) {
            const u64 piece = std::min(end - va, run_bytes(*view.backing, offset));
            std::array<PhysicalSegment, 1> run{};
            auto count = view.backing->physical_runs(offset, piece, run);
            if (!count) return failure(count.error());
            const VirtualRange range = VirtualRange::from_size(VirtualAddress{va}, piece).value();
            auto batch =
                table_->map(range, std::span<const PhysicalSegment>(run), attributes, options);
            if (!batch) return failure(batch.error());
            GPUMMU_TRY(all.merge(std::move(*batch)));
            va += piece;
            offset += piece;
        }
        return success();
    }

    Deferred<BuddyTablePages<M>> buddy_pages_;
    Deferred<Pages> pages_;
    Deferred<Table> table_;
    MappingRecords records_;
    MappingRecords projected_;
    T *invalidator_ = nullptr;
    BindSpaceConfig config_{};
    std::array<std::span<const BindOperation>, max_outstanding> queue_{};
    u64 next_sequence_ = 0;  // the next job's number
    u64 oldest_ = 0;         // the oldest outstanding job's number
    std::size_t outstanding_ = 0;
    u64 reserved_nodes_ = 0;   // page-table node slots promised to outstanding jobs
    u64 reserved_blocks_ = 0;  // directory child blocks promised
    bool created_ = false;
};

}  // namespace gpummu
