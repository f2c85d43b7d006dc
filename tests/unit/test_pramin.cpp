// hw/pramin.hpp on the simulated GPU: window moves, field widths, sized and bulk access,
// page tables written through the window.
#include <doctest/doctest.h>

#include <vector>

#include "gpummu/hw/pramin.hpp"
#include "gpummu/sim/gpu.hpp"
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
