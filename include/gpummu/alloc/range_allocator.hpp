// gpummu/alloc/range_allocator.hpp: the GPU virtual-address range allocator.
//
// What it does
//   - Hands out ranges of a VA space [begin, end) in 4 KiB granules: allocate(size,
//     alignment, window, direction), reserve an exact range (fixed VA, firmware holes),
//     free a range, and find the range that holds an address.
//   - Cost: O(log n) expected in the number of ranges for every operation, with no
//     alignment cliff: an aligned request never scans holes that cannot hold it.
//
// How
//   The space is tiled by segments, each free or allocated, kept in a treap (a binary
//   search tree by address, balanced by random priorities) whose nodes live in a pool the
//   caller supplies: no heap. Every node also carries, for its subtree, the largest free
//   hole and the largest naturally aligned power-of-two block inside any free hole:
//
//     [0x40000, 0x80000) allocated               root: by address, highest priority
//     |  subtree: largest hole 0x3f000, largest aligned block 0x20000
//     +-- left:  [0x1000, 0x40000) free   hole 0x3f000, block 0x20000
//     +-- right: [0x80000, 0x90000) free  hole 0x10000, block 0x10000
//
//   A request for `size` at `alignment` certainly fits a hole that is at least
//   size + alignment - 4 KiB long, or that holds an aligned block of
//   bit_ceil(max(size, alignment)); both are subtree maxima, so the first such hole is
//   found in one descent. Only when no hole passes either test are tight holes (big
//   enough, but whose fit depends on where their aligned points fall) tried, walking at
//   most `tight_fit_scan_limit` segments from the window's edge: the allocator may refuse a request
//   that only a tight hole further along could have met, and says so by Error::out_of_va.
//   Bottom-up placement takes the lowest hole found this way, top-down the highest.
//
// What it does not do
//   - No locking. No page tables: the caller maps what it allocates.
//   - Errors leave the allocator unchanged (the node pool is checked before any change).
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <span>

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"

namespace gpummu {

// One pool slot. Public so callers can size storage: RangeAllocator::nodes_for(n).
struct RangeNode {
    u64 begin = 0;
    u64 end = 0;
    u64 largest_hole = 0;   // subtree maximum of free segment sizes
    u64 largest_block = 0;  // subtree maximum of the largest aligned 2^k block in a free segment
    u64 own_block = 0;      // that block for this segment alone (0 when allocated)
    u32 left = 0;           // 0: none (slot 0 is never used)
    u32 right = 0;
    u32 owner = 0;          // allocated: the caller's tag (RangeRequest::owner)
    u32 priority : 31 = 0;  // treap heap order
    u32 free : 1 = 0;
};
static_assert(sizeof(RangeNode) == 56, "a node stays 56 bytes: the tree is cache-bound");

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

    // Pool slots for up to `ranges` live allocations (each may split a hole in three).
    [[nodiscard]] static constexpr std::size_t nodes_for(std::size_t ranges) noexcept
    {
        return 2 * ranges + 2;
    }

    [[nodiscard]] static Result<RangeAllocator> create(VirtualRange space,
                                                       std::span<RangeNode> pool) noexcept
    {
        if (space.empty()) return failure(Error::invalid_argument);
        if (!space.begin().is_aligned_to(granule) || !space.end().is_aligned_to(granule))
            return failure(Error::misaligned);
        if (pool.size() < 2 || pool.size() > u64{0xFFFFFFFF})
            return failure(Error::invalid_argument);
        RangeAllocator allocator;
        allocator.pool_ = pool.data();
        allocator.capacity_ = static_cast<u32>(pool.size());
        // Slots 1..capacity-1 form the free list through `right`.
        for (u32 i = 1; i < allocator.capacity_; ++i) {
            pool[i] = RangeNode{};
            pool[i].right = i + 1 < allocator.capacity_ ? i + 1 : 0;
        }
        allocator.free_slot_ = 1;
        allocator.free_slots_ = allocator.capacity_ - 1;
        allocator.space_ = space;
        allocator.root_ = allocator.make_node(space.begin().value(), space.end().value(), true);
        return allocator;
    }

    RangeAllocator(RangeAllocator &&) noexcept = default;
    RangeAllocator &operator=(RangeAllocator &&) noexcept = default;
    RangeAllocator(const RangeAllocator &) = delete;
    RangeAllocator &operator=(const RangeAllocator &) = delete;

    // Errors: invalid_argument (size 0 or above 2^63, alignment not a power of two, empty
    // window), out_of_range (window outside the space), out_of_va (no hole fits),
    // out_of_storage (no pool slot for the split). No placement's end wraps past 2^64.
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
        if (free_slots_ < 2) return failure(Error::out_of_storage);

        Fit fit{*size, alignment, window_begin, window_end, request.top_down};
        u64 start = 0;
        u32 hole = find_guaranteed(root_, fit, start);
        if (hole == 0) hole = find_tight(fit, start);
        if (hole == 0) return failure(Error::out_of_va);
        carve(hole, start, start + *size, request.owner);
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
        u32 node = find_containing(range.begin().value());
        if (!pool_[node].free || pool_[node].end < range.end().value())
            return failure(Error::overlap);
        if (free_slots_ < 2) return failure(Error::out_of_storage);
        carve(node, range.begin().value(), range.end().value(), owner);
        ++live_;
        return range;
    }

    // Frees a range allocate() or reserve() returned. Errors: out_of_range, double_free
    // (the address is in a free hole), not_allocated (not exactly an allocated range).
    [[nodiscard]] Result<void> free(VirtualRange range) noexcept
    {
        if (!space_.contains(range) || range.empty()) return failure(Error::out_of_range);
        u32 node = find_containing(range.begin().value());
        if (pool_[node].free) return failure(Error::double_free);
        if (pool_[node].begin != range.begin().value() || pool_[node].end != range.end().value())
            return failure(Error::not_allocated);
        u64 begin = pool_[node].begin, end = pool_[node].end;
        // Coalesce with free neighbours: they tile the space, so they touch this one.
        if (begin > space_.begin().value()) {
            u32 before = find_containing(begin - 1);
            if (pool_[before].free) {
                begin = pool_[before].begin;
                root_ = erase(root_, begin);
            }
        }
        if (end < space_.end().value()) {
            u32 after = find_containing(end);
            if (pool_[after].free) {
                u64 after_end = pool_[after].end;
                root_ = erase(root_, end);
                end = after_end;
            }
        }
        // The node keeps its slot; its key moves to `begin`, where only it now starts.
        set_segment(node, begin, end, true);
        refresh(root_, begin);
        --live_;
        return success();
    }

    // The allocated range holding `address`, or Error::not_mapped.
    [[nodiscard]] Result<VirtualRange> find(VirtualAddress address) const noexcept
    {
        if (!space_.contains(address)) return failure(Error::out_of_range);
        const RangeNode &node = pool_[find_containing(address.value())];
        if (node.free) return failure(Error::not_mapped);
        return VirtualRange::from_bounds(VirtualAddress{node.begin}, VirtualAddress{node.end});
    }
    // The allocated range holding `address` and its owner tag: O(log n).
    [[nodiscard]] Result<OwnedRange> owner_of(VirtualAddress address) const noexcept
    {
        if (!space_.contains(address)) return failure(Error::out_of_range);
        const RangeNode &node = pool_[find_containing(address.value())];
        if (node.free) return failure(Error::not_mapped);
        return OwnedRange{
            VirtualRange::from_bounds(VirtualAddress{node.begin}, VirtualAddress{node.end}).value(),
            node.owner};
    }

    [[nodiscard]] std::size_t live_ranges() const noexcept { return live_; }
    [[nodiscard]] u64 largest_hole() const noexcept
    {
        return root_ ? pool_[root_].largest_hole : 0;
    }
    [[nodiscard]] VirtualRange space() const noexcept { return space_; }

    // Full audit for tests: segments tile the space in order, no two free neighbours,
    // the subtree maxima and the heap order of priorities hold, counts match.
    [[nodiscard]] Result<void> check_invariants() const noexcept
    {
        u64 cursor = space_.begin().value();
        bool previous_free = false;
        std::size_t allocated = 0, nodes = 0;
        if (!audit(root_, cursor, previous_free, allocated, nodes, ~u32{0}))
            return failure(Error::malformed_record);
        if (cursor != space_.end().value() || allocated != live_ ||
            nodes + free_slots_ + 1 != capacity_)
            return failure(Error::malformed_record);
        return success();
    }

private:
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

    [[nodiscard]] bool subtree_guarantees(u32 node, const Fit &fit) const noexcept
    {
        return node != 0 && (pool_[node].largest_hole >= fit.slack() ||
                             pool_[node].largest_block >= fit.block());
    }
    [[nodiscard]] bool node_guarantees(u32 node, const Fit &fit) const noexcept
    {
        const RangeNode &n = pool_[node];
        return n.free && (n.end - n.begin >= fit.slack() ||
                          largest_aligned_block(n.begin, n.end) >= fit.block());
    }

    // The lowest (top-down: highest) hole that certainly fits, ignoring the window in the
    // descent and checking it at the candidate; subtrees wholly outside the window are cut.
    u32 find_guaranteed(u32 node, const Fit &fit, u64 &start) const noexcept
    {
        if (!subtree_guarantees(node, fit)) return 0;
        const RangeNode &n = pool_[node];
        u32 first = fit.top_down ? n.right : n.left;
        u32 second = fit.top_down ? n.left : n.right;
        bool first_in_window = fit.top_down ? n.end < fit.window_end : n.begin > fit.window_begin;
        bool second_in_window = fit.top_down ? n.begin > fit.window_begin : n.end < fit.window_end;
        if (first_in_window) {
            if (u32 found = find_guaranteed(first, fit, start)) return found;
        }
        if (node_guarantees(node, fit)) {
            u64 placed = place(fit, n.begin, n.end);
            if (placed != not_found) {
                start = placed;
                return node;
            }
        }
        if (second_in_window) return find_guaranteed(second, fit, start);
        return 0;
    }

    // Tight holes: walk segments from the window's edge in address order, at most
    // tight_fit_scan_limit of them (free or not).
    u32 find_tight(const Fit &fit, u64 &start) const noexcept
    {
        u64 cursor = fit.top_down ? fit.window_end - 1 : fit.window_begin;
        for (unsigned visited = 0; visited < tight_fit_scan_limit; ++visited) {
            if (cursor < space_.begin().value() || cursor >= space_.end().value()) return 0;
            u32 node = find_containing(cursor);
            const RangeNode &n = pool_[node];
            if (n.free && n.end - n.begin >= fit.size) {
                u64 placed = place(fit, n.begin, n.end);
                if (placed != not_found) {
                    start = placed;
                    return node;
                }
            }
            if (fit.top_down) {
                if (n.begin <= fit.window_begin) return 0;
                cursor = n.begin - 1;
            } else {
                if (n.end >= fit.window_end) return 0;
                cursor = n.end;
            }
        }
        return 0;
    }

    // Splits free segment `node` around [begin, end) and marks that part allocated.
    // Splits free segment `node` around [begin, end) and marks that part allocated: the
    // node itself becomes the allocated part (its key moves within its own old extent, so
    // the tree order holds), and the remainders are inserted as new free nodes.
    void carve(u32 node, u64 begin, u64 end, u32 owner) noexcept
    {
        u64 hole_begin = pool_[node].begin, hole_end = pool_[node].end;
        set_segment(node, begin, end, false);
        pool_[node].owner = owner;
        refresh(root_, begin);
        if (hole_begin < begin) root_ = insert(root_, make_node(hole_begin, begin, true));
        if (end < hole_end) root_ = insert(root_, make_node(end, hole_end, true));
    }

    void set_segment(u32 index, u64 begin, u64 end, bool is_free) noexcept
    {
        RangeNode &n = pool_[index];
        n.begin = begin;
        n.end = end;
        n.free = is_free;
        n.own_block = is_free ? largest_aligned_block(begin, end) : 0;
    }

    // Recomputes the subtree maxima on the path from the root to the node keyed `key`.
    void refresh(u32 node, u64 key) noexcept
    {
        if (node == 0) return;
        if (key < pool_[node].begin)
            refresh(pool_[node].left, key);
        else if (key > pool_[node].begin)
            refresh(pool_[node].right, key);
        update(node);
    }

    // ---- treap ----------------------------------------------------------------------------
    u32 make_node(u64 begin, u64 end, bool is_free) noexcept
    {
        GPUMMU_ASSERT(free_slot_ != 0);
        u32 index = free_slot_;
        free_slot_ = pool_[index].right;
        --free_slots_;
        // xorshift32: priorities only need to look random to keep the tree shallow.
        seed_ ^= seed_ << 13;
        seed_ ^= seed_ >> 17;
        seed_ ^= seed_ << 5;
        pool_[index] = RangeNode{};
        pool_[index].priority = seed_ & 0x7FFF'FFFFu;
        set_segment(index, begin, end, is_free);
        update(index);
        return index;
    }
    void release_node(u32 index) noexcept
    {
        pool_[index].right = free_slot_;
        free_slot_ = index;
        ++free_slots_;
    }

    void update(u32 index) noexcept
    {
        RangeNode &n = pool_[index];
        n.largest_hole = n.free ? n.end - n.begin : 0;
        n.largest_block = n.own_block;
        for (u32 child : {n.left, n.right}) {
            if (child == 0) continue;
            n.largest_hole = std::max(n.largest_hole, pool_[child].largest_hole);
            n.largest_block = std::max(n.largest_block, pool_[child].largest_block);
        }
    }

    // Splits `node` into keys < key (left) and >= key (right).
    void split(u32 node, u64 key, u32 &left, u32 &right) noexcept
    {
        if (node == 0) {
            left = right = 0;
            return;
        }
        if (pool_[node].begin < key) {
            split(pool_[node].right, key, pool_[node].right, right);
            left = node;
        } else {
            split(pool_[node].left, key, left, pool_[node].left);
            right = node;
        }
        update(node);
    }
    u32 merge(u32 left, u32 right) noexcept
    {
        if (left == 0) return right;
        if (right == 0) return left;
        if (pool_[left].priority > pool_[right].priority) {
            pool_[left].right = merge(pool_[left].right, right);
            update(left);
            return left;
        }
        pool_[right].left = merge(left, pool_[right].left);
        update(right);
        return right;
    }
    u32 insert(u32 root, u32 node) noexcept
    {
        u32 left = 0, right = 0;
        split(root, pool_[node].begin, left, right);
        return merge(merge(left, node), right);
    }
    // Removes the segment starting at `key` (it exists) and recycles its slot.
    u32 erase(u32 root, u64 key) noexcept
    {
        u32 left = 0, middle = 0, right = 0;
        split(root, key, left, middle);
        split(middle, key + 1, middle, right);
        if (middle != 0) release_node(middle);
        return merge(left, right);
    }

    // The segment holding `address` (segments tile the space, so one always does).
    [[nodiscard]] u32 find_containing(u64 address) const noexcept
    {
        u32 node = root_, best = 0;
        while (node != 0) {
            if (pool_[node].begin <= address) {
                best = node;
                node = pool_[node].right;
            } else {
                node = pool_[node].left;
            }
        }
        return best;
    }

    bool audit(u32 node, u64 &cursor, bool &previous_free, std::size_t &allocated,
               std::size_t &nodes, u32 parent_priority) const noexcept
    {
        if (node == 0) return true;
        const RangeNode &n = pool_[node];
        if (n.priority > parent_priority) return false;
        if (!audit(n.left, cursor, previous_free, allocated, nodes, n.priority)) return false;
        if (n.begin != cursor || n.end <= n.begin) return false;
        if (n.free && previous_free) return false;  // two free neighbours must have merged
        previous_free = n.free;
        cursor = n.end;
        allocated += n.free ? 0 : 1;
        ++nodes;
        u64 hole = n.free ? n.end - n.begin : 0,
            block = n.free ? largest_aligned_block(n.begin, n.end) : 0;
        for (u32 child : {n.left, n.right}) {
            if (child == 0) continue;
            hole = std::max(hole, pool_[child].largest_hole);
            block = std::max(block, pool_[child].largest_block);
        }
        if (hole != n.largest_hole || block != n.largest_block) return false;
        return audit(n.right, cursor, previous_free, allocated, nodes, n.priority);
    }

    RangeAllocator() noexcept = default;

    RangeNode *pool_ = nullptr;
    u32 capacity_ = 0;
    u32 free_slot_ = 0;
    u32 free_slots_ = 0;
    u32 root_ = 0;
    u32 seed_ = 0x9E3779B9u;
    std::size_t live_ = 0;
    VirtualRange space_{};
};

}  // namespace gpummu
