// BuddyTablePages: zeroed table pages, fills skipped for cleared memory, 256-byte big-page
// tables packed sixteen to a host page, and every refusal.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "gpummu/memory/host_memory.hpp"
#include "gpummu/memory/table_pages.hpp"
#include "support/buddy_fixture.hpp"

using namespace gpummu;
using testing::BuddyFixture;
using testing::range_of;

static_assert(TablePageSource<BuddyTablePages<HostMemory>>);

namespace {
constexpr u64 KiB = 1024;

struct Rig {
    std::vector<u64> image;
    HostMemory memory;
    BuddyFixture vram;
    std::vector<BigTableSlot> slots;
    BuddyTablePages<HostMemory> pages;

    explicit Rig(u64 bytes, std::size_t slot_count = 8)
        : image(bytes / 8, ~u64{0}),  // garbage: every table must be zeroed before use
          memory(image),
          vram(BuddyFixture::make({range_of(0, bytes)})),
          slots(slot_count),
          pages(vram.buddy, memory, slots)
    {
    }
    // `count` 4 KiB tables, each required to succeed.
    std::vector<TablePage> small_tables(int count)
    {
        std::vector<TablePage> tables;
        for (int i = 0; i < count; ++i) {
            auto table = pages.allocate_table(TableSize::small_page_or_directory);
            REQUIRE(table);
            tables.push_back(*table);
        }
        return tables;
    }
    bool is_zero(VramAddress address, u64 bytes) const
    {
        auto first = image.begin() + static_cast<std::ptrdiff_t>(address.value() / 8);
        return std::all_of(first, first + static_cast<std::ptrdiff_t>(bytes / 8),
                           [](u64 w) { return w == 0; });
    }
};
}  // namespace

TEST_CASE("a 4 KiB table page arrives zeroed; a cleared page comes back without a fill")
{
    Rig rig(64 * KiB);
    auto table = rig.pages.allocate_table(TableSize::small_page_or_directory);
    REQUIRE(table);
    CHECK(table->size == TableSize::small_page_or_directory);
    CHECK(table->address.is_aligned_to(4 * KiB));
    CHECK(rig.is_zero(table->address, 4 * KiB));
    CHECK(rig.pages.fills() == 1);
    REQUIRE(rig.pages.free_table(*table, true));  // an emptied table: all entries invalid (0)
    auto again = rig.pages.allocate_table(TableSize::small_page_or_directory);
    REQUIRE(again);
    CHECK(again->address == table->address);
    CHECK(rig.pages.fills() == 1);
    CHECK(rig.pages.fills_skipped() == 1);
    CHECK(rig.vram.buddy.check_invariants());
}

TEST_CASE("big-page tables pack sixteen to a host page and free it with the last one")
{
    Rig rig(64 * KiB);
    u64 free_before = rig.vram.buddy.free_bytes();
    std::vector<TablePage> tables;
    for (int i = 0; i < 17; ++i) {
        auto table = rig.pages.allocate_table(TableSize::big_page);
        REQUIRE(table);
        CHECK(table->address.is_aligned_to(256));
        CHECK(rig.is_zero(table->address, 256));
        tables.push_back(*table);
    }
    for (std::size_t i = 1; i < 16; ++i) CHECK(tables[i].address == tables[0].address + 256u * i);
    CHECK(rig.pages.host_pages_for_big_tables() == 2);
    CHECK(rig.vram.buddy.free_bytes() == free_before - 8 * KiB);
    // Dirty a table, free it, get it back: zeroed, and no new host page.
    std::fill_n(rig.image.begin() + static_cast<std::ptrdiff_t>(tables[3].address.value() / 8), 32,
                0x1234);
    REQUIRE(rig.pages.free_table(tables[3], false));
    auto reused = rig.pages.allocate_table(TableSize::big_page);
    REQUIRE(reused);
    CHECK(reused->address == tables[3].address);
    CHECK(rig.is_zero(reused->address, 256));
    CHECK(rig.pages.host_pages_for_big_tables() == 2);
    for (const TablePage &table : tables) REQUIRE(rig.pages.free_table(table, false));
    CHECK(rig.pages.host_pages_for_big_tables() == 0);
    CHECK(rig.vram.buddy.free_bytes() == free_before);
    CHECK(rig.vram.buddy.check_invariants());
}

TEST_CASE("refusals: unknown, double, misaligned, out of slots, out of memory")
{
    Rig rig(16 * KiB, 1);
    auto big = rig.pages.allocate_table(TableSize::big_page);
    REQUIRE(big);
    CHECK(rig.pages.free_table(TablePage{big->address + 8, TableSize::big_page}, false).error() ==
          Error::misaligned);
    CHECK(rig.pages.free_table(TablePage{big->address + 256, TableSize::big_page}, false).error() ==
          Error::double_free);  // same host page, never handed out
    CHECK(rig.pages.free_table(TablePage{VramAddress{12 * KiB}, TableSize::big_page}, false)
              .error() == Error::not_allocated);
    // The host page of big tables cannot be freed as a small table.
    CHECK(rig.pages.free_table(TablePage{big->address, TableSize::small_page_or_directory}, false)
              .error() == Error::not_allocated);
    for (int i = 1; i < 16; ++i) REQUIRE(rig.pages.allocate_table(TableSize::big_page));
    CHECK(rig.pages.allocate_table(TableSize::big_page).error() ==
          Error::out_of_storage);  // one slot only
    REQUIRE(rig.pages.allocate_table(TableSize::small_page_or_directory));
    REQUIRE(rig.pages.allocate_table(TableSize::small_page_or_directory));
    REQUIRE(rig.pages.allocate_table(TableSize::small_page_or_directory));
    CHECK(rig.pages.allocate_table(TableSize::small_page_or_directory).error() ==
          Error::out_of_memory);
    CHECK(rig.vram.buddy.check_invariants());
}

TEST_CASE("a reserve promises pages ahead, hands them out while active, gives back the rest")
{
    static_assert(TablePageSource<ReservingTablePages<HostMemory>>);
    Rig rig(64 * KiB, 2);
    ReservingTablePages<HostMemory> source(rig.pages);
    BuddyAllocator &buddy = rig.vram.buddy;
    const u64 free_before = buddy.free_bytes();
    TableReserve reserve;
    REQUIRE(source.reserve(reserve, 3, 2));
    CHECK(reserve.tables() == 3);
    CHECK(reserve.big_tables() == 2);
    CHECK(reserve.big_table_pages() == 1);  // two big tables share a host page
    // A promise, not pages: nothing left the buddy, but 4 pages are no longer available.
    CHECK(buddy.free_bytes() == free_before);
    CHECK(buddy.set_aside_bytes() == 4 * 4 * KiB);
    CHECK(buddy.available_bytes() == free_before - 4 * 4 * KiB);
    CHECK(rig.pages.set_aside_pages() == 4);
    CHECK(buddy.check_invariants());

    // More than the VRAM left, or than the big-table slots left: refused, nothing changes.
    TableReserve greedy;
    CHECK(source.reserve(greedy, 13, 0).error() == Error::out_of_memory);
    CHECK(source.reserve(greedy, 0, 17).error() == Error::out_of_storage);  // 2 more pages
    CHECK(greedy.empty());
    CHECK(buddy.available_bytes() == free_before - 4 * 4 * KiB);
    // The second slot is free, the first promised: one direct big table, then no slot.
    auto direct_big = rig.pages.allocate_table(TableSize::big_page);
    REQUIRE(direct_big);
    for (int i = 1; i < 16; ++i) REQUIRE(rig.pages.allocate_table(TableSize::big_page));
    CHECK(rig.pages.allocate_table(TableSize::big_page).error() == Error::out_of_storage);

    // Take everything available: the buddy refuses more, only the reserve can serve now.
    std::vector<BuddyBlock> hog(16);
    auto taken = buddy.allocate(buddy.available_bytes(), {}, hog);
    REQUIRE(taken);
    CHECK(buddy.free_bytes() == 4 * 4 * KiB);
    CHECK(source.allocate_table(TableSize::small_page_or_directory).error() ==
          Error::out_of_memory);
    source.draw_from(&reserve);
    std::vector<TablePage> drawn;
    for (int i = 0; i < 3; ++i) {
        auto page = source.allocate_table(TableSize::small_page_or_directory);
        REQUIRE(page);
        CHECK(rig.is_zero(page->address, 4 * KiB));
        drawn.push_back(*page);
    }
    // Its three small tables are drawn: a fourth is refused without asking the buddy.
    CHECK(source.allocate_table(TableSize::small_page_or_directory).error() ==
          Error::out_of_memory);
    CHECK(buddy.free_bytes() == 1 * 4 * KiB);
    auto big = source.allocate_table(TableSize::big_page);  // a new host page (promised)
    REQUIRE(big);
    CHECK(reserve.big_table_pages() == 0);
    auto second_big = source.allocate_table(TableSize::big_page);  // the same page's room
    REQUIRE(second_big);
    CHECK(second_big->address - big->address == 256);
    CHECK(source.allocate_table(TableSize::big_page).error() == Error::out_of_memory);
    CHECK(reserve.empty());
    CHECK(source.drawn() == 5);
    CHECK(buddy.free_bytes() == 0);
    CHECK(buddy.set_aside_bytes() == 0);
    source.draw_from(nullptr);
    source.release(reserve);  // nothing left to give back
    for (const TablePage &page : drawn) REQUIRE(source.free_table(page, true));
    REQUIRE(source.free_table(*big, true));
    REQUIRE(source.free_table(*second_big, true));

    // A reserve released undrawn gives its whole promise back.
    TableReserve unused;
    REQUIRE(source.reserve(unused, 2, 1));
    CHECK(buddy.set_aside_bytes() == 3 * 4 * KiB);
    source.release(unused);
    CHECK(unused.empty());
    CHECK(buddy.set_aside_bytes() == 0);
    CHECK(rig.pages.set_aside_pages() == 0);
    REQUIRE(buddy.free(taken->blocks));
    CHECK(buddy.check_invariants());
}

TEST_CASE("pages set aside count against the budget")
{
    Rig rig(64 * KiB);
    ReservingTablePages<HostMemory> source(rig.pages);
    auto held = rig.pages.allocate_table(TableSize::small_page_or_directory);
    REQUIRE(held);
    rig.pages.set_budget(3 * 4 * KiB);  // the held page and two more
    TableReserve reserve;
    CHECK(source.reserve(reserve, 3, 0).error() == Error::out_of_memory);
    REQUIRE(source.reserve(reserve, 2, 0));
    // The two promised pages fill the budget: a direct allocation is past it.
    CHECK(rig.pages.allocate_table(TableSize::small_page_or_directory).error() ==
          Error::out_of_memory);
    source.draw_from(&reserve);
    auto first = source.allocate_table(TableSize::small_page_or_directory);
    auto second = source.allocate_table(TableSize::small_page_or_directory);
    source.draw_from(nullptr);
    REQUIRE(first);
    REQUIRE(second);
    CHECK(rig.pages.vram_bytes() == 3 * 4 * KiB);
    for (const TablePage &page : {*held, *first, *second}) REQUIRE(source.free_table(page, false));
    CHECK(rig.vram.buddy.check_invariants());
}

TEST_CASE("spare pages: emptied zero pages are kept for reuse, held, and given back on demand")
{
    Rig rig(64 * KiB, 2);
    BuddyAllocator &buddy = rig.vram.buddy;
    const u64 free_before = buddy.free_bytes();
    CHECK(rig.pages.spare_limit() == 0);  // off unless asked for
    rig.pages.set_spare_limit(1000);
    CHECK(rig.pages.spare_limit() == BuddyTablePages<HostMemory>::spare_capacity);
    rig.pages.set_spare_limit(2);

    std::vector<TablePage> tables = rig.small_tables(3);
    // A dirty page is not kept (it would need a fill); two zero pages are, the third is not.
    REQUIRE(rig.pages.free_table(tables[0], false));
    CHECK(rig.pages.spare_pages() == 0);
    CHECK(buddy.free_bytes() == free_before - 2 * 4 * KiB);
    REQUIRE(rig.pages.free_table(tables[1], true));
    REQUIRE(rig.pages.free_table(tables[2], true));
    CHECK(rig.pages.spare_pages() == 2);
    CHECK(buddy.free_bytes() == free_before - 2 * 4 * KiB);  // still held
    CHECK(rig.pages.vram_bytes() == 2 * 4 * KiB);
    // A spare freed again, or a page the buddy never handed out, is refused.
    CHECK(rig.pages.free_table(tables[2], true).error() == Error::double_free);
    CHECK(rig.pages.free_table(tables[2], false).error() == Error::double_free);
    CHECK(rig.pages.free_table(tables[0], true).error() == Error::double_free);  // free in buddy
    CHECK(rig.pages.spare_pages() == 2);

    // The next pages are the spares, last kept first: no buddy change, no fill.
    const u64 fills = rig.pages.fills();
    auto reused = rig.pages.allocate_table(TableSize::small_page_or_directory);
    REQUIRE(reused);
    CHECK(reused->address == tables[2].address);
    CHECK(rig.pages.fills() == fills);
    CHECK(buddy.free_bytes() == free_before - 2 * 4 * KiB);
    CHECK(rig.pages.spare_pages() == 1);

    // A budget counts spares as held: the kept page plus the one in use fill a budget of two.
    rig.pages.set_budget(2 * 4 * KiB);
    auto from_spare = rig.pages.allocate_table(TableSize::small_page_or_directory);
    REQUIRE(from_spare);
    CHECK(from_spare->address == tables[1].address);
    CHECK(rig.pages.allocate_table(TableSize::small_page_or_directory).error() ==
          Error::out_of_memory);
    rig.pages.set_budget(~u64{0});

    // A host page of big tables whose last table is freed becomes a spare too.
    auto big = rig.pages.allocate_table(TableSize::big_page);
    REQUIRE(big);
    REQUIRE(rig.pages.free_table(*big, false));  // the source zeroes big tables itself
    CHECK(rig.pages.spare_pages() == 1);
    CHECK(rig.pages.host_pages_for_big_tables() == 0);
    auto small_from_big = rig.pages.allocate_table(TableSize::small_page_or_directory);
    REQUIRE(small_from_big);
    CHECK(rig.is_zero(small_from_big->address, 4 * KiB));

    // Lowering the limit gives the excess back; release_spare_pages gives back the rest,
    // as cleared memory.
    REQUIRE(rig.pages.free_table(*reused, true));
    REQUIRE(rig.pages.free_table(*from_spare, true));
    REQUIRE(rig.pages.free_table(*small_from_big, true));
    CHECK(rig.pages.spare_pages() == 2);
    rig.pages.set_spare_limit(1);
    CHECK(rig.pages.spare_pages() == 1);
    const u64 cleared_before = buddy.stats().cleared_bytes;
    rig.pages.release_spare_pages();
    CHECK(rig.pages.spare_pages() == 0);
    CHECK(buddy.stats().cleared_bytes == cleared_before + 4 * KiB);
    CHECK(buddy.free_bytes() == free_before);
    CHECK(rig.pages.vram_bytes() == 0);
    CHECK(buddy.check_invariants());
}

TEST_CASE("spare pages make up what a promise lacks, and serve it; a refusal keeps them")
{
    Rig rig(64 * KiB, 2);
    BuddyAllocator &buddy = rig.vram.buddy;
    ReservingTablePages<HostMemory> source(rig.pages);
    rig.pages.set_spare_limit(4);
    std::vector<TablePage> tables = rig.small_tables(4);
    std::vector<BuddyBlock> hog(16);
    auto taken = buddy.allocate(buddy.available_bytes(), {}, hog);  // 12 pages
    REQUIRE(taken);
    for (const TablePage &table : tables) REQUIRE(rig.pages.free_table(table, true));
    CHECK(rig.pages.spare_pages() == 4);
    CHECK(buddy.available_bytes() == 0);

    // Five pages: four spares cannot make them up: refused, the spares stay.
    TableReserve reserve;
    CHECK(source.reserve(reserve, 5, 0).error() == Error::out_of_memory);
    CHECK(rig.pages.spare_pages() == 4);
    CHECK(reserve.empty());
    // Three: the spares go back to the buddy, which then promises them.
    REQUIRE(source.reserve(reserve, 3, 0));
    CHECK(rig.pages.spare_pages() == 0);
    CHECK(buddy.set_aside_bytes() == 3 * 4 * KiB);
    CHECK(buddy.available_bytes() == 4 * KiB);
    source.release(reserve);

    // A budget short by what the spares hold: the same, against the budget.
    REQUIRE(buddy.free(taken->blocks));
    for (int i = 0; i < 2; ++i) {
        auto table = rig.pages.allocate_table(TableSize::small_page_or_directory);
        REQUIRE(table);
        REQUIRE(rig.pages.free_table(*table, true));
    }
    CHECK(rig.pages.spare_pages() == 1);  // the same page twice: one spare
    rig.pages.set_budget(2 * 4 * KiB);
    CHECK(source.reserve(reserve, 3, 0).error() == Error::out_of_memory);
    CHECK(rig.pages.spare_pages() == 1);
    REQUIRE(source.reserve(reserve, 2, 0));
    CHECK(rig.pages.spare_pages() == 0);
    source.release(reserve);

    // A spare serves a promised page; the promise of one page goes back to the buddy.
    rig.pages.set_budget(~u64{0});
    auto table = rig.pages.allocate_table(TableSize::small_page_or_directory);
    REQUIRE(table);
    REQUIRE(rig.pages.free_table(*table, true));
    REQUIRE(source.reserve(reserve, 2, 0));
    const u64 free_now = buddy.free_bytes();
    source.draw_from(&reserve);
    auto drawn = source.allocate_table(TableSize::small_page_or_directory);
    source.draw_from(nullptr);
    REQUIRE(drawn);
    CHECK(drawn->address == table->address);
    CHECK(buddy.free_bytes() == free_now);
    CHECK(buddy.set_aside_bytes() == 4 * KiB);
    CHECK(rig.pages.set_aside_pages() == 1);
    source.release(reserve);
    REQUIRE(source.free_table(*drawn, true));
    source.release_spare_pages();
    CHECK(buddy.free_bytes() == 64 * KiB);
    CHECK(buddy.check_invariants());
}

TEST_CASE("take_back returns unused tables where they came from: spares to spares, others to "
          "the buddy")
{
    Rig rig(64 * KiB, 2);
    BuddyAllocator &buddy = rig.vram.buddy;
    rig.pages.set_spare_limit(4);
    auto first = rig.pages.allocate_table(TableSize::small_page_or_directory);
    auto second = rig.pages.allocate_table(TableSize::small_page_or_directory);
    REQUIRE(first);
    REQUIRE(second);
    REQUIRE(rig.pages.free_table(*first, true));
    REQUIRE(rig.pages.free_table(*second, true));
    CHECK(rig.pages.spare_pages() == 2);
    const u64 free_before = buddy.free_bytes();

    // A rollback: three small tables (two spares, one from the buddy) and a big table on a
    // new host page (from the buddy), returned newest first.
    std::vector<TablePage> taken = rig.small_tables(3);
    auto big = rig.pages.allocate_table(TableSize::big_page);
    REQUIRE(big);
    taken.push_back(*big);
    CHECK(rig.pages.spare_pages() == 0);
    CHECK(buddy.free_bytes() == free_before - 2 * 4 * KiB);
    for (auto table = taken.rbegin(); table != taken.rend(); ++table)
        REQUIRE(rig.pages.take_back(*table));
    CHECK(rig.pages.spare_pages() == 2);
    CHECK(buddy.free_bytes() == free_before);
    CHECK(rig.pages.host_pages_for_big_tables() == 0);
    // The spares are the same pages, in the same order.
    auto again = rig.pages.allocate_table(TableSize::small_page_or_directory);
    REQUIRE(again);
    CHECK(again->address == second->address);
    // Errors as free_table: a spare taken back twice is a double free.
    REQUIRE(rig.pages.take_back(*again));
    CHECK(rig.pages.take_back(*again).error() == Error::double_free);
    rig.pages.release_spare_pages();
    CHECK(buddy.free_bytes() == 64 * KiB);
    CHECK(buddy.check_invariants());
}
