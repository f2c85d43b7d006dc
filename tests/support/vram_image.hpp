// Test and benchmark helper: VRAM as a host-memory image with a buddy allocator over all of
// it (tests and benchmarks may allocate; the library never does), and an invalidator for
// host memory, which has no TLB.
#pragma once

#include <array>
#include <vector>

#include "gpummu/alloc/buddy.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/paging/tlb_batch.hpp"

namespace gpummu::testing {

struct VramImage {
    std::vector<u64> image;
    HostMemory memory;
    std::array<VramRange, 1> regions;
    std::vector<u64> buddy_words;
    BuddyAllocator buddy;
    explicit VramImage(u64 bytes)
        : image(bytes / 8, 0),
          memory(image),
          regions{VramRange::from_size(VramAddress{0}, bytes).value()},
          buddy_words(BuddyAllocator::metadata_words(regions).value()),
          buddy(BuddyAllocator::create(regions, buddy_words).value())
    {
    }
};

struct NoTlb {
    Result<void> invalidate(const TlbInvalidation &) { return success(); }
};

}  // namespace gpummu::testing
