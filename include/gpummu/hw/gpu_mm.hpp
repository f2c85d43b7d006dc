// gpummu/hw/gpu_mm.hpp: one GPU's memory manager, from its BARs and firmware's FB layout.
//
// What it does
//   `GpuMm<Bar0, Bar1>::create(bar0, bar1, layout, bar1_bytes, storage)`:
//     1. reads BOOT_0 / BOOT_42 through BAR0 and picks the chip's record (hw/chip.hpp):
//        MMU version, page sizes, window and invalidate registers (unknown chip: an Error);
//     2. builds the buddy allocator over every usable FB region (not only the first);
//     3. opens the PRAMIN window (the only owner of the window register);
//     4. sets up the TLB invalidator, fenced by the window (PRAMIN writes are read back
//        before each invalidate);
//     5. builds the BAR1 user over the BAR1 root firmware reported, writing its tables
//        through PRAMIN, taking table pages from the buddy.
//   `create_context(context, storage, options)` makes a GPU-context address space (a
//   channel's VA space) over the same buddy, PRAMIN window and TLB: format and page sizes
//   from the chip, physical addresses checked against the end of VRAM, its own root, an
//   optional VRAM budget for its tables. `page_directory_base(context)` is what a channel's
//   instance block must hold (hw/instance_block.hpp writes it); `destroy()` on the context
//   gives every table back.
//
//       GpuMm --- BuddyAllocator (usable regions) ---+---------------+
//         |------ Pramin (BAR0 window) <--- page tables of BAR1 and of every context
//         |------ Tlb (BAR0 registers, fenced by Pramin): one invalidate per change
//         +------ Bar1User (AnyAddressSpace over the GSP root, BAR1 aperture)
//                 Context, Context, ... (AnyAddressSpace each, own root, caller-owned)
//
// Locking
//   Every context and the BAR1 space share one buddy, one PRAMIN window (a register that
//   moves) and one TLB invalidate sequence. One GPU-wide lock must cover any call that
//   maps, unmaps, makes or destroys a space, every buddy call and every PRAMIN access. A
//   Bar1Mapping's reads and writes touch only its BAR1 offsets: they may run outside the
//   lock while that mapping is not released. Reads of stats and translations of one space
//   need only that space not to change meanwhile.
//
// What it does not do
//   - No locking: the owner serialises every call. Nothing here allocates from the heap;
//     all storage comes in `GpuMmStorage` (`buddy_metadata_words(layout)` sizes the buddy's).
//   - It binds nothing: the BAR1 instance block belongs to firmware.
//   - It is pinned once created (internal references): create it where it will live.
#pragma once

#include <span>

#include "gpummu/alloc/buddy.hpp"
#include "gpummu/core/deferred.hpp"
#include "gpummu/core/result.hpp"
#include "gpummu/hw/bar1.hpp"
#include "gpummu/hw/chip.hpp"
#include "gpummu/hw/fb_layout.hpp"
#include "gpummu/hw/instance_block.hpp"
#include "gpummu/hw/pramin.hpp"
#include "gpummu/hw/register_io_concepts.hpp"
#include "gpummu/hw/tlb.hpp"

namespace gpummu {

struct GpuMmStorage {
    std::span<u64> buddy_metadata;  // GpuMm<...>::buddy_metadata_words(layout)
    Bar1Storage bar1;
};

struct ContextOptions {
    VirtualRange space = VirtualRange::from_size(VirtualAddress{1ull << 32}, 1ull << 40).value();
    u64 vram_budget = ~u64{0};       // the most VRAM the context's tables may hold
    unsigned spare_table_pages = 0;  // emptied table pages kept (AddressSpaceConfig's)
};

template <BarIo Bar0, BarIo Bar1>
class GpuMm {
public:
    using Window = Pramin<Bar0>;
    using Invalidator = Tlb<Bar0, Window>;
    using Bar1Space = Bar1User<Window, Invalidator, Bar1>;
    // A GPU context's address space: tables in VRAM through PRAMIN, invalidated by the TLB.
    using Context = AnyAddressSpace<Window, Invalidator>;
    static constexpr u64 chunk_bytes = 4096;

    [[nodiscard]] static Result<std::size_t> buddy_metadata_words(const FbLayout &layout) noexcept
    {
        return BuddyAllocator::metadata_words(layout.usable_regions(), chunk_bytes);
    }

    GpuMm() noexcept = default;
    GpuMm(const GpuMm &) = delete;
    GpuMm &operator=(const GpuMm &) = delete;

    [[nodiscard]] Result<void> create(Bar0 &bar0, Bar1 &bar1, const FbLayout &layout,
                                      u64 bar1_bytes, GpuMmStorage storage) noexcept
    {
        if (created_) return failure(Error::invalid_argument);
        auto boot0 = bar0.read32(boot_registers::boot_0);
        if (!boot0) return failure(boot0.error());
        auto boot42 = bar0.read32(boot_registers::boot_42);
        if (!boot42) return failure(boot42.error());
        auto id = identify_chip(*boot0, *boot42);  // all-ones or poison: device_lost
        if (!id) return failure(id.error());
        chip_id_ = *id;
        auto record = chip_record(chip_id_);
        if (!record) return failure(record.error());
        record_ = *record;
        auto buddy =
            BuddyAllocator::create(layout.usable_regions(), storage.buddy_metadata, chunk_bytes);
        if (!buddy) return failure(buddy.error());
        auto window = Window::create(bar0, record_.window, layout.vram_end());
        if (!window) return failure(window.error());
        buddy_.emplace(std::move(*buddy));
        window_.emplace(std::move(*window));
        tlb_.emplace(bar0, record_.invalidate, *window_);
        layout_ = layout;
        auto made =
            bar1_.create(record_.mmu_version, record_.page_sizes, *window_, *buddy_, *tlb_, bar1,
                         bar1_bytes, layout.bar1_pdb(), storage.bar1, layout.vram_end());
        if (!made) {
            tlb_.reset();
            window_.reset();
            buddy_.reset();
            return failure(made.error());
        }
        created_ = true;
        return success();
    }

    [[nodiscard]] const ChipId &chip_id() const noexcept { return chip_id_; }
    [[nodiscard]] const ChipRecord &chip() const noexcept { return record_; }
    [[nodiscard]] const FbLayout &layout() const noexcept { return layout_; }
    [[nodiscard]] BuddyAllocator &buddy() noexcept { return *buddy_; }
    [[nodiscard]] Window &pramin() noexcept { return *window_; }
    [[nodiscard]] Invalidator &tlb() noexcept { return *tlb_; }
    [[nodiscard]] Bar1Space &bar1() noexcept { return bar1_; }

    // Makes `context` (an uncreated object the caller keeps in place) a GPU-context address
    // space of this GPU. Errors: invalid_argument (GpuMm not created, or the context is),
    // out_of_range (a VA range beyond the chip's format), out_of_memory (no VRAM for the
    // root), storage errors from the sizes given.
    [[nodiscard]] Result<void> create_context(Context &context, AddressSpaceStorage storage,
                                              ContextOptions options = {}) noexcept
    {
        if (!created_) return failure(Error::invalid_argument);
        AddressSpaceConfig config{options.space,
                                  {record_.page_sizes, false},
                                  layout_.vram_end(),
                                  options.vram_budget,
                                  options.spare_table_pages};
        return context.create(record_.mmu_version, *window_, *buddy_, *tlb_, storage, config);
    }
    // What a channel's instance block holds to run in `context` (video-memory root, this
    // chip's format).
    [[nodiscard]] Result<PageDirectoryBase>
    page_directory_base(const Context &context) const noexcept
    {
        const TablePointer root = context.root();
        if (!created_ || root.aperture != Aperture::video) return failure(Error::invalid_argument);
        return PageDirectoryBase{Aperture::video, root.address, record_.mmu_version};
    }

private:
    bool created_ = false;
    ChipId chip_id_{};
    ChipRecord record_{};
    FbLayout layout_{};
    Deferred<BuddyAllocator> buddy_;
    Deferred<Window> window_;
    Deferred<Invalidator> tlb_;
    Bar1Space bar1_;
};

}  // namespace gpummu
