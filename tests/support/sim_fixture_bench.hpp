// Benchmark helper: a simulated GPU with a GpuMm built over it (storage in vectors), without
// doctest (see sim_fixture.hpp for the test version).
#pragma once

#include <cstdlib>
#include <memory>
#include <vector>

#include "gpummu/hw/gpu_mm.hpp"
#include "gpummu/sim/gpu.hpp"

namespace gpummu::testing {

struct SimGpuBenchRig {
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

    explicit SimGpuBenchRig(const sim::ChipModel &chip, u64 vram_bytes = 256ull << 20)
        : vram(vram_bytes / 8, 0)
    {
        gpu = std::make_unique<sim::Gpu>(sim::Gpu::create(chip, vram).value());
        auto layout = FbLayout::from_records(gpu->fb_regions(), gpu->bar1_pdb()).value();
        buddy_metadata.resize(Mm::buddy_metadata_words(layout).value());
        if (!mm->create(
                gpu->bar0(), gpu->bar1(), layout, gpu->bar1_bytes(),
                {buddy_metadata, {{range_nodes, {nodes, children}, slots, records}, scratch}}))
            std::abort();
    }
};

}  // namespace gpummu::testing
