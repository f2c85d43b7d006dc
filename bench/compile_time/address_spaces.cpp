// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
#include <gpummu/gpummu.hpp>
using namespace gpummu;
struct NoInvalidator {
    Result<void> invalidate(const TlbInvalidation &) { return success(); }
};
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
