// Compiles the simulated GPU's context page tables and address spaces (explicit
// instantiation definitions); every other test translation unit only declares them
// (sim_spaces.hpp).
#include "sim_spaces.hpp"

template class gpummu::PageTable<gpummu::MmuV2, gpummu::testing::SimWindow,
                                 gpummu::BuddyTablePages<gpummu::testing::SimWindow>>;
template class gpummu::PageTable<gpummu::MmuV3, gpummu::testing::SimWindow,
                                 gpummu::BuddyTablePages<gpummu::testing::SimWindow>>;
template class gpummu::AddressSpace<gpummu::MmuV2, gpummu::testing::SimWindow,
                                    gpummu::testing::SimTlb>;
template class gpummu::AddressSpace<gpummu::MmuV3, gpummu::testing::SimWindow,
                                    gpummu::testing::SimTlb>;
