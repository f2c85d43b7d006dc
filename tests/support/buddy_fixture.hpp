// Test helper: a BuddyAllocator with its metadata in a vector (tests may allocate; the
// allocator itself never does).
#pragma once

#include <vector>

#include <doctest/doctest.h>

#include "gpummu/alloc/buddy.hpp"

namespace gpummu::testing {

struct BuddyFixture {
    std::vector<u64> storage;
    BuddyAllocator buddy;

    static BuddyFixture make(std::vector<VramRange> regions, u64 chunk = 4096)
    {
        auto words = BuddyAllocator::metadata_words(regions, chunk);
        REQUIRE(words.has_value());
        std::vector<u64> storage(*words, ~u64{0});  // garbage: create() must initialise it
        auto created = BuddyAllocator::create(regions, storage, chunk);
        REQUIRE(created.has_value());
        return BuddyFixture{std::move(storage), std::move(*created)};
    }
};

// A snapshot that changes whenever any observable state changes: every node state and
// counter (the fingerprint) plus the statistics.
struct Snapshot {
    BuddyStats stats;
    u64 fingerprint;
    bool operator==(const Snapshot &other) const
    {
        return stats.free_bytes == other.stats.free_bytes &&
               stats.cleared_bytes == other.stats.cleared_bytes &&
               stats.free_bytes_per_order == other.stats.free_bytes_per_order &&
               fingerprint == other.fingerprint;
    }
};
inline Snapshot snapshot(const BuddyFixture &fixture)
{
    return Snapshot{fixture.buddy.stats(), fixture.buddy.fingerprint()};
}

inline VramRange range_of(u64 begin, u64 size)
{
    return VramRange::from_size(VramAddress{begin}, size).value();
}

}  // namespace gpummu::testing
