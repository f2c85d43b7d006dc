// gpummu/hw/chip.hpp: which GPU is this, and where are its MMU registers.
//
// What it does
//   - Decodes NV_PMC_BOOT_0 (BAR0 0x0) and NV_PMC_BOOT_42 (BAR0 0xA00) into architecture,
//     implementation and revision. BOOT_42 is preferred (NVIDIA's driver matches chips by it);
//     BOOT_0 is used only when BOOT_42 reads 0.
//
//       BOOT_0:  28:24 ARCHITECTURE_0  8 ARCHITECTURE_1 (bit 5 of the code)  23:20 IMPLEMENTATION
//                7:4 MAJOR_REVISION  3:0 MINOR_REVISION
//       BOOT_42: 29:24 ARCHITECTURE  23:20 IMPLEMENTATION  19:16 MAJOR_REVISION
//                15:12 MINOR_REVISION  11:8 MINOR_EXTENDED_REVISION
//
//   - `ChipRecord`: per architecture, as constant data: MMU version and page sizes (from
//     format/mmu_version.hpp), the PRAMIN window register (offset, BASE field width, whether
//     a TARGET field exists) and the TLB invalidate registers. Integrated Blackwell parts
//     (implementations 0xB/0xC) have a wider window BASE field; that is data too.
//
//       arch        window register        BASE bits  reach     TARGET
//       Turing      0x001700 (PBUS)        23:0       1 TiB     25:24
//       Ampere      0x001700               23:0       1 TiB     25:24
//       Ada         0x001700               23:0       1 TiB     25:24
//       Hopper      0x10FD40 (XAL)         21:0       256 GiB   none (always VRAM)
//       GB10x/GB20x 0x10FD40               22:0       512 GiB   none
//       integrated  0x10FD40               24:0       2 TiB     none
//
// What it does not do
//   - It reads no register: callers pass the two words (hw/gpu_mm.hpp reads them).
//   - Unknown architectures (Volta and older, or newer than this table) are Error::unknown_chip.
#pragma once

#include <array>

#include "gpummu/core/bitfield.hpp"
#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/format/mmu_version.hpp"

namespace gpummu {

namespace boot_registers {
inline constexpr u32 boot_0 = 0x000000;
inline constexpr u32 boot_42 = 0x000A00;
namespace boot0 {
inline constexpr BitField minor_revision = bits(3, 0);
inline constexpr BitField major_revision = bits(7, 4);
inline constexpr BitField architecture_high = bit(8);
inline constexpr BitField implementation = bits(23, 20);
inline constexpr BitField architecture_low = bits(28, 24);
}  // namespace boot0
namespace boot42 {
inline constexpr BitField minor_extended_revision = bits(11, 8);
inline constexpr BitField minor_revision = bits(15, 12);
inline constexpr BitField major_revision = bits(19, 16);
inline constexpr BitField implementation = bits(23, 20);
inline constexpr BitField architecture = bits(29, 24);
}  // namespace boot42
}  // namespace boot_registers

struct ChipId {
    u8 architecture_code = 0;  // 0x16 Turing ... 0x1B Blackwell GB20x
    u8 implementation = 0;     // GA102: 2
    u8 major_revision = 0;     // 0xA = A
    u8 minor_revision = 0;
    bool from_boot42 = true;
    [[nodiscard]] constexpr u16 chip_id() const noexcept
    {
        return static_cast<u16>((architecture_code << 4) | implementation);
    }
    constexpr bool operator==(const ChipId &) const noexcept = default;
};

[[nodiscard]] constexpr ChipId decode_boot0(u32 boot0) noexcept
{
    using namespace boot_registers::boot0;
    ChipId id;
    id.architecture_code =
        static_cast<u8>(architecture_low.get(boot0) | (architecture_high.get(boot0) << 5));
    id.implementation = static_cast<u8>(implementation.get(boot0));
    id.major_revision = static_cast<u8>(major_revision.get(boot0));
    id.minor_revision = static_cast<u8>(minor_revision.get(boot0));
    id.from_boot42 = false;
    return id;
}

[[nodiscard]] constexpr ChipId decode_boot42(u32 boot42) noexcept
{
    using namespace boot_registers::boot42;
    ChipId id;
    id.architecture_code = static_cast<u8>(architecture.get(boot42));
    id.implementation = static_cast<u8>(implementation.get(boot42));
    id.major_revision = static_cast<u8>(major_revision.get(boot42));
    id.minor_revision = static_cast<u8>(minor_revision.get(boot42));
    id.from_boot42 = true;
    return id;
}

// BOOT_42 when it is set, BOOT_0 otherwise.
[[nodiscard]] constexpr ChipId decode_boot(u32 boot0, u32 boot42) noexcept
{
    return boot42 != 0 ? decode_boot42(boot42) : decode_boot0(boot0);
}

// The PRAMIN window's base register: BAR0 0x700000..0x7FFFFF shows VRAM from BASE << 16.
struct WindowRegister {
    u32 offset = 0;
    u8 base_bits = 0;         // BASE is bits (base_bits - 1):0
    u8 base_shift = 16;       // BASE counts 64 KiB units
    bool has_target = false;  // TARGET 25:24 (0 = VRAM) exists before Hopper
    u8 target_low = 24;
    [[nodiscard]] constexpr u64 reach() const noexcept
    {
        return u64{1} << (base_bits + base_shift);
    }
};

struct InvalidateRegisters {
    u32 pdb = 0xB830A0;        // 31:4 PDB >> 12 (bits 39:12), 1 APERTURE (1 = system memory)
    u32 upper_pdb = 0xB830A4;  // 19:0 PDB bits 59:40
    u32 control = 0xB830B0;    // ALL_VA 0, ALL_PDB 1, HUBTLB_ONLY 2, SYS_MEMBAR 6,
                               // ACK 8:7 (1 = globally), CACHE_LEVEL 26:24, TRIGGER 31
};

inline constexpr u32 pramin_offset = 0x700000;
inline constexpr u64 pramin_bytes = 1u << 20;

struct ChipRecord {
    Architecture architecture;
    const char *name;
    u8 architecture_code;
    MmuVersion mmu_version;
    PageSizeSet page_sizes;
    WindowRegister window;
    InvalidateRegisters invalidate;
};

namespace detail {
inline constexpr WindowRegister pbus_window{0x001700, 24, 16, true, 24};
inline constexpr WindowRegister xal_window(u8 bits_) noexcept
{
    return WindowRegister{0x10FD40, bits_, 16, false, 24};
}
constexpr ChipRecord chip_record_for(Architecture architecture, WindowRegister window) noexcept
{
    const ArchitectureRecord &base = architecture_record(architecture);
    return ChipRecord{architecture,    base.name, base.boot42_code,     base.mmu_version,
                      base.page_sizes, window,    InvalidateRegisters{}};
}
}  // namespace detail

inline constexpr std::array<ChipRecord, 6> chip_records{{
    detail::chip_record_for(Architecture::turing, detail::pbus_window),
    detail::chip_record_for(Architecture::ampere, detail::pbus_window),
    detail::chip_record_for(Architecture::ada, detail::pbus_window),
    detail::chip_record_for(Architecture::hopper, detail::xal_window(22)),
    detail::chip_record_for(Architecture::blackwell_gb10x, detail::xal_window(23)),
    detail::chip_record_for(Architecture::blackwell_gb20x, detail::xal_window(23)),
}};

// Integrated Blackwell parts (GB10B, GB20B, GB20C) have a 25-bit window BASE.
struct WindowOverride {
    u8 architecture_code;
    u8 implementation;
    u8 base_bits;
};
inline constexpr std::array<WindowOverride, 3> window_overrides{{
    {0x1A, 0xB, 25},
    {0x1B, 0xB, 25},
    {0x1B, 0xC, 25},
}};

// A register value that no live GPU returns: all-ones (a read of a device that fell off the
// bus, or of an unpowered device through vfio) or a poison pattern (0xBADFxxxx from a
// register that did not answer, 0xBAD0ACxx from an access the GPU refused).
[[nodiscard]] constexpr bool is_dead_register_value(u32 value) noexcept
{
    return value == 0xFFFF'FFFFu || (value & 0xFFFF'0000u) == 0xBADF'0000u ||
           (value & 0xFFFF'FF00u) == 0xBAD0'AC00u;
}

// The record for BOOT_0 / BOOT_42 as read: device_lost for dead values, unknown_chip for
// an architecture no record describes.
[[nodiscard]] constexpr Result<ChipId> identify_chip(u32 boot0, u32 boot42) noexcept
{
    if (is_dead_register_value(boot0) || is_dead_register_value(boot42))
        return failure(Error::device_lost);
    return decode_boot(boot0, boot42);
}

// The record for a decoded chip, with implementation-specific data applied.
[[nodiscard]] constexpr Result<ChipRecord> chip_record(const ChipId &id) noexcept
{
    for (const ChipRecord &record : chip_records) {
        if (record.architecture_code != id.architecture_code) continue;
        ChipRecord out = record;
        for (const WindowOverride &exception : window_overrides)
            if (exception.architecture_code == id.architecture_code &&
                exception.implementation == id.implementation)
                out.window.base_bits = exception.base_bits;
        return out;
    }
    return failure(Error::unknown_chip);
}

// ---- proofs beside the tables ----------------------------------------------------------
static_assert(detail::pbus_window.reach() == u64{1} << 40);
static_assert(detail::xal_window(22).reach() == u64{1} << 38);
static_assert(detail::xal_window(23).reach() == u64{1} << 39);
static_assert(decode_boot42(0x17200000u).chip_id() == 0x172);  // GA102
static_assert(identify_chip(0xFFFF'FFFFu, 0xFFFF'FFFFu).error() == Error::device_lost);
static_assert(identify_chip(0x0, 0xBADF'1100u).error() == Error::device_lost);
static_assert(identify_chip(0x0, 0x17200000u).has_value());
static_assert(decode_boot0(0x180000A1u).chip_id() == 0x180);         // GH100 through BOOT_0
static_assert(decode_boot0(0x0B2001A1u).architecture_code == 0x2B);  // ARCHITECTURE_1 is bit 5
static_assert(chip_record(decode_boot42(0x18000000u))->mmu_version == MmuVersion::v3);
static_assert(chip_record(decode_boot42(0x1AB00000u))->window.base_bits == 25);
static_assert(chip_record(decode_boot42(0x15000000u)).error() == Error::unknown_chip);
static_assert([] {
    for (const ChipRecord &record : chip_records)
        if (record.mmu_version != architecture_record(record.architecture).mmu_version)
            return false;
    return true;
}());

}  // namespace gpummu
