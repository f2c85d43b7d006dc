// Bit-field descriptors: get/insert/mask and the overlap and fit proofs.
#include <doctest/doctest.h>

#include "gpummu/core/bitfield.hpp"

using namespace gpummu;

TEST_CASE("a field reads and writes only its own bits")
{
    constexpr BitField field = bits(11, 8);
    CHECK(field.mask() == 0xF00);
    CHECK(field.max_value() == 0xF);
    CHECK(field.get(0xABCD) == 0xB);
    CHECK(field.insert(0xFFFF, 0x3) == 0xF3FF);
    CHECK(field.fits(15));
    CHECK_FALSE(field.fits(16));
}

TEST_CASE("fields above bit 63 live in the second word")
{
    constexpr BitField high = bits(66, 65);
    CHECK(high.word == 1);
    CHECK(high.low == 1);
    CHECK(high.width == 2);
    CHECK(high.absolute_low() == 65);
    CHECK(high.absolute_high() == 66);
}

TEST_CASE("a full-width field works")
{
    constexpr BitField all = bits(63, 0);
    CHECK(all.max_value() == ~u64{0});
    CHECK(all.get(0x1234) == 0x1234);
    CHECK(all.insert(0, ~u64{0}) == ~u64{0});
}

TEST_CASE("address fields refuse misaligned and too-wide addresses")
{
    constexpr AddressField field{bits(32, 8), 12};
    CHECK(field.encode(0, 0x5000).value() == 0x500);
    CHECK(field.decode(0x500) == 0x5000);
    CHECK(field.encode(0, 0x5800).error() == Error::misaligned);
    CHECK(field.encode(0, u64{1} << 37).error() == Error::field_overflow);
    CHECK(field.encode(0, (u64{1} << 37) - 0x1000).has_value());
}

TEST_CASE("overlap and fit proofs detect collisions")
{
    constexpr std::array good{bit(0), bits(2, 1), bits(66, 65)};
    constexpr std::array overlapping{bits(5, 3), bit(4)};
    constexpr std::array same_bits_other_word{bits(5, 3), bits(69, 67)};
    static_assert(fields_are_disjoint(good));
    static_assert(!fields_are_disjoint(overlapping));
    static_assert(fields_are_disjoint(same_bits_other_word));
    static_assert(fields_fit(good, 16));
    static_assert(!fields_fit(good, 8));
    CHECK(fields_mask(good, 0) == 0x7);
    CHECK(fields_mask(good, 1) == 0x6);
}
