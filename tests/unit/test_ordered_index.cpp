// OrderedIndex: floor at and between keys and at the ends of the 64-bit range, splits and
// merges through several levels in ascending, descending and interleaved order, rekey of a
// leaf's first key, storage sizing and reuse.
#include <doctest/doctest.h>

#include <vector>

#include "gpummu/core/ordered_index.hpp"

using namespace gpummu;

namespace {

struct Index {
    std::vector<OrderedIndexNode> storage;
    OrderedIndex index;
    explicit Index(std::size_t keys) : storage(OrderedIndex::nodes_for(keys))
    {
        REQUIRE(index.create(storage, keys));
    }
};

}  // namespace

TEST_CASE("an empty index has no floor, one key is its own floor and everything's above it")
{
    Index fixture(4);
    OrderedIndex &index = fixture.index;
    CHECK(index.floor(0) == OrderedIndex::absent);
    CHECK(index.floor(~u64{0}) == OrderedIndex::absent);
    index.insert(0x5000, 7);
    CHECK(index.floor(0x4FFF) == OrderedIndex::absent);
    CHECK(index.floor(0x5000) == 7);
    CHECK(index.floor(~u64{0}) == 7);
    CHECK(index.check_invariants());
    index.erase(0x5000);
    CHECK(index.size() == 0);
    CHECK(index.floor(~u64{0}) == OrderedIndex::absent);
    CHECK(index.check_invariants());
    CHECK(index.nodes_in_use() == 0);
}

TEST_CASE("keys 0 and 2^64 - 1 are ordinary keys")
{
    Index fixture(4);
    fixture.index.insert(~u64{0}, 1);
    fixture.index.insert(0, 2);
    CHECK(fixture.index.floor(0) == 2);
    CHECK(fixture.index.floor(~u64{0} - 1) == 2);
    CHECK(fixture.index.floor(~u64{0}) == 1);
    CHECK(fixture.index.check_invariants());
}

TEST_CASE("ascending, descending and interleaved inserts grow levels; erasing shrinks them")
{
    constexpr u32 count = 5000;
    for (int order = 0; order < 3; ++order) {
        CAPTURE(order);
        Index fixture(count);
        OrderedIndex &index = fixture.index;
        auto key_of = [&](u32 i) -> u32 {
            switch (order) {
            case 0: return i;
            case 1: return count - 1 - i;
            default: return i % 2 == 0 ? i / 2 : count - 1 - i / 2;
            }
        };
        for (u32 i = 0; i < count; ++i) index.insert(u64{key_of(i)} * 0x1000 + 0x1000, key_of(i));
        REQUIRE(index.check_invariants());
        CHECK(index.size() == count);
        CHECK(index.height() >= 4);  // 5000 keys cannot fit three levels of 14
        // Every key is its own floor, and the gap above it belongs to it.
        for (u32 key = 0; key < count; ++key) {
            CHECK(index.floor(u64{key} * 0x1000 + 0x1000) == key);
            CHECK(index.floor(u64{key} * 0x1000 + 0x1FFF) == key);
        }
        CHECK(index.floor(0xFFF) == OrderedIndex::absent);
        // Visit gives them in order.
        u64 expected = 0;
        index.visit([&](u64 key, u32 value) {
            CHECK(key == expected * 0x1000 + 0x1000);
            CHECK(value == expected);
            ++expected;
        });
        CHECK(expected == count);
        // Erase every other key, then the rest, checking as the levels merge away.
        for (u32 i = 0; i < count; i += 2) index.erase(u64{key_of(i)} * 0x1000 + 0x1000);
        REQUIRE(index.check_invariants());
        for (u32 i = 0; i < count; i += 2) {
            const u32 key = key_of(i);
            const u32 below = index.floor(u64{key} * 0x1000 + 0x1000);
            CHECK(below != key);
            CHECK((below == OrderedIndex::absent || below < key));
        }
        for (u32 i = 1; i < count; i += 2) {
            index.erase(u64{key_of(i)} * 0x1000 + 0x1000);
            if (i % 499 == 0) REQUIRE(index.check_invariants());
        }
        CHECK(index.size() == 0);
        CHECK(index.height() == 0);
        CHECK(index.nodes_in_use() == 0);
        CHECK(index.check_invariants());
    }
}

TEST_CASE("rekey moves a key inside its gap, first keys of leaves included")
{
    Index fixture(2000);
    OrderedIndex &index = fixture.index;
    for (u32 i = 0; i < 2000; ++i) index.insert(u64{i} * 0x10000, i);
    // Every key moves up by 0x8000, each one a leaf's first key at some point of the tree.
    for (u32 i = 0; i < 2000; ++i) {
        index.rekey(u64{i} * 0x10000, u64{i} * 0x10000 + 0x8000);
        if (i % 97 == 0) REQUIRE(index.check_invariants());
    }
    REQUIRE(index.check_invariants());
    for (u32 i = 0; i < 2000; ++i) {
        CHECK(index.floor(u64{i} * 0x10000 + 0x7FFF) == (i == 0 ? OrderedIndex::absent : i - 1));
        CHECK(index.floor(u64{i} * 0x10000 + 0x8000) == i);
    }
}

TEST_CASE("create refuses storage below nodes_for, and full churn never needs more")
{
    std::vector<OrderedIndexNode> storage(OrderedIndex::nodes_for(100) - 1);
    OrderedIndex index;
    CHECK(index.create(storage, 100).error() == Error::invalid_argument);
    CHECK(index.create(std::span<OrderedIndexNode>{}, 0).error() == Error::invalid_argument);
    // At capacity, erase one key and insert another, many times, in patterns that split
    // and merge: the storage sized by nodes_for(100) suffices (take() asserts otherwise),
    // and what is handed back is reused.
    storage.resize(OrderedIndex::nodes_for(100));
    REQUIRE(index.create(storage, 100));
    for (u32 i = 0; i < 100; ++i) index.insert(u64{i} * 4, i);
    std::size_t most_nodes = index.nodes_in_use();
    for (u32 round = 0; round < 20000; ++round) {
        const u64 gone = u64{(round * 37u) % 100u} * 4;
        const u32 value = index.floor(gone);
        index.erase(gone);
        index.insert(gone + 1 + round % 3, value);  // stays between its neighbours
        index.erase(gone + 1 + round % 3);
        index.insert(gone, value);
        most_nodes = std::max(most_nodes, index.nodes_in_use());
    }
    CHECK(index.check_invariants());
    CHECK(most_nodes <= storage.size());
    CHECK(index.size() == 100);
}

TEST_CASE("nodes_for covers the sparsest tree the fill rule allows")
{
    // Every non-root node holds minimum_fill entries: n keys, n / 7 leaves, n / 49 nodes
    // above them, and so on, plus the root path.
    for (std::size_t keys : {1u, 7u, 8u, 100u, 10'000u, 1'000'000u}) {
        std::size_t level = keys, nodes = 0;
        while (level > 1) {
            level = (level + OrderedIndex::minimum_fill - 1) / OrderedIndex::minimum_fill;
            nodes += level;
        }
        CHECK(nodes + 1 <= OrderedIndex::nodes_for(keys));
    }
    static_assert(OrderedIndex::nodes_for(0) >= 1);
}
