// FbLayout::from_records against a model of its contract, on randomized firmware records:
// mostly plausible layouts (usable, protected and reserved regions, gaps, the BAR1 root in
// reserved memory) with one defect injected in most cases: a wrapped or misaligned base or
// limit, a limit at the top of the 64-bit range, overlap, disorder, too many records, no
// usable region, a BAR1 PDB unaligned, past VRAM or inside usable memory. The model says
// whether the list is acceptable and, if so, what the layout must hold; a refusal must be
// malformed_record and the model must find a defect.
#include <doctest/doctest.h>

#include <vector>

#include "gpummu/hw/fb_layout.hpp"
#include "support/random.hpp"

using namespace gpummu;
using testing::Random;

namespace {

#ifndef GPUMMU_FB_LAYOUT_CASES
#define GPUMMU_FB_LAYOUT_CASES 200000
#endif

struct Expected {
    bool ok = false;
    std::vector<FbRegionRecord> usable;
    u64 end = 0;
};

// The contract, written from the header's list of refusals.
Expected model(const std::vector<FbRegionRecord> &records, u64 pdb)
{
    Expected out;
    if (records.empty() || records.size() > FbLayout::max_regions) return out;
    u64 previous_end = 0;
    for (std::size_t i = 0; i < records.size(); ++i) {
        const FbRegionRecord &r = records[i];
        if (r.base > r.limit || r.base % 4096 != 0 || r.limit % 4096 != 4095 || r.limit == ~u64{0})
            return out;
        if (i != 0 && r.base < previous_end) return out;
        previous_end = r.limit + 1;
        if (!r.reserved && !r.protected_memory) out.usable.push_back(r);
    }
    if (out.usable.empty() || pdb % 4096 != 0 || pdb >= previous_end) return out;
    for (const FbRegionRecord &r : out.usable)
        if (pdb >= r.base && pdb <= r.limit) return out;
    out.end = previous_end;
    out.ok = true;
    return out;
}

std::vector<FbRegionRecord> plausible(Random &random, u64 &pdb)
{
    std::vector<FbRegionRecord> records;
    const bool high = random.below(8) == 0;  // VRAM near the top of the 64-bit range
    u64 at = high ? ~u64{0} - (u64{1} << 40) : random.below(4) << 20;
    const std::size_t count = 1 + random.below(6);
    for (std::size_t i = 0; i < count; ++i) {
        const u64 bytes = (1 + random.below(1u << 16)) << 12;
        FbRegionRecord r{
            at & ~u64{0xFFF}, (at & ~u64{0xFFF}) + bytes - 1, false, false, random.coin(),
            random.coin()};
        const u64 kind = random.below(4);
        r.protected_memory = kind == 1;
        r.reserved = kind == 2 || i + 1 == count;  // firmware's share at the top
        records.push_back(r);
        at = r.limit + 1 + (random.coin() ? 0 : random.below(256) << 12);
    }
    pdb = records.back().base;  // the BAR1 root in the reserved top
    return records;
}

void inject_defect(Random &random, std::vector<FbRegionRecord> &records, u64 &pdb)
{
    FbRegionRecord &r = records[random.below(records.size())];
    switch (random.below(11)) {
    case 0: r.base += 8; break;                 // misaligned base
    case 1: r.limit -= 8; break;                // misaligned limit
    case 2: std::swap(r.base, r.limit); break;  // base > limit (when not one page)
    case 3: r.limit = ~u64{0}; break;           // VRAM's end would wrap to 0
    case 4: r.limit = r.base - 1; break;        // wraps below its base
    case 5:                                     // overlap or disorder
        if (records.size() > 1) std::swap(records.front(), records.back());
        break;
    case 6: records.resize(FbLayout::max_regions + 1, records.back()); break;
    case 7:
        for (FbRegionRecord &each : records) each.reserved = true;  // nothing usable
        break;
    case 8: pdb += 0x800; break;                    // unaligned root
    case 9: pdb = records.back().limit + 1; break;  // past VRAM
    default:
        for (const FbRegionRecord &each : records)
            if (!each.reserved && !each.protected_memory) pdb = each.base;  // inside usable
    }
}

}  // namespace

TEST_CASE("FbLayout accepts exactly the record lists its contract allows")
{
    Random random(0xFB1A);
    long accepted = 0, refused = 0;
    for (long i = 0; i < GPUMMU_FB_LAYOUT_CASES; ++i) {
        u64 pdb = 0;
        std::vector<FbRegionRecord> records = plausible(random, pdb);
        if (random.below(4) != 0) inject_defect(random, records, pdb);
        if (random.below(16) == 0) pdb = random.bits(64);
        const Expected expected = model(records, pdb);
        auto layout = FbLayout::from_records(records, VramAddress{pdb});
        CAPTURE(i);
        REQUIRE(layout.has_value() == expected.ok);
        if (!layout) {
            REQUIRE(layout.error() == Error::malformed_record);
            ++refused;
            continue;
        }
        ++accepted;
        REQUIRE(layout->vram_end().value() == expected.end);
        REQUIRE(layout->bar1_pdb().value() == pdb);
        REQUIRE(layout->usable_regions().size() == expected.usable.size());
        u64 sum = 0;
        for (std::size_t k = 0; k < expected.usable.size(); ++k) {
            REQUIRE(layout->usable_regions()[k].begin().value() == expected.usable[k].base);
            REQUIRE(layout->usable_regions()[k].end().value() == expected.usable[k].limit + 1);
            sum += expected.usable[k].limit + 1 - expected.usable[k].base;
        }
        REQUIRE(layout->usable_bytes() == sum);
    }
    // Both outcomes are common, so both sides of the contract were exercised.
    CHECK(accepted > GPUMMU_FB_LAYOUT_CASES / 8);
    CHECK(refused > GPUMMU_FB_LAYOUT_CASES / 8);
}
