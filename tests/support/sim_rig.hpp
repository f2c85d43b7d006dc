// Test and benchmark helper: a simulated GPU with a GpuMm built over it (storage in vectors).
// No test framework here: `ready` says whether everything was built (sim_fixture.hpp turns
// that into a doctest REQUIRE).
#pragma once

#include <memory>
#include <vector>

#include "gpummu/hw/gpu_mm.hpp"
#include "gpummu/sim/gpu.hpp"

namespace gpummu::testing {

struct SimGpuRigStorage {
    using Mm = GpuMm<sim::Gpu::Bar0, sim::Gpu::Bar1>;
    std::vector<u64> vram;
    std::unique_ptr<sim::Gpu> gpu;
    std::vector<u64> buddy_metadata;
    std::vector<RangeNode> range_nodes = std::vector<RangeNode>(RangeAllocator::nodes_for(256));
    std::vector<PageTableNode> nodes = std::vector<PageTableNode>(2048);
    std::vector<PageTableChildren> children = std::vector<PageTableChildren>(64);
    std::vector<BigTableSlot> slots = std::vector<BigTableSlot>(64);
    std::vector<MappingRecord> records = std::vector<MappingRecord>(256);
    std::vector<PhysicalSegment> scratch = std::vector<PhysicalSegment>(1024);
    std::unique_ptr<Mm> mm = std::make_unique<Mm>();

    bool ready = false;

    explicit SimGpuRigStorage(const sim::ChipModel &chip, u64 vram_bytes = 256ull << 20,
                              u64 fill = 0)
        : vram(vram_bytes / 8, fill)
    {
        auto made = sim::Gpu::create(chip, vram);
        if (!made) return;
        gpu = std::make_unique<sim::Gpu>(std::move(*made));
        auto layout = FbLayout::from_records(gpu->fb_regions(), gpu->bar1_pdb());
        if (!layout) return;
        auto words = Mm::buddy_metadata_words(*layout);
        if (!words) return;
        buddy_metadata.resize(*words);
        ready = mm->create(
                      gpu->bar0(), gpu->bar1(), *layout, gpu->bar1_bytes(),
                      {buddy_metadata, {{range_nodes, {nodes, children}, slots, records}, scratch}})
                    .has_value();
    }
};

}  // namespace gpummu::testing
