// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
// bind_space.cpp as a translation unit of a larger build would write it: the bind space and
// its page table declared `extern template`, so this TU compiles only its own code and the
// commit's sink.
#define GPUMMU_PROBE_EXTERN
#include "bind_space_probe.hpp"
