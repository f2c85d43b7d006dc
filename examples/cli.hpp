// examples/cli.hpp: what the command-line tools share: numbers and byte sizes in arguments.
//
//   parse_number("4096"), parse_number("0x1000"): decimal or 0x-hex, at least one digit, no
//   sign, no separators, no overflow (false otherwise).
//   parse_size("64M"): a number with an optional K, M, G or T suffix (powers of 1024),
//   refused when the product overflows.
// Tools only: hosted, may print; not part of the library's headers.
#pragma once

#include <cstdint>
#include <string_view>

namespace gpummu::cli {

inline bool parse_number(std::string_view text, std::uint64_t &out)
{
    unsigned base = 10;
    if (text.starts_with("0x") || text.starts_with("0X")) {
        base = 16;
        text.remove_prefix(2);
    }
    if (text.empty()) return false;
    std::uint64_t value = 0;
    for (char c : text) {
        unsigned digit = 0;
        if (c >= '0' && c <= '9')
            digit = static_cast<unsigned>(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            digit = static_cast<unsigned>(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            digit = static_cast<unsigned>(c - 'A' + 10);
        else
            return false;
        if (value > (~std::uint64_t{0} - digit) / base) return false;  // overflow
        value = value * base + digit;
    }
    out = value;
    return true;
}

inline bool parse_size(std::string_view text, std::uint64_t &out)
{
    unsigned shift = 0;
    if (!text.empty()) {
        switch (text.back()) {
        case 'K':
        case 'k': shift = 10; break;
        case 'M':
        case 'm': shift = 20; break;
        case 'G':
        case 'g': shift = 30; break;
        case 'T':
        case 't': shift = 40; break;
        default: break;
        }
        if (shift != 0) text.remove_suffix(1);
    }
    std::uint64_t value = 0;
    if (!parse_number(text, value)) return false;
    if (shift != 0 && value > (~std::uint64_t{0} >> shift)) return false;
    out = value << shift;
    return true;
}

}  // namespace gpummu::cli
