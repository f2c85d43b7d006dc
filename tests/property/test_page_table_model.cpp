// The page table against a naive reference model: one record per 4 KiB page of a 1 GiB
// window (unmapped / sparse / mapped at PA with attributes, plus "inside a sparse range").
// Random map / unmap / make_sparse / clear_sparse sequences (page-granular to 512 MiB,
// several physical segments, pinned page sizes, replace) run on MMU v2 and v3 in lockstep:
//   - every result (success or which error) must be what the model predicts;
//   - after each step: the full audit (every table reachable once, counts equal live
//     entries, no empty table, shadow equals VRAM), table bytes + buddy free space equal
//     the VRAM size, sampled translations equal the model and v2 equals v3; a large page
//     must be backed by a model run that is contiguous, aligned and uniform;
//   - every few hundred steps, every page of the window is translated;
//   - failures change nothing: no write reached VRAM, stats and free space are the same;
//   - a fault-injection sweep fails the Nth table allocation of random operations for
//     every N until the operation succeeds, checking each failure left no trace.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <vector>

#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "instantiation/spaces.hpp"
#include "support/page_table_fixture.hpp"
#include "support/random.hpp"

#ifndef GPUMMU_PAGE_TABLE_OPERATIONS
#define GPUMMU_PAGE_TABLE_OPERATIONS 4000
#endif

using namespace gpummu;
using testing::PageTableFixture;
using testing::Random;
using testing::va_range;

namespace {

// 256 GiB - 512 MiB: the window crosses a v2 PD2 / v3 PD2 entry boundary in its middle.
constexpr u64 window = 0x3FE0000000ull;
constexpr u64 window_pages = (1ull << 30) >> 12;
constexpr u64 page = 4096;

enum class PageState : u8 { none, sparse, mapped };
struct PageRecord {
    PageState state = PageState::none;
    bool underlay = false;  // inside a sparse range
    bool read_only = false;
    u8 kind = 0;
    u64 pa = 0;
};

enum class Op : u8 { map, unmap, make_sparse, clear_sparse };

struct Operation {
    Op op = Op::map;
    u64 first = 0, count = 0;  // pages relative to the window
    std::vector<PhysicalSegment> segments;
    bool read_only = false;
    u8 kind = 0;
    MapOptions options{};
};

const PageTableConfig config{
    {PageSize::size_4k(), PageSize::size_64k(), PageSize::size_2m(), PageSize::size_512m()}};

struct Harness {
    PageTableFixture<MmuV2> v2{config, 32ull << 20, 8192, 64};
    PageTableFixture<MmuV3> v3{config, 32ull << 20, 8192, 64};
    std::vector<PageRecord> model = std::vector<PageRecord>(window_pages);
    std::vector<std::pair<u64, u64>> mapped_ranges;  // (first, count) of successful maps
    unsigned pinned_placed = 0, pinned_refused = 0;  // maps with one page size (not 4 KiB)
    Random random{0x9A6E7AB1E5ull};

    // v3's page source keeps emptied pages for reuse, v2's gives every page back.
    Harness() { v3.buddy_pages->set_spare_limit(6); }

    Operation generate()
    {
        Operation operation;
        const u64 roll = random.below(100);
        operation.op = roll < 45   ? Op::map
                       : roll < 75 ? Op::unmap
                       : roll < 92 ? Op::make_sparse
                                   : Op::clear_sparse;
        if (operation.op != Op::map && !mapped_ranges.empty() && random.coin()) {
            // A piece of something mapped earlier, so unmaps mostly succeed.
            auto [first, count] = mapped_ranges[random.below(mapped_ranges.size())];
            u64 skip = random.coin() ? 0 : random.below(count);
            operation.first = first + skip;
            operation.count = 1 + random.below(count - skip);
            return operation;
        }
        static constexpr u64 granules[] = {1, 16, 512, 131072};
        const u64 class_roll = random.below(100);
        const u64 granule = granules[class_roll < 35   ? 0
                                     : class_roll < 65 ? 1
                                     : class_roll < 92 ? 2
                                                       : 3];
        const u64 max_units = granule == 131072 ? 1 : granule == 512 ? 4 : 40;
        const u64 units = 1 + random.below(max_units);
        operation.count = units * granule;
        u64 slots = window_pages / granule - units + 1;
        operation.first = random.below(slots) * granule;
        if (random.below(5) == 0 && operation.first + operation.count + 16 <= window_pages)
            operation.first += 1 + random.below(15);  // misaligned on purpose
        if (operation.op == Op::map) {
            operation.read_only = random.below(4) == 0;
            operation.kind = static_cast<u8>(random.below(3));
            u64 remaining = operation.count;
            const u64 pieces = random.below(4) == 0 ? 1 + random.below(3) : 1;
            for (u64 piece = 0; piece < pieces && remaining != 0; ++piece) {
                u64 take = piece + 1 == pieces ? remaining : 1 + random.below(remaining);
                u64 alignment = granule * page;
                u64 pa = random.below((64ull << 30) / alignment) * alignment;
                if (random.below(6) == 0)
                    pa += page * (1 + random.below(15));
                else if (granule >= 512 && random.below(4) == 0)
                    pa += 16 * page * (1 + random.below(31));  // 64 KiB pages, no 2 MiB one
                operation.segments.push_back({PhysicalAddress{pa}, take * page});
                remaining -= take;
            }
            if (random.below(16) == 0) operation.options.replace = true;
            if (random.below(10) == 0) {
                static constexpr PageSize sizes[] = {PageSize::size_4k(), PageSize::size_64k(),
                                                     PageSize::size_2m()};
                operation.options.page_sizes = PageSizeSet{sizes[random.below(3)]};
            }
        }
        return operation;
    }

    // What the model says: success or the error.
    Result<void> expected(const Operation &operation) const
    {
        for (u64 p = operation.first; p < operation.first + operation.count; ++p) {
            const PageRecord &record = model[p];
            switch (operation.op) {
            case Op::map:
                if (record.state == PageState::mapped && !operation.options.replace)
                    return failure(Error::already_mapped);
                break;
            case Op::unmap:
                if (record.state != PageState::mapped) return failure(Error::not_mapped);
                break;
            case Op::make_sparse:
            case Op::clear_sparse:
                if (record.state == PageState::mapped) return failure(Error::already_mapped);
                break;
            }
        }
        return success();
    }

    // With page sizes pinned to one size above 4 KiB, every page must lie in an aligned
    // page of that size inside the range, over physically contiguous memory aligned
    // alike. A page of 2 MiB or more stands in one directory entry, which records one
    // thing for its pages to return to when it goes: all sparse or none. (A 64 KiB page
    // hides the small PTEs of its chunk, sparse ones stay beneath it.)
    bool placeable(const Operation &operation) const
    {
        const PageSizeSet sizes = operation.options.page_sizes;
        if (operation.op != Op::map || sizes.empty() || sizes.contains(PageSize::size_4k()))
            return true;
        std::vector<u64> pa;
        for (const PhysicalSegment &segment : operation.segments)
            for (u64 at = 0; at < segment.size; at += page)
                pa.push_back(segment.address.value() + at);
        const u64 end = operation.first + operation.count;
        for (const PageSize size :
             {PageSize::size_64k(), PageSize::size_2m(), PageSize::size_512m()}) {
            if (!sizes.contains(size)) continue;
            const u64 pages = size.bytes() / page;
            for (u64 p = operation.first; p < end; p += pages - p % pages) {
                const u64 block = p - p % pages;
                if (block < operation.first || block + pages > end) return false;
                const u64 base = pa[block - operation.first];
                if (base % size.bytes() != 0) return false;
                for (u64 q = block; q < block + pages; ++q)
                    if (pa[q - operation.first] != base + (q - block) * page) return false;
                if (size.bytes() < PageSize::size_2m().bytes()) continue;
                auto returns_sparse = [&](u64 q) {
                    return model[q].state == PageState::sparse ||
                           (model[q].state == PageState::mapped && model[q].underlay);
                };
                for (u64 q = block; q < block + pages; ++q)
                    if (returns_sparse(q) != returns_sparse(block)) return false;
            }
        }
        return true;
    }

    void apply(const Operation &operation)
    {
        u64 segment = 0, offset = 0;
        for (u64 p = operation.first; p < operation.first + operation.count; ++p) {
            PageRecord &record = model[p];
            switch (operation.op) {
            case Op::map:
                record.underlay = record.state == PageState::sparse ||
                                  (record.state == PageState::mapped && record.underlay);
                record.state = PageState::mapped;
                record.pa = operation.segments[segment].address.value() + offset;
                record.read_only = operation.read_only;
                record.kind = operation.kind;
                offset += page;
                if (offset == operation.segments[segment].size) {
                    ++segment;
                    offset = 0;
                }
                break;
            case Op::unmap:
                record.state = record.underlay ? PageState::sparse : PageState::none;
                break;
            case Op::make_sparse:
                if (record.state == PageState::none) record = {PageState::sparse, true};
                break;
            case Op::clear_sparse:
                if (record.state == PageState::sparse) record = {};
                break;
            }
        }
        if (operation.op == Op::map) mapped_ranges.emplace_back(operation.first, operation.count);
        if (mapped_ranges.size() > 64) mapped_ranges.erase(mapped_ranges.begin());
    }

    template <class Fixture>
    static Result<TlbBatch> run(Fixture &fixture, const Operation &operation)
    {
        const VirtualRange range =
            va_range(window + operation.first * page, operation.count * page);
        // Whatever the tables hold, an operation adds no more tables than the worst case
        // that bind jobs reserve ahead (PageTable::tables_needed).
        const long allocations = fixture.pages->allocations();
        const long big_allocations = fixture.pages->big_allocations();
        const std::size_t spare_nodes = fixture.table->spare_nodes();
        const std::size_t spare_blocks = fixture.table->spare_child_blocks();
        Result<TlbBatch> result = run_unchecked(fixture, operation, range);
        const auto needs = Fixture::Table::tables_needed(range, operation.op == Op::map);
        const long pages = fixture.pages->allocations() - allocations;
        const long big = fixture.pages->big_allocations() - big_allocations;
        CHECK(static_cast<u64>(pages - big) <= needs.pages());
        CHECK(static_cast<u64>(big) <= needs.big_tables);
        CHECK(spare_nodes - std::min(spare_nodes, fixture.table->spare_nodes()) <= needs.nodes());
        CHECK(spare_blocks - std::min(spare_blocks, fixture.table->spare_child_blocks()) <=
              needs.directories);
        return result;
    }
    template <class Fixture>
    static Result<TlbBatch> run_unchecked(Fixture &fixture, const Operation &operation,
                                          VirtualRange range)
    {
        switch (operation.op) {
        case Op::map: {
            PageAttributes attributes;
            attributes.read_only = operation.read_only;
            attributes.kind = operation.kind;
            return fixture.table->map(range, operation.segments, attributes, operation.options);
        }
        case Op::unmap: return fixture.table->unmap(range);
        case Op::make_sparse: return fixture.table->make_sparse(range);
        case Op::clear_sparse: return fixture.table->clear_sparse(range);
        }
        return failure(Error::invalid_argument);
    }

    // Translation of page p (at an offset inside it) checked against the model.
    template <class Fixture>
    Translation check_page(Fixture &fixture, u64 p, bool check_large_pages, PageSizeSet pinned = {})
    {
        const u64 offset = (p * 0x358) & 0xFF8;
        auto translation = fixture.table->translate(VirtualAddress{window + p * page + offset});
        REQUIRE(translation.has_value());
        // The shadow's answer and the VRAM walker's answer are the same in every field.
        auto walked =
            fixture.table->translate_from_memory(VirtualAddress{window + p * page + offset});
        REQUIRE(walked.has_value());
        CHECK(walked->state == translation->state);
        CHECK(walked->level == translation->level);
        CHECK(walked->address == translation->address);
        CHECK(walked->page_size == translation->page_size);
        CHECK(walked->attributes == translation->attributes);
        const PageRecord &record = model[p];
        INFO("page " << p << " model state " << int(record.state));
        switch (record.state) {
        case PageState::none: CHECK(translation->state == TranslationState::unmapped); break;
        case PageState::sparse: CHECK(translation->state == TranslationState::sparse); break;
        case PageState::mapped: {
            REQUIRE(translation->state == TranslationState::mapped);
            CHECK(translation->address.value() == record.pa + offset);
            CHECK(translation->attributes.read_only == record.read_only);
            CHECK(translation->attributes.kind == record.kind);
            const PageSize size = translation->page_size;
            CHECK(config.page_sizes.contains(size));
            if (!pinned.empty()) CHECK(pinned.contains(size));
            const u64 pages = size.bytes() / page;
            const u64 base = p / pages * pages;
            CHECK((record.pa - (p - base) * page) % size.bytes() == 0);
            if (check_large_pages) {
                // The whole large page is one uniform, contiguous run in the model.
                const u64 step = pages > 512 ? 509 : 1;
                for (u64 q = base; q < base + pages; q += step) {
                    const PageRecord &other = model[q];
                    REQUIRE(other.state == PageState::mapped);
                    CHECK(other.pa == record.pa + (q - p) * page);
                    CHECK(other.read_only == record.read_only);
                }
            }
            break;
        }
        }
        return *translation;
    }

    void check_pages(u64 p, bool large, PageSizeSet pinned = {})
    {
        Translation a = check_page(v2, p, large, pinned);
        Translation b = check_page(v3, p, false, pinned);
        CHECK(a.state == b.state);
        CHECK(a.address == b.address);
        CHECK(a.page_size == b.page_size);
        if (a.state == TranslationState::mapped) ++sizes_seen[a.page_size.shift()];
    }
    std::array<u64, 64> sizes_seen{};

    template <class Fixture>
    static void check_footprint(Fixture &fixture)
    {
        const PageTableStats &stats = fixture.table->stats();
        CHECK(stats.retired_tables == 0);
        // Emptied pages the source keeps for reuse (spares) are held too.
        u64 pages_in_use = stats.tables() - stats.big_tables +
                           fixture.buddy_pages->host_pages_for_big_tables() +
                           fixture.buddy_pages->spare_pages();
        CHECK(fixture.buddy.buddy.free_bytes() + pages_in_use * page == fixture.image.size() * 8);
    }

    template <class Fixture>
    struct Snapshot {
        PageTableStats stats;
        u64 free_bytes;
        MemoryCounters counters;
        explicit Snapshot(Fixture &fixture)
            : stats(fixture.table->stats()),
              free_bytes(fixture.buddy.buddy.free_bytes()),
              counters(fixture.memory->counters())
        {
        }
        void unchanged(Fixture &fixture) const
        {
            const PageTableStats &now = fixture.table->stats();
            CHECK(now.tables_per_level == stats.tables_per_level);
            CHECK(now.big_tables == stats.big_tables);
            CHECK(now.table_bytes == stats.table_bytes);
            CHECK(fixture.buddy.buddy.free_bytes() == free_bytes);
            // The page source may zero pages it hands out; the page table wrote nothing.
            CHECK(fixture.memory->counters().writes == counters.writes);
            fixture.audit();
        }
    };

    // One step on both formats. Returns true if it succeeded.
    bool step(const Operation &operation, bool full_check)
    {
        const Result<void> want = expected(operation);
        const bool pinned = !operation.options.page_sizes.empty();
        Snapshot<PageTableFixture<MmuV2>> before2(v2);
        Snapshot<PageTableFixture<MmuV3>> before3(v3);
        auto got2 = run(v2, operation);
        auto got3 = run(v3, operation);
        INFO("op " << int(operation.op) << " first " << operation.first << " count "
                   << operation.count << " segments " << operation.segments.size());
        REQUIRE(got2.has_value() == got3.has_value());
        if (!got2) {
            CHECK(got2.error() == got3.error());
            if (want) {
                // Only a pinned page size that cannot place the range may refuse what the
                // model allows.
                CHECK(pinned);
                CHECK(!placeable(operation));
                CHECK(got2.error() == Error::misaligned);
                ++pinned_refused;
            } else if (pinned) {
                CHECK((got2.error() == want.error() || got2.error() == Error::misaligned));
            } else {
                CHECK(got2.error() == want.error());
            }
            before2.unchanged(v2);
            before3.unchanged(v3);
        } else {
            REQUIRE(want.has_value());
            CHECK(placeable(operation));
            if (pinned && !operation.options.page_sizes.contains(PageSize::size_4k()))
                ++pinned_placed;
            CHECK(got2->pending() == got3->pending());
            if (operation.op == Op::unmap) CHECK(got2->invalidation().ack_globally);
            v2.flush(*got2);
            v3.flush(*got3);
            apply(operation);
            v2.audit();
            v3.audit();
            check_footprint(v2);
            check_footprint(v3);
        }
        // Samples: the edges of the range, just outside it, and random pages.
        const u64 last = operation.first + operation.count - 1;
        for (u64 p : {operation.first, last, operation.first + operation.count / 2}) {
            check_pages(p, true, got2 && pinned ? operation.options.page_sizes : PageSizeSet{});
        }
        if (operation.first > 0) check_pages(operation.first - 1, true);
        if (last + 1 < window_pages) check_pages(last + 1, true);
        for (int i = 0; i < 24; ++i) check_pages(random.below(window_pages), i < 4);
        if (full_check)
            for (u64 p = 0; p < window_pages; ++p) check_pages(p, false);
        return got2.has_value();
    }

    // Unmap everything still mapped, clear every sparse page: only the root remains.
    void clear_all()
    {
        for (u64 p = 0; p < window_pages;) {
            u64 q = p;
            PageState state = model[p].state;
            while (q < window_pages && model[q].state == state && q - p < 131072) ++q;
            Operation operation;
            operation.first = p;
            operation.count = q - p;
            if (state == PageState::mapped) {
                operation.op = Op::unmap;
                REQUIRE(step(operation, false));
                continue;  // the pages may now be sparse
            }
            if (state == PageState::sparse) {
                operation.op = Op::clear_sparse;
                REQUIRE(step(operation, false));
            }
            p = q;
        }
        CHECK(v2.table->stats().tables() == 1);
        CHECK(v3.table->stats().tables() == 1);
    }
};

}  // namespace

TEST_CASE("page table: random operations agree with the reference model on v2 and v3")
{
    Harness harness;
    unsigned successes = 0, failures = 0;
    for (unsigned i = 0; i < GPUMMU_PAGE_TABLE_OPERATIONS; ++i) {
        if (i % 400 == 399) {
            // Start over now and then, so that whole 512 MiB entries are free again: map
            // one with a 512 MiB page, then carry on with random operations over it.
            harness.clear_all();
            Operation huge;
            huge.first = (i / 400 % 2) * 131072;
            huge.count = 131072;
            huge.segments.push_back({PhysicalAddress{(1 + i / 400) << 29}, 1ull << 29});
            REQUIRE(harness.step(huge, false));
            CHECK(harness.v2.table->translate(VirtualAddress{window + huge.first * page})
                      ->page_size == PageSize::size_512m());
            continue;
        }
        Operation operation = harness.generate();
        const bool full = (i + 1) % 500 == 0;
        if (harness.step(operation, full))
            ++successes;
        else
            ++failures;
    }
    MESSAGE("successes " << successes << ", refusals " << failures << ", tables at end (v2) "
                         << harness.v2.table->stats().tables());
    MESSAGE("mapped samples by page size: 4K "
            << harness.sizes_seen[12] << ", 64K " << harness.sizes_seen[16] << ", 2M "
            << harness.sizes_seen[21] << ", 512M " << harness.sizes_seen[29]);
    MESSAGE("maps pinned to 64 KiB or 2 MiB pages: " << harness.pinned_placed << " placed, "
                                                     << harness.pinned_refused
                                                     << " refused (no page of that size fits)");
    for (unsigned shift : {12u, 16u, 21u, 29u}) CHECK(harness.sizes_seen[shift] > 0);
    CHECK(harness.pinned_placed > 0);
    CHECK(harness.pinned_refused > 0);
    // The sequence must exercise both outcomes substantially.
    CHECK(successes > GPUMMU_PAGE_TABLE_OPERATIONS / 4);
    CHECK(failures > GPUMMU_PAGE_TABLE_OPERATIONS / 20);
    harness.clear_all();
    CHECK(harness.v2.table->stats().tables() == 1);
    CHECK(harness.v3.table->stats().tables() == 1);
    harness.check_pages(0, false);
}

namespace {

// Runs `operation` with the Nth table allocation failing, N = 0, 1, ... until it no longer
// fails for want of a table; each starved attempt must leave no trace. Returns the final
// outcome (its batch finished) and counts the attempts.
template <class Fixture>
Result<void> sweep(Harness &harness, Fixture &fixture, const Operation &operation, unsigned &swept,
                   unsigned &deepest)
{
    for (long n = 0;; ++n) {
        fixture.pages->fail_after(n);
        Harness::Snapshot<Fixture> before(fixture);
        const long allocations = fixture.pages->allocations();
        auto got = harness.run(fixture, operation);
        fixture.pages->fail_after(-1);
        if (!got && got.error() == Error::out_of_memory) {
            CHECK(fixture.pages->allocations() - allocations == n);
            before.unchanged(fixture);
            ++swept;
            deepest = std::max(deepest, static_cast<unsigned>(n));
            continue;
        }
        if (!got) return failure(got.error());
        fixture.flush(*got);
        fixture.audit();
        return success();
    }
}

}  // namespace

TEST_CASE("page table: failing the Nth table allocation leaves no trace, for every N")
{
    Harness harness;
    unsigned swept = 0, deepest = 0;
    for (unsigned i = 0; i < 150; ++i) {
        Operation operation = harness.generate();
        const Result<void> want = harness.expected(operation);
        Result<void> got2 = sweep(harness, harness.v2, operation, swept, deepest);
        Result<void> got3 = sweep(harness, harness.v3, operation, swept, deepest);
        REQUIRE(got2.has_value() == got3.has_value());
        if (got2) {
            REQUIRE(want.has_value());
            harness.apply(operation);
        } else if (operation.options.page_sizes.empty()) {
            CHECK(got2.error() == want.error());
        }
        for (int k = 0; k < 8; ++k) harness.check_pages(harness.random.below(window_pages), false);
        harness.check_pages(operation.first, true);
    }
    MESSAGE("injected failures: " << swept << ", deepest N: " << deepest);
    CHECK(swept > 50);
    CHECK(deepest >= 3);
}
