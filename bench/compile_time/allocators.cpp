// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
// The part of an address space that does not depend on the MMU format, compiled alone: the
// umbrella header and the calls an address space makes into the VRAM buddy allocator and the
// VA range allocator (create, allocate, free, lookups, stats). These are not templates, so
// the TU that instantiates an AddressSpace compiles them whatever is done to the format
// templates: their cost is a floor under that TU's.
#include <gpummu/gpummu.hpp>
using namespace gpummu;
int run(std::span<const VramRange> regions, std::span<u64> words, VirtualRange space,
        std::span<RangeNode> nodes)
{
    auto words_needed = BuddyAllocator::metadata_words(regions);
    auto buddy = BuddyAllocator::create(regions, words);
    auto ranges = RangeAllocator::create(space, nodes);
    if (!buddy || !ranges || !words_needed) return 1;
    BuddyBlock block;
    auto allocation = buddy->allocate(4096, {}, std::span(&block, 1));
    if (allocation) (void)buddy->free(block);
    auto range = ranges->allocate(RangeRequest{.size = 4096});
    if (range) {
        (void)ranges->owner_of(range->begin());
        (void)ranges->find(range->begin());
        (void)ranges->free(*range);
    }
    (void)ranges->reserve(space);
    return static_cast<int>(buddy->stats().free_bytes);
}
