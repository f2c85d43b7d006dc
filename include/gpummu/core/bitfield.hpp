// gpummu/core/bitfield.hpp: constexpr descriptors for the bit fields of page-table entries.
//
// What it does
//   - `BitField` names bits hi:lo of an entry. Entries are 8 or 16 bytes; a field lives in
//     one 64-bit word (bits 0..63 are word 0, 64..127 word 1) and never straddles two.
//     `bits(hi, lo)` builds one and, in a constant expression, refuses a reversed, too wide
//     or straddling range with a compile error.
//   - `get`, `insert`, `fits`, `mask` read and write the field in a word.
//   - `AddressField` is a BitField plus the shift the hardware applies: the field holds
//     `address >> shift`. `encode` refuses addresses whose low `shift` bits are set
//     (Error::misaligned) or that do not fit (Error::field_overflow).
//   - `fields_are_disjoint` and `fields_fit` are the compile-time proofs that a format's
//     fields do not overlap and stay inside the entry; formats call them in static_asserts
//     beside their tables.
//
// What it does not do
//   - It knows nothing of NVIDIA formats; format/*.hpp supply the positions.
#pragma once

#include <array>
#include <cstddef>

#include "gpummu/core/types.hpp"

namespace gpummu {

struct BitField {
    u8 word = 0;   // 0: bits 63:0 of the entry, 1: bits 127:64
    u8 low = 0;    // lowest bit inside that word
    u8 width = 0;  // number of bits, 1..64

    [[nodiscard]] constexpr unsigned high() const noexcept { return low + width - 1u; }
    [[nodiscard]] constexpr unsigned absolute_low() const noexcept { return word * 64u + low; }
    [[nodiscard]] constexpr unsigned absolute_high() const noexcept { return word * 64u + high(); }
    [[nodiscard]] constexpr u64 max_value() const noexcept
    {
        return width >= 64 ? ~u64{0} : (u64{1} << width) - 1;
    }
    // The field's bits in place within its word.
    [[nodiscard]] constexpr u64 mask() const noexcept { return max_value() << low; }
    [[nodiscard]] constexpr bool fits(u64 value) const noexcept { return value <= max_value(); }
    [[nodiscard]] constexpr u64 get(u64 word_value) const noexcept
    {
        return (word_value >> low) & max_value();
    }
    // Replaces the field in `word_value`; a value that does not fit is a caller bug
    // (callers validate with `fits` first and return Error::field_overflow).
    [[nodiscard]] constexpr u64 insert(u64 word_value, u64 value) const noexcept
    {
        GPUMMU_ASSERT(fits(value));
        return (word_value & ~mask()) | ((value & max_value()) << low);
    }
    [[nodiscard]] constexpr bool get_flag(u64 word_value) const noexcept
    {
        return get(word_value) != 0;
    }
    [[nodiscard]] constexpr u64 insert_flag(u64 word_value, bool value) const noexcept
    {
        return insert(word_value, value ? 1u : 0u);
    }
    constexpr bool operator==(const BitField &) const noexcept = default;
};

// bits(hi, lo) with absolute positions 0..127, as the manuals print them.
[[nodiscard]] consteval BitField bits(unsigned high, unsigned low)
{
    if (high < low) detail::constant_evaluation_failure("bit field: high below low");
    if (high > 127) detail::constant_evaluation_failure("bit field: beyond a 16-byte entry");
    if (high / 64 != low / 64) detail::constant_evaluation_failure("bit field straddles two words");
    return BitField{static_cast<u8>(low / 64), static_cast<u8>(low % 64),
                    static_cast<u8>(high - low + 1)};
}
[[nodiscard]] consteval BitField bit(unsigned position)
{
    return bits(position, position);
}

struct AddressField {
    BitField field;
    u8 shift = 0;  // the field stores address >> shift

    // Highest address (exclusive) the field can express.
    [[nodiscard]] constexpr u64 limit() const noexcept
    {
        return field.width + shift >= 64 ? ~u64{0} : u64{1} << (field.width + shift);
    }
    [[nodiscard]] constexpr u64 alignment() const noexcept { return u64{1} << shift; }
    [[nodiscard]] constexpr Result<u64> encode(u64 word_value, u64 address) const noexcept
    {
        if (!is_aligned(address, alignment())) return failure(Error::misaligned);
        u64 stored = address >> shift;
        if (!field.fits(stored)) return failure(Error::field_overflow);
        return field.insert(word_value, stored);
    }
    [[nodiscard]] constexpr u64 decode(u64 word_value) const noexcept
    {
        return field.get(word_value) << shift;
    }
};

template <std::size_t N>
[[nodiscard]] constexpr bool fields_are_disjoint(const std::array<BitField, N> &fields) noexcept
{
    for (std::size_t i = 0; i < N; ++i)
        for (std::size_t j = i + 1; j < N; ++j)
            if (fields[i].word == fields[j].word && (fields[i].mask() & fields[j].mask()) != 0)
                return false;
    return true;
}

template <std::size_t N>
[[nodiscard]] constexpr bool fields_fit(const std::array<BitField, N> &fields,
                                        unsigned entry_bytes) noexcept
{
    for (const BitField &field : fields)
        if (field.width == 0 || field.low + field.width > 64 ||
            field.absolute_high() >= entry_bytes * 8u)
            return false;
    return true;
}

// Union of the masks of the fields that live in `word`.
template <std::size_t N>
[[nodiscard]] constexpr u64 fields_mask(const std::array<BitField, N> &fields,
                                        unsigned word) noexcept
{
    u64 mask = 0;
    for (const BitField &field : fields)
        if (field.word == word) mask |= field.mask();
    return mask;
}

}  // namespace gpummu
