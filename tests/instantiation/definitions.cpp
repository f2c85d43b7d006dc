// Compiles the address spaces' and the bind spaces' member functions over host memory
// (explicit instantiation definitions); every other test translation unit only declares them
// (spaces.hpp). The page tables under them are in definitions_tables.cpp.
#include "spaces.hpp"

template class gpummu::AddressSpace<gpummu::MmuV2, gpummu::HostMemory,
                                    gpummu::testing::RecordingInvalidator>;
template class gpummu::AddressSpace<gpummu::MmuV3, gpummu::HostMemory,
                                    gpummu::testing::RecordingInvalidator>;
template class gpummu::BindSpace<gpummu::MmuV2, gpummu::HostMemory,
                                 gpummu::testing::RecordingInvalidator>;
template class gpummu::BindSpace<gpummu::MmuV3, gpummu::HostMemory,
                                 gpummu::testing::RecordingInvalidator>;
