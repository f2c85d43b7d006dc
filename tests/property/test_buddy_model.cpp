// The buddy allocator against a naive reference model: one state per chunk (outside,
// free dirty, free cleared, allocated). Random allocate / free (cleared or dirty) / trim /
// reserve / reset_clear / block_at / set_aside (promise, draw, release) sequences; every
// result is checked against the model (placement, size, options, no overlap, the `cleared`
// flag of every block), and every refusal must be justified: the model says no set of
// blocks meeting the options exists in the free chunks, whatever their cleared state, or
// taking one would leave fewer free chunks than are set aside. A draw on the promise never
// fails. The free / cleared / set-aside totals must agree.
//   - a long run (GPUMMU_BUDDY_OPERATIONS, default 2,000,000 operations);
//   - a short run with the full invariant audit after every step.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <span>
#include <vector>

#include "gpummu/alloc/buddy.hpp"
#include "support/buddy_fixture.hpp"
#include "support/random.hpp"

#ifndef GPUMMU_BUDDY_OPERATIONS
#define GPUMMU_BUDDY_OPERATIONS 2000000
#endif

using namespace gpummu;
using testing::BuddyFixture;
using testing::Random;
using testing::range_of;

namespace {

constexpr u64 chunk = 4096;
enum class ChunkState : u8 { outside, free_dirty, free_clean, allocated };

struct Model {
    std::vector<ChunkState> chunks;
    u64 free_count = 0, clean_count = 0;

    explicit Model(const std::vector<VramRange> &regions)
    {
        chunks.assign(regions.back().end().value() / chunk, ChunkState::outside);
        for (const VramRange &region : regions)
            for (u64 c = region.begin().value() / chunk; c < region.end().value() / chunk; ++c) {
                chunks[c] = ChunkState::free_dirty;
                ++free_count;
            }
    }
    bool is_free(u64 c) const
    {
        return c < chunks.size() &&
               (chunks[c] == ChunkState::free_dirty || chunks[c] == ChunkState::free_clean);
    }
    // `fresh`: a block just handed out, whose `cleared` must say whether every chunk was.
    void take(const BuddyBlock &block, bool fresh = true)
    {
        bool all_clean = true;
        for (u64 c = block.address.value() / chunk;
             c < (block.address.value() + block.size) / chunk; ++c)
            all_clean = all_clean && c < chunks.size() && chunks[c] == ChunkState::free_clean;
        if (fresh) REQUIRE(block.cleared == all_clean);
        for (u64 c = block.address.value() / chunk;
             c < (block.address.value() + block.size) / chunk; ++c) {
            REQUIRE(is_free(c));  // never hand out memory twice
            if (chunks[c] == ChunkState::free_clean) --clean_count;
            chunks[c] = ChunkState::allocated;
            --free_count;
        }
    }
    void give(const BuddyBlock &block, bool cleared)
    {
        for (u64 c = block.address.value() / chunk;
             c < (block.address.value() + block.size) / chunk; ++c) {
            REQUIRE(chunks[c] == ChunkState::allocated);
            chunks[c] = cleared ? ChunkState::free_clean : ChunkState::free_dirty;
            ++free_count;
            if (cleared) ++clean_count;
        }
    }
    void reset_clear(bool cleared)
    {
        for (ChunkState &state : chunks)
            if (state == ChunkState::free_dirty || state == ChunkState::free_clean)
                state = cleared ? ChunkState::free_clean : ChunkState::free_dirty;
        clean_count = cleared ? free_count : 0;
    }
    // run[c]: free chunks from c on inside c's region (one backward pass).
    void free_runs(const std::vector<VramRange> &regions, std::vector<u64> &run) const
    {
        run.assign(chunks.size() + 1, 0);
        for (const VramRange &region : regions) {
            u64 first = region.begin().value() / chunk, last = region.end().value() / chunk;
            for (u64 c = last; c-- > first;)
                run[c] = is_free(c) ? (c + 1 < last ? run[c + 1] : 0) + 1 : 0;
        }
    }
};

// What a request may expect, stated on chunks (sizes in chunks, window [begin, end)):
//   contiguous: some start s, a multiple of max(M, A), with [s, s + size) free, inside one
//     region and the window;
//   scattered: blocks of powers of two >= M, each at a multiple of S = max(M, A) (and of its
//     own size), free, inside one region and the window, summing to the size. Blocks of S or
//     more tile whole S-slots, so what a slot at x can give is any power of two up to its cap
//     min(S, free chunks from x) rounded down; whether caps can sum to the size is decided by
//     the largest-caps-first greedy, which brute_force_agrees() checks on small cases.
bool greedy_sums(std::vector<u64> caps, u64 size)
{
    std::sort(caps.rbegin(), caps.rend());
    for (u64 cap : caps) {
        if (size == 0) break;
        size -= std::bit_floor(std::min(cap, size));
    }
    return size == 0;
}
// Every choice of one power of two up to each cap (or nothing from it). Not inlined: g++ -O3
// unrolls the recursion into the caller and warns of subscripts past the end it cannot reach.
[[gnu::noinline]] bool brute_force_sums(std::span<const u64> caps, u64 size)
{
    if (size == 0) return true;
    if (caps.empty()) return false;
    const u64 cap = caps.front();
    if (brute_force_sums(caps.subspan(1), size)) return true;
    for (u64 piece = 1; piece <= cap && piece <= size; piece *= 2)
        if (brute_force_sums(caps.subspan(1), size - piece)) return true;
    return false;
}

bool placement_exists(const std::vector<u64> &run, u64 size, u64 min_block, u64 alignment,
                      bool contiguous, u64 begin, u64 end)
{
    end = std::min<u64>(end, run.size() - 1);
    auto free_length = [&](u64 x) { return std::min(run[x], end - x); };
    if (contiguous) {
        u64 step = std::max(min_block, alignment);
        for (u64 s = (begin + step - 1) / step * step; s < end; s += step)
            if (free_length(s) >= size) return true;
        return false;
    }
    u64 slot = std::max(min_block, alignment);
    std::vector<u64> caps;  // in units of the minimum block
    for (u64 x = (begin + slot - 1) / slot * slot; x < end; x += slot) {
        u64 length = std::min(free_length(x), slot);
        if (length >= min_block) caps.push_back(std::bit_floor(length) / min_block);
    }
    return greedy_sums(caps, size / min_block);
}

struct Live {
    std::vector<BuddyBlock> blocks;
};

// Memory that touches is one region (the allocator joins such regions): what a user may
// expect of the regions it passed.
std::vector<VramRange> joined(const std::vector<VramRange> &regions)
{
    std::vector<VramRange> out;
    for (const VramRange &region : regions) {
        if (!out.empty() && out.back().end() == region.begin())
            out.back() = range_of(out.back().begin().value(),
                                  region.end().value() - out.back().begin().value());
        else
            out.push_back(region);
    }
    return out;
}

std::vector<VramRange> random_regions(Random &random)
{
    // Two or three regions of odd sizes, at odd chunks, with gaps (sometimes none: such
    // regions touch and are one), within 32 MiB.
    std::vector<VramRange> regions;
    u64 cursor = random.below(64) * chunk;
    int count = 2 + static_cast<int>(random.below(2));
    for (int i = 0; i < count; ++i) {
        u64 size = (1 + random.below(2048)) * chunk;
        regions.push_back(range_of(cursor, size));
        cursor += size + (random.below(4) == 0 ? 0 : random.below(256) * chunk);
    }
    return regions;
}

void run(u64 seed, long operations, bool audit_every_step)
{
    Random random(seed);
    const std::vector<VramRange> given = random_regions(random);
    auto fixture = BuddyFixture::make(given);
    const std::vector<VramRange> regions = joined(given);
    Model model(regions);
    std::vector<Live> live;
    std::vector<BuddyBlock> out(4096);
    std::vector<u64> runs;
    long allocations = 0, refusals = 0, draws = 0;
    u64 promised = 0;  // chunks set aside, not drawn

    for (long step = 0; step < operations; ++step) {
        u64 op = random.below(100);
        if (promised != 0 && op < 5) {
            // A draw on the promise: one chunk, never refused however fragmented.
            std::array<BuddyBlock, 1> one{};
            auto page = fixture.buddy.allocate(chunk,
                                               {.top_down = random.coin(),
                                                .prefer_cleared = random.coin(),
                                                .from_set_aside = true},
                                               one);
            REQUIRE(page);
            REQUIRE(page->blocks.size() == 1);
            REQUIRE(page->blocks[0].size == chunk);
            model.take(page->blocks[0]);
            --promised;
            ++draws;
            live.push_back({std::vector<BuddyBlock>(page->blocks.begin(), page->blocks.end())});
        } else if (op < 45 || live.empty()) {
            BuddyOptions options;
            u64 size = random.coin() ? (u64{1} << random.below(9)) * chunk
                                     : (1 + random.below(300)) * chunk;
            options.contiguous = random.below(3) == 0;
            options.top_down = random.coin();
            options.prefer_cleared = random.coin();
            if (random.below(4) == 0) options.min_block_size = (u64{1} << random.below(5)) * chunk;
            if (random.below(8) == 0) options.alignment = (u64{1} << random.below(10)) * chunk;
            bool windowed = random.below(4) == 0;
            if (windowed) {
                u64 begin = random.below(model.chunks.size()) * chunk;
                options.window_begin = VramAddress{begin};
                options.window_end = VramAddress{begin + (1 + random.below(4096)) * chunk};
            }
            u64 free_before = model.free_count;
            u64 min_block = std::max(options.min_block_size, chunk);
            u64 expected = (size + min_block - 1) / min_block * min_block;
            u64 window_begin = windowed ? options.window_begin.value() / chunk : 0;
            u64 window_end = windowed ? options.window_end.value() / chunk : model.chunks.size();
            model.free_runs(regions, runs);
            bool exists = placement_exists(runs, expected / chunk, min_block / chunk,
                                           std::max(options.alignment, chunk) / chunk,
                                           options.contiguous, window_begin, window_end) &&
                          expected / chunk + promised <= model.free_count;
            auto allocation = fixture.buddy.allocate(size, options, out);
            if (allocation) {
                ++allocations;
                REQUIRE(exists);
                u64 total = 0;
                for (const BuddyBlock &block : allocation->blocks) {
                    REQUIRE(std::has_single_bit(block.size));
                    REQUIRE(block.address.is_aligned_to(block.size));
                    REQUIRE(block.size >= min_block);
                    // Alignment applies to every block of a scattered result, to the
                    // start of a contiguous one.
                    if (options.alignment != 0 &&
                        (!options.contiguous || &block == &allocation->blocks[0]))
                        REQUIRE(block.address.is_aligned_to(options.alignment));
                    if (windowed) {
                        REQUIRE(block.address >= options.window_begin);
                        REQUIRE(block.address + block.size <= options.window_end);
                    }
                    model.take(block);
                    total += block.size;
                }
                REQUIRE(total == expected);
                REQUIRE(allocation->size == expected);
                if (options.contiguous)
                    for (std::size_t i = 1; i < allocation->blocks.size(); ++i)
                        REQUIRE(allocation->blocks[i].address ==
                                allocation->blocks[i - 1].address + allocation->blocks[i - 1].size);
                live.push_back({std::vector<BuddyBlock>(allocation->blocks.begin(),
                                                        allocation->blocks.end())});
            } else {
                ++refusals;
                REQUIRE(model.free_count == free_before);
                Error error = allocation.error();
                REQUIRE((error == Error::out_of_memory || error == Error::out_of_range));
                // A refusal only when no placement exists, whatever the cleared state.
                CAPTURE(size);
                CAPTURE(options.contiguous);
                CAPTURE(options.alignment);
                CAPTURE(options.min_block_size);
                CAPTURE(windowed);
                REQUIRE_FALSE(exists);
            }
        } else if (op < 84) {
            std::size_t pick = static_cast<std::size_t>(random.below(live.size()));
            bool cleared = random.below(3) == 0;
            REQUIRE(fixture.buddy.free(live[pick].blocks, cleared));
            for (const BuddyBlock &block : live[pick].blocks) model.give(block, cleared);
            live[pick] = std::move(live.back());
            live.pop_back();
        } else if (op < 93) {
            std::size_t pick = static_cast<std::size_t>(random.below(live.size()));
            std::vector<BuddyBlock> &blocks = live[pick].blocks;
            u64 current = 0;
            for (const BuddyBlock &block : blocks) current += block.size;
            u64 new_size = random.below(current / chunk + 1) * chunk;
            if (new_size == 0) new_size = chunk;
            std::vector<BuddyBlock> room(blocks.size() + 64);
            std::copy(blocks.begin(), blocks.end(), room.begin());
            auto kept = fixture.buddy.trim(room, blocks.size(), new_size);
            REQUIRE(kept);
            room.resize(*kept);
            // The model: everything old is released, the kept blocks taken again.
            for (const BuddyBlock &block : blocks) model.give(block, false);
            u64 total = 0;
            for (const BuddyBlock &block : room) {
                model.take(block, false);  // kept blocks keep the flag they were given
                total += block.size;
            }
            REQUIRE(total == new_size);
            blocks = room;
        } else if (op < 98) {
            u64 begin = random.below(model.chunks.size());
            u64 length = 1 + random.below(64);
            auto range = range_of(begin * chunk, length * chunk);
            bool inside_one_region = false;
            for (const VramRange &region : regions) inside_one_region |= region.contains(range);
            bool all_free = inside_one_region;
            for (u64 c = begin; c < begin + length && all_free; ++c) all_free = model.is_free(c);
            auto reserved = fixture.buddy.reserve(range, out);
            const bool keeps_promise = length + promised <= model.free_count;
            REQUIRE(reserved.has_value() == (all_free && keeps_promise));
            if (reserved) {
                for (const BuddyBlock &block : reserved->blocks) model.take(block);
                live.push_back(
                    {std::vector<BuddyBlock>(reserved->blocks.begin(), reserved->blocks.end())});
            } else {
                REQUIRE(reserved.error() == (!inside_one_region ? Error::out_of_range
                                             : !all_free        ? Error::overlap
                                                                : Error::out_of_memory));
            }
        } else if (op < 99) {
            const u64 roll = random.below(5);
            if (roll == 0) {
                bool cleared = random.coin();
                fixture.buddy.reset_clear(cleared);
                model.reset_clear(cleared);
            } else if (roll < 4) {
                // A promise: kept iff that many chunks are free beyond the ones promised.
                const u64 chunks = random.below(roll == 1 ? 4096 : 24);
                auto set = fixture.buddy.set_aside(chunks);
                REQUIRE(set.has_value() == (chunks + promised <= model.free_count));
                if (set) promised += chunks;
            } else {
                const u64 chunks = random.below(promised + 1);
                fixture.buddy.release_set_aside(chunks);
                promised -= chunks;
            }
        } else {
            // block_at names the live block holding a random chunk, or says it is free.
            u64 c = random.below(model.chunks.size());
            auto found = fixture.buddy.block_at(VramAddress{c * chunk});
            if (model.chunks[c] == ChunkState::outside) {
                REQUIRE(found.error() == Error::out_of_range);
            } else if (model.chunks[c] != ChunkState::allocated) {
                REQUIRE(found.error() == Error::not_allocated);
            } else {
                REQUIRE(found);
                bool listed = false;
                for (const Live &allocation : live)
                    for (const BuddyBlock &block : allocation.blocks)
                        listed = listed ||
                                 (block.address == found->address && block.size == found->size);
                REQUIRE(listed);
            }
        }
        REQUIRE(fixture.buddy.free_bytes() == model.free_count * chunk);
        REQUIRE(fixture.buddy.stats().cleared_bytes == model.clean_count * chunk);
        REQUIRE(fixture.buddy.set_aside_bytes() == promised * chunk);
        REQUIRE(fixture.buddy.available_bytes() == (model.free_count - promised) * chunk);
        if (audit_every_step) REQUIRE(fixture.buddy.check_invariants());
    }
    CHECK(allocations > operations / 10);
    CHECK(refusals >= 0);
    CHECK(draws > operations / 1000);
    fixture.buddy.release_set_aside(promised);
    // Free everything: the allocator returns to its initial shape.
    for (const Live &allocation : live) REQUIRE(fixture.buddy.free(allocation.blocks));
    REQUIRE(fixture.buddy.free_bytes() == fixture.buddy.total_bytes());
    REQUIRE(fixture.buddy.check_invariants());
}

}  // namespace

TEST_CASE("the model's greedy over slot caps agrees with brute force")
{
    Random random(77);
    for (int trial = 0; trial < 20000; ++trial) {
        std::vector<u64> caps(1 + random.below(5));
        for (u64 &cap : caps) cap = u64{1} << random.below(5);
        u64 size = 1 + random.below(40);
        CAPTURE(size);
        REQUIRE(greedy_sums(caps, size) == brute_force_sums(caps, size));
    }
}

TEST_CASE("buddy vs reference model, audited after every step")
{
    for (u64 seed = 1; seed <= 8; ++seed) {
        CAPTURE(seed);
        run(seed, 3000, true);
    }
}

TEST_CASE("buddy vs reference model, long run")
{
    run(0xb0dd1, GPUMMU_BUDDY_OPERATIONS, false);
}
