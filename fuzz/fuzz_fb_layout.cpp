// libFuzzer target: FbLayout::from_records on firmware region records made of raw bytes
// (bases and limits anywhere in the 64-bit range, wrapped, overlapping, out of order) and
// any BAR1 PDB. A refusal is malformed_record; an accepted layout keeps its promises: usable
// regions in order, disjoint, 4 KiB aligned, inside [0, vram_end), each one a record that is
// neither reserved nor protected; the PDB aligned, below vram_end and in no usable region;
// usable_bytes the sum of the usable regions.
#include <vector>

#include "fuzz_stream.hpp"
#include "gpummu/hw/fb_layout.hpp"

using namespace gpummu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    fuzz::Stream in(data, size);
    std::vector<FbRegionRecord> records(in.below(FbLayout::max_regions + 3));
    for (FbRegionRecord &record : records) {
        record.base = in.coin() ? in.edge_u64() : in.below(1u << 20) << 12;
        record.limit = in.coin() ? in.edge_u64() : record.base + (in.below(1u << 20) << 12) - 1;
        const std::uint8_t flags = in.byte();
        record.reserved = (flags & 1u) != 0;
        record.protected_memory = (flags & 2u) != 0;
        record.supports_compression = (flags & 4u) != 0;
        record.supports_iso = (flags & 8u) != 0;
    }
    const VramAddress pdb{in.coin() ? in.edge_u64() : in.below(1u << 22) << 12};
    auto layout = FbLayout::from_records(records, pdb);
    if (!layout) {
        FUZZ_CHECK(layout.error() == Error::malformed_record);
        return 0;
    }
    const u64 end = layout->vram_end().value();
    u64 previous_end = 0, sum = 0;
    bool first = true;
    for (const VramRange &region : layout->usable_regions()) {
        const u64 b = region.begin().value(), e = region.end().value();
        FUZZ_CHECK(b < e && b % 4096 == 0 && e % 4096 == 0 && e <= end);
        FUZZ_CHECK(first || b >= previous_end);
        bool from_record = false;
        for (const FbRegionRecord &record : records)
            from_record |= record.base == b && record.limit + 1 == e && !record.reserved &&
                           !record.protected_memory;
        FUZZ_CHECK(from_record);
        const u64 at = layout->bar1_pdb().value();
        FUZZ_CHECK(at < b || at >= e);
        previous_end = e;
        sum += e - b;
        first = false;
    }
    FUZZ_CHECK(!first);  // at least one usable region
    FUZZ_CHECK(layout->usable_bytes() == sum);
    FUZZ_CHECK(layout->bar1_pdb().value() < end && layout->bar1_pdb().value() % 4096 == 0);
    return 0;
}
