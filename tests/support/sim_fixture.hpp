// Test helper: a simulated GPU with a GpuMm built over it; fails the test if it cannot be
// built. VRAM starts as garbage (0x5A...), as after power-on.
#pragma once

#include <doctest/doctest.h>

#include "support/sim_rig.hpp"

namespace gpummu::testing {

struct SimGpuRig : SimGpuRigStorage {
    explicit SimGpuRig(const sim::ChipModel &chip, u64 vram_bytes = 128ull << 20)
        : SimGpuRigStorage(chip, vram_bytes, 0x5A5A5A5A5A5A5A5Aull)
    {
        REQUIRE(ready);
    }
};

}  // namespace gpummu::testing
