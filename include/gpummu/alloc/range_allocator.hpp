// gpummu/alloc/range_allocator.hpp: the GPU virtual-address range allocator.
//
// What it does
//   - Hands out ranges of a VA space [begin, end) in 4 KiB granules: allocate(size,
//     alignment, window, direction), reserve an exact range (fixed VA, firmware holes),
//     free a range, and find the range that holds an address.
//   - Cost: O(log n) in the number of ranges for every operation, with no alignment
//     cliff: an aligned request never scans holes that cannot hold it.
//
// How
//   The space is tiled by segments, each free or allocated, kept in a B+ tree by address
//   whose nodes live in a pool the caller supplies: no heap. A leaf entry is a segment
//   (begin, end, its largest naturally aligned power-of-two block when free, the owner tag
//   when allocated); an inner entry names a child with the first begin below it and, for
//   that subtree, the largest free hole and the largest aligned block inside any hole:
//
//     inner  [ 0x1000: hole 0x3f000 block 0x20000 | 0x80000: hole 0x10000 block 0x10000 ]
//                  |                                      |
//     leaves [0x1000-0x40000 free][0x40000-0x80000 used] [0x80000-0x90000 free] ...
//
//   A request for `size` at `alignment` certainly fits a hole that is at least
//   size + alignment - 4 KiB long, or that holds an aligned block of
//   bit_ceil(max(size, alignment)); both are subtree maxima, so the first such hole is
//   found in one descent (children outside the window are skipped). Only when no hole
//   passes either test are tight holes (big enough, but whose fit depends on where their
//   aligned points fall) tried, walking at most `tight_fit_scan_limit` segments from the
//   window's edge: the allocator may refuse a request that only a tight hole further along
//   could have met, and says so by Error::out_of_va. Bottom-up placement takes the lowest
//   hole found this way, top-down the highest.
//   Nodes hold up to 12 entries in six cache lines; every node but the root at least 6,
//   so 200,000 segments sit in five levels (a treap of the same needed about 28, each a
//   cache miss: this layout is why an operation costs a fraction of what it did).
//
// What it does not do
//   - No locking. No page tables: the caller maps what it allocates.
//   - Errors leave the allocator unchanged (storage is checked before any change: a
//     request that adds segments needs room for two more, see nodes_for).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <span>

#include "gpummu/core/ordered_index.hpp"
#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"

namespace gpummu {

// One pool slot (a tree node). Public so callers can size storage: RangeAllocator::nodes_for(n).
struct alignas(64) RangeNode {
    static constexpr std::size_t capacity = 12;
    // Leaf entry: segment [keys, extents); blocks: its largest aligned block when free (a
    //   free segment always has one, at least 4 KiB), 0 when allocated; values: owner tag.
    // Inner entry: keys: the first segment's begin below child `values`; extents: the
    //   largest free segment below it; blocks: the largest aligned block below it.
    // A lookup by address reads the first three cache lines (count, keys, values); the
    // search for a hole reads count, the maxima and (in leaves) the keys.
    u32 count = 0;
    u32 leaf = 0;
    std::array<u64, capacity> keys{};
    std::array<u32, capacity> values{};
    std::array<u64, capacity> extents{};
    std::array<u64, capacity> blocks{};
};
static_assert(sizeof(RangeNode) == 384, "six cache lines: a descent reads one node per level");

struct RangeRequest {
    u64 size = 0;
    u64 alignment = 4096;            // a power of two >= 4 KiB
    VirtualAddress window_begin{0};  // only inside [window_begin, window_end)
    VirtualAddress window_end{~u64{0}};
    bool top_down = false;
    u32 owner = 0;  // a tag kept with the range, for owner_of()
};

// An allocated range and the tag it was given.
struct OwnedRange {
    VirtualRange range{};
    u32 owner = 0;
};

class RangeAllocator {
public:
    static constexpr u64 granule = 4096;
    static constexpr unsigned tight_fit_scan_limit = 32;
    // The largest request: its power-of-two ceiling (the block search) must exist in u64.
    static constexpr u64 max_size = u64{1} << 63;
    static constexpr std::size_t fanout = RangeNode::capacity;
    static constexpr std::size_t minimum_fill = fanout / 2;
    // The root splits into two, every other node keeps minimum_fill entries: under 2^32
    // segments need at most 1 + log_6(2^31) < 13 levels.
    static constexpr std::size_t max_height = 16;

    // Pool slots for a tree of up to `segments` segments: leaves hold at least
    // minimum_fill each and every level above at least minimum_fill children per node, so
    // the nodes number under segments/5, plus one per level for the partly filled path.
    [[nodiscard]] static constexpr std::size_t nodes_for_segments(std::size_t segments) noexcept
    {
        return (segments + minimum_fill - 2) / (minimum_fill - 1) + max_height;
    }
    // Pool slots for up to `ranges` live allocations (each may split a hole in three, so
    // 2 * ranges + 1 segments).
    [[nodiscard]] static constexpr std::size_t nodes_for(std::size_t ranges) noexcept
    {
        return nodes_for_segments(2 * ranges + 1);
    }

    [[nodiscard]] static Result<RangeAllocator> create(VirtualRange space,
                                                       std::span<RangeNode> pool) noexcept
    {
        if (space.empty()) return failure(Error::invalid_argument);
        if (!space.begin().is_aligned_to(granule) || !space.end().is_aligned_to(granule))
            return failure(Error::misaligned);
        if (pool.size() < nodes_for_segments(1) || pool.size() >= no_node)
            return failure(Error::invalid_argument);
        RangeAllocator allocator;
        allocator.pool_ = pool.data();
        allocator.segment_capacity_ = (pool.size() - max_height) * (minimum_fill - 1);
        allocator.space_ = space;
        allocator.tree_nodes_.reset(pool.data(), pool.size());
        allocator.root_ = allocator.take();
        RangeNode &root = allocator.pool_[allocator.root_];
        root.leaf = 1;
        place(root, 0,
              Entry{space.begin().value(), space.end().value(),
                    largest_aligned_block(space.begin().value(), space.end().value()), 0});
        allocator.segments_ = 1;
        allocator.height_ = 1;
        return allocator;
    }

    RangeAllocator(RangeAllocator &&) noexcept = default;
    RangeAllocator &operator=(RangeAllocator &&) noexcept = default;
    RangeAllocator(const RangeAllocator &) = delete;
    RangeAllocator &operator=(const RangeAllocator &) = delete;

    // Errors: invalid_argument (size 0 or above 2^63, alignment not a power of two, empty
    // window), out_of_range (window outside the space), out_of_va (no hole fits),
    // out_of_storage (no pool room for the split). No placement's end wraps past 2^64.
    [[nodiscard]] Result<VirtualRange> allocate(const RangeRequest &request) noexcept
    {
        if (request.size == 0 || request.size > max_size || !is_power_of_two(request.alignment))
            return failure(Error::invalid_argument);
        auto size = align_up(request.size, granule);
        if (!size) return failure(Error::out_of_va);
        u64 alignment = std::max(request.alignment, granule);
        if (request.window_end <= request.window_begin) return failure(Error::invalid_argument);
        auto rounded_begin = align_up(request.window_begin.value(), granule);
        if (!rounded_begin) return failure(Error::out_of_range);
        u64 window_begin = std::max(*rounded_begin, space_.begin().value());
        u64 window_end =
            std::min(align_down(request.window_end.value(), granule), space_.end().value());
        if (window_end <= window_begin) return failure(Error::out_of_range);
        if (segments_ + 2 > segment_capacity_) return failure(Error::out_of_storage);

        Fit fit{*size, alignment, window_begin, window_end, request.top_down};
        Path path;
        u64 start = 0;
        bool found = find_guaranteed(root_, 0, space_.end().value(), fit, path, start);
        if (!found) found = find_tight(fit, path, start);
        if (!found) return failure(Error::out_of_va);
        carve(path, start, start + *size, request.owner);
        ++live_;
        return VirtualRange::from_bounds(VirtualAddress{start}, VirtualAddress{start + *size});
    }

    // Takes exactly `range` (granule-aligned, inside the space, entirely free), tagged `owner`.
    [[nodiscard]] Result<VirtualRange> reserve(VirtualRange range, u32 owner = 0) noexcept
    {
        if (range.empty()) return failure(Error::invalid_argument);
        if (!range.begin().is_aligned_to(granule) || !range.end().is_aligned_to(granule))
            return failure(Error::misaligned);
        if (!space_.contains(range)) return failure(Error::out_of_range);
        Path path = locate(range.begin().value());
        const RangeNode &leaf = pool_[path.leaf];
        if (leaf.blocks[path.position] == 0 || leaf.extents[path.position] < range.end().value())
            return failure(Error::overlap);
        if (segments_ + 2 > segment_capacity_) return failure(Error::out_of_storage);
        carve(path, range.begin().value(), range.end().value(), owner);
        ++live_;
        return range;
    }

    // Frees a range allocate() or reserve() returned. Errors: out_of_range, double_free
    // (the address is in a free hole), not_allocated (not exactly an allocated range).
    [[nodiscard]] Result<void> free(VirtualRange range) noexcept
    {
        if (!space_.contains(range) || range.empty()) return failure(Error::out_of_range);
        Path path = locate(range.begin().value());
        const RangeNode &leaf = pool_[path.leaf];
        const u32 at = path.position;
        if (leaf.blocks[at] != 0) return failure(Error::double_free);
        const u64 begin = leaf.keys[at], end = leaf.extents[at];
        if (begin != range.begin().value() || end != range.end().value())
            return failure(Error::not_allocated);
        // Coalesce with free neighbours: they tile the space, so they touch this one (in
        // the same leaf, or found by a descent).
        u64 merged_begin = begin, merged_end = end;
        bool previous_free = false, next_free = false;
        if (begin > space_.begin().value()) {
            const Path before = at > 0 ? path : locate(begin - 1);
            const u32 index = at > 0 ? at - 1 : before.position;
            previous_free = pool_[before.leaf].blocks[index] != 0;
            if (previous_free) merged_begin = pool_[before.leaf].keys[index];
        }
        if (end < space_.end().value()) {
            const Path after = at + 1 < leaf.count ? path : locate(end);
            const u32 index = at + 1 < leaf.count ? at + 1 : after.position;
            next_free = pool_[after.leaf].blocks[index] != 0;
            if (next_free) merged_end = pool_[after.leaf].extents[index];
        }
        // The merged hole keeps the first segment's entry; the others go. Neighbours in the
        // same leaf (the common case) merge there, and the leaf rebalances once.
        const bool previous_here = !previous_free || at > 0;
        const bool next_here = !next_free || at + 1 < leaf.count;
        if (previous_here && next_here) {
            RangeNode &node = pool_[path.leaf];
            const u32 survivor = previous_free ? at - 1 : at;
            node.extents[survivor] = merged_end;
            node.blocks[survivor] = largest_aligned_block(merged_begin, merged_end);
            node.values[survivor] = 0;
            if (next_free) remove(node, at + 1);
            if (previous_free) remove(node, at);
            segments_ -= (next_free ? 1u : 0u) + (previous_free ? 1u : 0u);
            rebalance(path);
            --live_;
            return success();
        }
        if (next_free) erase_entry(locate(end));
        if (previous_free) erase_entry(locate(begin));
        Path survivor = locate(merged_begin);
        RangeNode &node = pool_[survivor.leaf];
        node.extents[survivor.position] = merged_end;
        node.blocks[survivor.position] = largest_aligned_block(merged_begin, merged_end);
        node.values[survivor.position] = 0;
        refresh_up(survivor, survivor.depth, survivor.leaf);
        --live_;
        return success();
    }

    // The allocated range holding `address`, or Error::not_mapped.
    [[nodiscard]] Result<VirtualRange> find(VirtualAddress address) const noexcept
    {
        auto owned = owner_of(address);
        if (!owned) return failure(owned.error());
        return owned->range;
    }
    // The allocated range holding `address` and its owner tag: O(log n).
    [[nodiscard]] Result<OwnedRange> owner_of(VirtualAddress address) const noexcept
    {
        if (!space_.contains(address)) return failure(Error::out_of_range);
        const Path path = locate(address.value());
        const RangeNode &leaf = pool_[path.leaf];
        if (leaf.blocks[path.position] != 0) return failure(Error::not_mapped);
        return OwnedRange{VirtualRange::from_bounds(VirtualAddress{leaf.keys[path.position]},
                                                    VirtualAddress{leaf.extents[path.position]})
                              .value(),
                          leaf.values[path.position]};
    }

    [[nodiscard]] std::size_t live_ranges() const noexcept { return live_; }
    // Pool slots the tree holds now (for bookkeeping-bytes reports).
    [[nodiscard]] std::size_t nodes_in_use() const noexcept { return tree_nodes_.in_use(); }
    [[nodiscard]] u64 largest_hole() const noexcept
    {
        u64 hole = 0;
        const RangeNode &root = pool_[root_];
        for (u32 i = 0; i < root.count; ++i) hole = std::max(hole, hole_of(root, i));
        return hole;
    }
    [[nodiscard]] VirtualRange space() const noexcept { return space_; }

    // Full audit for tests: segments tile the space in order, no two free neighbours,
    // every inner entry holds its child's exact first key and maxima, fill and depth hold,
    // counts match.
    [[nodiscard]] Result<void> check_invariants() const noexcept
    {
        Audit audit{space_.begin().value(), false, 0, 0, 0};
        if (!audit_below(root_, 1, audit)) return failure(Error::malformed_record);
        if (audit.cursor != space_.end().value() || audit.allocated != live_ ||
            audit.segments != segments_ || audit.nodes != tree_nodes_.in_use())
            return failure(Error::malformed_record);
        return success();
    }

private:
    static constexpr u32 no_node = 0xFFFF'FFFFu;

    struct Fit {
        u64 size;
        u64 alignment;
        u64 window_begin;
        u64 window_end;
        bool top_down;
        [[nodiscard]] u64 slack() const noexcept { return size + alignment - granule; }
        [[nodiscard]] u64 block() const noexcept
        {
            return std::bit_ceil(std::max(size, alignment));
        }
    };
    struct Entry {
        u64 key;
        u64 extent;
        u64 block;
        u32 value;
    };
    struct Step {
        u32 node;
        u32 slot;
    };
    // Where a descent went: the inner nodes and slots taken, the leaf and the entry.
    struct Path {
        std::array<Step, max_height> steps{};
        std::size_t depth = 0;
        u32 leaf = no_node;
        u32 position = 0;
    };

    // The largest naturally aligned power-of-two block inside [begin, end): either the
    // one of the largest power of two below the length or half of it.
    static u64 largest_aligned_block(u64 begin, u64 end) noexcept
    {
        if (end <= begin) return 0;
        u64 block = std::bit_floor(end - begin);
        for (; block >= granule; block /= 2) {
            u64 start = (begin + block - 1) & ~(block - 1);
            if (start >= begin && start <= end && end - start >= block) return block;  // no wrap
        }
        return 0;
    }

    // Where `fit` lands in [begin, end) clipped to the window, or not_found.
    static constexpr u64 not_found = ~u64{0};
    static u64 place(const Fit &fit, u64 begin, u64 end) noexcept
    {
        begin = std::max(begin, fit.window_begin);
        end = std::min(end, fit.window_end);
        if (end <= begin || end - begin < fit.size) return not_found;
        if (fit.top_down) {
            u64 start = (end - fit.size) & ~(fit.alignment - 1);
            return start >= begin ? start : not_found;
        }
        u64 start = (begin + fit.alignment - 1) & ~(fit.alignment - 1);  // wraps below begin
        return start >= begin && start <= end && end - start >= fit.size ? start : not_found;
    }

    // ---- the search ------------------------------------------------------------------------

    // The lowest (top-down: highest) hole below `node` that certainly fits and places
    // inside the window; children whose addresses lie outside the window are skipped.
    // `cover_end`: where the node's addresses end.
    bool find_guaranteed(u32 node, std::size_t depth, u64 cover_end, const Fit &fit, Path &path,
                         u64 &start) const noexcept
    {
        const RangeNode &n = pool_[node];
        for (u32 k = 0; k < n.count; ++k) {
            const u32 i = fit.top_down ? n.count - 1 - k : k;
            if (n.blocks[i] == 0) continue;  // allocated, or nothing free below
            if (hole_of(n, i) < fit.slack() && n.blocks[i] < fit.block()) continue;
            if (n.leaf != 0) {
                const u64 placed = place(fit, n.keys[i], n.extents[i]);
                if (placed == not_found) continue;
                path.depth = depth;
                path.leaf = node;
                path.position = i;
                start = placed;
                return true;
            }
            const u64 end = i + 1 < n.count ? n.keys[i + 1] : cover_end;
            if (end <= fit.window_begin || n.keys[i] >= fit.window_end) continue;
            path.steps[depth] = Step{node, i};
            if (find_guaranteed(n.values[i], depth + 1, end, fit, path, start)) return true;
        }
        return false;
    }

    // Tight holes: walk segments from the window's edge in address order, at most
    // tight_fit_scan_limit of them (free or not).
    bool find_tight(const Fit &fit, Path &path, u64 &start) const noexcept
    {
        u64 cursor = fit.top_down ? fit.window_end - 1 : fit.window_begin;
        for (unsigned visited = 0; visited < tight_fit_scan_limit; ++visited) {
            if (cursor < space_.begin().value() || cursor >= space_.end().value()) return false;
            path = locate(cursor);
            const RangeNode &n = pool_[path.leaf];
            const u64 begin = n.keys[path.position], end = n.extents[path.position];
            if (n.blocks[path.position] != 0 && end - begin >= fit.size) {
                const u64 placed = place(fit, begin, end);
                if (placed != not_found) {
                    start = placed;
                    return true;
                }
            }
            if (fit.top_down) {
                if (begin <= fit.window_begin) return false;
                cursor = begin - 1;
            } else {
                if (end >= fit.window_end) return false;
                cursor = end;
            }
        }
        return false;
    }

    // Splits the free segment at `path` around [begin, end) and marks that part allocated:
    // the entry itself becomes the allocated part (its key moves within its own extent, so
    // the order holds), the remainders become free entries beside it.
    void carve(Path path, u64 begin, u64 end, u32 owner) noexcept
    {
        RangeNode &leaf = pool_[path.leaf];
        const u32 at = path.position;
        const u64 hole_begin = leaf.keys[at], hole_end = leaf.extents[at];
        leaf.keys[at] = begin;
        leaf.extents[at] = end;
        leaf.blocks[at] = 0;
        leaf.values[at] = owner;
        bool split = false;
        if (end < hole_end) {
            split = insert_entry(path, at + 1,
                                 Entry{end, hole_end, largest_aligned_block(end, hole_end), 0});
            ++segments_;
        } else {
            refresh_up(path, path.depth, path.leaf);
        }
        if (hole_begin < begin) {
            if (split) {
                path = locate(begin);  // the entry may have moved to a new node
            }
            (void)insert_entry(
                path, path.position,
                Entry{hole_begin, begin, largest_aligned_block(hole_begin, begin), 0});
            ++segments_;
        }
    }

    // ---- the tree --------------------------------------------------------------------------

    // The leaf entry whose segment holds `address` (segments tile the space, so one always
    // does), and the way down to it.
    [[nodiscard]] Path locate(u64 address) const noexcept
    {
        Path path;
        u32 at = root_;
        while (pool_[at].leaf == 0) {
            const u32 slot = detail::last_at_most(pool_[at], address);
            path.steps[path.depth++] = Step{at, slot};
            at = pool_[at].values[slot];
        }
        path.leaf = at;
        path.position = detail::last_at_most(pool_[at], address);
        return path;
    }

    [[nodiscard]] static u64 hole_of(const RangeNode &node, u32 i) noexcept
    {
        if (node.leaf == 0) return node.extents[i];
        return node.blocks[i] != 0 ? node.extents[i] - node.keys[i] : 0;
    }
    // The entry a parent holds for `child`: its first key and its maxima.
    [[nodiscard]] Entry entry_for(u32 child) const noexcept
    {
        const RangeNode &node = pool_[child];
        Entry entry{node.keys[0], 0, 0, child};
        for (u32 i = 0; i < node.count; ++i) {
            entry.extent = std::max(entry.extent, hole_of(node, i));
            entry.block = std::max(entry.block, node.blocks[i]);
        }
        return entry;
    }
    void set_entry(u32 parent, u32 slot, u32 child) noexcept
    {
        const Entry entry = entry_for(child);
        RangeNode &node = pool_[parent];
        node.keys[slot] = entry.key;
        node.extents[slot] = entry.extent;
        node.blocks[slot] = entry.block;
        node.values[slot] = entry.value;
    }
    // `node` (the child of path.steps[depth - 1]) changed: the entries naming it and its
    // ancestors follow.
    void refresh_up(const Path &path, std::size_t depth, u32 node) noexcept
    {
        while (depth > 0) {
            const Step step = path.steps[--depth];
            set_entry(step.node, step.slot, node);
            node = step.node;
        }
    }

    static void place(RangeNode &node, u32 position, const Entry &entry) noexcept
    {
        for (u32 i = node.count; i > position; --i) copy_entry(node, i - 1, node, i);
        node.keys[position] = entry.key;
        node.extents[position] = entry.extent;
        node.blocks[position] = entry.block;
        node.values[position] = entry.value;
        ++node.count;
    }
    static void remove(RangeNode &node, u32 position) noexcept
    {
        for (u32 i = position; i + 1 < node.count; ++i) copy_entry(node, i + 1, node, i);
        --node.count;
    }
    static void copy_entry(const RangeNode &from, u32 i, RangeNode &to, u32 j) noexcept
    {
        to.keys[j] = from.keys[i];
        to.extents[j] = from.extents[i];
        to.blocks[j] = from.blocks[i];
        to.values[j] = from.values[i];
    }

    // Puts `entry` at `position` of the path's leaf; a full node splits (7 + 6) and its
    // right half goes up as the next entry to place. Returns whether a node split (the
    // path no longer leads to every entry).
    bool insert_entry(const Path &path, u32 position, Entry entry) noexcept
    {
        u32 at = path.leaf;
        std::size_t depth = path.depth;
        bool split = false;
        for (;;) {
            RangeNode &node = pool_[at];
            if (node.count < fanout) {
                place(node, position, entry);
                refresh_up(path, depth, at);
                return split;
            }
            split = true;
            const u32 right = take();
            split_node(node, pool_[right], position, entry);
            if (depth == 0) {
                const u32 top = take();
                pool_[top].leaf = 0;
                place(pool_[top], 0, entry_for(at));
                place(pool_[top], 1, entry_for(right));
                root_ = top;
                ++height_;
                return split;
            }
            const Step up = path.steps[depth - 1];
            set_entry(up.node, up.slot, at);
            entry = entry_for(right);
            position = up.slot + 1;
            at = up.node;
            --depth;
        }
    }
    static void split_node(RangeNode &left, RangeNode &right, u32 position,
                           const Entry &entry) noexcept
    {
        RangeNode all;  // fanout + 1 entries do not fit one node: place the last by hand
        constexpr u32 kept = (fanout + 2) / 2;
        static_assert(kept >= minimum_fill && fanout + 1 - kept >= minimum_fill);
        // Entries 0..fanout of the merged sequence: index < position from left as is,
        // == position the new one, > position from left shifted by one.
        auto source = [&](u32 index, RangeNode &to, u32 slot) {
            if (index == position) {
                to.keys[slot] = entry.key;
                to.extents[slot] = entry.extent;
                to.blocks[slot] = entry.block;
                to.values[slot] = entry.value;
            } else {
                copy_entry(all, index < position ? index : index - 1, to, slot);
            }
        };
        for (u32 i = 0; i < fanout; ++i) copy_entry(left, i, all, i);
        all.count = static_cast<u32>(fanout);
        for (u32 i = kept; i <= fanout; ++i) source(i, right, i - kept);
        for (u32 i = 0; i < kept; ++i) source(i, left, i);
        left.count = kept;
        right.count = static_cast<u32>(fanout + 1 - kept);
        right.leaf = left.leaf;
    }

    // Removes the path's leaf entry; a node below minimum_fill borrows from a sibling above
    // it (until it is full enough) or merges with one, and the parent loses an entry in turn.
    void erase_entry(const Path &path) noexcept
    {
        remove(pool_[path.leaf], path.position);
        --segments_;
        rebalance(path);
    }
    // The path's leaf lost entries (its others may have changed): refill or merge it as
    // erase_entry says, and bring the entries above up to date.
    void rebalance(const Path &path) noexcept
    {
        u32 at = path.leaf;
        std::size_t depth = path.depth;
        while (depth > 0 && pool_[at].count < minimum_fill) {
            const Step up = path.steps[depth - 1];
            RangeNode &parent = pool_[up.node];
            if (up.slot > 0 && pool_[parent.values[up.slot - 1]].count > minimum_fill) {
                RangeNode &left = pool_[parent.values[up.slot - 1]];
                place(pool_[at], 0,
                      Entry{left.keys[left.count - 1], left.extents[left.count - 1],
                            left.blocks[left.count - 1], left.values[left.count - 1]});
                --left.count;
                set_entry(up.node, up.slot - 1, parent.values[up.slot - 1]);
                set_entry(up.node, up.slot, at);
                continue;  // a leaf that lost two entries may need a second one
            }
            if (up.slot + 1 < parent.count &&
                pool_[parent.values[up.slot + 1]].count > minimum_fill) {
                RangeNode &right = pool_[parent.values[up.slot + 1]];
                place(pool_[at], pool_[at].count,
                      Entry{right.keys[0], right.extents[0], right.blocks[0], right.values[0]});
                remove(right, 0);
                set_entry(up.node, up.slot, at);
                set_entry(up.node, up.slot + 1, parent.values[up.slot + 1]);
                continue;
            }
            const u32 left_slot = up.slot > 0 ? up.slot - 1 : up.slot;
            const u32 left = parent.values[left_slot], right = parent.values[left_slot + 1];
            for (u32 i = 0; i < pool_[right].count; ++i)
                copy_entry(pool_[right], i, pool_[left], pool_[left].count + i);
            pool_[left].count += pool_[right].count;
            give(right);
            remove(parent, left_slot + 1);
            set_entry(up.node, left_slot, left);
            at = up.node;
            --depth;
        }
        if (depth > 0) refresh_up(path, depth, at);
        if (pool_[root_].leaf == 0 && pool_[root_].count == 1) {
            const u32 old = root_;
            root_ = pool_[old].values[0];
            give(old);
            --height_;
        }
    }

    u32 take() noexcept
    {
        const u32 node = tree_nodes_.take();
        pool_[node].leaf = 0;
        return node;
    }
    void give(u32 node) noexcept { tree_nodes_.give(node); }

    struct Audit {
        u64 cursor;
        bool previous_free;
        std::size_t allocated;
        std::size_t segments;
        std::size_t nodes;
    };
    bool audit_below(u32 at, std::size_t level, Audit &audit) const noexcept
    {
        if (at >= tree_nodes_.handed_out() || level > height_ || audit.nodes > tree_nodes_.in_use())
            return false;
        const RangeNode &node = pool_[at];
        ++audit.nodes;
        const std::size_t least = at == root_ ? (node.leaf != 0 ? 1 : 2) : minimum_fill;
        if (node.count < least || node.count > fanout || (node.leaf != 0) != (level == height_))
            return false;
        for (u32 i = 0; i < node.count; ++i) {
            if (node.leaf != 0) {
                const bool is_free = node.blocks[i] != 0;
                if (node.keys[i] != audit.cursor || node.extents[i] <= node.keys[i]) return false;
                if (is_free && audit.previous_free) return false;  // must have merged
                if (node.blocks[i] !=
                    (is_free ? largest_aligned_block(node.keys[i], node.extents[i]) : 0))
                    return false;
                if (is_free && node.values[i] != 0) return false;
                audit.previous_free = is_free;
                audit.cursor = node.extents[i];
                audit.allocated += is_free ? 0 : 1;
                ++audit.segments;
                continue;
            }
            const Entry expected = entry_for(node.values[i]);
            if (!audit_below(node.values[i], level + 1, audit)) return false;
            if (node.keys[i] != expected.key || node.extents[i] != expected.extent ||
                node.blocks[i] != expected.block)
                return false;
        }
        return true;
    }

    RangeAllocator() noexcept = default;

    RangeNode *pool_ = nullptr;
    u32 root_ = no_node;
    detail::TreeNodes<RangeNode> tree_nodes_;
    std::size_t height_ = 0;
    std::size_t segments_ = 0;
    std::size_t segment_capacity_ = 0;
    std::size_t live_ = 0;
    VirtualRange space_{};
};

}  // namespace gpummu
