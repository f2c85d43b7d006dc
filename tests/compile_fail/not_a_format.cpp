// Must NOT compile: a type that is not an MMU format is handed to format code. The
// diagnostic must name the MmuFormat concept. With GPUMMU_COMPILE_FAIL_CONTROL defined the
// same file uses a real format and must compile (so the failure is the misuse, not a typo).
#include "gpummu/format/mmu_version.hpp"

struct NotAFormat {
    static constexpr unsigned va_bits = 49;  // looks a little like one, but has no levels
};

#ifdef GPUMMU_COMPILE_FAIL_CONTROL
using Tested = gpummu::MmuV3;
#else
using Tested = NotAFormat;
#endif

int main()
{
    return static_cast<int>(gpummu::format_page_sizes<Tested>().count());
}
