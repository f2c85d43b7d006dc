// gpummu/hw/selftest.hpp: PRAMIN and BAR1 self-tests, runnable on any backend.
//
// What it does
//   `run_selftests(mm)` exercises a GpuMm end to end and returns a report with one line per
//   check (name, passed, the error or mismatch seen):
//
//     PRAMIN  pramin.byte_order       a 64-bit word reads back byte by byte little-endian;
//                                     8/16/32-bit writes land where they should
//             pramin.window_move      accesses 1 MiB apart move the window and both land
//             pramin.rejects_bad      misaligned and out-of-VRAM accesses are refused and
//                                     leave the window where it was
//     BAR1    bar1.pramin_to_bar1     written through PRAMIN, read back through BAR1, and the
//                                     other way round
//             bar1.translation        every page of a fresh mapping translates to its block
//             bar1.fragmented         a scattered buddy allocation mapped as one range: each
//                                     block's data is where BAR1 says
//             bar1.stale_handle       releasing a mapping twice is Error::stale_handle
//             bar1.unmap_faults       after release, BAR1 no longer reaches the old data
//
//   Every check cleans up after itself (blocks freed, mappings released), also on failure.
//   `SelfTestOptions::after_map` lets a test tamper with tables right after the first BAR1
//   map (a deliberately wrong PTE must make the BAR1 checks fail).
//
// What it does not do
//   - It is not a memory test: it touches a few pages. It never writes outside memory it
//     allocated from the buddy (or mapped through BAR1).
#pragma once

#include <array>

#include "gpummu/core/result.hpp"
#include "gpummu/hw/gpu_mm.hpp"

namespace gpummu {

struct SelfTestResult {
    const char *name = "";
    bool passed = false;
    const char *detail = "";  // error name or what did not match
};

struct SelfTestReport {
    std::array<SelfTestResult, 16> results{};
    std::size_t count = 0;
    void add(const char *name, bool passed, const char *detail) noexcept
    {
        if (count < results.size()) results[count++] = {name, passed, detail};
    }
    [[nodiscard]] bool all_passed() const noexcept
    {
        for (std::size_t i = 0; i < count; ++i)
            if (!results[i].passed) return false;
        return count != 0;
    }
};

template <class Mm>
struct SelfTestOptions {
    // Called once, right after bar1.pramin_to_bar1 mapped its buffer, before it is used.
    void (*after_map)(void *context, Mm &mm, VirtualRange mapped) = nullptr;
    void *context = nullptr;
};

namespace detail {

// One buddy block of `bytes`, freed when the guard dies.
class ScratchBlock {
public:
    ScratchBlock(BuddyAllocator &buddy, u64 bytes) noexcept : buddy_(buddy)
    {
        auto got = buddy.allocate(bytes, {.contiguous = true}, std::span<BuddyBlock>(&block_, 1));
        ok_ = got.has_value();
        error_ = ok_ ? Error::invalid_argument : got.error();
    }
    ~ScratchBlock()
    {
        if (ok_) (void)buddy_.free(block_);
    }
    ScratchBlock(const ScratchBlock &) = delete;
    [[nodiscard]] bool ok() const noexcept { return ok_; }
    [[nodiscard]] Error error() const noexcept { return error_; }
    [[nodiscard]] const BuddyBlock &block() const noexcept { return block_; }

private:
    BuddyAllocator &buddy_;
    BuddyBlock block_{};
    bool ok_ = false;
    Error error_;
};

inline constexpr u64 selftest_pattern(u64 index) noexcept
{
    return 0x5EED'0000'0000'0000ull ^ (index * 0x9E37'79B9'7F4A'7C15ull);
}

template <class Mm>
const char *pramin_byte_order(Mm &mm) noexcept
{
    ScratchBlock scratch(mm.buddy(), 4096);
    if (!scratch.ok()) return error_name(scratch.error());
    auto &pramin = mm.pramin();
    const VramAddress at = scratch.block().address;
    if (!pramin.write64(at, 0x0807060504030201ull)) return "write64 failed";
    for (unsigned i = 0; i < 8; ++i) {
        auto byte = pramin.read8(at + i);
        if (!byte || *byte != i + 1) return "bytes are not little-endian";
    }
    if (!pramin.write8(at + 1, 0xAA) || !pramin.write16(at + 2, 0xBBCC) ||
        !pramin.write32(at + 4, 0xDDEEFF11u))
        return "sized write failed";
    auto word = pramin.read64(at);
    if (!word || *word != 0xDDEEFF11BBCCAA01ull) return "sized writes landed wrong";
    return nullptr;
}

template <class Mm>
const char *pramin_window_move(Mm &mm) noexcept
{
    ScratchBlock scratch(mm.buddy(), u64{4} << 20);  // 4 MiB: two addresses 2 MiB apart
    if (!scratch.ok()) return error_name(scratch.error());
    auto &pramin = mm.pramin();
    const VramAddress first = scratch.block().address, second = first + (u64{2} << 20);
    const u64 moves = pramin.moves();
    if (!pramin.write64(first, selftest_pattern(1)) || !pramin.write64(second, selftest_pattern(2)))
        return "write failed";
    if (pramin.moves() == moves) return "the window did not move for an address 2 MiB away";
    auto a = pramin.read64(first);
    auto b = pramin.read64(second);
    if (!a || !b || *a != selftest_pattern(1) || *b != selftest_pattern(2))
        return "data lost across a window move";
    return nullptr;
}

template <class Mm>
const char *pramin_rejects_bad(Mm &mm) noexcept
{
    ScratchBlock scratch(mm.buddy(), 4096);
    if (!scratch.ok()) return error_name(scratch.error());
    auto &pramin = mm.pramin();
    if (!pramin.write32(scratch.block().address, 1)) return "write failed";
    const u64 moves = pramin.moves();
    auto misaligned = pramin.write32(scratch.block().address + 2, 1);
    if (misaligned || misaligned.error() != Error::misaligned) return "misaligned write accepted";
    auto outside = pramin.read32(mm.layout().vram_end());
    if (outside || outside.error() != Error::out_of_range) return "read past VRAM accepted";
    if (pramin.moves() != moves) return "a refused access moved the window";
    return nullptr;
}

template <class Mm>
const char *bar1_pramin_to_bar1(Mm &mm, const SelfTestOptions<Mm> &options) noexcept
{
    ScratchBlock scratch(mm.buddy(), 64 * 1024);
    if (!scratch.ok()) return error_name(scratch.error());
    auto mapping = mm.bar1().map(std::span<const BuddyBlock>(&scratch.block(), 1));
    if (!mapping) return error_name(mapping.error());
    if (options.after_map != nullptr) options.after_map(options.context, mm, mapping->range());
    const char *problem = nullptr;
    auto &pramin = mm.pramin();
    for (u64 i = 0; i < 16 && problem == nullptr; ++i) {
        const u64 offset = i * 4096 + 8 * i;
        if (!pramin.write64(scratch.block().address + offset, selftest_pattern(i)) ||
            !pramin.order_writes())
            problem = "PRAMIN write failed";
        auto seen = mapping->read64(offset);
        if (problem == nullptr && (!seen || *seen != selftest_pattern(i)))
            problem = "BAR1 does not see what PRAMIN wrote";
        if (problem == nullptr && !mapping->write64(offset, ~selftest_pattern(i)))
            problem = "BAR1 write failed";
        auto back = pramin.read64(scratch.block().address + offset);
        if (problem == nullptr && (!back || *back != ~selftest_pattern(i)))
            problem = "PRAMIN does not see what BAR1 wrote";
    }
    if (!mm.bar1().release(*mapping) && problem == nullptr) problem = "release failed";
    return problem;
}

template <class Mm>
const char *bar1_translation(Mm &mm) noexcept
{
    ScratchBlock scratch(mm.buddy(), 256 * 1024);
    if (!scratch.ok()) return error_name(scratch.error());
    auto mapping = mm.bar1().map(std::span<const BuddyBlock>(&scratch.block(), 1));
    if (!mapping) return error_name(mapping.error());
    const char *problem = nullptr;
    for (u64 offset = 0; offset < mapping->size() && problem == nullptr; offset += 4096) {
        auto translation = mm.bar1().translate(mapping->range().begin().value() + offset);
        if (!translation || translation->state != TranslationState::mapped ||
            translation->address.value() != scratch.block().address.value() + offset)
            problem = "a page does not translate to its block";
    }
    if (!mm.bar1().release(*mapping) && problem == nullptr) problem = "release failed";
    return problem;
}

template <class Mm>
const char *bar1_fragmented(Mm &mm) noexcept
{
    // Take eight 64 KiB blocks, give back every other one, then ask for 256 KiB in pieces:
    // the buddy hands back scattered blocks, mapped as one BAR1 range.
    std::array<BuddyBlock, 8> comb{};
    std::size_t taken = 0;
    for (; taken < comb.size(); ++taken) {
        auto got = mm.buddy().allocate(64 * 1024, {.contiguous = true},
                                       std::span<BuddyBlock>(&comb[taken], 1));
        if (!got) break;
    }
    const char *problem = taken == comb.size() ? nullptr : "cannot allocate";
    for (std::size_t i = 0; i < taken; i += 2) (void)mm.buddy().free(comb[i]);
    std::array<BuddyBlock, 64> pieces{};
    std::size_t piece_count = 0;
    if (problem == nullptr) {
        auto got = mm.buddy().allocate(256 * 1024, {.min_block_size = 64 * 1024}, pieces);
        if (!got)
            problem = error_name(got.error());
        else
            piece_count = got->blocks.size();
    }
    if (problem == nullptr) {
        auto mapping = mm.bar1().map(std::span<const BuddyBlock>(pieces.data(), piece_count));
        if (!mapping) {
            problem = error_name(mapping.error());
        } else {
            u64 offset = 0;
            for (std::size_t b = 0; b < piece_count && problem == nullptr; ++b) {
                if (!mapping->write64(offset + 8, selftest_pattern(100 + b)))
                    problem = "write failed";
                auto seen = mm.pramin().read64(pieces[b].address + 8);
                if (problem == nullptr && (!seen || *seen != selftest_pattern(100 + b)))
                    problem = "a block's data is not where BAR1 put it";
                offset += pieces[b].size;
            }
            if (!mm.bar1().release(*mapping) && problem == nullptr) problem = "release failed";
        }
    }
    for (std::size_t b = 0; b < piece_count; ++b) (void)mm.buddy().free(pieces[b]);
    for (std::size_t i = 1; i < taken; i += 2) (void)mm.buddy().free(comb[i]);
    return problem;
}

template <class Mm>
const char *bar1_stale_and_fault(Mm &mm, bool check_fault) noexcept
{
    ScratchBlock scratch(mm.buddy(), 4096);
    if (!scratch.ok()) return error_name(scratch.error());
    auto mapping = mm.bar1().map(std::span<const BuddyBlock>(&scratch.block(), 1));
    if (!mapping) return error_name(mapping.error());
    if (!mapping->write64(0, selftest_pattern(7))) return "write failed";
    auto before = mapping->read64(0);
    if (!before || *before != selftest_pattern(7)) return "mapping does not read back";
    if (!mm.bar1().release(*mapping)) return "release failed";
    if (!check_fault) {
        auto again = mm.bar1().release(*mapping);
        if (again || again.error() != Error::stale_handle) return "a stale handle was accepted";
        return nullptr;
    }
    // The old offset must no longer reach the block.
    auto after = mapping->read64(0);
    if (after && *after == selftest_pattern(7)) return "BAR1 still reaches an unmapped block";
    return nullptr;
}

}  // namespace detail

template <class Mm>
[[nodiscard]] SelfTestReport run_selftests(Mm &mm, const SelfTestOptions<Mm> &options = {}) noexcept
{
    SelfTestReport report;
    auto record = [&report](const char *name, const char *problem) {
        report.add(name, problem == nullptr, problem == nullptr ? "" : problem);
    };
    record("pramin.byte_order", detail::pramin_byte_order(mm));
    record("pramin.window_move", detail::pramin_window_move(mm));
    record("pramin.rejects_bad", detail::pramin_rejects_bad(mm));
    record("bar1.pramin_to_bar1", detail::bar1_pramin_to_bar1(mm, options));
    record("bar1.translation", detail::bar1_translation(mm));
    record("bar1.fragmented", detail::bar1_fragmented(mm));
    record("bar1.stale_handle", detail::bar1_stale_and_fault(mm, false));
    record("bar1.unmap_faults", detail::bar1_stale_and_fault(mm, true));
    return report;
}

}  // namespace gpummu
