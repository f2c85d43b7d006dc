// Must NOT compile: a bit field whose high bit is below its low bit, or that straddles the
// two words of a dual PDE, is refused during constant evaluation.
#include "gpummu/core/bitfield.hpp"

#ifdef GPUMMU_COMPILE_FAIL_CONTROL
constexpr gpummu::BitField field = gpummu::bits(70, 64);
#else
constexpr gpummu::BitField field = gpummu::bits(70, 60);  // straddles bit 63/64
#endif

int main()
{
    return field.width;
}
