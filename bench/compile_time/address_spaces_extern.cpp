// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
// address_spaces.cpp as a translation unit of a larger build would write it: the two
// address spaces are declared `extern template` (compiled once, in
// address_spaces_instantiation.cpp), so this TU compiles only its own code.
#include <gpummu/gpummu.hpp>
using namespace gpummu;
struct NoInvalidator {
    Result<void> invalidate(const TlbInvalidation &) { return success(); }
};
extern template class gpummu::AddressSpace<MmuV2, HostMemory, NoInvalidator>;
extern template class gpummu::AddressSpace<MmuV3, HostMemory, NoInvalidator>;
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
