// The one translation unit that compiles the address spaces', the bind space's and the page
// tables' member functions (explicit instantiation definitions);
// test_extern_address_space.cpp only declares them.
#include "spaces.hpp"

template class gpummu::AddressSpace<gpummu::MmuV2, gpummu::HostMemory,
                                    gpummu::testing::RecordingInvalidator>;
template class gpummu::PageTable<gpummu::MmuV3, gpummu::HostMemory,
                                 gpummu::BuddyTablePages<gpummu::HostMemory>>;
template class gpummu::AddressSpace<gpummu::MmuV3, gpummu::HostMemory,
                                    gpummu::testing::RecordingInvalidator>;
template class gpummu::PageTable<gpummu::MmuV3, gpummu::HostMemory,
                                 gpummu::ReservingTablePages<gpummu::HostMemory>>;
template class gpummu::BindSpace<gpummu::MmuV3, gpummu::HostMemory,
                                 gpummu::testing::RecordingInvalidator>;
