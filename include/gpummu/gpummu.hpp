// gpummu/gpummu.hpp: the umbrella header. Includes every freestanding gpummu header; the
// POSIX BAR backend (hw/pci_bar.hpp) is left out on purpose and must be included by name.
//
// Glossary: PTE page-table entry; PDE page-directory entry; dual PDE the 16-byte PD0 entry
// pointing at a big-page (64 KiB) and a small-page (4 KiB) table; PDB page-directory base
// (the root); PFN/VFN physical/virtual 4 KiB frame number; PCF page classification field
// (MMU v3 permissions); NV4K "no valid 4 KiB PTE below" (a big-PTE state).
#pragma once

#include "gpummu/alloc/buddy.hpp"
#include "gpummu/alloc/range_allocator.hpp"
#include "gpummu/core/bitfield.hpp"
#include "gpummu/core/config.hpp"
#include "gpummu/core/deferred.hpp"
#include "gpummu/core/ordered_index.hpp"
#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/format/aperture_codes.hpp"
#include "gpummu/format/describe.hpp"
#include "gpummu/format/format_concepts.hpp"
#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/format/mmu_version.hpp"
#include "gpummu/hw/bar1.hpp"
#include "gpummu/hw/chip.hpp"
#include "gpummu/hw/fb_layout.hpp"
#include "gpummu/hw/gpu_mm.hpp"
#include "gpummu/hw/instance_block.hpp"
#include "gpummu/hw/pramin.hpp"
#include "gpummu/hw/register_io_concepts.hpp"
#include "gpummu/hw/selftest.hpp"
#include "gpummu/hw/tlb.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/memory/table_memory_concepts.hpp"
#include "gpummu/memory/table_pages.hpp"
#include "gpummu/paging/page_table.hpp"
#include "gpummu/paging/page_table_node.hpp"
#include "gpummu/paging/tlb_batch.hpp"
#include "gpummu/paging/table_walk.hpp"
#include "gpummu/paging/walker.hpp"
#include "gpummu/sim/gpu.hpp"
#include "gpummu/sim/reference_mmu.hpp"
#include "gpummu/vmm/address_space.hpp"
#include "gpummu/vmm/bind_job.hpp"
#include "gpummu/vmm/mapping_dump.hpp"
#include "gpummu/vmm/mapping_records.hpp"
