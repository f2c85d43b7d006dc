// gpummu/memory/host_memory.hpp: a VRAM image in host memory, as TableMemory.
//
// What it does
//   - Serves [base, base + 8 * words.size()) from a span of words the caller owns (a
//     std::vector, a static array, a mapped file). No heap.
//   - Counts operations and bytes per kind, so tests and benchmarks can check batching
//     ("one fill for 512 entries", "bytes written == PTE bytes").
//
// What it does not do
//   - No locking, no ordering: host memory is coherent for a single thread.
//   - Bad addresses are Error::misaligned (not 8-byte aligned) or Error::out_of_range (any
//     word outside the image); the image and the counters are then unchanged.
#pragma once

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <span>

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/memory/table_memory_concepts.hpp"

namespace gpummu {

struct MemoryCounters {
    u64 reads = 0, writes = 0, fills = 0;                     // calls
    u64 bytes_read = 0, bytes_written = 0, bytes_filled = 0;  // payload
    constexpr bool operator==(const MemoryCounters &) const noexcept = default;
};

class HostMemory {
public:
    constexpr HostMemory(std::span<u64> words, VramAddress base = VramAddress{0}) noexcept
        : words_(words),
          base_(base)
    {
    }

    constexpr Result<void> read(VramAddress address, std::span<u64> out) noexcept
    {
        auto first = locate(address, out.size());
        if (!first) return failure(first.error());
        if (out.size() == 1)  // one entry (a translate, a walk): a load, not a memmove call
            out[0] = words_[*first];
        else
            std::copy_n(words_.begin() + static_cast<std::ptrdiff_t>(*first), out.size(),
                        out.begin());
        ++counters_.reads;
        counters_.bytes_read += out.size() * sizeof(u64);
        return success();
    }
    constexpr Result<void> write(VramAddress address, std::span<const u64> in) noexcept
    {
        auto first = locate(address, in.size());
        if (!first) return failure(first.error());
        std::copy(in.begin(), in.end(), words_.begin() + static_cast<std::ptrdiff_t>(*first));
        ++counters_.writes;
        counters_.bytes_written += in.size() * sizeof(u64);
        return success();
    }
    constexpr Result<void> fill(VramAddress address, u64 value, std::size_t count) noexcept
    {
        auto first = locate(address, count);
        if (!first) return failure(first.error());
        u64 *out = words_.data() + *first;
        // Zero fills (fresh tables, freed big tables) go through libc's memset, whose wide
        // stores beat the loop g++ makes of fill_n (about 100 instructions for a 256-byte
        // big table; callgrind, an unmap of 1 GiB of 64 KiB pages: 9% fewer instructions).
        if (!std::is_constant_evaluated() && value == 0)
            std::memset(out, 0, count * sizeof(u64));
        else
            std::fill_n(out, count, value);
        ++counters_.fills;
        counters_.bytes_filled += count * sizeof(u64);
        return success();
    }

    // words[i] = first + i * step (mod 2^64); counted as one write.
    constexpr Result<void> write_sequence(VramAddress address, u64 first, u64 step,
                                          std::size_t count) noexcept
    {
        auto at = locate(address, count);
        if (!at) return failure(at.error());
        u64 *out = words_.data() + *at;
        for (std::size_t i = 0; i < count; ++i, first += step) out[i] = first;
        ++counters_.writes;
        counters_.bytes_written += count * sizeof(u64);
        return success();
    }

    // pairs of words (first + i * step, second) (mod 2^64); counted as one write.
    constexpr Result<void> write_pair_sequence(VramAddress address, u64 first, u64 step, u64 second,
                                               std::size_t pairs) noexcept
    {
        if (pairs > words_.size() / 2) return failure(Error::out_of_range);
        auto at = locate(address, 2 * pairs);
        if (!at) return failure(at.error());
        u64 *out = words_.data() + *at;
        for (std::size_t i = 0; i < pairs; ++i, first += step) {
            out[2 * i] = first;
            out[2 * i + 1] = second;
        }
        ++counters_.writes;
        counters_.bytes_written += 2 * pairs * sizeof(u64);
        return success();
    }

    [[nodiscard]] constexpr const MemoryCounters &counters() const noexcept { return counters_; }
    constexpr void reset_counters() noexcept { counters_ = {}; }
    [[nodiscard]] constexpr VramRange range() const noexcept
    {
        return VramRange::from_size(base_, words_.size() * sizeof(u64)).value();
    }
    [[nodiscard]] constexpr std::span<u64> words() const noexcept { return words_; }

private:
    // Index of the first word of [address, address + 8 * count), all inside the image.
    [[nodiscard]] constexpr Result<std::size_t> locate(VramAddress address,
                                                       std::size_t count) const noexcept
    {
        if (!address.is_aligned_to(sizeof(u64))) return failure(Error::misaligned);
        if (address < base_) return failure(Error::out_of_range);
        u64 first = (address - base_) / sizeof(u64);
        if (first > words_.size() || count > words_.size() - first)
            return failure(Error::out_of_range);
        return static_cast<std::size_t>(first);
    }

    std::span<u64> words_;
    VramAddress base_;
    MemoryCounters counters_{};
};

static_assert(TableMemory<HostMemory>);
static_assert(SequenceTableMemory<HostMemory>);
static_assert(PairSequenceTableMemory<HostMemory>);

}  // namespace gpummu
