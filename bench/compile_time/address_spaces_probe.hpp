// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
// What address_spaces*.cpp compile: the umbrella header and two address spaces (one per MMU
// format) created, mapped, translated and destroyed; with GPUMMU_PROBE_EXTERN the two are
// declared `extern template` first, as a TU of a larger build would; with
// GPUMMU_PROBE_INSTANTIATE the TU only compiles the two (explicit instantiations).
#include <gpummu/gpummu.hpp>
using namespace gpummu;
struct NoInvalidator {
    Result<void> invalidate(const TlbInvalidation &) { return success(); }
};
#ifdef GPUMMU_PROBE_EXTERN
extern template class gpummu::AddressSpace<MmuV2, HostMemory, NoInvalidator>;
extern template class gpummu::AddressSpace<MmuV3, HostMemory, NoInvalidator>;
#endif
#ifdef GPUMMU_PROBE_INSTANTIATE
template class gpummu::AddressSpace<MmuV2, HostMemory, NoInvalidator>;
template class gpummu::AddressSpace<MmuV3, HostMemory, NoInvalidator>;
#else
template <class F>
int exercise(HostMemory &memory, BuddyAllocator &buddy, AddressSpaceStorage storage)
{
    NoInvalidator invalidator;
    AddressSpace<F, HostMemory, NoInvalidator> space;
    if (!space.create(memory, buddy, invalidator, storage, {})) return 1;
    auto mapping =
        space.map(std::array{PhysicalSegment{PhysicalAddress{0}, 4096}}, PageAttributes{});
    if (mapping) (void)space.release(mapping->handle);
    (void)space.translate(VirtualAddress{0});
    return space.destroy() ? 0 : 1;
}
int run(HostMemory &memory, BuddyAllocator &buddy, AddressSpaceStorage a, AddressSpaceStorage b)
{
    return exercise<MmuV2>(memory, buddy, a) + exercise<MmuV3>(memory, buddy, b);
}
#endif
