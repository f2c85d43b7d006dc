// Test helper: a simulated GPU with a GpuMm built over it (storage in vectors).
#pragma once

#include <memory>
#include <vector>

#include <doctest/doctest.h>

#include "gpummu/hw/gpu_mm.hpp"
#include "gpummu/sim/gpu.hpp"

namespace gpummu::testing {

struct SimGpuRig {
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

    explicit SimGpuRig(const sim::ChipModel &chip, u64 vram_bytes = 128ull << 20)
        : vram(vram_bytes / 8, 0x5A5A5A5A5A5A5A5Aull)
    {
        auto made = sim::Gpu::create(chip, vram);
        REQUIRE(made.has_value());
        gpu = std::make_unique<sim::Gpu>(std::move(*made));
        auto layout = FbLayout::from_records(gpu->fb_regions(), gpu->bar1_pdb());
        REQUIRE(layout.has_value());
        buddy_metadata.resize(Mm::buddy_metadata_words(*layout).value());
        auto created = mm->create(
            gpu->bar0(), gpu->bar1(), *layout, gpu->bar1_bytes(),
            {buddy_metadata, {{range_nodes, {nodes, children}, slots, records}, scratch}});
        REQUIRE(created.has_value());
    }
};

}  // namespace gpummu::testing
