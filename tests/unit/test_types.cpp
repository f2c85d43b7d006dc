// Strong address types, page sizes, ranges and checked arithmetic.
#include <doctest/doctest.h>

#include "gpummu/core/types.hpp"

using namespace gpummu;

TEST_CASE("checked arithmetic reports overflow instead of wrapping")
{
    CHECK(checked_add(1, 2).value() == 3);
    CHECK(checked_add(~u64{0}, 1).error() == Error::arithmetic_overflow);
    CHECK(align_up(0x1001, 0x1000).value() == 0x2000);
    CHECK(align_up(0x1000, 0x1000).value() == 0x1000);
    CHECK(align_up(~u64{0}, 0x1000).error() == Error::arithmetic_overflow);
    CHECK(align_up(5, 3).error() == Error::invalid_argument);
    CHECK(align_down(0x1fff, 0x1000) == 0x1000);
}

TEST_CASE("page sizes accept only the MMU's shifts")
{
    CHECK(PageSize::from_shift(16).value() == PageSize::size_64k());
    CHECK(PageSize::from_bytes(2u << 20).value() == PageSize::size_2m());
    CHECK(PageSize::from_bytes(u64{1} << 38).value() == PageSize::size_256g());
    CHECK(PageSize::from_shift(13).error() == Error::page_size_not_supported);
    CHECK(PageSize::from_bytes(3 * 4096).error() == Error::page_size_not_supported);
    CHECK(PageSize::size_512m().bytes() == (u64{512} << 20));
    PageSizeSet set{PageSize::size_4k(), PageSize::size_2m()};
    CHECK(set.contains(PageSize::size_4k()));
    CHECK_FALSE(set.contains(PageSize::size_64k()));
    CHECK(set.count() == 2);
    CHECK(set.with(PageSize::size_64k()).count() == 3);
}

TEST_CASE("frame numbers and addresses convert explicitly")
{
    PhysicalAddress address{0x12345678};
    Pfn pfn = Pfn::containing(address);
    CHECK(pfn.value() == 0x12345);
    CHECK(pfn.address() == PhysicalAddress{0x12345000});
    CHECK(Vfn::containing(VirtualAddress{0x2000}).value() == 2);
    CHECK(physical(VramAddress{0x4000}) == PhysicalAddress{0x4000});
    CHECK(VirtualAddress{0x1000}.is_aligned_to(PageSize::size_4k()));
    CHECK_FALSE(VirtualAddress{0x1000}.is_aligned_to(PageSize::size_64k()));
    CHECK(VirtualAddress{~u64{0}}.checked_offset(1).error() == Error::arithmetic_overflow);
}

TEST_CASE("half-open ranges: containment, overlap, and refused construction")
{
    auto range = VirtualRange::from_size(VirtualAddress{0x1000}, 0x2000).value();
    CHECK(range.size() == 0x2000);
    CHECK(range.contains(VirtualAddress{0x1000}));
    CHECK(range.contains(VirtualAddress{0x2fff}));
    CHECK_FALSE(range.contains(VirtualAddress{0x3000}));
    auto touching = VirtualRange::from_size(VirtualAddress{0x3000}, 0x1000).value();
    CHECK_FALSE(range.overlaps(touching));
    auto inside = VirtualRange::from_size(VirtualAddress{0x2000}, 0x1000).value();
    CHECK(range.overlaps(inside));
    CHECK(range.contains(inside));
    CHECK(VirtualRange::from_size(VirtualAddress{~u64{0}}, 2).error() ==
          Error::arithmetic_overflow);
    CHECK(VirtualRange::from_bounds(VirtualAddress{2}, VirtualAddress{1}).error() ==
          Error::invalid_argument);
    CHECK(VirtualRange::from_bounds(VirtualAddress{2}, VirtualAddress{2}).value().empty());
}
