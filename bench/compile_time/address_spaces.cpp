// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
// The two address spaces compiled in this TU.
#include "address_spaces_probe.hpp"
