// libFuzzer target: the VRAM buddy allocator driven by a byte stream of operations
// (allocate with any options, free cleared or dirty, free again, reserve, trim, reset_clear,
// block_at), with, after every step: the full audit (check_invariants), free bytes equal
// to the regions minus what is live, every live block inside a region and disjoint from
// every other, and every refused request leaving the allocator's fingerprint unchanged.
#include <map>
#include <vector>

#include "fuzz_stream.hpp"
#include "gpummu/alloc/buddy.hpp"

using namespace gpummu;

namespace {

struct Live {
    std::vector<BuddyBlock> blocks;
};

// Inside one region, where regions that touch count as one (the allocator joins them).
bool inside_regions(const std::vector<VramRange> &regions, u64 begin, u64 end)
{
    for (std::size_t i = 0; i < regions.size(); ++i) {
        u64 region_end = regions[i].end().value();
        for (std::size_t j = i + 1; j < regions.size() && regions[j].begin().value() == region_end;
             ++j)
            region_end = regions[j].end().value();
        if (begin >= regions[i].begin().value() && end <= region_end) return true;
    }
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    fuzz::Stream in(data, size);
    const u64 chunk = in.coin() ? 4096 : 65536;
    // One to three regions, in order, each up to 64 MiB, with gaps.
    std::vector<VramRange> regions;
    u64 at = in.below(64) * chunk;
    const unsigned count = 1 + static_cast<unsigned>(in.below(3));
    for (unsigned i = 0; i < count; ++i) {
        const u64 bytes = (1 + in.below((64u << 20) / chunk)) * chunk;
        regions.push_back(VramRange::from_size(VramAddress{at}, bytes).value());
        at += bytes + in.below(16) * chunk;
    }
    auto words = BuddyAllocator::metadata_words(regions, chunk);
    FUZZ_CHECK(words.has_value());
    std::vector<u64> storage(*words);
    auto made = BuddyAllocator::create(regions, storage, chunk);
    FUZZ_CHECK(made.has_value());
    BuddyAllocator &buddy = *made;
    const u64 total = buddy.total_bytes();

    std::vector<Live> live;
    std::map<u64, u64> used;  // live block begin -> end, over all allocations
    u64 live_bytes = 0;
    std::vector<BuddyBlock> out(512);
    std::vector<BuddyBlock> freed;  // blocks freed earlier: freeing them again must fail

    auto take = [&](std::span<BuddyBlock> blocks) {
        Live entry;
        for (const BuddyBlock &block : blocks) {
            const u64 begin = block.address.value(), end = begin + block.size;
            FUZZ_CHECK(block.size >= chunk && (block.size & (block.size - 1)) == 0);
            FUZZ_CHECK(begin % block.size == 0);
            FUZZ_CHECK(inside_regions(regions, begin, end));
            auto after = used.lower_bound(end);
            FUZZ_CHECK(after == used.begin() || std::prev(after)->second <= begin);
            used.emplace(begin, end);
            live_bytes += block.size;
            entry.blocks.push_back(block);
        }
        live.push_back(std::move(entry));
    };
    auto release = [&](const Live &entry) {
        for (const BuddyBlock &block : entry.blocks) {
            used.erase(block.address.value());
            live_bytes -= block.size;
            freed.push_back(block);
        }
    };

    for (int step = 0; step < 400 && !in.empty(); ++step) {
        const u64 before = buddy.fingerprint();
        switch (in.byte() % 8) {
        case 0:
        case 1: {  // allocate
            BuddyOptions options;
            const u64 request = in.coin() ? in.edge_u64() : (1 + in.below(total / chunk)) * chunk;
            if (in.coin()) options.min_block_size = chunk << in.below(12);
            if (in.coin()) options.alignment = chunk << in.below(14);
            if (in.coin()) {
                options.window_begin = VramAddress{in.below(at + chunk)};
                options.window_end = VramAddress{in.coin() ? ~u64{0} : in.below(at + 4 * chunk)};
            }
            options.top_down = in.coin();
            options.contiguous = in.coin();
            options.prefer_cleared = in.coin();
            auto allocation = buddy.allocate(request, options, out);
            if (allocation) {
                FUZZ_CHECK(allocation->size >= request || request == 0);
                u64 sum = 0;
                for (const BuddyBlock &block : allocation->blocks) sum += block.size;
                FUZZ_CHECK(sum == allocation->size);
                take(allocation->blocks);
            } else {
                FUZZ_CHECK(buddy.fingerprint() == before);
            }
            break;
        }
        case 2:
        case 3: {  // free a live allocation, cleared or not
            if (live.empty()) break;
            const std::size_t index = in.below(live.size());
            const bool cleared = in.coin();
            auto done = buddy.free(live[index].blocks, cleared);
            FUZZ_CHECK(done.has_value());
            release(live[index]);
            live.erase(live.begin() + static_cast<long>(index));
            break;
        }
        case 4: {  // free a block freed before (or a made-up one): refused unless it is live
            BuddyBlock block{};
            if (!freed.empty() && in.coin()) {
                block = freed[in.below(freed.size())];
            } else {
                block.address = VramAddress{in.edge_u64()};
                block.size = in.edge_u64();
            }
            bool is_live = false;
            for (const Live &entry : live)
                for (const BuddyBlock &held : entry.blocks)
                    is_live |= held.address == block.address && held.size == block.size;
            if (is_live) break;
            auto done = buddy.free(block, in.coin());
            FUZZ_CHECK(!done.has_value());
            FUZZ_CHECK(buddy.fingerprint() == before);
            break;
        }
        case 5: {  // reserve an exact range
            const u64 begin = in.below(at / chunk + 2) * chunk;
            const u64 bytes = (1 + in.below(64)) * chunk;
            auto range = VramRange::from_size(VramAddress{begin}, bytes);
            if (!range) break;
            auto reserved = buddy.reserve(*range, out);
            if (reserved) {
                take(reserved->blocks);
            } else {
                FUZZ_CHECK(buddy.fingerprint() == before);
            }
            break;
        }
        case 6: buddy.reset_clear(in.coin()); break;
        default: {  // block_at: the live block holding the address, or not_allocated
            const u64 address = in.coin() ? in.below(at + chunk) : in.edge_u64();
            auto found = buddy.block_at(VramAddress{address});
            auto after = used.upper_bound(address);
            const bool held = after != used.begin() && std::prev(after)->second > address;
            FUZZ_CHECK(found.has_value() == held);
            if (held) FUZZ_CHECK(found->address.value() == std::prev(after)->first);
            FUZZ_CHECK(buddy.fingerprint() == before);
        }
        }
        FUZZ_CHECK(buddy.check_invariants().has_value());
        FUZZ_CHECK(buddy.free_bytes() == total - live_bytes);
        FUZZ_CHECK(buddy.cleared_bytes() <= buddy.free_bytes());
    }
    for (const Live &entry : live) FUZZ_CHECK(buddy.free(entry.blocks, false).has_value());
    FUZZ_CHECK(buddy.free_bytes() == total);
    FUZZ_CHECK(buddy.check_invariants().has_value());
    return 0;
}
