// libFuzzer target: a page table (both formats, the byte stream picks) driven by map (any
// page sizes allowed or pinned, replace or not, any aperture and attributes), unmap,
// make_sparse and clear_sparse over VAs near 0, a PD boundary and the top of the format's
// VA space. After every step: the table audit (check_invariants), table pages + free VRAM =
// VRAM, a refused operation leaving VRAM and the table statistics unchanged, and the table
// walk agreeing with translate() on every page it reports (paging/table_walk.hpp).
#include <memory>
#include <vector>

#include "fuzz_stream.hpp"
#include "gpummu/alloc/buddy.hpp"
#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/memory/table_pages.hpp"
#include "gpummu/paging/page_table.hpp"
#include "gpummu/paging/table_walk.hpp"
#include "gpummu/paging/walker.hpp"

using namespace gpummu;

namespace {

struct NoInvalidate {
    Result<void> invalidate(const TlbInvalidation &) { return success(); }
};

template <MmuFormat F>
struct WalkCheck {
    HostMemory &memory;
    TablePointer root;
    u64 pages = 0;
    Result<void> table(const WalkedTable &) { return success(); }
    void page(const WalkedPage &page)
    {
        ++pages;
        auto translated = translate<F>(memory, root, page.va);
        FUZZ_CHECK(translated.has_value() && translated->state == page.state);
        if (page.state == TranslationState::mapped)
            FUZZ_CHECK(translated->attributes == page.attributes &&
                       translated->page_size == page.page_size);
    }
};

template <MmuFormat F>
void run(fuzz::Stream &in)
{
    constexpr u64 vram = 4u << 20;  // room for ~1000 tables; small enough to set up fast
    std::vector<u64> image(vram / 8);
    HostMemory memory(image);
    const std::array<VramRange, 1> regions{VramRange::from_size(VramAddress{0}, vram).value()};
    std::vector<u64> metadata(BuddyAllocator::metadata_words(regions).value());
    auto buddy = BuddyAllocator::create(regions, metadata).value();
    std::vector<BigTableSlot> slots(256);
    BuddyTablePages<HostMemory> pages(buddy, memory, slots);
    std::vector<PageTableNode> nodes(2048);
    std::vector<PageTableChildren> children(64);
    PageTableConfig config;
    config.page_sizes = PageSizeSet{PageSize::size_4k(), PageSize::size_64k(), PageSize::size_2m(),
                                    PageSize::size_512m()};
    auto made = PageTable<F, HostMemory, BuddyTablePages<HostMemory>>::create(
        memory, pages, {nodes, children}, config);
    FUZZ_CHECK(made.has_value());
    auto &table = *made;
    NoInvalidate invalidator;
    const u64 top = u64{1} << F::va_bits;
    const u64 bases[3] = {0, (u64{1} << 38) - (64u << 20), top - (1u << 30)};
    const PageSize sizes[4] = {PageSize::size_4k(), PageSize::size_64k(), PageSize::size_2m(),
                               PageSize::size_512m()};
    for (int step = 0; step < 200 && !in.empty(); ++step) {
        const u64 free_before = buddy.free_bytes();
        const u64 tables_before = table.stats().tables();
        const PageSize unit = sizes[in.below(in.coin() ? 3 : 4)];
        const u64 base = bases[in.below(3)];
        const u64 va = base + in.below((1u << 30) / unit.bytes()) * unit.bytes() +
                       (in.below(8) == 0 ? 4096 * in.below(16) : 0);
        const u64 bytes = unit.bytes() * (1 + in.below(unit == PageSize::size_512m() ? 2 : 20));
        auto range = VirtualRange::from_size(VirtualAddress{va}, bytes);
        if (!range) continue;
        Result<TlbBatch> done = failure(Error::invalid_argument);
        switch (in.byte() % 5) {
        case 0:
        case 1: {
            PageAttributes attributes;
            attributes.aperture = in.coin() ? Aperture::video : Aperture::system_coherent;
            attributes.address = PhysicalAddress{in.below(1u << 24) * unit.bytes()};
            attributes.read_only = in.coin();
            attributes.privileged = in.coin();
            attributes.kind = static_cast<u8>(in.below(4));
            MapOptions options;
            options.replace = in.coin();
            if (in.coin()) options.page_sizes = PageSizeSet{sizes[in.below(4)]};
            done = table.map(*range, attributes, options);
            break;
        }
        case 2: done = table.unmap(*range); break;
        case 3: done = table.make_sparse(*range); break;
        default: done = table.clear_sparse(*range); break;
        }
        if (done) {
            FUZZ_CHECK(table.flush(*done, invalidator).has_value());
        } else {
            FUZZ_CHECK(buddy.free_bytes() == free_before);
            FUZZ_CHECK(table.stats().tables() == tables_before);
        }
        FUZZ_CHECK(table.check_invariants().has_value());
        // Every 4 KiB table takes a page; big-page tables share host pages sixteen to one.
        const PageTableStats &stats = table.stats();
        FUZZ_CHECK(stats.retired_tables == 0);
        const u64 pages_in_use =
            stats.tables() - stats.big_tables + pages.host_pages_for_big_tables();
        FUZZ_CHECK(pages_in_use * 4096 + buddy.free_bytes() == vram);
    }
    WalkCheck<F> check{memory, table.root()};
    FUZZ_CHECK(walk_tables<F>(memory, VramAddress{vram}, table.root(), VirtualAddress{0},
                              VirtualAddress{top}, check)
                   .has_value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    fuzz::Stream in(data, size);
    if (in.coin())
        run<MmuV2>(in);
    else
        run<MmuV3>(in);
    return 0;
}
