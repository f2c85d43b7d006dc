// gpummu/paging/table_walk.hpp: visit every table and every page of an address space.
//
// What it does
//   walk_tables<Format>(memory, memory_end, root, begin, end, visitor) reads the tables of
//   one address space from the root down, in VA order, and tells the visitor
//     - `table(const WalkedTable &)` for each table it enters (the root first, then depth
//       first), before reading it; the visitor may refuse it (a table seen twice is a loop
//       or a shared table: gpummu-inspect refuses it), which stops the walk;
//     - `page(const WalkedPage &)` for each entry that maps a page or is sparse, whose VA
//       range meets [begin, end): a PTE at any level, a sparse PDE or dual PDE (its whole
//       range), a big PTE that decides for its 64 KiB (valid or sparse). Unmapped ranges
//       are not reported. Pages come in increasing VA order and are not clipped to the
//       range.
//   It decides as the MMU does, exactly as `translate` (paging/walker.hpp) does for one
//   address:
//
//       PD3/PD4 ... PD1 --> PD0 (dual) --+--> big PT (64 KiB PTEs)   a valid, sparse or
//        |           |        |          |                           NV4K big PTE decides
//        |           |        |          +--> small PT (4 KiB PTEs)  otherwise
//        |           |        +-- IS_PTE: 2 MiB page
//        |           +----------- IS_PTE: 512 MiB page
//        +--------------------------- IS_PTE: 256 GiB page (v3)
//
//   It trusts nothing it reads. The walk stops with a `WalkFailure` naming the error, the
//   first VA the bad word or table covers, the table holding the word (or the bad table),
//   and a reason, when
//     - a table lies (partly) outside [0, memory_end) or in system memory: out_of_range /
//       invalid_aperture;
//     - a table is not aligned to its size (at most 4 KiB; the root to 4 KiB): misaligned;
//     - an entry has bits no field of its format's view defines, or is a PTE at a level
//       that holds none: malformed_record;
//     - the memory fails to read, or the visitor refuses a table: that error.
//
// What it does not do
//   - No writes, no locking, no TLB: it reads whatever the memory holds now.
//   - Loop detection is the visitor's (it sees every table before it is read); the depth is
//     bounded by the format's levels whatever the tables say.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <concepts>

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/format/format_concepts.hpp"
#include "gpummu/memory/table_memory_concepts.hpp"
#include "gpummu/paging/walker.hpp"

namespace gpummu {

struct WalkedTable {
    Level level{};              // the format level the table is read as
    VramAddress address{};      // where it lies
    u64 bytes = 0;              // its entries' bytes (a big-page table: 256)
    VirtualAddress first_va{};  // the VA its first entry covers
    bool big_page_table = false;
};

struct WalkedPage {
    VirtualAddress va{};  // first VA of the entry (not clipped to the walk's range)
    u64 bytes = 0;        // VA bytes the entry covers
    TranslationState state = TranslationState::mapped;  // mapped or sparse
    PageSize page_size = PageSize::size_4k();           // mapped: the page size
    PageAttributes attributes{};                        // mapped: the PTE's attributes
    Level level{};                                      // the level of the deciding entry
};

struct WalkFailure {
    Error error = Error::invalid_argument;
    VirtualAddress va{};  // first VA the bad entry or table covers
    VramAddress table{};  // the table holding the bad entry, or the bad table itself
    const char *reason = "";
};

template <class V>
concept TableWalkVisitor = requires(V &visitor, const WalkedTable &table, const WalkedPage &page)
{
    {
        visitor.table(table)
        } -> std::same_as<Result<void>>;
    visitor.page(page);
};

namespace detail {

template <MmuFormat F, TableMemory M, TableWalkVisitor V>
class TableWalk {
public:
    TableWalk(M &memory, u64 memory_end, u64 begin, u64 end, V &visitor,
              WalkFailure *failure) noexcept
        : memory_(memory),
          memory_end_(memory_end),
          begin_(begin),
          end_(end),
          visitor_(visitor),
          failure_(failure)
    {
    }

    Result<void> directory(std::size_t depth, VramAddress table, u64 first_va, bool root) noexcept
    {
        const LevelDescriptor &level = F::levels[depth];
        GPUMMU_TRY(enter(WalkedTable{Level{static_cast<u8>(depth)}, table, level.table_bytes(),
                                     VirtualAddress{first_va}, false},
                         root ? 4096 : std::min<u64>(level.table_bytes(), 4096)));
        const u64 coverage = level.entry_coverage();
        const auto [first, last] = index_range(level, first_va);
        for (u64 index = first; index <= last && first <= last; ++index) {
            const u64 va = first_va + index * coverage;
            const VramAddress entry = table + index * level.entry_bytes;
            const Level here{static_cast<u8>(depth)};
            if (!level.dual) {
                std::array<u64, 1> word{};
                GPUMMU_TRY(read(entry, word, va, table));
                auto pde = F::Pde::from_raw(word[0]);
                if (pde.is_pte()) {
                    if (!level.may_hold_pte())
                        return fail(Error::malformed_record, va, table,
                                    "a PTE at a level that maps no pages");
                    GPUMMU_TRY(pte(pde.as_pte(), va, coverage, here, table));
                    continue;
                }
                if (pde.undefined_bits() != 0)
                    return fail(Error::malformed_record, va, table,
                                "a PDE with bits its format leaves undefined");
                switch (pde.state()) {
                case PdeState::sparse: report_sparse(va, coverage, here); continue;
                case PdeState::invalid: continue;
                case PdeState::valid: break;
                }
                auto next = pointer(pde.pointer(), va, table);
                if (!next) return failure(next.error());
                GPUMMU_TRY(directory(depth + 1, *next, va, false));
                continue;
            }
            std::array<u64, 2> words{};
            GPUMMU_TRY(read(entry, words, va, table));
            auto dual = F::DualPde::from_raw(words[0], words[1]);
            if (dual.is_pte()) {
                GPUMMU_TRY(pte(dual.as_pte(), va, coverage, here, table));
                continue;
            }
            const auto undefined = dual.undefined_bits();
            if (undefined[0] != 0 || undefined[1] != 0)
                return fail(Error::malformed_record, va, table,
                            "a dual PDE with bits its format leaves undefined");
            if (dual.state() == PdeState::sparse) {
                report_sparse(va, coverage, here);
                continue;
            }
            if (dual.state() == PdeState::invalid) continue;
            GPUMMU_TRY(leaf_tables(depth + 1, dual, va, table));
        }
        return success();
    }

private:
    // The entries of `level`'s table at `first_va` whose ranges meet [begin, end].
    [[nodiscard]] std::array<u64, 2> index_range(const LevelDescriptor &level,
                                                 u64 first_va) const noexcept
    {
        const u64 span_last = first_va + (level.entry_count() * level.entry_coverage() - 1);
        if (end_ - 1 < first_va || begin_ > span_last) return {1, 0};  // empty
        const u64 from = std::max(begin_, first_va), to = std::min(end_ - 1, span_last);
        return {(from - first_va) / level.entry_coverage(),
                (to - first_va) / level.entry_coverage()};
    }

    Result<void> leaf_tables(std::size_t depth, const typename F::DualPde &dual, u64 first_va,
                             VramAddress parent) noexcept
    {
        const LevelDescriptor &small_level = F::levels[depth];
        const Level leaf{static_cast<u8>(depth)};
        VramAddress big_table{}, small_table{};
        const bool has_big = dual.big_pointer().aperture != Aperture::invalid;
        const bool has_small = dual.small_pointer().aperture != Aperture::invalid;
        if (has_big) {
            auto table = pointer(dual.big_pointer(), first_va, parent);
            if (!table) return failure(table.error());
            big_table = *table;
            GPUMMU_TRY(enter(WalkedTable{leaf, big_table, F::big_page_table.table_bytes(),
                                         VirtualAddress{first_va}, true},
                             F::big_page_table.table_bytes()));
        }
        if (has_small) {
            auto table = pointer(dual.small_pointer(), first_va, parent);
            if (!table) return failure(table.error());
            small_table = *table;
            GPUMMU_TRY(enter(WalkedTable{leaf, small_table, small_level.table_bytes(),
                                         VirtualAddress{first_va}, false},
                             std::min<u64>(small_level.table_bytes(), 4096)));
        }
        const u64 big_bytes = F::big_page_table.entry_coverage();
        const u64 small_bytes = small_level.entry_coverage();
        const auto [first, last] = index_range(F::big_page_table, first_va);
        for (u64 chunk = first; chunk <= last && first <= last; ++chunk) {
            const u64 va = first_va + chunk * big_bytes;
            if (has_big) {
                std::array<u64, 1> word{};
                GPUMMU_TRY(read(big_table + chunk * 8, word, va, big_table));
                auto big = F::Pte::from_raw(word[0]);
                if (big.undefined_bits() != 0)
                    return fail(Error::malformed_record, va, big_table,
                                "a big PTE with bits its format leaves undefined");
                if (big.state() != PteState::invalid) {  // valid, sparse or NV4K decides
                    report(big, va, big_bytes, PageSize::size_64k(), leaf);
                    continue;
                }
            }
            if (!has_small) continue;
            std::array<u64, 16> words{};
            static_assert(F::big_page_table.entry_coverage() == 16 * PageSize::size_4k().bytes());
            GPUMMU_TRY(
                read(small_table + (va - first_va) / small_bytes * 8, words, va, small_table));
            for (std::size_t i = 0; i < words.size(); ++i) {
                const u64 small_va = va + i * small_bytes;
                if (small_va > end_ - 1 || small_va + (small_bytes - 1) < begin_) continue;
                auto small = F::Pte::from_raw(words[i]);
                if (small.undefined_bits() != 0)
                    return fail(Error::malformed_record, small_va, small_table,
                                "a PTE with bits its format leaves undefined");
                report(small, small_va, small_bytes, PageSize::size_4k(), leaf);
            }
        }
        return success();
    }

    Result<void> pte(typename F::Pte entry, u64 va, u64 bytes, Level level,
                     VramAddress table) noexcept
    {
        if (entry.undefined_bits() != 0)
            return fail(Error::malformed_record, va, table,
                        "a PTE with bits its format leaves undefined");
        auto size = PageSize::from_shift(static_cast<u8>(std::countr_zero(bytes)));
        if (!size) return fail(Error::malformed_record, va, table, "a PTE of no page size");
        report(entry, va, bytes, *size, level);
        return success();
    }

    void report(typename F::Pte entry, u64 va, u64 bytes, PageSize size, Level level) noexcept
    {
        switch (entry.state()) {
        case PteState::valid: {
            WalkedPage page{VirtualAddress{va}, bytes, TranslationState::mapped, size,
                            entry.attributes(), level};
            visitor_.page(page);
            return;
        }
        case PteState::sparse: report_sparse(va, bytes, level); return;
        default: return;  // invalid, NV4K, mapping-nowhere: nothing is mapped there
        }
    }

    void report_sparse(u64 va, u64 bytes, Level level) noexcept
    {
        WalkedPage page{VirtualAddress{va}, bytes, TranslationState::sparse, PageSize::size_4k(),
                        PageAttributes{},   level};
        visitor_.page(page);
    }

    Result<void> enter(const WalkedTable &table, u64 alignment) noexcept
    {
        const u64 at = table.address.value();
        if (at % alignment != 0)
            return fail(Error::misaligned, table.first_va.value(), table.address,
                        "a table not aligned to its size");
        if (at >= memory_end_ || memory_end_ - at < table.bytes)
            return fail(Error::out_of_range, table.first_va.value(), table.address,
                        "a table outside the memory");
        auto accepted = visitor_.table(table);
        if (!accepted)
            return fail(accepted.error(), table.first_va.value(), table.address,
                        "a table the visitor refused (reached twice: a loop or a shared table)");
        return success();
    }

    Result<VramAddress> pointer(const TablePointer &to, u64 va, VramAddress parent) noexcept
    {
        if (to.aperture != Aperture::video) {
            (void)fail(Error::invalid_aperture, va, parent, "a table pointer into system memory");
            return failure(Error::invalid_aperture);
        }
        return VramAddress{to.address.value()};
    }

    template <std::size_t N>
    Result<void> read(VramAddress at, std::array<u64, N> &words, u64 va, VramAddress table) noexcept
    {
        auto got = memory_.read(at, words);
        if (!got) return fail(got.error(), va, table, "the memory failed to read");
        return success();
    }

    Result<void> fail(Error error, u64 va, VramAddress table, const char *reason) noexcept
    {
        if (failure_ != nullptr) *failure_ = WalkFailure{error, VirtualAddress{va}, table, reason};
        return failure(error);
    }

    M &memory_;
    u64 memory_end_;
    u64 begin_, end_;
    V &visitor_;
    WalkFailure *failure_;
};

}  // namespace detail

// Walks [begin, end) of the address space rooted at `root` (a VRAM table). `memory_end`:
// the first address past the memory the tables may lie in. On failure `*failure` (when
// given) says where and why; pages reported before it stand.
template <MmuFormat F, TableMemory M, TableWalkVisitor V>
[[nodiscard]] Result<void> walk_tables(M &memory, VramAddress memory_end, const TablePointer &root,
                                       VirtualAddress begin, VirtualAddress end, V &visitor,
                                       WalkFailure *failure = nullptr) noexcept
{
    const u64 limit = F::va_bits < 64 ? u64{1} << F::va_bits : 0;
    if (begin.value() >= end.value() || (limit != 0 && end.value() > limit)) {
        if (failure != nullptr)
            *failure = WalkFailure{Error::out_of_range, begin, VramAddress{root.address.value()},
                                   "a VA range that is empty or past the format's VA bits"};
        return gpummu::failure(Error::out_of_range);
    }
    detail::TableWalk<F, M, V> walk(memory, memory_end.value(), begin.value(), end.value(), visitor,
                                    failure);
    if (root.aperture != Aperture::video) {
        if (failure != nullptr)
            *failure = WalkFailure{Error::invalid_aperture, begin,
                                   VramAddress{root.address.value()}, "a root outside VRAM"};
        return gpummu::failure(Error::invalid_aperture);
    }
    return walk.directory(0, VramAddress{root.address.value()}, 0, true);
}

}  // namespace gpummu
