// RangeAllocator: placement, alignment, windows, reserve, free with coalescing, find,
// every error, pool exhaustion, and the tight-fit path.
#include <doctest/doctest.h>

#include <vector>

#include "gpummu/alloc/range_allocator.hpp"

using namespace gpummu;

namespace {
constexpr u64 KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;

struct Fixture {
    std::vector<RangeNode> pool;
    RangeAllocator ranges;
    static Fixture make(u64 begin, u64 size, std::size_t capacity = 1024)
    {
        std::vector<RangeNode> pool(RangeAllocator::nodes_for(capacity));
        auto created = RangeAllocator::create(
            VirtualRange::from_size(VirtualAddress{begin}, size).value(), pool);
        REQUIRE(created);
        return Fixture{std::move(pool), std::move(*created)};
    }
};

VirtualRange range(u64 begin, u64 size)
{
    return VirtualRange::from_size(VirtualAddress{begin}, size).value();
}
}  // namespace

TEST_CASE("bottom-up takes the lowest fit, top-down the highest")
{
    auto fixture = Fixture::make(4 * KiB, 1 * GiB);
    auto low = fixture.ranges.allocate({.size = 64 * KiB});
    REQUIRE(low);
    CHECK(low->begin() == VirtualAddress{4 * KiB});
    auto high = fixture.ranges.allocate({.size = 64 * KiB, .top_down = true});
    REQUIRE(high);
    CHECK(high->end() == VirtualAddress{4 * KiB + 1 * GiB});
    CHECK(fixture.ranges.live_ranges() == 2);
    CHECK(fixture.ranges.check_invariants());
}

TEST_CASE("alignment larger than the size, in a space that starts unaligned")
{
    auto fixture = Fixture::make(4 * KiB, 1 * GiB);
    auto aligned = fixture.ranges.allocate({.size = 4 * KiB, .alignment = 2 * MiB});
    REQUIRE(aligned);
    CHECK(aligned->begin().is_aligned_to(2 * MiB));
    CHECK(aligned->begin() == VirtualAddress{2 * MiB});
    CHECK(aligned->size() == 4 * KiB);
    auto big =
        fixture.ranges.allocate({.size = 3 * MiB, .alignment = 1 * GiB / 2, .top_down = true});
    REQUIRE(big);
    CHECK(big->begin().is_aligned_to(1 * GiB / 2));
    CHECK(fixture.ranges.check_invariants());
}

TEST_CASE("sizes round up to 4 KiB; bad requests are refused")
{
    auto fixture = Fixture::make(0, 16 * MiB);
    auto odd = fixture.ranges.allocate({.size = 5000});
    REQUIRE(odd);
    CHECK(odd->size() == 8 * KiB);
    CHECK(fixture.ranges.allocate({.size = 0}).error() == Error::invalid_argument);
    CHECK(fixture.ranges.allocate({.size = 4 * KiB, .alignment = 3 * KiB}).error() ==
          Error::invalid_argument);
    CHECK(fixture.ranges.allocate({.size = 32 * MiB}).error() == Error::out_of_va);
    CHECK(fixture.ranges.allocate({.size = 4 * KiB, .window_begin = VirtualAddress{64 * MiB}})
              .error() == Error::out_of_range);
    CHECK(fixture.ranges
              .allocate({.size = 4 * KiB,
                         .window_begin = VirtualAddress{8 * KiB},
                         .window_end = VirtualAddress{8 * KiB}})
              .error() == Error::invalid_argument);
    CHECK(fixture.ranges.live_ranges() == 1);
    CHECK(fixture.ranges.check_invariants());
}

TEST_CASE("a window confines placement")
{
    auto fixture = Fixture::make(0, 1 * GiB);
    auto inside = fixture.ranges.allocate({.size = 1 * MiB,
                                           .alignment = 1 * MiB,
                                           .window_begin = VirtualAddress{100 * MiB + 4 * KiB},
                                           .window_end = VirtualAddress{200 * MiB}});
    REQUIRE(inside);
    CHECK(inside->begin() == VirtualAddress{101 * MiB});
    auto top = fixture.ranges.allocate({.size = 1 * MiB,
                                        .window_begin = VirtualAddress{100 * MiB},
                                        .window_end = VirtualAddress{200 * MiB},
                                        .top_down = true});
    REQUIRE(top);
    CHECK(top->end() == VirtualAddress{200 * MiB});
    CHECK(fixture.ranges
              .allocate({.size = 2 * MiB,
                         .window_begin = VirtualAddress{10 * MiB},
                         .window_end = VirtualAddress{11 * MiB}})
              .error() == Error::out_of_va);
    CHECK(fixture.ranges.check_invariants());
}

TEST_CASE("reserve an exact range; overlaps and bad ranges are refused")
{
    auto fixture = Fixture::make(0, 1 * GiB);
    REQUIRE(fixture.ranges.reserve(range(64 * MiB, 4 * MiB)));
    CHECK(fixture.ranges.reserve(range(66 * MiB, 4 * MiB)).error() == Error::overlap);
    CHECK(fixture.ranges.reserve(range(60 * MiB, 8 * MiB)).error() == Error::overlap);
    CHECK(fixture.ranges.reserve(range(1 * GiB, 4 * KiB)).error() == Error::out_of_range);
    CHECK(fixture.ranges.reserve(range(2 * KiB, 4 * KiB)).error() == Error::misaligned);
    CHECK(fixture.ranges.find(VirtualAddress{65 * MiB}).value() == range(64 * MiB, 4 * MiB));
    CHECK(fixture.ranges.find(VirtualAddress{63 * MiB}).error() == Error::not_mapped);
    CHECK(fixture.ranges.find(VirtualAddress{2 * GiB}).error() == Error::out_of_range);
    // Placement never lands on the reservation.
    auto below = fixture.ranges.allocate({.size = 64 * MiB});
    REQUIRE(below);
    CHECK(below->end() <= VirtualAddress{64 * MiB});
    auto after = fixture.ranges.allocate({.size = 1 * MiB});
    REQUIRE(after);
    CHECK(after->begin() >= VirtualAddress{68 * MiB});
    CHECK(fixture.ranges.check_invariants());
}

TEST_CASE("free coalesces with both neighbours; bad frees change nothing")
{
    auto fixture = Fixture::make(0, 64 * MiB);
    auto a = fixture.ranges.allocate({.size = 1 * MiB}).value();
    auto b = fixture.ranges.allocate({.size = 1 * MiB}).value();
    auto c = fixture.ranges.allocate({.size = 1 * MiB}).value();
    CHECK(fixture.ranges.largest_hole() == 61 * MiB);
    CHECK(fixture.ranges.free(range(b.begin().value(), 512 * KiB)).error() == Error::not_allocated);
    CHECK(fixture.ranges.free(range(80 * MiB, 4 * KiB)).error() == Error::out_of_range);
    REQUIRE(fixture.ranges.free(a));
    CHECK(fixture.ranges.free(a).error() == Error::double_free);
    REQUIRE(fixture.ranges.free(c));
    CHECK(fixture.ranges.largest_hole() == 62 * MiB);  // c merged with the 61 MiB tail
    REQUIRE(fixture.ranges.free(b));                   // b merges both sides
    CHECK(fixture.ranges.largest_hole() == 64 * MiB);
    CHECK(fixture.ranges.live_ranges() == 0);
    CHECK(fixture.ranges.check_invariants());
}

TEST_CASE("an exhausted node pool refuses and changes nothing")
{
    auto fixture = Fixture::make(0, 1 * GiB, 3);  // nodes_for(3) = 8 slots
    std::vector<VirtualRange> held;
    for (;;) {
        auto next = fixture.ranges.allocate({.size = 4 * KiB, .alignment = 64 * KiB});
        if (!next) {
            CHECK(next.error() == Error::out_of_storage);  // the pool, not the VA
            break;
        }
        held.push_back(*next);
    }
    CHECK(held.size() >= 3);
    CHECK(fixture.ranges.check_invariants());
    for (const VirtualRange &r : held) REQUIRE(fixture.ranges.free(r));
    CHECK(fixture.ranges.largest_hole() == 1 * GiB);
}

TEST_CASE("a tight hole is found when nothing guarantees a fit")
{
    // Leave one 12 KiB hole at [2 MiB - 4 KiB, 2 MiB + 8 KiB): an 8 KiB request aligned to
    // 2 MiB fits only at 2 MiB, which neither sufficient test can promise.
    auto fixture = Fixture::make(0, 4 * MiB);
    REQUIRE(fixture.ranges.reserve(range(0, 2 * MiB - 4 * KiB)));
    REQUIRE(fixture.ranges.reserve(range(2 * MiB + 8 * KiB, 2 * MiB - 8 * KiB)));
    auto tight = fixture.ranges.allocate({.size = 8 * KiB, .alignment = 2 * MiB});
    REQUIRE(tight);
    CHECK(tight->begin() == VirtualAddress{2 * MiB});
    CHECK(fixture.ranges.check_invariants());
}

TEST_CASE("create refuses bad spaces and pools")
{
    std::vector<RangeNode> pool(8);
    CHECK(RangeAllocator::create(range(2 * KiB, 1 * MiB), pool).error() == Error::misaligned);
    std::vector<RangeNode> tiny(1);
    CHECK(RangeAllocator::create(range(0, 1 * MiB), tiny).error() == Error::invalid_argument);
}

TEST_CASE("the top of the 64-bit range: huge sizes refused, no placement wraps")
{
    const u64 top = ~u64{0} - 4095;  // the highest granule-aligned end
    auto fixture = Fixture::make(top - 1024 * GiB, 1024 * GiB);
    // Sizes whose power-of-two ceiling would not exist in 64 bits.
    CHECK(fixture.ranges.allocate({.size = (u64{1} << 63) + 4096}).error() ==
          Error::invalid_argument);
    CHECK(fixture.ranges.allocate({.size = ~u64{0}}).error() == Error::invalid_argument);
    // An alignment whose rounding wraps past 2^64: no aligned start exists in the space.
    CHECK(fixture.ranges.allocate({.size = 4 * KiB, .alignment = u64{1} << 63}).error() ==
          Error::out_of_va);
    CHECK(fixture.ranges.allocate({.size = 4 * KiB, .alignment = u64{1} << 62}).error() ==
          Error::out_of_va);
    // Placements right up to the end stay inside the space.
    auto high = fixture.ranges.allocate({.size = 1 * GiB, .alignment = 4 * KiB, .top_down = true});
    REQUIRE(high);
    CHECK(high->end().value() == top);
    CHECK(high->begin().value() == top - 1 * GiB);
    auto aligned = fixture.ranges.allocate({.size = 4 * KiB, .alignment = 64 * GiB});
    REQUIRE(aligned);
    CHECK(aligned->begin().is_aligned_to(64 * GiB));
    CHECK(aligned->end().value() > aligned->begin().value());
    for (int i = 0; i < 100; ++i) {
        auto more = fixture.ranges.allocate({.size = 4 * GiB, .alignment = 8 * GiB});
        if (!more) {
            CHECK(more.error() == Error::out_of_memory);
            break;
        }
        CHECK(more->end().value() <= top);
        CHECK(more->begin().value() >= top - 1024 * GiB);
    }
    CHECK(fixture.ranges.check_invariants());
}

TEST_CASE("allocated ranges keep their owner tag")
{
    auto fixture = Fixture::make(0, 1 * GiB);
    auto first = fixture.ranges.allocate({.size = 64 * KiB, .owner = 7});
    auto second = fixture.ranges.reserve(range(512 * MiB, 2 * MiB), 9);
    REQUIRE(first);
    REQUIRE(second);
    auto owned = fixture.ranges.owner_of(first->begin() + 4 * KiB);
    REQUIRE(owned);
    CHECK(owned->owner == 7);
    CHECK(owned->range == *first);
    CHECK(fixture.ranges.owner_of(VirtualAddress{512 * MiB + 1 * MiB})->owner == 9);
    CHECK(fixture.ranges.owner_of(VirtualAddress{256 * MiB}).error() == Error::not_mapped);
    CHECK(fixture.ranges.owner_of(VirtualAddress{2 * GiB}).error() == Error::out_of_range);
    // Tags survive the neighbours' frees and coalescing.
    REQUIRE(fixture.ranges.free(*first));
    CHECK(fixture.ranges.owner_of(VirtualAddress{512 * MiB})->owner == 9);
    CHECK(fixture.ranges.check_invariants());
}

TEST_CASE("thousands of ranges grow the tree by levels and freeing them shrinks it back")
{
    // 3,000 ranges of 64 KiB with 64 KiB gaps (6,000 segments: four levels of 12), freed
    // in an interleaved order so that leaves borrow and merge on both sides.
    constexpr u64 count = 3000;
    auto fixture = Fixture::make(0, 1024 * GiB, count);
    for (u64 i = 0; i < count; ++i)
        REQUIRE(fixture.ranges.reserve(range(i * 128 * KiB, 64 * KiB), static_cast<u32>(i)));
    REQUIRE(fixture.ranges.check_invariants());
    CHECK(fixture.ranges.nodes_in_use() > 2 * count / RangeNode::capacity);
    for (u64 i = 0; i < count; i += 97) {
        auto owned = fixture.ranges.owner_of(VirtualAddress{i * 128 * KiB + 4 * KiB});
        REQUIRE(owned);
        CHECK(owned->owner == i);
        CHECK(fixture.ranges.find(VirtualAddress{i * 128 * KiB + 64 * KiB}).error() ==
              Error::not_mapped);
    }
    // An aligned request skips every 64 KiB gap and lands past the last range.
    auto big = fixture.ranges.allocate({.size = 1 * MiB, .alignment = 1 * MiB});
    REQUIRE(big);
    CHECK(big->begin().value() == align_up(count * 128 * KiB, 1 * MiB).value());
    REQUIRE(fixture.ranges.free(*big));
    for (u64 step = 0; step < count; ++step) {
        const u64 i = step % 2 == 0 ? step / 2 : count - 1 - step / 2;
        REQUIRE(fixture.ranges.free(range(i * 128 * KiB, 64 * KiB)));
        if (step % 211 == 0) REQUIRE(fixture.ranges.check_invariants());
    }
    CHECK(fixture.ranges.check_invariants());
    CHECK(fixture.ranges.live_ranges() == 0);
    CHECK(fixture.ranges.nodes_in_use() == 1);
    CHECK(fixture.ranges.largest_hole() == 1024 * GiB);
}
