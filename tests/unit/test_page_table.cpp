// paging/page_table.hpp: page-size selection, dual PDEs, splitting, sparse, reclaim, the
// two phases, the TLB obligation and one test per error (each leaving state unchanged).
#include <doctest/doctest.h>

#include <tuple>
#include <utility>
#include <vector>

#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/format/mmu_version.hpp"
#include "instantiation/spaces.hpp"
#include "support/page_table_fixture.hpp"

using namespace gpummu;
using testing::PageTableFixture;
using testing::va_range;

namespace {

constexpr u64 kib = 1024, mib = 1024 * kib, gib = 1024 * mib;
const PageTableConfig ampere{architecture_record(Architecture::ampere).page_sizes};
const PageTableConfig turing{architecture_record(Architecture::turing).page_sizes};

PageAttributes at(u64 pa)
{
    PageAttributes attributes;
    attributes.address = PhysicalAddress{pa};
    return attributes;
}

template <class Fixture>
Translation look(Fixture &fixture, u64 va)
{
    auto translation = fixture.table->translate(VirtualAddress{va});
    REQUIRE(translation.has_value());
    return *translation;
}

template <class Fixture>
void map_ok(Fixture &fixture, u64 va, u64 size, u64 pa, MapOptions options = {})
{
    auto batch = fixture.table->map(va_range(va, size), at(pa), options);
    REQUIRE(batch.has_value());
    fixture.flush(*batch);
    fixture.audit();
}

template <class Fixture>
void unmap_ok(Fixture &fixture, u64 va, u64 size)
{
    auto batch = fixture.table->unmap(va_range(va, size));
    REQUIRE(batch.has_value());
    fixture.flush(*batch);
    fixture.audit();
}

// Everything a failing call must leave as it was.
template <class Fixture>
struct Unchanged {
    Fixture &fixture;
    PageTableStats stats;
    u64 free_bytes;
    u64 writes;
    std::vector<u64> image;
    explicit Unchanged(Fixture &f)
        : fixture(f),
          stats(f.table->stats()),
          free_bytes(f.buddy.buddy.free_bytes()),
          writes(f.memory->counters().writes),
          image(f.image)
    {
    }
    void check() const
    {
        CHECK(fixture.table->stats().table_bytes == stats.table_bytes);
        CHECK(fixture.table->stats().tables() == stats.tables());
        CHECK(fixture.buddy.buddy.free_bytes() == free_bytes);
        CHECK(fixture.memory->counters().writes == writes);
        // Only free VRAM may differ: the page source zeroes pages it hands out (and gets
        // back), and free VRAM starts as garbage that no table ever holds.
        std::size_t outside_free = 0;
        for (std::size_t i = 0; i < image.size(); ++i) {
            if (fixture.image[i] == image[i]) continue;
            if (image[i] != 0xDEADBEEFDEADBEEFull || fixture.image[i] != 0) ++outside_free;
        }
        CHECK(outside_free == 0);
        fixture.audit();
    }
};

}  // namespace

TEST_CASE_TEMPLATE("the largest page that alignment and contiguity allow", F, MmuV2, MmuV3)
{
    PageTableFixture<F> fixture(ampere);
    // 512 MiB-aligned VA and PA, 1 GiB + 2 MiB + 64 KiB + 4 KiB long.
    const u64 va = 2 * gib, pa = 4 * gib;
    map_ok(fixture, va, gib + 2 * mib + 64 * kib + 4 * kib, pa);
    CHECK(look(fixture, va).page_size == PageSize::size_512m());
    CHECK(look(fixture, va + 512 * mib).page_size == PageSize::size_512m());
    CHECK(look(fixture, va + gib).page_size == PageSize::size_2m());
    CHECK(look(fixture, va + gib + 2 * mib).page_size == PageSize::size_64k());
    CHECK(look(fixture, va + gib + 2 * mib + 64 * kib).page_size == PageSize::size_4k());
    CHECK(look(fixture, va + gib + 2 * mib + 64 * kib).address.value() ==
          pa + gib + 2 * mib + 64 * kib);
    CHECK(look(fixture, va + gib + 2 * mib + 68 * kib).state == TranslationState::unmapped);
}

TEST_CASE_TEMPLATE("the chip's page sizes and a pinned size are obeyed", F, MmuV2, MmuV3)
{
    SUBCASE("Turing has no 512 MiB pages")
    {
        PageTableFixture<F> fixture(turing);
        map_ok(fixture, 2 * gib, 512 * mib, 4 * gib);
        CHECK(look(fixture, 2 * gib).page_size == PageSize::size_2m());
        CHECK(fixture.table->stats().tables_per_level[F::levels.size() - 2] == 1);
    }
    SUBCASE("pinned 4 KiB over a 2 MiB-aligned range")
    {
        PageTableFixture<F> fixture(ampere);
        map_ok(fixture, 2 * gib, 4 * mib, 4 * gib, {.page_sizes = {PageSize::size_4k()}});
        CHECK(look(fixture, 2 * gib + 3 * mib).page_size == PageSize::size_4k());
        CHECK(fixture.table->stats().tables_per_level[F::levels.size() - 1] == 2);
    }
    SUBCASE("pinned 64 KiB")
    {
        PageTableFixture<F> fixture(ampere);
        map_ok(fixture, 2 * gib, 2 * mib, 4 * gib, {.page_sizes = {PageSize::size_64k()}});
        CHECK(look(fixture, 2 * gib + mib).page_size == PageSize::size_64k());
        CHECK(fixture.table->stats().big_tables == 1);
    }
    SUBCASE("physical discontinuity breaks a large page")
    {
        PageTableFixture<F> fixture(ampere);
        const PhysicalSegment segments[] = {{PhysicalAddress{8 * mib}, mib},
                                            {PhysicalAddress{32 * mib}, mib}};
        auto batch =
            fixture.table->map(va_range(2 * gib, 2 * mib), segments, at(8 * mib), MapOptions{});
        REQUIRE(batch.has_value());
        fixture.flush(*batch);
        CHECK(look(fixture, 2 * gib).page_size == PageSize::size_64k());
        CHECK(look(fixture, 2 * gib + mib + 4 * kib).address.value() == 32 * mib + 4 * kib);
    }
    SUBCASE("adjacent segments join into one large page")
    {
        PageTableFixture<F> fixture(ampere);
        const PhysicalSegment segments[] = {{PhysicalAddress{8 * mib}, mib},
                                            {PhysicalAddress{9 * mib}, mib}};
        auto batch =
            fixture.table->map(va_range(2 * gib, 2 * mib), segments, at(8 * mib), MapOptions{});
        REQUIRE(batch.has_value());
        fixture.flush(*batch);
        CHECK(look(fixture, 2 * gib).page_size == PageSize::size_2m());
    }
}

TEST_CASE_TEMPLATE("64 KiB and 4 KiB pages share a PD0 entry; big tables are packed", F, MmuV2,
                   MmuV3)
{
    PageTableFixture<F> fixture(ampere);
    map_ok(fixture, 2 * gib, 64 * kib, 16 * mib);            // big page
    map_ok(fixture, 2 * gib + 64 * kib, 4 * kib, 32 * mib);  // small page, same PD0 entry
    map_ok(fixture, 2 * gib + 2 * mib, 64 * kib, 48 * mib);  // big page, next PD0 entry
    CHECK(look(fixture, 2 * gib + 4 * kib).page_size == PageSize::size_64k());
    CHECK(look(fixture, 2 * gib + 64 * kib).page_size == PageSize::size_4k());
    CHECK(look(fixture, 2 * gib + 2 * mib).address.value() == 48 * mib);
    CHECK(fixture.table->stats().big_tables == 2);
    CHECK(fixture.buddy_pages->host_pages_for_big_tables() == 1);  // two 256 B tables, one page

    // The empty chunks of a PD0 entry with both tables carry the no-valid-4K big PTE.
    auto pd0 = look(fixture, 2 * gib + 128 * kib);
    CHECK(pd0.state == TranslationState::unmapped);
    unmap_ok(fixture, 2 * gib, 64 * kib);  // leaves chunk 0 empty: NV4K (audited)
    CHECK(look(fixture, 2 * gib).state == TranslationState::unmapped);
    CHECK(look(fixture, 2 * gib + 64 * kib).state == TranslationState::mapped);
}

TEST_CASE_TEMPLATE("unmapping part of a large page splits it", F, MmuV2, MmuV3)
{
    PageTableFixture<F> fixture(ampere);
    const u64 va = 2 * gib, pa = 4 * gib;
    map_ok(fixture, va, 512 * mib, pa);
    REQUIRE(look(fixture, va).page_size == PageSize::size_512m());
    unmap_ok(fixture, va + 2 * mib + 68 * kib, 4 * kib);
    CHECK(look(fixture, va + 2 * mib + 68 * kib).state == TranslationState::unmapped);
    CHECK(look(fixture, va + 2 * mib + 64 * kib).page_size == PageSize::size_4k());
    CHECK(look(fixture, va + 2 * mib + 72 * kib).address.value() == pa + 2 * mib + 72 * kib);
    CHECK(look(fixture, va + 2 * mib + 128 * kib).page_size == PageSize::size_64k());
    CHECK(look(fixture, va).page_size == PageSize::size_2m());
    CHECK(look(fixture, va + 500 * mib).address.value() == pa + 500 * mib);
    // Unmapping the rest frees every table but the root.
    unmap_ok(fixture, va, 2 * mib + 68 * kib);
    unmap_ok(fixture, va + 2 * mib + 72 * kib, 510 * mib - 72 * kib);
    CHECK(fixture.table->stats().tables() == 1);
}

TEST_CASE_TEMPLATE("sparse ranges: map inside, unmap back to sparse, clear", F, MmuV2, MmuV3)
{
    PageTableFixture<F> fixture(ampere);
    const u64 va = 2 * gib;
    auto sparse = fixture.table->make_sparse(va_range(va, 4 * mib));
    REQUIRE(sparse.has_value());
    fixture.flush(*sparse);
    fixture.audit();
    CHECK(fixture.table->stats().tables_per_level[F::levels.size() - 1] == 0);  // PDE level
    CHECK(look(fixture, va + mib).state == TranslationState::sparse);
    map_ok(fixture, va + mib, 8 * kib, 64 * mib);
    CHECK(look(fixture, va + mib).state == TranslationState::mapped);
    CHECK(look(fixture, va + mib + 8 * kib).state == TranslationState::sparse);
    unmap_ok(fixture, va + mib, 8 * kib);
    CHECK(look(fixture, va + mib).state == TranslationState::sparse);  // back to sparse
    // A sparse page cannot be unmapped, a mapped one cannot be made sparse.
    CHECK(fixture.table->unmap(va_range(va, 4 * kib)).error() == Error::not_mapped);
    map_ok(fixture, va + 3 * mib, 4 * kib, 64 * mib);
    CHECK(fixture.table->make_sparse(va_range(va + 3 * mib, 4 * kib)).error() ==
          Error::already_mapped);
    CHECK(fixture.table->clear_sparse(va_range(va, 4 * mib)).error() == Error::already_mapped);
    unmap_ok(fixture, va + 3 * mib, 4 * kib);
    auto cleared = fixture.table->clear_sparse(va_range(va, 4 * mib));
    REQUIRE(cleared.has_value());
    CHECK(cleared->invalidation().ack_globally);
    fixture.flush(*cleared);
    fixture.audit();
    CHECK(look(fixture, va + mib).state == TranslationState::unmapped);
    CHECK(fixture.table->stats().tables() == 1);
}

TEST_CASE_TEMPLATE("a 64 KiB chunk of sparse small pages folds into a sparse big PTE", F, MmuV2,
                   MmuV3)
{
    PageTableFixture<F> fixture(ampere);
    const u64 va = 2 * gib;
    auto sparse = fixture.table->make_sparse(va_range(va, 2 * mib));
    REQUIRE(sparse.has_value());
    fixture.flush(*sparse);
    // A 64 KiB page in chunk 0 keeps the entry from folding whole; it makes the big table.
    map_ok(fixture, va, 64 * kib, 64 * mib, {.page_sizes = {PageSize::size_64k()}});
    const PageTableStats before = fixture.table->stats();
    // A 4 KiB page in chunk 1 moves that chunk's sparse content into 16 small PTEs.
    map_ok(fixture, va + 68 * kib, 4 * kib, 65 * mib, {.page_sizes = {PageSize::size_4k()}});
    CHECK(fixture.table->stats().tables() == before.tables() + 1);
    CHECK(look(fixture, va + 64 * kib).state == TranslationState::sparse);
    unmap_ok(fixture, va + 68 * kib, 4 * kib);
    fixture.audit();
    // Back to one sparse big PTE: the small table went, the tables are those before.
    CHECK(fixture.table->stats().tables_per_level == before.tables_per_level);
    CHECK(fixture.table->stats().big_tables == before.big_tables);
    for (u64 offset : {64 * kib, 68 * kib, 127 * kib, 2 * mib - 4 * kib})
        CHECK(look(fixture, va + offset).state == TranslationState::sparse);
    CHECK(look(fixture, va).state == TranslationState::mapped);
    // In a second entry: a chunk that went back to sparse takes a 64 KiB page pinned to
    // that size, and returns to sparse after it.
    const u64 next = va + 2 * mib;
    auto more = fixture.table->make_sparse(va_range(next, 2 * mib));
    REQUIRE(more.has_value());
    fixture.flush(*more);
    map_ok(fixture, next + 4 * kib, 4 * kib, 66 * mib, {.page_sizes = {PageSize::size_4k()}});
    map_ok(fixture, next + 68 * kib, 4 * kib, 67 * mib, {.page_sizes = {PageSize::size_4k()}});
    unmap_ok(fixture, next + 68 * kib, 4 * kib);
    CHECK(look(fixture, next + 68 * kib).state == TranslationState::sparse);
    map_ok(fixture, next + 64 * kib, 64 * kib, 68 * mib, {.page_sizes = {PageSize::size_64k()}});
    CHECK(look(fixture, next + 68 * kib).state == TranslationState::mapped);
    unmap_ok(fixture, next + 64 * kib, 64 * kib);
    CHECK(look(fixture, next + 68 * kib).state == TranslationState::sparse);
    fixture.audit();
}

TEST_CASE_TEMPLATE("the tables depend on the final page states, not on the history", F, MmuV2,
                   MmuV3)
{
    // Two histories that end with the same pages: chunk 5 of a sparse 2 MiB entry sparse,
    // every other chunk holding one mapped 4 KiB page.
    const u64 va = 2 * gib;
    auto run = [&](bool via_full) {
        PageTableFixture<F> fixture(ampere);
        auto sparse = fixture.table->make_sparse(va_range(va, 2 * mib));
        REQUIRE(sparse.has_value());
        fixture.flush(*sparse);
        for (u64 chunk = 0; chunk < 32; ++chunk) {
            if (chunk == 5 && !via_full) continue;
            map_ok(fixture, va + chunk * 64 * kib, 4 * kib, 64 * mib + chunk * 4 * kib,
                   {.page_sizes = {PageSize::size_4k()}});
        }
        // Every chunk's content in small PTEs: the big table went (it held nothing).
        if (via_full) {
            CHECK(fixture.table->stats().big_tables == 0);
            unmap_ok(fixture, va + 5 * 64 * kib, 4 * kib);
        }
        fixture.audit();
        for (u64 chunk = 0; chunk < 32; ++chunk)
            CHECK(look(fixture, va + chunk * 64 * kib).state ==
                  (chunk == 5 ? TranslationState::sparse : TranslationState::mapped));
        return fixture.table->stats();
    };
    const PageTableStats direct = run(false), after_history = run(true);
    CHECK(after_history.tables_per_level == direct.tables_per_level);
    CHECK(after_history.big_tables == direct.big_tables);
    CHECK(direct.big_tables == 1);  // chunk 5 is one sparse big PTE in both
    // A third history: chunk 5 made sparse page by page after every other chunk got a page.
    PageTableFixture<F> fixture(ampere);
    for (u64 chunk = 0; chunk < 32; ++chunk)
        if (chunk != 5)
            map_ok(fixture, va + chunk * 64 * kib, 4 * kib, 64 * mib + chunk * 4 * kib,
                   {.page_sizes = {PageSize::size_4k()}});
    for (u64 chunk = 0; chunk < 32; ++chunk) {
        if (chunk == 5) continue;
        auto sparse =
            fixture.table->make_sparse(va_range(va + chunk * 64 * kib + 4 * kib, 60 * kib));
        REQUIRE(sparse.has_value());
        fixture.flush(*sparse);
    }
    for (u64 page = 0; page < 16; ++page) {
        auto sparse =
            fixture.table->make_sparse(va_range(va + 5 * 64 * kib + page * 4 * kib, 4 * kib));
        REQUIRE(sparse.has_value());
        fixture.flush(*sparse);
    }
    fixture.audit();
    CHECK(fixture.table->stats().tables_per_level == direct.tables_per_level);
    CHECK(fixture.table->stats().big_tables == direct.big_tables);
}

TEST_CASE_TEMPLATE("empty tables are freed only after the TLB batch is finished", F, MmuV2, MmuV3)
{
    PageTableFixture<F> fixture(ampere);
    const u64 before = fixture.buddy.buddy.free_bytes();
    map_ok(fixture, 2 * gib, 4 * kib, 64 * mib);
    const u64 mapped = fixture.buddy.buddy.free_bytes();
    CHECK(mapped < before);
    auto batch = fixture.table->unmap(va_range(2 * gib, 4 * kib));
    REQUIRE(batch.has_value());
    CHECK(fixture.table->stats().retired_tables == F::levels.size() - 1);
    CHECK(fixture.buddy.buddy.free_bytes() == mapped);  // still held: the MMU may walk them
    CHECK(fixture.table->release_retired(*batch).error() == Error::invalid_argument);
    fixture.flush(*batch);
    CHECK(fixture.buddy.buddy.free_bytes() == before);
    CHECK(fixture.table->stats().retired_tables == 0);
    REQUIRE(fixture.invalidator.seen.size() == 2);
    CHECK(fixture.invalidator.seen[1].ack_globally);
    CHECK(fixture.invalidator.seen[1].sys_membar);
    CHECK(fixture.invalidator.seen[1].shallowest_level == Level{0});  // the root entry cleared
}

TEST_CASE_TEMPLATE("the TLB batch names the shallowest level written", F, MmuV2, MmuV3)
{
    PageTableFixture<F> fixture(ampere);
    map_ok(fixture, 2 * gib, 4 * kib, 64 * mib);
    auto batch = fixture.table->map(va_range(2 * gib + 4 * kib, 4 * kib), at(68 * mib));
    REQUIRE(batch.has_value());
    CHECK(batch->pending());
    CHECK(batch->invalidation().shallowest_level == Level{static_cast<u8>(F::levels.size() - 1)});
    CHECK_FALSE(batch->invalidation().ack_globally);  // nothing taken away
    CHECK(batch->invalidation().pdb == fixture.table->root().address);
    fixture.flush(*batch);
    // A replace takes the old translation away: acknowledged invalidate.
    auto replaced = fixture.table->map(va_range(2 * gib, 4 * kib), at(72 * mib), {.replace = true});
    REQUIRE(replaced.has_value());
    CHECK(replaced->invalidation().ack_globally);
    fixture.flush(*replaced);
    CHECK(look(fixture, 2 * gib).address.value() == 72 * mib);
}

TEST_CASE_TEMPLATE("prepare allocates, commit only writes, cancel leaves no trace", F, MmuV2, MmuV3)
{
    PageTableFixture<F> fixture(ampere);
    const PhysicalSegment segment{PhysicalAddress{64 * mib}, 68 * kib};
    {
        Unchanged<PageTableFixture<F>> unchanged(fixture);
        auto plan =
            fixture.table->prepare_map(va_range(2 * gib, 68 * kib), {&segment, 1}, at(64 * mib));
        REQUIRE(plan.has_value());
        // Other mutations wait for the plan.
        CHECK(fixture.table->unmap(va_range(2 * gib, 4 * kib)).error() == Error::invalid_argument);
        fixture.table->cancel(std::move(*plan));
        // Cancel hands the prepared pages back: the buddy has the space again.
        CHECK(fixture.buddy.buddy.free_bytes() == unchanged.free_bytes);
        CHECK(fixture.memory->counters().writes == unchanged.writes);
        fixture.audit();
    }
    auto plan =
        fixture.table->prepare_map(va_range(2 * gib, 68 * kib), {&segment, 1}, at(64 * mib));
    REQUIRE(plan.has_value());
    const long allocations = fixture.pages->allocations();
    CHECK(allocations >= 3);
    fixture.pages->fail_after(0);  // commit must not allocate
    auto batch = fixture.table->commit(std::move(*plan));
    fixture.pages->fail_after(-1);
    REQUIRE(batch.has_value());
    CHECK(fixture.pages->allocations() == allocations);
    fixture.flush(*batch);
    fixture.audit();
    CHECK(look(fixture, 2 * gib + 64 * kib).page_size == PageSize::size_4k());
    CHECK(look(fixture, 2 * gib).page_size == PageSize::size_64k());
}

TEST_CASE_TEMPLATE("PTE runs are written as ranges", F, MmuV2, MmuV3)
{
    PageTableFixture<F> fixture(ampere);
    fixture.memory->reset_counters();
    map_ok(fixture, 2 * gib, 64 * mib, 4 * gib + 4 * kib, {.page_sizes = {PageSize::size_4k()}});
    // 32 small tables of 512 PTEs: one write each, plus a few directory entries.
    CHECK(fixture.memory->counters().writes <= 32 + 32 + 8);
    CHECK(fixture.memory->counters().bytes_written >= 64 * mib / 4096 * 8);
}

TEST_CASE_TEMPLATE("runs of large pages are written as ranges: map, remap, unmap, over sparse", F,
                   MmuV2, MmuV3)
{
    PageTableFixture<F> fixture(ampere);
    const u64 va = 4 * gib;
    auto writes = [&] { return fixture.memory->counters().writes; };
    // 1 GiB of 2 MiB pages (the physical address is not 512 MiB aligned): 512 PD0 entries
    // in runs of at most 64, plus the directories.
    const u64 pa = 8 * gib + 2 * mib;
    fixture.memory->reset_counters();
    map_ok(fixture, va, 1 * gib, pa);
    CHECK(writes() <= 512 / 64 + 8);
    for (u64 offset : {u64{0}, 2 * mib, 510 * mib, 1 * gib - 2 * mib}) {
        const Translation page = look(fixture, va + offset + 4 * kib);
        CHECK(page.state == TranslationState::mapped);
        CHECK(page.address == PhysicalAddress{pa + offset + 4 * kib});
        CHECK(page.level == Level{static_cast<u8>(F::levels.size() - 2)});
    }
    // The same range again with replace, elsewhere: rewritten in place, no table added.
    const auto tables = fixture.table->stats().tables();
    fixture.memory->reset_counters();
    map_ok(fixture, va, 1 * gib, 2 * pa, {.replace = true});
    CHECK(writes() <= 512 / 64 + 8);
    CHECK(fixture.table->stats().tables() == tables);
    CHECK(look(fixture, va + 300 * mib).address == PhysicalAddress{2 * pa + 300 * mib});
    // Without replace the run is refused and nothing changes.
    CHECK(fixture.table->map(va_range(va, 4 * mib), at(0)).error() == Error::already_mapped);
    // Unmap of whole pages: invalid entries, one run.
    fixture.memory->reset_counters();
    unmap_ok(fixture, va, 1 * gib);
    CHECK(writes() <= 512 / 64 + 8);
    CHECK(look(fixture, va + 300 * mib).state == TranslationState::unmapped);
    // Over a sparse range the pages return to sparse when unmapped, run by run.
    auto sparse = fixture.table->make_sparse(va_range(va, 64 * mib));
    REQUIRE(sparse.has_value());
    fixture.flush(*sparse);
    map_ok(fixture, va, 64 * mib, pa, {.replace = true});
    CHECK(look(fixture, va + 6 * mib).state == TranslationState::mapped);
    unmap_ok(fixture, va, 64 * mib);
    CHECK(look(fixture, va + 6 * mib).state == TranslationState::sparse);
    CHECK(look(fixture, va + 62 * mib).state == TranslationState::sparse);
}

TEST_CASE_TEMPLATE("a root supplied by the caller is used and never freed", F, MmuV2, MmuV3)
{
    PageTableFixture<F> fixture(ampere);
    // Carve a root page out of the same VRAM, zeroed, as firmware would.
    BuddyBlock block;
    REQUIRE(fixture.buddy.buddy.allocate(4096, {.contiguous = true}, {&block, 1}).has_value());
    REQUIRE(fixture.memory->fill(block.address, 0, 512).has_value());
    std::vector<PageTableNode> nodes(64);
    std::vector<PageTableChildren> children(8);
    auto table = PageTableFixture<F>::Table::with_root(*fixture.memory, *fixture.pages,
                                                       {nodes, children}, block.address, ampere);
    REQUIRE(table.has_value());
    CHECK(table->root().address.value() == block.address.value());
    // One 4 KiB page at 2 GiB mapped and unmapped again, each flushed.
    auto map_and_unmap = [&](auto &on) {
        auto batch = on.map(va_range(2 * gib, 4 * kib), at(64 * mib));
        REQUIRE(batch.has_value());
        REQUIRE(on.flush(*batch, fixture.invalidator).has_value());
        auto unmapped = on.unmap(va_range(2 * gib, 4 * kib));
        REQUIRE(unmapped.has_value());
        REQUIRE(on.flush(*unmapped, fixture.invalidator).has_value());
    };
    const long frees = fixture.pages->frees();
    map_and_unmap(*table);
    CHECK(fixture.pages->frees() - frees == static_cast<long>(F::levels.size() - 1));
    CHECK(table->stats().tables() == 1);
    REQUIRE(table->check_invariants().has_value());
    // A root that already holds entries is adopted when they are entries this page table
    // could have written (here one sparse PDE), refused when they are not (all-ones).
    REQUIRE(fixture.memory->fill(block.address, F::Pde::sparse().raw(), 1).has_value());
    auto adopted = PageTableFixture<F>::Table::with_root(*fixture.memory, *fixture.pages,
                                                         {nodes, children}, block.address, ampere);
    REQUIRE(adopted.has_value());
    CHECK(adopted->adopted());
    REQUIRE(adopted->foreign_ranges().size() == 1);
    CHECK(adopted->foreign_ranges()[0] ==
          ForeignRange{0, F::levels[0].entry_coverage(), /*mapped=*/false});
    // Tables made under the adopted root and emptied are kept as spares when the source
    // keeps any; release_root gives them back with the rest.
    fixture.buddy_pages->set_spare_limit(8);
    const u64 free_adopted = fixture.buddy.buddy.free_bytes();
    map_and_unmap(*adopted);
    // (Tables folded back into the sparse entry held sparse words, not zeros: those went to
    // the buddy as dirty memory, not to the spares.)
    CHECK(fixture.buddy_pages->spare_pages() >= 1);
    REQUIRE(adopted->release_root().has_value());
    CHECK(fixture.buddy_pages->spare_pages() == 0);
    CHECK(fixture.buddy.buddy.free_bytes() == free_adopted);
    fixture.buddy_pages->set_spare_limit(0);
    REQUIRE(fixture.memory->fill(block.address, ~u64{0}, 1).has_value());
    CHECK(PageTableFixture<F>::Table::with_root(*fixture.memory, *fixture.pages, {nodes, children},
                                                block.address, ampere)
              .error() == Error::malformed_record);
    // Hostile tables: a PDE back to the root (a cycle), a table in system memory.
    auto refused_with = [&](TablePointer pointer) {
        auto pde = F::Pde::point_to(pointer);
        REQUIRE(pde.has_value());
        REQUIRE(fixture.memory->fill(block.address, pde->raw(), 1).has_value());
        return PageTableFixture<F>::Table::with_root(*fixture.memory, *fixture.pages,
                                                     {nodes, children}, block.address, ampere)
            .error();
    };
    CHECK(refused_with({Aperture::video, physical(block.address)}) == Error::malformed_record);
    CHECK(refused_with({Aperture::system_coherent, PhysicalAddress{0x10000}}) ==
          Error::malformed_record);
    REQUIRE(fixture.memory->fill(block.address, 0, 1).has_value());
}

TEST_CASE_TEMPLATE("every error, each leaving the page table unchanged", F, MmuV2, MmuV3)
{
    PageTableFixture<F> fixture(ampere, 32 * mib, 64, 8);
    map_ok(fixture, 2 * gib, 2 * mib + 64 * kib, 64 * mib);  // something to collide with
    auto &table = *fixture.table;
    auto refuse = [&](Error want, auto &&call) {
        Unchanged<PageTableFixture<F>> unchanged(fixture);
        auto got = call();
        REQUIRE_FALSE(got.has_value());
        CHECK(got.error() == want);
        unchanged.check();
    };
    const PhysicalSegment one{PhysicalAddress{64 * mib}, 4 * kib};
    SUBCASE("invalid_argument")
    {
        refuse(Error::invalid_argument, [&] { return table.unmap(va_range(4 * gib, 0)); });
        const PhysicalSegment short_segment{PhysicalAddress{64 * mib}, 4 * kib};
        refuse(Error::invalid_argument, [&] {
            return table.map(va_range(4 * gib, 8 * kib), {&short_segment, 1}, at(64 * mib));
        });
    }
    SUBCASE("misaligned")
    {
        refuse(Error::misaligned, [&] { return table.unmap(va_range(4 * gib + 512, 4 * kib)); });
        refuse(Error::misaligned,
               [&] { return table.map(va_range(4 * gib, 4 * kib), at(64 * mib + 512)); });
        refuse(Error::misaligned, [&] {
            return table.map(va_range(4 * gib + 64 * kib, 2 * mib), at(64 * mib),
                             {.page_sizes = {PageSize::size_2m()}});
        });
    }
    SUBCASE("out_of_range")
    {
        refuse(Error::out_of_range,
               [&] { return table.map(va_range(u64{1} << F::va_bits, 4 * kib), at(64 * mib)); });
    }
    SUBCASE("page_size_not_supported")
    {
        PageTableFixture<F> small_chip(turing);
        Unchanged<PageTableFixture<F>> unchanged(small_chip);
        auto got = small_chip.table->map(va_range(2 * gib, 512 * mib), at(gib),
                                         {.page_sizes = {PageSize::size_512m()}});
        CHECK(got.error() == Error::page_size_not_supported);
        unchanged.check();
    }
    SUBCASE("invalid_aperture")
    {
        PageAttributes attributes = at(64 * mib);
        attributes.aperture = Aperture::invalid;
        refuse(Error::invalid_aperture, [&] {
            return table.map(va_range(4 * gib, 4 * kib), {&one, 1}, attributes);
        });
    }
    SUBCASE("field_overflow")
    {
        PageAttributes attributes = at(0);
        attributes.kind = 0xFF;
        attributes.peer = 0;
        if constexpr (F::version == MmuVersion::v2) {
            // v2 video addresses end at 128 GiB.
            const PhysicalSegment far{PhysicalAddress{u64{1} << 37}, 4 * kib};
            refuse(Error::field_overflow, [&] {
                return table.map(va_range(4 * gib, 4 * kib), {&far, 1}, at(0));
            });
        } else {
            refuse(Error::field_overflow, [&] {
                return table.map(va_range(4 * gib, 4 * kib), {&one, 1}, attributes);
            });
        }
    }
    SUBCASE("arithmetic_overflow")
    {
        const PhysicalSegment wraps{PhysicalAddress{~u64{0} - 4095}, 8 * kib};
        refuse(Error::arithmetic_overflow, [&] {
            return table.map(va_range(4 * gib, 8 * kib), {&wraps, 1}, at(0));
        });
    }
    SUBCASE("already_mapped")
    {
        refuse(Error::already_mapped,
               [&] { return table.map(va_range(2 * gib + 2 * mib, 4 * kib), at(128 * mib)); });
        refuse(Error::already_mapped,
               [&] { return table.map(va_range(2 * gib + mib, 4 * kib), at(128 * mib)); });
        refuse(Error::already_mapped,
               [&] { return table.make_sparse(va_range(2 * gib, 4 * mib)); });
        refuse(Error::already_mapped,
               [&] { return table.clear_sparse(va_range(2 * gib, 4 * mib)); });
    }
    SUBCASE("not_mapped")
    {
        refuse(Error::not_mapped, [&] { return table.unmap(va_range(2 * gib, 4 * mib)); });
        refuse(Error::not_mapped, [&] { return table.unmap(va_range(8 * gib, 4 * kib)); });
    }
    SUBCASE("out_of_storage: the node pool; out_of_memory: VRAM")
    {
        // 64 nodes: mapping 4 KiB pages across 64 PD0 entries needs more.
        refuse(Error::out_of_storage, [&] {
            return table.map(va_range(8 * gib, 128 * mib), at(gib),
                             {.page_sizes = {PageSize::size_4k()}});
        });
        PageTableFixture<F> tiny(ampere, 64 * kib);  // 16 pages of VRAM in all
        Unchanged<PageTableFixture<F>> unchanged(tiny);
        auto got = tiny.table->map(va_range(2 * gib, 64 * mib), at(gib),
                                   {.page_sizes = {PageSize::size_4k()}});
        CHECK(got.error() == Error::out_of_memory);
        unchanged.check();
    }
}

TEST_CASE("PageTable with a bad configuration is refused")
{
    std::vector<u64> image(1024);
    HostMemory memory(image);
    auto buddy = testing::BuddyFixture::make({testing::range_of(0, 8192)});
    std::vector<BigTableSlot> slots(1);
    BuddyTablePages<HostMemory> pages(buddy.buddy, memory, slots);
    std::vector<PageTableNode> nodes(4);
    std::vector<PageTableChildren> children(1);
    PageTableConfig no_small{{PageSize::size_2m()}};
    CHECK(PageTable<MmuV2, HostMemory, BuddyTablePages<HostMemory>>::create(
              memory, pages, {nodes, children}, no_small)
              .error() == Error::invalid_argument);
}

TEST_CASE_TEMPLATE("maps whose tables were reserved ahead commit with the buddy exhausted", F,
                   MmuV2, MmuV3)
{
    // Two maps planned before anything runs (as two bind jobs would be): each reserves
    // PageTable::tables_needed up front; then another user takes all free VRAM; both maps
    // still commit, each drawing only from its own reserve.
    using Reserving = ReservingTablePages<HostMemory>;
    using Table = PageTable<F, HostMemory, Reserving>;
    constexpr u64 vram = 16ull << 20;
    std::vector<u64> image(vram / 8, 0xDEADBEEFDEADBEEFull);
    HostMemory memory(image);
    auto buddy = testing::BuddyFixture::make({testing::range_of(0, vram)});
    std::vector<BigTableSlot> slots(64);
    BuddyTablePages<HostMemory> buddy_pages(buddy.buddy, memory, slots);
    Reserving pages(buddy_pages);
    std::vector<PageTableNode> nodes(256);
    std::vector<PageTableChildren> children(32);
    auto made = Table::create(memory, pages, {nodes, children}, {});
    REQUIRE(made);
    Table table = std::move(*made);

    // 4 KiB pages across a 2 MiB boundary, and 64 KiB + 4 KiB pages across a 1 GiB one.
    const VirtualRange first = testing::va_range(0x7fe000, 16 * 4096);
    const VirtualRange second = testing::va_range((1ull << 30) - 0x30000, 0x31000);
    TableReserve reserve_first, reserve_second;
    for (auto [range, reserve] : {std::pair{first, &reserve_first}, {second, &reserve_second}}) {
        const auto needs = Table::tables_needed(range, true);
        CHECK(needs.nodes() <= table.spare_nodes());
        REQUIRE(pages.reserve(*reserve, needs.pages(), needs.big_tables));
    }
    std::vector<BuddyBlock> hog(64);
    REQUIRE(buddy.buddy.allocate(buddy.buddy.available_bytes(), {}, hog));
    PageAttributes attributes;
    attributes.address = PhysicalAddress{0x100000};
    CHECK(table.map(first, attributes).error() == Error::out_of_memory);

    for (auto [range, reserve, pa] : {std::tuple{first, &reserve_first, u64{0x100000}},
                                      {second, &reserve_second, u64{0x400000}}}) {
        pages.draw_from(reserve);
        attributes.address = PhysicalAddress{pa};
        auto batch = table.map(range, attributes);
        pages.draw_from(nullptr);
        REQUIRE(batch);
        testing::RecordingInvalidator invalidator;
        REQUIRE(table.flush(*batch, invalidator));
        pages.release(*reserve);
        for (u64 offset = 0; offset < range.size(); offset += 4096) {
            auto translation = table.translate(range.begin() + offset);
            REQUIRE(translation);
            CHECK(translation->address == PhysicalAddress{pa + offset});
        }
    }
    CHECK(table.check_invariants());
    for (const BuddyBlock &block : hog)
        if (block.size != 0) REQUIRE(buddy.buddy.free(block));
}

TEST_CASE_TEMPLATE("a remap of 64 KiB pages by 64 KiB pages rewrites only their PTEs", F, MmuV2,
                   MmuV3)
{
    PageTableFixture<F> fixture(ampere);
    const u64 va = 2 * gib;
    const MapOptions remap{.page_sizes = {PageSize::size_64k()}, .replace = true};
    // 2 MiB of 64 KiB pages; the second 64 KiB chunk lies over a sparse range.
    auto sparse = fixture.table->make_sparse(va_range(va + 64 * kib, 64 * kib));
    REQUIRE(sparse.has_value());
    fixture.flush(*sparse);
    map_ok(fixture, va, 2 * mib, 64 * mib, remap);
    const PageTableStats before = fixture.table->stats();

    // A protect-like remap: same addresses, read-only. One run of 32 big PTEs, 256 bytes.
    PageAttributes read_only = at(64 * mib);
    read_only.read_only = true;
    fixture.memory->reset_counters();
    auto batch = fixture.table->map(va_range(va, 2 * mib), read_only, remap);
    REQUIRE(batch.has_value());
    CHECK(fixture.memory->counters().bytes_written + fixture.memory->counters().bytes_filled ==
          32 * 8);
    CHECK(batch->invalidation().ack_globally);  // the old pages may be cached
    CHECK(batch->invalidation().shallowest_level == Level{static_cast<u8>(F::levels.size() - 1)});
    fixture.flush(*batch);
    fixture.audit();
    CHECK(fixture.table->stats().tables() == before.tables());
    for (u64 offset = 0; offset < 2 * mib; offset += 64 * kib) {
        const Translation translation = look(fixture, va + offset + 4 * kib);
        CHECK(translation.state == TranslationState::mapped);
        CHECK(translation.page_size == PageSize::size_64k());
        CHECK(translation.attributes.read_only);
        CHECK(translation.address.value() == 64 * mib + offset + 4 * kib);
    }

    // A rebind of part of it to other memory, then an unmap: the chunk over the sparse
    // range goes back to sparse, the others to unmapped.
    auto moved = fixture.table->map(va_range(va, 256 * kib), at(128 * mib), remap);
    REQUIRE(moved.has_value());
    fixture.flush(*moved);
    fixture.audit();
    CHECK(look(fixture, va + 64 * kib).address.value() == 128 * mib + 64 * kib);
    CHECK_FALSE(look(fixture, va + 64 * kib).attributes.read_only);
    CHECK(look(fixture, va + 256 * kib).attributes.read_only);
    // Unmaps: chunks without an underlay in one run, then the two with mixed underlays.
    unmap_ok(fixture, va + 128 * kib, 2 * mib - 128 * kib);
    CHECK(look(fixture, va + 128 * kib).state == TranslationState::unmapped);
    CHECK(look(fixture, va + 2 * mib - 4 * kib).state == TranslationState::unmapped);
    CHECK(look(fixture, va).state == TranslationState::mapped);
    unmap_ok(fixture, va, 128 * kib);
    CHECK(look(fixture, va + 64 * kib).state == TranslationState::sparse);
    CHECK(look(fixture, va).state == TranslationState::unmapped);

    // 64 KiB pages over a sparse 2 MiB: unmapped, every chunk returns to sparse.
    auto all_sparse = fixture.table->make_sparse(va_range(va + 2 * mib, 2 * mib));
    REQUIRE(all_sparse.has_value());
    fixture.flush(*all_sparse);
    map_ok(fixture, va + 2 * mib, 2 * mib, 96 * mib, remap);
    CHECK(look(fixture, va + 3 * mib).page_size == PageSize::size_64k());
    unmap_ok(fixture, va + 2 * mib, 2 * mib);
    for (u64 offset = 0; offset < 2 * mib; offset += 64 * kib)
        CHECK(look(fixture, va + 2 * mib + offset).state == TranslationState::sparse);
}

namespace {
// Every byte of VRAM the buddy counts as free and known zero is zero: a table freed as
// zero must have been written back to zero (a stale PTE would reappear in the next table
// made from that memory).
template <class Fixture>
void check_cleared_memory_is_zero(Fixture &fixture)
{
    const u64 vram = fixture.image.size() * 8;
    std::size_t stale = 0;
    for (u64 address = 0; address < vram;) {
        auto found = fixture.buddy.buddy.block_state_at(VramAddress{address});
        REQUIRE(found.has_value());
        const u64 size = found->block.size;
        if (found->state == BuddyBlockState::free_cleared)
            for (u64 word = address / 8; word < (address + size) / 8; ++word)
                if (fixture.image[word] != 0) ++stale;
        address = found->block.address.value() + size;
    }
    CHECK(stale == 0);
}
}  // namespace

TEST_CASE_TEMPLATE("whole PD0 entries of 64 KiB pages: mapped, remapped and unmapped as runs", F,
                   MmuV2, MmuV3)
{
    PageTableFixture<F> fixture(ampere);
    const u64 va = 2 * gib, size = 8 * mib;  // four PD0 entries
    const u64 pa = 64 * mib + 64 * kib;      // 64 KiB aligned only: no 2 MiB page fits
    const unsigned big_depth = static_cast<unsigned>(F::levels.size() - 1);
    const PageTableStats empty = fixture.table->stats();
    // `small_chunk`: the offset of a chunk that held small pages (a map over small content
    // keeps 4 KiB pages there while they are allowed).
    auto check_pages = [&](u64 base, bool read_only, u64 small_chunk = ~u64{0}) {
        for (u64 offset = 0; offset < size; offset += 64 * kib) {
            const Translation page = look(fixture, va + offset + 8 * kib);
            REQUIRE(page.state == TranslationState::mapped);
            CHECK(page.page_size ==
                  (offset == small_chunk ? PageSize::size_4k() : PageSize::size_64k()));
            CHECK(page.address.value() == base + offset + 8 * kib);
            CHECK(page.attributes.read_only == read_only);
        }
    };

    // Automatic sizes: four big-page tables, no small-page table.
    map_ok(fixture, va, size, pa);
    CHECK(fixture.table->stats().big_tables == empty.big_tables + 4);
    CHECK(fixture.table->stats().tables_per_level[big_depth] == 0);
    check_pages(pa, false);
    const PageTableStats mapped = fixture.table->stats();

    // Protect in place: exactly the 128 big PTEs are rewritten, nothing is allocated, and
    // the old pages may be cached.
    PageAttributes read_only = at(pa);
    read_only.read_only = true;
    fixture.memory->reset_counters();
    auto protect = fixture.table->map(va_range(va, size), read_only, {.replace = true});
    REQUIRE(protect.has_value());
    CHECK(fixture.memory->counters().bytes_written + fixture.memory->counters().bytes_filled ==
          4 * 32 * 8);
    CHECK(protect->invalidation().ack_globally);
    fixture.flush(*protect);
    fixture.audit();
    CHECK(fixture.table->stats().tables() == mapped.tables());
    check_pages(pa, true);

    // Rebind elsewhere, then without replace the same map is refused and changes nothing.
    map_ok(fixture, va, size, 2 * pa, {.replace = true});
    check_pages(2 * pa, false);
    {
        Unchanged<PageTableFixture<F>> unchanged(fixture);
        CHECK(fixture.table->map(va_range(va, size), at(pa)).error() == Error::already_mapped);
        unchanged.check();
    }

    // Unmap: every page gone, the tables retired and freed after the flush, their memory
    // zero again.
    auto unmapped = fixture.table->unmap(va_range(va, size));
    REQUIRE(unmapped.has_value());
    CHECK(unmapped->invalidation().ack_globally);
    fixture.flush(*unmapped);
    fixture.audit();
    for (u64 offset = 0; offset < size; offset += 64 * kib)
        CHECK(look(fixture, va + offset).state == TranslationState::unmapped);
    CHECK(fixture.table->stats().big_tables == empty.big_tables);
    CHECK(fixture.table->stats().table_bytes == empty.table_bytes);
    check_cleared_memory_is_zero(fixture);

    // A run stops where an entry is of another kind: entry 2 holds a 4 KiB page (replaced)
    // and entry 1 a sparse range (64 KiB pages go over it).
    map_ok(fixture, va + 4 * mib + 128 * kib, 4 * kib, 4 * gib,
           {.page_sizes = {PageSize::size_4k()}});
    auto sparse = fixture.table->make_sparse(va_range(va + 2 * mib, 2 * mib));
    REQUIRE(sparse.has_value());
    fixture.flush(*sparse);
    map_ok(fixture, va, size, pa, {.replace = true});
    check_pages(pa, false, 4 * mib + 128 * kib);
    // The unmap leaves entry 1 sparse and the others unmapped.
    unmap_ok(fixture, va, size);
    CHECK(look(fixture, va + 4 * kib).state == TranslationState::unmapped);
    CHECK(look(fixture, va + 3 * mib).state == TranslationState::sparse);
    CHECK(look(fixture, va + 4 * mib + 128 * kib).state == TranslationState::unmapped);
    CHECK(look(fixture, va + 7 * mib).state == TranslationState::unmapped);
    check_cleared_memory_is_zero(fixture);

    // 64 MiB: 32 big tables, more than one 4 KiB page of them (16 per page), each entry
    // pointing at its own.
    const u64 far = va + 1 * gib, far_pa = 512 * mib + 64 * kib;
    map_ok(fixture, far, 64 * mib, far_pa);
    CHECK(fixture.buddy_pages->host_pages_for_big_tables() >= 2);
    for (u64 offset = 0; offset < 64 * mib; offset += 64 * kib) {
        const Translation page = look(fixture, far + offset);
        REQUIRE(page.state == TranslationState::mapped);
        CHECK(page.page_size == PageSize::size_64k());
        CHECK(page.address.value() == far_pa + offset);
    }
    unmap_ok(fixture, far, 64 * mib);

    // The Nth big-table allocation failing leaves no trace, for every N of the map.
    auto clear = fixture.table->clear_sparse(va_range(va, size));
    REQUIRE(clear.has_value());
    fixture.flush(*clear);
    for (long n = 0; n < 6; ++n) {
        Unchanged<PageTableFixture<F>> unchanged(fixture);
        fixture.pages->fail_after(n);
        auto refused = fixture.table->map(va_range(va, size), at(pa));
        fixture.pages->fail_after(-1);
        if (refused) {
            CHECK(n >= 4);  // at least the four big tables (and any directory) were taken
            fixture.flush(*refused);
            check_pages(pa, false);
            break;
        }
        CHECK(refused.error() == Error::out_of_memory);
        unchanged.check();
    }
}

TEST_CASE_TEMPLATE("a run of large pages stops at any entry that holds tables", F, MmuV2, MmuV3)
{
    // 64 MiB of 2 MiB pages with replace, where one entry holds a table (a 4 KiB page):
    // every position of that entry in the run, the first of a block of 16 included.
    for (u64 holder : {u64{0}, u64{1}, u64{15}, u64{16}, u64{17}, u64{31}}) {
        CAPTURE(holder);
        PageTableFixture<F> fixture(ampere);
        const u64 va = 4 * gib, pa = 8 * gib;
        map_ok(fixture, va + holder * 2 * mib + 8 * kib, 4 * kib, 12 * gib,
               {.page_sizes = {PageSize::size_4k()}});
        map_ok(fixture, va, 64 * mib, pa, {.replace = true});
        for (u64 entry = 0; entry < 32; ++entry) {
            const Translation page = look(fixture, va + entry * 2 * mib + 8 * kib);
            REQUIRE(page.state == TranslationState::mapped);
            CHECK(page.address.value() == pa + entry * 2 * mib + 8 * kib);
            // The holder's entry keeps its tables (4 KiB pages are allowed there).
            CHECK((page.page_size == PageSize::size_2m()) == (entry != holder));
        }
    }
}
