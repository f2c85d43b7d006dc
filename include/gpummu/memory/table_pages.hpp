// gpummu/memory/table_pages.hpp: where page-table pages come from.
//
// What it does
//   - `TablePageSource<S>`: hands out zeroed table pages of 4 KiB (directories and small-page
//     tables) or 256 B (big-page tables, 32 entries of 8 bytes) and takes them back.
//   - `BuddyTablePages<M>`: the usual source. 4 KiB pages are buddy blocks; a page that comes
//     back from the buddy known to be zero (prefer_cleared) is not filled again, otherwise it
//     is zeroed with one fill through the TableMemory. Pages handed back with
//     `known_zero = true` (an emptied table: every entry invalid, i.e. 0) return to the buddy
//     as cleared memory, so the next table costs no fill. 256-byte tables are packed sixteen
//     to a 4 KiB host page:
//
//         host page (4 KiB, one buddy block)
//         +------+------+------+-- ... --+------+
//         | 256B | 256B | 256B |         | 256B |    occupancy mask: 16 bits per page
//         +------+------+------+-- ... --+------+
//
//     A host page goes back to the buddy when its last big table is freed.
//   - `ReservingTablePages<M>` over BuddyTablePages: allocate ahead. reserve() takes the
//     pages a job may need now into a `TableReserve` (all or nothing); while that reserve
//     is active, table allocations are served from it and never reach the buddy, so work
//     planned earlier cannot run out of VRAM later (bind jobs size reserves with
//     PageTable::tables_needed). release() returns what was not used.
//
// What it does not do
//   - No locking. Host pages of big tables are tracked in a caller-supplied slot array
//     (`BigTableSlot`, one per host page): found by address through hash chains kept in
//     the slots, a page with room and an unused slot through lists, all O(1) expected.
//   - Errors leave everything unchanged: out_of_memory (buddy exhausted, or past the
//     budget), out_of_storage (no free big-table slot), not_allocated / double_free for a
//     table this source did not hand out, device errors from the fill.
#pragma once

#include <bit>
#include <concepts>
#include <cstddef>
#include <span>
#include <utility>

#include "gpummu/alloc/buddy.hpp"
#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/memory/table_memory_concepts.hpp"

namespace gpummu {

enum class TableSize : u16 { small_page_or_directory = 4096, big_page = 256 };

struct TablePage {
    VramAddress address{};
    TableSize size = TableSize::small_page_or_directory;
    constexpr bool operator==(const TablePage &) const noexcept = default;
};

template <class S>
concept TablePageSource = requires(S &source, TableSize size, TablePage page, bool known_zero)
{
    {
        source.allocate_table(size)
        } -> std::same_as<Result<TablePage>>;
    {
        source.free_table(page, known_zero)
        } -> std::same_as<Result<void>>;
};

// One host page that holds 256-byte big-page tables, and the links that find it in O(1):
// by its address (hash chains whose heads live in the slots too), among the pages with
// room, among the unused slots.
struct BigTableSlot {
    VramAddress page{};
    u16 used = 0;  // bit i: the table at page + 256 * i is handed out
    bool in_use = false;
    u32 bucket = 0xFFFF'FFFFu;    // head of the hash chain of bucket <this slot's index>
    u32 chain = 0xFFFF'FFFFu;     // next slot in its hash chain
    u32 next = 0xFFFF'FFFFu;      // next slot with room, or next unused slot
    u32 previous = 0xFFFF'FFFFu;  // previous slot with room
};

template <TableMemory M>
class BuddyTablePages {
public:
    static constexpr u64 page_bytes = 4096;
    static constexpr u64 big_table_bytes = 256;
    static constexpr unsigned big_tables_per_page = page_bytes / big_table_bytes;

    BuddyTablePages(BuddyAllocator &buddy, M &memory, std::span<BigTableSlot> slots) noexcept
        : buddy_(buddy),
          memory_(memory),
          slots_(slots)
    {
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            slots_[i] = BigTableSlot{};
            slots_[i].next = i + 1 < slots_.size() ? static_cast<u32>(i + 1) : none;
        }
        unused_ = slots_.empty() ? none : 0;
    }

    [[nodiscard]] Result<TablePage> allocate_table(TableSize size) noexcept
    {
        if (size == TableSize::big_page) return allocate_big_table();
        auto page = allocate_zeroed_page();
        if (!page) return failure(page.error());
        return TablePage{*page, TableSize::small_page_or_directory};
    }

    [[nodiscard]] Result<void> free_table(TablePage table, bool known_zero) noexcept
    {
        if (table.size == TableSize::big_page) return free_big_table(table.address);
        if (!table.address.is_aligned_to(page_bytes)) return failure(Error::misaligned);
        if (slots_in_use_ != 0 && find_slot(table.address) != none)
            return failure(Error::not_allocated);  // hosts big tables
        return give_back_page(table.address, known_zero);
    }

    // At most `bytes` of VRAM held at once (host pages of tables; a page holding big tables
    // counts whole). Past it allocate_table is out_of_memory. A budget below what is held
    // now only stops further growth.
    void set_budget(u64 bytes) noexcept { budget_ = bytes; }
    [[nodiscard]] u64 budget() const noexcept { return budget_; }
    [[nodiscard]] u64 vram_bytes() const noexcept { return held_; }

    // Counters for tests and benchmarks.
    [[nodiscard]] u64 fills() const noexcept { return fills_; }
    [[nodiscard]] u64 fills_skipped() const noexcept { return fills_skipped_; }
    [[nodiscard]] std::size_t host_pages_for_big_tables() const noexcept { return slots_in_use_; }

private:
    Result<VramAddress> allocate_zeroed_page() noexcept
    {
        if (page_bytes > budget_ || held_ > budget_ - page_bytes)
            return failure(Error::out_of_memory);  // this source's VRAM budget
        BuddyBlock block;
        auto allocation = buddy_.allocate(page_bytes, {.contiguous = true, .prefer_cleared = true},
                                          std::span<BuddyBlock>(&block, 1));
        if (!allocation) return failure(allocation.error());
        // The buddy says whether the page was known to be zero: only a dirty one is filled.
        if (block.cleared) {
            ++fills_skipped_;
        } else if (auto zeroed = memory_.fill(block.address, 0, page_bytes / sizeof(u64));
                   !zeroed) {
            (void)buddy_.free(block);
            return failure(zeroed.error());
        } else {
            ++fills_;
        }
        held_ += page_bytes;
        return block.address;
    }
    Result<void> give_back_page(VramAddress page, bool known_zero) noexcept
    {
        GPUMMU_TRY(buddy_.free(BuddyBlock{page, page_bytes}, known_zero));
        held_ -= page_bytes;
        return success();
    }

    static constexpr u32 none = 0xFFFF'FFFFu;

    Result<TablePage> allocate_big_table() noexcept
    {
        // A host page with room first: its tables were zeroed when they were freed or
        // when the page was allocated, so no fill is needed.
        if (with_room_ != none) {
            BigTableSlot &slot = slots_[with_room_];
            const auto index = static_cast<unsigned>(std::countr_one(slot.used));
            slot.used = static_cast<u16>(slot.used | (1u << index));
            if (slot.used == 0xFFFF) leave_room_list(with_room_);
            return TablePage{slot.page + index * big_table_bytes, TableSize::big_page};
        }
        if (unused_ == none) return failure(Error::out_of_storage);
        auto page = allocate_zeroed_page();
        if (!page) return failure(page.error());
        const u32 index = unused_;
        BigTableSlot &slot = slots_[index];
        unused_ = slot.next;
        slot.page = *page;
        slot.used = 1;
        slot.in_use = true;
        u32 &head = slots_[bucket_of(*page)].bucket;
        slot.chain = head;
        head = index;
        join_room_list(index);
        ++slots_in_use_;
        return TablePage{*page, TableSize::big_page};
    }

    Result<void> free_big_table(VramAddress address) noexcept
    {
        if (!address.is_aligned_to(big_table_bytes)) return failure(Error::misaligned);
        VramAddress page{align_down(address.value(), page_bytes)};
        const u32 index = find_slot(page);
        if (index == none) return failure(Error::not_allocated);
        BigTableSlot &slot = slots_[index];
        u16 bit = static_cast<u16>(1u << ((address - page) / big_table_bytes));
        if ((slot.used & bit) == 0) return failure(Error::double_free);
        // A freed big table must be zero again before it is reused without a fill.
        if (auto zeroed = memory_.fill(address, 0, big_table_bytes / sizeof(u64)); !zeroed)
            return failure(zeroed.error());
        if (slot.used == 0xFFFF) join_room_list(index);
        slot.used = static_cast<u16>(slot.used & ~bit);
        if (slot.used == 0) {
            (void)give_back_page(slot.page, true);  // all sixteen zeroed
            leave_room_list(index);
            // Out of its hash chain, then onto the unused list.
            u32 *link = &slots_[bucket_of(slot.page)].bucket;
            while (*link != index) link = &slots_[*link].chain;
            *link = slot.chain;
            const u32 bucket = slot.bucket;  // this slot's own bucket head stays
            slot = BigTableSlot{};
            slot.bucket = bucket;
            slot.next = unused_;
            unused_ = index;
            --slots_in_use_;
        }
        return success();
    }

    [[nodiscard]] u32 bucket_of(VramAddress page) const noexcept
    {
        const u64 hash = (page.value() >> 12) * 0x9E3779B97F4A7C15ull;
        return static_cast<u32>((hash >> 32) % slots_.size());
    }
    [[nodiscard]] u32 find_slot(VramAddress page) const noexcept
    {
        if (slots_.empty()) return none;
        for (u32 index = slots_[bucket_of(page)].bucket; index != none; index = slots_[index].chain)
            if (slots_[index].page == page) return index;
        return none;
    }
    void join_room_list(u32 index) noexcept
    {
        slots_[index].previous = none;
        slots_[index].next = with_room_;
        if (with_room_ != none) slots_[with_room_].previous = index;
        with_room_ = index;
    }
    void leave_room_list(u32 index) noexcept
    {
        BigTableSlot &slot = slots_[index];
        if (slot.previous != none)
            slots_[slot.previous].next = slot.next;
        else
            with_room_ = slot.next;
        if (slot.next != none) slots_[slot.next].previous = slot.previous;
        slot.next = slot.previous = none;
    }

    BuddyAllocator &buddy_;
    M &memory_;
    std::span<BigTableSlot> slots_;
    std::size_t slots_in_use_ = 0;  // host pages holding big tables
    u32 with_room_ = none;          // slots whose page has a free big table
    u32 unused_ = none;             // slots holding no page
    u64 fills_ = 0;
    u64 fills_skipped_ = 0;
    u64 budget_ = ~u64{0};
    u64 held_ = 0;  // bytes of host pages taken from the buddy
};

// Table pages allocated ahead for one job (see ReservingTablePages): caller storage for
// their addresses, filled by ReservingTablePages::reserve and drawn from while it is the
// active reserve.
class TableReserve {
public:
    TableReserve() noexcept = default;
    explicit TableReserve(std::span<TablePage> storage) noexcept : storage_(storage) {}
    TableReserve(const TableReserve &) = delete;
    TableReserve &operator=(const TableReserve &) = delete;
    TableReserve(TableReserve &&other) noexcept
        : storage_(other.storage_),
          count_(std::exchange(other.count_, 0))
    {
    }

    [[nodiscard]] std::size_t size() const noexcept { return count_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return storage_.size(); }
    [[nodiscard]] std::size_t count(TableSize size) const noexcept
    {
        std::size_t found = 0;
        for (std::size_t i = 0; i < count_; ++i) found += storage_[i].size == size ? 1u : 0u;
        return found;
    }

private:
    template <TableMemory>
    friend class ReservingTablePages;
    std::span<TablePage> storage_{};
    std::size_t count_ = 0;
};

// A TablePageSource over BuddyTablePages that can allocate ahead: reserve() takes the
// pages a job may need from the buddy now (all or nothing), and while a reserve is active
// (draw_from) allocate_table hands out its pages instead of asking the buddy, so the work
// that runs then cannot run out of VRAM, whatever other users of the buddy did meanwhile.
// Pages freed are always given back to the buddy (after the flush, as usual). Pages a job
// did not use go back with release().
template <TableMemory M>
class ReservingTablePages {
public:
    explicit ReservingTablePages(BuddyTablePages<M> &pages) noexcept : pages_(pages) {}

    // Adds `tables` 4 KiB pages and `big_tables` 256-byte tables to `reserve`. Errors:
    // out_of_storage (the reserve's storage is too small), out_of_memory; on error the
    // reserve is as it was.
    [[nodiscard]] Result<void> reserve(TableReserve &reserve, u64 tables, u64 big_tables) noexcept
    {
        if (tables + big_tables > reserve.storage_.size() - reserve.count_)
            return failure(Error::out_of_storage);
        const std::size_t before = reserve.count_;
        for (u64 i = 0; i < tables + big_tables; ++i) {
            auto page = pages_.allocate_table(i < tables ? TableSize::small_page_or_directory
                                                         : TableSize::big_page);
            if (!page) {
                while (reserve.count_ > before)
                    (void)pages_.free_table(reserve.storage_[--reserve.count_], true);
                return failure(page.error());
            }
            reserve.storage_[reserve.count_++] = *page;
        }
        return success();
    }
    // Gives every page still in `reserve` back (they were never written: known zero).
    void release(TableReserve &reserve) noexcept
    {
        while (reserve.count_ > 0)
            (void)pages_.free_table(reserve.storage_[--reserve.count_], true);
    }
    // While `reserve` is set (nullptr: none), allocations come from it. An empty reserve
    // is out_of_memory: the caller's bound was wrong, and nothing is taken from the buddy.
    void draw_from(TableReserve *reserve) noexcept { active_ = reserve; }

    [[nodiscard]] Result<TablePage> allocate_table(TableSize size) noexcept
    {
        if (active_ == nullptr) return pages_.allocate_table(size);
        for (std::size_t i = active_->count_; i-- > 0;) {
            if (active_->storage_[i].size != size) continue;
            const TablePage page = active_->storage_[i];
            active_->storage_[i] = active_->storage_[--active_->count_];
            ++drawn_;
            return page;
        }
        return failure(Error::out_of_memory);
    }
    [[nodiscard]] Result<void> free_table(TablePage page, bool known_zero) noexcept
    {
        return pages_.free_table(page, known_zero);
    }

    [[nodiscard]] BuddyTablePages<M> &pages() noexcept { return pages_; }
    [[nodiscard]] u64 drawn() const noexcept { return drawn_; }  // pages handed out of reserves

private:
    BuddyTablePages<M> &pages_;
    TableReserve *active_ = nullptr;
    u64 drawn_ = 0;
};

}  // namespace gpummu
