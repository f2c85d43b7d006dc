// gpummu/format/mmu_v3.hpp: NVIDIA MMU "ver3" page-table format (Hopper, Blackwell).
//
// Levels (57-bit VA; Hopper dev_mmu.h, NVIDIA's GH10X/GB10X format records):
//
//     VA bit  56      55:47    46:38    37:29    28:21        20:12 (4 KiB) or 20:16 (64 KiB)
//             PD4 --> PD3 ---> PD2 ---> PD1 ---> PD0 (dual) --> small PT (512 x 8 B)
//             2 x 8B  512x8B   512x8B   512x8B   256 x 16 B  \-> big PT   (32 x 8 B = 256 B)
//                              |        |        |
//                              |        |        +-- bit 0 set: low qword = 2 MiB PTE
//                              |        +----------- bit 0 set: 512 MiB PTE
//                              +-------------------- bit 0 set: 256 GiB PTE (Blackwell only)
//
// PTE (8 bytes)                        PDE (8 bytes; PD4..PD1)
//   0      VALID                         0      IS_PTE
//   2:1    APERTURE (PTE codes)          2:1    APERTURE (PDE codes; 0 = invalid)
//   7:3    PCF, see PtePcf               5:3    PCF, see PdePcf
//   11:8   KIND                          51:12  address (in place, shift 12)
//   51:12  address (in place, shift 12)
//   63:61  peer id                     Dual PDE (16 bytes; PD0): low qword = big-page table
//                                      (aperture 2:1, PCF 5:3, address 51:8 with shift 8),
//                                      high qword = small-page table (aperture 66:65,
//                                      PCF 69:67, address 115:76 with shift 12).
//
// PCF follows NVIDIA's enumeration (Hopper dev_mmu.h): PTE PCF bit 0 uncached, bit 1
// PRIVILEGE, bit 2 read-only, bit 3 no-atomic, bit 4 ACD (access counting disabled). The
// nova-core series names bits 1 and 4 the other way round; gpummu follows NVIDIA.
//
// What it does
//   - Constexpr encoders that validate every field and return an Error; decoders that
//     accept any word. Special encodings: invalid 0, sparse 0x8 (PCF 1), mapping-nowhere
//     0x10 (PCF 2), big-PTE "no valid 4 KiB PTE below" 0x18 (PCF 3).
//
// What it does not do
//   - It does not know levels or chips (see mmu_v2.hpp, same split).
#pragma once

#include <array>

#include "gpummu/core/bitfield.hpp"
#include "gpummu/format/aperture_codes.hpp"
#include "gpummu/format/format_concepts.hpp"

namespace gpummu::mmu_v3 {

namespace pte_bits {
inline constexpr BitField valid = bit(0);
inline constexpr BitField aperture = bits(2, 1);
inline constexpr BitField pcf = bits(7, 3);
inline constexpr BitField kind = bits(11, 8);
inline constexpr AddressField address{bits(51, 12), 12};
inline constexpr BitField peer = bits(63, 61);
inline constexpr std::array all{valid, aperture, pcf, kind, address.field, peer};
}  // namespace pte_bits

namespace pde_bits {
inline constexpr BitField is_pte = bit(0);
inline constexpr BitField aperture = bits(2, 1);
inline constexpr BitField pcf = bits(5, 3);
inline constexpr AddressField address{bits(51, 12), 12};
inline constexpr std::array all{is_pte, aperture, pcf, address.field};
}  // namespace pde_bits

namespace dual_pde_bits {
inline constexpr BitField is_pte = bit(0);
inline constexpr BitField big_aperture = bits(2, 1);
inline constexpr BitField big_pcf = bits(5, 3);
inline constexpr AddressField big_address{bits(51, 8), 8};
inline constexpr BitField small_aperture = bits(66, 65);
inline constexpr BitField small_pcf = bits(69, 67);
inline constexpr AddressField small_address{bits(115, 76), 12};
inline constexpr std::array all{
    is_pte,    big_aperture,       big_pcf, big_address.field, small_aperture,
    small_pcf, small_address.field};
}  // namespace dual_pde_bits

static_assert(fields_are_disjoint(pte_bits::all) && fields_fit(pte_bits::all, 8));
static_assert(fields_are_disjoint(pde_bits::all) && fields_fit(pde_bits::all, 8));
static_assert(fields_are_disjoint(dual_pde_bits::all) && fields_fit(dual_pde_bits::all, 16));
// v3 stores addresses in place: the field's low bit equals its shift.
static_assert(pte_bits::address.field.low == pte_bits::address.shift);
static_assert(dual_pde_bits::small_address.field.low == dual_pde_bits::small_address.shift);
static_assert(dual_pde_bits::big_address.field.low == dual_pde_bits::big_address.shift);
static_assert(pte_bits::address.limit() == u64{1} << 52);

// ---- PCF ------------------------------------------------------------------------------

// The 5-bit PTE PCF. With VALID=1 its bits are independent flags; with VALID=0 the values
// 0..3 name the invalid states and 4..31 are undefined.
class PtePcf {
public:
    static constexpr u8 uncached_bit = 1u << 0;
    static constexpr u8 privilege_bit = 1u << 1;
    static constexpr u8 read_only_bit = 1u << 2;
    static constexpr u8 no_atomic_bit = 1u << 3;
    static constexpr u8 access_counting_disabled_bit = 1u << 4;

    static constexpr u8 invalid_state = 0;
    static constexpr u8 sparse_state = 1;
    static constexpr u8 mapping_nowhere_state = 2;
    static constexpr u8 no_valid_4k_state = 3;

    constexpr PtePcf() noexcept = default;
    [[nodiscard]] static constexpr Result<PtePcf> from_value(u64 value) noexcept
    {
        if (!pte_bits::pcf.fits(value)) return failure(Error::field_overflow);
        return PtePcf{static_cast<u8>(value)};
    }
    [[nodiscard]] static constexpr PtePcf from_flags(bool uncached, bool privileged, bool read_only,
                                                     bool no_atomic,
                                                     bool access_counting_disabled) noexcept
    {
        return PtePcf{
            static_cast<u8>((uncached ? uncached_bit : 0) | (privileged ? privilege_bit : 0) |
                            (read_only ? read_only_bit : 0) | (no_atomic ? no_atomic_bit : 0) |
                            (access_counting_disabled ? access_counting_disabled_bit : 0))};
    }
    [[nodiscard]] constexpr u8 value() const noexcept { return value_; }
    [[nodiscard]] constexpr bool uncached() const noexcept { return value_ & uncached_bit; }
    [[nodiscard]] constexpr bool privileged() const noexcept { return value_ & privilege_bit; }
    [[nodiscard]] constexpr bool read_only() const noexcept { return value_ & read_only_bit; }
    [[nodiscard]] constexpr bool no_atomic() const noexcept { return value_ & no_atomic_bit; }
    [[nodiscard]] constexpr bool access_counting_disabled() const noexcept
    {
        return value_ & access_counting_disabled_bit;
    }
    constexpr auto operator<=>(const PtePcf &) const noexcept = default;

private:
    constexpr explicit PtePcf(u8 value) noexcept : value_(value) {}
    u8 value_ = 0;
};

// The 3-bit PDE PCF: bit 0 uncached (pointer valid) or sparse (aperture invalid), bit 1
// ATS not allowed. Bit 2 has no defined meaning, so values above 3 are refused.
class PdePcf {
public:
    static constexpr u8 uncached_or_sparse_bit = 1u << 0;
    static constexpr u8 ats_not_allowed_bit = 1u << 1;
    static constexpr u8 defined_values = 4;

    constexpr PdePcf() noexcept = default;
    [[nodiscard]] static constexpr Result<PdePcf> from_value(u64 value) noexcept
    {
        if (value >= defined_values) return failure(Error::invalid_argument);
        return PdePcf{static_cast<u8>(value)};
    }
    [[nodiscard]] static constexpr PdePcf from_flags(bool uncached_or_sparse,
                                                     bool ats_not_allowed) noexcept
    {
        return PdePcf{static_cast<u8>((uncached_or_sparse ? uncached_or_sparse_bit : 0) |
                                      (ats_not_allowed ? ats_not_allowed_bit : 0))};
    }
    // Decoding keeps whatever the word holds, defined or not.
    [[nodiscard]] static constexpr PdePcf from_raw_bits(u64 value) noexcept
    {
        return PdePcf{static_cast<u8>(value & 7u)};
    }
    [[nodiscard]] constexpr u8 value() const noexcept { return value_; }
    [[nodiscard]] constexpr bool uncached_or_sparse() const noexcept
    {
        return value_ & uncached_or_sparse_bit;
    }
    [[nodiscard]] constexpr bool ats_not_allowed() const noexcept
    {
        return value_ & ats_not_allowed_bit;
    }
    constexpr auto operator<=>(const PdePcf &) const noexcept = default;

private:
    constexpr explicit PdePcf(u8 value) noexcept : value_(value) {}
    u8 value_ = 0;
};

// ---- PTE ------------------------------------------------------------------------------

struct PteFields {
    bool valid = false;
    Aperture aperture = Aperture::video;
    PtePcf pcf{};
    u8 kind = 0;
    PhysicalAddress address{};
    u8 peer = 0;
    constexpr bool operator==(const PteFields &) const noexcept = default;
};

class Pte {
public:
    constexpr Pte() noexcept = default;
    [[nodiscard]] static constexpr Pte from_raw(u64 raw) noexcept { return Pte{raw}; }
    [[nodiscard]] constexpr u64 raw() const noexcept { return raw_; }

    [[nodiscard]] static constexpr Pte invalid() noexcept { return Pte{0}; }
    [[nodiscard]] static constexpr Pte sparse() noexcept
    {
        return invalid_with(PtePcf::sparse_state);
    }
    [[nodiscard]] static constexpr Pte no_valid_4k() noexcept
    {
        return invalid_with(PtePcf::no_valid_4k_state);
    }
    [[nodiscard]] static constexpr Pte mapping_nowhere() noexcept
    {
        return invalid_with(PtePcf::mapping_nowhere_state);
    }

    [[nodiscard]] static constexpr Result<Pte> from_fields(const PteFields &fields) noexcept
    {
        using namespace pte_bits;
        auto code = aperture_codes::pte_code(fields.aperture);
        if (!code) return failure(code.error());
        if (!kind.fits(fields.kind) || !peer.fits(fields.peer))
            return failure(Error::field_overflow);
        // With VALID=0 only PCF 0..3 mean anything.
        if (!fields.valid && fields.pcf.value() > PtePcf::no_valid_4k_state)
            return failure(Error::invalid_argument);
        u64 raw = valid.insert_flag(0, fields.valid);
        raw = aperture.insert(raw, *code);
        raw = pcf.insert(raw, fields.pcf.value());
        raw = kind.insert(raw, fields.kind);
        raw = peer.insert(raw, fields.peer);
        auto with_address = address.encode(raw, fields.address.value());
        if (!with_address) return failure(with_address.error());
        return Pte{*with_address};
    }

    [[nodiscard]] constexpr PteFields fields() const noexcept
    {
        using namespace pte_bits;
        PteFields out;
        out.valid = valid.get_flag(raw_);
        out.aperture = aperture_codes::pte_aperture(aperture.get(raw_));
        out.pcf = PtePcf::from_value(pcf.get(raw_)).value();  // 5 bits always fit
        out.kind = static_cast<u8>(kind.get(raw_));
        out.address = PhysicalAddress{address.decode(raw_)};
        out.peer = static_cast<u8>(peer.get(raw_));
        return out;
    }

    // Bits 60:52 are not defined by the manual.
    [[nodiscard]] constexpr u64 undefined_bits() const noexcept
    {
        return raw_ & ~fields_mask(pte_bits::all, 0);
    }

    [[nodiscard]] constexpr PteState state() const noexcept
    {
        if (pte_bits::valid.get_flag(raw_)) return PteState::valid;
        switch (pte_bits::pcf.get(raw_)) {
        case PtePcf::sparse_state: return PteState::sparse;
        case PtePcf::mapping_nowhere_state: return PteState::mapping_nowhere;
        case PtePcf::no_valid_4k_state: return PteState::no_valid_4k;
        default: return PteState::invalid;
        }
    }

    [[nodiscard]] static constexpr Result<Pte> map(const PageAttributes &attributes) noexcept
    {
        if (attributes.peer != 0 && attributes.aperture != Aperture::peer)
            return failure(Error::conflicting_fields);
        PteFields fields;
        fields.valid = true;
        fields.aperture = attributes.aperture;
        fields.pcf =
            PtePcf::from_flags(attributes.uncached, attributes.privileged, attributes.read_only,
                               attributes.atomics_disabled, attributes.access_counting_disabled);
        fields.kind = attributes.kind;
        fields.address = attributes.address;
        fields.peer = attributes.peer;
        return from_fields(fields);
    }

    [[nodiscard]] constexpr PageAttributes attributes() const noexcept
    {
        PteFields fields = this->fields();
        PageAttributes out;
        out.aperture = fields.aperture;
        out.address = fields.address;
        out.read_only = fields.pcf.read_only();
        out.privileged = fields.pcf.privileged();
        out.atomics_disabled = fields.pcf.no_atomic();
        out.uncached = fields.pcf.uncached();
        out.access_counting_disabled = fields.pcf.access_counting_disabled();
        out.kind = fields.kind;
        out.peer = fields.aperture == Aperture::peer ? fields.peer : u8{0};
        return out;
    }

    constexpr bool operator==(const Pte &) const noexcept = default;

private:
    constexpr explicit Pte(u64 raw) noexcept : raw_(raw) {}
    [[nodiscard]] static constexpr Pte invalid_with(u8 pcf_state) noexcept
    {
        return Pte{pte_bits::pcf.insert(0, pcf_state)};
    }
    u64 raw_ = 0;
};

// ---- PDE ------------------------------------------------------------------------------

struct PdeFields {
    Aperture aperture = Aperture::invalid;
    PdePcf pcf{};
    PhysicalAddress address{};
    constexpr bool operator==(const PdeFields &) const noexcept = default;
};

namespace detail {

[[nodiscard]] constexpr Result<u64> encode_pointer(u64 raw, const PdeFields &fields,
                                                   BitField aperture, BitField pcf,
                                                   const AddressField &address) noexcept
{
    auto code = aperture_codes::pde_code(fields.aperture);
    if (!code) return failure(code.error());
    if (fields.pcf.value() >= PdePcf::defined_values) return failure(Error::invalid_argument);
    raw = aperture.insert(raw, *code);
    raw = pcf.insert(raw, fields.pcf.value());
    if (fields.aperture == Aperture::invalid) {
        if (fields.address.value() != 0) return failure(Error::conflicting_fields);
        return raw;
    }
    return address.encode(raw, fields.address.value());
}

[[nodiscard]] constexpr PdeFields decode_pointer(u64 raw, BitField aperture, BitField pcf,
                                                 const AddressField &address) noexcept
{
    PdeFields out;
    out.aperture = aperture_codes::pde_aperture(aperture.get(raw));
    out.pcf = PdePcf::from_raw_bits(pcf.get(raw));
    if (out.aperture != Aperture::invalid) out.address = PhysicalAddress{address.decode(raw)};
    return out;
}

[[nodiscard]] constexpr PdeState pointer_state(const PdeFields &fields) noexcept
{
    if (fields.aperture != Aperture::invalid) return PdeState::valid;
    return fields.pcf.uncached_or_sparse() ? PdeState::sparse : PdeState::invalid;
}

// nouveau's choices: VRAM tables cached with ATS not allowed; coherent system memory
// uncached with ATS allowed; non-coherent system memory cached with ATS allowed.
[[nodiscard]] constexpr PdeFields pointer_fields(const TablePointer &pointer) noexcept
{
    PdeFields fields;
    fields.aperture = pointer.aperture;
    fields.address = pointer.address;
    if (pointer.aperture == Aperture::video)
        fields.pcf = PdePcf::from_flags(false, true);
    else if (pointer.aperture == Aperture::system_coherent)
        fields.pcf = PdePcf::from_flags(true, false);
    return fields;
}

}  // namespace detail

class Pde {
public:
    constexpr Pde() noexcept = default;
    [[nodiscard]] static constexpr Pde from_raw(u64 raw) noexcept { return Pde{raw}; }
    [[nodiscard]] constexpr u64 raw() const noexcept { return raw_; }

    [[nodiscard]] static constexpr Pde invalid() noexcept { return Pde{0}; }
    [[nodiscard]] static constexpr Pde sparse() noexcept
    {
        return Pde{pde_bits::pcf.insert(0, PdePcf::uncached_or_sparse_bit)};
    }

    [[nodiscard]] static constexpr Result<Pde> from_fields(const PdeFields &fields) noexcept
    {
        auto encoded =
            detail::encode_pointer(0, fields, pde_bits::aperture, pde_bits::pcf, pde_bits::address);
        if (!encoded) return failure(encoded.error());
        return Pde{*encoded};
    }
    [[nodiscard]] static constexpr Result<Pde> point_to(const TablePointer &pointer) noexcept
    {
        if (pointer.aperture == Aperture::invalid) return failure(Error::invalid_aperture);
        return from_fields(detail::pointer_fields(pointer));
    }
    [[nodiscard]] constexpr PdeFields fields() const noexcept
    {
        return detail::decode_pointer(raw_, pde_bits::aperture, pde_bits::pcf, pde_bits::address);
    }
    [[nodiscard]] constexpr bool is_pte() const noexcept { return pde_bits::is_pte.get_flag(raw_); }
    [[nodiscard]] constexpr Pte as_pte() const noexcept { return Pte::from_raw(raw_); }
    [[nodiscard]] constexpr PdeState state() const noexcept
    {
        return detail::pointer_state(fields());
    }
    [[nodiscard]] constexpr TablePointer pointer() const noexcept
    {
        PdeFields decoded = fields();
        return TablePointer{decoded.aperture, decoded.address};
    }
    // Bits the decoder drops: 63:52, and the address under an invalid aperture.
    [[nodiscard]] constexpr u64 undefined_bits() const noexcept
    {
        using namespace pde_bits;
        u64 known = pde_bits::is_pte.mask() | aperture.mask() | pcf.mask();
        if (aperture.get(raw_) != 0) known |= address.field.mask();
        return raw_ & ~known;
    }
    constexpr bool operator==(const Pde &) const noexcept = default;

private:
    constexpr explicit Pde(u64 raw) noexcept : raw_(raw) {}
    u64 raw_ = 0;
};

// ---- dual PDE -------------------------------------------------------------------------

struct DualPdeFields {
    PdeFields big;    // 64 KiB page table, 256-byte aligned
    PdeFields small;  // 4 KiB page table, 4 KiB aligned
    constexpr bool operator==(const DualPdeFields &) const noexcept = default;
};

class DualPde {
public:
    constexpr DualPde() noexcept = default;
    [[nodiscard]] static constexpr DualPde from_raw(u64 low, u64 high) noexcept
    {
        return DualPde{low, high};
    }
    [[nodiscard]] constexpr u64 low() const noexcept { return low_; }
    [[nodiscard]] constexpr u64 high() const noexcept { return high_; }

    [[nodiscard]] static constexpr DualPde invalid() noexcept { return DualPde{0, 0}; }
    // RM and nouveau put the sparse PCF on the big half only.
    [[nodiscard]] static constexpr DualPde sparse() noexcept
    {
        return DualPde{dual_pde_bits::big_pcf.insert(0, PdePcf::uncached_or_sparse_bit), 0};
    }
    [[nodiscard]] static constexpr DualPde from_pte(Pte pte) noexcept
    {
        return DualPde{pte.raw(), 0};
    }

    [[nodiscard]] static constexpr Result<DualPde> from_fields(const DualPdeFields &fields) noexcept
    {
        using namespace dual_pde_bits;
        bool any_pointer =
            fields.big.aperture != Aperture::invalid || fields.small.aperture != Aperture::invalid;
        if (any_pointer && fields.big.aperture == Aperture::invalid &&
            fields.big.pcf.uncached_or_sparse())
            return failure(Error::conflicting_fields);
        auto low = detail::encode_pointer(0, fields.big, big_aperture, big_pcf, big_address);
        if (!low) return failure(low.error());
        auto high =
            detail::encode_pointer(0, fields.small, small_aperture, small_pcf, small_address);
        if (!high) return failure(high.error());
        return DualPde{*low, *high};
    }
    [[nodiscard]] static constexpr Result<DualPde> point_to(const TablePointer &big,
                                                            const TablePointer &small) noexcept
    {
        return from_fields(
            DualPdeFields{detail::pointer_fields(big), detail::pointer_fields(small)});
    }

    [[nodiscard]] constexpr DualPdeFields fields() const noexcept
    {
        using namespace dual_pde_bits;
        return DualPdeFields{
            detail::decode_pointer(low_, big_aperture, big_pcf, big_address),
            detail::decode_pointer(high_, small_aperture, small_pcf, small_address)};
    }
    [[nodiscard]] constexpr bool is_pte() const noexcept
    {
        return dual_pde_bits::is_pte.get_flag(low_);
    }
    [[nodiscard]] constexpr Pte as_pte() const noexcept { return Pte::from_raw(low_); }
    [[nodiscard]] constexpr PdeState state() const noexcept
    {
        DualPdeFields decoded = fields();
        if (decoded.big.aperture != Aperture::invalid ||
            decoded.small.aperture != Aperture::invalid)
            return PdeState::valid;
        return decoded.big.pcf.uncached_or_sparse() ? PdeState::sparse : PdeState::invalid;
    }
    [[nodiscard]] constexpr TablePointer big_pointer() const noexcept
    {
        DualPdeFields decoded = fields();
        return TablePointer{decoded.big.aperture, decoded.big.address};
    }
    [[nodiscard]] constexpr TablePointer small_pointer() const noexcept
    {
        DualPdeFields decoded = fields();
        return TablePointer{decoded.small.aperture, decoded.small.address};
    }
    // Bits (low word, high word) no field covers. A 2 MiB PTE (IS_PTE) is judged by
    // `as_pte().undefined_bits()` instead.
    [[nodiscard]] constexpr std::array<u64, 2> undefined_bits() const noexcept
    {
        return {low_ & ~fields_mask(dual_pde_bits::all, 0),
                high_ & ~fields_mask(dual_pde_bits::all, 1)};
    }
    constexpr bool operator==(const DualPde &) const noexcept = default;

private:
    constexpr DualPde(u64 low, u64 high) noexcept : low_(low), high_(high) {}
    u64 low_ = 0;
    u64 high_ = 0;
};

}  // namespace gpummu::mmu_v3

namespace gpummu {

struct MmuV3 {
    static constexpr MmuVersion version = MmuVersion::v3;
    static constexpr const char *name = "v3";
    static constexpr unsigned va_bits = 57;
    using Pte = mmu_v3::Pte;
    using Pde = mmu_v3::Pde;
    using DualPde = mmu_v3::DualPde;

    // PD2 may hold a 256 GiB PTE in the format; only Blackwell allows it (mmu_version.hpp).
    static constexpr std::array<LevelDescriptor, 6> levels{{
        {"PD4", 56, 56, 8, false, {}},
        {"PD3", 55, 47, 8, false, {}},
        {"PD2", 46, 38, 8, false, {PageSize::size_256g()}},
        {"PD1", 37, 29, 8, false, {PageSize::size_512m()}},
        {"PD0", 28, 21, 16, true, {PageSize::size_2m()}},
        {"PT", 20, 12, 8, false, {PageSize::size_4k()}},
    }};
    static constexpr LevelDescriptor big_page_table{"PT64K", 20,    16,
                                                    8,       false, {PageSize::size_64k()}};
};

static_assert(levels_tile_va(MmuV3::levels, MmuV3::va_bits));
static_assert(tables_are_4k(MmuV3::levels));
static_assert(pte_sizes_match_coverage(MmuV3::levels));
static_assert(dual_only_at_pd0(MmuV3::levels));
static_assert(MmuV3::levels[0].entry_count() == 2 && MmuV3::levels[0].table_bytes() == 16);
static_assert(MmuV3::big_page_table.table_bytes() == 256);
static_assert(MmuV3::big_page_table.va_high + 1u == MmuV3::levels[4].va_low);
// Golden encodings (Hopper dev_mmu.h, UVM, nouveau).
static_assert(MmuV3::Pte::invalid().raw() == 0);
static_assert(MmuV3::Pte::sparse().raw() == 0x8);
static_assert(MmuV3::Pte::mapping_nowhere().raw() == 0x10);
static_assert(MmuV3::Pte::no_valid_4k().raw() == 0x18);
static_assert(MmuV3::Pde::sparse().raw() == 0x8);
static_assert(MmuV3::DualPde::sparse().low() == 0x8 && MmuV3::DualPde::sparse().high() == 0);
// PCF bit 1 is PRIVILEGE and bit 4 is ACD (NVIDIA's enumeration, not nova-core's).
static_assert(mmu_v3::PtePcf::from_flags(false, true, false, false, false).value() == 0x02);
static_assert(mmu_v3::PtePcf::from_flags(false, false, false, false, true).value() == 0x10);
// Addresses are stored in place: VRAM 0x1000, valid, PCF 0 -> 0x1001.
static_assert(MmuV3::Pte::map({.address = PhysicalAddress{0x1000}})->raw() == 0x1001);
static_assert(MmuV3::Pte::map({.kind = 0x10}).error() == Error::field_overflow);

// Every dual PDE the encoders make has no undefined bit (the table walk refuses those).
static_assert(MmuV3::DualPde::sparse().undefined_bits() == std::array<u64, 2>{0, 0});
static_assert(MmuV3::DualPde::point_to({Aperture::video, PhysicalAddress{0x1'2300}},
                                       {Aperture::video, PhysicalAddress{0x45'6000}})
                  ->undefined_bits() == std::array<u64, 2>{0, 0});
static_assert(MmuV3::DualPde::point_to({}, {Aperture::system_coherent, PhysicalAddress{0x7000}})
                  ->undefined_bits() == std::array<u64, 2>{0, 0});
static_assert(MmuV3::DualPde::from_raw(u64{1} << 63, 0).undefined_bits()[0] == u64{1} << 63);

}  // namespace gpummu
