// translate(): tables built by hand with the format encoders in host memory, one case per
// page size and per special state, on both formats.
#include <doctest/doctest.h>

#include <vector>

#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/paging/walker.hpp"

using namespace gpummu;

namespace {

constexpr u64 KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;

template <class F>
struct Tables {
    std::vector<u64> image = std::vector<u64>(4 * MiB / 8, 0);
    HostMemory memory{image};
    u64 next = 0x1000;  // the root is at 0
    const TablePointer root{Aperture::video, PhysicalAddress{0}};

    VramAddress new_page()
    {
        VramAddress page{next};
        next += 4096;
        return page;
    }
    void write(VramAddress address, u64 word)
    {
        REQUIRE(memory.write(address, std::span<const u64>(&word, 1)));
    }
    void write2(VramAddress address, u64 low, u64 high)
    {
        std::array<u64, 2> words{low, high};
        REQUIRE(memory.write(address, words));
    }
    u64 read(VramAddress address)
    {
        std::array<u64, 1> word{};
        REQUIRE(memory.read(address, word));
        return word[0];
    }
    // Directories from the root down to `depth` (exclusive) for `va`; returns the table at `depth`.
    VramAddress path(VirtualAddress va, std::size_t depth)
    {
        VramAddress table{0};
        for (std::size_t d = 0; d < depth; ++d) {
            VramAddress entry = table + F::levels[d].index_of(va) * 8u;
            auto pde = F::Pde::from_raw(read(entry));
            if (pde.state() != PdeState::valid) {
                VramAddress child = new_page();
                write(entry, F::Pde::point_to({Aperture::video, physical(child)}).value().raw());
                table = child;
            } else {
                table = VramAddress{pde.pointer().address.value()};
            }
        }
        return table;
    }
    static constexpr std::size_t pd0 = F::levels.size() - 2;
    VramAddress pd0_entry(VirtualAddress va)
    {
        return path(va, pd0) + F::levels[pd0].index_of(va) * 16u;
    }
    Translation translate_ok(VirtualAddress va)
    {
        auto result = gpummu::translate<F>(memory, root, va);
        REQUIRE(result);
        return *result;
    }
};

PageAttributes vram_page(u64 address)
{
    return PageAttributes{.address = PhysicalAddress{address}, .kind = 6};
}

}  // namespace

TEST_CASE_TEMPLATE("4 KiB and 64 KiB pages under one dual PDE", F, MmuV2, MmuV3)
{
    Tables<F> tables;
    VirtualAddress va{0x12'3456'7000};
    VramAddress small = tables.new_page();
    VramAddress big = tables.new_page() + 0x100;  // big tables are 256-byte aligned
    tables.write2(
        tables.pd0_entry(va),
        F::DualPde::point_to({Aperture::video, physical(big)}, {Aperture::video, physical(small)})
            .value()
            .low(),
        F::DualPde::point_to({Aperture::video, physical(big)}, {Aperture::video, physical(small)})
            .value()
            .high());
    const LevelDescriptor &pt = F::levels.back();
    tables.write(small + pt.index_of(va) * 8u, F::Pte::map(vram_page(0x4000'1000)).value().raw());

    Translation four_k = tables.translate_ok(va + 0x123);
    CHECK(four_k.state == TranslationState::mapped);
    CHECK(four_k.page_size == PageSize::size_4k());
    CHECK(four_k.address == PhysicalAddress{0x4000'1123});
    CHECK(four_k.attributes.kind == 6);
    CHECK(four_k.level == Level{static_cast<u8>(F::levels.size() - 1)});

    // The neighbouring 4 KiB page has no PTE: unmapped.
    CHECK(tables.translate_ok(va + 0x1000).state == TranslationState::unmapped);

    // A valid big PTE decides for its 64 KiB.
    VirtualAddress other{0x12'3458'0000};  // same 2 MiB, another 64 KiB
    VramAddress big_entry = big + F::big_page_table.index_of(other) * 8u;
    tables.write(
        big_entry,
        F::Pte::map({.address = PhysicalAddress{0x8000'0000}, .read_only = true}).value().raw());
    Translation big_page = tables.translate_ok(other + 0x2345);
    CHECK(big_page.state == TranslationState::mapped);
    CHECK(big_page.page_size == PageSize::size_64k());
    CHECK(big_page.address == PhysicalAddress{0x8000'2345});
    CHECK(big_page.attributes.read_only);

    // NV4K on the big PTE over the 4 KiB page: the small PTE is ignored.
    VramAddress covering = big + F::big_page_table.index_of(va) * 8u;
    tables.write(covering, F::Pte::no_valid_4k().raw());
    CHECK(tables.translate_ok(va).state == TranslationState::unmapped);
    tables.write(covering, F::Pte::sparse().raw());
    CHECK(tables.translate_ok(va).state == TranslationState::sparse);
    tables.write(covering, F::Pte::invalid().raw());
    CHECK(tables.translate_ok(va).state == TranslationState::mapped);  // the small table again
}

TEST_CASE_TEMPLATE("2 MiB and 512 MiB pages in directory entries", F, MmuV2, MmuV3)
{
    Tables<F> tables;
    VirtualAddress two_m{0x40'0060'0000};
    auto pte = F::Pte::map(vram_page(0x1'2340'0000 & ~(2 * MiB - 1))).value();
    auto dual = F::DualPde::from_pte(pte);
    tables.write2(tables.pd0_entry(two_m), dual.low(), dual.high());
    Translation t = tables.translate_ok(two_m + 0x1'2345);
    CHECK(t.state == TranslationState::mapped);
    CHECK(t.page_size == PageSize::size_2m());
    CHECK(t.address == PhysicalAddress{(0x1'2340'0000 & ~(2 * MiB - 1)) + 0x1'2345});

    VirtualAddress half_g{0x80'2000'0000};  // 512 MiB aligned
    std::size_t pd1 = F::levels.size() - 3;
    VramAddress pd1_table = tables.path(half_g, pd1);
    tables.write(pd1_table + F::levels[pd1].index_of(half_g) * 8u,
                 F::Pte::map(vram_page(0x2000'0000)).value().raw());
    Translation large = tables.translate_ok(half_g + 0x123'4567);
    CHECK(large.state == TranslationState::mapped);
    CHECK(large.page_size == PageSize::size_512m());
    CHECK(large.address == PhysicalAddress{0x2000'0000 + 0x123'4567});
    CHECK(large.level == Level{static_cast<u8>(pd1)});
}

TEST_CASE("256 GiB pages at PD2 (MMU v3)")
{
    Tables<MmuV3> tables;
    VirtualAddress va{u64{3} << 38};
    VramAddress pd2 = tables.path(va, 2);
    tables.write(pd2 + MmuV3::levels[2].index_of(va) * 8u,
                 MmuV3::Pte::map(vram_page(u64{1} << 38)).value().raw());
    Translation t = tables.translate_ok(va + 0x12'3456'7890);
    CHECK(t.page_size == PageSize::size_256g());
    CHECK(t.address == PhysicalAddress{(u64{1} << 38) + 0x12'3456'7890});
    // PD3 holds no PTEs in any format: an IS_PTE word there is refused, not honoured.
    tables.write(tables.path(va, 1) + MmuV3::levels[1].index_of(va) * 8u, 1);
    CHECK(translate<MmuV3>(tables.memory, tables.root, va).error() == Error::malformed_record);
}

TEST_CASE_TEMPLATE("sparse and invalid directories end the walk where they are", F, MmuV2, MmuV3)
{
    Tables<F> tables;
    VirtualAddress va{0x7'0000'0000};
    CHECK(tables.translate_ok(va).state == TranslationState::unmapped);
    CHECK(tables.translate_ok(va).level == Level{0});
    VramAddress depth2 = tables.path(va, 2);
    tables.write(depth2 + F::levels[2].index_of(va) * 8u, F::Pde::sparse().raw());
    Translation sparse = tables.translate_ok(va);
    CHECK(sparse.state == TranslationState::sparse);
    CHECK(sparse.level == Level{2});
    tables.write2(tables.pd0_entry(VirtualAddress{0x1000'0000}), F::DualPde::sparse().low(),
                  F::DualPde::sparse().high());
    CHECK(tables.translate_ok(VirtualAddress{0x1000'1000}).state == TranslationState::sparse);
}

TEST_CASE_TEMPLATE("bad walks are refused", F, MmuV2, MmuV3)
{
    Tables<F> tables;
    CHECK(translate<F>(tables.memory, tables.root, VirtualAddress{u64{1} << F::va_bits}).error() ==
          Error::out_of_range);
    CHECK(translate<F>(tables.memory, TablePointer{Aperture::system_coherent, PhysicalAddress{0}},
                       VirtualAddress{0})
              .error() == Error::invalid_aperture);
    // A directory that points into system memory cannot be followed through VRAM.
    tables.write(
        VramAddress{0},
        F::Pde::point_to({Aperture::system_noncoherent, PhysicalAddress{0x1000}}).value().raw());
    CHECK(translate<F>(tables.memory, tables.root, VirtualAddress{0}).error() ==
          Error::invalid_aperture);
    // A pointer past the end of the memory surfaces the memory's own error.
    tables.write(VramAddress{0},
                 F::Pde::point_to({Aperture::video, PhysicalAddress{64 * GiB}}).value().raw());
    CHECK(translate<F>(tables.memory, tables.root, VirtualAddress{0}).error() ==
          Error::out_of_range);
}
