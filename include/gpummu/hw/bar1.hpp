// gpummu/hw/bar1.hpp: the CPU's view of VRAM through BAR1.
//
// What it does
//   BAR1 offset X is GPU virtual address X in the BAR1 address space, whose root page
//   directory firmware (GSP) built and reports (hw/fb_layout.hpp). `Bar1User` is an
//   address space over that root (never freed: gpummu does not own it):
//
//       CPU -> BAR1 offset X -> BAR1 address space (root from GSP) -> VRAM
//
//   - map(blocks): maps a list of VRAM blocks (for example a scattered buddy allocation) at a
//     BAR1 offset it picks, with the largest pages the blocks allow, and returns a
//     `Bar1Mapping`: bounds-checked 8/16/32/64-bit reads and writes and bulk copies at
//     offsets inside the mapping, each one access of that width through BAR1.
//   - release(mapping): unmaps, invalidates (hub-only, acknowledged), frees emptied tables.
//   - Page tables are written through the TableMemory given (PRAMIN on a GPU), invalidates go
//     through the TlbInvalidator given (hw/tlb.hpp); the MMU format is chosen at run time.
//
// What it does not do
//   - No locking. A Bar1Mapping is a view: after release() its accesses reach unmapped BAR1
//     (they fault on hardware; the caller must not use it).
//   - Blocks beyond the scratch capacity given at creation (one segment per block) are
//     Error::out_of_storage.
#pragma once

#include <span>

#include "gpummu/alloc/buddy.hpp"
#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/hw/register_io_concepts.hpp"
#include "gpummu/vmm/address_space.hpp"

namespace gpummu {

template <BarIo B>
class Bar1Mapping {
public:
    Bar1Mapping() noexcept = default;
    Bar1Mapping(B &bar1, MappingHandle handle, VirtualRange range) noexcept
        : bar1_(&bar1),
          handle_(handle),
          range_(range)
    {
    }

    [[nodiscard]] MappingHandle handle() const noexcept { return handle_; }
    [[nodiscard]] VirtualRange range() const noexcept { return range_; }  // = BAR1 offsets
    [[nodiscard]] u64 size() const noexcept { return range_.size(); }

    [[nodiscard]] Result<u8> read8(u64 offset) noexcept
    {
        GPUMMU_TRY(check(offset, 1));
        return bar1_->read8(range_.begin().value() + offset);
    }
    [[nodiscard]] Result<u16> read16(u64 offset) noexcept
    {
        GPUMMU_TRY(check(offset, 2));
        return bar1_->read16(range_.begin().value() + offset);
    }
    [[nodiscard]] Result<u32> read32(u64 offset) noexcept
    {
        GPUMMU_TRY(check(offset, 4));
        return bar1_->read32(range_.begin().value() + offset);
    }
    [[nodiscard]] Result<u64> read64(u64 offset) noexcept
    {
        GPUMMU_TRY(check(offset, 8));
        return bar1_->read64(range_.begin().value() + offset);
    }
    [[nodiscard]] Result<void> write8(u64 offset, u8 value) noexcept
    {
        GPUMMU_TRY(check(offset, 1));
        return bar1_->write8(range_.begin().value() + offset, value);
    }
    [[nodiscard]] Result<void> write16(u64 offset, u16 value) noexcept
    {
        GPUMMU_TRY(check(offset, 2));
        return bar1_->write16(range_.begin().value() + offset, value);
    }
    [[nodiscard]] Result<void> write32(u64 offset, u32 value) noexcept
    {
        GPUMMU_TRY(check(offset, 4));
        return bar1_->write32(range_.begin().value() + offset, value);
    }
    [[nodiscard]] Result<void> write64(u64 offset, u64 value) noexcept
    {
        GPUMMU_TRY(check(offset, 8));
        return bar1_->write64(range_.begin().value() + offset, value);
    }
    // 64-bit words in and out; `offset` 8-byte aligned.
    [[nodiscard]] Result<void> copy_in(u64 offset, std::span<const u64> words) noexcept
    {
        GPUMMU_TRY(check(offset, words.size() * 8));
        for (std::size_t i = 0; i < words.size(); ++i)
            GPUMMU_TRY(bar1_->write64(range_.begin().value() + offset + i * 8, words[i]));
        return success();
    }
    [[nodiscard]] Result<void> copy_out(u64 offset, std::span<u64> words) noexcept
    {
        GPUMMU_TRY(check(offset, words.size() * 8));
        for (std::size_t i = 0; i < words.size(); ++i) {
            auto word = bar1_->read64(range_.begin().value() + offset + i * 8);
            if (!word) return failure(word.error());
            words[i] = *word;
        }
        return success();
    }

private:
    [[nodiscard]] Result<void> check(u64 offset, u64 bytes) const noexcept
    {
        if (bar1_ == nullptr) return failure(Error::not_mapped);
        if (offset > range_.size() || range_.size() - offset < bytes)
            return failure(Error::out_of_range);
        const u64 width = bytes >= 8 ? 8 : bytes;
        if (width != 0 && (offset & (width - 1)) != 0) return failure(Error::misaligned);
        return success();
    }

    B *bar1_ = nullptr;
    MappingHandle handle_{};
    VirtualRange range_{};
};

struct Bar1Storage {
    AddressSpaceStorage space;
    std::span<PhysicalSegment> scratch;  // one per block of the largest map() call
};

template <TableMemory M, TlbInvalidator T, BarIo B>
class Bar1User {
public:
    Bar1User() noexcept = default;
    Bar1User(const Bar1User &) = delete;
    Bar1User &operator=(const Bar1User &) = delete;

    // `root`: the BAR1 page directory firmware reported; `bar1_bytes`: the aperture size;
    // `vram_end`: blocks ending beyond it are refused (out_of_range).
    [[nodiscard]] Result<void> create(MmuVersion version, PageSizeSet page_sizes, M &memory,
                                      BuddyAllocator &buddy, T &invalidator, B &bar1,
                                      u64 bar1_bytes, VramAddress root, Bar1Storage storage,
                                      VramAddress vram_end = VramAddress{~u64{0}}) noexcept
    {
        auto space = VirtualRange::from_size(VirtualAddress{0}, bar1_bytes);
        if (!space || bar1_bytes == 0) return failure(Error::invalid_argument);
        AddressSpaceConfig config{*space, {page_sizes, true}, vram_end};  // BAR: hub-only
        GPUMMU_TRY(space_.create_with_root(version, memory, buddy, invalidator, storage.space,
                                           config, root));
        bar1_ = &bar1;
        scratch_ = storage.scratch;
        return success();
    }

    [[nodiscard]] Result<Bar1Mapping<B>> map(std::span<const BuddyBlock> blocks,
                                             PageAttributes attributes = {}) noexcept
    {
        if (bar1_ == nullptr) return failure(Error::invalid_argument);
        if (blocks.empty()) return failure(Error::invalid_argument);
        if (blocks.size() > scratch_.size()) return failure(Error::out_of_storage);
        for (std::size_t i = 0; i < blocks.size(); ++i)
            scratch_[i] = PhysicalSegment{physical(blocks[i].address), blocks[i].size};
        attributes.aperture = Aperture::video;
        auto mapping = space_.map(scratch_.first(blocks.size()), attributes);
        if (!mapping) return failure(mapping.error());
        return Bar1Mapping<B>(*bar1_, mapping->handle, mapping->range);
    }

    [[nodiscard]] Result<void> release(const Bar1Mapping<B> &mapping) noexcept
    {
        return space_.release(mapping.handle());
    }

    [[nodiscard]] Result<Translation> translate(u64 offset) const noexcept
    {
        return space_.translate(VirtualAddress{offset});
    }
    [[nodiscard]] AddressSpaceStats stats() const noexcept { return space_.stats(); }
    [[nodiscard]] TablePointer root() const noexcept { return space_.root(); }
    [[nodiscard]] Result<void> check_invariants() const noexcept
    {
        return space_.check_invariants();
    }
    [[nodiscard]] AnyAddressSpace<M, T> &address_space() noexcept { return space_; }

private:
    AnyAddressSpace<M, T> space_;
    B *bar1_ = nullptr;
    std::span<PhysicalSegment> scratch_{};
};

}  // namespace gpummu
