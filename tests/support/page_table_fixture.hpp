// Test helper: a page table over a host-memory VRAM image with table pages from a buddy
// allocator, plus a page source that fails on request and a recording TLB invalidator.
#pragma once

#include <memory>
#include <vector>

#include <doctest/doctest.h>

#include "gpummu/alloc/buddy.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/memory/table_pages.hpp"
#include "gpummu/paging/page_table.hpp"
#include "support/buddy_fixture.hpp"

namespace gpummu::testing {

// Hands allocations to BuddyTablePages until `fail_after` more have succeeded, then
// refuses with out_of_memory (a fault-injection point for every table allocation).
class FaultyPages {
public:
    FaultyPages(BuddyTablePages<HostMemory> &inner) : inner_(inner) {}
    Result<TablePage> allocate_table(TableSize size)
    {
        if (fail_after_ == 0) return failure(Error::out_of_memory);
        if (fail_after_ > 0) --fail_after_;
        ++allocations_;
        if (size == TableSize::big_page) ++big_allocations_;
        return inner_.allocate_table(size);
    }
    Result<void> free_table(TablePage page, bool known_zero)
    {
        ++frees_;
        return inner_.free_table(page, known_zero);
    }
    Result<void> take_back(TablePage page)
    {
        ++frees_;
        return inner_.take_back(page);
    }
    void release_spare_pages() { inner_.release_spare_pages(); }
    void fail_after(long count) { fail_after_ = count; }  // -1: never fail
    long allocations() const { return allocations_; }
    long big_allocations() const { return big_allocations_; }
    long frees() const { return frees_; }

private:
    BuddyTablePages<HostMemory> &inner_;
    long fail_after_ = -1;
    long allocations_ = 0;
    long big_allocations_ = 0;
    long frees_ = 0;
};
static_assert(TablePageSource<FaultyPages>);

struct RecordingInvalidator {
    std::vector<TlbInvalidation> seen;
    Result<void> invalidate(const TlbInvalidation &invalidation)
    {
        seen.push_back(invalidation);
        return success();
    }
};

template <MmuFormat F>
struct PageTableFixture {
    using Table = PageTable<F, HostMemory, FaultyPages>;
    static constexpr u64 default_vram = 32ull << 20;

    std::vector<u64> image;
    std::unique_ptr<HostMemory> memory;
    BuddyFixture buddy;
    std::vector<BigTableSlot> slots;
    std::unique_ptr<BuddyTablePages<HostMemory>> buddy_pages;
    std::unique_ptr<FaultyPages> pages;
    std::vector<PageTableNode> nodes;
    std::vector<PageTableChildren> children;
    std::unique_ptr<Table> table;
    RecordingInvalidator invalidator;

    explicit PageTableFixture(PageTableConfig config = {}, u64 vram = default_vram,
                              std::size_t node_count = 4096, std::size_t child_blocks = 64)
        : image(vram / 8, 0xDEADBEEFDEADBEEFull),  // free VRAM holds garbage
          memory(std::make_unique<HostMemory>(image)),
          buddy(BuddyFixture::make({range_of(0, vram)})),
          slots(256),
          buddy_pages(std::make_unique<BuddyTablePages<HostMemory>>(buddy.buddy, *memory, slots)),
          pages(std::make_unique<FaultyPages>(*buddy_pages)),
          nodes(node_count),
          children(child_blocks)
    {
        auto made = Table::create(*memory, *pages, {nodes, children}, config);
        REQUIRE(made.has_value());
        table = std::make_unique<Table>(std::move(*made));
    }

    // Finishes the batch and frees retired tables; fails the test on error.
    void flush(TlbBatch &batch)
    {
        auto flushed = table->flush(batch, invalidator);
        REQUIRE(flushed.has_value());
    }
    void audit()
    {
        auto checked = table->check_invariants();
        REQUIRE_MESSAGE(checked.has_value(), "page-table audit failed");
    }
    // Bytes of VRAM held by table pages (16 big tables share one 4 KiB page).
    u64 table_footprint() const
    {
        return buddy.buddy.stats().total_bytes - buddy.buddy.free_bytes();
    }
};

inline VirtualRange va_range(u64 begin, u64 size)
{
    return VirtualRange::from_size(VirtualAddress{begin}, size).value();
}

}  // namespace gpummu::testing
