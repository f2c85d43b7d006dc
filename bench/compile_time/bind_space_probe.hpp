// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
// What bind_space*.cpp compile: the umbrella header and an MMU v3 bind space created, given
// one job (prepared, committed with a sink, flushed), translated and destroyed; with
// GPUMMU_PROBE_EXTERN the bind space and its page table are declared `extern template`
// first, as a TU of a larger build would (the one TU that compiles them writes the same
// lines without `extern`).
#include <gpummu/gpummu.hpp>
using namespace gpummu;
struct NoInvalidator {
    Result<void> invalidate(const TlbInvalidation &) { return success(); }
};
#ifdef GPUMMU_PROBE_EXTERN
extern template class gpummu::PageTable<MmuV3, HostMemory, ReservingTablePages<HostMemory>>;
extern template class gpummu::BindSpace<MmuV3, HostMemory, NoInvalidator>;
#endif
int run(HostMemory &memory, BuddyAllocator &buddy, BindSpaceStorage storage,
        std::span<const BindOperation> operations)
{
    NoInvalidator invalidator;
    BindSpace<MmuV3, HostMemory, NoInvalidator> space;
    if (!space.create(memory, buddy, invalidator, storage, {})) return 1;
    auto job = space.prepare(operations);
    if (!job) return 2;
    u64 steps = 0;
    auto batch = space.commit(std::move(*job), [&steps](const MappingStep &) { ++steps; });
    if (!batch || !space.flush(*batch)) return 3;
    (void)space.translate(VirtualAddress{0});
    return space.destroy() ? static_cast<int>(steps) : 4;
}
