// hw/tlb.hpp on the simulated GPU: the register sequence, flags per batch, timeouts, and the
// write ordering through the PRAMIN window.
#include <doctest/doctest.h>

#include <vector>

#include "gpummu/hw/pramin.hpp"
#include "gpummu/hw/tlb.hpp"
#include "gpummu/sim/gpu.hpp"

using namespace gpummu;

namespace {

struct CountingFence {
    unsigned calls = 0;
    Result<void> order_writes()
    {
        ++calls;
        return success();
    }
};

TlbInvalidation request(u64 pdb, bool downgrade, bool hub_only)
{
    TlbBatch batch(PhysicalAddress{pdb}, Aperture::video, hub_only);
    if (downgrade)
        batch.record_downgrade(Level{3});
    else
        batch.record_write(Level{3});
    TlbInvalidation out = batch.invalidation();
    batch.abandon();
    return out;
}

}  // namespace

TEST_CASE("the invalidate sequence: poll, PDB, upper PDB, control, poll")
{
    std::vector<u64> vram(1 << 20);
    auto gpu = sim::Gpu::create(sim::ga102, vram).value();
    CountingFence fence;
    Tlb<sim::Gpu::Bar0, CountingFence> tlb(gpu.bar0(), gpu.record().invalidate, fence);
    gpu.clear_log();
    const u64 pdb = 0x12'3456'7000ull;  // above 4 GiB: bits 39:12 and 59:40 both matter
    REQUIRE(tlb.invalidate(request(pdb, false, false)).has_value());
    CHECK(fence.calls == 1);
    // Expected: a read of CONTROL (idle), PDB, UPPER_PDB, CONTROL, then reads until idle.
    REQUIRE(gpu.log_size() >= 5);
    CHECK(gpu.log_entry(0) == sim::RegisterAccess{0xB830B0, 0, false});
    CHECK(gpu.log_entry(1) ==
          sim::RegisterAccess{0xB830A0, static_cast<u32>(((pdb >> 12) & 0x0FFFFFFF) << 4), true});
    CHECK(gpu.log_entry(2) == sim::RegisterAccess{0xB830A4, static_cast<u32>(pdb >> 40), true});
    CHECK(gpu.log_entry(3) == sim::RegisterAccess{0xB830B0, 0x80000001u, true});
    const std::size_t polls = gpu.log_size() - 4;
    CHECK(polls == 4);  // the simulator shows TRIGGER set to three reads, idle on the fourth
    for (std::size_t i = 4; i < gpu.log_size(); ++i) {
        CHECK(gpu.log_entry(i).offset == 0xB830B0);
        CHECK_FALSE(gpu.log_entry(i).write);
    }
    CHECK((gpu.log_entry(gpu.log_size() - 1).value & 0x80000000u) == 0);
    CHECK(gpu.invalidate_count() == 1);
    CHECK(gpu.last_invalidate().pdb == pdb);
    CHECK_FALSE(gpu.last_invalidate().system_memory);
}

TEST_CASE("flags follow the batch: ack and membar for downgrades, hub-only for BAR spaces")
{
    std::vector<u64> vram(1 << 20);
    auto gpu = sim::Gpu::create(sim::gh100, vram).value();
    NoFence fence;
    Tlb<sim::Gpu::Bar0> tlb(gpu.bar0(), gpu.record().invalidate, fence);
    REQUIRE(tlb.invalidate(request(0x10000, true, false)).has_value());
    CHECK(gpu.last_invalidate().control == (0x80000001u | (1u << 6) | (1u << 7)));
    REQUIRE(tlb.invalidate(request(0x10000, false, true)).has_value());
    CHECK(gpu.last_invalidate().control == (0x80000001u | (1u << 2)));
    TlbInvalidation system = request(0x20000, false, false);
    system.pdb_aperture = Aperture::system_coherent;
    REQUIRE(tlb.invalidate(system).has_value());
    CHECK(gpu.last_invalidate().system_memory);
    CHECK(tlb.invalidates() == 3);
}

TEST_CASE("bad requests and a hung invalidate are errors")
{
    std::vector<u64> vram(1 << 20);
    auto gpu = sim::Gpu::create(sim::ga102, vram).value();
    NoFence fence;
    Tlb<sim::Gpu::Bar0> tlb(gpu.bar0(), gpu.record().invalidate, fence, 100);
    CHECK(tlb.invalidate(request(0x10800, false, false)).error() == Error::misaligned);
    TlbInvalidation peer = request(0x10000, false, false);
    peer.pdb_aperture = Aperture::peer;
    CHECK(tlb.invalidate(peer).error() == Error::invalid_aperture);
    gpu.hang_invalidates(true);
    TlbBatch batch(PhysicalAddress{0x10000}, Aperture::video, false);
    batch.record_write(Level{0});
    CHECK(batch.finish(tlb).error() == Error::timeout);
    CHECK(batch.pending());  // the obligation survives for a retry
    gpu.hang_invalidates(false);
    REQUIRE(batch.finish(tlb).has_value());
    CHECK_FALSE(batch.pending());
    CHECK(gpu.invalidate_count() == 2);  // the hung one finished first, then the retry
}

TEST_CASE("a GPU that fell off the bus is device_lost at once, not a timeout")
{
    std::vector<u64> vram(1 << 20);
    auto gpu = sim::Gpu::create(sim::ga102, vram).value();
    NoFence fence;
    Tlb<sim::Gpu::Bar0> tlb(gpu.bar0(), gpu.record().invalidate, fence, 1'000'000);
    gpu.fall_off_bus(true);
    TlbBatch batch(PhysicalAddress{0x10000}, Aperture::video, false);
    batch.record_write(Level{0});
    CHECK(batch.finish(tlb).error() == Error::device_lost);
    CHECK(batch.pending());
    CHECK(gpu.log_size() < 10);  // gave up on the first all-ones read, did not poll a million
    gpu.fall_off_bus(false);
    REQUIRE(batch.finish(tlb).has_value());
}

TEST_CASE("PRAMIN orders its writes before the invalidate")
{
    std::vector<u64> vram(1 << 20);
    auto gpu = sim::Gpu::create(sim::ga102, vram).value();
    auto pramin = Pramin<sim::Gpu::Bar0>::create(gpu.bar0(), gpu.record().window,
                                                 VramAddress{gpu.vram_bytes()})
                      .value();
    // Without the fence, an invalidate right after a PRAMIN write is unordered.
    REQUIRE(pramin.write64(VramAddress{0x2000}, 41).has_value());
    NoFence none;
    Tlb<sim::Gpu::Bar0> careless(gpu.bar0(), gpu.record().invalidate, none);
    REQUIRE(careless.invalidate(request(0x1000, false, false)).has_value());
    CHECK(gpu.unordered_invalidates() == 1);
    // With the window as the fence, its read-back orders the write first.
    REQUIRE(pramin.write64(VramAddress{0x2000}, 42).has_value());
    Tlb<sim::Gpu::Bar0, Pramin<sim::Gpu::Bar0>> tlb(gpu.bar0(), gpu.record().invalidate, pramin);
    REQUIRE(tlb.invalidate(request(0x1000, false, false)).has_value());
    CHECK(gpu.unordered_invalidates() == 1);
    CHECK(gpu.invalidate_count() == 2);
    CHECK(vram[0x2000 / 8] == 42);
}
