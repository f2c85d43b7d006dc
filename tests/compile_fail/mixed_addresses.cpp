// Must NOT compile: a GPU virtual address compared with a VRAM address.
#include "gpummu/core/types.hpp"

int main()
{
    gpummu::VirtualAddress va{0x1000};
#ifdef GPUMMU_COMPILE_FAIL_CONTROL
    gpummu::VirtualAddress other{0x1000};
#else
    gpummu::VramAddress other{0x1000};
#endif
    return va == other ? 0 : 1;
}
