// gpummu/paging/page_table_node.hpp: the host-side shadow of one page table.
//
// What it does
//   - `EntryBits`: one flag per entry for up to 512 entries, with whole-range operations
//     (set, clear, any, all, count), so a page table checks and updates a run of PTEs with
//     a handful of word operations instead of one read per entry.
//   - `PageTableNode`: what the page table knows about a table it put in VRAM, so that it
//     never has to read VRAM back to decide what to do:
//
//         entry content     mapped  sparse_backed  child
//         none                 0         0          none      word is 0
//         sparse               0         1          none      sparse PTE / PDE
//         mapped               1         0          none      valid PTE (a large page at a
//         mapped over sparse   1         1          none      directory level); unmapping it
//                                                              returns it to sparse
//         table                0         0          node      PDE pointing to the child
//
//     A big-page table (32 entries of 64 KiB) also remembers which entries hold the
//     "no valid 4 KiB PTE" word (`no_valid_4k`), which is derived state, not content.
//   - `PageTableChildren`: the child node of every entry of a directory. For PD0 (dual
//     entries) slots [0, 256) are the small-page tables and [256, 512) the big-page tables.
//     A bitmap says which slots hold a table, so "no table below these entries" is a few
//     word tests; a block on its free list has every slot empty, so a new directory's
//     block needs no 2 KiB fill.
//   - `PageTableStorage`: caller-supplied pools of both (no heap allocation anywhere).
//
// Sizing: one node per table in VRAM (directories, small-page tables and big-page tables)
// plus those retired and waiting for a TLB flush; one children block per directory.
// Mapping 1 GiB with 4 KiB pages needs 512 small-page tables, 1 PD0, and one table per
// level above: 516 nodes (v2) and 4 children blocks. A node is 176 bytes, a block
// 2,120 (2 KiB of links and a 64-byte bitmap).
#pragma once

#include <array>
#include <bit>
#include <span>

#include "gpummu/core/types.hpp"
#include "gpummu/memory/table_pages.hpp"

namespace gpummu {

inline constexpr u32 no_table_node = 0xFFFF'FFFFu;

class EntryBits {
    // The helpers come first: clang 14 cannot evaluate, in a constant expression, a member
    // template defined below the member that calls it.
    //
    // Calls test(word, mask) for the 64-bit words the range [first, first + count) touches,
    // in order, until one returns true (then true; false when none did). `Words` is the
    // array itself, const or not.
    template <class Words, class Test>
    static constexpr bool some_word(Words &words, unsigned first, unsigned count,
                                    Test &&test) noexcept
    {
        while (count != 0) {
            const unsigned bit = first & 63u;
            const unsigned take = 64 - bit < count ? 64 - bit : count;
            const u64 mask = (take == 64 ? ~u64{0} : ((u64{1} << take) - 1)) << bit;
            if (test(words[first >> 6], mask)) return true;
            first += take;
            count -= take;
        }
        return false;
    }
    template <class Test>
    [[nodiscard]] constexpr bool some_word(unsigned first, unsigned count,
                                           Test &&test) const noexcept
    {
        return some_word(words_, first, count, test);
    }
    // Every word the range touches, with the mask of its bits in the range.
    template <class Visit>
    constexpr void for_each_word(unsigned first, unsigned count, Visit &&visit) noexcept
    {
        (void)some_word(words_, first, count, [&visit](u64 &word, u64 mask) {
            visit(word, mask);
            return false;
        });
    }
    template <class Visit>
    constexpr void for_each_word(unsigned first, unsigned count, Visit &&visit) const noexcept
    {
        (void)some_word(words_, first, count, [&visit](u64 word, u64 mask) {
            visit(word, mask);
            return false;
        });
    }

public:
    static constexpr unsigned capacity = 512;

    [[nodiscard]] constexpr bool test(unsigned index) const noexcept
    {
        return (words_[index >> 6] >> (index & 63u)) & 1u;
    }
    constexpr void assign(unsigned first, unsigned count, bool value) noexcept
    {
        for_each_word(first, count, [value](u64 &word, u64 mask) {
            word = value ? (word | mask) : (word & ~mask);
        });
    }
    // Every entry cleared (a table emptied whole: cheaper than assign over its range).
    constexpr void clear_all() noexcept { words_ = {}; }
    // Clears entries [0, 64); the caller knows the others are clear.
    constexpr void clear_first_word() noexcept { words_[0] = 0; }
    constexpr void set(unsigned index) noexcept { words_[index >> 6] |= u64{1} << (index & 63u); }
    constexpr void clear(unsigned index) noexcept
    {
        words_[index >> 6] &= ~(u64{1} << (index & 63u));
    }
    constexpr void assign(unsigned index, bool value) noexcept
    {
        if (value)
            set(index);
        else
            clear(index);
    }
    // any and all stop at the first word that decides them: a table's "all sparse?" check
    // after every operation (a 512-entry range) mostly ends in its first word.
    [[nodiscard]] constexpr bool any(unsigned first, unsigned count) const noexcept
    {
        return some_word(first, count, [](u64 word, u64 mask) { return (word & mask) != 0; });
    }
    [[nodiscard]] constexpr bool all(unsigned first, unsigned count) const noexcept
    {
        return !some_word(first, count, [](u64 word, u64 mask) { return (word & mask) != mask; });
    }
    [[nodiscard]] constexpr unsigned count(unsigned first, unsigned count) const noexcept
    {
        unsigned total = 0;
        for_each_word(first, count,
                      [&total](u64 word, u64 mask) { total += count_ones(word & mask); });
        return total;
    }
    [[nodiscard]] constexpr unsigned count() const noexcept { return count(0, capacity); }
    [[nodiscard]] constexpr u64 word(unsigned index) const noexcept { return words_[index]; }
    [[nodiscard]] constexpr bool none() const noexcept
    {
        u64 any = 0;
        for (u64 word : words_) any |= word;
        return any == 0;
    }
    // 16 consecutive flags per 64 KiB chunk of a small-page table: bit k of the result is
    // set when any of the flags [16k, 16k + 16) is.
    [[nodiscard]] constexpr u32 chunk_mask() const noexcept
    {
        u32 mask = 0;
        for (unsigned chunk = 0; chunk < 32; ++chunk)
            if (((words_[chunk / 4] >> ((chunk % 4) * 16)) & 0xFFFFu) != 0) mask |= 1u << chunk;
        return mask;
    }
    constexpr bool operator==(const EntryBits &) const noexcept = default;

private:
    std::array<u64, 8> words_{};
};

// The fixed-size part of a node (everything but its two entry bitmaps): a base, so that a
// node can be made blank without rewriting bitmaps it never used (PageTableNode::reset).
struct PageTableNodeFields {
    enum Flag : u8 {
        in_use = 1,
        prepared = 2,      // allocated by a prepare that has not been committed: not in VRAM yet
        retired = 4,       // unlinked; freed after the TLB batch that covers it is finished
        big = 8,           // a 256-byte big-page table
        caller_root = 16,  // the root page belongs to the caller: never freed
        folded = 32,       // retired holding words that are not zero (sparse words folded
                           // into the entry above, or tables a large page replaced)
        foreign = 64       // adopted: made by someone else (firmware); never retired or freed
    };
    TablePage page{};
    u32 parent = no_table_node;
    u32 next = no_table_node;      // free, prepared or retired list
    u32 children = no_table_node;  // index of the PageTableChildren block (directories)
    u16 parent_index = 0;          // entry index in the parent
    u16 live = 0;                  // entries with content or a child table
    u8 depth = 0;                  // level depth (big tables: the small-page table's depth)
    u8 flags = 0;
    u32 no_valid_4k = 0;  // big tables: entries whose word is the NV4K state

    [[nodiscard]] constexpr bool has(Flag flag) const noexcept { return (flags & flag) != 0; }
    constexpr bool operator==(const PageTableNodeFields &) const noexcept = default;
};

struct PageTableNode : PageTableNodeFields {
    EntryBits mapped;
    EntryBits sparse_backed;

    // Makes the node blank (equal to PageTableNode{}). A big-page table has 32 entries, so
    // only the first word of its bitmaps can hold a bit: the rest is not rewritten (a 64 KiB
    // unmap frees sixteen big tables per 4 KiB page, and rewriting the whole 176-byte node
    // was a quarter of the instructions of freeing one).
    constexpr void reset() noexcept
    {
        if (has(big)) {
            GPUMMU_ASSERT(!mapped.any(64, EntryBits::capacity - 64) &&
                          !sparse_backed.any(64, EntryBits::capacity - 64));
            static_cast<PageTableNodeFields &>(*this) = PageTableNodeFields{};
            mapped.clear_first_word();
            sparse_backed.clear_first_word();
        } else {
            *this = PageTableNode{};
        }
    }
    constexpr bool operator==(const PageTableNode &) const noexcept = default;
};

struct PageTableChildren {
    std::array<u32, 512> node{};
    EntryBits present;  // slot s set exactly when node[s] holds a table
    u32 next = no_table_node;
};

struct PageTableStorage {
    std::span<PageTableNode> nodes;
    std::span<PageTableChildren> children;
};

static_assert(sizeof(PageTableNode) <= 176);
static_assert(sizeof(PageTableChildren) <= 2120);

}  // namespace gpummu
