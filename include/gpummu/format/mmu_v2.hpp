// gpummu/format/mmu_v2.hpp: NVIDIA MMU "ver2" page-table format (Turing, Ampere, Ada).
//
// Levels (49-bit VA; Pascal GP100 MMU format, Turing dev_mmu.h):
//
//     VA bit  48:47   46:38   37:29   28:21        20:12 (4 KiB)  or  20:16 (64 KiB)
//             PD3 --> PD2 --> PD1 --> PD0 (dual) --> small PT (512 x 8 B)
//             4 x 8B  512x8B  512x8B  256 x 16 B  \-> big PT   (32 x 8 B = 256 B)
//                             |       |
//                             |       +-- bit 0 set: the low qword is a 2 MiB PTE
//                             +---------- bit 0 set: a 512 MiB PTE (Ampere/Ada only;
//                                         mmu_version.hpp says which chip allows it)
//
// PTE (8 bytes)                      PDE (8 bytes; PD3, PD2, PD1)
//   0      VALID                       0      IS_PTE (0 = directory entry)
//   2:1    APERTURE (PTE codes)        2:1    APERTURE (PDE codes; 0 = invalid)
//   3      VOL  (with VALID=0: sparse) 3      VOL (with aperture 0: sparse)
//   4      ENCRYPTED (write 0)         5      NO_ATS
//   5      PRIVILEGE (VALID=0: NV4K)   32:8   address >> 12 (video)
//   6      READ_ONLY                   53:8   address >> 12 (system)
//   7      ATOMIC_DISABLE
//   32:8   address >> 12 (video/peer)  Dual PDE (16 bytes; PD0): low qword = big-page
//   35:33  peer id                     table (aperture 2:1, VOL 3, NO_ATS 5, address >> 8
//   55:36  comptagline (video/peer)    at 32:4 / 53:4); high qword = small-page table
//   53:8   address >> 12 (system)      (aperture 66:65, VOL 67, address >> 12 at
//   63:56  kind                        96:72 / 117:72).
//
// What it does
//   - Constexpr encoders that validate every field (alignment, width, aperture rules) and
//     return an Error instead of writing a bad entry; decoders that accept any 64-bit word.
//   - The special encodings: invalid 0, sparse 0x8 (VALID=0, VOL=1), and the big-PTE
//     "no valid 4 KiB PTE below" 0x20 (VALID=0, PRIVILEGE=1, VOL=0 as UVM and nouveau use;
//     RM's GV100 template 0x28 decodes as sparse, since VOL decides first).
//
// What it does not do
//   - It does not know which level an entry sits at or whether the chip allows a page size
//     there: the page table and mmu_version.hpp decide that.
//   - Video addresses are limited to the 25-bit ADDRESS_VID field (128 GiB); the overloaded
//     high bits RM uses for NVSwitch peers are not supported and give Error::field_overflow.
#pragma once

#include <array>

#include "gpummu/core/bitfield.hpp"
#include "gpummu/format/aperture_codes.hpp"
#include "gpummu/format/format_concepts.hpp"

namespace gpummu::mmu_v2 {

// ---- field positions ------------------------------------------------------------------

namespace pte_bits {
inline constexpr BitField valid = bit(0);
inline constexpr BitField aperture = bits(2, 1);
inline constexpr BitField volatile_ = bit(3);
inline constexpr BitField encrypted = bit(4);
inline constexpr BitField privilege = bit(5);
inline constexpr BitField read_only = bit(6);
inline constexpr BitField atomic_disable = bit(7);
inline constexpr AddressField address_video{bits(32, 8), 12};
inline constexpr AddressField address_system{bits(53, 8), 12};
inline constexpr BitField peer = bits(35, 33);
inline constexpr BitField comptagline = bits(55, 36);
inline constexpr BitField kind = bits(63, 56);

// The two views of a PTE: with a video/peer aperture and with a system aperture.
inline constexpr std::array video_view{
    valid,     aperture,       volatile_,           encrypted, privilege,
    read_only, atomic_disable, address_video.field, peer,      comptagline,
    kind};
inline constexpr std::array system_view{valid,     aperture,  volatile_,      encrypted,
                                        privilege, read_only, atomic_disable, address_system.field,
                                        kind};
}  // namespace pte_bits

namespace pde_bits {
inline constexpr BitField is_pte = bit(0);
inline constexpr BitField aperture = bits(2, 1);
inline constexpr BitField volatile_ = bit(3);
inline constexpr BitField no_ats = bit(5);
inline constexpr AddressField address_video{bits(32, 8), 12};
inline constexpr AddressField address_system{bits(53, 8), 12};
inline constexpr std::array system_view{is_pte, aperture, volatile_, no_ats, address_system.field};
}  // namespace pde_bits

namespace dual_pde_bits {
inline constexpr BitField is_pte = bit(0);
inline constexpr BitField big_aperture = bits(2, 1);
inline constexpr BitField big_volatile = bit(3);
inline constexpr BitField no_ats = bit(5);
inline constexpr AddressField big_address_video{bits(32, 4), 8};
inline constexpr AddressField big_address_system{bits(53, 4), 8};
inline constexpr BitField small_aperture = bits(66, 65);
inline constexpr BitField small_volatile = bit(67);
inline constexpr AddressField small_address_video{bits(96, 72), 12};
inline constexpr AddressField small_address_system{bits(117, 72), 12};
// NVIDIA's header places NO_ATS (bit 5) inside ADDRESS_BIG (53:4): with a big-page table
// present, bit 5 is that table's address bit 9. So there are two views, and NO_ATS can be
// written only when the big half holds no pointer.
inline constexpr std::array system_view{is_pte,
                                        big_aperture,
                                        big_volatile,
                                        big_address_system.field,
                                        small_aperture,
                                        small_volatile,
                                        small_address_system.field};
inline constexpr std::array no_big_table_view{is_pte,
                                              big_aperture,
                                              big_volatile,
                                              no_ats,
                                              small_aperture,
                                              small_volatile,
                                              small_address_system.field};
}  // namespace dual_pde_bits

static_assert(fields_are_disjoint(pte_bits::video_view) && fields_fit(pte_bits::video_view, 8));
static_assert(fields_are_disjoint(pte_bits::system_view) && fields_fit(pte_bits::system_view, 8));
static_assert(fields_are_disjoint(pde_bits::system_view) && fields_fit(pde_bits::system_view, 8));
static_assert(fields_are_disjoint(dual_pde_bits::system_view) &&
              fields_fit(dual_pde_bits::system_view, 16));
static_assert(fields_are_disjoint(dual_pde_bits::no_big_table_view) &&
              fields_fit(dual_pde_bits::no_big_table_view, 16));
static_assert((dual_pde_bits::no_ats.mask() & dual_pde_bits::big_address_system.field.mask()) != 0,
              "the manual overlaps NO_ATS and ADDRESS_BIG; the encoder relies on knowing it");
// The video address fields are the low part of the system ones: one decoder per aperture.
static_assert(pte_bits::address_video.field.low == pte_bits::address_system.field.low);
static_assert(pte_bits::address_video.limit() == u64{1} << 37);  // 128 GiB of VRAM
static_assert(pte_bits::address_system.limit() == u64{1} << 58);

// ---- PTE ------------------------------------------------------------------------------

// Every PTE field, as the manual names them; what gpummu-decode prints.
struct PteFields {
    bool valid = false;
    Aperture aperture = Aperture::video;
    bool volatile_ = false;
    bool encrypted = false;
    bool privileged = false;
    bool read_only = false;
    bool atomic_disable = false;
    PhysicalAddress address{};
    u8 peer = 0;          // video/peer apertures only
    u32 comptagline = 0;  // video/peer apertures only
    u8 kind = 0;
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
        return Pte{pte_bits::volatile_.insert_flag(0, true)};
    }
    [[nodiscard]] static constexpr Pte no_valid_4k() noexcept
    {
        return Pte{pte_bits::privilege.insert_flag(0, true)};
    }

    [[nodiscard]] static constexpr Result<Pte> from_fields(const PteFields &fields) noexcept
    {
        using namespace pte_bits;
        auto code = aperture_codes::pte_code(fields.aperture);
        if (!code) return failure(code.error());
        u64 raw = valid.insert_flag(0, fields.valid);
        raw = aperture.insert(raw, *code);
        raw = volatile_.insert_flag(raw, fields.volatile_);
        raw = encrypted.insert_flag(raw, fields.encrypted);
        raw = privilege.insert_flag(raw, fields.privileged);
        raw = read_only.insert_flag(raw, fields.read_only);
        raw = atomic_disable.insert_flag(raw, fields.atomic_disable);
        raw = kind.insert(raw, fields.kind);
        if (is_system_memory(fields.aperture)) {
            // Bits 55:33 belong to the system address here: no peer, no comptagline.
            if (fields.peer != 0 || fields.comptagline != 0)
                return failure(Error::conflicting_fields);
            auto with_address = address_system.encode(raw, fields.address.value());
            if (!with_address) return failure(with_address.error());
            return Pte{*with_address};
        }
        if (!peer.fits(fields.peer) || !comptagline.fits(fields.comptagline))
            return failure(Error::field_overflow);
        raw = peer.insert(raw, fields.peer);
        raw = comptagline.insert(raw, fields.comptagline);
        auto with_address = address_video.encode(raw, fields.address.value());
        if (!with_address) return failure(with_address.error());
        return Pte{*with_address};
    }

    [[nodiscard]] constexpr PteFields fields() const noexcept
    {
        using namespace pte_bits;
        PteFields out;
        out.valid = valid.get_flag(raw_);
        out.aperture = aperture_codes::pte_aperture(aperture.get(raw_));
        out.volatile_ = volatile_.get_flag(raw_);
        out.encrypted = encrypted.get_flag(raw_);
        out.privileged = privilege.get_flag(raw_);
        out.read_only = read_only.get_flag(raw_);
        out.atomic_disable = atomic_disable.get_flag(raw_);
        out.kind = static_cast<u8>(kind.get(raw_));
        if (is_system_memory(out.aperture)) {
            out.address = PhysicalAddress{address_system.decode(raw_)};
        } else {
            out.address = PhysicalAddress{address_video.decode(raw_)};
            out.peer = static_cast<u8>(peer.get(raw_));
            out.comptagline = static_cast<u32>(comptagline.get(raw_));
        }
        return out;
    }

    // Bits no field of this PTE's aperture view covers (55:54 with a system aperture).
    [[nodiscard]] constexpr u64 undefined_bits() const noexcept
    {
        auto view_aperture = aperture_codes::pte_aperture(pte_bits::aperture.get(raw_));
        u64 known = is_system_memory(view_aperture) ? fields_mask(pte_bits::system_view, 0)
                                                    : fields_mask(pte_bits::video_view, 0);
        return raw_ & ~known;
    }

    [[nodiscard]] constexpr PteState state() const noexcept
    {
        if (pte_bits::valid.get_flag(raw_)) return PteState::valid;
        if (pte_bits::volatile_.get_flag(raw_)) return PteState::sparse;
        if (pte_bits::privilege.get_flag(raw_)) return PteState::no_valid_4k;
        return PteState::invalid;
    }

    // A valid PTE from format-neutral attributes (VOL carries "uncached").
    [[nodiscard]] static constexpr Result<Pte> map(const PageAttributes &attributes) noexcept
    {
        if (attributes.access_counting_disabled) return failure(Error::field_not_in_format);
        if (attributes.peer != 0 && attributes.aperture != Aperture::peer)
            return failure(Error::conflicting_fields);
        PteFields fields;
        fields.valid = true;
        fields.aperture = attributes.aperture;
        fields.volatile_ = attributes.uncached;
        fields.privileged = attributes.privileged;
        fields.read_only = attributes.read_only;
        fields.atomic_disable = attributes.atomics_disabled;
        fields.address = attributes.address;
        fields.peer = attributes.peer;
        fields.kind = attributes.kind;
        return from_fields(fields);
    }

    [[nodiscard]] constexpr PageAttributes attributes() const noexcept
    {
        PteFields fields = this->fields();
        PageAttributes out;
        out.aperture = fields.aperture;
        out.address = fields.address;
        out.read_only = fields.read_only;
        out.privileged = fields.privileged;
        out.atomics_disabled = fields.atomic_disable;
        out.uncached = fields.volatile_;
        out.kind = fields.kind;
        out.peer = fields.aperture == Aperture::peer ? fields.peer : u8{0};
        return out;
    }

    constexpr bool operator==(const Pte &) const noexcept = default;

private:
    constexpr explicit Pte(u64 raw) noexcept : raw_(raw) {}
    u64 raw_ = 0;
};

// ---- PDE ------------------------------------------------------------------------------

struct PdeFields {
    Aperture aperture = Aperture::invalid;
    bool volatile_ = false;
    bool no_ats = false;  // single PDEs and the big half of a dual PDE only
    PhysicalAddress address{};
    constexpr bool operator==(const PdeFields &) const noexcept = default;
};

namespace detail {

// Shared by single PDEs and both dual-PDE halves; the callers pass their field positions.
[[nodiscard]] constexpr Result<u64> encode_pointer(u64 raw, const PdeFields &fields,
                                                   BitField aperture, BitField volatile_,
                                                   const AddressField &video,
                                                   const AddressField &system) noexcept
{
    auto code = aperture_codes::pde_code(fields.aperture);
    if (!code) return failure(code.error());
    raw = aperture.insert(raw, *code);
    raw = volatile_.insert_flag(raw, fields.volatile_);
    if (fields.aperture == Aperture::invalid) {
        // "Except for VOL, the remaining fields are undefined": refuse to write an address.
        if (fields.address.value() != 0) return failure(Error::conflicting_fields);
        return raw;
    }
    return (is_system_memory(fields.aperture) ? system : video).encode(raw, fields.address.value());
}

[[nodiscard]] constexpr PdeFields decode_pointer(u64 raw, BitField aperture, BitField volatile_,
                                                 const AddressField &video,
                                                 const AddressField &system) noexcept
{
    PdeFields out;
    out.aperture = aperture_codes::pde_aperture(aperture.get(raw));
    out.volatile_ = volatile_.get_flag(raw);
    if (out.aperture != Aperture::invalid)
        out.address =
            PhysicalAddress{(is_system_memory(out.aperture) ? system : video).decode(raw)};
    return out;
}

[[nodiscard]] constexpr PdeState pointer_state(const PdeFields &fields) noexcept
{
    if (fields.aperture != Aperture::invalid) return PdeState::valid;
    return fields.volatile_ ? PdeState::sparse : PdeState::invalid;
}

// nouveau's convention: VOL only for tables in coherent system memory.
[[nodiscard]] constexpr PdeFields pointer_fields(const TablePointer &pointer) noexcept
{
    PdeFields fields;
    fields.aperture = pointer.aperture;
    fields.address = pointer.address;
    fields.volatile_ = pointer.aperture == Aperture::system_coherent;
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
        return Pde{pde_bits::volatile_.insert_flag(0, true)};
    }

    [[nodiscard]] static constexpr Result<Pde> from_fields(const PdeFields &fields) noexcept
    {
        using namespace pde_bits;
        u64 raw = no_ats.insert_flag(0, fields.no_ats);
        auto encoded =
            detail::encode_pointer(raw, fields, aperture, volatile_, address_video, address_system);
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
        using namespace pde_bits;
        PdeFields out =
            detail::decode_pointer(raw_, aperture, volatile_, address_video, address_system);
        out.no_ats = no_ats.get_flag(raw_);
        return out;
    }
    // Set at PD1 on Ampere/Ada: the word is then a PTE mapping 512 MiB.
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
    // Bits the decoder drops: those outside the aperture's view (the address under an
    // invalid aperture, 53:33 under a video one).
    [[nodiscard]] constexpr u64 undefined_bits() const noexcept
    {
        using namespace pde_bits;
        Aperture view = aperture_codes::pde_aperture(aperture.get(raw_));
        u64 known = pde_bits::is_pte.mask() | aperture.mask() | volatile_.mask() | no_ats.mask();
        if (view == Aperture::video)
            known |= address_video.field.mask();
        else if (view != Aperture::invalid)
            known |= address_system.field.mask();
        return raw_ & ~known;
    }
    constexpr bool operator==(const Pde &) const noexcept = default;

private:
    constexpr explicit Pde(u64 raw) noexcept : raw_(raw) {}
    u64 raw_ = 0;
};

// ---- dual PDE -------------------------------------------------------------------------

struct DualPdeFields {
    PdeFields big;    // 64 KiB page table, 256-byte aligned (address shift 8); its NO_ATS
                      // exists only while the big aperture is invalid (see dual_pde_bits)
    PdeFields small;  // 4 KiB page table, 4 KiB aligned; has no NO_ATS bit
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
    // Sparse is said by VOL_BIG with both apertures invalid.
    [[nodiscard]] static constexpr DualPde sparse() noexcept
    {
        return DualPde{dual_pde_bits::big_volatile.insert_flag(0, true), 0};
    }
    // The 2 MiB page: the low qword is a PTE, the high qword is written 0.
    [[nodiscard]] static constexpr DualPde from_pte(Pte pte) noexcept
    {
        return DualPde{pte.raw(), 0};
    }

    [[nodiscard]] static constexpr Result<DualPde> from_fields(const DualPdeFields &fields) noexcept
    {
        using namespace dual_pde_bits;
        if (fields.small.no_ats) return failure(Error::field_not_in_format);
        if (fields.big.no_ats && fields.big.aperture != Aperture::invalid)
            return failure(Error::conflicting_fields);
        // "The lowest level PDE cannot be sparse if either or both pointers are valid."
        bool any_pointer =
            fields.big.aperture != Aperture::invalid || fields.small.aperture != Aperture::invalid;
        if (any_pointer && fields.big.aperture == Aperture::invalid && fields.big.volatile_)
            return failure(Error::conflicting_fields);
        u64 low = no_ats.insert_flag(0, fields.big.no_ats);
        auto encoded_low = detail::encode_pointer(low, fields.big, big_aperture, big_volatile,
                                                  big_address_video, big_address_system);
        if (!encoded_low) return failure(encoded_low.error());
        auto encoded_high = detail::encode_pointer(0, fields.small, small_aperture, small_volatile,
                                                   small_address_video, small_address_system);
        if (!encoded_high) return failure(encoded_high.error());
        return DualPde{*encoded_low, *encoded_high};
    }
    // Either pointer may be absent (aperture invalid).
    [[nodiscard]] static constexpr Result<DualPde> point_to(const TablePointer &big,
                                                            const TablePointer &small) noexcept
    {
        return from_fields(
            DualPdeFields{detail::pointer_fields(big), detail::pointer_fields(small)});
    }

    [[nodiscard]] constexpr DualPdeFields fields() const noexcept
    {
        using namespace dual_pde_bits;
        DualPdeFields out;
        out.big = detail::decode_pointer(low_, big_aperture, big_volatile, big_address_video,
                                         big_address_system);
        if (out.big.aperture == Aperture::invalid) out.big.no_ats = no_ats.get_flag(low_);
        out.small = detail::decode_pointer(high_, small_aperture, small_volatile,
                                           small_address_video, small_address_system);
        return out;
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
        return decoded.big.volatile_ ? PdeState::sparse : PdeState::invalid;
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
    // Bits (low word, high word) no field of the entry's view covers: with a big-page table
    // the system view (bit 5 is an address bit), without one the view that has NO_ATS. A
    // 2 MiB PTE (IS_PTE) is judged by `as_pte().undefined_bits()` instead.
    [[nodiscard]] constexpr std::array<u64, 2> undefined_bits() const noexcept
    {
        using namespace dual_pde_bits;
        const bool big_table =
            aperture_codes::pde_aperture(big_aperture.get(low_)) != Aperture::invalid;
        const u64 low = big_table ? fields_mask(system_view, 0) : fields_mask(no_big_table_view, 0);
        const u64 high =
            big_table ? fields_mask(system_view, 1) : fields_mask(no_big_table_view, 1);
        return {low_ & ~low, high_ & ~high};
    }
    constexpr bool operator==(const DualPde &) const noexcept = default;

private:
    constexpr DualPde(u64 low, u64 high) noexcept : low_(low), high_(high) {}
    u64 low_ = 0;
    u64 high_ = 0;
};

}  // namespace gpummu::mmu_v2

namespace gpummu {

struct MmuV2 {
    static constexpr MmuVersion version = MmuVersion::v2;
    static constexpr const char *name = "v2";
    static constexpr unsigned va_bits = 49;
    using Pte = mmu_v2::Pte;
    using Pde = mmu_v2::Pde;
    using DualPde = mmu_v2::DualPde;

    // Root first; the small-page table last. PD1 may hold a 512 MiB PTE in the format, but
    // only Ampere and Ada allow it (mmu_version.hpp).
    static constexpr std::array<LevelDescriptor, 5> levels{{
        {"PD3", 48, 47, 8, false, {}},
        {"PD2", 46, 38, 8, false, {}},
        {"PD1", 37, 29, 8, false, {PageSize::size_512m()}},
        {"PD0", 28, 21, 16, true, {PageSize::size_2m()}},
        {"PT", 20, 12, 8, false, {PageSize::size_4k()}},
    }};
    static constexpr LevelDescriptor big_page_table{"PT64K", 20,    16,
                                                    8,       false, {PageSize::size_64k()}};
};

// ---- proofs beside the table ----------------------------------------------------------
static_assert(levels_tile_va(MmuV2::levels, MmuV2::va_bits));
static_assert(tables_are_4k(MmuV2::levels));
static_assert(pte_sizes_match_coverage(MmuV2::levels));
static_assert(dual_only_at_pd0(MmuV2::levels));
static_assert(MmuV2::levels[0].entry_count() == 4 && MmuV2::levels[0].table_bytes() == 32);
static_assert(MmuV2::levels[3].entry_count() == 256);
static_assert(MmuV2::big_page_table.table_bytes() == 256 &&
              MmuV2::big_page_table.entry_count() == 32);
static_assert(MmuV2::big_page_table.va_high + 1u == MmuV2::levels[3].va_low);
// Golden encodings from the manual and NVIDIA's drivers.
static_assert(MmuV2::Pte::invalid().raw() == 0);
static_assert(MmuV2::Pte::sparse().raw() == 0x8);
static_assert(MmuV2::Pte::no_valid_4k().raw() == 0x20);
static_assert(MmuV2::Pde::sparse().raw() == 0x8);
static_assert(MmuV2::DualPde::sparse().low() == 0x8 && MmuV2::DualPde::sparse().high() == 0);
static_assert(MmuV2::Pte::no_valid_4k().state() == PteState::no_valid_4k);
static_assert(MmuV2::Pte::from_raw(0x28).state() == PteState::sparse);  // RM's GV100 NV4K
// A video PTE stores PA >> 4 (nouveau's formula): 4 KiB at 0x1000 -> 0x101 with VALID.
static_assert(MmuV2::Pte::map({.address = PhysicalAddress{0x1000}})->raw() == 0x101);
static_assert(MmuV2::Pte::map({.address = PhysicalAddress{0x2000000000}}).error() ==
              Error::field_overflow);
static_assert(MmuV2::Pte::map({.address = PhysicalAddress{0x1800}}).error() == Error::misaligned);

// Every dual PDE the encoders make has no undefined bit (the table walk refuses those).
static_assert(MmuV2::DualPde::sparse().undefined_bits() == std::array<u64, 2>{0, 0});
static_assert(MmuV2::DualPde::point_to({Aperture::video, PhysicalAddress{0x1'2300}},
                                       {Aperture::video, PhysicalAddress{0x45'6000}})
                  ->undefined_bits() == std::array<u64, 2>{0, 0});
static_assert(MmuV2::DualPde::point_to({}, {Aperture::system_coherent, PhysicalAddress{0x7000}})
                  ->undefined_bits() == std::array<u64, 2>{0, 0});
static_assert(MmuV2::DualPde::from_raw(u64{1} << 63, 0).undefined_bits()[0] == u64{1} << 63);

}  // namespace gpummu
