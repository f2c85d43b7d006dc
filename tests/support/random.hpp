// Deterministic pseudo-random numbers for property tests (SplitMix64): the same seed gives
// the same sequence on every machine, so a failure report names a reproducible case.
#pragma once

#include <cstdint>

namespace gpummu::testing {

class Random {
public:
    explicit constexpr Random(std::uint64_t seed) noexcept : state_(seed) {}
    constexpr std::uint64_t next() noexcept
    {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Uniform in [0, bound); bound > 0.
    constexpr std::uint64_t below(std::uint64_t bound) noexcept { return next() % bound; }
    constexpr bool coin() noexcept { return (next() & 1u) != 0; }
    // A value that fits `bits` bits, biased towards the edges (0, max) a third of the time.
    constexpr std::uint64_t bits(unsigned width) noexcept
    {
        std::uint64_t max = width >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << width) - 1;
        switch (below(6)) {
        case 0: return 0;
        case 1: return max;
        default: return next() & max;
        }
    }

private:
    std::uint64_t state_;
};

}  // namespace gpummu::testing
