// Test helper: the caller-supplied storage of one address space, in vectors (tests may
// allocate; the address space itself never does).
#pragma once

#include <vector>

#include "gpummu/vmm/address_space.hpp"
#include "gpummu/vmm/bind_job.hpp"

namespace gpummu::testing {

struct SpaceStorage {
    std::vector<RangeNode> range_nodes;
    std::vector<PageTableNode> nodes;
    std::vector<PageTableChildren> children;
    std::vector<BigTableSlot> slots;
    std::vector<MappingRecord> records;

    // `big_table_pages`: host pages of big-page tables (16 tables each); 0: `directories`.
    explicit SpaceStorage(std::size_t handles = 32, std::size_t table_nodes = 512,
                          std::size_t directories = 32, std::size_t big_table_pages = 0)
        : range_nodes(RangeAllocator::nodes_for(2 * handles)),
          nodes(table_nodes),
          children(directories),
          slots(big_table_pages != 0 ? big_table_pages : directories),
          records(handles)
    {
    }
    AddressSpaceStorage get() { return {range_nodes, {nodes, children}, slots, records}; }
};

// The same for a BindSpace: table nodes, directory blocks, big-table slots, and the
// committed and projected record pools with their indexes.
struct BindStorage {
    std::vector<PageTableNode> nodes;
    std::vector<PageTableChildren> children;
    std::vector<BigTableSlot> slots;
    std::vector<MappingNode> records;
    std::vector<MappingNode> projected;
    std::vector<OrderedIndexNode> records_index;
    std::vector<OrderedIndexNode> projected_index;

    BindStorage(std::size_t table_nodes, std::size_t directories, std::size_t big_slots,
                std::size_t record_nodes)
        : nodes(table_nodes),
          children(directories),
          slots(big_slots),
          records(record_nodes),
          projected(record_nodes),
          records_index(MappingRecords::index_nodes_for(record_nodes)),
          projected_index(MappingRecords::index_nodes_for(record_nodes))
    {
    }
    BindSpaceStorage get()
    {
        return {{nodes, children}, slots, records, projected, records_index, projected_index};
    }
};

}  // namespace gpummu::testing
