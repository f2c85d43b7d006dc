// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
// The one TU of a build that compiles the address spaces address_spaces_extern.cpp declares.
#include <gpummu/gpummu.hpp>
using namespace gpummu;
struct NoInvalidator {
    Result<void> invalidate(const TlbInvalidation &) { return success(); }
};
template class gpummu::AddressSpace<MmuV2, HostMemory, NoInvalidator>;
template class gpummu::AddressSpace<MmuV3, HostMemory, NoInvalidator>;
