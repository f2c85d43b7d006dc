// OrderedIndex against std::map: random inserts, erases, rekeys and floors, with keys
// clustered (so leaves split and merge constantly) or spread over the whole 64-bit range
// (0 and 2^64 - 1 included), near and at the key capacity. After every change the
// invariants hold; every floor, and the visit order, agree with the map.
//   Runs GPUMMU_MAPPING_RECORDS_OPERATIONS operations per seed (the records' index).
#include <doctest/doctest.h>

#include <iterator>
#include <map>
#include <vector>

#include "gpummu/core/ordered_index.hpp"
#include "support/random.hpp"

#ifndef GPUMMU_MAPPING_RECORDS_OPERATIONS
#define GPUMMU_MAPPING_RECORDS_OPERATIONS 40000
#endif

using namespace gpummu;

namespace {

void run(u64 seed, long operations)
{
    testing::Random random(seed);
    const std::size_t capacity = seed % 3 == 0 ? 30 : seed % 3 == 1 ? 400 : 3000;
    const bool spread = seed % 2 == 0;
    std::vector<OrderedIndexNode> storage(OrderedIndex::nodes_for(capacity));
    OrderedIndex index;
    REQUIRE(index.create(storage, capacity));
    std::map<u64, u32> model;
    auto any_key = [&]() -> u64 {
        return spread ? random.bits(64) : 0x4000'0000ull + random.below(4 * capacity);
    };
    auto floor_of = [&](u64 key) -> u32 {
        auto above = model.upper_bound(key);
        return above == model.begin() ? OrderedIndex::absent : std::prev(above)->second;
    };
    for (long step = 0; step < operations; ++step) {
        CAPTURE(step);
        const u64 choice = random.below(10);
        if (choice < 4 && model.size() < capacity) {
            const u64 key = any_key();
            if (model.count(key) != 0) continue;
            const u32 value = static_cast<u32>(random.below(OrderedIndex::absent));
            index.insert(key, value);
            model.emplace(key, value);
        } else if (choice < 7 && !model.empty()) {
            auto at = model.lower_bound(any_key());
            if (at == model.end()) at = model.begin();
            index.erase(at->first);
            model.erase(at);
        } else if (choice < 8 && !model.empty()) {
            // Move a key anywhere strictly between its neighbours.
            auto at = model.lower_bound(any_key());
            if (at == model.end()) at = model.begin();
            const u64 low = at == model.begin() ? 0 : std::prev(at)->first + 1;
            const u64 high = std::next(at) == model.end() ? ~u64{0} : std::next(at)->first - 1;
            const u64 to = low + random.below(high - low == ~u64{0} ? ~u64{0} : high - low + 1);
            const u32 value = at->second;
            index.rekey(at->first, to);
            model.erase(at);
            model.emplace(to, value);
        } else {
            for (int probe = 0; probe < 4; ++probe) {
                const u64 key = any_key();
                REQUIRE(index.floor(key) == floor_of(key));
            }
            continue;
        }
        REQUIRE(index.size() == model.size());
        if (model.size() < 64 || step % 16 == 0) REQUIRE(index.check_invariants());
    }
    REQUIRE(index.check_invariants());
    auto expected = model.begin();
    bool in_order = true;
    index.visit([&](u64 key, u32 value) {
        in_order = in_order && expected != model.end() && expected->first == key &&
                   expected->second == value;
        if (expected != model.end()) ++expected;
    });
    CHECK(in_order);
    CHECK(expected == model.end());
}

}  // namespace

TEST_CASE("ordered index vs std::map")
{
    for (u64 seed = 1; seed <= 6; ++seed) {
        CAPTURE(seed);
        run(seed, GPUMMU_MAPPING_RECORDS_OPERATIONS * 2);
    }
}
