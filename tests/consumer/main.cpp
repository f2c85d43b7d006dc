// A downstream program built against the installed gpummu headers (pkg-config and CMake).
#include <gpummu/gpummu.hpp>

int main()
{
    using namespace gpummu;
    auto pte = MmuV3::Pte::map({.address = PhysicalAddress{0x1000}});
    bool ok = pte && pte->raw() == 0x1001 && MmuV2::Pte::sparse().raw() == 0x8;
    return ok ? 0 : 1;
}
