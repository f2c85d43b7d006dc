// gpummu/format/format_concepts.hpp: what an MMU page-table format is, as a concept.
//
// What it does
//   - `LevelDescriptor` describes one level of the page-table tree as data: which VA bits
//     index it, how big an entry is, whether the entry is a dual PDE, and which page sizes
//     a PTE stored at that level maps (empty for pure directory levels).
//   - `PteState` / `PdeState`: what an entry means to the MMU, including the special
//     invalid encodings (sparse, "no valid 4 KiB PTE below", mapping-nowhere).
//   - `PageAttributes`: the format-neutral description of a mapping (aperture, address,
//     permissions, cacheability, kind, peer). Each format encodes it into its own PTE and
//     decodes a PTE back into it, so generic code (the walker, the page table) never
//     touches a bit position.
//   - `MmuFormat<F>`: the concept a format type satisfies. Everything it demands is
//     constexpr data or constexpr codecs.
//
// What it does not do
//   - It names no chip and no bit position. Formats live in mmu_v2.hpp and mmu_v3.hpp; which
//     chip may use which page size lives in mmu_version.hpp.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <type_traits>

#include "gpummu/core/bitfield.hpp"
#include "gpummu/core/types.hpp"

namespace gpummu {

enum class MmuVersion : u8 { v2 = 2, v3 = 3 };

[[nodiscard]] constexpr const char *mmu_version_name(MmuVersion version) noexcept
{
    return version == MmuVersion::v2 ? "v2" : "v3";
}

// Depth of a level in the tree: 0 is the root (PDB).
struct Level {
    u8 depth = 0;
    constexpr auto operator<=>(const Level &) const noexcept = default;
};

struct LevelDescriptor {
    const char *name;       // the manual's name: "PD3", "PD0", "PT"...
    u8 va_high;             // highest VA bit this level indexes
    u8 va_low;              // lowest VA bit this level indexes (= log2 of VA per entry)
    u8 entry_bytes;         // 8, or 16 for a dual PDE
    bool dual;              // PD0: a 16-byte entry with a big-page and a small-page half
    PageSizeSet pte_sizes;  // page sizes a PTE at this level maps (empty: directory only)

    [[nodiscard]] constexpr unsigned index_bits() const noexcept { return va_high - va_low + 1u; }
    [[nodiscard]] constexpr u64 entry_count() const noexcept { return u64{1} << index_bits(); }
    [[nodiscard]] constexpr u64 table_bytes() const noexcept { return entry_count() * entry_bytes; }
    [[nodiscard]] constexpr u64 entry_coverage() const noexcept { return u64{1} << va_low; }
    [[nodiscard]] constexpr u64 index_of(VirtualAddress va) const noexcept
    {
        return (va.value() >> va_low) & (entry_count() - 1);
    }
    [[nodiscard]] constexpr bool may_hold_pte() const noexcept { return !pte_sizes.empty(); }
};

enum class PteState : u8 {
    valid,            // maps a page
    invalid,          // faults
    sparse,           // reads return zero, writes are dropped
    no_valid_4k,      // big PTE only: the MMU ignores the 4 KiB PTEs under it
    mapping_nowhere,  // v3 only: a defined invalid state whose semantics NVIDIA leaves open
};

enum class PdeState : u8 { valid, invalid, sparse };

[[nodiscard]] constexpr const char *pte_state_name(PteState state) noexcept
{
    switch (state) {
    case PteState::valid: return "valid";
    case PteState::invalid: return "invalid";
    case PteState::sparse: return "sparse";
    case PteState::no_valid_4k: return "no_valid_4k";
    case PteState::mapping_nowhere: return "mapping_nowhere";
    }
    return "unknown";
}

[[nodiscard]] constexpr const char *pde_state_name(PdeState state) noexcept
{
    switch (state) {
    case PdeState::valid: return "valid";
    case PdeState::invalid: return "invalid";
    case PdeState::sparse: return "sparse";
    }
    return "unknown";
}

// A mapping as the library's generic layers describe it.
struct PageAttributes {
    Aperture aperture = Aperture::video;
    PhysicalAddress address{};
    bool read_only = false;
    bool privileged = false;
    bool atomics_disabled = false;
    bool uncached = false;                  // v2: VOL; v3: PCF uncached
    bool access_counting_disabled = false;  // v3 only (PCF ACD); v2 refuses it
    u8 kind = 0;
    u8 peer = 0;  // peer id, aperture peer only
    constexpr bool operator==(const PageAttributes &) const noexcept = default;
};

// Where a directory entry points: the next table's aperture and address. A
// default-constructed pointer is "no table" (aperture invalid), so `point_to(big, {})`
// leaves the small half of a dual PDE empty.
struct TablePointer {
    Aperture aperture = Aperture::invalid;
    PhysicalAddress address{};
    constexpr bool operator==(const TablePointer &) const noexcept = default;
};

namespace detail {
template <class T>
struct is_std_array : std::false_type {
};
template <class T, std::size_t N>
struct is_std_array<std::array<T, N>> : std::true_type {
};
}  // namespace detail

// A single 8-byte entry codec: raw word in and out, state decoded.
template <class E>
concept SingleWordEntry = std::is_trivially_copyable_v<E> && requires(const E entry, u64 raw)
{
    {
        E::from_raw(raw)
    }
    noexcept->std::same_as<E>;
    {
        entry.raw()
    }
    noexcept->std::same_as<u64>;
};

template <class F>
concept MmuFormat = requires
{
    {
        F::version
        } -> std::convertible_to<MmuVersion>;
    {
        F::va_bits
        } -> std::convertible_to<unsigned>;
    {
        F::name
        } -> std::convertible_to<const char *>;
    {
        F::big_page_table
        } -> std::convertible_to<LevelDescriptor>;
    {
        F::levels[0]
        } -> std::convertible_to<LevelDescriptor>;
    typename F::Pte;
    typename F::Pde;
    typename F::DualPde;
}
&&detail::is_std_array<std::remove_cv_t<decltype(F::levels)>>::value &&
    SingleWordEntry<typename F::Pte> &&SingleWordEntry<typename F::Pde> &&requires(
        const typename F::Pte pte, const typename F::Pde pde, const typename F::DualPde dual,
        const PageAttributes &attributes, const TablePointer &pointer, u64 raw)
{
    {
        F::Pte::invalid()
    }
    noexcept->std::same_as<typename F::Pte>;
    {
        F::Pte::sparse()
    }
    noexcept->std::same_as<typename F::Pte>;
    {
        F::Pte::no_valid_4k()
    }
    noexcept->std::same_as<typename F::Pte>;
    {
        F::Pte::map(attributes)
    }
    noexcept->std::same_as<Result<typename F::Pte>>;
    {
        pte.state()
    }
    noexcept->std::same_as<PteState>;
    {
        pte.attributes()
    }
    noexcept->std::same_as<PageAttributes>;
    {
        F::Pde::invalid()
    }
    noexcept->std::same_as<typename F::Pde>;
    {
        F::Pde::sparse()
    }
    noexcept->std::same_as<typename F::Pde>;
    {
        F::Pde::point_to(pointer)
    }
    noexcept->std::same_as<Result<typename F::Pde>>;
    {
        pde.state()
    }
    noexcept->std::same_as<PdeState>;
    {
        pde.is_pte()
    }
    noexcept->std::same_as<bool>;
    {
        F::DualPde::from_raw(raw, raw)
    }
    noexcept->std::same_as<typename F::DualPde>;
    {
        dual.low()
    }
    noexcept->std::same_as<u64>;
    {
        dual.high()
    }
    noexcept->std::same_as<u64>;
    {
        dual.state()
    }
    noexcept->std::same_as<PdeState>;
    {
        F::DualPde::sparse()
    }
    noexcept->std::same_as<typename F::DualPde>;
};

// ---- compile-time proofs shared by every format ---------------------------------------

// The levels (root first, small-page table last) index consecutive VA bits that cover
// exactly [12, va_bits): no gap, no overlap.
template <std::size_t N>
[[nodiscard]] constexpr bool levels_tile_va(const std::array<LevelDescriptor, N> &levels,
                                            unsigned va_bits) noexcept
{
    if (N == 0 || levels[0].va_high != va_bits - 1 || levels[N - 1].va_low != frame_shift)
        return false;
    for (std::size_t i = 0; i + 1 < N; ++i)
        if (levels[i + 1].va_high + 1u != levels[i].va_low) return false;
    return true;
}

// Every table is entries x entry size bytes; below the root every directory and the small
// page table fill exactly 4 KiB (the root is allocated as a 4 KiB page regardless).
template <std::size_t N>
[[nodiscard]] constexpr bool tables_are_4k(const std::array<LevelDescriptor, N> &levels) noexcept
{
    for (std::size_t i = 1; i < N; ++i)
        if (levels[i].table_bytes() != 4096) return false;
    return levels[0].table_bytes() <= 4096;
}

// A PTE at a level maps exactly that level's per-entry coverage.
template <std::size_t N>
[[nodiscard]] constexpr bool
pte_sizes_match_coverage(const std::array<LevelDescriptor, N> &levels) noexcept
{
    for (const LevelDescriptor &level : levels) {
        if (level.pte_sizes.empty()) continue;
        if (level.pte_sizes.count() != 1) return false;
        if (level.pte_sizes.bits() != level.entry_coverage()) return false;
    }
    return true;
}

// Only PD0 is dual and has 16-byte entries.
template <std::size_t N>
[[nodiscard]] constexpr bool dual_only_at_pd0(const std::array<LevelDescriptor, N> &levels) noexcept
{
    for (std::size_t i = 0; i < N; ++i) {
        bool should_be_dual = i + 2 == N;  // the level above the small page table
        if (levels[i].dual != should_be_dual) return false;
        if (levels[i].entry_bytes != (should_be_dual ? 16 : 8)) return false;
    }
    return true;
}

}  // namespace gpummu
