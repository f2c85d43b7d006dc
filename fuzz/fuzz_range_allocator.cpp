// libFuzzer target: the VA range allocator driven by a byte stream of operations over a
// space anywhere in the 64-bit range (up to its top): allocate with any size, alignment,
// window and direction (sizes and alignments at the edges: 0, 1, 2^63, all-ones), reserve,
// free, free again, find. After every step: the audit (check_invariants), every live range
// inside the space, aligned as asked, inside the window, disjoint from the others, found by
// find(); a refused operation changes neither the live count nor the largest hole.
#include <map>
#include <vector>

#include "fuzz_stream.hpp"
#include "gpummu/alloc/range_allocator.hpp"

using namespace gpummu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    fuzz::Stream in(data, size);
    constexpr u64 granule = RangeAllocator::granule;
    const u64 top = ~u64{0} & ~(granule - 1);  // the highest granule-aligned end
    // A space of 1 granule .. 2^63 bytes, anywhere (often ending at the top).
    const u64 space_bytes = granule << in.below(52);
    const u64 begin =
        in.coin() ? top - space_bytes : in.below((top - space_bytes) / granule) * granule;
    auto space = VirtualRange::from_size(VirtualAddress{begin}, space_bytes);
    FUZZ_CHECK(space.has_value());
    std::vector<RangeNode> pool(RangeAllocator::nodes_for(64));
    auto made = RangeAllocator::create(*space, pool);
    FUZZ_CHECK(made.has_value());
    RangeAllocator &ranges = *made;
    std::map<u64, u64> live;  // begin -> end (exclusive)
    std::vector<VirtualRange> freed;

    for (int step = 0; step < 300 && !in.empty(); ++step) {
        const std::size_t live_before = ranges.live_ranges();
        const u64 hole_before = ranges.largest_hole();
        bool refused = false;
        switch (in.byte() % 6) {
        case 0:
        case 1: {
            RangeRequest request;
            request.size =
                in.coin() ? in.edge_u64() : (1 + in.below(space_bytes / granule)) * granule;
            request.alignment = in.coin() ? in.edge_u64() : granule << in.below(40);
            if (in.coin()) {
                request.window_begin = VirtualAddress{begin + in.below(space_bytes)};
                request.window_end = VirtualAddress{in.coin() ? ~u64{0} : in.edge_u64()};
            }
            request.top_down = in.coin();
            auto got = ranges.allocate(request);
            if (!got) {
                refused = true;
                break;
            }
            const u64 b = got->begin().value(), e = got->end().value();
            FUZZ_CHECK(e - b >= request.size && b < e);
            FUZZ_CHECK(b % request.alignment == 0);
            FUZZ_CHECK(b >= request.window_begin.value() && e <= request.window_end.value());
            FUZZ_CHECK(space->contains(*got));
            auto after = live.lower_bound(e);
            FUZZ_CHECK(after == live.begin() || std::prev(after)->second <= b);
            live.emplace(b, e);
            break;
        }
        case 2: {
            const u64 b = begin + in.below(space_bytes / granule) * granule;
            const u64 bytes = (1 + in.below(1024)) * granule;
            auto range = VirtualRange::from_size(VirtualAddress{b}, bytes);
            if (!range) break;
            auto got = ranges.reserve(*range);
            if (!got) {
                refused = true;
                break;
            }
            auto after = live.lower_bound(range->end().value());
            FUZZ_CHECK(after == live.begin() || std::prev(after)->second <= b);
            live.emplace(b, range->end().value());
            break;
        }
        case 3: {
            if (live.empty()) break;
            auto it = live.begin();
            std::advance(it, static_cast<long>(in.below(live.size())));
            auto range =
                VirtualRange::from_bounds(VirtualAddress{it->first}, VirtualAddress{it->second});
            FUZZ_CHECK(ranges.free(*range).has_value());
            freed.push_back(*range);
            live.erase(it);
            break;
        }
        case 4: {  // free something not live: refused
            VirtualRange range{};
            if (!freed.empty() && in.coin()) {
                range = freed[in.below(freed.size())];
            } else {
                auto made_up =
                    VirtualRange::from_size(VirtualAddress{in.edge_u64()}, in.edge_u64());
                if (!made_up) break;
                range = *made_up;
            }
            auto exact = live.find(range.begin().value());
            if (exact != live.end() && exact->second == range.end().value()) break;
            FUZZ_CHECK(!ranges.free(range).has_value());
            refused = true;
            break;
        }
        default: {
            const u64 address = in.coin() ? begin + in.below(space_bytes) : in.edge_u64();
            auto found = ranges.find(VirtualAddress{address});
            auto after = live.upper_bound(address);
            const bool held = after != live.begin() && std::prev(after)->second > address;
            FUZZ_CHECK(found.has_value() == held);
            if (held) FUZZ_CHECK(found->begin().value() == std::prev(after)->first);
        }
        }
        if (refused) {
            FUZZ_CHECK(ranges.live_ranges() == live_before);
            FUZZ_CHECK(ranges.largest_hole() == hole_before);
        }
        FUZZ_CHECK(ranges.live_ranges() == live.size());
        FUZZ_CHECK(ranges.check_invariants().has_value());
    }
    return 0;
}
