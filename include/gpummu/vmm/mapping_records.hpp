// gpummu/vmm/mapping_records.hpp: the mappings of an address space, as records.
//
// What it does
//   A record says "VAs [begin, end) show bytes [offset, offset + size) of this backing,
//   with these attributes" (or, without a backing, "show physical memory from this
//   address"). Records are the truth a driver queries; the page tables are their
//   consequence. `MappingRecords` keeps one address space's records in VA order:
//
//       VA  ----[ A: bo1 @0 ]--[ B: bo2 @64K ]-----[ C: raw PA 0x9000_0000 ]----
//
//   - map(range, target, attributes): a new record. With `replace`, records the range
//     covers are cut away first (see below); without it any overlap is already_mapped.
//   - unmap(range): every page of the range must be mapped (not_mapped otherwise); the
//     records it covers whole go, a record it cuts keeps what lies outside the range.
//   - protect(range, change): every page must be mapped; the records inside take the new
//     attributes, a record the range cuts is split first so that only pages inside change.
//     A record the change leaves as it was is not split and reports nothing (keep hint).
//   - Cutting follows drm_gpuvm's remap: a record the range cuts is reported as one
//     `remapped` step with what remains before (`previous`) and after (`next`) the range;
//     the remainders keep the record's backing, with the offset of `next` moved by the
//     bytes cut (or its physical address, without a backing). Records are never merged,
//     not even neighbours with consecutive offsets: a driver sees the records it made.
//   - Every operation reports its steps in VA order through a callback (unmapped,
//     remapped, mapped, protected), so the caller updates its own objects and knows which
//     page-table work the change needs.
//   - Queries: the record holding a VA, a visit in VA order from a VA, and through a
//     `MappingBacking` every record of that backing in every address space (for eviction
//     and defragmentation: rebind each of them).
//
// What it does not do
//   - No page tables (bind_job.hpp drives both), no VA allocation, no locking.
//   - Storage is the caller's: a pool of nodes, one per record, and the nodes of the index
//     that finds them by VA (a B+ tree, core/ordered_index.hpp; index_nodes_for(records)
//     of them, about 20-32 bytes per record). An operation needs at most
//     `nodes_per_operation` free pool nodes (the new record, and the second half of a
//     record cut on both sides); it checks before it changes anything, so a refused
//     operation (out_of_storage, overlap, not_mapped, bad arguments) leaves no trace.
//   - Neither a MappingRecords nor a MappingBacking may move while records link them
//     (the backing's list runs through nodes of every space): create in place, clear()
//     before dropping.
//
// Invariants (check_invariants proves them)
//   - Records are non-empty, 4 KiB aligned, disjoint; the VA-order thread (previous, next)
//     lists them by begin, and the index holds exactly their begins, in the same order.
//   - Every record with a backing is on that backing's list exactly once, and its bytes
//     [offset, offset + size) lie inside the backing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>

#include "gpummu/core/ordered_index.hpp"
#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/format/format_concepts.hpp"

namespace gpummu {

class MappingRecords;
class MappingBacking;

// One pool slot. Public so callers can size storage (one node per record).
struct MappingNode {
    // What lookups and the thread read come first, in one cache line.
    u64 begin = 0;     // VA
    u64 end = 0;       // VA, exclusive
    u32 previous = 0;  // the VA-order thread; no_node when absent
    u32 next = 0;
    u64 offset = 0;               // into the backing (records with a backing)
    PageAttributes attributes{};  // without a backing, `address` is the PA of `begin`
    MappingBacking *backing = nullptr;
    MappingNode *backing_previous = nullptr;  // the backing's list, across address spaces
    MappingNode *backing_next = nullptr;
    const MappingRecords *owner = nullptr;
};

// What a record says, as queries and steps report it.
struct MappingView {
    VirtualRange range{};
    MappingBacking *backing = nullptr;  // nullptr: physical memory at attributes.address
    u64 offset = 0;
    PageAttributes attributes{};
    const MappingRecords *space = nullptr;
    constexpr bool operator==(const MappingView &) const noexcept = default;
};

// Where a new record's bytes come from: a backing at an offset, or (backing nullptr)
// physical memory at the attributes' address.
struct MappingTarget {
    MappingBacking *backing = nullptr;
    u64 offset = 0;
};

// Which attributes a protect changes, and to what. Aperture and address never change
// (that is a remap, or a rebind of the backing).
struct AttributeChange {
    enum Field : u8 {
        read_only = 1u << 0,
        privileged = 1u << 1,
        atomics_disabled = 1u << 2,
        uncached = 1u << 3,
        access_counting_disabled = 1u << 4,
        kind = 1u << 5,
    };
    u8 fields = 0;
    PageAttributes values{};  // only the named fields are read

    [[nodiscard]] constexpr PageAttributes applied_to(PageAttributes attributes) const noexcept
    {
        if ((fields & read_only) != 0) attributes.read_only = values.read_only;
        if ((fields & privileged) != 0) attributes.privileged = values.privileged;
        if ((fields & atomics_disabled) != 0) attributes.atomics_disabled = values.atomics_disabled;
        if ((fields & uncached) != 0) attributes.uncached = values.uncached;
        if ((fields & access_counting_disabled) != 0)
            attributes.access_counting_disabled = values.access_counting_disabled;
        if ((fields & kind) != 0) attributes.kind = values.kind;
        return attributes;
    }
    // Does it take access away (writes, unprivileged access, atomics)? Then the TLB
    // invalidate must ack globally and order memory (sys-membar) before the change counts.
    [[nodiscard]] constexpr bool downgrades(const PageAttributes &before) const noexcept
    {
        const PageAttributes after = applied_to(before);
        return (after.read_only && !before.read_only) || (after.privileged && !before.privileged) ||
               (after.atomics_disabled && !before.atomics_disabled);
    }
};

// One thing an operation did to the records, in VA order.
struct MappingStep {
    enum class Kind : u8 {
        unmapped,   // `record` is gone
        remapped,   // `record` was cut: `previous` / `next` remain (either may be empty)
        mapped,     // `record` is new
        protected_  // `record` (whole, after any cut) took new attributes
    };
    Kind kind = Kind::mapped;
    MappingView record{};     // remapped: the record as it was before the cut
    VirtualRange previous{};  // remapped only
    VirtualRange next{};      // remapped only
    PageAttributes before{};  // protected_: the attributes it had
};

// The caller's object whose bytes mappings show (a buffer object): where its bytes live
// now, and every record of every address space that maps it.
class MappingBacking {
public:
    // `layout`: the backing's bytes in order, as physical runs (caller storage that must
    // outlive the backing or its next relocate). Sizes are multiples of 4 KiB.
    MappingBacking(Aperture aperture, std::span<const PhysicalSegment> layout) noexcept
        : aperture_(aperture),
          layout_(layout)
    {
        for (const PhysicalSegment &segment : layout) size_ += segment.size;
    }
    MappingBacking(const MappingBacking &) = delete;
    MappingBacking &operator=(const MappingBacking &) = delete;

    [[nodiscard]] Aperture aperture() const noexcept { return aperture_; }
    [[nodiscard]] u64 size() const noexcept { return size_; }
    [[nodiscard]] std::span<const PhysicalSegment> layout() const noexcept { return layout_; }
    [[nodiscard]] u64 mapping_count() const noexcept { return count_; }

    // The physical runs behind bytes [offset, offset + size), written to `out`; returns
    // how many. Errors: out_of_range (past the backing), out_of_storage (`out` too short).
    [[nodiscard]] Result<std::size_t> physical_runs(u64 offset, u64 size,
                                                    std::span<PhysicalSegment> out) const noexcept
    {
        auto end = checked_add(offset, size);
        if (!end || *end > size_ || size == 0) return failure(Error::out_of_range);
        std::size_t written = 0;
        u64 position = 0;
        for (const PhysicalSegment &segment : layout_) {
            const u64 segment_end = position + segment.size;
            if (segment_end > offset && position < *end) {
                if (written == out.size()) return failure(Error::out_of_storage);
                const u64 from = std::max(offset, position);
                const u64 to = std::min(*end, segment_end);
                out[written++] = PhysicalSegment{segment.address + (from - position), to - from};
            }
            position = segment_end;
            if (position >= *end) break;
        }
        return written;
    }

    // The bytes moved (eviction to system memory, defragmentation): the same size, a new
    // place. Records keep their offsets; the page tables of every record must be rebound
    // (bind_job.hpp). Errors: invalid_argument (another size).
    [[nodiscard]] Result<void> relocate(Aperture aperture,
                                        std::span<const PhysicalSegment> layout) noexcept
    {
        u64 size = 0;
        for (const PhysicalSegment &segment : layout) size += segment.size;
        if (size != size_) return failure(Error::invalid_argument);
        aperture_ = aperture;
        layout_ = layout;
        return success();
    }

    // Calls visit(const MappingView &) for every record of this backing, in every address
    // space (most recently made first).
    template <class Visit>
    void visit_mappings(Visit &&visit) const noexcept
    {
        for (const MappingNode *node = first_; node != nullptr; node = node->backing_next)
            visit(MappingView{
                VirtualRange::from_bounds(VirtualAddress{node->begin}, VirtualAddress{node->end})
                    .value(),
                node->backing, node->offset, node->attributes, node->owner});
    }

private:
    friend class MappingRecords;
    void link(MappingNode &node) noexcept
    {
        node.backing_previous = nullptr;
        node.backing_next = first_;
        if (first_ != nullptr) first_->backing_previous = &node;
        first_ = &node;
        ++count_;
    }
    void unlink(MappingNode &node) noexcept
    {
        if (node.backing_previous != nullptr)
            node.backing_previous->backing_next = node.backing_next;
        else
            first_ = node.backing_next;
        if (node.backing_next != nullptr)
            node.backing_next->backing_previous = node.backing_previous;
        node.backing_previous = node.backing_next = nullptr;
        --count_;
    }

    Aperture aperture_ = Aperture::video;
    std::span<const PhysicalSegment> layout_{};
    u64 size_ = 0;
    MappingNode *first_ = nullptr;
    u64 count_ = 0;
};

class MappingRecords {
public:
    static constexpr u32 no_node = OrderedIndex::absent;
    // The most nodes one operation adds: a new record plus the far half of a record cut on
    // both sides (map with replace, protect), or that half alone (unmap).
    static constexpr std::size_t nodes_per_operation = 2;

    MappingRecords() noexcept = default;
    MappingRecords(const MappingRecords &) = delete;
    MappingRecords &operator=(const MappingRecords &) = delete;

    // Index nodes for a pool of `records` nodes.
    [[nodiscard]] static constexpr std::size_t index_nodes_for(std::size_t records) noexcept
    {
        return OrderedIndex::nodes_for(records);
    }

    // Starts empty over `pool` (one node per record) and `index` (index_nodes_for(pool
    // size) nodes or more). With `link_backings` false the records stay off their backings'
    // lists (a scratch copy, such as the state prepared bind jobs will leave). Errors:
    // invalid_argument (created already, a pool of no nodes or too many to index, an index
    // too small for the pool).
    [[nodiscard]] Result<void> create(std::span<MappingNode> pool,
                                      std::span<OrderedIndexNode> index,
                                      bool link_backings = true) noexcept
    {
        if (created_ || pool.empty() || pool.size() >= no_node)
            return failure(Error::invalid_argument);
        GPUMMU_TRY(index_.create(index, pool.size()));
        pool_ = pool;
        // Nodes never used are taken in order (`unused_`), freed ones from a list: the
        // pool is not written until records need it (a large pool costs nothing up front).
        free_ = no_node;
        unused_ = 0;
        free_count_ = pool_.size();
        first_ = no_node;
        count_ = 0;
        link_backings_ = link_backings;
        created_ = true;
        return success();
    }

    [[nodiscard]] bool created() const noexcept { return created_; }
    // Ends the records (every record is dropped, and taken off its backing's list); the
    // object may be created again.
    void destroy() noexcept
    {
        clear([](const MappingStep &) {});
        created_ = false;
    }
    [[nodiscard]] std::size_t count() const noexcept { return count_; }
    [[nodiscard]] std::size_t free_nodes() const noexcept { return free_count_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return pool_.size(); }

    // ---- operations ------------------------------------------------------------------

    // A new record over `range`. Errors: invalid_argument / misaligned (empty or not 4 KiB
    // aligned range or offset), out_of_range (past the backing), already_mapped (an
    // overlap without `replace`), out_of_storage.
    template <class Sink>
    [[nodiscard]] Result<void> map(VirtualRange range, MappingTarget target,
                                   const PageAttributes &attributes, bool replace,
                                   Sink &&sink) noexcept
    {
        GPUMMU_TRY(check_range(range));
        if ((target.offset & 0xFFFu) != 0) return failure(Error::misaligned);
        if (target.backing != nullptr) {
            auto end = checked_add(target.offset, range.size());
            if (!end || *end > target.backing->size()) return failure(Error::out_of_range);
        }
        const u64 begin = range.begin().value(), end = range.end().value();
        // One descent; the checks below walk the thread. Without replace, the range must
        // be a hole: then the record before `end` is the one before `begin` too, and its
        // end alone says whether it is (one record read instead of two).
        const u32 at = floor(replace ? begin : end - 1);
        if (!replace && ends_after(at, begin)) return failure(Error::already_mapped);
        // Nodes: the new record, plus the far half of a record cut on both sides; records
        // the range covers whole are removed first and give theirs back.
        if (replace && splits_inside(at, begin, end)
                ? free_count_ < 2
                : free_count_ == 0 && !covers_whole(at, begin, end))
            return failure(Error::out_of_storage);
        // The record the new one follows: `at`, unless the range removes it whole.
        const u32 before = at == no_node || pool_[at].begin < begin ? at : pool_[at].previous;
        if (replace) remove_range(at, begin, end, sink);
        MappingNode fresh;
        fresh.begin = begin;
        fresh.end = end;
        fresh.offset = target.offset;
        fresh.attributes = attributes;
        fresh.backing = target.backing;
        const u32 node = insert(fresh, before);
        sink(MappingStep{MappingStep::Kind::mapped, view(node), {}, {}, {}});
        return success();
    }

    // Removes every page of `range`. Errors: as map's for the range, not_mapped (a page of
    // the range holds no record), out_of_storage.
    template <class Sink>
    [[nodiscard]] Result<void> unmap(VirtualRange range, Sink &&sink) noexcept
    {
        GPUMMU_TRY(check_range(range));
        const u64 begin = range.begin().value(), end = range.end().value();
        const u32 at = floor(begin);
        if (!covers(at, begin, end)) return failure(Error::not_mapped);
        if (free_count_ < (splits_inside(at, begin, end) ? 1u : 0u))
            return failure(Error::out_of_storage);
        remove_range(at, begin, end, sink);
        return success();
    }

    // New attributes for every page of `range`. Errors: as unmap's.
    template <class Sink>
    [[nodiscard]] Result<void> protect(VirtualRange range, const AttributeChange &change,
                                       Sink &&sink) noexcept
    {
        GPUMMU_TRY(check_range(range));
        const u64 begin = range.begin().value(), end = range.end().value();
        const u32 first = floor(begin);
        if (!covers(first, begin, end)) return failure(Error::not_mapped);
        // Cuts are needed only where the change does something to the cut record.
        std::size_t needed = 0;
        const u32 last = floor(end - 1);
        auto changes = [&](u32 node) {
            return change.applied_to(pool_[node].attributes) != pool_[node].attributes;
        };
        if (first == last) {
            if (changes(first))
                needed =
                    (pool_[first].begin < begin ? 1u : 0u) + (pool_[first].end > end ? 1u : 0u);
        } else {
            needed = (changes(first) && pool_[first].begin < begin ? 1u : 0u) +
                     (changes(last) && pool_[last].end > end ? 1u : 0u);
        }
        if (free_count_ < needed) return failure(Error::out_of_storage);
        for (u32 node = first; node != no_node && pool_[node].begin < end;) {
            if (!changes(node)) {
                node = pool_[node].next;
                continue;
            }
            const u32 inside = cut_to(node, begin, end, sink);
            const PageAttributes before = pool_[inside].attributes;
            pool_[inside].attributes = change.applied_to(before);
            sink(MappingStep{MappingStep::Kind::protected_, view(inside), {}, {}, before});
            node = pool_[inside].next;
        }
        return success();
    }

    // Removes every record (reporting each as unmapped); the pool is free again. The index
    // is dropped as a whole, not key by key: O(records) with a small constant (a bind
    // space empties its overlay of projected records this way after every job).
    template <class Sink>
    void clear(Sink &&sink) noexcept
    {
        for (u32 node = first_; node != no_node;) {
            sink(MappingStep{MappingStep::Kind::unmapped, view(node), {}, {}, {}});
            const u32 next = pool_[node].next;
            release(node);
            node = next;
        }
        first_ = no_node;
        count_ = 0;
        index_.clear();
    }

    // ---- queries ---------------------------------------------------------------------

    // The record holding `va`, or not_mapped.
    [[nodiscard]] Result<MappingView> find(VirtualAddress va) const noexcept
    {
        const u32 node = floor(va.value());
        if (!ends_after(node, va.value())) return failure(Error::not_mapped);
        return view(node);
    }
    // Does some record hold a page of `range`?
    [[nodiscard]] bool overlaps(VirtualRange range) const noexcept
    {
        // The last record beginning before the range's end overlaps it if any does.
        if (range.empty()) return false;
        const u32 last = floor(range.end().value() - 1);
        return ends_after(last, range.begin().value());
    }
    // Does every page of [begin, end) belong to some record?
    [[nodiscard]] bool covers(VirtualRange range) const noexcept
    {
        const u64 begin = range.begin().value();
        return !range.empty() && covers(floor(begin), begin, range.end().value());
    }
    // Calls visit(const MappingView &) for the records that end after `from`, in VA order,
    // while it returns true.
    template <class Visit>
    void visit(VirtualAddress from, Visit &&visit) const noexcept
    {
        u32 node = floor(from.value());
        if (node == no_node)
            node = first_;
        else if (pool_[node].end <= from.value())
            node = pool_[node].next;
        for (; node != no_node; node = pool_[node].next)
            if (!visit(view(node))) return;
    }

    [[nodiscard]] Result<void> check_invariants() const noexcept
    {
        if (!created_) return success();
        GPUMMU_TRY(index_.check_invariants());
        // The thread, record by record; the index must name the same records in order.
        std::size_t seen = 0;
        u32 previous = no_node;
        for (u32 node = first_; node != no_node; node = pool_[node].next) {
            if (node >= pool_.size() || seen >= count_) return failure(Error::malformed_record);
            GPUMMU_TRY(check_record(node, previous));
            previous = node;
            ++seen;
        }
        if (seen != count_ || seen + free_count_ != pool_.size() || index_.size() != count_)
            return failure(Error::malformed_record);
        bool matches = true;
        u32 expected = first_;
        index_.visit([&](u64 key, u32 node) {
            matches = matches && node == expected && pool_[node].begin == key;
            expected = node < pool_.size() ? pool_[node].next : no_node;
        });
        return matches ? success() : failure(Error::malformed_record);
    }

private:
    [[nodiscard]] static Result<void> check_range(VirtualRange range) noexcept
    {
        if (range.empty()) return failure(Error::invalid_argument);
        if ((range.begin().value() & 0xFFFu) != 0 || (range.size() & 0xFFFu) != 0)
            return failure(Error::misaligned);
        return success();
    }

    [[nodiscard]] MappingView view(u32 node) const noexcept
    {
        const MappingNode &record = pool_[node];
        return MappingView{
            VirtualRange::from_bounds(VirtualAddress{record.begin}, VirtualAddress{record.end})
                .value(),
            record.backing, record.offset, record.attributes, this};
    }

    // Is `node` a record (not no_node) that ends after `va`?
    [[nodiscard]] bool ends_after(u32 node, u64 va) const noexcept
    {
        return node != no_node && pool_[node].end > va;
    }
    // The record with the largest begin <= va, or no_node.
    [[nodiscard]] u32 floor(u64 va) const noexcept { return index_.floor(va); }
    // The first record overlapping [begin, end), or no_node; `at` is floor(begin).
    [[nodiscard]] u32 overlapping(u32 at, u64 begin, u64 end) const noexcept
    {
        u32 node = at;
        if (node == no_node)
            node = first_;
        else if (pool_[node].end <= begin)
            node = pool_[node].next;
        return node != no_node && pool_[node].begin < end ? node : no_node;
    }
    [[nodiscard]] bool covers(u32 at, u64 begin, u64 end) const noexcept
    {
        u32 node = at;
        u64 reached = begin;
        while (node != no_node && pool_[node].begin <= reached && pool_[node].end > reached) {
            reached = pool_[node].end;
            if (reached >= end) return true;
            node = pool_[node].next;
        }
        return false;
    }
    // Does some record lie entirely inside [begin, end)?
    [[nodiscard]] bool covers_whole(u32 at, u64 begin, u64 end) const noexcept
    {
        for (u32 node = overlapping(at, begin, end); node != no_node && pool_[node].begin < end;
             node = pool_[node].next)
            if (pool_[node].begin >= begin && pool_[node].end <= end) return true;
        return false;
    }
    // Does one record reach past both edges of [begin, end) (so a cut needs a new node)?
    [[nodiscard]] bool splits_inside(u32 at, u64 begin, u64 end) const noexcept
    {
        return at != no_node && pool_[at].begin < begin && pool_[at].end > end;
    }

    // Removes [begin, end) from the records, reporting unmapped / remapped steps.
    template <class Sink>
    void remove_range(u32 at, u64 begin, u64 end, Sink &sink) noexcept
    {
        u32 node = overlapping(at, begin, end);
        while (node != no_node && pool_[node].begin < end) {
            MappingNode &record = pool_[node];
            const u32 following = record.next;
            if (record.begin >= begin && record.end <= end) {
                sink(MappingStep{MappingStep::Kind::unmapped, view(node), {}, {}, {}});
                erase(node);
            } else {
                const MappingView before = view(node);
                const u64 cut_begin = std::max(begin, record.begin);
                const u64 cut_end = std::min(end, record.end);
                VirtualRange previous{}, next{};
                if (record.begin < cut_begin) previous = range_of(record.begin, cut_begin);
                if (cut_end < record.end) next = range_of(cut_end, record.end);
                if (!previous.empty() && !next.empty()) {
                    MappingNode tail = record;
                    advance(tail, cut_end);
                    record.end = cut_begin;
                    (void)insert(tail, node);
                } else if (!previous.empty()) {
                    record.end = cut_begin;
                } else {
                    const u64 old_begin = record.begin;
                    advance(record, cut_end);  // the key grows but keeps its place
                    index_.rekey(old_begin, cut_end);
                }
                sink(MappingStep{MappingStep::Kind::remapped, before, previous, next, {}});
            }
            node = following;
        }
    }

    // Splits `node` so that the part inside [begin, end) is a record of its own; reports
    // a remapped step if it was cut. Returns the inside part.
    template <class Sink>
    u32 cut_to(u32 node, u64 begin, u64 end, Sink &sink) noexcept
    {
        MappingNode &record = pool_[node];
        if (record.begin >= begin && record.end <= end) return node;
        const MappingView before = view(node);
        const u64 inside_begin = std::max(begin, record.begin);
        const u64 inside_end = std::min(end, record.end);
        VirtualRange previous{}, next{};
        u32 inside = node;
        if (record.begin < inside_begin) {
            previous = range_of(record.begin, inside_begin);
            MappingNode middle = record;
            advance(middle, inside_begin);
            record.end = inside_begin;
            inside = insert(middle, node);
        }
        if (inside_end < pool_[inside].end) {
            next = range_of(inside_end, pool_[inside].end);
            MappingNode tail = pool_[inside];
            advance(tail, inside_end);
            pool_[inside].end = inside_end;
            (void)insert(tail, inside);
        }
        sink(MappingStep{MappingStep::Kind::remapped, before, previous, next, {}});
        return inside;
    }

    // Moves a record's start to `begin` (inside it): offset or physical address follow.
    static void advance(MappingNode &record, u64 begin) noexcept
    {
        const u64 cut = begin - record.begin;
        if (record.backing != nullptr)
            record.offset += cut;
        else
            record.attributes.address = record.attributes.address + cut;
        record.begin = begin;
    }
    [[nodiscard]] static VirtualRange range_of(u64 begin, u64 end) noexcept
    {
        return VirtualRange::from_bounds(VirtualAddress{begin}, VirtualAddress{end}).value();
    }

    // ---- the index (by begin) and the VA-order thread ------------------------------------

    // Links a copy of `values` (begin, end, offset, attributes, backing) as a new record
    // right after record `before` in VA order (no_node: first), which the caller knows.
    u32 insert(const MappingNode &values, u32 before) noexcept
    {
        u32 node = free_;
        if (node != no_node)
            free_ = pool_[node].next;
        else
            node = unused_++;
        --free_count_;
        MappingNode &record = pool_[node];
        record = MappingNode{};
        record.begin = values.begin;
        record.end = values.end;
        record.offset = values.offset;
        record.attributes = values.attributes;
        record.backing = values.backing;
        record.owner = this;
        GPUMMU_ASSERT(before == floor(values.begin));
        record.previous = before;
        record.next = before == no_node ? first_ : pool_[before].next;
        if (before == no_node)
            first_ = node;
        else
            pool_[before].next = node;
        if (record.next != no_node) pool_[record.next].previous = node;
        index_.insert(record.begin, node);
        if (record.backing != nullptr && link_backings_) record.backing->link(record);
        ++count_;
        return node;
    }
    void erase(u32 node) noexcept
    {
        MappingNode &record = pool_[node];
        index_.erase(record.begin);
        if (record.previous != no_node)
            pool_[record.previous].next = record.next;
        else
            first_ = record.next;
        if (record.next != no_node) pool_[record.next].previous = record.previous;
        release(node);
        --count_;
    }
    // The node leaves its backing's list and goes back to the pool (the caller has taken
    // it out of the index and the VA-order thread, or drops them whole).
    void release(u32 node) noexcept
    {
        MappingNode &record = pool_[node];
        if (record.backing != nullptr && link_backings_) record.backing->unlink(record);
        record = MappingNode{};
        record.next = free_;
        free_ = node;
        ++free_count_;
    }

    // One record against the one before it in the thread: shape, order, no overlap, owner,
    // backing bounds and list membership.
    [[nodiscard]] Result<void> check_record(u32 node, u32 previous) const noexcept
    {
        const MappingNode &record = pool_[node];
        if (record.begin >= record.end || (record.begin & 0xFFFu) != 0 ||
            (record.end & 0xFFFu) != 0 || record.owner != this || record.previous != previous)
            return failure(Error::malformed_record);
        if (previous == no_node ? first_ != node : pool_[previous].end > record.begin)
            return failure(Error::malformed_record);
        if (record.backing != nullptr) {
            if (record.offset + (record.end - record.begin) > record.backing->size())
                return failure(Error::malformed_record);
            bool listed = false;
            for (const MappingNode *other = record.backing->first_; other != nullptr;
                 other = other->backing_next)
                listed = listed || other == &record;
            if (listed != link_backings_) return failure(Error::malformed_record);
        }
        return success();
    }

    std::span<MappingNode> pool_{};
    OrderedIndex index_;
    u32 first_ = no_node;
    u32 free_ = no_node;
    u32 unused_ = 0;  // nodes from here on were never handed out
    std::size_t free_count_ = 0;
    std::size_t count_ = 0;
    bool link_backings_ = true;
    bool created_ = false;
};

}  // namespace gpummu
