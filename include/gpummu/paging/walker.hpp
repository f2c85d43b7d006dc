// gpummu/paging/walker.hpp: translate a GPU virtual address by walking page tables.
//
// What it does
//   translate<Format>(memory, root, va) reads the tables of one address space through a
//   TableMemory and says what the MMU would do with `va`: mapped (physical address of that
//   byte, page size, attributes), unmapped, or sparse, and at which level the walk ended.
//   One read per level (two words at PD0, one more for the big or small PTE), no writes.
//
//     PD3/PD4 ... PD1 --> PD0 (dual) --+--> big PT (64 KiB PTEs)     consulted first
//        |          |         |        +--> small PT (4 KiB PTEs)    when the big PTE is
//        |          |         +-- IS_PTE: 2 MiB page                 plain invalid, or
//        |          +------------ IS_PTE: 512 MiB page               there is no big table
//        +----------------------- IS_PTE: 256 GiB page (v3)
//
//   Big PTE states (Pascal MMU format, NVIDIA's drivers): valid maps 64 KiB; "no valid
//   4 KiB PTE" (NV4K) means the small PTEs under it are ignored, so the address is
//   unmapped; sparse means sparse; plain invalid hands the decision to the small table.
//   gpummu never writes a valid big PTE over valid small PTEs; a walk that meets one
//   reports the big page.
//
// What it does not do
//   - It follows tables in video memory only (the memory it is given is VRAM); a
//     directory pointing to system memory is Error::invalid_aperture.
//   - It does not check whether the chip allows a page size at a level: that is the page
//     table's job when it writes. It reports what the entries say.
#pragma once

#include <array>
#include <span>

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/format/format_concepts.hpp"
#include "gpummu/memory/table_memory_concepts.hpp"

namespace gpummu {

enum class TranslationState : u8 { mapped, unmapped, sparse };

[[nodiscard]] constexpr const char *translation_state_name(TranslationState state) noexcept
{
    switch (state) {
    case TranslationState::mapped: return "mapped";
    case TranslationState::unmapped: return "unmapped";
    case TranslationState::sparse: return "sparse";
    }
    return "unknown";
}

struct Translation {
    TranslationState state = TranslationState::unmapped;
    Level level{};                             // depth where the walk ended (PT: the deepest level)
    PhysicalAddress address{};                 // mapped: the physical address of `va` itself
    PageSize page_size = PageSize::size_4k();  // mapped: the page that holds it
    PageAttributes attributes{};  // mapped: the PTE's attributes (address = page start)
};

namespace detail {

// What a PTE says about `va`, written into `out` (its level is the caller's).
template <MmuFormat F>
constexpr void fill_from_pte(typename F::Pte pte, VirtualAddress va, PageSize size,
                             Translation &out) noexcept
{
    switch (pte.state()) {
    case PteState::valid: {
        out.state = TranslationState::mapped;
        // Field by field: the decoded attributes stay in registers. Copied whole, the
        // compiler assembled them on the stack with byte stores and reloaded them with
        // 16-byte loads, which stall store forwarding (a third of a translate).
        const PageAttributes attributes = pte.attributes();
        static_assert(sizeof(PageAttributes) == 24,
                      "every attribute is copied here: add the one PageAttributes gained");
        out.attributes.aperture = attributes.aperture;
        out.attributes.address = attributes.address;
        out.attributes.read_only = attributes.read_only;
        out.attributes.privileged = attributes.privileged;
        out.attributes.atomics_disabled = attributes.atomics_disabled;
        out.attributes.uncached = attributes.uncached;
        out.attributes.access_counting_disabled = attributes.access_counting_disabled;
        out.attributes.kind = attributes.kind;
        out.attributes.peer = attributes.peer;
        out.page_size = size;
        out.address = attributes.address + (va.value() & size.offset_mask());
        break;
    }
    case PteState::sparse: out.state = TranslationState::sparse; break;
    default: out.state = TranslationState::unmapped; break;
    }
}
template <MmuFormat F>
[[nodiscard]] constexpr Translation from_pte(typename F::Pte pte, VirtualAddress va, PageSize size,
                                             Level level) noexcept
{
    Translation out;
    out.level = level;
    fill_from_pte<F>(pte, va, size, out);
    return out;
}

[[nodiscard]] constexpr Result<VramAddress> table_in_vram(const TablePointer &pointer) noexcept
{
    if (pointer.aperture != Aperture::video) return failure(Error::invalid_aperture);
    return VramAddress{pointer.address.value()};
}

}  // namespace detail

template <MmuFormat F, TableMemory M>
[[nodiscard]] Result<Translation> translate(M &memory, const TablePointer &root,
                                            VirtualAddress va) noexcept
{
    if (F::va_bits < 64 && (va.value() >> F::va_bits) != 0) return failure(Error::out_of_range);
    auto table = detail::table_in_vram(root);
    if (!table) return failure(table.error());
    constexpr std::size_t directory_levels = F::levels.size() - 1;  // the last level is the PT
    for (std::size_t depth = 0; depth < directory_levels; ++depth) {
        const LevelDescriptor &level = F::levels[depth];
        const Level here{static_cast<u8>(depth)};
        VramAddress entry = *table + level.index_of(va) * level.entry_bytes;
        if (!level.dual) {
            std::array<u64, 1> word{};
            GPUMMU_TRY(memory.read(entry, word));
            auto pde = F::Pde::from_raw(word[0]);
            if (pde.is_pte()) {
                // A PTE where the format has none is not a mapping the MMU would honour.
                if (!level.may_hold_pte()) return failure(Error::malformed_record);
                return detail::from_pte<F>(pde.as_pte(), va,
                                           PageSize::from_shift(level.va_low).value(), here);
            }
            switch (pde.state()) {
            case PdeState::sparse: return Translation{TranslationState::sparse, here};
            case PdeState::invalid: return Translation{TranslationState::unmapped, here};
            case PdeState::valid: break;
            }
            table = detail::table_in_vram(pde.pointer());
            if (!table) return failure(table.error());
            continue;
        }
        // PD0: a dual entry (or a 2 MiB PTE in its low word).
        std::array<u64, 2> words{};
        GPUMMU_TRY(memory.read(entry, words));
        auto dual = F::DualPde::from_raw(words[0], words[1]);
        if (dual.is_pte()) return detail::from_pte<F>(dual.as_pte(), va, PageSize::size_2m(), here);
        if (dual.state() == PdeState::sparse) return Translation{TranslationState::sparse, here};
        const Level leaf{static_cast<u8>(depth + 1)};
        TablePointer big = dual.big_pointer();
        if (big.aperture != Aperture::invalid) {
            auto big_table = detail::table_in_vram(big);
            if (!big_table) return failure(big_table.error());
            std::array<u64, 1> word{};
            GPUMMU_TRY(memory.read(*big_table + F::big_page_table.index_of(va) * 8u, word));
            auto big_pte = F::Pte::from_raw(word[0]);
            if (big_pte.state() != PteState::invalid)  // valid, sparse or NV4K: the big PTE decides
                return detail::from_pte<F>(big_pte, va, PageSize::size_64k(), leaf);
        }
        TablePointer small = dual.small_pointer();
        if (small.aperture == Aperture::invalid)
            return Translation{TranslationState::unmapped, leaf};
        auto small_table = detail::table_in_vram(small);
        if (!small_table) return failure(small_table.error());
        std::array<u64, 1> word{};
        const LevelDescriptor &page_table = F::levels[depth + 1];
        GPUMMU_TRY(memory.read(*small_table + page_table.index_of(va) * 8u, word));
        return detail::from_pte<F>(F::Pte::from_raw(word[0]), va, PageSize::size_4k(), leaf);
    }
    return failure(Error::malformed_record);  // unreachable for a well-formed format
}

}  // namespace gpummu
