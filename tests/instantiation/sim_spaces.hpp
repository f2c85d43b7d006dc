// The page tables and address spaces of the simulated GPU's contexts (tables in VRAM through
// PRAMIN, invalidated by its TLB), as the GPU-level tests use them: instantiated explicitly
// once (definitions_sim.cpp), declared `extern template` here for every other test
// translation unit (see spaces.hpp).
#pragma once

#include "gpummu/hw/gpu_mm.hpp"
#include "gpummu/sim/gpu.hpp"

namespace gpummu::testing {
// The window and invalidator GpuMm gives its contexts (so these stay the types it uses).
using SimWindow = GpuMm<sim::Gpu::Bar0, sim::Gpu::Bar1>::Window;
using SimTlb = GpuMm<sim::Gpu::Bar0, sim::Gpu::Bar1>::Invalidator;
}  // namespace gpummu::testing

extern template class gpummu::PageTable<gpummu::MmuV2, gpummu::testing::SimWindow,
                                        gpummu::BuddyTablePages<gpummu::testing::SimWindow>>;
extern template class gpummu::PageTable<gpummu::MmuV3, gpummu::testing::SimWindow,
                                        gpummu::BuddyTablePages<gpummu::testing::SimWindow>>;
extern template class gpummu::AddressSpace<gpummu::MmuV2, gpummu::testing::SimWindow,
                                           gpummu::testing::SimTlb>;
extern template class gpummu::AddressSpace<gpummu::MmuV3, gpummu::testing::SimWindow,
                                           gpummu::testing::SimTlb>;
