// Compiles the page tables' member functions over host memory for both formats and the three
// page sources the tests use (explicit instantiation definitions); every other test
// translation unit only declares them (spaces.hpp).
#include "spaces.hpp"

template class gpummu::PageTable<gpummu::MmuV2, gpummu::HostMemory,
                                 gpummu::BuddyTablePages<gpummu::HostMemory>>;
template class gpummu::PageTable<gpummu::MmuV3, gpummu::HostMemory,
                                 gpummu::BuddyTablePages<gpummu::HostMemory>>;
template class gpummu::PageTable<gpummu::MmuV2, gpummu::HostMemory,
                                 gpummu::ReservingTablePages<gpummu::HostMemory>>;
template class gpummu::PageTable<gpummu::MmuV3, gpummu::HostMemory,
                                 gpummu::ReservingTablePages<gpummu::HostMemory>>;
template class gpummu::PageTable<gpummu::MmuV2, gpummu::HostMemory, gpummu::testing::FaultyPages>;
template class gpummu::PageTable<gpummu::MmuV3, gpummu::HostMemory, gpummu::testing::FaultyPages>;
