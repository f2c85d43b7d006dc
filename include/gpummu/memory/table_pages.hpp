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
//     A host page goes back when its last big table is freed.
//   - Spare pages: an emptied page that comes back known to be zero (an emptied 4 KiB table,
//     a host page whose sixteen big tables are all freed) is kept, up to `spare_limit()`
//     pages (0 unless set_spare_limit says; at most 16, 64 KiB), and is the next page handed
//     out: a table that comes and goes with a mapping costs no buddy split and merge and no
//     fill. Spare pages count as held (vram_bytes, the budget); release_spare_pages() gives
//     them to the buddy (a page table's release_root does), and so does a set_aside the
//     buddy or budget would refuse otherwise. take_back() returns a refused operation's
//     unused tables where they came from, so the refusal leaves the buddy as it was.
//   - `ReservingTablePages<M>` over BuddyTablePages: promise ahead. reserve() sets aside in
//     the buddy the pages a job may need (all or nothing) and records the promise in a
//     `TableReserve`; while that reserve is active, table allocations draw on the promise,
//     so work planned earlier cannot run out of VRAM later (bind jobs size reserves with
//     PageTable::tables_needed). No page is taken until a table needs it: a worst case
//     that is mostly unused costs two counter updates, not a buddy round trip per page.
//     release() gives back what was not drawn.
//
// What it does not do
//   - No locking. Host pages of big tables are tracked in a caller-supplied slot array
//     (`BigTableSlot`, one per host page): found by address through hash chains kept in
//     the slots, a page with room and an unused slot through lists, all O(1) expected.
//   - Errors leave everything unchanged: out_of_memory (buddy exhausted, or past the
//     budget), out_of_storage (no free big-table slot), not_allocated / double_free for a
//     table this source did not hand out (a spare page freed again is a double_free),
//     device errors from the fill.
//   - Other users of the buddy do not see spare pages as free: at most spare_limit() pages
//     per source stay out of the buddy until released.
#pragma once

#include <array>
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
    static constexpr unsigned spare_capacity = 16;  // pages kept for reuse, at most

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
        return give_back(table, known_zero, Return::keep_spare);
    }

    // A table handed out by the latest allocate_table calls comes back unused (a refused
    // operation's rollback, newest first): a page that was a spare is a spare again, in
    // its place; a page from the buddy goes back to it. So a refusal leaves the buddy and
    // the spares as they were. Same errors as free_table.
    [[nodiscard]] Result<void> take_back(TablePage table) noexcept
    {
        return give_back(table, true, Return::as_it_came);
    }

    // ---- spare pages (emptied pages kept for reuse) ----------------------------------------
    // At most `pages` (up to spare_capacity) are kept; spares beyond it go to the buddy now.
    // 0 gives every emptied page straight back.
    void set_spare_limit(unsigned pages) noexcept
    {
        spare_limit_ = std::min(pages, spare_capacity);
        while (spare_count_ > spare_limit_) release_one_spare();
    }
    [[nodiscard]] unsigned spare_limit() const noexcept { return spare_limit_; }
    [[nodiscard]] unsigned spare_pages() const noexcept { return spare_count_; }
    // Gives every spare page back to the buddy, as cleared memory.
    void release_spare_pages() noexcept
    {
        while (spare_count_ != 0) release_one_spare();
    }

    // At most `bytes` of VRAM held at once (host pages of tables; a page holding big tables
    // counts whole; pages set aside count as held). Past it allocate_table is
    // out_of_memory. A budget below what is held now only stops further growth.
    void set_budget(u64 bytes) noexcept { budget_ = bytes; }
    [[nodiscard]] u64 budget() const noexcept { return budget_; }
    [[nodiscard]] u64 vram_bytes() const noexcept { return held_; }

    // ---- pages set aside (for ReservingTablePages) ---------------------------------------
    // Promises `pages` 4 KiB pages for small tables and directories and `big_pages` host
    // pages for big tables: the buddy sets them aside (BuddyAllocator::set_aside), the
    // budget counts them, and `big_pages` big-table slots stay free for them. Errors:
    // out_of_memory (buddy or budget), out_of_storage (big-table slots); nothing changes.
    [[nodiscard]] Result<void> set_aside(u64 pages, u64 big_pages) noexcept
    {
        const u64 total = pages + big_pages;
        // Spare pages are held: what the budget or the buddy lacks, they may make up (and
        // are released only then, and only if that is enough).
        const bool budget_short = !within_budget(total);
        if (budget_short && !within_budget(total, spare_count_))
            return failure(Error::out_of_memory);
        if (big_pages > slots_.size() - slots_in_use_ - slots_promised_)
            return failure(Error::out_of_storage);
        const u64 available = buddy_.available_bytes() / buddy_.chunk_bytes();  // 4 KiB chunks
        if (total > available + spare_count_) return failure(Error::out_of_memory);
        if (budget_short || total > available) release_spare_pages();
        GPUMMU_TRY(buddy_.set_aside(total));
        set_aside_ += total;
        slots_promised_ += big_pages;
        return success();
    }
    // Gives back what a promise did not use.
    void release_set_aside(u64 pages, u64 big_pages) noexcept
    {
        GPUMMU_ASSERT(pages + big_pages <= set_aside_ && big_pages <= slots_promised_);
        buddy_.release_set_aside(pages + big_pages);
        set_aside_ -= pages + big_pages;
        slots_promised_ -= big_pages;
    }
    // A small table or directory page drawn on the promise: out_of_memory cannot happen
    // (only a device error zeroing the page). A spare page serves it, and the promise of
    // one page goes back to the buddy.
    [[nodiscard]] Result<TablePage> allocate_set_aside_page() noexcept
    {
        auto page = allocate_zeroed_page(true);
        if (!page) return failure(page.error());
        return TablePage{*page, TableSize::small_page_or_directory};
    }
    // A big table; `host_pages` is the caller's share of the promised big-table pages: a
    // new host page is drawn on it only when no page has room (so b tables draw at most
    // ceil(b / 16) pages, whatever was freed meanwhile), and it is decremented then.
    [[nodiscard]] Result<TablePage> allocate_set_aside_big_table(u64 &host_pages) noexcept
    {
        if (with_room_ != none) return take_from_room();
        if (host_pages == 0) return failure(Error::out_of_memory);  // the caller's bound
        auto table = new_big_table_page(true);
        if (table) --host_pages;
        return table;
    }
    [[nodiscard]] u64 set_aside_pages() const noexcept { return set_aside_; }

    // Counters for tests and benchmarks.
    [[nodiscard]] u64 fills() const noexcept { return fills_; }
    [[nodiscard]] u64 fills_skipped() const noexcept { return fills_skipped_; }
    [[nodiscard]] std::size_t host_pages_for_big_tables() const noexcept { return slots_in_use_; }

private:
    // Where an emptied page goes: kept as a spare (room permitting), or where it came from
    // (a spare popped last is still in the array just above the top).
    enum class Return : u8 { keep_spare, as_it_came };

    Result<void> give_back(TablePage table, bool known_zero, Return how) noexcept
    {
        if (table.size == TableSize::big_page) return free_big_table(table.address, how);
        if (!table.address.is_aligned_to(page_bytes)) return failure(Error::misaligned);
        if (slots_in_use_ != 0 && find_slot(table.address) != none)
            return failure(Error::not_allocated);  // hosts big tables
        for (unsigned i = 0; i < spare_count_; ++i)
            if (spares_[i] == table.address) return failure(Error::double_free);
        if (known_zero && spare_count_ < spare_limit_ &&
            (how == Return::keep_spare || spares_[spare_count_] == table.address)) {
            // Kept: it must be a page the buddy handed out.
            GPUMMU_TRY(buddy_.check_allocated(BuddyBlock{table.address, page_bytes}));
            spares_[spare_count_++] = table.address;
            return success();
        }
        return give_back_page(table.address, known_zero);
    }

    // A zeroed 4 KiB page: a spare, or from the buddy; `promised`: drawn on the pages set
    // aside.
    Result<VramAddress> allocate_zeroed_page(bool promised = false) noexcept
    {
        GPUMMU_ASSERT(!promised || set_aside_ > 0);
        if (spare_count_ != 0) {  // already held and zero: no budget change, no fill
            if (promised) {
                buddy_.release_set_aside(1);
                --set_aside_;
            }
            ++fills_skipped_;
            return spares_[--spare_count_];
        }
        if (!promised && !within_budget(1)) return failure(Error::out_of_memory);
        BuddyBlock block;
        auto allocation = buddy_.allocate(
            page_bytes, {.contiguous = true, .prefer_cleared = true, .from_set_aside = promised},
            std::span<BuddyBlock>(&block, 1));
        if (!allocation) return failure(allocation.error());
        if (promised) --set_aside_;
        // The buddy says whether the page was known to be zero: only a dirty one is filled.
        if (block.cleared) {
            ++fills_skipped_;
        } else if (auto zeroed = memory_.fill(block.address, 0, page_bytes / sizeof(u64));
                   !zeroed) {
            (void)buddy_.free(block);
            if (promised) {  // the promise stands: the chunk just freed is there to keep it
                (void)buddy_.set_aside(1);
                ++set_aside_;
            }
            return failure(zeroed.error());
        } else {
            ++fills_;
        }
        held_ += page_bytes;
        return block.address;
    }
    // Do `pages` more pages fit the budget, beside those held (less `returned` spare pages)
    // and those promised?
    [[nodiscard]] bool within_budget(u64 pages, u64 returned = 0) const noexcept
    {
        const u64 committed = held_ - returned * page_bytes + set_aside_ * page_bytes;
        return pages <= (budget_ - std::min(budget_, committed)) / page_bytes;
    }
    Result<void> give_back_page(VramAddress page, bool known_zero) noexcept
    {
        GPUMMU_TRY(buddy_.free(BuddyBlock{page, page_bytes}, known_zero));
        held_ -= page_bytes;
        return success();
    }
    void release_one_spare() noexcept
    {
        // A spare was checked allocated when kept, and nothing else frees it.
        [[maybe_unused]] auto freed = give_back_page(spares_[--spare_count_], true);
        GPUMMU_ASSERT(freed);
    }

    static constexpr u32 none = 0xFFFF'FFFFu;

    Result<TablePage> allocate_big_table() noexcept
    {
        // A host page with room first: its tables were zeroed when they were freed or
        // when the page was allocated, so no fill is needed.
        if (with_room_ != none) return take_from_room();
        // Slots promised to pages set aside are not free.
        if (slots_in_use_ + slots_promised_ >= slots_.size()) return failure(Error::out_of_storage);
        return new_big_table_page(false);
    }
    Result<TablePage> take_from_room() noexcept
    {
        BigTableSlot &slot = slots_[with_room_];
        const auto index = static_cast<unsigned>(std::countr_one(slot.used));
        slot.used = static_cast<u16>(slot.used | (1u << index));
        if (slot.used == 0xFFFF) leave_room_list(with_room_);
        return TablePage{slot.page + index * big_table_bytes, TableSize::big_page};
    }
    // A new host page for big tables, its first table handed out; `promised`: drawn on the
    // pages (and slots) set aside.
    Result<TablePage> new_big_table_page(bool promised) noexcept
    {
        GPUMMU_ASSERT(unused_ != none);
        auto page = allocate_zeroed_page(promised);
        if (!page) return failure(page.error());
        if (promised) --slots_promised_;
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

    Result<void> free_big_table(VramAddress address, Return how) noexcept
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
            // All sixteen zeroed: a spare, or back to the buddy as cleared memory.
            if (spare_count_ < spare_limit_ &&
                (how == Return::keep_spare || spares_[spare_count_] == slot.page))
                spares_[spare_count_++] = slot.page;
            else
                (void)give_back_page(slot.page, true);
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
    u64 held_ = 0;            // bytes of host pages taken from the buddy (spares included)
    u64 set_aside_ = 0;       // pages promised (set_aside), not yet drawn
    u64 slots_promised_ = 0;  // big-table slots kept for promised pages
    // Emptied zero pages kept (held), newest last; entries above the count are the pages
    // handed out from there since, which take_back recognizes.
    std::array<VramAddress, spare_capacity> spares_{};
    unsigned spare_count_ = 0;
    unsigned spare_limit_ = 0;
};

// The table pages promised to one job (see ReservingTablePages): counts of what may still
// be drawn, filled by ReservingTablePages::reserve. Holds no page: the buddy keeps the
// promise (set_aside) and hands a page out only when a table is made.
class TableReserve {
public:
    TableReserve() noexcept = default;
    TableReserve(const TableReserve &) = delete;
    TableReserve &operator=(const TableReserve &) = delete;
    TableReserve(TableReserve &&other) noexcept
        : tables_(std::exchange(other.tables_, 0)),
          big_tables_(std::exchange(other.big_tables_, 0)),
          big_pages_(std::exchange(other.big_pages_, 0))
    {
    }
    ~TableReserve() { GPUMMU_ASSERT(empty()); }  // released, or drawn to the end

    [[nodiscard]] u64 tables() const noexcept { return tables_; }  // 4 KiB tables left
    [[nodiscard]] u64 big_tables() const noexcept { return big_tables_; }
    [[nodiscard]] u64 big_table_pages() const noexcept { return big_pages_; }  // host pages
    [[nodiscard]] bool empty() const noexcept
    {
        return tables_ == 0 && big_tables_ == 0 && big_pages_ == 0;
    }

private:
    template <TableMemory>
    friend class ReservingTablePages;
    u64 tables_ = 0;
    u64 big_tables_ = 0;
    u64 big_pages_ = 0;  // host pages set aside for the big tables
};

// A TablePageSource over BuddyTablePages that can promise ahead: reserve() sets aside in
// the buddy the pages a job may need (all or nothing), and while a reserve is active
// (draw_from) allocate_table draws on its promise instead of competing for free memory, so
// the work that runs then cannot run out of VRAM, whatever other users of the buddy did
// meanwhile. Big tables share host pages: b of them are promised ceil(b / 16) pages, since
// a new host page is taken only when no page has room. Pages freed are always given back
// to the buddy (after the flush, as usual). What a job did not draw goes back with
// release().
template <TableMemory M>
class ReservingTablePages {
public:
    explicit ReservingTablePages(BuddyTablePages<M> &pages) noexcept : pages_(pages) {}

    // Adds `tables` 4 KiB pages and `big_tables` 256-byte tables to `reserve`. Errors:
    // out_of_memory (the buddy or the budget), out_of_storage (big-table slots); on error
    // the reserve is as it was.
    [[nodiscard]] Result<void> reserve(TableReserve &reserve, u64 tables, u64 big_tables) noexcept
    {
        const u64 per_page = BuddyTablePages<M>::big_tables_per_page;
        const u64 big_pages = big_tables / per_page + (big_tables % per_page != 0 ? 1 : 0);
        GPUMMU_TRY(pages_.set_aside(tables, big_pages));
        reserve.tables_ += tables;
        reserve.big_tables_ += big_tables;
        reserve.big_pages_ += big_pages;
        return success();
    }
    // Gives back what `reserve` still promises; it is empty afterwards.
    void release(TableReserve &reserve) noexcept
    {
        pages_.release_set_aside(reserve.tables_, reserve.big_pages_);
        reserve.tables_ = reserve.big_tables_ = reserve.big_pages_ = 0;
    }
    // While `reserve` is set (nullptr: none), allocations draw on it. A reserve that has no
    // table of the size left is out_of_memory: the caller's bound was wrong, and nothing is
    // taken from the buddy.
    void draw_from(TableReserve *reserve) noexcept { active_ = reserve; }

    [[nodiscard]] Result<TablePage> allocate_table(TableSize size) noexcept
    {
        if (active_ == nullptr) return pages_.allocate_table(size);
        Result<TablePage> table = failure(Error::out_of_memory);
        if (size == TableSize::big_page) {
            if (active_->big_tables_ == 0) return table;
            table = pages_.allocate_set_aside_big_table(active_->big_pages_);
            if (table) --active_->big_tables_;
        } else {
            if (active_->tables_ == 0) return table;
            table = pages_.allocate_set_aside_page();
            if (table) --active_->tables_;
        }
        if (table) ++drawn_;
        return table;
    }
    [[nodiscard]] Result<void> free_table(TablePage page, bool known_zero) noexcept
    {
        return pages_.free_table(page, known_zero);
    }
    [[nodiscard]] Result<void> take_back(TablePage page) noexcept { return pages_.take_back(page); }

    void release_spare_pages() noexcept { pages_.release_spare_pages(); }

    [[nodiscard]] BuddyTablePages<M> &pages() noexcept { return pages_; }
    [[nodiscard]] u64 drawn() const noexcept { return drawn_; }  // tables drawn on reserves

private:
    BuddyTablePages<M> &pages_;
    TableReserve *active_ = nullptr;
    u64 drawn_ = 0;
};

}  // namespace gpummu
