// The page tables, address spaces and bind spaces that the tests use over host memory:
// instantiated explicitly once (definitions_tables.cpp, definitions.cpp) and declared
// `extern template` wherever else they are used, as a driver build with many translation units
// would (docs/consuming.md). Every test that uses one of these types includes this header
// before it uses them; a type listed here and used without the header is still correct (an
// inline copy), only compiled again.
#pragma once

#include "gpummu/memory/host_memory.hpp"
#include "gpummu/vmm/address_space.hpp"
#include "gpummu/vmm/bind_job.hpp"
#include "support/page_table_fixture.hpp"

namespace gpummu::testing {
template <MmuFormat F>
using HostSpace = AddressSpace<F, HostMemory, RecordingInvalidator>;
using HostTable = PageTable<MmuV3, HostMemory, BuddyTablePages<HostMemory>>;
using HostBindSpace = BindSpace<MmuV3, HostMemory, RecordingInvalidator>;
}  // namespace gpummu::testing

// Page tables: over the buddy's pages (address spaces), over promised pages (bind spaces),
// over the fault-injecting source (page-table tests).
extern template class gpummu::PageTable<gpummu::MmuV2, gpummu::HostMemory,
                                        gpummu::BuddyTablePages<gpummu::HostMemory>>;
extern template class gpummu::PageTable<gpummu::MmuV3, gpummu::HostMemory,
                                        gpummu::BuddyTablePages<gpummu::HostMemory>>;
extern template class gpummu::PageTable<gpummu::MmuV2, gpummu::HostMemory,
                                        gpummu::ReservingTablePages<gpummu::HostMemory>>;
extern template class gpummu::PageTable<gpummu::MmuV3, gpummu::HostMemory,
                                        gpummu::ReservingTablePages<gpummu::HostMemory>>;
extern template class gpummu::PageTable<gpummu::MmuV2, gpummu::HostMemory,
                                        gpummu::testing::FaultyPages>;
extern template class gpummu::PageTable<gpummu::MmuV3, gpummu::HostMemory,
                                        gpummu::testing::FaultyPages>;

extern template class gpummu::AddressSpace<gpummu::MmuV2, gpummu::HostMemory,
                                           gpummu::testing::RecordingInvalidator>;
extern template class gpummu::AddressSpace<gpummu::MmuV3, gpummu::HostMemory,
                                           gpummu::testing::RecordingInvalidator>;
extern template class gpummu::BindSpace<gpummu::MmuV2, gpummu::HostMemory,
                                        gpummu::testing::RecordingInvalidator>;
extern template class gpummu::BindSpace<gpummu::MmuV3, gpummu::HostMemory,
                                        gpummu::testing::RecordingInvalidator>;
