// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
// address_spaces_instantiation.cpp with one format: what a TU pays that compiles one
// AddressSpace (a program may split its instantiations one format per TU). The second
// format's share of the two-format TU is the most that moving format-independent code out
// of the templates could save there.
#include <gpummu/gpummu.hpp>
using namespace gpummu;
struct NoInvalidator {
    Result<void> invalidate(const TlbInvalidation &) { return success(); }
};
template class gpummu::AddressSpace<MmuV2, HostMemory, NoInvalidator>;
