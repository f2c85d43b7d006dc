// gpummu/hw/register_io_concepts.hpp: how gpummu touches a PCI BAR.
//
// What it does
//   - `RegisterIo<R>`: 32-bit reads and writes at BAR offsets: the MMIO registers (BOOT_0,
//     the PRAMIN window base, the TLB invalidate registers). Implemented by a real mapping
//     (hw/pci_bar.hpp), the simulated GPU (sim/gpu.hpp) or anything a test supplies.
//   - `BarIo<B>`: a BAR whose bytes are memory-like (the PRAMIN window inside BAR0, the BAR1
//     aperture): 8-, 16-, 32- and 64-bit accesses at naturally aligned 64-bit offsets (BAR1 can
//     be larger than 4 GiB). Each access is
//     one load or store of that width, as MMIO requires (never memcpy).
//   - `BarBlockIo<B>` (optional): a BarIo that also reads and writes a run of 64-bit words at
//     consecutive offsets in one call, checking the run once. Still one access per word on
//     a real BAR; a simulated or host-backed BAR may copy. `Pramin` uses it when present, so
//     bulk table writes cost a check per window, not per word.
//
// What it does not do
//   - No ordering beyond program order: posted writes are ordered by a read (the PRAMIN
//     window's `order_writes`), and by the TLB invalidate sequence.
//   - Every access returns a Result: a read-only backend refuses writes with
//     Error::read_only_device, an access outside the BAR is Error::out_of_range.
#pragma once

#include <concepts>
#include <span>

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"

namespace gpummu {

template <class R>
concept RegisterIo = requires(R &io, u32 offset, u32 value)
{
    {
        io.read32(offset)
        } -> std::same_as<Result<u32>>;
    {
        io.write32(offset, value)
        } -> std::same_as<Result<void>>;
};

template <class B>
concept BarIo = RegisterIo<B> && requires(B &bar, u64 offset, u8 v8, u16 v16, u32 v32, u64 v64)
{
    {
        bar.read8(offset)
        } -> std::same_as<Result<u8>>;
    {
        bar.read16(offset)
        } -> std::same_as<Result<u16>>;
    {
        bar.read32(offset)
        } -> std::same_as<Result<u32>>;
    {
        bar.read64(offset)
        } -> std::same_as<Result<u64>>;
    {
        bar.write8(offset, v8)
        } -> std::same_as<Result<void>>;
    {
        bar.write16(offset, v16)
        } -> std::same_as<Result<void>>;
    {
        bar.write32(offset, v32)
        } -> std::same_as<Result<void>>;
    {
        bar.write64(offset, v64)
        } -> std::same_as<Result<void>>;
};

template <class B>
concept BarBlockIo = BarIo<B> &&
    requires(B &bar, u64 offset, std::span<u64> out, std::span<const u64> in)
{
    {
        bar.read64_block(offset, out)
        } -> std::same_as<Result<void>>;
    {
        bar.write64_block(offset, in)
        } -> std::same_as<Result<void>>;
};

}  // namespace gpummu
