// Must NOT compile: a memory type without fill() is not TableMemory.
#include "gpummu/memory/table_memory_concepts.hpp"

struct ReadWriteOnly {
    gpummu::Result<void> read(gpummu::VramAddress, std::span<gpummu::u64>)
    {
        return gpummu::success();
    }
    gpummu::Result<void> write(gpummu::VramAddress, std::span<const gpummu::u64>)
    {
        return gpummu::success();
    }
#ifdef GPUMMU_COMPILE_FAIL_CONTROL
    gpummu::Result<void> fill(gpummu::VramAddress, gpummu::u64, std::size_t)
    {
        return gpummu::success();
    }
#endif
};

template <gpummu::TableMemory M>
int use(M &)
{
    return 0;
}

int main()
{
    ReadWriteOnly memory;
    return use(memory);
}
