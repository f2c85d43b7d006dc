// fuzz/fuzz_stream.hpp: the fuzz targets' input as a stream of choices, and their check.
//
// A target reads its operations from the fuzzer's bytes: `byte()`, `word()` (little-endian,
// zero past the end), `below(n)`, `edge_u64()` (values at the edges a third of the time: 0,
// 1, all-ones, powers of two and their neighbours). `FUZZ_CHECK(condition)` aborts with the
// condition and line: libFuzzer records the input as a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                                      \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            std::fprintf(stderr, "fuzz check failed: %s at %s:%d\n", #condition, __FILE__,         \
                         __LINE__);                                                                \
            std::abort();                                                                          \
        }                                                                                          \
    } while (false)

namespace gpummu::fuzz {

class Stream {
public:
    Stream(const std::uint8_t *data, std::size_t size) : data_(data), size_(size) {}

    [[nodiscard]] bool empty() const { return at_ >= size_; }
    std::uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }
    std::uint64_t word()
    {
        std::uint64_t value = 0;
        for (int i = 0; i < 8; ++i) value |= std::uint64_t{byte()} << (8 * i);
        return value;
    }
    // Uniform-ish in [0, bound); bound > 0.
    std::uint64_t below(std::uint64_t bound) { return bound == 0 ? 0 : word() % bound; }
    bool coin() { return (byte() & 1u) != 0; }
    // A 64-bit value, at an edge a third of the time.
    std::uint64_t edge_u64()
    {
        const std::uint8_t pick = byte();
        const unsigned shift = static_cast<unsigned>(byte() % 64);
        switch (pick % 9) {
        case 0: return 0;
        case 1: return 1;
        case 2: return ~std::uint64_t{0};
        case 3: return std::uint64_t{1} << shift;
        case 4: return (std::uint64_t{1} << shift) - 1;
        case 5: return (std::uint64_t{1} << shift) + 1;
        default: return word();
        }
    }

private:
    const std::uint8_t *data_;
    std::size_t size_;
    std::size_t at_ = 0;
};

}  // namespace gpummu::fuzz
