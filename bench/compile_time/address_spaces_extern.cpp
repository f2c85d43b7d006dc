// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
// address_spaces.cpp as a translation unit of a larger build would write it: the two
// address spaces are declared `extern template` (compiled once, in
// address_spaces_instantiation.cpp), so this TU compiles only its own code.
#define GPUMMU_PROBE_EXTERN
#include "address_spaces_probe.hpp"
