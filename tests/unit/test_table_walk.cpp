// walk_tables(): every page it reports agrees with translate() (paging/walker.hpp) on page
// tables built by random maps, unmaps and sparse ranges; every table the page table holds
// is visited once; a VA range limits what is read; corrupt tables stop the walk with the
// VA, the table and the reason.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/paging/table_walk.hpp"
#include "instantiation/spaces.hpp"
#include "support/page_table_fixture.hpp"
#include "support/random.hpp"

using namespace gpummu;
using namespace gpummu::testing;

namespace {

constexpr u64 KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;

struct Collector {
    std::vector<WalkedTable> tables;
    std::vector<WalkedPage> pages;
    std::set<u64> seen;
    Result<void> table(const WalkedTable &table)
    {
        if (!seen.insert(table.address.value()).second) return failure(Error::overlap);
        tables.push_back(table);
        return success();
    }
    void page(const WalkedPage &page) { pages.push_back(page); }

    // The reported page holding `va`, if any.
    const WalkedPage *holding(u64 va) const
    {
        auto after = std::upper_bound(
            pages.begin(), pages.end(), va,
            [](u64 address, const WalkedPage &page) { return address < page.va.value(); });
        if (after == pages.begin()) return nullptr;
        const WalkedPage &page = *(after - 1);
        return va - page.va.value() < page.bytes ? &page : nullptr;
    }
};

template <class F>
void random_tables(PageTableFixture<F> &fixture, Random &random, u64 base, int operations)
{
    const std::array<PageSize, 3> sizes{PageSize::size_4k(), PageSize::size_64k(),
                                        PageSize::size_2m()};
    for (int i = 0; i < operations; ++i) {
        const PageSize size = sizes[random.below(3)];
        const u64 pages = 1 + random.below(size == PageSize::size_2m() ? 3 : 40);
        const u64 va = base + random.below((64 * MiB) / size.bytes()) * size.bytes();
        auto range = va_range(va, pages * size.bytes());
        Result<TlbBatch> done = failure(Error::invalid_argument);
        switch (random.below(4)) {
        case 0:
        case 1: {
            const u64 pa = random.below((16 * GiB) / size.bytes()) * size.bytes();
            PageAttributes attributes{.address = PhysicalAddress{pa},
                                      .read_only = random.coin(),
                                      .kind = static_cast<u8>(random.below(3))};
            if (random.below(4) == 0) attributes.aperture = Aperture::system_coherent;
            done = fixture.table->map(range, attributes, {.page_sizes = PageSizeSet{size}});
            break;
        }
        case 2: done = fixture.table->unmap(range); break;
        default:
            done = random.coin() ? fixture.table->make_sparse(range)
                                 : fixture.table->clear_sparse(range);
        }
        if (done) fixture.flush(*done);
    }
}

}  // namespace

TEST_CASE_TEMPLATE("every walked page agrees with translate, every table is visited once", F, MmuV2,
                   MmuV3)
{
    for (u64 seed : {1u, 2u, 3u}) {
        CAPTURE(seed);
        PageTableFixture<F> fixture({}, 64 * MiB, 8192, 256);
        Random random(seed);
        // Two regions: low VAs and the top of the format's VA space.
        const u64 top = (u64{1} << F::va_bits) - 64 * MiB;
        random_tables(fixture, random, 0, 150);
        random_tables(fixture, random, top, 150);
        Collector walked;
        WalkFailure why;
        const VirtualAddress end{F::va_bits < 64 ? u64{1} << F::va_bits : ~u64{0}};
        auto walk = walk_tables<F>(*fixture.memory, VramAddress{64 * MiB}, fixture.table->root(),
                                   VirtualAddress{0}, end, walked, &why);
        REQUIRE_MESSAGE(walk.has_value(), why.reason);
        CHECK(walked.tables.size() == fixture.table->stats().tables());
        u64 big = 0;
        for (const auto &table : walked.tables) big += table.big_page_table ? 1 : 0;
        CHECK(big == fixture.table->stats().big_tables);
        REQUIRE(!walked.pages.empty());
        for (std::size_t i = 1; i < walked.pages.size(); ++i)
            REQUIRE(walked.pages[i - 1].va.value() + walked.pages[i - 1].bytes <=
                    walked.pages[i].va.value());
        // Each reported page: translate at its first and last byte says the same.
        for (const auto &page : walked.pages) {
            for (u64 va : {page.va.value(), page.va.value() + page.bytes - 1}) {
                auto translated =
                    translate<F>(*fixture.memory, fixture.table->root(), VirtualAddress{va});
                REQUIRE(translated.has_value());
                REQUIRE(translated->state == page.state);
                if (page.state != TranslationState::mapped) continue;
                REQUIRE(translated->page_size == page.page_size);
                REQUIRE(translated->attributes == page.attributes);
                REQUIRE(translated->address.value() ==
                        page.attributes.address.value() + (va - page.va.value()));
            }
        }
        // Random VAs: mapped or sparse exactly where a reported page holds them.
        for (int i = 0; i < 20000; ++i) {
            const u64 va = random.coin() ? random.below(68 * MiB) : top + random.below(64 * MiB);
            auto translated =
                translate<F>(*fixture.memory, fixture.table->root(), VirtualAddress{va});
            REQUIRE(translated.has_value());
            const WalkedPage *page = walked.holding(va);
            if (translated->state == TranslationState::unmapped) {
                REQUIRE(page == nullptr);
            } else {
                REQUIRE(page != nullptr);
                REQUIRE(page->state == translated->state);
            }
        }
    }
}

TEST_CASE_TEMPLATE("a VA range limits the pages reported and the tables read", F, MmuV2, MmuV3)
{
    PageTableFixture<F> fixture({}, 32 * MiB);
    auto batch = fixture.table->map(va_range(0, 4 * MiB),
                                    PageAttributes{.address = PhysicalAddress{0x4000'0000}},
                                    {.page_sizes = PageSizeSet{PageSize::size_64k()}});
    REQUIRE(batch);
    fixture.flush(*batch);
    auto far = fixture.table->make_sparse(va_range(40 * GiB, 2 * MiB));
    REQUIRE(far);
    fixture.flush(*far);
    Collector walked;
    REQUIRE(walk_tables<F>(*fixture.memory, VramAddress{32 * MiB}, fixture.table->root(),
                           VirtualAddress{MiB + 1}, VirtualAddress{MiB + 64 * KiB + 2}, walked));
    REQUIRE(walked.pages.size() == 2);  // the 64 KiB pages holding the first and last byte
    CHECK(walked.pages[0].va.value() == MiB);
    CHECK(walked.pages[1].va.value() == MiB + 64 * KiB);
    CHECK(walked.pages[1].attributes.address.value() == 0x4000'0000 + MiB + 64 * KiB);
    CHECK(walked.tables.size() < fixture.table->stats().tables());  // not the 40 GiB path
    Collector whole;
    REQUIRE(walk_tables<F>(*fixture.memory, VramAddress{32 * MiB}, fixture.table->root(),
                           VirtualAddress{0}, VirtualAddress{64 * GiB}, whole));
    REQUIRE(whole.pages.size() == 64 + 1);
    CHECK(whole.pages.back().state == TranslationState::sparse);
    CHECK(whole.pages.back().bytes == 2 * MiB);
    Collector none;
    CHECK(walk_tables<F>(*fixture.memory, VramAddress{32 * MiB}, fixture.table->root(),
                         VirtualAddress{MiB}, VirtualAddress{MiB}, none)
              .error() == Error::out_of_range);
}

TEST_CASE_TEMPLATE("corrupt tables stop the walk with the VA, the table and the reason", F, MmuV2,
                   MmuV3)
{
    PageTableFixture<F> fixture({}, 32 * MiB);
    const u64 va = 3 * GiB + 5 * MiB;
    auto batch = fixture.table->map(va_range(va, 64 * KiB),
                                    PageAttributes{.address = PhysicalAddress{0x10'0000}},
                                    {.page_sizes = PageSizeSet{PageSize::size_4k()}});
    REQUIRE(batch);
    fixture.flush(*batch);
    // Find the path to the 4 KiB table by walking once.
    Collector clean;
    REQUIRE(walk_tables<F>(*fixture.memory, VramAddress{32 * MiB}, fixture.table->root(),
                           VirtualAddress{0}, VirtualAddress{8 * GiB}, clean));
    REQUIRE(clean.tables.size() == F::levels.size());
    const WalkedTable leaf = clean.tables.back();
    const WalkedTable pd0 = clean.tables[clean.tables.size() - 2];
    const WalkedTable parent = clean.tables[clean.tables.size() - 3];
    const VramAddress pd0_entry =
        pd0.address + F::levels[F::levels.size() - 2].index_of(VirtualAddress{va}) * 16u;
    const VramAddress parent_entry =
        parent.address + F::levels[F::levels.size() - 3].index_of(VirtualAddress{va}) * 8u;
    const VramAddress leaf_entry =
        leaf.address + F::levels.back().index_of(VirtualAddress{va}) * 8u;
    auto read = [&](VramAddress at) {
        std::array<u64, 1> word{};
        REQUIRE(fixture.memory->read(at, word));
        return word[0];
    };
    auto write = [&](VramAddress at, u64 word) {
        REQUIRE(fixture.memory->write(at, std::span<const u64>(&word, 1)));
    };
    auto walk_fails = [&](Error error, u64 expected_va, VramAddress expected_table) {
        Collector walked;
        WalkFailure why;
        auto walk = walk_tables<F>(*fixture.memory, VramAddress{32 * MiB}, fixture.table->root(),
                                   VirtualAddress{0}, VirtualAddress{8 * GiB}, walked, &why);
        REQUIRE(!walk.has_value());
        CHECK(walk.error() == error);
        CHECK(why.error == error);
        CHECK(why.va.value() == expected_va);
        CHECK(why.table == expected_table);
        CHECK(std::string_view(why.reason).size() > 0);
    };
    const u64 leaf_word = read(leaf_entry);
    const u64 pd0_va = va & ~(2 * MiB - 1);
    SUBCASE("a PTE with undefined bits")
    {
        // v2: a system-memory PTE has no bits 55:54 (a video one defines all 64); v3: 60:52.
        const u64 undefined =
            F::version == MmuVersion::v2 ? (u64{2} << 1) | (u64{1} << 54) : u64{1} << 55;
        REQUIRE(F::Pte::from_raw(leaf_word | undefined).undefined_bits() != 0);
        write(leaf_entry, leaf_word | undefined);
        walk_fails(Error::malformed_record, va, leaf.address);
    }
    SUBCASE("a table pointer past the memory")
    {
        const auto dual = F::DualPde::point_to({}, {Aperture::video, PhysicalAddress{64 * MiB}});
        REQUIRE(dual);
        std::array<u64, 2> words{dual->low(), dual->high()};
        REQUIRE(fixture.memory->write(pd0_entry, words));
        walk_fails(Error::out_of_range, pd0_va, VramAddress{64 * MiB});
    }
    SUBCASE("a table pointer into system memory")
    {
        const auto dual =
            F::DualPde::point_to({}, {Aperture::system_coherent, PhysicalAddress{0x1000}});
        REQUIRE(dual);
        std::array<u64, 2> words{dual->low(), dual->high()};
        REQUIRE(fixture.memory->write(pd0_entry, words));
        walk_fails(Error::invalid_aperture, pd0_va, pd0.address);
    }
    SUBCASE("a loop: a directory entry pointing back at the root")
    {
        write(parent_entry,
              F::Pde::point_to({Aperture::video, fixture.table->root().address}).value().raw());
        walk_fails(Error::overlap, va & ~(F::levels[F::levels.size() - 3].entry_coverage() - 1),
                   VramAddress{fixture.table->root().address.value()});
    }
    SUBCASE("a misaligned root")
    {
        Collector walked;
        WalkFailure why;
        auto walk = walk_tables<F>(*fixture.memory, VramAddress{32 * MiB},
                                   TablePointer{Aperture::video, PhysicalAddress{0x1100}},
                                   VirtualAddress{0}, VirtualAddress{GiB}, walked, &why);
        CHECK(walk.error() == Error::misaligned);
        CHECK(why.table.value() == 0x1100);
    }
}
