// The buddy allocator against a naive reference model: one state per chunk (outside,
// free dirty, free cleared, allocated). Random allocate / free / trim / reserve sequences;
// every result is checked against the model (placement, size, options, no overlap), every
// refusal must be justified by the model, and the free / cleared totals must agree.
//   - a long run (GPUMMU_BUDDY_OPERATIONS, default 2,000,000 operations);
//   - a short run with the full invariant audit after every step.
#include <doctest/doctest.h>

#include <algorithm>
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
    void take(const BuddyBlock &block)
    {
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
    // Is there an aligned run of 2^order free chunks of one kind in one region?
    bool has_uniform_aligned_run(unsigned order, const std::vector<VramRange> &regions) const
    {
        u64 run = u64{1} << order;
        for (const VramRange &region : regions) {
            u64 first = (region.begin().value() / chunk + run - 1) / run * run;
            for (u64 c = first; c + run <= region.end().value() / chunk; c += run) {
                ChunkState kind = chunks[c];
                if (kind != ChunkState::free_dirty && kind != ChunkState::free_clean) continue;
                bool uniform = true;
                for (u64 i = 1; i < run && uniform; ++i) uniform = chunks[c + i] == kind;
                if (uniform) return true;
            }
        }
        return false;
    }
};

struct Live {
    std::vector<BuddyBlock> blocks;
};

std::vector<VramRange> random_regions(Random &random)
{
    // Two or three regions of odd sizes with gaps, within 32 MiB.
    std::vector<VramRange> regions;
    u64 cursor = random.below(64) * chunk;
    int count = 2 + static_cast<int>(random.below(2));
    for (int i = 0; i < count; ++i) {
        u64 size = (1 + random.below(2048)) * chunk;
        regions.push_back(range_of(cursor, size));
        cursor += size + random.below(256) * chunk;
    }
    return regions;
}

void run(u64 seed, long operations, bool audit_every_step)
{
    Random random(seed);
    std::vector<VramRange> regions = random_regions(random);
    auto fixture = BuddyFixture::make(regions);
    Model model(regions);
    std::vector<Live> live;
    std::vector<BuddyBlock> out(4096);
    long allocations = 0, refusals = 0;

    for (long step = 0; step < operations; ++step) {
        u64 op = random.below(100);
        if (op < 45 || live.empty()) {
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
            auto allocation = fixture.buddy.allocate(size, options, out);
            if (allocation) {
                ++allocations;
                u64 min_block = std::max(options.min_block_size, chunk);
                u64 expected = (size + min_block - 1) / min_block * min_block;
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
                // A plain request (no window, no alignment, no minimum) may fail only when
                // the model says it must: scattered needs enough free chunks; a power-of-two
                // contiguous one needs an aligned free run of one kind.
                bool plain = !windowed && options.alignment == 0 && options.min_block_size == 0;
                if (plain && !options.contiguous) REQUIRE(model.free_count * chunk < size);
                if (plain && options.contiguous && std::has_single_bit(size))
                    REQUIRE_FALSE(model.has_uniform_aligned_run(
                        static_cast<unsigned>(std::countr_zero(size / chunk)), regions));
            }
        } else if (op < 85) {
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
                model.take(block);
                total += block.size;
            }
            REQUIRE(total == new_size);
            blocks = room;
        } else {
            u64 begin = random.below(model.chunks.size());
            u64 length = 1 + random.below(64);
            auto range = range_of(begin * chunk, length * chunk);
            bool inside_one_region = false;
            for (const VramRange &region : regions) inside_one_region |= region.contains(range);
            bool all_free = inside_one_region;
            for (u64 c = begin; c < begin + length && all_free; ++c) all_free = model.is_free(c);
            auto reserved = fixture.buddy.reserve(range, out);
            REQUIRE(reserved.has_value() == all_free);
            if (reserved) {
                for (const BuddyBlock &block : reserved->blocks) model.take(block);
                live.push_back(
                    {std::vector<BuddyBlock>(reserved->blocks.begin(), reserved->blocks.end())});
            } else {
                REQUIRE(reserved.error() ==
                        (inside_one_region ? Error::overlap : Error::out_of_range));
            }
        }
        REQUIRE(fixture.buddy.free_bytes() == model.free_count * chunk);
        REQUIRE(fixture.buddy.stats().cleared_bytes == model.clean_count * chunk);
        if (audit_every_step) REQUIRE(fixture.buddy.check_invariants());
    }
    CHECK(allocations > operations / 10);
    CHECK(refusals >= 0);
    // Free everything: the allocator returns to its initial shape.
    for (const Live &allocation : live) REQUIRE(fixture.buddy.free(allocation.blocks));
    REQUIRE(fixture.buddy.free_bytes() == fixture.buddy.total_bytes());
    REQUIRE(fixture.buddy.check_invariants());
}

}  // namespace

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
