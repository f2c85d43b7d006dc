// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
// The bind space and its page table compiled in this TU.
#include "bind_space_probe.hpp"
