// BuddyAllocator: every option, every error, the nova-core fragmentation self-test,
// exhaustion and recovery. Each test ends with the full invariant audit.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <vector>

#include "gpummu/alloc/buddy.hpp"
#include "support/buddy_fixture.hpp"

using namespace gpummu;
using testing::BuddyFixture;
using testing::range_of;
using testing::Snapshot;
using testing::snapshot;

namespace {
constexpr u64 KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;

u64 sum(std::span<const BuddyBlock> blocks)
{
    u64 total = 0;
    for (const BuddyBlock &block : blocks) total += block.size;
    return total;
}

// Takes `count` single 4 KiB chunks one request at a time (sequential, so buddies).
std::vector<BuddyBlock> take_chunks(BuddyFixture &fixture, std::size_t count)
{
    std::vector<BuddyBlock> taken;
    std::array<BuddyBlock, 1> one{};
    for (std::size_t i = 0; i < count; ++i) {
        auto allocation = fixture.buddy.allocate(4 * KiB, {}, one);
        REQUIRE(allocation);
        taken.push_back(one[0]);
    }
    return taken;
}
}  // namespace

TEST_CASE("a new allocator holds every region as maximal aligned free blocks")
{
    // 3 MiB + 12 KiB at 1 MiB, and 1 MiB at 8 MiB: neither a power of two nor aligned beyond 4 KiB.
    auto fixture =
        BuddyFixture::make({range_of(1 * MiB, 3 * MiB + 12 * KiB), range_of(8 * MiB, 1 * MiB)});
    BuddyStats stats = fixture.buddy.stats();
    CHECK(stats.total_bytes == 4 * MiB + 12 * KiB);
    CHECK(stats.free_bytes == stats.total_bytes);
    CHECK(stats.cleared_bytes == 0);
    CHECK(stats.largest_free_block == 2 * MiB);       // [2 MiB, 4 MiB)
    CHECK(stats.free_bytes_per_order[9] == 2 * MiB);  // [2 MiB, 4 MiB)
    CHECK(stats.free_bytes_per_order[8] == 2 * MiB);  // [1 MiB, 2 MiB) and [8 MiB, 9 MiB)
    CHECK(stats.free_bytes_per_order[1] == 8 * KiB);  // the 12 KiB tail: 8 KiB + 4 KiB
    CHECK(stats.free_bytes_per_order[0] == 4 * KiB);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("create refuses bad region lists and short storage")
{
    std::vector<u64> storage(1024);
    std::array misaligned{range_of(0x1800, 0x10000)};
    CHECK(BuddyAllocator::create(misaligned, storage).error() == Error::misaligned);
    std::array overlapping{range_of(0, 0x10000), range_of(0x8000, 0x10000)};
    CHECK(BuddyAllocator::create(overlapping, storage).error() == Error::overlap);
    std::array<VramRange, 0> none{};
    CHECK(BuddyAllocator::create(none, storage).error() == Error::invalid_argument);
    std::array one{range_of(0, 64 * MiB)};
    CHECK(BuddyAllocator::create(one, storage, 3000).error() == Error::invalid_argument);
    std::vector<u64> tiny(1);
    CHECK(BuddyAllocator::create(one, tiny).error() == Error::out_of_memory);
}

TEST_CASE("metadata for 16 GiB of 4 KiB chunks is fixed and computable up front")
{
    std::array region{range_of(0, 16 * GiB)};
    auto words = BuddyAllocator::metadata_words(region);
    REQUIRE(words);
    u64 bytes = *words * sizeof(u64);
    MESSAGE("metadata for 16 GiB / 4 KiB chunks: " << bytes << " bytes");
    // Order 0 stores sibling pairs in 3 bits (21 per word): 2^22 chunks take 2^21 / 21
    // words; orders >= 1 take 2 bits per node, 2^22 bits in all; the summaries add ~3%.
    u64 nodes = (u64{1} << 21) / 21 * 8 + (u64{1} << 22) / 8;
    CHECK(bytes >= nodes);
    CHECK(bytes <= 2 * MiB);
    // With the allocator object itself, still at most 2 MiB.
    auto fixture = BuddyFixture::make({range_of(0, 16 * GiB)});
    CHECK(fixture.buddy.metadata_bytes() <= 2 * MiB);
    CHECK(fixture.buddy.metadata_bytes() >= bytes);
}

TEST_CASE("merge limit: the largest aligned block around a chunk that stays in its region")
{
    // Against the definition for every region and chunk of a 64-chunk space, with and
    // without the top order capping it, and at the top of the largest space.
    for (u64 first = 0; first < 64; ++first)
        for (u64 end = first + 1; end <= 64; ++end)
            for (u64 chunk = first; chunk < end; ++chunk) {
                unsigned expected = 0;
                for (unsigned order = 1; order <= 6; ++order) {
                    u64 start = chunk >> order << order;
                    if (start >= first && start + (u64{1} << order) <= end) expected = order;
                }
                REQUIRE(detail::merge_limit_of(chunk, first, end, 35) == expected);
                REQUIRE(detail::merge_limit_of(chunk, first, end, 3) == std::min(expected, 3u));
            }
    constexpr u64 top = BuddyAllocator::max_chunks;
    CHECK(detail::merge_limit_of(top - 1, 0, top, 35) == 35);
    CHECK(detail::merge_limit_of(top - 1, top - 2, top, 35) == 1);
    CHECK(detail::merge_limit_of(top - 2, top - 3, top - 1, 35) == 0);
}

TEST_CASE("regions that touch are one region: blocks and runs cross where they meet")
{
    // [4 KiB, 12 KiB) and [12 KiB, 20 KiB) meet inside the 8 KiB block [8 KiB, 16 KiB),
    // whose halves were given in different regions.
    auto fixture = BuddyFixture::make(
        {range_of(4 * KiB, 8 * KiB), range_of(12 * KiB, 8 * KiB), range_of(64 * KiB, 4 * KiB)});
    CHECK(fixture.buddy.total_bytes() == 20 * KiB);
    BuddyStats stats = fixture.buddy.stats();
    CHECK(stats.largest_free_block == 8 * KiB);  // [8 KiB, 16 KiB) spans the meeting point
    std::array<BuddyBlock, 4> out{};
    auto run = fixture.buddy.allocate(16 * KiB, {.contiguous = true}, out);
    REQUIRE(run);
    CHECK(run->blocks.front().address == VramAddress{4 * KiB});
    CHECK(sum(run->blocks) == 16 * KiB);
    CHECK(fixture.buddy.check_invariants());
    REQUIRE(fixture.buddy.free(run->blocks, true));
    CHECK(fixture.buddy.stats().largest_free_block == 8 * KiB);
    CHECK(fixture.buddy.cleared_bytes() == 16 * KiB);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("chunks beside a region in a stored pair are never handed out")
{
    // Regions start and end at odd chunks, so the first and last order-0 buddies have a
    // partner outside every region (stored in the same 3-bit pair). Take and give back
    // every chunk in every cleared/dirty pattern; the partners never appear.
    auto fixture = BuddyFixture::make({range_of(4 * KiB, 12 * KiB), range_of(36 * KiB, 4 * KiB)});
    CHECK(fixture.buddy.total_bytes() == 16 * KiB);
    for (unsigned pattern = 0; pattern < 16; ++pattern) {
        std::vector<BuddyBlock> chunks = take_chunks(fixture, 4);
        std::array<BuddyBlock, 1> none{};
        CHECK(fixture.buddy.allocate(4 * KiB, {}, none).error() == Error::out_of_memory);
        for (const BuddyBlock &block : chunks) {
            bool inside =
                block.address == VramAddress{4 * KiB} || block.address == VramAddress{8 * KiB} ||
                block.address == VramAddress{12 * KiB} || block.address == VramAddress{36 * KiB};
            CHECK(inside);
        }
        CHECK(fixture.buddy.block_at(VramAddress{0}).error() == Error::out_of_range);
        CHECK(fixture.buddy.block_at(VramAddress{32 * KiB}).error() == Error::out_of_range);
        for (const BuddyBlock &block : chunks) {
            u64 page = block.address.value() / (4 * KiB);  // 1, 2, 3 or 9
            unsigned bit = page == 9 ? 0u : static_cast<unsigned>(page);
            REQUIRE(fixture.buddy.free(block, ((pattern >> bit) & 1u) != 0));
        }
        CHECK(fixture.buddy.check_invariants());
        CHECK(fixture.buddy.free_bytes() == 16 * KiB);
        // [8 KiB, 16 KiB) merged only if both halves were freed alike.
        bool alike = ((pattern >> 2) & 1u) == ((pattern >> 3) & 1u);
        CHECK((fixture.buddy.stats().largest_free_block == 8 * KiB) == alike);
    }
}

TEST_CASE("power-of-two allocations are naturally aligned single blocks")
{
    auto fixture = BuddyFixture::make({range_of(0, 64 * MiB)});
    std::array<BuddyBlock, 4> out{};
    for (u64 size : {4 * KiB, 64 * KiB, 2 * MiB, 8 * MiB}) {
        auto allocation = fixture.buddy.allocate(size, {.contiguous = true}, out);
        REQUIRE(allocation);
        REQUIRE(allocation->blocks.size() == 1);
        CHECK(allocation->blocks[0].size == size);
        CHECK(allocation->blocks[0].address.is_aligned_to(size));
    }
    CHECK(fixture.buddy.free_bytes() == 64 * MiB - (4 * KiB + 64 * KiB + 2 * MiB + 8 * MiB));
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("contiguous non-power-of-two sizes are met exactly")
{
    auto fixture = BuddyFixture::make({range_of(0, 16 * MiB)});
    std::array<BuddyBlock, 8> out{};
    auto allocation = fixture.buddy.allocate(3 * MiB + 12 * KiB, {.contiguous = true}, out);
    REQUIRE(allocation);
    CHECK(allocation->size == 3 * MiB + 12 * KiB);
    CHECK(sum(allocation->blocks) == 3 * MiB + 12 * KiB);
    CHECK(allocation->blocks.size() == 4);  // 2 MiB + 1 MiB + 8 KiB + 4 KiB
    // One run: each block starts where the previous ended.
    for (std::size_t i = 1; i < allocation->blocks.size(); ++i)
        CHECK(allocation->blocks[i].address ==
              allocation->blocks[i - 1].address + allocation->blocks[i - 1].size);
    CHECK(fixture.buddy.free_bytes() == 16 * MiB - (3 * MiB + 12 * KiB));
    CHECK(fixture.buddy.check_invariants());
    REQUIRE(fixture.buddy.free(allocation->blocks));
    CHECK(fixture.buddy.stats().largest_free_block == 16 * MiB);
}

TEST_CASE("the default result may consist of several blocks")
{
    auto fixture = BuddyFixture::make({range_of(0, 1 * MiB)});
    // Fragment: take every 4 KiB chunk one by one, give back every other one.
    std::vector<BuddyBlock> singles = take_chunks(fixture, 256);
    for (std::size_t i = 0; i < singles.size(); i += 2) REQUIRE(fixture.buddy.free(singles[i]));
    CHECK(fixture.buddy.stats().largest_free_block == 4 * KiB);
    std::vector<BuddyBlock> out(200);
    auto scattered = fixture.buddy.allocate(512 * KiB, {}, out);
    REQUIRE(scattered);
    CHECK(scattered->blocks.size() == 128);
    CHECK(sum(scattered->blocks) == 512 * KiB);
    auto contiguous = fixture.buddy.allocate(8 * KiB, {.contiguous = true}, out);
    CHECK(contiguous.error() == Error::out_of_memory);  // everything left is allocated
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("minimum block size: every block at least that big and aligned to it")
{
    auto fixture = BuddyFixture::make({range_of(0, 8 * MiB)});
    std::vector<BuddyBlock> out(64);
    auto allocation = fixture.buddy.allocate(1 * MiB + 4 * KiB, {.min_block_size = 64 * KiB}, out);
    REQUIRE(allocation);
    CHECK(allocation->size == 1 * MiB + 64 * KiB);  // rounded up to the minimum block
    for (const BuddyBlock &block : allocation->blocks) {
        CHECK(block.size >= 64 * KiB);
        CHECK(block.address.is_aligned_to(64 * KiB));
    }
    CHECK(fixture.buddy.allocate(4 * KiB, {.min_block_size = 3 * KiB}, out).error() ==
          Error::invalid_argument);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("an alignment larger than the size")
{
    auto fixture = BuddyFixture::make({range_of(0, 8 * MiB)});
    std::array<BuddyBlock, 2> out{};
    REQUIRE(fixture.buddy.allocate(4 * KiB, {}, out));  // make 0 unavailable
    auto allocation =
        fixture.buddy.allocate(4 * KiB, {.alignment = 2 * MiB, .contiguous = true}, out);
    REQUIRE(allocation);
    CHECK(allocation->blocks[0].address.is_aligned_to(2 * MiB));
    CHECK(allocation->blocks[0].address != VramAddress{0});
    CHECK(allocation->blocks[0].size == 4 * KiB);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("a window restricts placement; top-down takes the highest fit")
{
    auto fixture = BuddyFixture::make({range_of(0, 64 * MiB)});
    std::vector<BuddyBlock> out(64);
    auto windowed = fixture.buddy.allocate(
        3 * MiB,
        {.window_begin = VramAddress{10 * MiB + 4 * KiB}, .window_end = VramAddress{20 * MiB}},
        out);
    REQUIRE(windowed);
    for (const BuddyBlock &block : windowed->blocks) {
        CHECK(block.address >= VramAddress{10 * MiB + 4 * KiB});
        CHECK(block.address + block.size <= VramAddress{20 * MiB});
    }
    CHECK(sum(windowed->blocks) == 3 * MiB);
    auto top = fixture.buddy.allocate(64 * KiB, {.top_down = true, .contiguous = true}, out);
    REQUIRE(top);
    BuddyBlock highest = top->blocks[0];  // `out` is reused below
    CHECK(highest.address == VramAddress{64 * MiB - 64 * KiB});
    // Bottom-up is best fit: the smallest free block that holds it, wherever it lies.
    BuddyStats before = fixture.buddy.stats();
    unsigned smallest_fitting = 4;  // 64 KiB = 2^4 chunks
    while (before.free_bytes_per_order[smallest_fitting] == 0) ++smallest_fitting;
    auto bottom = fixture.buddy.allocate(64 * KiB, {.contiguous = true}, out);
    REQUIRE(bottom);
    CHECK(fixture.buddy.stats().free_bytes_per_order[smallest_fitting] ==
          before.free_bytes_per_order[smallest_fitting] - (u64{4096} << smallest_fitting));
    CHECK(bottom->blocks[0].address < highest.address);
    auto outside = fixture.buddy.allocate(4 * KiB, {.window_begin = VramAddress{128 * MiB}}, out);
    CHECK(outside.error() == Error::out_of_range);
    auto too_big = fixture.buddy.allocate(
        2 * MiB, {.window_begin = VramAddress{10 * MiB}, .window_end = VramAddress{11 * MiB}}, out);
    CHECK(too_big.error() == Error::out_of_memory);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("cleared memory is tracked, preferred on request, and never merged with dirty")
{
    auto fixture = BuddyFixture::make({range_of(0, 1 * MiB)});
    std::array<BuddyBlock, 4> out{};
    auto pair = take_chunks(fixture, 2);
    BuddyBlock first = pair[0];
    BuddyBlock second = pair[1];
    CHECK(second.address == first.address + 4 * KiB);  // buddies
    REQUIRE(fixture.buddy.free(first, true));
    REQUIRE(fixture.buddy.free(second, false));
    BuddyStats stats = fixture.buddy.stats();
    CHECK(stats.cleared_bytes == 4 * KiB);
    CHECK(stats.free_bytes_per_order[0] == 8 * KiB);  // two separate order-0 blocks
    CHECK(fixture.buddy.check_invariants());
    auto cleared = fixture.buddy.allocate(4 * KiB, {.prefer_cleared = true}, out);
    REQUIRE(cleared);
    CHECK(cleared->blocks[0].address == first.address);
    CHECK(fixture.buddy.stats().cleared_bytes == 0);
    REQUIRE(fixture.buddy.free(cleared->blocks, true));
    auto dirty = fixture.buddy.allocate(4 * KiB, {}, out);
    REQUIRE(dirty);
    CHECK(dirty->blocks[0].address == second.address);  // dirty first by default
    CHECK(fixture.buddy.stats().cleared_bytes == 4 * KiB);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("bad frees are refused and change nothing")
{
    auto fixture = BuddyFixture::make({range_of(0, 1 * MiB)});
    std::array<BuddyBlock, 4> out{};
    auto allocation = fixture.buddy.allocate(64 * KiB, {.contiguous = true}, out);
    REQUIRE(allocation);
    BuddyBlock block = allocation->blocks[0];
    Snapshot before = snapshot(fixture);
    CHECK(fixture.buddy.free(BuddyBlock{block.address, 32 * KiB}).error() ==
          Error::not_allocated);  // half of it
    CHECK(fixture.buddy.free(BuddyBlock{block.address, 128 * KiB}).error() ==
          Error::not_allocated);  // a parent
    CHECK(fixture.buddy.free(BuddyBlock{block.address + 4 * KiB, 4 * KiB}).error() ==
          Error::not_allocated);
    CHECK(fixture.buddy.free(BuddyBlock{VramAddress{512 * KiB}, 4 * KiB}).error() ==
          Error::double_free);  // free
    CHECK(fixture.buddy.free(BuddyBlock{block.address + 4 * KiB, 64 * KiB}).error() ==
          Error::misaligned);
    CHECK(fixture.buddy.free(BuddyBlock{VramAddress{4 * MiB}, 4 * KiB}).error() ==
          Error::out_of_range);
    CHECK(fixture.buddy.free(BuddyBlock{block.address, 3 * KiB}).error() ==
          Error::invalid_argument);
    CHECK(snapshot(fixture) == before);
    // A list naming the same block twice: refused as a whole, nothing freed.
    std::array twice{block, block};
    CHECK(fixture.buddy.free(twice).error() == Error::double_free);
    CHECK(snapshot(fixture) == before);
    REQUIRE(fixture.buddy.free(block));
    CHECK(fixture.buddy.free(block).error() == Error::double_free);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("bad allocation requests are refused and change nothing")
{
    auto fixture = BuddyFixture::make({range_of(0, 1 * MiB)});
    std::array<BuddyBlock, 2> out{};
    Snapshot before = snapshot(fixture);
    CHECK(fixture.buddy.allocate(0, {}, out).error() == Error::invalid_argument);
    CHECK(fixture.buddy.allocate(2 * MiB, {}, out).error() == Error::out_of_memory);
    CHECK(fixture.buddy.allocate(4 * KiB, {.alignment = 12 * KiB}, out).error() ==
          Error::invalid_argument);
    CHECK(fixture.buddy
              .allocate(4 * KiB,
                        {.window_begin = VramAddress{8192}, .window_end = VramAddress{4096}}, out)
              .error() == Error::invalid_argument);
    CHECK(fixture.buddy.allocate(4 * KiB, {}, std::span<BuddyBlock>{}).error() ==
          Error::invalid_argument);
    // 1 MiB - 4 KiB takes eight blocks (512 KiB + 256 KiB + ... + 4 KiB); `out` holds two.
    std::array<BuddyBlock, 1> one{};
    auto held = fixture.buddy.allocate(4 * KiB, {}, one);  // now 1 MiB - 4 KiB is free
    REQUIRE(held);
    Snapshot after_one = snapshot(fixture);
    CHECK(fixture.buddy.allocate(1 * MiB - 4 * KiB, {}, out).error() == Error::invalid_argument);
    CHECK(snapshot(fixture) == after_one);
    REQUIRE(fixture.buddy.free(held->blocks));
    CHECK(snapshot(fixture) == before);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("a failed scattered request rolls back cleared and dirty blocks exactly")
{
    auto fixture = BuddyFixture::make({range_of(0, 256 * KiB)});
    std::vector<BuddyBlock> singles = take_chunks(fixture, 64);
    // Free chunks 0..7 (even ones cleared, odd ones dirty) and 32..47 (dirty).
    for (std::size_t i = 0; i < 8; ++i) REQUIRE(fixture.buddy.free(singles[i], i % 2 == 0));
    for (std::size_t i = 32; i < 48; ++i) REQUIRE(fixture.buddy.free(singles[i]));
    Snapshot before = snapshot(fixture);
    CHECK(before.stats.cleared_bytes == 16 * KiB);
    // 64 KiB inside [0, 64 KiB): 24 chunks are free in all, only 8 in the window. The
    // request takes those 8, runs out, and must give them back with their own kinds.
    std::vector<BuddyBlock> out(64);
    auto failed = fixture.buddy.allocate(
        64 * KiB, {.window_end = VramAddress{64 * KiB}, .prefer_cleared = true}, out);
    CHECK(failed.error() == Error::out_of_memory);
    CHECK(snapshot(fixture) == before);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("trim shrinks an allocation in place")
{
    auto fixture = BuddyFixture::make({range_of(0, 1 * MiB)});
    std::array<BuddyBlock, 8> out{};
    auto allocation = fixture.buddy.allocate(64 * KiB, {.contiguous = true}, out);
    REQUIRE(allocation);
    VramAddress start = out[0].address;
    auto kept = fixture.buddy.trim(out, 1, 20 * KiB);
    REQUIRE(kept);
    REQUIRE(*kept == 2);
    CHECK(out[0] == BuddyBlock{start, 16 * KiB});
    CHECK(out[1] == BuddyBlock{start + 16 * KiB, 4 * KiB});
    CHECK(fixture.buddy.free_bytes() == 1 * MiB - 20 * KiB);
    CHECK(fixture.buddy.trim(out, 2, 24 * KiB).error() == Error::invalid_argument);  // grows
    std::array<BuddyBlock, 1> small{out[0]};
    CHECK(fixture.buddy.trim(small, 1, 12 * KiB).error() ==
          Error::invalid_argument);  // no room for 2 pieces
    CHECK(fixture.buddy.check_invariants());
    REQUIRE(fixture.buddy.free(std::span(out).first(2)));
    CHECK(fixture.buddy.stats().largest_free_block == 1 * MiB);
}

TEST_CASE("reserve takes an exact range and refuses overlaps")
{
    auto fixture = BuddyFixture::make({range_of(0, 4 * MiB)});
    std::array<BuddyBlock, 16> out{};
    auto firmware = fixture.buddy.reserve(range_of(1 * MiB + 12 * KiB, 100 * KiB), out);
    REQUIRE(firmware);
    CHECK(sum(firmware->blocks) == 100 * KiB);
    CHECK(firmware->blocks[0].address == VramAddress{1 * MiB + 12 * KiB});
    std::array<BuddyBlock, 16> other{};
    CHECK(fixture.buddy.reserve(range_of(1 * MiB, 16 * KiB), other).error() == Error::overlap);
    CHECK(fixture.buddy.reserve(range_of(1 * MiB + 2 * KiB, 4 * KiB), other).error() ==
          Error::misaligned);
    CHECK(fixture.buddy.reserve(range_of(4 * MiB, 4 * KiB), other).error() == Error::out_of_range);
    CHECK(fixture.buddy.free_bytes() == 4 * MiB - 100 * KiB);
    // Nothing handed out overlaps the reservation.
    std::vector<BuddyBlock> rest(256);
    auto everything = fixture.buddy.allocate(4 * MiB - 100 * KiB, {}, rest);
    REQUIRE(everything);
    for (const BuddyBlock &block : everything->blocks)
        CHECK((block.address + block.size <= VramAddress{1 * MiB + 12 * KiB} ||
               block.address >= VramAddress{1 * MiB + 112 * KiB}));
    CHECK(fixture.buddy.check_invariants());
    REQUIRE(fixture.buddy.free(firmware->blocks));
    REQUIRE(fixture.buddy.free(everything->blocks));
    CHECK(fixture.buddy.stats().largest_free_block == 4 * MiB);
}

TEST_CASE("reserve collects a range split into cleared and dirty free blocks")
{
    auto fixture = BuddyFixture::make({range_of(0, 64 * KiB)});
    std::array<BuddyBlock, 2> out{};
    auto pair = take_chunks(fixture, 2);
    REQUIRE(fixture.buddy.free(pair[0], true));
    REQUIRE(fixture.buddy.free(pair[1], false));
    auto reserved = fixture.buddy.reserve(range_of(0, 8 * KiB), out);
    REQUIRE(reserved);
    CHECK(reserved->blocks.size() == 1);
    CHECK(fixture.buddy.stats().cleared_bytes == 0);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("nova-core's self-test: a window around a reserved hole")
{
    auto fixture = BuddyFixture::make({range_of(0, 1 * MiB)});
    std::array<BuddyBlock, 4> hole{};
    REQUIRE(fixture.buddy.reserve(range_of(64 * KiB + 16 * KiB, 4 * KiB), hole));
    std::vector<BuddyBlock> out(16);
    auto allocation = fixture.buddy.allocate(
        32 * KiB, {.window_begin = VramAddress{64 * KiB}, .window_end = VramAddress{100 * KiB}},
        out);
    REQUIRE(allocation);
    CHECK(sum(allocation->blocks) == 32 * KiB);
    for (const BuddyBlock &block : allocation->blocks) {
        CHECK(block.address >= VramAddress{64 * KiB});
        CHECK(block.address + block.size <= VramAddress{100 * KiB});
        bool hits_hole = block.address < VramAddress{84 * KiB} &&
                         block.address + block.size > VramAddress{80 * KiB};
        CHECK_FALSE(hits_hole);
    }
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("exhaustion and recovery across several regions")
{
    auto fixture = BuddyFixture::make({range_of(4 * MiB, 3 * MiB + 20 * KiB),
                                       range_of(12 * MiB, 2 * MiB), range_of(16 * MiB, 2 * MiB)});
    BuddyStats initial = fixture.buddy.stats();
    std::vector<BuddyBlock> blocks;
    std::array<BuddyBlock, 1> one{};
    for (;;) {
        auto allocation = fixture.buddy.allocate(4 * KiB, {}, one);
        if (!allocation) {
            CHECK(allocation.error() == Error::out_of_memory);
            break;
        }
        blocks.push_back(one[0]);
    }
    CHECK(blocks.size() * 4 * KiB == initial.total_bytes);
    CHECK(fixture.buddy.free_bytes() == 0);
    CHECK(fixture.buddy.check_invariants());
    // Free in a scrambled order; everything merges back to one block per aligned piece.
    for (std::size_t i = 0; i < blocks.size(); ++i)
        std::swap(blocks[i], blocks[(i * 7919) % blocks.size()]);
    for (const BuddyBlock &block : blocks) REQUIRE(fixture.buddy.free(block));
    BuddyStats recovered = fixture.buddy.stats();
    CHECK(recovered.free_bytes == initial.total_bytes);
    CHECK(recovered.free_bytes_per_order == initial.free_bytes_per_order);
    // [12 MiB, 14 MiB) and [16 MiB, 18 MiB) touch no other region: blocks never merge across
    // a gap.
    CHECK(recovered.largest_free_block == 2 * MiB);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("larger chunks: 64 KiB")
{
    auto fixture = BuddyFixture::make({range_of(0, 16 * MiB)}, 64 * KiB);
    std::array<BuddyBlock, 4> out{};
    auto allocation = fixture.buddy.allocate(4 * KiB, {}, out);
    REQUIRE(allocation);
    CHECK(allocation->size == 64 * KiB);
    CHECK(out[0].size == 64 * KiB);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("the fingerprint sees every change of a block's state")
{
    auto fixture = BuddyFixture::make({range_of(0, 1 * MiB)});
    u64 empty = fixture.buddy.fingerprint();
    auto taken = take_chunks(fixture, 1);
    u64 one = fixture.buddy.fingerprint();
    CHECK(one != empty);
    REQUIRE(fixture.buddy.free(taken[0], true));  // same chunk back, but cleared
    u64 cleared = fixture.buddy.fingerprint();
    CHECK(cleared != empty);
    CHECK(cleared != one);
    std::array<BuddyBlock, 1> again{};
    REQUIRE(fixture.buddy.allocate(4 * KiB, {.prefer_cleared = true}, again));
    CHECK(again[0].address == taken[0].address);
    CHECK(again[0].cleared);  // handed out as known zero
    REQUIRE(fixture.buddy.free(again[0], false));
    CHECK(fixture.buddy.fingerprint() == empty);  // dirty again: identical to the start
}

// ---- no false refusals: one regression per case a user hit ------------------------------

TEST_CASE("regression: 4 KiB pages freed alternately cleared and dirty still merge on demand")
{
    // Smallest case: two buddies of different kinds make one 8 KiB block.
    auto pair = BuddyFixture::make({range_of(0, 8 * KiB)});
    auto pages = take_chunks(pair, 2);
    REQUIRE(pair.buddy.free(pages[0], true));
    REQUIRE(pair.buddy.free(pages[1], false));
    std::array<BuddyBlock, 2> out{};
    auto merged = pair.buddy.allocate(8 * KiB, {.contiguous = true}, out);
    REQUIRE(merged);
    REQUIRE(merged->blocks.size() == 1);
    CHECK(merged->blocks[0] == BuddyBlock{VramAddress{0}, 8 * KiB, false});  // dirty: mixed
    CHECK(pair.buddy.cleared_bytes() == 0);
    CHECK(pair.buddy.check_invariants());

    // 16 MiB, every page free, alternately cleared and dirty: every order is available.
    auto fixture = BuddyFixture::make({range_of(0, 16 * MiB)});
    auto all = take_chunks(fixture, 4096);
    for (std::size_t i = 0; i < all.size(); ++i) REQUIRE(fixture.buddy.free(all[i], i % 2 == 0));
    CHECK(fixture.buddy.cleared_bytes() == 8 * MiB);
    for (u64 size = 8 * KiB; size <= 16 * MiB; size *= 2) {
        CAPTURE(size);
        auto block = fixture.buddy.allocate(size, {.min_block_size = size}, out);
        REQUIRE(block);
        CHECK(block->blocks.size() == 1);
        // Cleared bytes are accounted exactly: the merged block took half cleared pages.
        CHECK(fixture.buddy.cleared_bytes() == 8 * MiB - size / 2);
        REQUIRE(fixture.buddy.free(block->blocks, false));
        fixture.buddy.reset_clear(false);
        REQUIRE(fixture.buddy.free_bytes() == 16 * MiB);
        // Make the mix again for the next order.
        auto again = take_chunks(fixture, 4096);
        for (std::size_t i = 0; i < again.size(); ++i)
            REQUIRE(fixture.buddy.free(again[i], i % 2 == 0));
    }
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("regression: contiguous sizes that are not powers of two use any long-enough run")
{
    std::array<BuddyBlock, 8> out{};
    auto twelve = BuddyFixture::make({range_of(0, 12 * KiB)});
    auto all = twelve.buddy.allocate(12 * KiB, {.contiguous = true}, out);
    REQUIRE(all);
    CHECK(sum(all->blocks) == 12 * KiB);

    // Pages 1..6 of 8 free: 12 KiB contiguous fits at page 1 (or 2, 3, 4).
    auto eight = BuddyFixture::make({range_of(0, 32 * KiB)});
    auto pages = take_chunks(eight, 8);
    for (std::size_t i = 1; i <= 6; ++i) REQUIRE(eight.buddy.free(pages[i]));
    auto run = eight.buddy.allocate(12 * KiB, {.contiguous = true}, out);
    REQUIRE(run);
    CHECK(run->blocks[0].address == VramAddress{4 * KiB});  // the lowest run
    auto top = eight.buddy.allocate(12 * KiB, {.top_down = true, .contiguous = true}, out);
    REQUIRE(top);
    CHECK(top->blocks[0].address == VramAddress{16 * KiB});  // pages 4..6, the rest
    Snapshot full = snapshot(eight);
    CHECK(eight.buddy.allocate(4 * KiB, {.contiguous = true}, out).error() == Error::out_of_memory);
    CHECK(snapshot(eight) == full);
    CHECK(eight.buddy.check_invariants());

    // 10 GiB, completely free: 9 GiB contiguous is 8 GiB + 1 GiB.
    auto ten = BuddyFixture::make({range_of(0, 10 * GiB)});
    auto nine = ten.buddy.allocate(9 * GiB, {.contiguous = true}, out);
    REQUIRE(nine);
    CHECK(nine->blocks.size() == 2);
    CHECK(nine->blocks[0] == BuddyBlock{VramAddress{0}, 8 * GiB, false});
    CHECK(nine->blocks[1] == BuddyBlock{VramAddress{8 * GiB}, 1 * GiB, false});
}

TEST_CASE("regression: aligned searches are exact, bottom-up and top-down")
{
    for (bool top_down : {false, true}) {
        CAPTURE(top_down);
        auto fixture = BuddyFixture::make({range_of(0, 1 * MiB)});
        auto pages = take_chunks(fixture, 256);
        for (std::size_t i = 1; i <= 129; i += 2) REQUIRE(fixture.buddy.free(pages[i]));
        REQUIRE(fixture.buddy.free(pages[192]));
        std::array<BuddyBlock, 1> out{};
        auto aligned =
            fixture.buddy.allocate(4 * KiB, {.alignment = 64 * KiB, .top_down = top_down}, out);
        REQUIRE(aligned);
        CHECK(out[0].address == VramAddress{192 * 4 * KiB});  // the only aligned free page
        Snapshot before = snapshot(fixture);
        CHECK(fixture.buddy.allocate(4 * KiB, {.alignment = 64 * KiB, .top_down = top_down}, out)
                  .error() == Error::out_of_memory);
        CHECK(snapshot(fixture) == before);
        CHECK(fixture.buddy.check_invariants());
    }
}

TEST_CASE("regression: scattered requests aligned beyond their minimum block are exact")
{
    // Free: [0, 16 KiB) and [64 KiB, 68 KiB). 20 KiB in blocks aligned to 64 KiB: one block
    // of 16 KiB at 0 and one of 4 KiB at 64 KiB; 24 KiB has no answer.
    auto fixture = BuddyFixture::make({range_of(0, 128 * KiB)});
    auto pages = take_chunks(fixture, 32);
    for (std::size_t i : {0u, 1u, 2u, 3u, 16u}) REQUIRE(fixture.buddy.free(pages[i], i == 1));
    std::array<BuddyBlock, 4> out{};
    Snapshot before = snapshot(fixture);
    CHECK(fixture.buddy.allocate(24 * KiB, {.alignment = 64 * KiB}, out).error() ==
          Error::out_of_memory);
    CHECK(snapshot(fixture) == before);
    auto twenty = fixture.buddy.allocate(20 * KiB, {.alignment = 64 * KiB}, out);
    REQUIRE(twenty);
    CHECK(twenty->blocks.size() == 2);
    CHECK(sum(twenty->blocks) == 20 * KiB);
    for (const BuddyBlock &block : twenty->blocks) {
        CHECK(block.address.is_aligned_to(64 * KiB));
        CHECK_FALSE(block.cleared);  // page 1 was cleared, the rest dirty
    }
    CHECK(fixture.buddy.free_bytes() == 0);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("reset_clear turns all free memory cleared or dirty and merges it")
{
    auto fixture = BuddyFixture::make({range_of(0, 1 * MiB)});
    BuddyStats initial = fixture.buddy.stats();
    auto pages = take_chunks(fixture, 256);
    std::vector<BuddyBlock> kept;
    for (std::size_t i = 0; i < pages.size(); ++i) {
        if (i == 100)
            kept.push_back(pages[i]);
        else
            REQUIRE(fixture.buddy.free(pages[i], i % 3 == 0));
    }
    fixture.buddy.reset_clear(true);
    CHECK(fixture.buddy.cleared_bytes() == 1 * MiB - 4 * KiB);
    CHECK(fixture.buddy.stats().largest_free_block == 512 * KiB);  // [512 KiB, 1 MiB)
    std::array<BuddyBlock, 1> out{};
    auto cleared = fixture.buddy.allocate(256 * KiB, {.min_block_size = 256 * KiB}, out);
    REQUIRE(cleared);
    CHECK(out[0].cleared);
    REQUIRE(fixture.buddy.free(out[0], true));
    fixture.buddy.reset_clear(false);
    CHECK(fixture.buddy.cleared_bytes() == 0);
    REQUIRE(fixture.buddy.free(kept));
    CHECK(fixture.buddy.stats().free_bytes_per_order == initial.free_bytes_per_order);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("block_at finds the allocated block holding an address")
{
    auto fixture = BuddyFixture::make({range_of(1 * MiB, 1 * MiB), range_of(4 * MiB, 1 * MiB)});
    std::array<BuddyBlock, 1> out{};
    REQUIRE(fixture.buddy.allocate(64 * KiB, {.contiguous = true}, out));
    BuddyBlock block = out[0];
    auto found = fixture.buddy.block_at(block.address + 12345);
    REQUIRE(found);
    CHECK(found->address == block.address);
    CHECK(found->size == block.size);
    CHECK(fixture.buddy.block_at(block.address + block.size).error() == Error::not_allocated);
    CHECK(fixture.buddy.block_at(VramAddress{3 * MiB}).error() == Error::out_of_range);  // gap
    CHECK(fixture.buddy.block_at(VramAddress{~u64{0}}).error() == Error::out_of_range);
    REQUIRE(fixture.buddy.free(block));
    CHECK(fixture.buddy.block_at(block.address).error() == Error::not_allocated);
}

TEST_CASE("block_state_at walks VRAM block by block: allocated, free cleared, free dirty")
{
    // Every region is tiled by blocks; a walk from each region's start by block sizes
    // reaches its end, and the free bytes seen (cleared ones apart) match the statistics.
    auto fixture = BuddyFixture::make({range_of(1 * MiB, 3 * MiB), range_of(8 * MiB, 1 * MiB)});
    std::array<BuddyBlock, 16> out{};
    auto a = fixture.buddy.allocate(192 * KiB, {}, out);
    REQUIRE(a);
    const std::vector<BuddyBlock> held(a->blocks.begin(), a->blocks.end());
    auto b = fixture.buddy.allocate(64 * KiB, {.top_down = true}, out);
    REQUIRE(b);
    REQUIRE(fixture.buddy.free(out[0], /*cleared=*/true));
    u64 free_seen = 0, cleared_seen = 0, allocated_seen = 0;
    for (const auto &[begin, end] : {std::pair{1 * MiB, 4 * MiB}, std::pair{8 * MiB, 9 * MiB}}) {
        u64 at = begin;
        while (at < end) {
            auto here = fixture.buddy.block_state_at(VramAddress{at + 100});
            REQUIRE(here);
            REQUIRE(here->block.address.value() == at);  // blocks tile the region
            switch (here->state) {
            case BuddyBlockState::allocated: allocated_seen += here->block.size; break;
            case BuddyBlockState::free_cleared:
                cleared_seen += here->block.size;
                free_seen += here->block.size;
                CHECK(here->block.cleared);
                break;
            case BuddyBlockState::free_dirty:
                free_seen += here->block.size;
                CHECK_FALSE(here->block.cleared);
                break;
            }
            at += here->block.size;
        }
        CHECK(at == end);
    }
    CHECK(allocated_seen == 192 * KiB);
    CHECK(free_seen == fixture.buddy.free_bytes());
    CHECK(cleared_seen == fixture.buddy.cleared_bytes());
    CHECK(cleared_seen >= 64 * KiB);
    auto inside = fixture.buddy.block_state_at(held[0].address);
    REQUIRE(inside);
    CHECK(inside->state == BuddyBlockState::allocated);
    CHECK(fixture.buddy.block_state_at(VramAddress{5 * MiB}).error() == Error::out_of_range);
}

TEST_CASE("blocks say whether they were handed out cleared")
{
    auto fixture = BuddyFixture::make({range_of(0, 1 * MiB)});
    std::array<BuddyBlock, 8> out{};
    auto first = fixture.buddy.allocate(256 * KiB, {.contiguous = true}, out);
    REQUIRE(first);
    CHECK_FALSE(out[0].cleared);  // nothing is known to be zero at the start
    REQUIRE(fixture.buddy.free(out[0], true));
    auto again =
        fixture.buddy.allocate(192 * KiB, {.contiguous = true, .prefer_cleared = true}, out);
    REQUIRE(again);
    for (const BuddyBlock &block : again->blocks) CHECK(block.cleared);
    std::array<BuddyBlock, 4> reserved{};
    auto firmware = fixture.buddy.reserve(range_of(192 * KiB, 128 * KiB), reserved);
    REQUIRE(firmware);  // 64 KiB cleared + 64 KiB dirty: two blocks, told apart
    REQUIRE(firmware->blocks.size() == 2);
    CHECK(firmware->blocks[0].cleared);
    CHECK_FALSE(firmware->blocks[1].cleared);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("a lone free block of an order is found inside windows, both directions")
{
    // 1 MiB of 4 KiB chunks: take everything, give back one 64 KiB block (the only free
    // block of its order), then search for it through windows that hold it or not.
    auto fixture = BuddyFixture::make({range_of(0, 1 * MiB)});
    std::vector<BuddyBlock> sixteen(16);
    for (BuddyBlock &block : sixteen)
        REQUIRE(fixture.buddy.allocate(64 * KiB, {}, std::span(&block, 1)));
    REQUIRE(fixture.buddy.free(sixteen[9]));  // [576 KiB, 640 KiB)
    CHECK(fixture.buddy.check_invariants());
    std::array<BuddyBlock, 1> out{};
    u64 fingerprint = fixture.buddy.fingerprint();
    for (bool top_down : {false, true}) {
        BuddyOptions below{.window_end = VramAddress{576 * KiB}, .top_down = top_down};
        CHECK(fixture.buddy.allocate(64 * KiB, below, out).error() == Error::out_of_memory);
        BuddyOptions above{.window_begin = VramAddress{640 * KiB}, .top_down = top_down};
        CHECK(fixture.buddy.allocate(4 * KiB, above, out).error() == Error::out_of_memory);
        CHECK(fixture.buddy.fingerprint() == fingerprint);
    }
    // A second free block joins it (it is written into the summaries), then leaves again.
    REQUIRE(fixture.buddy.free(sixteen[2]));
    CHECK(fixture.buddy.check_invariants());
    auto low = fixture.buddy.allocate(64 * KiB, {}, out);
    REQUIRE(low);
    CHECK(out[0].address == VramAddress{128 * KiB});
    CHECK(fixture.buddy.check_invariants());
    auto high = fixture.buddy.allocate(
        16 * KiB, {.window_begin = VramAddress{600 * KiB}, .top_down = true}, out);
    REQUIRE(high);
    CHECK(out[0].address == VramAddress{624 * KiB});
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("chunks set aside are kept free for the promise and drawn on without fail")
{
    auto fixture = BuddyFixture::make({range_of(0, 1 * MiB)});  // 256 chunks
    BuddyAllocator &buddy = fixture.buddy;
    std::array<BuddyBlock, 64> out{};
    std::array<BuddyBlock, 1> one{};
    // Nothing promised: drawing is a caller bug, refused.
    CHECK(buddy.allocate(4 * KiB, {.from_set_aside = true}, one).error() ==
          Error::invalid_argument);
    Snapshot empty = snapshot(fixture);
    CHECK(buddy.set_aside(257).error() == Error::out_of_memory);
    CHECK(snapshot(fixture) == empty);
    REQUIRE(buddy.set_aside(4));
    CHECK(buddy.set_aside_bytes() == 16 * KiB);
    CHECK(buddy.free_bytes() == 1 * MiB);
    CHECK(buddy.available_bytes() == 1 * MiB - 16 * KiB);
    CHECK(buddy.stats().set_aside_bytes == 16 * KiB);
    CHECK(buddy.check_invariants());

    // Every kind of request that would leave fewer than 4 free chunks is refused, though the
    // memory is free; each refusal changes nothing.
    Snapshot promised = snapshot(fixture);
    CHECK(promised != empty);  // the promise is part of the state
    CHECK(buddy.allocate(1 * MiB, {.contiguous = true}, out).error() == Error::out_of_memory);
    CHECK(buddy.allocate(1 * MiB - 12 * KiB, {}, out).error() == Error::out_of_memory);
    CHECK(buddy.allocate(1 * MiB - 12 * KiB, {.contiguous = true}, out).error() ==
          Error::out_of_memory);
    std::array<BuddyBlock, 64> reserved{};
    CHECK(buddy.reserve(range_of(0, 1 * MiB - 12 * KiB), reserved).error() == Error::out_of_memory);
    CHECK(buddy.set_aside(253).error() == Error::out_of_memory);
    CHECK(snapshot(fixture) == promised);
    // Exactly what is available is fine: now only the promise is free.
    auto rest = buddy.allocate(buddy.available_bytes(), {}, out);
    REQUIRE(rest);
    CHECK(buddy.available_bytes() == 0);
    CHECK(buddy.free_bytes() == 16 * KiB);
    CHECK(buddy.allocate(4 * KiB, {.top_down = true}, one).error() == Error::out_of_memory);

    // Draws: one chunk each, whatever is left, never more than one chunk, never a window.
    CHECK(buddy.allocate(8 * KiB, {.from_set_aside = true}, out).error() ==
          Error::invalid_argument);
    CHECK(
        buddy.allocate(4 * KiB, {.window_end = VramAddress{64 * KiB}, .from_set_aside = true}, one)
            .error() == Error::invalid_argument);
    std::vector<BuddyBlock> drawn;
    for (int i = 0; i < 4; ++i) {
        auto page = buddy.allocate(4 * KiB, {.prefer_cleared = true, .from_set_aside = true}, one);
        REQUIRE(page);
        CHECK(page->blocks[0].size == 4 * KiB);
        drawn.push_back(page->blocks[0]);
    }
    CHECK(buddy.set_aside_bytes() == 0);
    CHECK(buddy.free_bytes() == 0);
    CHECK(buddy.allocate(4 * KiB, {.from_set_aside = true}, one).error() ==
          Error::invalid_argument);
    CHECK(buddy.check_invariants());

    // Released, what was not drawn is available again.
    for (const BuddyBlock &block : drawn) REQUIRE(buddy.free(block));
    REQUIRE(buddy.set_aside(3));
    CHECK(buddy.available_bytes() == 4 * KiB);
    buddy.release_set_aside(3);
    CHECK(buddy.available_bytes() == 16 * KiB);
    REQUIRE(buddy.free(rest->blocks));
    CHECK(snapshot(fixture) == empty);
    CHECK(buddy.check_invariants());
}

TEST_CASE("a promise is kept through fragmentation: any free chunk serves a draw")
{
    auto fixture = BuddyFixture::make({range_of(0, 256 * KiB)});  // 64 chunks
    BuddyAllocator &buddy = fixture.buddy;
    // Every other chunk taken, the free ones freed alternately cleared and dirty: no two
    // free chunks are buddies, no free block is larger than a chunk.
    std::vector<BuddyBlock> all;
    std::array<BuddyBlock, 1> one{};
    for (int i = 0; i < 64; ++i) {
        REQUIRE(buddy.allocate(4 * KiB, {}, one));
        all.push_back(one[0]);
    }
    std::sort(all.begin(), all.end(),
              [](const BuddyBlock &a, const BuddyBlock &b) { return a.address < b.address; });
    for (std::size_t i = 0; i < all.size(); i += 2) REQUIRE(buddy.free(all[i], i % 4 == 0));
    REQUIRE(buddy.set_aside(32));
    std::array<BuddyBlock, 2> out{};
    CHECK(buddy.allocate(4 * KiB, {}, out).error() == Error::out_of_memory);
    for (int i = 0; i < 32; ++i) {
        auto page = buddy.allocate(4 * KiB, {.top_down = i % 2 == 0, .from_set_aside = true}, one);
        REQUIRE(page);
        all[static_cast<std::size_t>(i) * 2] = page->blocks[0];
    }
    CHECK(buddy.free_bytes() == 0);
    CHECK(buddy.check_invariants());
    for (const BuddyBlock &block : all) REQUIRE(buddy.free(block));
    CHECK(buddy.free_bytes() == 256 * KiB);
    CHECK(buddy.check_invariants());
}
