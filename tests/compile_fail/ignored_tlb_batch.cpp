// Must NOT compile (as an error): ignoring the TLB batch a page-table change returns.
#pragma GCC diagnostic error "-Wunused-result"
#include "gpummu/paging/tlb_batch.hpp"

gpummu::TlbBatch change_something()
{
    gpummu::TlbBatch batch(gpummu::PhysicalAddress{0x1000}, gpummu::Aperture::video, false);
    batch.record_write(gpummu::Level{1});
    return batch;
}

int main()
{
#ifdef GPUMMU_COMPILE_FAIL_CONTROL
    auto batch = change_something();
    batch.abandon();
#else
    change_something();
#endif
    return 0;
}
