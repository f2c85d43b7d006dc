// gpummu/memory/table_memory_concepts.hpp: where page tables live, as a concept.
//
// What it demands
//   TableMemory<M>: read, write and fill ranges of 64-bit words at a VRAM address. Ranges,
//   not single entries, so a PRAMIN window moves once per 1 MiB and host memory can memset.
//   Every call returns Result<void>: a device may fail, and an address outside the memory
//   or not 8-byte aligned is Error::out_of_range / Error::misaligned, with nothing done.
//   `read` is not const: reading through a window may move it.
//
// What it does not demand
//   - Ordering or flushing: the caller orders writes before a TLB invalidate (hw layer).
#pragma once

#include <concepts>
#include <cstddef>
#include <span>

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"

namespace gpummu {

template <class M>
concept TableMemory = requires(M &memory, VramAddress address, std::span<u64> out,
                               std::span<const u64> in, u64 value, std::size_t count)
{
    {
        memory.read(address, out)
        } -> std::same_as<Result<void>>;
    {
        memory.write(address, in)
        } -> std::same_as<Result<void>>;
    {
        memory.fill(address, value, count)
        } -> std::same_as<Result<void>>;
};

// Optional: a memory that can write an arithmetic sequence of words (first, first + step,
// first + 2 * step, ...) without a staging buffer. A run of PTEs over contiguous physical
// memory is exactly such a sequence (the address field is linear), so the page table uses
// this when the memory offers it and stages through a small buffer otherwise.
template <class M>
concept SequenceTableMemory = TableMemory<M> &&
    requires(M &memory, VramAddress address, u64 first, u64 step, std::size_t count)
{
    {
        memory.write_sequence(address, first, step, count)
        } -> std::same_as<Result<void>>;
};

// Optional: a memory that can write a sequence of word pairs (first, second), (first + step,
// second), (first + 2 * step, second), ... without a staging buffer. A run of dual directory
// entries (PD0: the low word points at the 2 MiB page or the small-page table, the high word
// is the big-page table pointer) over contiguous memory is such a sequence: the page table
// uses it when the memory offers it and stages through a small buffer otherwise.
template <class M>
concept PairSequenceTableMemory = TableMemory<M> &&
    requires(M &memory, VramAddress address, u64 first, u64 step, u64 second, std::size_t pairs)
{
    {
        memory.write_pair_sequence(address, first, step, second, pairs)
        } -> std::same_as<Result<void>>;
};

}  // namespace gpummu
