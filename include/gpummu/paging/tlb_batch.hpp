// gpummu/paging/tlb_batch.hpp: the TLB obligation a page-table change leaves behind.
//
// What it does
//   - `TlbBatch` records what must be invalidated after page-table writes: the address
//     space (PDB and its aperture), the shallowest level written, and whether the change
//     took access away (an unmap or a permission downgrade), which needs the invalidate to
//     be acknowledged globally and preceded by a system memory barrier. BAR address spaces
//     use hub-only invalidates.
//   - Batches of one address space merge, so one request (or several) ends in one
//     invalidate: `batch.merge(std::move(other))`.
//   - `finish(invalidator)` issues the invalidate through a `TlbInvalidator` (hw/tlb.hpp on
//     a GPU, a recorder in tests) and marks the batch done. An empty batch finishes
//     without an invalidate.
//   - The type is [[nodiscard]], and a batch destroyed while it still owes an invalidate is
//     a bug: debug builds trap there (GPUMMU_DEBUG). After a failed finish (a device
//     timeout) the caller retries, or calls `abandon()` on its device-loss path.
//
// What it does not do
//   - It writes no register itself and frees no table page: the page table releases pages
//     it unlinked only after the batch that covers them has finished (flush before free).
//
//     level depth:   0 (PDB)   1    2    3   ...   PT
//                    shallowest written level -> TlbInvalidation::shallowest_level
//                    (an invalidator may use it for CACHE_LEVEL / UP_TO_PDEn)
#pragma once

#include <algorithm>
#include <concepts>
#include <utility>

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/format/format_concepts.hpp"

namespace gpummu {

struct TlbInvalidation {
    PhysicalAddress pdb{};
    Aperture pdb_aperture = Aperture::video;
    Level shallowest_level{};   // the smallest depth any write touched
    bool ack_globally = false;  // access was taken away: wait for every TLB to drop it
    bool sys_membar = false;    // order prior memory traffic before the invalidate
    bool hub_only = false;      // a BAR address space: only the hub TLBs hold it
    constexpr bool operator==(const TlbInvalidation &) const noexcept = default;
};

template <class T>
concept TlbInvalidator = requires(T &invalidator, const TlbInvalidation &invalidation)
{
    {
        invalidator.invalidate(invalidation)
        } -> std::same_as<Result<void>>;
};

namespace detail {
// Not inline-able into a no-op: a dropped batch in a debug build stops the program here.
[[noreturn]] inline void dropped_tlb_batch() noexcept
{
    assertion_failure("TlbBatch dropped unfinished");
}
}  // namespace detail

class [[nodiscard]] TlbBatch {
public:
    // An empty batch for the address space rooted at `pdb`.
    constexpr TlbBatch(PhysicalAddress pdb, Aperture pdb_aperture, bool hub_only) noexcept
        : invalidation_{pdb, pdb_aperture, Level{}, false, false, hub_only}
    {
    }

    constexpr TlbBatch(TlbBatch &&other) noexcept
        : invalidation_(other.invalidation_),
          pending_(std::exchange(other.pending_, false))
    {
    }
    TlbBatch &operator=(TlbBatch &&) = delete;
    TlbBatch(const TlbBatch &) = delete;
    TlbBatch &operator=(const TlbBatch &) = delete;

    ~TlbBatch()
    {
#if GPUMMU_DEBUG
        if (pending_) detail::dropped_tlb_batch();
#endif
    }

    // An entry at `level` now maps or points to something new (nothing was taken away).
    constexpr void record_write(Level level) noexcept
    {
        note(level);
    }
    // An entry at `level` lost a mapping or a permission: the invalidate must be
    // acknowledged globally, after a system memory barrier.
    constexpr void record_downgrade(Level level) noexcept
    {
        note(level);
        invalidation_.ack_globally = true;
        invalidation_.sys_membar = true;
    }

    // Takes over `other`'s obligation. Both must name the same address space.
    [[nodiscard]] constexpr Result<void> merge(TlbBatch &&other) noexcept
    {
        if (other.invalidation_.pdb != invalidation_.pdb ||
            other.invalidation_.pdb_aperture != invalidation_.pdb_aperture ||
            other.invalidation_.hub_only != invalidation_.hub_only)
            return failure(Error::invalid_argument);
        if (other.pending_) {
            note(other.invalidation_.shallowest_level);
            invalidation_.ack_globally |= other.invalidation_.ack_globally;
            invalidation_.sys_membar |= other.invalidation_.sys_membar;
            other.pending_ = false;
        }
        return success();
    }

    template <TlbInvalidator T>
    [[nodiscard]] Result<void> finish(T &invalidator) noexcept
    {
        if (!pending_) return success();
        GPUMMU_TRY(invalidator.invalidate(invalidation_));
        pending_ = false;
        return success();
    }

    // Gives up the obligation without an invalidate (device lost, address space torn down).
    constexpr void abandon() noexcept
    {
        pending_ = false;
    }

    [[nodiscard]] constexpr bool pending() const noexcept
    {
        return pending_;
    }
    [[nodiscard]] constexpr const TlbInvalidation &invalidation() const noexcept
    {
        return invalidation_;
    }

private:
    constexpr void note(Level level) noexcept
    {
        invalidation_.shallowest_level =
            pending_ ? std::min(invalidation_.shallowest_level, level) : level;
        pending_ = true;
    }

    TlbInvalidation invalidation_;
    bool pending_ = false;
};

}  // namespace gpummu
