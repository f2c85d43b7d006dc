// Must NOT compile: a PageTable whose page source cannot take tables back (no free_table) is
// not a TablePageSource, and the error names the concept.
#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/paging/page_table.hpp"

struct AllocateOnly {
    gpummu::Result<gpummu::TablePage> allocate_table(gpummu::TableSize)
    {
        return gpummu::failure(gpummu::Error::out_of_memory);
    }
#ifdef GPUMMU_COMPILE_FAIL_CONTROL
    gpummu::Result<void> free_table(gpummu::TablePage, bool)
    {
        return gpummu::success();
    }
#endif
};

int main()
{
    gpummu::u64 words[512] = {};
    gpummu::HostMemory memory(words);
    AllocateOnly pages;
    gpummu::PageTableNode nodes[4];
    gpummu::PageTableChildren children[1];
    auto table = gpummu::PageTable<gpummu::MmuV2, gpummu::HostMemory, AllocateOnly>::create(
        memory, pages, {nodes, children});
    return table.has_value() ? 0 : 1;
}
