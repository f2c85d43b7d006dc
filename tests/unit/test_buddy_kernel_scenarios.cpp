// The scenarios of the Linux GPU buddy allocator's KUnit suite (limit, optimistic,
// pessimistic, pathological, contiguous, clear and reset, exact ranges, range bias,
// fragmentation, exceeds max order, offset-aligned allocation and its alignment stress),
// written anew against gpummu's API. The kernel's "range allocation" is `reserve` here, its
// "bias" is the window, its size-below-min-block offset alignment is `alignment`, and its
// clear flag is `prefer_cleared`. Every expected refusal is checked to change nothing
// (statistics and fingerprint), and every scenario ends with the full audit.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <string_view>
#include <vector>

#include "gpummu/alloc/buddy.hpp"
#include "support/buddy_fixture.hpp"
#include "support/random.hpp"

using namespace gpummu;
using testing::BuddyFixture;
using testing::range_of;
using testing::snapshot;

namespace {
constexpr u64 KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB, TiB = 1024 * GiB;
constexpr u64 page = 4 * KiB;

struct Blocks {
    std::vector<BuddyBlock> list;
    u64 bytes() const
    {
        u64 total = 0;
        for (const BuddyBlock &block : list) total += block.size;
        return total;
    }
};

// Allocates and appends the blocks to `into`; REQUIREs success.
void take(BuddyFixture &fixture, u64 size, const BuddyOptions &options, Blocks &into)
{
    std::vector<BuddyBlock> out(4096);
    auto allocation = fixture.buddy.allocate(size, options, out);
    CAPTURE(size);
    REQUIRE(allocation);
    into.list.insert(into.list.end(), allocation->blocks.begin(), allocation->blocks.end());
}

// A refusal with `error` that leaves the allocator exactly as it was.
void refused(BuddyFixture &fixture, u64 size, const BuddyOptions &options,
             Error error = Error::out_of_memory)
{
    std::vector<BuddyBlock> out(4096);
    auto before = snapshot(fixture);
    auto allocation = fixture.buddy.allocate(size, options, out);
    CAPTURE(size);
    REQUIRE_FALSE(allocation);
    CHECK(error_name(allocation.error()) == error_name(error));
    CHECK(snapshot(fixture) == before);
}

void give_back(BuddyFixture &fixture, Blocks &blocks, bool cleared = false)
{
    REQUIRE(fixture.buddy.free(blocks.list, cleared));
    blocks.list.clear();
}

bool contiguous_run(const Blocks &blocks)
{
    for (std::size_t i = 1; i < blocks.list.size(); ++i)
        if (blocks.list[i].address != blocks.list[i - 1].address + blocks.list[i - 1].size)
            return false;
    return true;
}

BuddyOptions exactly(u64 size)  // the kernel's "size, min_block_size = size"
{
    return BuddyOptions{.min_block_size = size};
}
}  // namespace

TEST_CASE("kernel limit: the space the metadata can index, and the top of the 64-bit range")
{
    // A space of nearly 2^64 bytes (the kernel accepts it: its nodes are made on demand)
    // is refused with a clear error, never wrapped.
    std::array nearly_all{range_of(0, ~u64{0} - page + 1)};
    CHECK(BuddyAllocator::metadata_words(nearly_all).error() == Error::space_too_large);
    CHECK(std::string_view(error_message(Error::space_too_large)).find("2^35") !=
          std::string_view::npos);
    // Exactly 2^35 chunks from the first region's start to the last one's end: accepted.
    std::array largest{range_of(0, BuddyAllocator::max_chunks * page)};
    CHECK(BuddyAllocator::metadata_words(largest));
    std::array one_more{range_of(0, (BuddyAllocator::max_chunks + 1) * page)};
    CHECK(BuddyAllocator::metadata_words(one_more).error() == Error::space_too_large);
    std::array far_apart{range_of(0, page), range_of(u64{1} << 60, page)};
    CHECK(BuddyAllocator::metadata_words(far_apart).error() == Error::space_too_large);
    // Larger chunks index more: 2^35 chunks of 64 KiB.
    std::array largest_of_64k{range_of(0, BuddyAllocator::max_chunks * 64 * KiB)};
    CHECK(BuddyAllocator::metadata_words(largest_of_64k, 64 * KiB));

    // The last TiB below 2^64 (minus one 64 KiB chunk), 64 KiB chunks: the largest block
    // is the aligned 512 GiB at the bottom; nothing wraps past the top.
    const u64 base = ~u64{0} - TiB + 1;
    auto fixture = BuddyFixture::make({range_of(base, TiB - 64 * KiB)}, 64 * KiB);
    Blocks largest_block;
    take(fixture, 512 * GiB, {.contiguous = true}, largest_block);
    REQUIRE(largest_block.list.size() == 1);
    CHECK(largest_block.list[0].address == VramAddress{base});
    Blocks top;
    take(fixture, 64 * KiB, {.top_down = true, .contiguous = true}, top);
    CHECK(top.list[0].address == VramAddress{~u64{0} - 128 * KiB + 1});
    Blocks rest;
    take(fixture, TiB - 512 * GiB - 128 * KiB, {}, rest);
    for (const BuddyBlock &block : rest.list)
        CHECK(block.address.value() + (block.size - 1) >= block.address.value());
    refused(fixture, 64 * KiB, {});
    CHECK(fixture.buddy.check_invariants());
    give_back(fixture, rest);
    give_back(fixture, top);
    give_back(fixture, largest_block);
    CHECK(fixture.buddy.free_bytes() == TiB - 64 * KiB);

    // The kernel's own limit case in a space we can index: the maximal block as one.
    auto whole = BuddyFixture::make({range_of(0, TiB)}, 64 * KiB);
    Blocks all;
    take(whole, TiB, exactly(TiB), all);
    REQUIRE(all.list.size() == 1);
    CHECK(all.list[0].size == TiB);
    CHECK(whole.buddy.check_invariants());
}

TEST_CASE("kernel optimistic: one block of every order, then full")
{
    constexpr unsigned max_order = 16;
    auto fixture = BuddyFixture::make({range_of(0, page * ((u64{1} << (max_order + 1)) - 1))});
    Blocks blocks;
    for (unsigned order = 0; order <= max_order; ++order)
        take(fixture, page << order, exactly(page << order), blocks);
    CHECK(fixture.buddy.free_bytes() == 0);
    refused(fixture, page, exactly(page));
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("kernel pessimistic: fill with one block per order, free upward, regain everything")
{
    constexpr unsigned max_order = 16;
    auto fixture = BuddyFixture::make({range_of(0, page << max_order)});
    Blocks blocks;
    for (unsigned order = 0; order < max_order; ++order)
        take(fixture, page << order, exactly(page << order), blocks);
    Blocks last_page;
    take(fixture, page, exactly(page), last_page);  // the one page left
    for (unsigned order = max_order; order-- > 0;)
        refused(fixture, page << order, exactly(page << order));
    give_back(fixture, last_page);
    // Freeing in increasing size makes each next order available.
    for (unsigned order = 1; order <= max_order; ++order) {
        REQUIRE(fixture.buddy.free(blocks.list[order - 1]));
        Blocks probe;
        take(fixture, page << order, exactly(page << order), probe);
        give_back(fixture, probe);
    }
    CHECK(fixture.buddy.stats().largest_free_block == page << max_order);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("kernel pathological: whittle down to a 50% fragmented space")
{
    constexpr unsigned max_order = 3;
    auto fixture = BuddyFixture::make({range_of(0, page << max_order)});
    std::vector<BuddyBlock> blocks, holes;
    for (unsigned top = max_order; top > 0; --top) {
        if (!blocks.empty()) {  // make room: free the largest block taken so far
            REQUIRE(fixture.buddy.free(blocks.front()));
            blocks.erase(blocks.begin());
        }
        for (unsigned order = top; order-- > 0;) {
            Blocks one;
            take(fixture, page << order, exactly(page << order), one);
            blocks.push_back(one.list[0]);
        }
        Blocks hole;
        take(fixture, page, exactly(page), hole);
        holes.push_back(hole.list[0]);
        refused(fixture, page << top, exactly(page << top));
    }
    REQUIRE(fixture.buddy.free(holes));
    // One hole per round is free, and no two holes share an aligned pair: nothing larger
    // than a page can be had.
    CHECK(fixture.buddy.free_bytes() == max_order * page);
    for (unsigned order = 1; order <= max_order; ++order)
        refused(fixture, page << order, exactly(page << order));
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("kernel contiguous: runs of adjacent free blocks that are not buddies")
{
    auto fixture = BuddyFixture::make({range_of(0, 48 * page)});
    std::array<Blocks, 3> thirds;  // page i goes to list i % 3
    for (unsigned i = 0; i < 48; ++i) take(fixture, page, {}, thirds[i % 3]);
    const BuddyOptions contiguous{.contiguous = true};
    refused(fixture, 3 * page, contiguous);
    give_back(fixture, thirds[1]);
    refused(fixture, 3 * page, contiguous);
    refused(fixture, 2 * page, contiguous);
    give_back(fixture, thirds[2]);
    refused(fixture, 3 * page, contiguous);
    // Pages 3k+1 and 3k+2 are free and adjacent but never buddies of one block.
    Blocks allocated;
    take(fixture, 2 * page, contiguous, allocated);
    CHECK(contiguous_run(allocated));
    give_back(fixture, thirds[0]);
    Blocks three;
    take(fixture, 3 * page, contiguous, three);
    CHECK(contiguous_run(three));
    CHECK(allocated.bytes() + three.bytes() == 5 * page);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("kernel clear: cleared blocks said as such, over the cleared limit, force merge, reset")
{
    constexpr unsigned max_order = 12;
    const u64 size = page << max_order;
    {
        auto fixture = BuddyFixture::make({range_of(0, size)});
        Blocks five;
        take(fixture, 5 * page, {.top_down = true}, five);
        give_back(fixture, five, true);
        Blocks dirty, clean;
        for (unsigned i = 0; i < 10; ++i) {
            if (i % 2 == 0)
                take(fixture, page, {}, dirty);
            else
                take(fixture, page, {.prefer_cleared = true}, clean);
        }
        for (const BuddyBlock &block : clean.list) CHECK(block.cleared);
        for (const BuddyBlock &block : dirty.list) CHECK_FALSE(block.cleared);
        give_back(fixture, clean, true);
        // More than the cleared memory there is: never refused, partly dirty.
        Blocks over;
        take(fixture, 10 * page, {.prefer_cleared = true}, over);
        CHECK(over.bytes() == 10 * page);
        give_back(fixture, over, true);
        give_back(fixture, dirty);
        CHECK(fixture.buddy.check_invariants());
    }
    {
        // Every other page freed cleared, the rest dirty: no two free buddies share a kind,
        // yet every order must be allocatable (merged on demand, the result dirty).
        auto fixture = BuddyFixture::make({range_of(0, size)});
        std::array<Blocks, 2> halves;
        for (unsigned i = 0; i < (1u << max_order); ++i) take(fixture, page, {}, halves[i % 2]);
        give_back(fixture, halves[1], true);
        give_back(fixture, halves[0], false);
        CHECK(fixture.buddy.cleared_bytes() == size / 2);
        for (unsigned order = 1; order <= max_order; ++order) {
            Blocks merged;
            take(fixture, page << order, {.min_block_size = page << order, .prefer_cleared = true},
                 merged);
            CHECK(merged.bytes() == page << order);
            for (const BuddyBlock &block : merged.list) CHECK_FALSE(block.cleared);
            give_back(fixture, merged);
        }
        CHECK(fixture.buddy.check_invariants());
    }
    {
        // Not a power of two (16 MiB + 4 MiB, two roots): even pages freed cleared and reset
        // to dirty, then odd pages freed cleared (nothing can merge) and everything reset to
        // cleared: the split blocks merge back into the allocator's first shape.
        const u64 odd_size = size + (page << (max_order - 2));
        auto fixture = BuddyFixture::make({range_of(0, odd_size)});
        const BuddyStats initial = fixture.buddy.stats();
        Blocks even, odd;
        const u64 pages = odd_size / page;
        for (u64 i = 0; i < pages; ++i) {
            std::array<BuddyBlock, 1> one{};
            REQUIRE(fixture.buddy.reserve(range_of(i * page, page), one));
            (i % 2 == 0 ? even : odd).list.push_back(one[0]);
        }
        give_back(fixture, even, true);
        fixture.buddy.reset_clear(false);
        CHECK(fixture.buddy.cleared_bytes() == 0);
        give_back(fixture, odd,
                  true);  // odd pages cleared: nothing merges with the dirty even ones
        CHECK(fixture.buddy.stats().largest_free_block == page);
        fixture.buddy.reset_clear(true);
        BuddyStats reset = fixture.buddy.stats();
        CHECK(reset.cleared_bytes == odd_size);
        CHECK(reset.free_bytes_per_order == initial.free_bytes_per_order);  // merged back
        fixture.buddy.reset_clear(false);
        CHECK(fixture.buddy.stats().free_bytes_per_order == initial.free_bytes_per_order);
        CHECK(fixture.buddy.fingerprint() ==
              BuddyFixture::make({range_of(0, odd_size)}).buddy.fingerprint());
        CHECK(fixture.buddy.check_invariants());
    }
}

TEST_CASE("kernel range: exact ranges through reserve")
{
    const u64 size = 16 * MiB;
    std::vector<BuddyBlock> out(4096);
    auto exact = [&](BuddyFixture &fixture, u64 begin, u64 length, Blocks &into) {
        auto reserved = fixture.buddy.reserve(range_of(begin, length), out);
        REQUIRE(reserved);
        for (const BuddyBlock &block : reserved->blocks) {
            CHECK(block.address >= VramAddress{begin});
            CHECK(block.address + block.size <= VramAddress{begin + length});
        }
        into.list.insert(into.list.end(), reserved->blocks.begin(), reserved->blocks.end());
    };
    auto refused_range = [&](BuddyFixture &fixture, VramRange range, Error error) {
        auto before = snapshot(fixture);
        CHECK(fixture.buddy.reserve(range, out).error() == error);
        CHECK(snapshot(fixture) == before);
    };
    {
        auto fixture = BuddyFixture::make({range_of(0, size)});
        Blocks all;
        exact(fixture, 0, size, all);
        CHECK(all.bytes() == size);
        CHECK(fixture.buddy.free_bytes() == 0);
        refused(fixture, page, {});
        give_back(fixture, all);
        for (u64 quarter = 0; quarter < 4; ++quarter)
            exact(fixture, quarter * size / 4, size / 4, all);
        CHECK(fixture.buddy.free_bytes() == 0);
        give_back(fixture, all);
        exact(fixture, 0, page, all);
        exact(fixture, size / 2, page, all);
        exact(fixture, size - page, page, all);
        CHECK(all.bytes() == 3 * page);
        give_back(fixture, all);
        CHECK(fixture.buddy.check_invariants());
    }
    {
        // 7 MiB: roots of 4, 2 and 1 MiB; exact ranges across them.
        auto fixture = BuddyFixture::make({range_of(0, 7 * MiB)});
        Blocks all;
        exact(fixture, 0, 4 * MiB, all);
        exact(fixture, 4 * MiB, 2 * MiB, all);
        exact(fixture, 6 * MiB, 1 * MiB, all);
        CHECK(fixture.buddy.free_bytes() == 0);
        give_back(fixture, all);
        exact(fixture, 0, 7 * MiB, all);
        CHECK(fixture.buddy.free_bytes() == 0);
        give_back(fixture, all);
    }
    {
        // Sixteen random slices in random order.
        testing::Random random(11);
        auto fixture = BuddyFixture::make({range_of(0, size)});
        std::vector<u64> cuts{0, size};
        while (cuts.size() < 17) {
            u64 cut = (1 + random.below(size / page - 1)) * page;
            if (std::find(cuts.begin(), cuts.end(), cut) == cuts.end()) cuts.push_back(cut);
        }
        std::sort(cuts.begin(), cuts.end());
        std::vector<std::size_t> order(16);
        for (std::size_t i = 0; i < 16; ++i) order[i] = i;
        for (std::size_t i = 15; i > 0; --i) std::swap(order[i], order[random.below(i + 1)]);
        Blocks all;
        for (std::size_t i : order) exact(fixture, cuts[i], cuts[i + 1] - cuts[i], all);
        CHECK(fixture.buddy.free_bytes() == 0);
        give_back(fixture, all);
    }
    {
        auto fixture = BuddyFixture::make({range_of(0, size)});
        Blocks half;
        exact(fixture, 0, size / 2, half);
        refused_range(fixture, range_of(0, size), Error::overlap);
        refused_range(fixture, range_of(0, size / 2), Error::overlap);
        exact(fixture, size / 2, size / 2, half);
        CHECK(fixture.buddy.free_bytes() == 0);
        give_back(fixture, half);
        // Checkerboard: a range over an allocated and a free page is refused.
        Blocks even;
        for (u64 at = 0; at < 64 * KiB; at += 2 * page) exact(fixture, at, page, even);
        refused_range(fixture, range_of(0, 2 * page), Error::overlap);
        exact(fixture, page, page, even);
        give_back(fixture, even);
        refused_range(fixture, range_of(page / 2, page), Error::misaligned);
        refused_range(fixture, range_of(size, page), Error::out_of_range);
        // The same range five times: merged on free, split again on reserve.
        for (int i = 0; i < 5; ++i) {
            Blocks again;
            exact(fixture, 4 * MiB, 2 * MiB, again);
            CHECK(again.bytes() == 2 * MiB);
            give_back(fixture, again);
        }
        CHECK(fixture.buddy.free_bytes() == size);
        Blocks powers;
        exact(fixture, 0, 4 * KiB, powers);
        exact(fixture, 64 * KiB, 64 * KiB, powers);
        exact(fixture, 1 * MiB, 1 * MiB, powers);
        exact(fixture, 4 * MiB, 4 * MiB, powers);
        CHECK(powers.list.size() == 4);  // each one naturally aligned block
        CHECK(powers.bytes() == 4 * KiB + 64 * KiB + 1 * MiB + 4 * MiB);
        give_back(fixture, powers);
        CHECK(fixture.buddy.check_invariants());
    }
}

TEST_CASE("kernel range bias: allocations never leave their window")
{
    testing::Random random(12);
    const u64 window = 1 * MiB;
    for (u64 chunk : {4 * KiB, 64 * KiB}) {
        CAPTURE(chunk);
        const u64 size = (8 * MiB - 1) & ~(chunk - 1);  // not a power of two: several roots
        auto fixture = BuddyFixture::make({range_of(0, size)}, chunk);
        const u64 windows = size / window;
        std::vector<u64> order(windows);
        for (u64 i = 0; i < windows; ++i) order[i] = i;
        for (u64 i = windows - 1; i > 0; --i) std::swap(order[i], order[random.below(i + 1)]);
        Blocks kept;
        for (u64 index : order) {
            const u64 begin = index * window, end = begin + window;
            auto in = [&](u64 from, u64 to, u64 min_block = 0) {
                return BuddyOptions{.min_block_size = min_block,
                                    .window_begin = VramAddress{from},
                                    .window_end = VramAddress{to}};
            };
            refused(fixture, window + chunk, in(begin, end, window));  // rounds up past it
            refused(fixture, window + chunk, in(begin, end));          // too big
            refused(fixture, window, in(begin + chunk, end));          // window too small
            refused(fixture, window / 2, in(begin + chunk, end - chunk, window / 2));  // misaligned
            Blocks whole;
            take(fixture, window, in(begin, end, window), whole);  // one big block
            CHECK(whole.list.size() == 1);
            give_back(fixture, whole);
            Blocks rounded;
            take(fixture, chunk, in(begin, end, window), rounded);  // rounded up to the window
            CHECK(rounded.bytes() == window);
            give_back(fixture, rounded);
            u64 left = window;
            Blocks some;
            u64 first = std::max(random.below(left) / chunk * chunk, chunk);
            take(fixture, first, in(begin, end), some);
            left -= first;
            refused(fixture, left + chunk, in(begin, end));  // more than is left
            if (left != 0) {
                u64 second = std::max(random.below(left) / chunk * chunk, chunk);
                take(fixture, second, in(begin, end), kept);
                give_back(fixture, some);
            } else {
                kept.list.insert(kept.list.end(), some.list.begin(), some.list.end());
            }
        }
        for (const BuddyBlock &block : kept.list)
            CHECK(block.address + block.size <= VramAddress{size});
        give_back(fixture, kept);
        // Free-form: a window that grows in both directions while it is filled.
        u64 begin = random.below(size / chunk - 1) * chunk;
        u64 end = std::max(begin + chunk,
                           std::min(size, begin + random.below(size - begin) / chunk * chunk));
        u64 left = end - begin;
        Blocks filled;
        while (left != 0) {
            u64 piece = std::max(random.below(left) / chunk * chunk, chunk);
            Blocks got;
            take(fixture, piece,
                 {.window_begin = VramAddress{begin}, .window_end = VramAddress{end}}, got);
            for (const BuddyBlock &block : got.list) {
                CHECK(block.address >= VramAddress{begin});
                CHECK(block.address + block.size <= VramAddress{end});
            }
            filled.list.insert(filled.list.end(), got.list.begin(), got.list.end());
            left -= piece;
            while (left == 0 && (begin != 0 || end != size)) {
                u64 lower = random.below(begin / chunk + 1) * chunk;
                u64 higher = random.below((size - end) / chunk + 1) * chunk;
                left += lower + higher;
                begin -= lower;
                end += higher;
            }
        }
        CHECK(begin == 0);
        CHECK(end == size);
        refused(fixture, chunk, {.window_begin = VramAddress{0}, .window_end = VramAddress{size}});
        give_back(fixture, filled);
        // Asking for cleared memory where there is none: served, every block dirty.
        Blocks dirty;
        take(fixture, 3 * chunk,
             {.window_begin = VramAddress{window},
              .window_end = VramAddress{2 * window},
              .prefer_cleared = true},
             dirty);
        for (const BuddyBlock &block : dirty.list) CHECK_FALSE(block.cleared);
        give_back(fixture, dirty);
        CHECK(fixture.buddy.check_invariants());
    }
}

TEST_CASE("kernel fragmentation: 8 KiB at 64 KiB alignment, freed mixed, then every 64 KiB")
{
    const u64 size = 256 * MiB;
    const u64 slots = size / (64 * KiB);
    auto fixture = BuddyFixture::make({range_of(0, size)});
    Blocks small;
    for (u64 i = 0; i < slots; ++i) take(fixture, 8 * KiB, {.alignment = 64 * KiB}, small);
    for (const BuddyBlock &block : small.list) {
        CHECK(block.size == 8 * KiB);
        CHECK(block.address.is_aligned_to(64 * KiB));
    }
    // Blocks 0 and 3 of every four freed cleared, 1 and 2 dirty: half the 64 KiB slots
    // hold a cleared 8 KiB next to dirty memory and cannot merge by themselves.
    Blocks cleared, dirty;
    for (std::size_t i = 0; i < small.list.size(); ++i)
        (i % 4 == 0 || i % 4 == 3 ? cleared : dirty).list.push_back(small.list[i]);
    give_back(fixture, cleared, true);
    give_back(fixture, dirty, false);
    Blocks large;
    for (u64 i = 0; i < slots; ++i) take(fixture, 64 * KiB, exactly(64 * KiB), large);
    CHECK(fixture.buddy.free_bytes() == 0);
    refused(fixture, page, {});
    give_back(fixture, large);

    // Reverse-order free: every 8 KiB block again, every other one freed cleared, then the
    // rest freed cleared in reverse order: everything merges back into one block.
    small.list.clear();
    for (u64 i = 0; i < slots; ++i) take(fixture, 8 * KiB, {.alignment = 64 * KiB}, small);
    Blocks first_half;
    std::vector<BuddyBlock> rest;
    for (std::size_t i = 0; i < small.list.size(); ++i)
        (i % 2 == 0 ? first_half.list : rest).push_back(small.list[i]);
    give_back(fixture, first_half, true);
    std::reverse(rest.begin(), rest.end());
    REQUIRE(fixture.buddy.free(rest, true));
    fixture.buddy.reset_clear(true);  // the 56 KiB tails were never freed cleared
    CHECK(fixture.buddy.stats().largest_free_block == size);
    CHECK(fixture.buddy.cleared_bytes() == size);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("kernel exceeds max order: a contiguous run longer than the largest block")
{
    auto fixture = BuddyFixture::make({range_of(0, 8 * GiB + 2 * GiB)});
    Blocks run;
    take(fixture, 8 * GiB + 1 * GiB, {.contiguous = true}, run);
    CHECK(contiguous_run(run));
    CHECK(run.bytes() == 9 * GiB);
    give_back(fixture, run);
    // Blocks of at least 8 GiB: the request rounds up to 16 GiB, which is not there.
    refused(fixture, 8 * GiB + 1 * GiB, {.min_block_size = 8 * GiB});
    // Inside a window the run is still found (the kernel refuses contiguous + range).
    take(fixture, 8 * GiB + 1 * GiB,
         {.window_begin = VramAddress{0}, .window_end = VramAddress{10 * GiB}, .contiguous = true},
         run);
    CHECK(run.bytes() == 9 * GiB);
    give_back(fixture, run);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("kernel offset-aligned allocation: small blocks at large alignments")
{
    const u64 size = 4 * MiB;
    const u64 slots = size / (256 * KiB);
    auto fixture = BuddyFixture::make({range_of(0, size)});
    for (u64 block_size : {8 * KiB, 16 * KiB}) {
        Blocks blocks;
        for (u64 i = 0; i < slots; ++i) take(fixture, block_size, {.alignment = 256 * KiB}, blocks);
        for (const BuddyBlock &block : blocks.list) {
            CHECK(block.size == block_size);
            CHECK(block.address.is_aligned_to(256 * KiB));
        }
        if (block_size == 8 * KiB) {
            give_back(fixture, blocks);
            continue;
        }
        // Free every other one: exactly those slots come back, then no aligned slot is left.
        Blocks freed, kept;
        for (std::size_t i = 0; i < blocks.list.size(); ++i)
            (i % 2 == 0 ? freed : kept).list.push_back(blocks.list[i]);
        give_back(fixture, freed);
        for (u64 i = 0; i < slots / 2; ++i) take(fixture, 16 * KiB, {.alignment = 256 * KiB}, kept);
        refused(fixture, 16 * KiB, {.alignment = 256 * KiB});
        give_back(fixture, kept);
    }
    CHECK(fixture.buddy.free_bytes() == size);
    CHECK(fixture.buddy.check_invariants());
}

TEST_CASE("kernel alignment stress: descending alignments fill every aligned slot")
{
    const u64 size = 2 * MiB;
    auto fixture = BuddyFixture::make({range_of(0, size)});
    const std::array alignments{1 * MiB,  512 * KiB, 256 * KiB, 128 * KiB,
                                64 * KiB, 32 * KiB,  16 * KiB,  8 * KiB};
    std::vector<Blocks> taken(alignments.size());
    for (std::size_t i = 0; i < alignments.size(); ++i) {
        std::array<BuddyBlock, 1> out{};
        for (;;) {
            auto before = snapshot(fixture);
            auto allocation = fixture.buddy.allocate(page, {.alignment = alignments[i]}, out);
            if (!allocation) {
                CHECK(allocation.error() == Error::out_of_memory);
                CHECK(snapshot(fixture) == before);
                break;
            }
            CHECK(out[0].address.is_aligned_to(alignments[i]));
            taken[i].list.push_back(out[0]);
        }
        // Every slot of this alignment not taken by a coarser one: size / (2 x alignment),
        // except the first alignment, which has both of its slots.
        u64 expected = i == 0 ? size / alignments[0] : size / (2 * alignments[i]);
        CHECK(taken[i].list.size() == expected);
    }
    for (std::size_t i = alignments.size(); i-- > 0;) give_back(fixture, taken[i]);
    CHECK(fixture.buddy.stats().largest_free_block == size);
    CHECK(fixture.buddy.check_invariants());
}
