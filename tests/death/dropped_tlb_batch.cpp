// Must die in a debug build: a batch that still owes an invalidate is destroyed.
// With GPUMMU_DEATH_CONTROL the batch is finished first and the program exits 0.
#include "gpummu/paging/tlb_batch.hpp"

namespace {
struct NullInvalidator {
    gpummu::Result<void> invalidate(const gpummu::TlbInvalidation &) { return gpummu::success(); }
};
}  // namespace

int main()
{
    gpummu::TlbBatch batch(gpummu::PhysicalAddress{0x1000}, gpummu::Aperture::video, false);
    batch.record_downgrade(gpummu::Level{3});
#ifdef GPUMMU_DEATH_CONTROL
    NullInvalidator invalidator;
    return batch.finish(invalidator) ? 0 : 1;
#else
    return 0;  // the destructor runs here and must stop the program
#endif
}
