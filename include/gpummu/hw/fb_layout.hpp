// gpummu/hw/fb_layout.hpp: what VRAM gpummu may use, from firmware's region records.
//
// What it does
//   GSP firmware reports the framebuffer as region records (base, inclusive limit, reserved,
//   protected, supports compression, supports ISO) plus the BAR1 page directory it built.
//   `FbLayout::from_records` checks them and keeps:
//     - every usable region (neither reserved nor protected), not only the first;
//     - the end of VRAM (the highest limit + 1);
//     - the BAR1 PDB, which must lie in VRAM that is not usable (firmware owns it: the buddy
//       must never hand it out, and gpummu never frees it).
//
//       0 ........ usable ........ | protected | ... usable ... | reserved (BAR1 root) | end
//
// What it does not do
//   - It does not read firmware memory: callers copy the records out of GSP's static info
//     (the simulator hands them over directly).
//   - Malformed input is Error::malformed_record: an unaligned base or limit, base > limit,
//     a limit at the top of the 64-bit space (VRAM's end would wrap to 0), records out of
//     order or overlapping, no usable region, more than `max_regions` records, or a BAR1
//     PDB that is unaligned, outside VRAM or inside a usable region. Records come from
//     firmware and are not trusted: every comparison is exact, nothing wraps, and a
//     refused list leaves nothing behind.
#pragma once

#include <array>
#include <span>

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"

namespace gpummu {

struct FbRegionRecord {
    u64 base = 0;
    u64 limit = 0;  // inclusive
    bool reserved = false;
    bool protected_memory = false;
    bool supports_compression = false;
    bool supports_iso = false;
};

class FbLayout {
public:
    static constexpr std::size_t max_regions = 16;

    [[nodiscard]] static Result<FbLayout> from_records(std::span<const FbRegionRecord> records,
                                                       VramAddress bar1_pdb) noexcept
    {
        if (records.empty() || records.size() > max_regions)
            return failure(Error::malformed_record);
        FbLayout layout;
        u64 previous_end = 0;
        for (std::size_t i = 0; i < records.size(); ++i) {
            const FbRegionRecord &record = records[i];
            if (record.base > record.limit || (record.base & 0xFFF) != 0 ||
                (record.limit & 0xFFF) != 0xFFF || record.limit == ~u64{0})
                return failure(Error::malformed_record);
            if (i != 0 && record.base < previous_end) return failure(Error::malformed_record);
            previous_end = record.limit + 1;  // limit < 2^64 - 1: exact, never 0
            if (!record.reserved && !record.protected_memory) {
                auto usable =
                    VramRange::from_bounds(VramAddress{record.base}, VramAddress{previous_end});
                if (!usable) return failure(Error::malformed_record);
                layout.usable_[layout.usable_count_++] = *usable;
            }
        }
        if (layout.usable_count_ == 0) return failure(Error::malformed_record);
        layout.end_ = VramAddress{previous_end};
        if (!bar1_pdb.is_aligned_to(4096) || bar1_pdb.value() >= previous_end)
            return failure(Error::malformed_record);
        for (std::size_t i = 0; i < layout.usable_count_; ++i)
            if (layout.usable_[i].contains(bar1_pdb)) return failure(Error::malformed_record);
        layout.bar1_pdb_ = bar1_pdb;
        return layout;
    }

    [[nodiscard]] std::span<const VramRange> usable_regions() const noexcept
    {
        return std::span<const VramRange>(usable_.data(), usable_count_);
    }
    [[nodiscard]] VramAddress vram_end() const noexcept { return end_; }
    [[nodiscard]] VramAddress bar1_pdb() const noexcept { return bar1_pdb_; }
    [[nodiscard]] u64 usable_bytes() const noexcept
    {
        u64 total = 0;
        for (const VramRange &range : usable_regions()) total += range.size();
        return total;
    }

private:
    std::array<VramRange, max_regions> usable_{};
    std::size_t usable_count_ = 0;
    VramAddress end_{};
    VramAddress bar1_pdb_{};
};

}  // namespace gpummu
