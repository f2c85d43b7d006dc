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
//     defragmentation moved the bytes, see MappingBacking::relocate; rebind_operations()
//     lists one space's job for a backing), make sparse (pages that read zero and drop
//     writes, for Vulkan sparse residency; maps may go over them and unmaps return such
//     pages to sparse) and clear sparse (sparse pages become invalid). Neither sparse
//     operation may touch a mapped page (already_mapped); sparse ranges are no records:
//     translate() tells a sparse page.
//   - prepare(job) validates the operations in job order, each against the records as
//     the jobs prepared before it and its own earlier operations leave them
//     (mapping_records.hpp) and against what the tables would refuse (attributes that do
//     not encode, page sizes that cannot place a map: see check_large_pages for the one
//     case that depends on sparse pages), and names the failing one; then it reserves
//     everything the job can need: the worst case of table pages (job_needs) set aside
//     in the buddy (a promise of so many chunks, no page taken: see
//     BuddyAllocator::set_aside) and recorded in the job's TableReserve, and page-table
//     node slots. A failed
//     prepare leaves no trace: it undoes its own steps on the projected records (a cost
//     of its own size, not of the space's; cancel of the newest job does the same).
//     Reservations of several prepared jobs are disjoint: each stays valid whatever the
//     jobs committed before it do.
//   - commit(job) applies the job (the oldest prepared one first) to the records and the
//     tables, drawing table pages only from its reserve, reports the record steps
//     (unmapped / remapped with previous and next / mapped / protected) and returns one
//     TlbBatch for the whole job; a protect that takes access away marks it ack-globally
//     + sys-membar. What the job did not draw goes back to the buddy. commit fails only on a
//     device error (then the space needs attention, as for any failed table write).
//   - Keep hints: a protect that leaves a record's attributes as they are neither cuts
//     it nor rewrites its pages; a map with replace (automatic page sizes) does not
//     rewrite the pages that keep their physical address and attributes (a remap of a
//     buffer over itself writes nothing and invalidates nothing).
//   - Queries: records() (the committed records: find by VA, visit in VA order), and each
//     MappingBacking lists its records across every space.
//
// What it does not do
//   - No VA allocation (vmm/address_space.hpp hands VAs out), no locking.
//   - Its work is compiled in every TU that calls it, unless the TU declares the
//     instantiation (and its `PageTable<F, M, ReservingTablePages<M>>`) `extern template`
//     and one TU instantiates them (the members that carry the work are defined below the
//     class for that); commit, a template over the caller's sink, is compiled where called
//     (see docs/consuming.md).
//   - Relocate a backing only while no outstanding job maps it: prepare checked the map
//     against the layout it had then (encodings, placement). Commit those jobs, relocate,
//     then prepare the rebinds.
//   - flush(batch) finishes the batch and frees the tables the commits unlinked: pass it
//     every batch (merged) since the last flush, as for PageTable::flush.
//   - Reserves are worst cases: a map reserves one table per entry it touches at every
//     level (4 KiB + 256 bytes per 2 MiB of VA, about 0.2%), unmap and the sparse
//     operations two per level; they are held only between prepare and commit, as a
//     count the buddy keeps free (no page is taken until a table needs it).
//
// Invariants
//   - Every mapped page of the tables belongs to exactly one committed record and shows
//     that record's backing bytes (or physical address) with its attributes.
//   - The projected records equal the committed ones with every outstanding job applied.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
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
    enum class Kind : u8 { map, unmap, protect, rebind, make_sparse, clear_sparse };
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
    // MappingRecords::index_nodes_for(records.size()) each: the records' VA index
    std::span<OrderedIndexNode> records_index;
    std::span<OrderedIndexNode> projected_index;
};

struct BindSpaceConfig {
    VirtualRange space{};  // the VAs jobs may name
    PageTableConfig page_table{};
    VramAddress vram_end{~u64{0}};   // video-aperture memory must end below it
    unsigned spare_table_pages = 0;  // as AddressSpaceConfig's: emptied pages kept for reuse
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
              needs_(other.needs_),
              records_before_(other.records_before_)
        {
        }
        PreparedJob(const PreparedJob &) = delete;
        PreparedJob &operator=(const PreparedJob &) = delete;
        ~PreparedJob() { GPUMMU_ASSERT(owner_ == nullptr); }  // committed or cancelled
        [[nodiscard]] const Needs &reserved() const noexcept { return needs_; }

    private:
        friend class BindSpace;
        PreparedJob(BindSpace *owner, u64 sequence,
                    std::span<const BindOperation> operations) noexcept
            : owner_(owner),
              sequence_(sequence),
              operations_(operations)
        {
        }
        BindSpace *owner_ = nullptr;
        u64 sequence_ = 0;
        std::span<const BindOperation> operations_{};
        TableReserve reserve_{};
        Needs needs_{};
        std::size_t records_before_ = 0;  // projected records before it (for cancel)
    };

    BindSpace() noexcept = default;
    BindSpace(const BindSpace &) = delete;
    BindSpace &operator=(const BindSpace &) = delete;

    [[nodiscard]] Result<void> create(M &memory, BuddyAllocator &buddy, T &invalidator,
                                      BindSpaceStorage storage, BindSpaceConfig config) noexcept;

    // Validates `operations` and reserves what committing them needs.
    // Errors: invalid_argument (not created, empty job, too many outstanding jobs),
    // out_of_range (outside the space, past VRAM or the backing), misaligned (addresses,
    // or page sizes that cannot place a map), already_mapped, not_mapped,
    // page_size_not_supported or an encoding error of the format, out_of_storage (records,
    // table nodes or big-table slots), out_of_memory (VRAM for the reserve). Nothing
    // changes on error; `failed_operation`, when given, receives the index of the
    // operation that failed, or operations.size() when the job as a whole did (queue full,
    // storage, VRAM for the reserve).
    [[nodiscard]] Result<PreparedJob> prepare(std::span<const BindOperation> operations,
                                              std::size_t *failed_operation = nullptr) noexcept;

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
        if (applied && outstanding_ == 0) clear_overlay();
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
    [[nodiscard]] Result<void> cancel(PreparedJob &&job) noexcept;

    // Finishes `batch` (every commit's batch since the last flush, merged) and frees the
    // tables the commits unlinked.
    [[nodiscard]] Result<void> flush(TlbBatch &batch) noexcept;

    // Unmaps everything and clears every sparse range (one invalidate), then frees every
    // table, root included. Errors:
    // invalid_argument (not created), in_use (prepared jobs are outstanding), device errors.
    [[nodiscard]] Result<void> destroy() noexcept;

    // The worst case of tables for the whole job, per kind of table: the sum of the
    // operations' worst cases. Operations on neighbouring VAs share their tables, so the
    // tables the hull of the job's ranges touches bound it too, plus one more table for
    // every table an operation before the last can retire: a retired table waits for the
    // flush, so a later operation that needs a table there takes a new one. Unmap and the
    // sparse operations may retire any table below their range (emptied, or folded into a
    // sparse entry). Maps (and protect and rebind, which map again) never retire a
    // directory: they descend into tables rather than place a large page over one. They
    // may retire a PD0 entry's small or big table (64 KiB pages placed over 4 KiB ones,
    // sparse chunks folded), except a map without replace in a space without sparse pages
    // (`maps_retire` false), which only adds entries.
    [[nodiscard]] Needs job_needs(std::span<const BindOperation> operations,
                                  bool maps_retire) const noexcept;

    // Eviction and defragmentation: after MappingBacking::relocate moved `backing`, the
    // job that rewrites its pages in this space is one rebind per committed record of it.
    // Writes the first out.size() of them to `out` and returns how many there are (call
    // again with room for all if that is more). Prepare the job before another job
    // changes those records; every space that maps the backing needs its own job.
    [[nodiscard]] std::size_t rebind_operations(const MappingBacking &backing,
                                                std::span<BindOperation> out) const noexcept;

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

    // The audit: tables (PageTable::check_invariants), both record sets and the overlay's
    // shape (empty while no job is outstanding), and every committed record's pages
    // translate to its bytes with its attributes.
    [[nodiscard]] Result<void> check_invariants() const noexcept;

private:
    // Operations that may need a table under any entry their range touches (a map places
    // pages everywhere; protect and rebind rewrite pages) rather than only where the
    // range cuts a large page or a sparse entry (unmap, make / clear sparse).
    [[nodiscard]] static constexpr bool splits_anywhere(BindOperation::Kind kind) noexcept
    {
        return kind == BindOperation::Kind::map || kind == BindOperation::Kind::protect ||
               kind == BindOperation::Kind::rebind;
    }

    [[nodiscard]] Result<void> check_operation(const BindOperation &operation) const noexcept;
    // No page below 2 MiB allowed: a page may have to stand over whole tables.
    [[nodiscard]] static constexpr bool large_only(PageSizeSet sizes) noexcept
    {
        return (sizes.bits() & (PageSize::size_2m().bytes() - 1)) == 0;
    }
    [[nodiscard]] PageSizeSet sizes_of(const BindOperation &operation) const noexcept
    {
        return operation.page_sizes.empty() ? config_.page_table.page_sizes : operation.page_sizes;
    }
    // Calls visit(va, physical address, bytes) for each physically contiguous run of a
    // map's range (one for raw memory; a backing's layout may cut it), in VA order.
    template <class Visit>
    [[nodiscard]] static Result<void> for_each_run(const BindOperation &operation,
                                                   Visit &&visit) noexcept
    {
        const MappingBacking *backing = operation.target.backing;
        if (backing == nullptr)
            return visit(operation.range.begin().value(), operation.attributes.address.value(),
                         operation.range.size());
        std::array<PhysicalSegment, 16> runs{};
        u64 offset = operation.target.offset, size = operation.range.size();
        u64 va = operation.range.begin().value();
        while (size != 0) {
            const u64 piece = std::min(size, run_bytes(*backing, offset));
            auto count = backing->physical_runs(offset, piece, runs);
            if (!count) return failure(count.error());
            for (std::size_t i = 0; i < *count; ++i) {
                GPUMMU_TRY(visit(va, runs[i].address.value(), runs[i].size));
                va += runs[i].size;
            }
            offset += piece;
            size -= piece;
        }
        return success();
    }
    // The tables place a run page by page, each page the largest allowed size whose
    // aligned block at that VA lies inside the run with its physical address aligned
    // alike; a page no allowed size covers refuses the map (misaligned). With 4 KiB
    // pages allowed every run places (`visit` hears nothing); otherwise walk it the same
    // way, one step per page (at least 64 KiB each), calling visit(va, bytes).
    template <class Visit>
    [[nodiscard]] static Result<void> place_pages(u64 va, u64 pa, u64 size, PageSizeSet sizes,
                                                  Visit &&visit) noexcept
    {
        if (sizes.contains(PageSize::size_4k())) return success();
        const u64 end = va + size;
        while (va < end) {
            u64 step = 0;
            for (u64 bits = sizes.bits(); bits != 0 && step == 0;) {
                const u64 bytes = u64{1} << (std::bit_width(bits) - 1);  // largest left
                bits &= ~bytes;
                if (((va | pa) & (bytes - 1)) == 0 && end - va >= bytes) step = bytes;
            }
            if (step == 0) return failure(Error::misaligned);
            GPUMMU_TRY(visit(va, step));
            va += step;
            pa += step;
        }
        return success();
    }

    // A map that allows no page below 2 MiB places each large page over whatever tables
    // hold its block (PageTable: a large page over tables), which works only where the
    // block's pages all return to sparse when unmapped, or none does: one entry records
    // it. Where they are mixed, a smaller allowed size may still place each part;
    // otherwise the map is refused (misaligned). The tables know what is sparse now; a
    // sparse operation queued ahead of this map (an outstanding job, or earlier in this
    // job) over such a block would change it: then prepare refuses with in_use (commit
    // the jobs ahead first).
    [[nodiscard]] Result<void> check_large_pages(std::span<const BindOperation> operations,
                                                 std::size_t index) const noexcept;
    [[nodiscard]] Result<void> uniform_underlay(u64 va, u64 bytes,
                                                PageSizeSet sizes) const noexcept;
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
                                                             u64 offset) noexcept;

    // ---- the projected records ---------------------------------------------------------
    // Prepare judges each operation against the records as the committed ones plus every
    // outstanding job leave them: the projected records. They are an overlay, not a copy:
    // `projected_` holds records only inside the touched ranges, VAs where an outstanding
    // operation reached (its range, widened to the whole committed records it overlaps).
    // Inside a touched range the overlay is the truth; outside, the committed records are.
    //
    //     committed  ---[ A ]----[    B    ]-----[ C ]----
    //     touched               [===========]              (a job maps over B's middle)
    //     overlay                [B1][new][B2]
    //     projected  ---[ A ]----[B1][new][B2]---[ C ]----
    //
    // Before an operation applies to the overlay, the committed records its range overlaps
    // outside touched ranges are copied in and the range touched ("materialized"); a
    // committed record is thus either inside one touched range or outside all of them, and
    // commits keep it so (a job changes records only inside its touched ranges). With no
    // job outstanding the overlay is empty: a job costs what the records it reaches cost,
    // not what the space holds (a full copy of the records took every operation applied
    // twice to trees of the space's size). When the touched ranges outgrow their table,
    // every committed record is copied in once (touched_all_) until the queue drains.
    // `projected_count_` counts the projected records for the storage check a full copy
    // made by itself: the committed pool must hold them once every job commits.
    struct TouchedRange {
        u64 begin = 0;
        u64 end = 0;
    };
    static constexpr std::size_t touched_capacity = 512;

    // Is the committed record starting at `begin` inside a touched range?
    [[nodiscard]] bool touched(u64 begin) const noexcept
    {
        if (touched_all_) return true;
        const std::size_t at = first_ending_after(touched_, touched_count_, begin);
        return at < touched_count_ && touched_[at].begin <= begin;
    }
    // Adds [begin, end) to the touched ranges, merged with those it overlaps or meets. The
    // caller made sure one more range fits.
    void touch(u64 begin, u64 end) noexcept;
    // Makes the overlay the truth over `range` (see above).
    void materialize(VirtualRange range) noexcept;
    // The direct path. The overlay exists so that a prepare sees what the outstanding jobs
    // will leave; a job prepared with none outstanding needs it only where its own later
    // operations reach, or if a later prepare comes before its commit. So in such a job a
    // map without replace (most binds) whose range meets no touched range and no other
    // direct map of the job is checked against the committed records (the truth there: one
    // index descent and one record read) and not projected; its range and
    // operation index go to `direct_`. A later operation of the job that reaches a direct
    // map's range first projects it (project_direct_maps: into a hole of the committed
    // records that nothing between reached, so the order of the two does not matter), and
    // so does the next prepare, if it comes before the commit, for all that are left. A commit or
    // cancel of the job, or its failure, empties the overlay as usual. The checks are those
    // apply_projected makes for such a map: already_mapped on any overlap, out_of_storage if the
    // records would not fit.
    struct DirectMap {
        u64 begin = 0;
        u64 end = 0;
        std::size_t operation = 0;  // its index in the job
    };
    static constexpr std::size_t direct_capacity = 256;

    // The first entry of a sorted, disjoint list of ranges that ends after `begin`.
    template <class Range, std::size_t N>
    [[nodiscard]] static std::size_t first_ending_after(const std::array<Range, N> &list,
                                                        std::size_t count, u64 begin) noexcept
    {
        std::size_t low = 0, high = count;
        while (low < high) {
            const std::size_t middle = (low + high) / 2;
            if (list[middle].end <= begin)
                low = middle + 1;
            else
                high = middle;
        }
        return low;
    }
    // Does a range of that list meet [begin, end)?
    template <class Range, std::size_t N>
    [[nodiscard]] static bool meets(const std::array<Range, N> &list, std::size_t count, u64 begin,
                                    u64 end) noexcept
    {
        const std::size_t at = first_ending_after(list, count, begin);
        return at < count && list[at].begin < end;
    }
    [[nodiscard]] bool goes_direct(const BindOperation &operation) const noexcept
    {
        if (operation.kind != BindOperation::Kind::map || operation.replace || touched_all_ ||
            direct_count_ == direct_capacity)
            return false;
        const u64 begin = operation.range.begin().value(), end = operation.range.end().value();
        return !meets(touched_, touched_count_, begin, end) &&
               !meets(direct_, direct_count_, begin, end);
    }
    [[nodiscard]] Result<void> direct_map(const BindOperation &operation, std::size_t index,
                                          std::size_t &count) noexcept;
    // Projects the direct maps of `operations` (the job being prepared, or the one
    // outstanding) whose ranges meet [begin, end). Their records are counted already; the
    // steps are not logged: with no other job outstanding, a failed prepare or a cancel
    // drops the whole overlay.
    void project_direct_maps(std::span<const BindOperation> operations, u64 begin = 0,
                             u64 end = ~u64{0}) noexcept;

    // No job outstanding: the projected records are the committed ones again.
    void clear_overlay() noexcept;

    // Applies one operation to the projected records; `count` is the projected record
    // count, kept up to date; `log_steps`: log the steps for undo.
    [[nodiscard]] Result<void> apply_projected(const BindOperation &operation, std::size_t &count,
                                               bool log_steps) noexcept;

    // ---- undoing a failed prepare or a cancel ----------------------------------------
    // A prepare that fails, and a cancel of the newest job, put the projected records back
    // as they were before that job by undoing its steps, newest first: a record it made is
    // removed again; one it removed, cut or gave new attributes is mapped again as it was,
    // over whatever lies in its range by then (its remainders, or its inside part with the
    // new attributes). Each undo leaves the records exactly as they were before the step,
    // so the next one applies. (Records the job copied into the overlay stay: they are the
    // committed ones.) With no other job outstanding the overlay is simply dropped. The log
    // holds the newest job's steps only: a job whose steps overflow it, and a cancel of a
    // job whose log a later prepare overwrote, rebuild the overlay from the queue instead.
    struct ProjectedUndo {
        bool remove = false;  // unmap `range` (a record the job made), else map it back
        VirtualRange range{};
        MappingTarget target{};
        PageAttributes attributes{};
    };
    static constexpr std::size_t undo_capacity = 128;
    static constexpr u64 no_sequence = ~u64{0};

    void log_projected(const MappingStep &step) noexcept;
    // Undoes the logged steps (projected_count_ is the caller's to restore).
    void undo_projected() noexcept;

    // The overlay again from the committed records and the queue (after a cancel whose log
    // is gone, a device error in commit, or a failed prepare whose steps overflowed the
    // log). The outstanding jobs were validated in this order, so they apply again. The
    // undo log is emptied: it belongs to no job afterwards.
    void rebuild_projected() noexcept;
    void finish_job(PreparedJob &job) noexcept;

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
            if (operation.replace && operation.page_sizes.empty())
                GPUMMU_TRY(write_changed_pages(view, all));
            else
                GPUMMU_TRY(write_pages(view, operation.range, operation.replace,
                                       operation.page_sizes, all));
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
        case BindOperation::Kind::make_sparse:
        case BindOperation::Kind::clear_sparse: {
            auto batch = operation.kind == BindOperation::Kind::make_sparse
                             ? table_->make_sparse(operation.range)
                             : table_->clear_sparse(operation.range);
            if (!batch) return failure(batch.error());
            return all.merge(std::move(*batch));
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

    // Keep hints: a map with replace writes only the pages whose physical address or
    // attributes change; where a committed record already shows the same bytes with the
    // same attributes its PTEs stay (and need no invalidate). Pinned page sizes always
    // rewrite: the pages there may be of other sizes.
    [[nodiscard]] Result<void> write_changed_pages(const MappingView &now, TlbBatch &all) noexcept;
    // Do two records show the same bytes at every VA they share, with the same attributes?
    [[nodiscard]] static bool same_pages(const MappingView &old, const MappingView &now) noexcept
    {
        if (old.backing != now.backing) return false;
        PageAttributes a = old.attributes, b = now.attributes;
        const u64 old_begin = old.range.begin().value(), now_begin = now.range.begin().value();
        // Unsigned wrap-around keeps the differences comparable.
        if (old.backing == nullptr) {
            if (a.address.value() - old_begin != b.address.value() - now_begin) return false;
        } else {
            if (old.offset - old_begin != now.offset - now_begin) return false;
            a.aperture = b.aperture;  // the backing's aperture is the one that counts
        }
        a.address = b.address;
        return a == b;
    }

    // Writes the pages of `part` (inside the record `view`) from the record's bytes.
    [[nodiscard]] Result<void> write_pages(const MappingView &view, VirtualRange part, bool replace,
                                           PageSizeSet sizes, TlbBatch &all) noexcept;

    Deferred<BuddyTablePages<M>> buddy_pages_;
    Deferred<Pages> pages_;
    Deferred<Table> table_;
    MappingRecords records_;
    MappingRecords projected_;
    std::array<ProjectedUndo, undo_capacity> undo_{};  // the newest job's steps
    std::size_t undo_count_ = 0;
    bool undo_overflowed_ = false;     // more steps than the log holds: undo by a rebuild
    u64 undo_sequence_ = no_sequence;  // the job the log belongs to
    std::array<TouchedRange, touched_capacity> touched_{};  // sorted, disjoint, apart
    std::size_t touched_count_ = 0;
    bool touched_all_ = false;                         // every committed record is in the overlay
    std::size_t projected_count_ = 0;                  // records once every outstanding job commits
    std::array<DirectMap, direct_capacity> direct_{};  // sorted, disjoint (see direct_map)
    std::size_t direct_count_ = 0;
    T *invalidator_ = nullptr;
    BindSpaceConfig config_{};
    std::array<std::span<const BindOperation>, max_outstanding> queue_{};
    u64 next_sequence_ = 0;  // the next job's number
    u64 oldest_ = 0;         // the oldest outstanding job's number
    std::size_t outstanding_ = 0;
    u64 reserved_nodes_ = 0;   // page-table node slots promised to outstanding jobs
    u64 reserved_blocks_ = 0;  // directory child blocks promised
    bool created_ = false;
    bool sparse_seen_ = false;  // a make_sparse was prepared: maps may fold sparse tables
};

// Member functions defined outside the class, so that an `extern template` declaration
// of an instantiation keeps them out of the including translation unit (docs/consuming.md).
template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::create(M &memory, BuddyAllocator &buddy, T &invalidator,
                                BindSpaceStorage storage, BindSpaceConfig config) noexcept
    -> Result<void>
{
    if (created_ || storage.records.size() != storage.projected.size() || storage.records.empty())
        return failure(Error::invalid_argument);
    if ((F::va_bits < 64) && config.space.end().value() > (u64{1} << F::va_bits))
        return failure(Error::out_of_range);
    GPUMMU_TRY(records_.create(storage.records, storage.records_index));
    if (auto made = projected_.create(storage.projected, storage.projected_index, false); !made) {
        records_.destroy();
        return made;
    }
    buddy_pages_.emplace(buddy, memory, storage.big_table_pages);
    (*buddy_pages_).set_spare_limit(config.spare_table_pages);
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
    sparse_seen_ = false;
    clear_overlay();  // empty, with no undo log
    created_ = true;
    return success();
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::prepare(std::span<const BindOperation> operations,
                                 std::size_t *failed_operation) noexcept -> Result<PreparedJob>
{
    if (failed_operation != nullptr) *failed_operation = operations.size();
    if (!created_ || operations.empty() || outstanding_ == max_outstanding)
        return failure(Error::invalid_argument);
    // With no job outstanding, the maps of this job into holes nothing else of it
    // reaches are judged against the committed records only (see direct_map below).
    const bool may_go_direct = outstanding_ == 0;
    // Direct maps left belong to the one outstanding job: this prepare must see them.
    if (direct_count_ != 0) project_direct_maps(queue_[oldest_ % max_outstanding]);
    // The undo log now belongs to this job (the newest, the only one cancel may drop);
    // if the prepare fails, it is tagged with a sequence no job holds.
    undo_count_ = 0;
    undo_overflowed_ = false;
    undo_sequence_ = next_sequence_;
    std::size_t count = projected_count_;
    // In job order: each operation's own checks, then against the records as the
    // operations before it leave them; the first failure is the job's.
    for (std::size_t i = 0; i < operations.size(); ++i) {
        auto applied = check_operation(operations[i]);
        if (applied) {
            if (may_go_direct && goes_direct(operations[i])) {
                applied = direct_map(operations[i], i, count);
            } else {
                project_direct_maps(operations, operations[i].range.begin().value(),
                                    operations[i].range.end().value());
                applied = apply_projected(operations[i], count, true);
            }
        }
        if (applied) applied = check_large_pages(operations, i);
        if (!applied) {
            undo_projected();
            if (failed_operation != nullptr) *failed_operation = i;
            return failure(applied.error());
        }
    }
    for (const BindOperation &operation : operations)
        sparse_seen_ = sparse_seen_ || operation.kind == BindOperation::Kind::make_sparse;
    const Needs needs = job_needs(operations, sparse_seen_);
    if (needs.nodes() + reserved_nodes_ > table_->spare_nodes() ||
        needs.directories + reserved_blocks_ > table_->spare_child_blocks()) {
        undo_projected();
        return failure(Error::out_of_storage);
    }
    PreparedJob job(this, next_sequence_, operations);
    if (auto reserved = (*pages_).reserve(job.reserve_, needs.pages(), needs.big_tables);
        !reserved) {
        undo_projected();
        job.owner_ = nullptr;
        return failure(reserved.error());
    }
    job.needs_ = needs;
    job.records_before_ = projected_count_;
    projected_count_ = count;
    reserved_nodes_ += needs.nodes();
    reserved_blocks_ += needs.directories;
    queue_[next_sequence_ % max_outstanding] = operations;
    ++next_sequence_;
    ++outstanding_;
    return job;
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::cancel(PreparedJob &&job) noexcept -> Result<void>
{
    if (job.owner_ != this) return failure(Error::invalid_argument);
    if (job.sequence_ + 1 != next_sequence_) return failure(Error::in_use);
    --next_sequence_;
    finish_job(job);
    if (job.sequence_ == undo_sequence_) {
        undo_projected();  // the newest job's steps, undone
        projected_count_ = job.records_before_;
    } else {
        rebuild_projected();
    }
    undo_sequence_ = no_sequence;
    return success();
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::flush(TlbBatch &batch) noexcept -> Result<void>
{
    return table_->flush(batch, *invalidator_);
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::destroy() noexcept -> Result<void>
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
    if (failed) {
        auto batch = table_->clear_sparse(config_.space);
        if (batch) failed = all.merge(std::move(*batch));
        if (!batch) failed = failure(batch.error());
    }
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

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::job_needs(std::span<const BindOperation> operations,
                                   bool maps_retire) const noexcept -> Needs
{
    u64 low = ~u64{0}, high = 0;
    for (const BindOperation &operation : operations) {
        low = std::min(low, operation.range.begin().value());
        high = std::max(high, operation.range.end().value());
    }
    const VirtualRange hull =
        VirtualRange::from_bounds(VirtualAddress{low}, VirtualAddress{high}).value();
    // One pass over the operations (they are read once, every depth beside them).
    constexpr unsigned kinds = Table::table_kinds;
    std::array<u64, kinds + 1> sum{}, shared{};
    for (unsigned depth = 1; depth <= kinds; ++depth)
        shared[depth] = Table::tables_at(hull, true, depth);
    for (std::size_t i = 0; i < operations.size(); ++i) {
        const BindOperation &operation = operations[i];
        const bool splits = splits_anywhere(operation.kind);
        // A map allowing no page below 2 MiB may place one over whole tables.
        const bool map_like = splits && !(operation.kind == BindOperation::Kind::map &&
                                          large_only(sizes_of(operation)));
        const bool not_last = i + 1 < operations.size();
        for (unsigned depth = 1; depth <= kinds; ++depth) {
            sum[depth] += Table::tables_at(operation.range, splits, depth);
            const bool page_tables = depth + 1 >= kinds;  // small or big
            const bool retires =
                !map_like ||
                (page_tables &&
                 (maps_retire || operation.kind != BindOperation::Kind::map || operation.replace));
            if (retires && not_last)
                shared[depth] += Table::tables_at(operation.range, true, depth);
        }
    }
    Needs needs;
    for (unsigned depth = 1; depth <= kinds; ++depth)
        needs.add(depth, std::min(sum[depth], shared[depth]));
    return needs;
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::rebind_operations(const MappingBacking &backing,
                                           std::span<BindOperation> out) const noexcept
    -> std::size_t
{
    std::size_t count = 0;
    backing.visit_mappings([&](const MappingView &view) {
        if (view.space != &records_) return;
        if (count < out.size()) {
            out[count] = BindOperation{};
            out[count].kind = BindOperation::Kind::rebind;
            out[count].range = view.range;
        }
        ++count;
    });
    return count;
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::check_invariants() const noexcept -> Result<void>
{
    if (!created_) return failure(Error::invalid_argument);
    GPUMMU_TRY(table_->check_invariants());
    GPUMMU_TRY(records_.check_invariants());
    GPUMMU_TRY(projected_.check_invariants());
    // The overlay: touched ranges sorted and apart, overlay records inside them, each
    // committed record inside one or outside all; empty with no job outstanding (a
    // failed prepare undid its steps, a commit applied what prepare did).
    for (std::size_t i = 0; i < touched_count_; ++i)
        if (touched_[i].begin >= touched_[i].end ||
            (i > 0 && touched_[i - 1].end >= touched_[i].begin))
            return failure(Error::malformed_record);
    enum class TouchedPlace { outside, inside, across };  // a record and the touched ranges
    auto placement = [&](const MappingView &view) {
        if (touched_all_) return TouchedPlace::inside;
        const u64 begin = view.range.begin().value(), end = view.range.end().value();
        for (std::size_t i = 0; i < touched_count_; ++i)
            if (begin < touched_[i].end && touched_[i].begin < end)
                return touched_[i].begin <= begin && end <= touched_[i].end ? TouchedPlace::inside
                                                                            : TouchedPlace::across;
        return TouchedPlace::outside;
    };
    bool overlay_ok = true;
    projected_.visit(VirtualAddress{0}, [&](const MappingView &view) {
        overlay_ok = placement(view) == TouchedPlace::inside;
        return overlay_ok;
    });
    records_.visit(VirtualAddress{0}, [&](const MappingView &view) {
        overlay_ok = overlay_ok && placement(view) != TouchedPlace::across;
        return overlay_ok;
    });
    if (!overlay_ok) return failure(Error::malformed_record);
    // Direct maps (see direct_map): only in the one outstanding job, sorted and apart,
    // in holes of both record sets, outside the touched ranges.
    if (direct_count_ != 0 && outstanding_ != 1) return failure(Error::malformed_record);
    for (std::size_t i = 0; i < direct_count_; ++i) {
        const DirectMap &direct = direct_[i];
        const auto range =
            VirtualRange::from_bounds(VirtualAddress{direct.begin}, VirtualAddress{direct.end});
        if (!range || range->empty() || (i > 0 && direct_[i - 1].end > direct.begin) ||
            meets(touched_, touched_count_, direct.begin, direct.end) ||
            records_.overlaps(*range) || projected_.overlaps(*range))
            return failure(Error::malformed_record);
    }
    if (outstanding_ == 0 && (projected_.count() != 0 || touched_count_ != 0 || touched_all_ ||
                              projected_count_ != records_.count()))
        return failure(Error::malformed_record);
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

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::check_operation(const BindOperation &operation) const noexcept
    -> Result<void>
{
    if (!config_.space.contains(operation.range) || operation.range.empty())
        return failure(operation.range.empty() ? Error::invalid_argument : Error::out_of_range);
    if (!operation.range.begin().is_aligned_to(PageSize::size_4k()) ||
        (operation.range.size() & PageSize::size_4k().offset_mask()) != 0)
        return failure(Error::misaligned);
    if (operation.kind != BindOperation::Kind::map) return success();
    if ((operation.page_sizes.bits() & ~config_.page_table.page_sizes.bits()) != 0)
        return failure(Error::page_size_not_supported);
    const PageSizeSet sizes = sizes_of(operation);
    PageAttributes attributes = operation.attributes;
    if (const MappingBacking *backing = operation.target.backing; backing != nullptr) {
        attributes.aperture = backing->aperture();
        auto end = checked_add(operation.target.offset, operation.range.size());
        if (!end || *end > backing->size()) return failure(Error::out_of_range);
    } else if (!checked_add(attributes.address.value(), operation.range.size() - 1)) {
        return failure(Error::arithmetic_overflow);
    }
    // Every run must encode (its first and last page are enough) and place.
    return for_each_run(operation, [&](u64 va, u64 first, u64 size) -> Result<void> {
        const u64 last = first + size - 1;
        if (attributes.aperture == Aperture::video && last >= config_.vram_end.value())
            return failure(Error::out_of_range);
        GPUMMU_TRY(check_encodes(attributes, first, last));
        return place_pages(va, first, size, sizes, [](u64, u64) { return success(); });
    });
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::check_large_pages(std::span<const BindOperation> operations,
                                           std::size_t index) const noexcept -> Result<void>
{
    const BindOperation &operation = operations[index];
    if (operation.kind != BindOperation::Kind::map) return success();
    const PageSizeSet sizes = sizes_of(operation);
    if (!large_only(sizes)) return success();
    auto block_ok = [&](u64 va, u64 bytes) -> Result<void> {
        const VirtualRange block = VirtualRange::from_size(VirtualAddress{va}, bytes).value();
        auto queued_sparse = [&](const BindOperation &other) {
            return (other.kind == BindOperation::Kind::make_sparse ||
                    other.kind == BindOperation::Kind::clear_sparse) &&
                   other.range.begin() < block.end() && block.begin() < other.range.end();
        };
        for (std::size_t i = 0; i < index; ++i)
            if (queued_sparse(operations[i])) return failure(Error::in_use);
        for (u64 sequence = oldest_; sequence < next_sequence_; ++sequence)
            for (const BindOperation &other : queue_[sequence % max_outstanding])
                if (queued_sparse(other)) return failure(Error::in_use);
        return uniform_underlay(va, bytes, sizes);
    };
    return for_each_run(operation, [&](u64 va, u64 pa, u64 size) {
        return place_pages(va, pa, size, sizes, block_ok);
    });
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::uniform_underlay(u64 va, u64 bytes, PageSizeSet sizes) const noexcept
    -> Result<void>
{
    const u64 sparse =
        table_->sparse_pages(VirtualRange::from_size(VirtualAddress{va}, bytes).value());
    if (sparse == 0 || sparse == bytes >> 12) return success();
    const u64 smaller = sizes.bits() & (bytes - 1);  // allowed sizes below this page
    if (smaller == 0) return failure(Error::misaligned);
    const u64 part = u64{1} << (std::bit_width(smaller) - 1);
    for (u64 at = va; at < va + bytes; at += part) GPUMMU_TRY(uniform_underlay(at, part, sizes));
    return success();
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::physical_at(const MappingView &view, u64 offset) noexcept
    -> Result<PhysicalAddress>
{
    if (view.backing == nullptr) return view.attributes.address + offset;
    std::array<PhysicalSegment, 1> run{};
    auto count = view.backing->physical_runs(view.offset + offset, 4096, run);
    if (!count) return failure(count.error());
    return run[0].address;
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::touch(u64 begin, u64 end) noexcept -> void
{
    std::size_t first = 0;  // the first range that ends at or after `begin`
    while (first < touched_count_ && touched_[first].end < begin) ++first;
    std::size_t last = first;
    for (; last < touched_count_ && touched_[last].begin <= end; ++last) {
        begin = std::min(begin, touched_[last].begin);
        end = std::max(end, touched_[last].end);
    }
    const std::size_t merged = last - first;
    if (merged == 0) {
        GPUMMU_ASSERT(touched_count_ < touched_capacity);
        std::copy_backward(touched_.begin() + first, touched_.begin() + touched_count_,
                           touched_.begin() + touched_count_ + 1);
        ++touched_count_;
    } else {
        std::copy(touched_.begin() + last, touched_.begin() + touched_count_,
                  touched_.begin() + first + 1);
        touched_count_ -= merged - 1;
    }
    touched_[first] = TouchedRange{begin, end};
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::materialize(VirtualRange range) noexcept -> void
{
    if (touched_all_) return;
    auto ignore = [](const MappingStep &) {};
    if (touched_count_ == touched_capacity) {  // no room for one more range
        records_.visit(VirtualAddress{0}, [&](const MappingView &view) {
            if (!touched(view.range.begin().value()))
                (void)projected_.map(view.range, MappingTarget{view.backing, view.offset},
                                     view.attributes, false, ignore);
            return true;
        });
        touched_all_ = true;
        touched_count_ = 0;
        return;
    }
    u64 begin = range.begin().value(), end = range.end().value();
    records_.visit(range.begin(), [&](const MappingView &view) {
        if (view.range.begin() >= range.end()) return false;
        if (!touched(view.range.begin().value())) {
            (void)projected_.map(view.range, MappingTarget{view.backing, view.offset},
                                 view.attributes, false, ignore);
            begin = std::min(begin, view.range.begin().value());
            end = std::max(end, view.range.end().value());
        }
        return true;
    });
    touch(begin, end);
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::direct_map(const BindOperation &operation, std::size_t index,
                                    std::size_t &count) noexcept -> Result<void>
{
    if (records_.overlaps(operation.range)) return failure(Error::already_mapped);
    if (count + 1 > records_.capacity()) return failure(Error::out_of_storage);
    ++count;
    const u64 begin = operation.range.begin().value();
    const std::size_t at = first_ending_after(direct_, direct_count_, begin);
    std::copy_backward(direct_.begin() + at, direct_.begin() + direct_count_,
                       direct_.begin() + direct_count_ + 1);
    direct_[at] = DirectMap{begin, operation.range.end().value(), index};
    ++direct_count_;
    return success();
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::project_direct_maps(std::span<const BindOperation> operations, u64 begin,
                                             u64 end) noexcept -> void
{
    const std::size_t first = first_ending_after(direct_, direct_count_, begin);
    std::size_t last = first;
    for (; last < direct_count_ && direct_[last].begin < end; ++last) {
        const BindOperation &operation = operations[direct_[last].operation];
        materialize(operation.range);
        [[maybe_unused]] auto projected =
            projected_.map(operation.range, operation.target, operation.attributes, false,
                           [](const MappingStep &) {});
        GPUMMU_ASSERT(projected.has_value());
    }
    std::copy(direct_.begin() + last, direct_.begin() + direct_count_, direct_.begin() + first);
    direct_count_ -= last - first;
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::clear_overlay() noexcept -> void
{
    direct_count_ = 0;
    projected_.clear([](const MappingStep &) {});
    touched_count_ = 0;
    touched_all_ = false;
    projected_count_ = records_.count();
    undo_count_ = 0;
    undo_overflowed_ = false;
    undo_sequence_ = no_sequence;
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::apply_projected(const BindOperation &operation, std::size_t &count,
                                         bool log_steps) noexcept -> Result<void>
{
    materialize(operation.range);
    const std::size_t before = projected_.count();
    auto log = [this, log_steps](const MappingStep &step) {
        if (log_steps) log_projected(step);
    };
    Result<void> applied = success();
    switch (operation.kind) {
    case BindOperation::Kind::map:
        applied = projected_.map(operation.range, operation.target, operation.attributes,
                                 operation.replace, log);
        break;
    case BindOperation::Kind::unmap: applied = projected_.unmap(operation.range, log); break;
    case BindOperation::Kind::protect: {
        // The new attributes of every record the protect reaches must encode (the
        // address and aperture stay, and encoded before).
        Result<void> encodes = success();
        auto check = [&](const MappingStep &step) {
            log(step);
            if (step.kind != MappingStep::Kind::protected_ || !encodes) return;
            PageAttributes probe = step.record.attributes;
            if (step.record.backing != nullptr) probe.aperture = step.record.backing->aperture();
            probe.address = PhysicalAddress{0};
            if (auto pte = F::Pte::map(probe); !pte) encodes = failure(pte.error());
        };
        applied = projected_.protect(operation.range, operation.change, check);
        if (applied) applied = encodes;
        break;
    }
    case BindOperation::Kind::rebind:
        if (!projected_.covers(operation.range)) applied = failure(Error::not_mapped);
        break;
    case BindOperation::Kind::make_sparse:
    case BindOperation::Kind::clear_sparse:
        // Sparse operations never touch a mapped page.
        if (projected_.overlaps(operation.range)) applied = failure(Error::already_mapped);
        break;
    }
    // The records once every job commits must fit the committed pool (a failure here
    // leaves the operation's steps to the caller's undo, like any failed operation).
    const std::size_t after = count + projected_.count() - before;
    if (applied && after > records_.capacity()) applied = failure(Error::out_of_storage);
    if (applied) count = after;
    return applied;
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::log_projected(const MappingStep &step) noexcept -> void
{
    if (undo_count_ == undo_capacity) {
        undo_overflowed_ = true;
        return;
    }
    ProjectedUndo &undo = undo_[undo_count_++];
    undo.remove = step.kind == MappingStep::Kind::mapped;
    undo.range = step.record.range;
    undo.target = MappingTarget{step.record.backing, step.record.offset};
    undo.attributes =
        step.kind == MappingStep::Kind::protected_ ? step.before : step.record.attributes;
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::undo_projected() noexcept -> void
{
    if (outstanding_ == 0) {
        clear_overlay();
        return;
    }
    if (undo_overflowed_) {
        rebuild_projected();
        return;
    }
    auto ignore = [](const MappingStep &) {};
    while (undo_count_ > 0) {
        const ProjectedUndo &undo = undo_[--undo_count_];
        [[maybe_unused]] auto undone =
            undo.remove ? projected_.unmap(undo.range, ignore)
                        : projected_.map(undo.range, undo.target, undo.attributes, true, ignore);
        GPUMMU_ASSERT(undone.has_value());
    }
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::rebuild_projected() noexcept -> void
{
    clear_overlay();
    for (u64 sequence = oldest_; sequence < next_sequence_; ++sequence)
        for (const BindOperation &operation : queue_[sequence % max_outstanding])
            (void)apply_projected(operation, projected_count_, false);
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::finish_job(PreparedJob &job) noexcept -> void
{
    (*pages_).release(job.reserve_);
    reserved_nodes_ -= job.needs_.nodes();
    reserved_blocks_ -= job.needs_.directories;
    --outstanding_;
    job.owner_ = nullptr;
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::write_changed_pages(const MappingView &now, TlbBatch &all) noexcept
    -> Result<void>
{
    const u64 end = now.range.end().value();
    u64 from = now.range.begin().value();  // the first page not yet written or kept
    Result<void> written = success();
    auto write_up_to = [&](u64 to) {
        if (to > from && written)
            written = write_pages(
                now, VirtualRange::from_bounds(VirtualAddress{from}, VirtualAddress{to}).value(),
                true, {}, all);
    };
    records_.visit(now.range.begin(), [&](const MappingView &old) {
        if (old.range.begin().value() >= end) return false;
        if (same_pages(old, now)) {
            const u64 keep_begin = std::max(old.range.begin().value(), from);
            const u64 keep_end = std::min(old.range.end().value(), end);
            write_up_to(keep_begin);
            from = keep_end;
        }
        return written.has_value();
    });
    write_up_to(end);
    return written;
}

template <MmuFormat F, TableMemory M, TlbInvalidator T>
auto BindSpace<F, M, T>::write_pages(const MappingView &view, VirtualRange part, bool replace,
                                     PageSizeSet sizes, TlbBatch &all) noexcept -> Result<void>
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
        auto batch = table_->map(range, std::span<const PhysicalSegment>(run), attributes, options);
        if (!batch) return failure(batch.error());
        GPUMMU_TRY(all.merge(std::move(*batch)));
        va += piece;
        offset += piece;
    }
    return success();
}

}  // namespace gpummu
