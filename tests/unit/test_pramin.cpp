// hw/pramin.hpp on the simulated GPU: window moves, field widths, sized and bulk access,
// page tables written through the window.
#include <doctest/doctest.h>

#include <array>
#include <vector>

#include "gpummu/hw/pramin.hpp"
#include "gpummu/sim/gpu.hpp"
#include "instantiation/sim_spaces.hpp"
#include "support/page_table_fixture.hpp"

using namespace gpummu;

namespace {

constexpr u64 mib = 1u << 20;

struct SimRig {
    std::vector<u64> vram;
    sim::Gpu gpu;
    SimRig(const sim::ChipModel &chip, u64 bytes)
        : vram(bytes / 8, 0),
          gpu(sim::Gpu::create(chip, vram).value())
    {
    }
    Pramin<sim::Gpu::Bar0> window()
    {
        return Pramin<sim::Gpu::Bar0>::create(gpu.bar0(), gpu.record().window,
                                              VramAddress{gpu.vram_bytes()})
            .value();
    }
};

}  // namespace

TEST_CASE("sized accesses land in VRAM little-endian, misaligned ones are refused")
{
    SimRig rig(sim::ga102, 8 * mib);
    auto pramin = rig.window();
    REQUIRE(pramin.write64(VramAddress{0x3000}, 0x1122334455667788ull).has_value());
    CHECK(rig.vram[0x3000 / 8] == 0x1122334455667788ull);
    CHECK(*pramin.read8(VramAddress{0x3000}) == 0x88);
    CHECK(*pramin.read16(VramAddress{0x3002}) == 0x5566);
    CHECK(*pramin.read32(VramAddress{0x3004}) == 0x11223344u);
    REQUIRE(pramin.write8(VramAddress{0x3001}, 0xAB).has_value());
    REQUIRE(pramin.write16(VramAddress{0x3006}, 0xCDEF).has_value());
    REQUIRE(pramin.write32(VramAddress{0x3008}, 0xDEADBEEFu).has_value());
    CHECK(rig.vram[0x3000 / 8] == 0xCDEF33445566AB88ull);
    CHECK(rig.vram[0x3008 / 8] == 0xDEADBEEFull);
    CHECK(pramin.read16(VramAddress{0x3001}).error() == Error::misaligned);
    CHECK(pramin.write32(VramAddress{0x3002}, 1).error() == Error::misaligned);
    CHECK(pramin.read64(VramAddress{0x3004}).error() == Error::misaligned);
    CHECK(pramin.read64(VramAddress{8 * mib}).error() == Error::out_of_range);
    CHECK(pramin.write8(VramAddress{8 * mib - 1}, 1).has_value());
    CHECK(rig.gpu.faults() == 0);
}

TEST_CASE("the window moves only when an access leaves it")
{
    SimRig rig(sim::ga102, 16 * mib);
    auto pramin = rig.window();
    CHECK(pramin.base_known());  // the register read 0 at creation: base 0, VRAM target
    REQUIRE(pramin.write64(VramAddress{0x8000}, 1).has_value());
    CHECK(pramin.moves() == 0);
    REQUIRE(pramin.write64(VramAddress{mib - 8}, 2).has_value());
    CHECK(pramin.moves() == 0);
    REQUIRE(pramin.write64(VramAddress{mib}, 3).has_value());
    CHECK(pramin.moves() == 1);
    CHECK(pramin.base().value() == mib);
    CHECK(rig.gpu.window_register() == (mib >> 16));
    REQUIRE(pramin.read64(VramAddress{mib + 0x1000}).has_value());
    CHECK(pramin.moves() == 1);
    REQUIRE(pramin.read64(VramAddress{0x10000}).has_value());
    CHECK(pramin.moves() == 2);
    CHECK(pramin.base().value() == 0x10000);  // rounded down to 64 KiB
    CHECK(rig.gpu.window_writes() == pramin.moves());
}

TEST_CASE("bulk writes of N bytes move the window at most ceil(N / 1 MiB) + 1 times")
{
    SimRig rig(sim::gh100, 32 * mib);
    auto pramin = rig.window();
    std::vector<u64> words(((3 * mib) + 4096) / 8);
    for (std::size_t i = 0; i < words.size(); ++i) words[i] = i * 0x9E3779B97F4A7C15ull;
    for (u64 start : {u64{0x3000}, u64{7 * mib + 0x18}, u64{mib}, u64{20 * mib - 8}}) {
        const u64 before = pramin.moves();
        REQUIRE(pramin.write(VramAddress{start}, words).has_value());
        const u64 bytes = words.size() * 8;
        CHECK(pramin.moves() - before <= (bytes + mib - 1) / mib + 1);
        std::vector<u64> back(words.size());
        REQUIRE(pramin.read(VramAddress{start}, back).has_value());
        CHECK(back == words);
        CHECK(rig.vram[start / 8 + 17] == words[17]);
    }
    const u64 before = pramin.moves();
    REQUIRE(pramin.fill(VramAddress{mib / 2}, 0x8, 3 * mib / 8).has_value());
    CHECK(pramin.moves() - before <= 4);
    CHECK(rig.vram[(mib / 2 + 2 * mib) / 8] == 0x8);
    CHECK(pramin.write(VramAddress{32 * mib - 8}, words).error() == Error::out_of_range);
    CHECK(pramin.write(VramAddress{4}, words).error() == Error::misaligned);
}

TEST_CASE("a narrower window field refuses bases beyond it")
{
    // GH100's BASE is 21:0: 256 GiB. A GPU with more VRAM than that (modelled by telling the
    // window VRAM ends at 512 GiB) still cannot reach past 256 GiB through PRAMIN.
    SimRig rig(sim::gh100, 8 * mib);
    auto pramin = Pramin<sim::Gpu::Bar0>::create(rig.gpu.bar0(), rig.gpu.record().window,
                                                 VramAddress{u64{512} << 30})
                      .value();
    const u64 writes = rig.gpu.window_writes();
    CHECK(pramin.write64(VramAddress{u64{256} << 30}, 1).error() == Error::out_of_range);
    CHECK(pramin.read32(VramAddress{(u64{300} << 30) + 4}).error() == Error::out_of_range);
    CHECK(rig.gpu.window_writes() == writes);  // the register was not touched
    // GA102's 24-bit field reaches 1 TiB: the same address is fine there (the simulated VRAM
    // is small, so the access itself reads past VRAM and is recorded as a fault).
    SimRig ampere(sim::ga102, 8 * mib);
    auto wide = Pramin<sim::Gpu::Bar0>::create(ampere.gpu.bar0(), ampere.gpu.record().window,
                                               VramAddress{u64{512} << 30})
                    .value();
    CHECK(wide.write64(VramAddress{u64{256} << 30}, 1).has_value());
    CHECK(ampere.gpu.window_register() == ((u64{256} << 30) >> 16));
    CHECK(ampere.gpu.faults() == 1);
}

TEST_CASE_TEMPLATE("page tables written through PRAMIN read back the same", F, MmuV2, MmuV3)
{
    const sim::ChipModel &chip = F::version == MmuVersion::v2 ? sim::ga102 : sim::gh100;
    SimRig rig(chip, 64 * mib);
    auto pramin = rig.window();
    testing::BuddyFixture buddy = testing::BuddyFixture::make({testing::range_of(0, 64 * mib)});
    std::vector<BigTableSlot> slots(16);
    BuddyTablePages<Pramin<sim::Gpu::Bar0>> pages(buddy.buddy, pramin, slots);
    std::vector<PageTableNode> nodes(1024);
    std::vector<PageTableChildren> children(16);
    auto table =
        PageTable<F, Pramin<sim::Gpu::Bar0>, BuddyTablePages<Pramin<sim::Gpu::Bar0>>>::create(
            pramin, pages, {nodes, children});
    REQUIRE(table.has_value());
    const u64 moves = pramin.moves();
    PageAttributes attributes;
    attributes.address = PhysicalAddress{32 * mib};
    auto batch = table->map(VirtualRange::from_size(VirtualAddress{1ull << 32}, 8 * mib).value(),
                            attributes, {.page_sizes = {PageSize::size_4k()}});
    REQUIRE(batch.has_value());
    batch->abandon();  // no invalidator in this test
    // 16 KiB of PTEs (and a few directories): a handful of window moves, not one per entry.
    CHECK(pramin.moves() - moves <= 8);
    REQUIRE(table->check_invariants().has_value());
    auto seen = table->translate_from_memory(VirtualAddress{(1ull << 32) + 5 * mib + 0x123});
    REQUIRE(seen.has_value());
    CHECK(seen->address.value() == 32 * mib + 5 * mib + 0x123);
}

namespace {

// The simulated BAR0 without its block accesses: Pramin must then go word by word.
struct WordByWordBar {
    sim::Gpu::Bar0 *bar;
    Result<u8> read8(u64 offset) noexcept { return bar->read8(offset); }
    Result<u16> read16(u64 offset) noexcept { return bar->read16(offset); }
    Result<u32> read32(u64 offset) noexcept { return bar->read32(offset); }
    Result<u64> read64(u64 offset) noexcept { return bar->read64(offset); }
    Result<void> write8(u64 offset, u8 value) noexcept { return bar->write8(offset, value); }
    Result<void> write16(u64 offset, u16 value) noexcept { return bar->write16(offset, value); }
    Result<void> write32(u64 offset, u32 value) noexcept { return bar->write32(offset, value); }
    Result<void> write64(u64 offset, u64 value) noexcept { return bar->write64(offset, value); }
};
static_assert(BarBlockIo<sim::Gpu::Bar0>);
static_assert(BarIo<WordByWordBar> && !BarBlockIo<WordByWordBar>);

}  // namespace

TEST_CASE("bulk accesses through block BAR access and word by word agree, moves included")
{
    SimRig block_rig(sim::ga102, 16 * mib), word_rig(sim::ga102, 16 * mib);
    auto block = block_rig.window();
    WordByWordBar plain{&word_rig.gpu.bar0()};
    auto word = Pramin<WordByWordBar>::create(plain, word_rig.gpu.record().window,
                                              VramAddress{word_rig.gpu.vram_bytes()})
                    .value();
    u64 state = 0x1234567;
    auto next = [&state] {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return state >> 11;
    };
    std::vector<u64> words(400'000), back_block(words.size()), back_word(words.size());
    for (int round = 0; round < 300; ++round) {
        const std::size_t count = next() % (round % 10 == 0 ? words.size() : 3000);
        const u64 start = (next() % ((16 * mib) / 8 - count + 1)) * 8;
        const VramAddress at{start};
        switch (next() % 4) {
        case 0:
            for (std::size_t i = 0; i < count; ++i) words[i] = next();
            REQUIRE(block.write(at, std::span<const u64>(words.data(), count)).has_value());
            REQUIRE(word.write(at, std::span<const u64>(words.data(), count)).has_value());
            break;
        case 1: {
            const u64 first = next(), step = next() % 5 * 0x1000;
            REQUIRE(block.write_sequence(at, first, step, count).has_value());
            REQUIRE(word.write_sequence(at, first, step, count).has_value());
            break;
        }
        case 2: {
            // Pairs, checked against the pattern they must leave (windows edges may fall
            // between the two words of a pair: `at` is any word).
            const u64 first = next(), step = next() % 5 * 0x1000, second = next();
            const std::size_t pairs = count / 2;
            REQUIRE(block.write_pair_sequence(at, first, step, second, pairs).has_value());
            REQUIRE(word.write_pair_sequence(at, first, step, second, pairs).has_value());
            REQUIRE(block.read(at, std::span<u64>(back_block.data(), 2 * pairs)).has_value());
            REQUIRE(word.read(at, std::span<u64>(back_word.data(), 2 * pairs)).has_value());
            for (std::size_t i = 0; i < pairs; ++i) {
                REQUIRE(back_word[2 * i] == first + i * step);
                REQUIRE(back_word[2 * i + 1] == second);
                REQUIRE(back_block[2 * i] == first + i * step);
                REQUIRE(back_block[2 * i + 1] == second);
            }
            break;
        }
        default:
            REQUIRE(block.read(at, std::span<u64>(back_block.data(), count)).has_value());
            REQUIRE(word.read(at, std::span<u64>(back_word.data(), count)).has_value());
            CHECK(std::equal(back_block.begin(), back_block.begin() + static_cast<long>(count),
                             back_word.begin()));
        }
        REQUIRE(block.moves() == word.moves());
        REQUIRE(block.base() == word.base());
    }
    CHECK(block_rig.vram == word_rig.vram);
    CHECK(block.moves() > 10);
    CHECK(block_rig.gpu.faults() == 0);
    // The last write is posted until a read through BAR0 orders it, block or not.
    REQUIRE(block.write64(VramAddress{0x100}, 7).has_value());
    CHECK(block_rig.gpu.has_unordered_writes());
    REQUIRE(block.read(VramAddress{0x100}, std::span<u64>(back_block.data(), 4)).has_value());
    CHECK(!block_rig.gpu.has_unordered_writes());
}

TEST_CASE("a pair sequence split by the window's edge between its two words keeps its pattern")
{
    SimRig rig(sim::ga102, 16 * mib);
    auto pramin = rig.window();
    REQUIRE(pramin.write64(VramAddress{0}, 1).has_value());  // window at 0 .. 1 MiB
    const u64 moves = pramin.moves();
    // Three pairs from 1 MiB - 8: the first pair's low word is the window's last word.
    const VramAddress at{mib - 8};
    REQUIRE(pramin.write_pair_sequence(at, 0x1000, 0x200, 0xEE, 3).has_value());
    CHECK(pramin.moves() == moves + 1);
    std::array<u64, 6> back{};
    REQUIRE(pramin.read(at, back).has_value());
    CHECK(back == std::array<u64, 6>{0x1000, 0xEE, 0x1200, 0xEE, 0x1400, 0xEE});
}

TEST_CASE("a block access that runs past VRAM goes word by word: the faults are recorded")
{
    // The window says VRAM goes on to 32 MiB; the simulated GPU has 16: the words past 16 MiB
    // read all-ones and drop writes, one fault each, exactly as single accesses do.
    SimRig rig(sim::gh100, 16 * mib);
    auto pramin = Pramin<sim::Gpu::Bar0>::create(rig.gpu.bar0(), rig.gpu.record().window,
                                                 VramAddress{32 * mib})
                      .value();
    std::vector<u64> words(64, 0x55);
    REQUIRE(pramin.write(VramAddress{16 * mib - 16 * 8}, words).has_value());
    CHECK(rig.gpu.faults() == 48);
    CHECK(rig.vram[(16 * mib) / 8 - 1] == 0x55);
    std::vector<u64> back(64);
    REQUIRE(pramin.read(VramAddress{16 * mib - 16 * 8}, back).has_value());
    CHECK(rig.gpu.faults() == 96);
    CHECK(back[15] == 0x55);
    CHECK(back[16] == ~u64{0});
}
