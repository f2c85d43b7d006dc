// gpummu/hw/tlb.hpp: invalidate the GPU's TLBs for one address space.
//
// What it does
//   `Tlb<Registers, Fence>` is a TlbInvalidator: it consumes a page table's TlbBatch
//   (`batch.finish(tlb)`) and runs the sequence NVIDIA's driver uses on Turing..Blackwell:
//
//     0. fence.order_writes()        posted PRAMIN writes land before the invalidate
//     1. poll CONTROL until TRIGGER (bit 31) reads 0        (another invalidate finished)
//     2. PDB       <- (PDB >> 12) << 4 | APERTURE << 1      (bits 39:12; 1 = system memory)
//     3. UPPER_PDB <- PDB >> 40                             (bits 59:40)
//     4. CONTROL   <- TRIGGER | ALL_VA | [HUBTLB_ONLY] | [SYS_MEMBAR | ACK_GLOBALLY]
//     5. poll CONTROL until TRIGGER reads 0
//
//   Hub-only for BAR address spaces (the batch says so); ack-globally and sys-membar when
//   the batch took access away (unmap, permission downgrade). Polls are bounded
//   (`max_polls`); running out is Error::timeout, and the batch stays pending so the caller
//   can retry.
//
// What it does not do
//   - No range invalidates (NVIDIA's driver uses none either) and no replay control.
//   - No locking: invalidates are serialised by the caller (one Tlb per GPU).
#pragma once

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/hw/chip.hpp"
#include "gpummu/hw/register_io_concepts.hpp"
#include "gpummu/paging/tlb_batch.hpp"

namespace gpummu {

namespace invalidate_control {
inline constexpr u32 all_va = 1u << 0;
inline constexpr u32 all_pdb = 1u << 1;
inline constexpr u32 hub_tlb_only = 1u << 2;
inline constexpr u32 sys_membar = 1u << 6;
inline constexpr u32 ack_globally = 1u << 7;  // ACK 8:7 = 1
inline constexpr u32 trigger = 1u << 31;
}  // namespace invalidate_control

// A fence with nothing to order (tests, or memory written by the CPU directly).
struct NoFence {
    Result<void> order_writes() noexcept { return success(); }
};

template <RegisterIo R, class Fence = NoFence>
class Tlb {
public:
    static constexpr unsigned default_max_polls = 1'000'000;

    Tlb(R &registers, const InvalidateRegisters &layout, Fence &fence,
        unsigned max_polls = default_max_polls) noexcept
        : registers_(&registers),
          layout_(layout),
          fence_(&fence),
          max_polls_(max_polls)
    {
    }

    [[nodiscard]] Result<void> invalidate(const TlbInvalidation &request) noexcept
    {
        const u64 pdb = request.pdb.value();
        if ((pdb & 0xFFF) != 0) return failure(Error::misaligned);
        if ((pdb >> 60) != 0) return failure(Error::out_of_range);
        if (request.pdb_aperture != Aperture::video &&
            request.pdb_aperture != Aperture::system_coherent &&
            request.pdb_aperture != Aperture::system_noncoherent)
            return failure(Error::invalid_aperture);
        GPUMMU_TRY(fence_->order_writes());
        GPUMMU_TRY(wait_idle());
        const u32 system = request.pdb_aperture == Aperture::video ? 0u : 1u;
        const u32 low = static_cast<u32>(((pdb >> 12) & 0x0FFF'FFFFu) << 4) | (system << 1);
        const u32 high = static_cast<u32>((pdb >> 40) & 0xF'FFFFu);
        GPUMMU_TRY(registers_->write32(layout_.pdb, low));
        GPUMMU_TRY(registers_->write32(layout_.upper_pdb, high));
        u32 control = invalidate_control::trigger | invalidate_control::all_va;
        if (request.hub_only) control |= invalidate_control::hub_tlb_only;
        if (request.sys_membar) control |= invalidate_control::sys_membar;
        if (request.ack_globally) control |= invalidate_control::ack_globally;
        GPUMMU_TRY(registers_->write32(layout_.control, control));
        GPUMMU_TRY(wait_idle());
        ++invalidates_;
        return success();
    }

    [[nodiscard]] u64 invalidates() const noexcept { return invalidates_; }

private:
    [[nodiscard]] Result<void> wait_idle() noexcept
    {
        for (unsigned poll = 0; poll < max_polls_; ++poll) {
            auto control = registers_->read32(layout_.control);
            if (!control) return failure(control.error());
            // All-ones has TRIGGER set forever: a lost device, not a slow one.
            if (is_dead_register_value(*control)) return failure(Error::device_lost);
            if ((*control & invalidate_control::trigger) == 0) return success();
        }
        return failure(Error::timeout);
    }

    R *registers_;
    InvalidateRegisters layout_;
    Fence *fence_;
    unsigned max_polls_;
    u64 invalidates_ = 0;
};

}  // namespace gpummu
