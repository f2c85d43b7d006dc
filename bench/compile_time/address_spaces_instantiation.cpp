// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
// The one TU of a build that compiles the address spaces address_spaces_extern.cpp declares.
#define GPUMMU_PROBE_INSTANTIATE
#include "address_spaces_probe.hpp"
