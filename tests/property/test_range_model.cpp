// RangeAllocator against a naive model (a sorted list of allocated intervals): random
// allocate / reserve / free / find. Every result is checked for window, alignment, size and
// overlap; a refusal is accepted only when the model has no hole that certainly fits
// (a hole at least size + alignment - 4 KiB long inside the window, the allocator's own
// guarantee); the audit runs after every step in the short run. Spaces lie at low addresses
// or end at the top of the 64-bit range (the last granule-aligned address), where every
// end and window computation is one step from wrapping.
#include <doctest/doctest.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <vector>

#include "gpummu/alloc/range_allocator.hpp"
#include "support/random.hpp"

using namespace gpummu;
using testing::Random;

namespace {

constexpr u64 granule = 4096;

struct Model {
    u64 begin, end;
    std::map<u64, u64> allocated;  // begin -> end
    bool overlaps(u64 b, u64 e) const
    {
        auto next = allocated.lower_bound(b);
        if (next != allocated.end() && next->first < e) return true;
        if (next != allocated.begin() && std::prev(next)->second > b) return true;
        return false;
    }
    // A hole clipped to the window that is at least `need` long.
    bool has_hole(u64 need, u64 window_begin, u64 window_end) const
    {
        u64 cursor = begin;
        auto check = [&](u64 hole_begin, u64 hole_end) {
            hole_begin = std::max(hole_begin, window_begin);
            hole_end = std::min(hole_end, window_end);
            return hole_end > hole_begin && hole_end - hole_begin >= need;
        };
        for (const auto &[b, e] : allocated) {
            if (check(cursor, b)) return true;
            cursor = e;
        }
        return check(cursor, end);
    }
};

#ifndef GPUMMU_RANGE_OPERATIONS
#define GPUMMU_RANGE_OPERATIONS 300000
#endif

enum class Placement { low, top };

// b + bytes, or `limit` when that would pass it (or wrap past 2^64).
u64 clamped_end(u64 b, u64 bytes, u64 limit)
{
    return bytes > limit - b ? limit : b + bytes;
}

void run(u64 seed, long operations, bool audit, Placement placement = Placement::low)
{
    Random random(seed);
    const u64 space_size = (4096 + random.below(8192)) * granule;  // 16..48 MiB
    constexpr u64 top = ~u64{0} & ~(granule - 1);                  // 2^64 - 4 KiB
    const u64 space_begin = placement == Placement::low
                                ? random.below(16) * granule
                                : top - space_size - random.below(2) * granule;
    std::vector<RangeNode> pool(RangeAllocator::nodes_for(2048));
    auto ranges =
        RangeAllocator::create(
            VirtualRange::from_size(VirtualAddress{space_begin}, space_size).value(), pool)
            .value();
    Model model{space_begin, space_begin + space_size, {}};
    for (long step = 0; step < operations; ++step) {
        u64 op = random.below(100);
        if (op < 45) {
            RangeRequest request;
            request.size =
                (1 + random.below(random.coin() ? 16 : 512)) * granule - random.below(granule);
            request.alignment = granule << random.below(random.coin() ? 4 : 10);
            request.top_down = random.coin();
            if (random.below(4) == 0) {
                u64 b = space_begin + random.below(space_size / granule) * granule;
                request.window_begin = VirtualAddress{b};
                request.window_end =
                    VirtualAddress{clamped_end(b, (1 + random.below(4096)) * granule, ~u64{0})};
            }
            u64 size = (request.size + granule - 1) / granule * granule;
            auto result = ranges.allocate(request);
            if (result) {
                REQUIRE(result->size() == size);
                REQUIRE(result->begin().is_aligned_to(request.alignment));
                REQUIRE(result->begin() >= request.window_begin);
                REQUIRE(result->end() <= request.window_end);
                REQUIRE(result->begin().value() >= model.begin);
                REQUIRE(result->end().value() <= model.end);
                REQUIRE_FALSE(model.overlaps(result->begin().value(), result->end().value()));
                model.allocated[result->begin().value()] = result->end().value();
            } else if (result.error() == Error::out_of_va) {
                u64 window_begin = std::max(request.window_begin.value(), model.begin);
                u64 window_end = std::min(request.window_end.value(), model.end);
                REQUIRE_FALSE(
                    model.has_hole(size + request.alignment - granule, window_begin, window_end));
            }
        } else if (op < 55) {
            u64 b = space_begin + random.below(space_size / granule) * granule;
            u64 e = clamped_end(b, (1 + random.below(64)) * granule, model.end);
            auto result = ranges.reserve(
                VirtualRange::from_bounds(VirtualAddress{b}, VirtualAddress{e}).value());
            REQUIRE(result.has_value() == !model.overlaps(b, e));
            if (result)
                model.allocated[b] = e;
            else
                REQUIRE(result.error() == Error::overlap);
        } else if (op < 90) {
            if (model.allocated.empty()) continue;
            auto it = model.allocated.begin();
            std::advance(it, static_cast<long>(random.below(model.allocated.size())));
            auto freed = ranges.free(
                VirtualRange::from_bounds(VirtualAddress{it->first}, VirtualAddress{it->second})
                    .value());
            REQUIRE(freed);
            model.allocated.erase(it);
        } else {
            u64 address = space_begin + random.below(space_size);
            auto found = ranges.find(VirtualAddress{address});
            auto next = model.allocated.upper_bound(address);
            bool inside = next != model.allocated.begin() && std::prev(next)->second > address;
            REQUIRE(found.has_value() == inside);
            if (inside) REQUIRE(found->begin().value() == std::prev(next)->first);
        }
        REQUIRE(ranges.live_ranges() == model.allocated.size());
        if (audit) REQUIRE(ranges.check_invariants());
    }
    REQUIRE(ranges.check_invariants());
}

}  // namespace

TEST_CASE("range allocator vs model, audited after every step")
{
    for (u64 seed = 1; seed <= 6; ++seed) {
        CAPTURE(seed);
        run(seed, 4000, true);
        run(seed, 4000, true, Placement::top);
    }
}

TEST_CASE("range allocator vs model, long run")
{
    run(0x7a9, GPUMMU_RANGE_OPERATIONS, false);
}

TEST_CASE("range allocator vs model at the top of the 64-bit range, long run")
{
    run(0x7aa, GPUMMU_RANGE_OPERATIONS, false, Placement::top);
}
