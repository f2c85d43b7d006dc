// gpummu/core/ordered_index.hpp: an ordered map from distinct u64 keys to u32 values, as a
// B+ tree in caller storage.
//
// What it does
//   - floor(key): the value of the largest key <= key. This is the question an address
//     space asks on every operation ("which record holds this VA?"), and the reason the
//     index exists: a binary tree of records answers it with one cache miss per level
//     (about 23 levels at 10^5 records), this tree with one node of two cache lines per
//     level (6 levels at 10^5 keys, the upper ones warm).
//   - insert(key, value), erase(key), rekey(from, to) (a key moves without passing a
//     neighbour: a record whose front was cut away), visit() in key order.
//
//   Nodes hold up to `fanout` entries, each a key and a value. In a leaf the value is the
//   caller's; in an inner node it is a child's node index and the key is the exact
//   smallest key below that child (so a search never has to step back a leaf):
//
//       inner    [ 0x1000 : n1 | 0x9000 : n2 | 0x2'0000 : n3 ]
//                      |             |              |
//       leaves   [0x1000 0x4000] [0x9000 0xC000] [0x2'0000 0x3'0000]   -> caller's values
//
//   Every node but the root holds at least `minimum_fill` entries; every leaf is at the
//   same depth. Insert splits a full node in two (6 + 5 entries), erase borrows from a
//   sibling above the minimum or merges with it.
//
// What it does not do
//   - No allocation: nodes come from the caller's span, sized with nodes_for(keys) for the
//     most keys the index will hold at once (whatever order of inserts and erases made it).
//     create() refuses storage smaller than that, so insert never runs out.
//   - No locking. No duplicate keys: inserting a present key, erasing or rekeying an absent
//     one, or a rekey that passes a neighbour are caller bugs (GPUMMU_ASSERT), not errors;
//     the owner of the index (MappingRecords) checks its input before it touches the index.
//
// Invariants (check_invariants proves them)
//   - Keys strictly increase in leaf order; every inner key equals the smallest key of its
//     child's subtree; fill and depth as above; reachable plus free nodes account for every
//     node handed out.
#pragma once

#include <array>
#include <cstddef>
#include <span>

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"

namespace gpummu {

namespace detail {

// The nodes of a B+ tree in a caller's array: never-used nodes are handed out in order (the
// array is not written until the tree needs it), freed ones from a list threaded through
// their values[0]. Shared by OrderedIndex and RangeAllocator.
template <class Node>
class TreeNodes {
public:
    static constexpr u32 none = 0xFFFF'FFFFu;

    void reset(Node *nodes, std::size_t size) noexcept
    {
        nodes_ = nodes;
        size_ = size;
        free_ = none;
        unused_ = 0;
        free_count_ = 0;
    }
    // An empty node (count 0); the caller sized the array so that one is left.
    u32 take() noexcept
    {
        u32 node = free_;
        if (node != none) {
            free_ = nodes_[node].values[0];
            --free_count_;
        } else {
            GPUMMU_ASSERT(unused_ < size_);
            node = unused_++;
        }
        nodes_[node].count = 0;
        return node;
    }
    void give(u32 node) noexcept
    {
        nodes_[node].count = 0;
        nodes_[node].values[0] = free_;
        free_ = node;
        ++free_count_;
    }
    [[nodiscard]] std::size_t in_use() const noexcept { return unused_ - free_count_; }
    // Every node index below this was handed out at some point (audits check links).
    [[nodiscard]] u32 handed_out() const noexcept { return unused_; }

private:
    Node *nodes_ = nullptr;
    std::size_t size_ = 0;
    u32 free_ = none;
    u32 unused_ = 0;  // nodes from here on were never handed out
    std::size_t free_count_ = 0;
};

// In a node of sorted keys: the last entry whose key is <= key (the first if none is). For
// an inner node that is the child whose subtree holds floor(key). Counting beats a binary
// search at a dozen entries (no branch to mispredict).
template <class Node>
[[nodiscard]] u32 last_at_most(const Node &node, u64 key) noexcept
{
    u32 slot = 0;
    for (u32 i = 1; i < node.count; ++i) slot += node.keys[i] <= key ? 1u : 0u;
    return slot;
}

}  // namespace detail

// One node of storage: two cache lines, aligned to the pair so that the adjacent-line
// prefetch of x86 cores brings the whole node with its first miss. A search reads the keys
// and then one value. Measured against 14 entries in three lines (callgrind, the bind-job
// benchmark at 10^5 records): 20% fewer data misses in lookups (11.8 against 14.5 per
// operation), since the levels added by the smaller fanout cost fewer lines than the third
// line of each node.
struct alignas(128) OrderedIndexNode {
    static constexpr std::size_t capacity = 10;
    std::array<u64, capacity> keys{};
    std::array<u32, capacity> values{};
    u32 count = 0;
    u32 leaf = 0;  // 1: values are the caller's; 0: values are child node indexes
};
static_assert(sizeof(OrderedIndexNode) == 128);

class OrderedIndex {
public:
    using Node = OrderedIndexNode;
    static constexpr u32 absent = 0xFFFF'FFFFu;
    static constexpr std::size_t fanout = Node::capacity;
    static constexpr std::size_t minimum_fill = fanout / 2;
    // A root splits into two, every other node keeps minimum_fill entries: n keys need at
    // most 1 + log_5(n / 2) levels, 15 for any n below 2^32.
    static constexpr std::size_t max_height = 16;

    // Storage for an index that never holds more than `keys` keys: the leaves hold at least
    // minimum_fill keys each, every level above at least minimum_fill children per node, so
    // the nodes number at most keys/5 + keys/25 + ... (< keys/4) plus one per level for the
    // partly filled root path.
    [[nodiscard]] static constexpr std::size_t nodes_for(std::size_t keys) noexcept
    {
        return keys / (minimum_fill - 1) + max_height;
    }

    OrderedIndex() noexcept = default;
    OrderedIndex(const OrderedIndex &) = delete;
    OrderedIndex &operator=(const OrderedIndex &) = delete;

    // Starts empty over `storage`, for at most `key_capacity` keys at once. Errors:
    // invalid_argument (storage below nodes_for(key_capacity), or too large to index).
    [[nodiscard]] Result<void> create(std::span<Node> storage, std::size_t key_capacity) noexcept
    {
        if (storage.size() < nodes_for(key_capacity) || storage.size() >= absent ||
            key_capacity >= absent)
            return failure(Error::invalid_argument);
        nodes_ = storage;
        capacity_ = key_capacity;
        clear();
        return success();
    }
    // Drops every key (the storage is reused from the start).
    void clear() noexcept
    {
        root_ = absent;
        tree_nodes_.reset(nodes_.data(), nodes_.size());
        size_ = 0;
        height_ = 0;
    }

    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::size_t height() const noexcept { return height_; }
    // Nodes in use (for bookkeeping-bytes reports).
    [[nodiscard]] std::size_t nodes_in_use() const noexcept { return tree_nodes_.in_use(); }

    // The value of the largest key <= key, or `absent`.
    [[nodiscard]] u32 floor(u64 key) const noexcept
    {
        if (root_ == absent) return absent;
        u32 at = root_;
        while (nodes_[at].leaf == 0) at = nodes_[at].values[detail::last_at_most(nodes_[at], key)];
        const u32 below = keys_at_most(nodes_[at], key);
        return below == 0 ? absent : nodes_[at].values[below - 1];
    }

    void insert(u64 key, u32 value) noexcept
    {
        GPUMMU_ASSERT(size_ < capacity_);
        if (root_ == absent) {
            root_ = take();
            Node &only = nodes_[root_];
            only.leaf = 1;
            only.count = 1;
            only.keys[0] = key;
            only.values[0] = value;
            size_ = height_ = 1;
            return;
        }
        Path path;
        std::size_t depth = 0;
        const u32 leaf = descend(key, path, depth);
        u32 position = keys_at_most(nodes_[leaf], key);
        GPUMMU_ASSERT(position == 0 || nodes_[leaf].keys[position - 1] != key);
        ++size_;
        // Put (key, value) at `position` of `at`; a full node splits and its right half
        // goes one level up as the next entry to place.
        u32 at = leaf;
        for (;;) {
            Node &node = nodes_[at];
            if (node.count < fanout) {
                place(node, position, key, value);
                if (position == 0) set_smallest(path, depth, key);
                return;
            }
            const u32 right = take();
            split(node, nodes_[right], position, key, value);
            if (position == 0) set_smallest(path, depth, node.keys[0]);
            key = nodes_[right].keys[0];
            value = right;
            if (depth == 0) {
                const u32 top = take();
                Node &root = nodes_[top];
                root.leaf = 0;
                root.count = 2;
                root.keys[0] = node.keys[0];
                root.values[0] = at;
                root.keys[1] = key;
                root.values[1] = right;
                root_ = top;
                ++height_;
                return;
            }
            --depth;
            at = path[depth].node;
            position = path[depth].slot + 1;
        }
    }

    void erase(u64 key) noexcept
    {
        Path path;
        std::size_t depth = 0;
        u32 at = descend(key, path, depth);
        const u32 below = keys_at_most(nodes_[at], key);
        GPUMMU_ASSERT(below > 0 && nodes_[at].keys[below - 1] == key);
        remove(nodes_[at], below - 1);
        --size_;
        if (depth == 0) {  // the root is a leaf
            if (nodes_[at].count == 0) {
                give(at);
                root_ = absent;
                height_ = 0;
            }
            return;
        }
        if (below == 1) set_smallest(path, depth, nodes_[at].keys[0]);
        // Refill from a sibling above the minimum, or merge with one and go up.
        while (depth > 0 && nodes_[at].count < minimum_fill) {
            const Step parent = path[depth - 1];
            Node &up = nodes_[parent.node];
            if (parent.slot > 0 && nodes_[up.values[parent.slot - 1]].count > minimum_fill) {
                Node &left = nodes_[up.values[parent.slot - 1]];
                place(nodes_[at], 0, left.keys[left.count - 1], left.values[left.count - 1]);
                --left.count;
                up.keys[parent.slot] = nodes_[at].keys[0];
                return;
            }
            if (parent.slot + 1 < up.count &&
                nodes_[up.values[parent.slot + 1]].count > minimum_fill) {
                Node &right = nodes_[up.values[parent.slot + 1]];
                place(nodes_[at], nodes_[at].count, right.keys[0], right.values[0]);
                remove(right, 0);
                up.keys[parent.slot + 1] = right.keys[0];
                return;
            }
            const u32 left_slot = parent.slot > 0 ? parent.slot - 1 : parent.slot;
            Node &left = nodes_[up.values[left_slot]];
            const u32 right = up.values[left_slot + 1];
            for (u32 i = 0; i < nodes_[right].count; ++i) {
                left.keys[left.count + i] = nodes_[right].keys[i];
                left.values[left.count + i] = nodes_[right].values[i];
            }
            left.count += nodes_[right].count;
            give(right);
            remove(up, left_slot + 1);
            --depth;
            at = parent.node;
        }
        if (nodes_[root_].leaf == 0 && nodes_[root_].count == 1) {
            const u32 old = root_;
            root_ = nodes_[old].values[0];
            give(old);
            --height_;
        }
    }

    // Moves key `from` to `to`, which must stay between its neighbours.
    void rekey(u64 from, u64 to) noexcept
    {
        Path path;
        std::size_t depth = 0;
        const u32 at = descend(from, path, depth);
        Node &leaf = nodes_[at];
        const u32 below = keys_at_most(leaf, from);
        GPUMMU_ASSERT(below > 0 && leaf.keys[below - 1] == from);
        GPUMMU_ASSERT(below < 2 || leaf.keys[below - 2] < to);
        GPUMMU_ASSERT(below == leaf.count || to < leaf.keys[below]);
        leaf.keys[below - 1] = to;
        if (below == 1) set_smallest(path, depth, to);
    }

    // Calls visit(key, value) for every key in order.
    template <class Visit>
    void visit(Visit &&visit) const noexcept
    {
        if (root_ != absent) visit_below(root_, visit);
    }

    [[nodiscard]] Result<void> check_invariants() const noexcept
    {
        if (root_ == absent)
            return size_ == 0 && height_ == 0 && tree_nodes_.in_use() == 0
                       ? success()
                       : failure(Error::malformed_record);
        std::size_t keys = 0, reached = 0;
        u64 last = 0;
        GPUMMU_TRY(check_below(root_, 1, keys, reached, last));
        if (keys != size_ || reached != tree_nodes_.in_use())
            return failure(Error::malformed_record);
        return success();
    }

private:
    struct Step {
        u32 node;
        u32 slot;
    };
    using Path = std::array<Step, max_height>;

    [[nodiscard]] static u32 keys_at_most(const Node &node, u64 key) noexcept
    {
        u32 below = 0;
        for (u32 i = 0; i < node.count; ++i) below += node.keys[i] <= key ? 1u : 0u;
        return below;
    }

    // The leaf whose range holds `key`, recording the inner nodes and slots taken.
    u32 descend(u64 key, Path &path, std::size_t &depth) const noexcept
    {
        u32 at = root_;
        while (nodes_[at].leaf == 0) {
            const u32 slot = detail::last_at_most(nodes_[at], key);
            path[depth++] = Step{at, slot};
            at = nodes_[at].values[slot];
        }
        return at;
    }
    // The smallest key below path[depth - 1]'s child became `key`: the inner keys that name
    // it change, up to the first ancestor where that child is not the first.
    void set_smallest(const Path &path, std::size_t depth, u64 key) noexcept
    {
        while (depth > 0) {
            const Step step = path[--depth];
            nodes_[step.node].keys[step.slot] = key;
            if (step.slot != 0) return;
        }
    }

    static void place(Node &node, u32 position, u64 key, u32 value) noexcept
    {
        for (u32 i = node.count; i > position; --i) {
            node.keys[i] = node.keys[i - 1];
            node.values[i] = node.values[i - 1];
        }
        node.keys[position] = key;
        node.values[position] = value;
        ++node.count;
    }
    static void remove(Node &node, u32 position) noexcept
    {
        for (u32 i = position; i + 1 < node.count; ++i) {
            node.keys[i] = node.keys[i + 1];
            node.values[i] = node.values[i + 1];
        }
        --node.count;
    }
    // A full `left` and the entry for `position` become left (8 entries) and right (7).
    static void split(Node &left, Node &right, u32 position, u64 key, u32 value) noexcept
    {
        std::array<u64, fanout + 1> keys;
        std::array<u32, fanout + 1> values;
        for (u32 i = 0, from = 0; i <= fanout; ++i) {
            if (i == position) {
                keys[i] = key;
                values[i] = value;
            } else {
                keys[i] = left.keys[from];
                values[i] = left.values[from++];
            }
        }
        constexpr u32 kept = (fanout + 2) / 2;
        static_assert(kept >= minimum_fill && fanout + 1 - kept >= minimum_fill);
        for (u32 i = 0; i < kept; ++i) {
            left.keys[i] = keys[i];
            left.values[i] = values[i];
        }
        for (u32 i = kept; i <= fanout; ++i) {
            right.keys[i - kept] = keys[i];
            right.values[i - kept] = values[i];
        }
        left.count = kept;
        right.count = fanout + 1 - kept;
        right.leaf = left.leaf;
    }

    u32 take() noexcept { return tree_nodes_.take(); }
    void give(u32 node) noexcept { tree_nodes_.give(node); }

    template <class Visit>
    void visit_below(u32 at, Visit &visit) const noexcept
    {
        const Node &node = nodes_[at];
        for (u32 i = 0; i < node.count; ++i) {
            if (node.leaf != 0)
                visit(node.keys[i], node.values[i]);
            else
                visit_below(node.values[i], visit);
        }
    }

    // Depth-first: fill, uniform depth, exact smallest keys, keys increasing across leaves.
    [[nodiscard]] Result<void> check_below(u32 at, std::size_t level, std::size_t &keys,
                                           std::size_t &reached, u64 &last) const noexcept
    {
        if (at >= tree_nodes_.handed_out() || level > height_ || reached > tree_nodes_.in_use())
            return failure(Error::malformed_record);
        const Node &node = nodes_[at];
        ++reached;
        const std::size_t least = at == root_ ? (node.leaf != 0 ? 1 : 2) : minimum_fill;
        if (node.count < least || node.count > fanout || (node.leaf != 0) != (level == height_))
            return failure(Error::malformed_record);
        for (u32 i = 0; i < node.count; ++i) {
            if (node.leaf != 0) {
                if (keys > 0 && node.keys[i] <= last) return failure(Error::malformed_record);
                last = node.keys[i];
                ++keys;
                continue;
            }
            const std::size_t keys_before = keys;
            GPUMMU_TRY(check_below(node.values[i], level + 1, keys, reached, last));
            // The child's first key is the first key counted after keys_before: find it
            // again by descending its leftmost path.
            u32 first = node.values[i];
            while (nodes_[first].leaf == 0) first = nodes_[first].values[0];
            if (keys == keys_before || nodes_[first].keys[0] != node.keys[i])
                return failure(Error::malformed_record);
        }
        return success();
    }

    std::span<Node> nodes_{};
    std::size_t capacity_ = 0;
    u32 root_ = absent;
    detail::TreeNodes<Node> tree_nodes_;
    std::size_t size_ = 0;
    std::size_t height_ = 0;
};

}  // namespace gpummu
