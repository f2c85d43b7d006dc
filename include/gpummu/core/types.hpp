// gpummu/core/types.hpp: strong types for every address, frame number and size class.
//
// What it does
//   - `VramAddress`     a byte offset into the GPU's local video memory (FB).
//   - `PhysicalAddress` a byte address inside whatever aperture an entry names (VRAM, a
//                       peer's VRAM, or system memory as the GPU sees it). Page-table
//                       entries carry this; a VramAddress converts to it explicitly.
//   - `VirtualAddress`  a GPU virtual address (also a BAR1 offset in the BAR1 space).
//   - `Pfn` / `Vfn`     physical / virtual 4 KiB frame numbers.
//   - `PageSize`        one of the page sizes NVIDIA MMUs map (4 KiB, 64 KiB, 2 MiB,
//                       512 MiB, 256 GiB), and `PageSizeSet`, a set of them.
//   - `Aperture`        where an entry points: invalid, video, peer, system coherent,
//                       system non-coherent. Hardware codes differ between PTEs and PDEs;
//                       the formats translate (see format/mmu_v2.hpp and mmu_v3.hpp).
//   - `AddressRange<A>` a half-open range [begin, end) of one address kind, built only
//                       through checked constructors so it never wraps.
//   - `PhysicalSegment` a run of physical memory (address and size) behind part of a
//                       mapping.
//   - `checked_add`, `align_up`: arithmetic that reports overflow as an Error.
//
// What it does not do
//   - No implicit conversion between address kinds and no raw integer in or out without
//     naming it (`.value()`, `VramAddress{n}`): mixing a VA and a PA is a compile error.
#pragma once

#include <bit>
#include <compare>
#include <cstdint>
#include <initializer_list>

#include "gpummu/core/result.hpp"

namespace gpummu {

using u64 = std::uint64_t;
using u32 = std::uint32_t;
using u16 = std::uint16_t;
using u8 = std::uint8_t;

// ---- checked arithmetic ---------------------------------------------------------------

[[nodiscard]] constexpr Result<u64> checked_add(u64 a, u64 b) noexcept
{
    u64 sum = a + b;
    if (sum < a) return failure(Error::arithmetic_overflow);
    return sum;
}

// (std::has_single_bit would call libgcc's popcount on builds without -mpopcnt.)
[[nodiscard]] constexpr bool is_power_of_two(u64 value) noexcept
{
    return value != 0 && (value & (value - 1)) == 0;
}

// Population count without a library call (x86-64 without -mpopcnt turns std::popcount
// into one): the classic SWAR sum.
[[nodiscard]] constexpr unsigned count_ones(u64 word) noexcept
{
    word = word - ((word >> 1) & 0x5555555555555555ull);
    word = (word & 0x3333333333333333ull) + ((word >> 2) & 0x3333333333333333ull);
    word = (word + (word >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return static_cast<unsigned>((word * 0x0101010101010101ull) >> 56);
}
static_assert(count_ones(0) == 0 && count_ones(~u64{0}) == 64 &&
              count_ones(0x8000000000000001ull) == 2);

// `alignment` must be a power of two (checked).
[[nodiscard]] constexpr Result<u64> align_up(u64 value, u64 alignment) noexcept
{
    if (!is_power_of_two(alignment)) return failure(Error::invalid_argument);
    auto bumped = checked_add(value, alignment - 1);
    if (!bumped) return failure(bumped.error());
    return *bumped & ~(alignment - 1);
}

[[nodiscard]] constexpr u64 align_down(u64 value, u64 alignment) noexcept
{
    GPUMMU_ASSERT(is_power_of_two(alignment));
    return value & ~(alignment - 1);
}

[[nodiscard]] constexpr bool is_aligned(u64 value, u64 alignment) noexcept
{
    return (value & (alignment - 1)) == 0;
}

// ---- page sizes -----------------------------------------------------------------------

class PageSize {
public:
    // Only the shifts NVIDIA MMUs use; `from_shift` refuses anything else.
    static constexpr PageSize size_4k() noexcept { return PageSize{12}; }
    static constexpr PageSize size_64k() noexcept { return PageSize{16}; }
    static constexpr PageSize size_2m() noexcept { return PageSize{21}; }
    static constexpr PageSize size_512m() noexcept { return PageSize{29}; }
    static constexpr PageSize size_256g() noexcept { return PageSize{38}; }

    [[nodiscard]] static constexpr Result<PageSize> from_shift(unsigned shift) noexcept
    {
        switch (shift) {
        case 12:
        case 16:
        case 21:
        case 29:
        case 38: return PageSize{static_cast<u8>(shift)};
        default: return failure(Error::page_size_not_supported);
        }
    }
    [[nodiscard]] static constexpr Result<PageSize> from_bytes(u64 bytes) noexcept
    {
        if (!is_power_of_two(bytes)) return failure(Error::page_size_not_supported);
        return from_shift(static_cast<unsigned>(std::countr_zero(bytes)));
    }

    [[nodiscard]] constexpr unsigned shift() const noexcept { return shift_; }
    [[nodiscard]] constexpr u64 bytes() const noexcept { return u64{1} << shift_; }
    [[nodiscard]] constexpr u64 offset_mask() const noexcept { return bytes() - 1; }
    constexpr auto operator<=>(const PageSize &) const noexcept = default;

private:
    constexpr explicit PageSize(u8 shift) noexcept : shift_(shift) {}
    u8 shift_;
};

// A set of page sizes, stored as a bit per shift.
class PageSizeSet {
public:
    constexpr PageSizeSet() noexcept = default;
    constexpr PageSizeSet(std::initializer_list<PageSize> sizes) noexcept
    {
        for (PageSize size : sizes) bits_ |= u64{1} << size.shift();
    }
    [[nodiscard]] constexpr bool contains(PageSize size) const noexcept
    {
        return (bits_ >> size.shift()) & 1u;
    }
    [[nodiscard]] constexpr PageSizeSet with(PageSize size) const noexcept
    {
        PageSizeSet copy = *this;
        copy.bits_ |= u64{1} << size.shift();
        return copy;
    }
    [[nodiscard]] constexpr bool empty() const noexcept { return bits_ == 0; }
    [[nodiscard]] constexpr unsigned count() const noexcept { return count_ones(bits_); }
    [[nodiscard]] constexpr u64 bits() const noexcept { return bits_; }
    constexpr bool operator==(const PageSizeSet &) const noexcept = default;

private:
    u64 bits_ = 0;
};

// ---- addresses ------------------------------------------------------------------------

namespace detail {

// One template, distinct types by tag: VramAddress and VirtualAddress do not mix.
template <class Tag>
class Address {
public:
    constexpr Address() noexcept = default;
    constexpr explicit Address(u64 value) noexcept : value_(value) {}

    [[nodiscard]] constexpr u64 value() const noexcept { return value_; }
    [[nodiscard]] constexpr bool is_aligned_to(u64 alignment) const noexcept
    {
        return is_aligned(value_, alignment);
    }
    [[nodiscard]] constexpr bool is_aligned_to(PageSize size) const noexcept
    {
        return is_aligned(value_, size.bytes());
    }
    [[nodiscard]] constexpr Result<Address> checked_offset(u64 bytes) const noexcept
    {
        auto sum = checked_add(value_, bytes);
        if (!sum) return failure(sum.error());
        return Address{*sum};
    }
    // Offsetting without a check: for loops whose bounds were checked up front.
    [[nodiscard]] constexpr Address operator+(u64 bytes) const noexcept
    {
        return Address{value_ + bytes};
    }
    [[nodiscard]] constexpr u64 operator-(Address other) const noexcept
    {
        return value_ - other.value_;
    }
    constexpr auto operator<=>(const Address &) const noexcept = default;

private:
    u64 value_ = 0;
};

struct VramTag {};
struct PhysicalTag {};
struct VirtualTag {};

}  // namespace detail

using VramAddress = detail::Address<detail::VramTag>;
using PhysicalAddress = detail::Address<detail::PhysicalTag>;
using VirtualAddress = detail::Address<detail::VirtualTag>;

[[nodiscard]] constexpr PhysicalAddress physical(VramAddress address) noexcept
{
    return PhysicalAddress{address.value()};
}

inline constexpr unsigned frame_shift = 12;  // PFN / VFN unit: 4 KiB

template <class Tag, class AddressType>
class FrameNumber {
public:
    constexpr FrameNumber() noexcept = default;
    constexpr explicit FrameNumber(u64 value) noexcept : value_(value) {}
    // The frame that holds `address` (the offset inside the frame is dropped).
    [[nodiscard]] static constexpr FrameNumber containing(AddressType address) noexcept
    {
        return FrameNumber{address.value() >> frame_shift};
    }
    [[nodiscard]] constexpr u64 value() const noexcept { return value_; }
    [[nodiscard]] constexpr AddressType address() const noexcept
    {
        return AddressType{value_ << frame_shift};
    }
    constexpr auto operator<=>(const FrameNumber &) const noexcept = default;

private:
    u64 value_ = 0;
};

struct PfnTag {};
struct VfnTag {};
using Pfn = FrameNumber<PfnTag, PhysicalAddress>;
using Vfn = FrameNumber<VfnTag, VirtualAddress>;

// ---- apertures ------------------------------------------------------------------------

enum class Aperture : u8 {
    invalid,             // no next level (PDE) / never a PTE aperture
    video,               // local VRAM
    peer,                // another GPU's VRAM over NVLink or PCIe (PTE only)
    system_coherent,     // system memory, snooped
    system_noncoherent,  // system memory, not snooped
};

[[nodiscard]] constexpr const char *aperture_name(Aperture aperture) noexcept
{
    switch (aperture) {
    case Aperture::invalid: return "invalid";
    case Aperture::video: return "vram";
    case Aperture::peer: return "peer";
    case Aperture::system_coherent: return "sys_coherent";
    case Aperture::system_noncoherent: return "sys_noncoherent";
    }
    return "unknown";
}

[[nodiscard]] constexpr bool is_system_memory(Aperture aperture) noexcept
{
    return aperture == Aperture::system_coherent || aperture == Aperture::system_noncoherent;
}

// ---- ranges ---------------------------------------------------------------------------

template <class A>
class AddressRange {
public:
    constexpr AddressRange() noexcept = default;

    [[nodiscard]] static constexpr Result<AddressRange> from_bounds(A begin, A end) noexcept
    {
        if (end < begin) return failure(Error::invalid_argument);
        return AddressRange{begin, end};
    }
    [[nodiscard]] static constexpr Result<AddressRange> from_size(A begin, u64 size) noexcept
    {
        auto end = checked_add(begin.value(), size);
        if (!end) return failure(end.error());
        return AddressRange{begin, A{*end}};
    }

    [[nodiscard]] constexpr A begin() const noexcept { return begin_; }
    [[nodiscard]] constexpr A end() const noexcept { return end_; }
    [[nodiscard]] constexpr u64 size() const noexcept { return end_ - begin_; }
    [[nodiscard]] constexpr bool empty() const noexcept { return begin_ == end_; }
    [[nodiscard]] constexpr bool contains(A address) const noexcept
    {
        return begin_ <= address && address < end_;
    }
    [[nodiscard]] constexpr bool contains(const AddressRange &other) const noexcept
    {
        return begin_ <= other.begin_ && other.end_ <= end_;
    }
    [[nodiscard]] constexpr bool overlaps(const AddressRange &other) const noexcept
    {
        return begin_ < other.end_ && other.begin_ < end_;
    }
    constexpr bool operator==(const AddressRange &) const noexcept = default;

private:
    constexpr AddressRange(A begin, A end) noexcept : begin_(begin), end_(end) {}
    A begin_{};
    A end_{};
};

using VramRange = AddressRange<VramAddress>;
using VirtualRange = AddressRange<VirtualAddress>;

// A run of physical memory backing part of a mapping; the runs are consumed in VA order.
struct PhysicalSegment {
    PhysicalAddress address{};
    u64 size = 0;
};

}  // namespace gpummu
