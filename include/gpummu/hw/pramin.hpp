// gpummu/hw/pramin.hpp: VRAM through the BAR0 PRAMIN window.
//
// What it does
//   BAR0 0x700000..0x7FFFFF shows 1 MiB of VRAM starting at the base held in the chip's
//   window register (hw/chip.hpp: BASE in 64 KiB units, field width per chip, TARGET = VRAM
//   where the field exists). `Pramin<Bar>` is the only owner of that register:
//
//       VRAM  0 ............ base ......... base + 1 MiB ............ end
//                              |<--- window --->|
//       BAR0            0x700000 ........ 0x7FFFFF
//
//   - The window moves only when an access leaves the current 1 MiB; the new base is the
//     access's address rounded down to 64 KiB, so a sequential bulk access of N bytes moves
//     it at most ceil(N / 1 MiB) + 1 times.
//   - 8/16/32/64-bit reads and writes at naturally aligned VRAM addresses (Error::misaligned
//     otherwise); bulk word read, write, fill, write_sequence and write_pair_sequence:
//     `Pramin` is a TableMemory (and a SequenceTableMemory and a PairSequenceTableMemory), so
//     page tables can be written straight through it.
//   - A base beyond what the chip's BASE field can hold is Error::out_of_range (Hopper's
//     22-bit field reaches 256 GiB; Turing..Ada 1 TiB), and so is VRAM beyond `vram_end`.
//   - `order_writes()`: a read back through the window, which orders the posted writes before
//     it (call it before a TLB invalidate; hw/tlb.hpp does when given the window).
//
// What it does not do
//   - No locking: one owner. It does not restore the window register's old value.
//   - It trusts nothing it did not write: the register is read once at creation, and a value
//     whose TARGET is not VRAM (or the register failing to read) makes the first access move.
#pragma once

#include <algorithm>
#include <span>

#include "gpummu/core/bitfield.hpp"
#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/hw/chip.hpp"
#include "gpummu/hw/register_io_concepts.hpp"
#include "gpummu/memory/table_memory_concepts.hpp"

namespace gpummu {

template <BarIo B>
class Pramin {
public:
    static constexpr u64 window_bytes = pramin_bytes;

    // `vram_end`: the first address past VRAM (accesses at or beyond it are refused).
    [[nodiscard]] static Result<Pramin> create(B &bar0, const WindowRegister &window,
                                               VramAddress vram_end) noexcept
    {
        if (window.base_bits == 0 || window.base_bits + window.base_shift > 48)
            return failure(Error::invalid_argument);
        Pramin pramin(bar0, window, vram_end);
        auto current = bar0.read32(window.offset);
        if (current && is_dead_register_value(*current)) return failure(Error::device_lost);
        if (current) {
            const u64 base_field = *current & ((u64{1} << window.base_bits) - 1);
            const bool vram_target =
                !window.has_target || ((*current >> window.target_low) & 3u) == 0;
            if (vram_target) {
                pramin.base_ = base_field << window.base_shift;
                pramin.known_ = true;
            }
        }
        return pramin;
    }

    // ---- single accesses --------------------------------------------------------------

    [[nodiscard]] Result<u8> read8(VramAddress address) noexcept
    {
        auto offset = locate(address, 1);
        if (!offset) return failure(offset.error());
        return bar_->read8(*offset);
    }
    [[nodiscard]] Result<u16> read16(VramAddress address) noexcept
    {
        auto offset = locate(address, 2);
        if (!offset) return failure(offset.error());
        return bar_->read16(*offset);
    }
    [[nodiscard]] Result<u32> read32(VramAddress address) noexcept
    {
        auto offset = locate(address, 4);
        if (!offset) return failure(offset.error());
        return bar_->read32(*offset);
    }
    [[nodiscard]] Result<u64> read64(VramAddress address) noexcept
    {
        auto offset = locate(address, 8);
        if (!offset) return failure(offset.error());
        return bar_->read64(*offset);
    }
    [[nodiscard]] Result<void> write8(VramAddress address, u8 value) noexcept
    {
        auto offset = locate(address, 1);
        if (!offset) return failure(offset.error());
        return bar_->write8(*offset, value);
    }
    [[nodiscard]] Result<void> write16(VramAddress address, u16 value) noexcept
    {
        auto offset = locate(address, 2);
        if (!offset) return failure(offset.error());
        return bar_->write16(*offset, value);
    }
    [[nodiscard]] Result<void> write32(VramAddress address, u32 value) noexcept
    {
        auto offset = locate(address, 4);
        if (!offset) return failure(offset.error());
        return bar_->write32(*offset, value);
    }
    [[nodiscard]] Result<void> write64(VramAddress address, u64 value) noexcept
    {
        auto offset = locate(address, 8);
        if (!offset) return failure(offset.error());
        return bar_->write64(*offset, value);
    }

    // ---- bulk (TableMemory) -------------------------------------------------------------

    // Bulk accesses go one window at a time: move (if needed), then the whole run that lies
    // in the window, as one block access when the BAR offers it (BarBlockIo).
    [[nodiscard]] Result<void> read(VramAddress address, std::span<u64> out) noexcept
    {
        GPUMMU_TRY(check_bulk(address, out.size()));
        std::size_t done = 0;
        while (done < out.size()) {
            auto run = window_run(address.value() + done * 8, out.size() - done);
            if (!run) return failure(run.error());
            GPUMMU_TRY(read_run(run->offset, out.subspan(done, run->words)));
            done += run->words;
        }
        return success();
    }
    [[nodiscard]] Result<void> write(VramAddress address, std::span<const u64> in) noexcept
    {
        GPUMMU_TRY(check_bulk(address, in.size()));
        std::size_t done = 0;
        while (done < in.size()) {
            auto run = window_run(address.value() + done * 8, in.size() - done);
            if (!run) return failure(run.error());
            GPUMMU_TRY(write_run(run->offset, in.subspan(done, run->words)));
            done += run->words;
        }
        return success();
    }
    [[nodiscard]] Result<void> fill(VramAddress address, u64 value, std::size_t count) noexcept
    {
        return write_sequence(address, value, 0, count);
    }
    // words[i] = first + i * step, made in a small buffer on the stack and written a buffer
    // at a time.
    [[nodiscard]] Result<void> write_sequence(VramAddress address, u64 first, u64 step,
                                              std::size_t count) noexcept
    {
        return write_generated(address, count, [&](std::size_t) {
            const u64 word = first;
            first += step;
            return word;
        });
    }
    // Pairs (first + i * step, second), the same way; a window edge may fall between the two
    // words of a pair.
    [[nodiscard]] Result<void> write_pair_sequence(VramAddress address, u64 first, u64 step,
                                                   u64 second, std::size_t pairs) noexcept
    {
        if (pairs > (vram_end_ >> 4)) return failure(Error::out_of_range);
        return write_generated(address, 2 * pairs, [&](std::size_t word_index) {
            if ((word_index & 1u) != 0) return second;
            const u64 word = first;
            first += step;
            return word;
        });
    }

    // Orders every posted write before it: a read through the window.
    [[nodiscard]] Result<void> order_writes() noexcept
    {
        if (!known_) return success();  // nothing was written through the window yet
        auto word = bar_->read32(pramin_offset);
        if (!word) return failure(word.error());
        return success();
    }

    [[nodiscard]] u64 moves() const noexcept { return moves_; }
    [[nodiscard]] VramAddress base() const noexcept { return VramAddress{base_}; }
    [[nodiscard]] bool base_known() const noexcept { return known_; }
    [[nodiscard]] const WindowRegister &window() const noexcept { return window_; }

private:
    Pramin(B &bar0, const WindowRegister &window, VramAddress vram_end) noexcept
        : bar_(&bar0),
          window_(window),
          vram_end_(vram_end.value())
    {
    }

    // Writes `count` words, the k-th being make(k) (called in order, k from 0), through a
    // 128-word stack buffer, window by window.
    template <class Make>
    [[nodiscard]] Result<void> write_generated(VramAddress address, std::size_t count,
                                               Make &&make) noexcept
    {
        GPUMMU_TRY(check_bulk(address, count));
        constexpr std::size_t buffer_words = 128;
        u64 buffer[buffer_words];
        std::size_t done = 0;
        while (done < count) {
            auto run = window_run(address.value() + done * 8, count - done);
            if (!run) return failure(run.error());
            for (std::size_t in_run = 0; in_run < run->words;) {
                const std::size_t words = std::min(buffer_words, run->words - in_run);
                for (std::size_t i = 0; i < words; ++i) buffer[i] = make(done + in_run + i);
                GPUMMU_TRY(
                    write_run(run->offset + in_run * 8, std::span<const u64>(buffer, words)));
                in_run += words;
            }
            done += run->words;
        }
        return success();
    }

    [[nodiscard]] Result<void> check_bulk(VramAddress address, std::size_t words) const noexcept
    {
        if (!address.is_aligned_to(8)) return failure(Error::misaligned);
        if (words > (vram_end_ >> 3)) return failure(Error::out_of_range);
        if (address.value() > vram_end_ || vram_end_ - address.value() < words * 8)
            return failure(Error::out_of_range);
        return success();
    }

    struct WindowRun {
        u64 offset;         // BAR0 offset of the first word
        std::size_t words;  // how many of the words asked for lie in the window from there
    };
    // Moves the window to cover `at` if it must (at is 8-aligned and inside VRAM: check_bulk).
    [[nodiscard]] Result<WindowRun> window_run(u64 at, std::size_t words) noexcept
    {
        auto offset = locate(VramAddress{at}, 8);
        if (!offset) return failure(offset.error());
        const std::size_t room = static_cast<std::size_t>((base_ + window_bytes - at) / 8);
        return WindowRun{*offset, std::min(words, room)};
    }
    // One run of words inside the window at BAR0 `offset`: one block access when the BAR
    // has them, else word by word.
    [[nodiscard]] Result<void> read_run(u64 offset, std::span<u64> words) noexcept
    {
        if constexpr (BarBlockIo<B>) {
            return bar_->read64_block(offset, words);
        } else {
            for (std::size_t i = 0; i < words.size(); ++i) {
                auto word = bar_->read64(offset + i * 8);
                if (!word) return failure(word.error());
                words[i] = *word;
            }
            return success();
        }
    }
    [[nodiscard]] Result<void> write_run(u64 offset, std::span<const u64> words) noexcept
    {
        if constexpr (BarBlockIo<B>) {
            return bar_->write64_block(offset, words);
        } else {
            for (std::size_t i = 0; i < words.size(); ++i)
                GPUMMU_TRY(bar_->write64(offset + i * 8, words[i]));
            return success();
        }
    }

    // The BAR0 offset of `address` after moving the window if it must; checks alignment.
    [[nodiscard]] Result<u64> locate(VramAddress address, unsigned width) noexcept
    {
        const u64 at = address.value();
        if ((at & (width - 1)) != 0) return failure(Error::misaligned);
        if (at >= vram_end_ || vram_end_ - at < width) return failure(Error::out_of_range);
        if (!known_ || at < base_ || at - base_ >= window_bytes) GPUMMU_TRY(move_to(at));
        return pramin_offset + (at - base_);
    }

    [[nodiscard]] Result<void> move_to(u64 address) noexcept
    {
        const u64 granule = u64{1} << window_.base_shift;
        const u64 base = address & ~(granule - 1);
        const u64 field = base >> window_.base_shift;
        if (field >> window_.base_bits != 0) return failure(Error::out_of_range);
        u32 value = static_cast<u32>(field);  // TARGET (where it exists) = 0: VRAM
        GPUMMU_TRY(bar_->write32(window_.offset, value));
        base_ = base;
        known_ = true;
        ++moves_;
        return success();
    }

    B *bar_;
    WindowRegister window_;
    u64 vram_end_;
    u64 base_ = 0;
    bool known_ = false;
    u64 moves_ = 0;
};

}  // namespace gpummu
