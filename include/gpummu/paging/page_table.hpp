// gpummu/paging/page_table.hpp: build and change one GPU address space's page tables.
//
// What it does
//   `PageTable<Format, Memory, Pages>` owns the tables of one address space: it allocates
//   them from a TablePageSource, writes them through a TableMemory and keeps a host-side
//   shadow of each (page_table_node.hpp), so every decision (is this page mapped? may a
//   large page go here? is this table empty?) is made without reading VRAM back.
//
//     root (PDB)  PD3/PD4 ... PD1 --> PD0 (dual, 2 MiB per entry) --+--> big PT  (32 x 64 KiB)
//                   |          |        |                           +--> small PT (512 x 4 KiB)
//                   |          |        +-- 2 MiB PTE
//                   |          +----------- 512 MiB PTE (where the chip allows it)
//                   +---------------------- 256 GiB PTE (v3, where the chip allows it)
//
//   - map(VA range, physical segments, attributes): each piece gets the largest page size
//     that VA alignment, PA alignment, physical contiguity, the chip's page sizes and the
//     existing tables allow (a large page is placed only where no table hangs below the
//     entry); `MapOptions::page_sizes` narrows the choice, one size pins it. PTE runs over
//     contiguous memory are written as one range write (a SequenceTableMemory writes them
//     directly, and a PairSequenceTableMemory runs of dual entries; others go through a
//     512-word staging buffer).
//   - unmap(range): mapped pages return to invalid, or to sparse where the range was
//     sparse before it was mapped. Unmapping part of a large page splits it: the rest stays
//     mapped with the next smaller pages (512 MiB -> 2 MiB -> 64 KiB -> 4 KiB).
//   - make_sparse(range) / clear_sparse(range): sparse pages read zero and drop writes.
//     A whole aligned entry becomes one sparse PDE or big PTE, and what becomes all sparse
//     folds back: a table of sparse entries into a sparse PDE, a dual entry into a sparse
//     dual PDE, 16 sparse small PTEs into a sparse big PTE (an unmap or make_sparse whose
//     entry has no big table makes one in its prepare phase), so the tables depend on the pages'
//     states, not on the history that led to them.
//   - with_root(root): a root someone else made. An empty one is used as is; one holding
//     entries (GSP's BAR1 root) is adopted: its tables are read into the shadow as foreign
//     tables, never retired or freed; their pages and sparse ranges are foreign ranges that
//     operations may not touch (pages) or clear (sparse), Error::foreign_entry; whatever
//     this page table writes into them it takes back word for word.
//   - Dual PD0 entries: 64 KiB and 4 KiB pages coexist under one entry. Per 64 KiB chunk the
//     content lives either in the big PTE (valid or sparse) or in the 16 small PTEs; a chunk
//     with neither, while a small table exists, has the no-valid-4K big PTE so the MMU does
//     not fetch the small PTEs. One exception: a map that may not use 4 KiB pages places a
//     64 KiB page over a chunk whose small PTEs hold content (with replace, or over sparse
//     pages); the valid big PTE hides them (the MMU reads the big PTE first), mapped small
//     pages go back to what lies beneath them and sparse ones stay, so that unmapping the
//     64 KiB page brings back exactly the sparse pages the chunk had. Big tables are 256
//     bytes, packed by the page source.
//   - Two phases: `prepare_map` validates everything and allocates every table the range
//     needs (including splits at the boundaries); on failure nothing is left behind.
//     `commit` writes and cannot fail except on a device error. `map` = prepare + commit.
//     unmap, make_sparse and clear_sparse run the same two phases internally.
//   - Every mutation returns a [[nodiscard]] TlbBatch (PDB, shallowest level written,
//     ack-globally and sys-membar when access was taken away). Tables that became empty are
//     unlinked at once and freed by `flush(batch, invalidator)` after the invalidate.
//   - Reference counts per table (`live`); `check_invariants()` reads every table back and
//     proves the shadow, the counts and the VRAM words agree.
//
// What it does not do
//   - No locking; one operation at a time. Between prepare_map and commit/cancel the
//     page table refuses other mutations (Error::invalid_argument).
//   - It does not choose virtual addresses (vmm/address_space.hpp does) and does not issue
//     invalidates itself (a TlbInvalidator does, through the batch).
//   - It does not compile itself once per program: every TU that calls it compiles the walk,
//     unless the TU declares its instantiation `extern template` and one TU instantiates it
//     (the members that carry the work are defined below the class for that, so they are
//     not implicitly inline; see docs/consuming.md).
//   - flush() frees every retired table: pass it a batch that covers every mutation made
//     since the last flush (merge them), which is the case when batches are finished as
//     they come.
//   - After a device error inside a commit the tables of that range are undefined.
//
// Invariants (checked by check_invariants)
//   - Every table in use is reachable from the root exactly once, at its level.
//   - A table's `live` equals its entries that are not invalid (NV4K words do not count);
//     no table but the root (and adopted foreign tables) is ever left with live == 0.
//   - A chunk's content is in its big PTE or its small PTEs, never both.
//   - Errors leave tables, shadow and the page source as they were.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <span>
#include <utility>

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/format/format_concepts.hpp"
#include "gpummu/memory/table_memory_concepts.hpp"
#include "gpummu/memory/table_pages.hpp"
#include "gpummu/paging/page_table_node.hpp"
#include "gpummu/paging/tlb_batch.hpp"
#include "gpummu/paging/walker.hpp"

namespace gpummu {

struct MapOptions {
    PageSizeSet page_sizes{};  // empty: every size the page table allows; one size pins it
    bool replace = false;      // overwrite mapped pages instead of failing with already_mapped
};

struct PageTableConfig {
    // The chip's page sizes (architecture_record(...).page_sizes); 4 KiB is required.
    PageSizeSet page_sizes{PageSize::size_4k(), PageSize::size_64k(), PageSize::size_2m()};
    bool hub_only = false;  // a BAR address space: invalidates are hub-only
};

// A VA range whose entries an adopted root already held (see PageTable::with_root):
// `mapped` pages (or entries the page table does not change) are never touched; `sparse`
// ones may be mapped over and return to sparse, but are never cleared.
struct ForeignRange {
    u64 begin = 0;  // VA, inclusive
    u64 end = 0;    // VA, exclusive
    bool mapped = false;
    constexpr bool operator==(const ForeignRange &) const noexcept = default;
};

struct PageTableStats {
    std::array<u64, 8> tables_per_level{};  // by depth; big-page tables are not included
    u64 big_tables = 0;
    u64 retired_tables = 0;  // unlinked, waiting for flush
    u64 table_bytes = 0;     // 4096 per table (root included), 256 per big-page table
    u64 foreign_tables = 0;  // adopted tables below the root (in none of the above)
    [[nodiscard]] constexpr u64 tables() const noexcept
    {
        u64 total = big_tables;
        for (u64 count : tables_per_level) total += count;
        return total;
    }
};

template <MmuFormat F, TableMemory M, TablePageSource S>
class PageTable {
    static constexpr unsigned depth_count = static_cast<unsigned>(F::levels.size());
    static constexpr unsigned small_depth = depth_count - 1;  // the small-page table
    static constexpr unsigned dual_depth = depth_count - 2;   // PD0
    static constexpr unsigned chunk_pages = 16;               // 4 KiB pages per 64 KiB
    static constexpr unsigned big_entries = 32;
    static_assert(depth_count <= 8 && F::levels[dual_depth].dual);
    // Split and sparse dual entries are written with a zero high word.
    static_assert(F::DualPde::sparse().high() == 0);
    // A dual entry pointing at a big-page table only is linear in the table's address
    // within a 4 KiB page (whole_big_tables computes the sixteen tables of a page from
    // the first and a step): checked at 0, 1 GiB and the last page below 64 GiB.
    static constexpr bool big_pointers_step_within_a_page(u64 page) noexcept
    {
        auto word = [](u64 address) {
            auto pointer = F::DualPde::point_to({Aperture::video, PhysicalAddress{address}}, {});
            return pointer ? std::array<u64, 2>{pointer->low(), pointer->high()}
                           : std::array<u64, 2>{~u64{0}, ~u64{0}};
        };
        const auto first = word(page), second = word(page + 256);
        for (u64 i = 0; i < 16; ++i) {
            const auto table = word(page + 256 * i);
            if (table[0] != first[0] + i * (second[0] - first[0]) ||
                table[1] != first[1] + i * (second[1] - first[1]))
                return false;
        }
        return first[0] != ~u64{0};
    }
    static_assert(big_pointers_step_within_a_page(0) &&
                  big_pointers_step_within_a_page(u64{1} << 30) &&
                  big_pointers_step_within_a_page((u64{1} << 36) - 4096));

    enum class Operation : u8 { map, unmap, make_sparse, clear_sparse };
    enum class Kind : u8 { none, sparse, mapped, table };
    struct Content {
        Kind kind = Kind::none;
        bool underlay = false;  // mapped over a sparse range
    };
    enum class Step : u8 { skip, place, set_none, set_sparse, descend };
    struct Request {
        Operation operation = Operation::map;
        u64 begin = 0, end = 0;
        std::span<const PhysicalSegment> segments{};
        PageAttributes attributes{};
        PageSizeSet sizes{};
        bool replace = false;
        // The request's PTE for physical address 0 and the word increment
        // per 4 KiB: every PTE of the request is reference + (pages between) * step, since
        // the address field is linear and both ends of every segment were proven to encode.
        u64 reference_pte = 0;
        u64 reference_pa = 0;
        u64 step_4k = 0;
    };

public:
    using Format = F;

    // A prepared map: tables allocated, nothing written. Commit or cancel it.
    class [[nodiscard]] Prepared {
    public:
        Prepared(Prepared &&other) noexcept
            : request_(other.request_),
              prepared_(other.prepared_),
              owner_(std::exchange(other.owner_, nullptr))
        {
        }
        Prepared &operator=(Prepared &&) = delete;
        Prepared(const Prepared &) = delete;
        ~Prepared()
        {
#if GPUMMU_DEBUG
            if (owner_ != nullptr) detail::assertion_failure("PageTable::Prepared dropped");
#endif
        }

    private:
        friend class PageTable;
        Prepared(const Request &request, u32 prepared, const PageTable *owner) noexcept
            : request_(request),
              prepared_(prepared),
              owner_(owner)
        {
        }
        Request request_;
        u32 prepared_;
        const PageTable *owner_;
    };

    // A page table with a root page allocated from `pages`.
    [[nodiscard]] static Result<PageTable> create(M &memory, S &pages, PageTableStorage storage,
                                                  PageTableConfig config = {}) noexcept;

    // A page table over a root page the caller owns (for example the BAR1 root GSP made);
    // the root is never freed. A root that already holds entries is adopted: every table
    // below it is read (through the TableMemory) into the shadow as a foreign table, which
    // is never written but for entries this page table fills itself, and never retired or
    // freed. The VAs of the entries found are foreign ranges (foreign_ranges()): mapped
    // pages there are refused to every operation (Error::foreign_entry), sparse ones may be
    // mapped over (they return to sparse) but not cleared. Entries are accepted only in the
    // encodings this page table writes itself (so whatever it changes it restores word for
    // word); anything else, a pointer to a table outside VRAM or a table reached twice, is
    // malformed_record. Errors: also out_of_storage (nodes for the adopted tables, or more
    // than max_foreign_ranges ranges) and device errors of the reads.
    [[nodiscard]] static Result<PageTable> with_root(M &memory, S &pages, PageTableStorage storage,
                                                     VramAddress root,
                                                     PageTableConfig config = {}) noexcept;

    // A batch with nothing recorded, for this address space (to merge others into).
    [[nodiscard]] TlbBatch empty_batch() const noexcept
    {
        return TlbBatch(physical(nodes_[root_].page.address), Aperture::video, config_.hub_only);
    }

    static constexpr std::size_t max_foreign_ranges = 64;
    // The ranges an adopted root held, in the order found (VA order per table).
    [[nodiscard]] std::span<const ForeignRange> foreign_ranges() const noexcept
    {
        return std::span<const ForeignRange>(foreign_.data(), foreign_count_);
    }
    [[nodiscard]] bool adopted() const noexcept
    {
        return root_ != no_table_node && nodes_[root_].has(PageTableNode::foreign);
    }

    PageTable(PageTable &&) noexcept = default;
    PageTable &operator=(PageTable &&) noexcept = default;
    PageTable(const PageTable &) = delete;
    PageTable &operator=(const PageTable &) = delete;

    [[nodiscard]] TablePointer root() const noexcept
    {
        return {Aperture::video, physical(nodes_[root_].page.address)};
    }
    [[nodiscard]] PageSizeSet page_sizes() const noexcept
    {
        return config_.page_sizes;
    }

    // ---- worst cases, for callers that allocate ahead (bind jobs) -------------------------

    // The most tables one operation over `range` can add, whatever the tables hold when it
    // runs: one table per entry the range touches at every level below the root, and one
    // big-page table per PD0 entry. A map (with or without replace) may need all of them;
    // unmap, make_sparse and clear_sparse split a large page or a sparse entry only where
    // the range cuts it (its first and last entry at each level: at most two tables per
    // level) and descend into tables that exist elsewhere, but may add a big table to any
    // PD0 entry whose 64 KiB chunks fold. Directories need a child block each as well.
    struct TableNeeds {
        u64 directories = 0;   // 4 KiB tables with children (PD3..PD0)
        u64 small_tables = 0;  // 4 KiB tables of small PTEs
        u64 big_tables = 0;    // 256-byte tables of big PTEs
        [[nodiscard]] constexpr u64 pages() const noexcept { return directories + small_tables; }
        [[nodiscard]] constexpr u64 nodes() const noexcept
        {
            return directories + small_tables + big_tables;
        }
        // Counts `count` tables of the kind tables_at(..., depth) counts.
        constexpr void add(unsigned depth, u64 count) noexcept
        {
            if (depth == depth_count)
                big_tables += count;
            else if (depth == small_depth)
                small_tables += count;
            else
                directories += count;
        }
        constexpr TableNeeds &operator+=(const TableNeeds &other) noexcept
        {
            directories += other.directories;
            small_tables += other.small_tables;
            big_tables += other.big_tables;
            return *this;
        }
    };
    [[nodiscard]] static constexpr TableNeeds tables_needed(VirtualRange range, bool map) noexcept
    {
        TableNeeds needs;
        for (unsigned depth = 1; depth <= table_kinds; ++depth)
            needs.add(depth, tables_at(range, map, depth));
        return needs;
    }
    // The tables of one kind in that worst case: depth 1 .. depth_count - 1 are the tables
    // at that depth, table_kinds (= depth_count) stands for the big-page tables. Every count
    // is at most the tables whose VA the range touches, so for a list of operations the
    // smaller of their sum and tables_at(hull of the ranges, true, depth) bounds them all.
    static constexpr unsigned table_kinds = depth_count;
    [[nodiscard]] static constexpr u64 tables_at(VirtualRange range, bool map,
                                                 unsigned depth) noexcept
    {
        if (range.empty()) return 0;
        const u64 first = range.begin().value(), last = range.end().value() - 1;
        // Tables at `depth` hang from entries of depth - 1; big tables from PD0 entries.
        const unsigned shift = F::levels[depth == table_kinds ? dual_depth : depth - 1].va_low;
        const u64 touched = (last >> shift) - (first >> shift) + 1;
        return map || depth == table_kinds ? touched : std::min<u64>(touched, 2);
    }
    // Node slots and directory child blocks still free in the storage.
    [[nodiscard]] std::size_t spare_nodes() const noexcept
    {
        return spare_nodes_;
    }
    [[nodiscard]] std::size_t spare_child_blocks() const noexcept
    {
        return spare_children_;
    }

    // ---- mutations ---------------------------------------------------------------------

    // Maps `range` onto `segments` (in order, their sizes summing to the range's) with
    // `attributes` for every page; `attributes.address` is not used (the segments say
    // where): each segment's first and last page must encode in the format.
    [[nodiscard]] Result<Prepared> prepare_map(VirtualRange range,
                                               std::span<const PhysicalSegment> segments,
                                               const PageAttributes &attributes,
                                               MapOptions options = {}) noexcept;

    [[nodiscard]] Result<TlbBatch> commit(Prepared &&plan) noexcept;

    void cancel(Prepared &&plan) noexcept;

    [[nodiscard]] Result<TlbBatch> map(VirtualRange range,
                                       std::span<const PhysicalSegment> segments,
                                       const PageAttributes &attributes,
                                       MapOptions options = {}) noexcept;

    // One physically contiguous run starting at attributes.address.
    [[nodiscard]] Result<TlbBatch> map(VirtualRange range, const PageAttributes &attributes,
                                       MapOptions options = {}) noexcept;

    [[nodiscard]] Result<TlbBatch> unmap(VirtualRange range) noexcept;
    [[nodiscard]] Result<TlbBatch> make_sparse(VirtualRange range) noexcept;
    // The reverse of make_sparse: sparse pages in the range become invalid. Mapped pages in
    // the range are an error (already_mapped); pages that are neither are left alone.
    [[nodiscard]] Result<TlbBatch> clear_sparse(VirtualRange range) noexcept;

    // Finishes the batch, then frees every table unlinked since the last flush.
    template <TlbInvalidator T>
    [[nodiscard]] Result<void> flush(TlbBatch &batch, T &invalidator) noexcept
    {
        GPUMMU_TRY(batch.finish(invalidator));
        return release_retired(batch);
    }

    // Frees retired tables; `finished` proves the invalidate that covers them was done.
    [[nodiscard]] Result<void> release_retired(const TlbBatch &finished) noexcept;

    // The end of the table's life: frees the root page (unless the caller owns it) once
    // nothing is left below it. Preconditions, each an error that changes nothing
    // (invalid_argument / in_use): no prepared map outstanding, no retired table waiting
    // for a flush, and only the root left with every entry invalid (unmap and clear the
    // sparse ranges first, then flush); for an adopted root, no table of ours left and the
    // foreign tables' words exactly as adopted (a hash of them is compared). A page source
    // with release_spare_pages() (BuddyTablePages) is asked to give back the emptied pages
    // it keeps for reuse. Afterwards the table must not be used.
    [[nodiscard]] Result<void> release_root() noexcept;

    // ---- queries -----------------------------------------------------------------------

    // What the MMU would do with `va`. The directories are followed in the shadow (host
    // memory, no TableMemory reads); only a mapped page's PTE is read, for its address and
    // attributes: one read through the TableMemory at most.
    // How many 4 KiB pages of `range` return to sparse when unmapped: sparse pages and
    // mapped pages over a sparse range (from the shadow; 0 outside the format's VA).
    [[nodiscard]] u64 sparse_pages(VirtualRange range) const noexcept;

    [[nodiscard]] Result<Translation> translate(VirtualAddress va) const noexcept
    {
        if ((F::va_bits < 64) && (va.value() >> F::va_bits) != 0)
            return failure(Error::out_of_range);
        u32 node = root_;
        for (unsigned depth = 0; depth < dual_depth; ++depth) {
            const LevelDescriptor &level = F::levels[depth];
            const unsigned index = static_cast<unsigned>(level.index_of(va));
            const u32 child = child_at(node, index);
            if (!published(child))
                return leaf_translation(node, depth, index, level.entry_bytes, va, level.va_low,
                                        false);
            node = child;
        }
        const LevelDescriptor &pd0 = F::levels[dual_depth];
        const unsigned index = static_cast<unsigned>(pd0.index_of(va));
        const u32 big = child_at(node, index + 256), small = child_at(node, index);
        if (!published(big) && !published(small))
            return leaf_translation(node, dual_depth, index, 16, va, 21, true);
        if (published(big)) {
            const unsigned chunk = static_cast<unsigned>(F::big_page_table.index_of(va));
            const PageTableNode &table = nodes_[big];
            if (table.mapped.test(chunk) || table.sparse_backed.test(chunk))
                return leaf_translation(big, small_depth, chunk, 8, va, 16, false);
            if (((table.no_valid_4k >> chunk) & 1u) != 0 || !published(small))
                return Translation{TranslationState::unmapped, Level{static_cast<u8>(small_depth)}};
        }
        const unsigned page = static_cast<unsigned>(F::levels[small_depth].index_of(va));
        return leaf_translation(small, small_depth, page, 8, va, 12, false);
    }

    // The same answer from the VRAM words alone (the walker), as the MMU sees them.
    [[nodiscard]] Result<Translation> translate_from_memory(VirtualAddress va) const noexcept
    {
        return gpummu::translate<F>(*memory_, root(), va);
    }

    [[nodiscard]] const PageTableStats &stats() const noexcept
    {
        return stats_;
    }

    // Reads every table back and checks it against the shadow (see Invariants above).
    [[nodiscard]] Result<void> check_invariants() const noexcept;

private:
    PageTable(M &memory, S &pages, PageTableStorage storage, PageTableConfig config) noexcept
        : memory_(&memory),
          pages_(&pages),
          nodes_(storage.nodes),
          children_(storage.children),
          config_(config)
    {
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            nodes_[i] = PageTableNode{};
            nodes_[i].next = i + 1 < nodes_.size() ? static_cast<u32>(i + 1) : no_table_node;
        }
        free_nodes_ = nodes_.empty() ? no_table_node : 0;
        // Free blocks are kept empty: tables are unlinked before their directory is freed,
        // so allocate_node need not fill a block.
        for (std::size_t i = 0; i < children_.size(); ++i) {
            children_[i].node.fill(no_table_node);
            children_[i].present.clear_all();
            children_[i].next = i + 1 < children_.size() ? static_cast<u32>(i + 1) : no_table_node;
        }
        free_children_ = children_.empty() ? no_table_node : 0;
        spare_nodes_ = nodes_.size();
        spare_children_ = children_.size();
    }

    [[nodiscard]] Result<void> check_config() const noexcept
    {
        if (!config_.page_sizes.contains(PageSize::size_4k()))
            return failure(Error::invalid_argument);
        if (nodes_.size() >= no_table_node || children_.size() >= no_table_node)
            return failure(Error::invalid_argument);
        return success();
    }

    void finish_root(u32 node) noexcept
    {
        root_ = node;
        nodes_[node].flags &= static_cast<u8>(~PageTableNode::prepared);
        stats_.tables_per_level[0] = 1;
        stats_.table_bytes = 4096;
    }

    // ---- node pool ---------------------------------------------------------------------

    [[nodiscard]] Result<u32> allocate_node(unsigned depth, bool big) noexcept
    {
        const bool directory = !big && depth < small_depth;
        if (free_nodes_ == no_table_node) return failure(Error::out_of_storage);
        if (directory && free_children_ == no_table_node) return failure(Error::out_of_storage);
        u32 node = free_nodes_;
        free_nodes_ = nodes_[node].next;
        --spare_nodes_;
        // A free node is blank but for its link (create and free_node leave it so).
        GPUMMU_ASSERT(nodes_[node].flags == 0 && nodes_[node].live == 0 &&
                      nodes_[node].children == no_table_node);
        nodes_[node].next = no_table_node;
        nodes_[node].depth = static_cast<u8>(depth);
        nodes_[node].flags = static_cast<u8>(PageTableNode::in_use | PageTableNode::prepared |
                                             (big ? PageTableNode::big : 0));
        if (directory) {
            u32 block = free_children_;
            free_children_ = children_[block].next;
            --spare_children_;
            GPUMMU_ASSERT(children_[block].present.none());  // empty: no fill needed
            nodes_[node].children = block;
        }
        return node;
    }

    void free_node(u32 node) noexcept
    {
        if (nodes_[node].children != no_table_node) {
            PageTableChildren &block = children_[nodes_[node].children];
            GPUMMU_ASSERT(block.present.none());  // blocks go back empty (unlink_children)
            block.next = free_children_;
            free_children_ = nodes_[node].children;
            ++spare_children_;
        }
        nodes_[node].reset();
        nodes_[node].next = free_nodes_;
        free_nodes_ = node;
        ++spare_nodes_;
    }

    // Links `child` (or no_table_node: unlinks) at `slot` of directory `node`.
    void set_child(u32 node, unsigned slot, u32 child) noexcept
    {
        PageTableChildren &block = children_[nodes_[node].children];
        block.node[slot] = child;
        block.present.assign(slot, child != no_table_node);
    }
    // Unlinks every table linked below directory `node`, in slot order, handing each to
    // `visit`; the block is left empty (it may go back on the free list).
    template <class Visit>
    void unlink_children(u32 node, Visit &&visit) noexcept
    {
        if (nodes_[node].children == no_table_node) return;
        PageTableChildren &block = children_[nodes_[node].children];
        for (unsigned word = 0; word < EntryBits::capacity / 64; ++word) {
            for (u64 bits = block.present.word(word); bits != 0; bits &= bits - 1) {
                const unsigned slot = word * 64 + static_cast<unsigned>(std::countr_zero(bits));
                visit(std::exchange(block.node[slot], no_table_node));
            }
        }
        block.present.clear_all();
    }
    // Unlinks the table at `slot` of `node` and returns it (or no_table_node).
    [[nodiscard]] u32 take_child(u32 node, unsigned slot) noexcept
    {
        const u32 child = child_at(node, slot);
        set_child(node, slot, no_table_node);
        return child;
    }
    [[nodiscard]] u32 child_at(u32 node, unsigned slot) const noexcept
    {
        return children_[nodes_[node].children].node[slot];
    }
    // No table below entries [first, first + count) of `node` (children slots; a dual
    // entry's big-page table is at slot index + 256). Callers ask at every entry of a walk.
    [[nodiscard]] bool no_children(u32 node, unsigned first, unsigned count) const noexcept
    {
        return !children_[nodes_[node].children].present.any(first, count);
    }
    [[nodiscard]] bool published(u32 node) const noexcept
    {
        return node != no_table_node && !nodes_[node].has(PageTableNode::prepared);
    }

    // Allocates a blank table for entry `slot` of `parent` and links it in the shadow only.
    [[nodiscard]] Result<u32> attach_prepared(u32 parent, unsigned slot, unsigned depth,
                                              bool big) noexcept
    {
        auto node = allocate_node(depth, big);
        if (!node) return failure(node.error());
        auto page =
            pages_->allocate_table(big ? TableSize::big_page : TableSize::small_page_or_directory);
        if (!page) {
            free_node(*node);
            return failure(page.error());
        }
        PageTableNode &record = nodes_[*node];
        record.page = *page;
        record.parent = parent;
        record.parent_index = static_cast<u16>(slot);
        record.next = prepared_head_;
        prepared_head_ = *node;
        set_child(parent, slot, *node);
        return *node;
    }

    // Pages the source keeps for reuse go back to the buddy with the table (release_root).
    void release_spare_pages() noexcept
    {
        if constexpr (requires(S & source) { source.release_spare_pages(); })
            pages_->release_spare_pages();
    }

    // Frees prepared tables, newest first (the list is in that order). A page source with
    // take_back() puts each page back where it came from, so a refusal leaves the source
    // (its spare pages, the buddy) as it was (a cancel too, unless tables were freed into
    // the source between its prepare and the cancel).
    void release_prepared(u32 head) noexcept
    {
        while (head != no_table_node) {
            PageTableNode &record = nodes_[head];
            u32 next = record.next;
            set_child(record.parent, record.parent_index, no_table_node);
            // A blank table is all zero: it goes back as known-zero memory.
            if constexpr (requires(S & source, TablePage page) { source.take_back(page); })
                (void)pages_->take_back(record.page);
            else
                (void)pages_->free_table(record.page, true);
            free_node(head);
            head = next;
        }
    }

    // ---- requests ----------------------------------------------------------------------

    [[nodiscard]] static Result<void> validate_range(VirtualRange range, Request &request) noexcept
    {
        if (range.empty()) return failure(Error::invalid_argument);
        if (!range.begin().is_aligned_to(PageSize::size_4k()) ||
            (range.size() & PageSize::size_4k().offset_mask()) != 0)
            return failure(Error::misaligned);
        if ((F::va_bits < 64) && range.end().value() > (u64{1} << F::va_bits))
            return failure(Error::out_of_range);
        request.begin = range.begin().value();
        request.end = range.end().value();
        return success();
    }

    [[nodiscard]] Result<void> validate_map(Request &request, MapOptions options) const noexcept
    {
        const PageSizeSet wanted =
            options.page_sizes.empty() ? config_.page_sizes : options.page_sizes;
        if ((wanted.bits() & ~config_.page_sizes.bits()) != 0)
            return failure(Error::page_size_not_supported);
        request.sizes = wanted;
        if (request.attributes.aperture == Aperture::invalid)
            return failure(Error::invalid_aperture);
        u64 total = 0;
        for (const PhysicalSegment &segment : request.segments) {
            if (segment.size == 0) return failure(Error::invalid_argument);
            if (!segment.address.is_aligned_to(PageSize::size_4k()) ||
                (segment.size & PageSize::size_4k().offset_mask()) != 0)
                return failure(Error::misaligned);
            auto last = checked_add(segment.address.value(), segment.size - 4096);
            if (!last) return failure(Error::arithmetic_overflow);
            // The address field is linear: if the first and last page encode, every page
            // between them does.
            PageAttributes probe = request.attributes;  // its own address is not used
            probe.address = segment.address;
            GPUMMU_TRY(F::Pte::map(probe));
            probe.address = PhysicalAddress{*last};
            GPUMMU_TRY(F::Pte::map(probe));
            auto sum = checked_add(total, segment.size);
            if (!sum) return failure(Error::arithmetic_overflow);
            total = *sum;
        }
        if (total != request.end - request.begin) return failure(Error::invalid_argument);
        // Physical pages 0 and 1 encode in every aperture: the reference and the step.
        PageAttributes reference = request.attributes;
        reference.address = PhysicalAddress{0};
        auto reference_pte = F::Pte::map(reference);
        if (!reference_pte) return failure(reference_pte.error());
        request.reference_pte = reference_pte->raw();
        request.reference_pa = 0;
        request.step_4k = pte_step(*reference_pte, 4096);
        return success();
    }

    [[nodiscard]] Result<TlbBatch> change(VirtualRange range, Operation operation) noexcept
    {
        if (plan_outstanding_) return failure(Error::invalid_argument);
        Request request;
        request.operation = operation;
        GPUMMU_TRY(validate_range(range, request));
        GPUMMU_TRY(check_foreign(request));
        auto prepared = run_prepare(request);
        if (!prepared) return failure(prepared.error());
        return run_commit(request);
    }

    [[nodiscard]] Result<u32> run_prepare(const Request &request) noexcept
    {
        request_ = request;
        reset_cursor();
        prepared_head_ = no_table_node;
        auto visited = visit<false>(root_, 0, request.begin, request.end, Content{});
        u32 head = std::exchange(prepared_head_, no_table_node);
        if (!visited) {
            release_prepared(head);
            return failure(visited.error());
        }
        return head;
    }

    [[nodiscard]] Result<TlbBatch> run_commit(const Request &request) noexcept
    {
        request_ = request;
        reset_cursor();
        TlbBatch batch(root().address, Aperture::video, config_.hub_only);
        batch_ = &batch;
        auto visited = visit<true>(root_, 0, request.begin, request.end, Content{});
        batch_ = nullptr;
        if (!visited) {
            batch.abandon();  // device error: the range is undefined, say so to the caller
            return failure(visited.error());
        }
        return batch;
    }

    // ---- the physical cursor (VA -> PA for the map being processed) ---------------------

    void reset_cursor() noexcept
    {
        segment_ = 0;
        segment_va_ = request_.begin;
    }
    // Moves the cursor to the segment holding `va` (forwards or backwards).
    void seek(u64 va) noexcept
    {
        while (va < segment_va_) segment_va_ -= request_.segments[--segment_].size;
        while (va - segment_va_ >= request_.segments[segment_].size)
            segment_va_ += request_.segments[segment_++].size;
    }
    [[nodiscard]] PhysicalAddress physical_at(u64 va) noexcept
    {
        seek(va);
        return request_.segments[segment_].address + (va - segment_va_);
    }
    // Bytes physically contiguous from `va` (adjacent segments join), up to `need`.
    [[nodiscard]] u64 contiguous_at(u64 va, u64 need) noexcept
    {
        seek(va);
        std::size_t index = segment_;
        u64 run = request_.segments[index].size - (va - segment_va_);
        PhysicalAddress end = request_.segments[index].address + request_.segments[index].size;
        while (run < need && index + 1 < request_.segments.size() &&
               request_.segments[index + 1].address == end) {
            ++index;
            run += request_.segments[index].size;
            end = request_.segments[index].address + request_.segments[index].size;
        }
        return run;
    }
    [[nodiscard]] bool page_fits(PageSize size, u64 va) noexcept
    {
        if (request_.operation != Operation::map || !request_.sizes.contains(size)) return false;
        if ((va & size.offset_mask()) != 0) return false;
        if (!physical_at(va).is_aligned_to(size)) return false;
        return contiguous_at(va, size.bytes()) >= size.bytes();
    }
    [[nodiscard]] typename F::Pte pte_at(u64 va) noexcept
    {
        const u64 pages = (physical_at(va).value() - request_.reference_pa) >> 12;
        return F::Pte::from_raw(request_.reference_pte + pages * request_.step_4k);
    }
    // The request's PTE word increment for pages of `bytes`.
    [[nodiscard]] u64 request_step(u64 bytes) const noexcept
    {
        return (bytes >> 12) * request_.step_4k;
    }
    // The PTE word increment from one page of `bytes` to the next (the address field is
    // linear in the physical address).
    [[nodiscard]] static u64 pte_step(typename F::Pte first, u64 bytes) noexcept
    {
        PageAttributes next = first.attributes();
        next.address = next.address + bytes;
        auto pte = F::Pte::map(next);
        return pte ? pte->raw() - first.raw() : 0;
    }

    // ---- decisions shared by both phases -------------------------------------------------

    [[nodiscard]] Result<Step> decide(Content content, bool full, bool fits) const noexcept
    {
        switch (request_.operation) {
        case Operation::map:
            if (content.kind == Kind::table) return Step::descend;
            if (content.kind == Kind::mapped && !request_.replace)
                return failure(Error::already_mapped);
            return full && fits ? Step::place : Step::descend;
        case Operation::unmap:
            if (content.kind == Kind::table) return Step::descend;
            if (content.kind != Kind::mapped) return failure(Error::not_mapped);
            if (!full) return Step::descend;
            return content.underlay ? Step::set_sparse : Step::set_none;
        case Operation::make_sparse:
            if (content.kind == Kind::table) return Step::descend;
            if (content.kind == Kind::mapped) return failure(Error::already_mapped);
            if (content.kind == Kind::sparse) return Step::skip;
            return full ? Step::set_sparse : Step::descend;
        case Operation::clear_sparse:
            if (content.kind == Kind::table) return Step::descend;
            if (content.kind == Kind::mapped) return failure(Error::already_mapped);
            if (content.kind == Kind::none) return Step::skip;
            return full ? Step::set_none : Step::descend;
        }
        return failure(Error::invalid_argument);
    }

    // Content of entry `index` of `node` from the shadow; prepared children are not content.
    [[nodiscard]] Content shadow_content(u32 node, unsigned index, bool dual) const noexcept
    {
        const PageTableNode &record = nodes_[node];
        if (published(child_at(node, index)) || (dual && published(child_at(node, index + 256))))
            return {Kind::table, false};
        if (record.mapped.test(index)) return {Kind::mapped, record.sparse_backed.test(index)};
        if (record.sparse_backed.test(index)) return {Kind::sparse, true};
        return {};
    }
    // In the prepare phase a table allocated by this prepare is blank in the shadow: its
    // entries inherit what the entry above held (a split large page or sparse entry).
    template <bool commit>
    [[nodiscard]] Content content_of(u32 node, unsigned index, bool dual,
                                     Content inherited) const noexcept
    {
        if constexpr (!commit)
            if (nodes_[node].has(PageTableNode::prepared)) return inherited;
        return shadow_content(node, index, dual);
    }

    // ---- entry writes (commit phase) -----------------------------------------------------

    [[nodiscard]] VramAddress entry_address(u32 node, unsigned index,
                                            unsigned entry_bytes) const noexcept
    {
        return nodes_[node].page.address + u64{index} * entry_bytes;
    }
    [[nodiscard]] Result<void> write_entry(u32 node, unsigned depth, unsigned index, u64 low,
                                           u64 high = 0) noexcept
    {
        const LevelDescriptor &level = F::levels[depth];
        std::array<u64, 2> words{low, high};
        return memory_->write(entry_address(node, index, level.entry_bytes),
                              std::span<const u64>(words.data(), level.dual ? 2 : 1));
    }
    // words[i] = first + i * step at `at`, count words.
    [[nodiscard]] Result<void> write_run(VramAddress at, u64 first, u64 step,
                                         std::size_t count) noexcept
    {
        if constexpr (SequenceTableMemory<M>) {
            return memory_->write_sequence(at, first, step, count);
        } else {
            std::array<u64, 512> stage;
            while (count != 0) {
                std::size_t take = std::min<std::size_t>(count, stage.size());
                for (std::size_t i = 0; i < take; ++i, first += step) stage[i] = first;
                GPUMMU_TRY(memory_->write(at, std::span<const u64>(stage.data(), take)));
                at = at + take * sizeof(u64);
                count -= take;
            }
            return success();
        }
    }
    // `count` consecutive entries at a directory level from `first` PTE word stepping by
    // `step` (dual entries get a zero high word).
    [[nodiscard]] Result<void> write_entries(u32 node, unsigned depth, unsigned index, u64 first,
                                             u64 step, unsigned count) noexcept
    {
        const LevelDescriptor &level = F::levels[depth];
        if (!level.dual) return write_run(entry_address(node, index, 8), first, step, count);
        if constexpr (PairSequenceTableMemory<M>)
            return memory_->write_pair_sequence(entry_address(node, index, 16), first, step, 0,
                                                count);
        std::array<u64, 512> stage;
        for (unsigned i = 0; i < count; ++i, first += step) {
            stage[2 * i] = first;
            stage[2 * i + 1] = 0;
        }
        return memory_->write(entry_address(node, index, 16),
                              std::span<const u64>(stage.data(), 2 * std::size_t{count}));
    }

    [[nodiscard]] static u64 pointer_word(const PageTableNode &table) noexcept
    {
        auto pde = F::Pde::point_to({Aperture::video, physical(table.page.address)});
        GPUMMU_ASSERT(pde.has_value());
        return pde ? pde->raw() : 0;
    }

    // Fills a just-allocated table under entry `index` of `parent` with the entries that
    // reproduce `content` (a large page or a sparse entry being split), then points the
    // entry at it. The table is written completely before the parent points to it.
    [[nodiscard]] Result<void> materialize(u32 parent, unsigned index, u32 child,
                                           Content content) noexcept
    {
        const unsigned depth = nodes_[parent].depth;
        PageTableNode &table = nodes_[child];
        const LevelDescriptor &below = F::levels[depth + 1];
        const unsigned entries = static_cast<unsigned>(below.entry_count());
        if (content.kind == Kind::sparse) {
            if (below.dual)
                GPUMMU_TRY(
                    write_entries(child, depth + 1, 0, F::DualPde::sparse().low(), 0, entries));
            else
                GPUMMU_TRY(write_run(table.page.address, F::Pde::sparse().raw(), 0, entries));
        } else if (content.kind == Kind::mapped) {
            std::array<u64, 1> word{};
            GPUMMU_TRY(
                memory_->read(entry_address(parent, index, F::levels[depth].entry_bytes), word));
            typename F::Pte large = F::Pte::from_raw(word[0]);
            PageAttributes attributes = large.attributes();
            auto first = F::Pte::map(attributes);
            if (!first) return failure(Error::malformed_record);
            GPUMMU_TRY(write_entries(child, depth + 1, 0, first->raw(),
                                     pte_step(*first, below.entry_coverage()), entries));
        }
        if (content.kind != Kind::none) {
            table.sparse_backed.assign(0, entries,
                                       content.kind == Kind::sparse || content.underlay);
            table.mapped.assign(0, entries, content.kind == Kind::mapped);
            table.live = static_cast<u16>(entries);
        }
        table.flags &= static_cast<u8>(~PageTableNode::prepared);
        GPUMMU_TRY(write_entry(parent, depth, index, pointer_word(table)));
        publish_counts(table, parent, index, content);
        batch_->record_write(Level{static_cast<u8>(depth)});
        return success();
    }

    void publish_counts(const PageTableNode &table, u32 parent, unsigned index,
                        Content content) noexcept
    {
        PageTableNode &above = nodes_[parent];
        if (content.kind == Kind::none) ++above.live;
        above.mapped.clear(index);
        above.sparse_backed.clear(index);
        if (table.has(PageTableNode::big)) {
            ++stats_.big_tables;
            stats_.table_bytes += 256;
        } else {
            ++stats_.tables_per_level[table.depth];
            stats_.table_bytes += 4096;
        }
    }

    void retire(u32 node) noexcept
    {
        PageTableNode &table = nodes_[node];
        GPUMMU_ASSERT(!table.has(PageTableNode::foreign));
        table.flags |= PageTableNode::retired;
        table.next = retired_;
        retired_ = node;
        ++stats_.retired_tables;
        if (table.has(PageTableNode::big)) {
            --stats_.big_tables;
            stats_.table_bytes -= 256;
        } else {
            --stats_.tables_per_level[table.depth];
            stats_.table_bytes -= 4096;
        }
    }

    // ---- the walk ----------------------------------------------------------------------

    template <bool commit>
    [[nodiscard]] Result<void> visit(u32 node, unsigned depth, u64 begin, u64 end,
                                     Content inherited) noexcept
    {
        const LevelDescriptor &level = F::levels[depth];
        const u64 coverage = level.entry_coverage();
        EntryRun run;  // large pages placed here, written together
        for (u64 entry = align_down(begin, coverage); entry < end; entry += coverage) {
            const unsigned index = static_cast<unsigned>(level.index_of(VirtualAddress{entry}));
            const u64 first = std::max(begin, entry), last = std::min(end, entry + coverage);
            const bool full = first == entry && last == entry + coverage;
            if (full && level.may_hold_pte() &&
                (request_.operation == Operation::map || request_.operation == Operation::unmap)) {
                auto placed = whole_run<commit>(node, depth, index, entry, end, inherited);
                if (!placed) return failure(placed.error());
                if (*placed != 0) {
                    entry += (*placed - 1) * coverage;  // the loop adds the last one
                    continue;
                }
            }
            if (full && level.dual && may_start_big_run<commit>(node, index)) {
                auto done =
                    whole_big_tables<commit>(node, depth, index, entry, end, inherited, run);
                if (!done) return failure(done.error());
                if (*done != 0) {
                    entry += (*done - 1) * coverage;
                    continue;
                }
            }
            const Content content = content_of<commit>(node, index, level.dual, inherited);
            bool fits = false;
            if (full && level.may_hold_pte()) {
                const PageSize size = PageSize::from_shift(level.va_low).value();
                if (content.kind != Kind::table) {
                    fits = page_fits(size, entry);
                } else if (request_.operation == Operation::map &&
                           (request_.sizes.bits() & (size.bytes() - 1)) == 0 &&
                           page_fits(size, entry)) {
                    // No smaller page is allowed: descending could only fail. The large
                    // page takes the place of the tables below (see place_over).
                    if constexpr (!commit)
                        GPUMMU_TRY(check_cover(node, depth, index));
                    else
                        GPUMMU_TRY(place_over(node, depth, index, entry));
                    continue;
                }
            }
            auto step = decide(content, full, fits);
            if (!step) return failure(step.error());
            if constexpr (commit) {
                if (*step == Step::place) {
                    GPUMMU_TRY(set_entry(node, depth, index, entry, content, *step, &run));
                    continue;
                }
                GPUMMU_TRY(flush_run(node, depth, run));  // writes stay in VA order
            }
            if (*step == Step::descend) {
                if (level.dual)
                    GPUMMU_TRY(visit_dual<commit>(node, depth, index, entry, first, last, content));
                else
                    GPUMMU_TRY(descend<commit>(node, depth, index, first, last, content));
                continue;
            }
            if constexpr (commit) GPUMMU_TRY(set_entry(node, depth, index, entry, content, *step));
        }
        if constexpr (commit) GPUMMU_TRY(flush_run(node, depth, run));
        return success();
    }

    // ---- a large page over the tables of an entry ---------------------------------------
    // A map whose page sizes leave out everything smaller than an entry's page (say 2 MiB
    // pages only) over an entry that holds tables: the page replaces the tables, which
    // are retired whole. Their mapped pages must be replaceable (already_mapped without
    // replace) and what the pages return to when the large page goes must be one thing
    // for the whole entry (every page sparse, or none), since one entry records it;
    // otherwise no page of the allowed sizes can stand there (misaligned). Foreign
    // tables are never retired (foreign_entry).
    struct Underlay {
        u64 sparse_pages = 0;  // 4 KiB pages that are sparse, or sparse beneath a mapping
        bool mapped = false;   // some page is mapped
        bool foreign = false;  // a foreign table lies below
    };
    // Adds what entry `index` of `node` (at `depth`) holds, through its tables.
    void count_underlay(u32 node, unsigned depth, unsigned index, Underlay &count) const noexcept
    {
        const LevelDescriptor &level = F::levels[depth];
        const PageTableNode &table = nodes_[node];
        if (level.dual) {
            const u32 big = child_at(node, index + 256), small = child_at(node, index);
            const bool has_big = published(big), has_small = published(small);
            if (has_big || has_small) {
                count.foreign = count.foreign ||
                                (has_big && nodes_[big].has(PageTableNode::foreign)) ||
                                (has_small && nodes_[small].has(PageTableNode::foreign));
                for (unsigned chunk = 0; chunk < big_entries; ++chunk) {
                    const unsigned first = chunk * chunk_pages;
                    const u64 small_sparse =
                        has_small ? nodes_[small].sparse_backed.count(first, chunk_pages) : 0;
                    if (has_big && nodes_[big].mapped.test(chunk)) {
                        count.mapped = true;
                        count.sparse_pages +=
                            nodes_[big].sparse_backed.test(chunk) ? chunk_pages : small_sparse;
                    } else if (has_big && nodes_[big].sparse_backed.test(chunk)) {
                        count.sparse_pages += chunk_pages;
                    } else {
                        count.mapped = count.mapped ||
                                       (has_small && nodes_[small].mapped.any(first, chunk_pages));
                        count.sparse_pages += small_sparse;
                    }
                }
                return;
            }
        } else if (const u32 child = child_at(node, index); published(child)) {
            count.foreign = count.foreign || nodes_[child].has(PageTableNode::foreign);
            const unsigned entries = static_cast<unsigned>(F::levels[depth + 1].entry_count());
            for (unsigned i = 0; i < entries; ++i) count_underlay(child, depth + 1, i, count);
            return;
        }
        const u64 pages = level.entry_coverage() >> 12;
        count.mapped = count.mapped || table.mapped.test(index);
        if (table.sparse_backed.test(index)) count.sparse_pages += pages;
    }
    // sparse_pages() for [begin, end) inside the table `node` at `depth`.
    [[nodiscard]] u64 sparse_pages_below(u32 node, unsigned depth, u64 begin,
                                         u64 end) const noexcept
    {
        const LevelDescriptor &level = F::levels[depth];
        const u64 coverage = level.entry_coverage();
        u64 total = 0;
        for (u64 entry = align_down(begin, coverage); entry < end; entry += coverage) {
            const unsigned index = static_cast<unsigned>(level.index_of(VirtualAddress{entry}));
            const u64 first = std::max(begin, entry), last = std::min(end, entry + coverage);
            if (first == entry && last == entry + coverage) {
                Underlay count;
                count_underlay(node, depth, index, count);
                total += count.sparse_pages;
                continue;
            }
            if (level.dual) {
                const u32 big = child_at(node, index + 256), small = child_at(node, index);
                const bool has_big = published(big), has_small = published(small);
                if (has_big || has_small) {
                    for (u64 va = first; va < last; va += 4096) {
                        const unsigned page = static_cast<unsigned>((va - entry) >> 12);
                        const unsigned chunk = page / chunk_pages;
                        const bool small_sparse =
                            has_small && nodes_[small].sparse_backed.test(page);
                        bool sparse = small_sparse;
                        if (has_big && nodes_[big].mapped.test(chunk))
                            sparse = nodes_[big].sparse_backed.test(chunk) || small_sparse;
                        else if (has_big && nodes_[big].sparse_backed.test(chunk))
                            sparse = true;
                        if (sparse) ++total;
                    }
                    continue;
                }
            } else if (const u32 child = child_at(node, index); published(child)) {
                total += sparse_pages_below(child, depth + 1, first, last);
                continue;
            }
            if (nodes_[node].sparse_backed.test(index)) total += (last - first) >> 12;
        }
        return total;
    }
    [[nodiscard]] Result<bool> covered_underlay(u32 node, unsigned depth,
                                                unsigned index) const noexcept
    {
        Underlay count;
        count_underlay(node, depth, index, count);
        const u64 pages = F::levels[depth].entry_coverage() >> 12;
        if (count.foreign) return failure(Error::foreign_entry);
        if (count.mapped && !request_.replace) return failure(Error::already_mapped);
        if (count.sparse_pages != 0 && count.sparse_pages != pages)
            return failure(Error::misaligned);
        return count.sparse_pages == pages;
    }
    [[nodiscard]] Result<void> check_cover(u32 node, unsigned depth, unsigned index) const noexcept
    {
        auto underlay = covered_underlay(node, depth, index);
        if (!underlay) return failure(underlay.error());
        return success();
    }
    [[nodiscard]] Result<void> place_over(u32 node, unsigned depth, unsigned index, u64 va) noexcept
    {
        auto underlay = covered_underlay(node, depth, index);
        if (!underlay) return failure(Error::invalid_argument);  // prepare checked it
        // One write swaps the pointer for the page: the MMU no longer reaches the tables.
        GPUMMU_TRY(write_entry(node, depth, index, pte_at(va).raw()));
        for (unsigned slot : {index, index + 256}) {
            if (slot != index && !F::levels[depth].dual) continue;
            const u32 child = take_child(node, slot);
            if (child != no_table_node) retire_subtree(child);
        }
        nodes_[node].mapped.set(index);
        nodes_[node].sparse_backed.assign(index, *underlay);
        batch_->record_downgrade(Level{static_cast<u8>(depth)});
        return success();
    }
    // Retires `table` and every table below it; their words are left as they are.
    void retire_subtree(u32 table) noexcept
    {
        unlink_children(table, [this](u32 child) { retire_subtree(child); });
        nodes_[table].flags |= PageTableNode::folded;  // not zero
        retire(table);
    }

    // A run of whole entries of one directory table that a map fills with large pages, or
    // an unmap empties, in one go, without the per-entry decisions. A map: every entry of
    // the run empty (or, with replace, every one a large page), the physical memory
    // contiguous and aligned for the page. An unmap: every entry a large page, with nothing
    // beneath any of them or sparse beneath all (they become invalid, or sparse). No table
    // below any entry. Returns the entries done (0: not such a run, the caller decides entry
    // by entry). The prepare phase has nothing to do for them.
    template <bool commit>
    [[nodiscard]] Result<u64> whole_run(u32 node, unsigned depth, unsigned index, u64 entry,
                                        u64 end, Content inherited) noexcept
    {
        const LevelDescriptor &level = F::levels[depth];
        const bool map = request_.operation == Operation::map;
        const PageSize size = PageSize::from_shift(level.va_low).value();
        if (map && !request_.sizes.contains(size)) return u64{0};
        const u64 coverage = level.entry_coverage();
        u64 count = std::min<u64>((end - entry) / coverage, level.entry_count() - index);
        if (map) {
            if (count < 2 || !physical_at(entry).is_aligned_to(size)) return u64{0};
            count = std::min<u64>(count, contiguous_at(entry, count * coverage) / coverage);
        }
        if (count < 2) return u64{0};
        PageTableNode &table = nodes_[node];
        const unsigned first = index, entries = static_cast<unsigned>(count);
        const bool fresh = !commit && table.has(PageTableNode::prepared);
        if (fresh && (!map || inherited.kind != Kind::none)) return u64{0};
        bool mapped = false, sparse = false;
        if (!fresh) {
            if (!no_children(node, first, entries) ||
                (level.dual && !no_children(node, first + 256, entries)))
                return u64{0};
            mapped = table.mapped.any(first, entries);
            sparse = table.sparse_backed.any(first, entries);
            if (mapped && !table.mapped.all(first, entries)) return u64{0};
            if (map ? sparse || (mapped && !request_.replace)
                    : !mapped || (sparse && !table.sparse_backed.all(first, entries)))
                return u64{0};
        }
        if constexpr (commit) {
            const u64 word = map          ? pte_at(entry).raw()
                             : !sparse    ? 0
                             : level.dual ? F::DualPde::sparse().low()
                                          : F::Pde::sparse().raw();
            GPUMMU_TRY(
                write_entries(node, depth, first, word, map ? request_step(coverage) : 0, entries));
            const Level at{static_cast<u8>(depth)};
            if (map && !mapped) {
                table.mapped.assign(first, entries, true);
                table.live = static_cast<u16>(table.live + entries);
                batch_->record_write(at);
            } else {
                if (!map) table.mapped.assign(first, entries, false);
                if (!map && !sparse) table.live = static_cast<u16>(table.live - entries);
                batch_->record_downgrade(at);
            }
        }
        return count;
    }
    // Consecutive large pages of one directory table, written as one run (one memory call
    // instead of one per entry: a 1 GiB map of 2 MiB pages is 512 of them).
    struct EntryRun {
        static constexpr unsigned capacity = 64;
        unsigned first = 0;
        unsigned count = 0;
        // Low (and high, for dual entries) words; the first 2 * count hold them. Zeroed
        // although only those are read: left uninitialized, 1 GiB maps of 4 KiB pages on
        // MMU v2 measured 35% slower (93 -> 131 us, g++ 12 -O3; cause not found), against
        // 0.1 us saved per 2 MiB walk.
        std::array<u64, 2 * capacity> words{};
    };
    [[nodiscard]] Result<void> flush_run(u32 node, unsigned depth, EntryRun &run) noexcept
    {
        if (run.count == 0) return success();
        const LevelDescriptor &level = F::levels[depth];
        const unsigned per_entry = level.dual ? 2u : 1u;
        const unsigned count = std::exchange(run.count, 0u);
        return memory_->write(entry_address(node, run.first, level.entry_bytes),
                              std::span<const u64>(run.words.data(), count * per_entry));
    }

    // Adds entry `index` (low word `word`, high word `high`) to `run`, writing the run first when
    // the entry does not follow it or it is full.
    [[nodiscard]] Result<void> stage_entry(u32 node, unsigned depth, EntryRun &run, unsigned index,
                                           u64 word, u64 high = 0) noexcept
    {
        if (run.count != 0 && (index != run.first + run.count || run.count == EntryRun::capacity))
            GPUMMU_TRY(flush_run(node, depth, run));
        if (run.count == 0) run.first = index;
        if (F::levels[depth].dual) {
            run.words[2 * run.count] = word;
            run.words[2 * run.count + 1] = high;
        } else {
            run.words[run.count] = word;
        }
        ++run.count;
        return success();
    }

    // A run of whole dual entries (PD0) of 64 KiB pages, done without visit_dual's per-chunk
    // decisions (nothing is split, folded or left beneath):
    //   fresh (a map over empty entries: no content, no table): prepare attaches one
    //     big-page table per entry; commit writes its 32 PTEs, then the entries point at
    //     them (the tables are complete before anything points at them).
    //   remap (a map with replace over entries holding only a big-page table of 32 mapped
    //     64 KiB pages, nothing sparse beneath: a protect, a rebind, a move): commit rewrites
    //     the PTEs in place.
    //   unmap (the same entries): commit writes the entries invalid and retires the tables
    //     (freed after the flush, as not known to be zero).
    // A map needs 64 KiB pages allowed, the physical memory contiguous over the run and
    // 64 KiB aligned, and (fresh) no 2 MiB page fitting: the caller places those. Returns
    // the entries done (0: not such a run; the caller decides entry by entry). `before`:
    // the caller's pending run of large pages, written first.
    enum class BigRunEntry : u8 { other, fresh, live };
    template <bool commit>
    [[nodiscard]] BigRunEntry big_run_entry(u32 node, unsigned index,
                                            bool fresh_directory) const noexcept
    {
        if (fresh_directory) return BigRunEntry::fresh;  // a table this prepare made: empty
        const PageTableNode &table = nodes_[node];
        if (table.mapped.test(index) || table.sparse_backed.test(index) ||
            child_at(node, index) != no_table_node)
            return BigRunEntry::other;
        const u32 big = child_at(node, index + 256);
        // Before prepare a fresh entry has no table; at commit, the one prepare attached.
        if (big == no_table_node) return commit ? BigRunEntry::other : BigRunEntry::fresh;
        if (!published(big)) return commit ? BigRunEntry::fresh : BigRunEntry::other;
        return whole_big_table(big) ? BigRunEntry::live : BigRunEntry::other;
    }
    template <bool commit>
    [[nodiscard]] GPUMMU_NOINLINE Result<u64>
    whole_big_tables(u32 node, unsigned depth, unsigned index, u64 entry, u64 end,
                     Content inherited, EntryRun &before) noexcept
    {
        const LevelDescriptor &level = F::levels[depth];
        const u64 coverage = level.entry_coverage();
        const PageSize big_page = PageSize::size_64k();
        const bool map = request_.operation == Operation::map;
        if (map ? !request_.sizes.contains(big_page) : request_.operation != Operation::unmap)
            return u64{0};
        const bool fresh_directory = !commit && nodes_[node].has(PageTableNode::prepared);
        if (fresh_directory && (!map || inherited.kind != Kind::none)) return u64{0};
        // The entries of the first one's kind (their state first: it is cheap).
        const BigRunEntry kind = big_run_entry<commit>(node, index, fresh_directory);
        if (kind == BigRunEntry::other || (kind == BigRunEntry::fresh && !map) ||
            (kind == BigRunEntry::live && map && !request_.replace))
            return u64{0};
        const u64 count = std::min<u64>((end - entry) / coverage, level.entry_count() - index);
        unsigned entries = 1;
        while (entries < count &&
               big_run_entry<commit>(node, index + entries, fresh_directory) == kind)
            ++entries;
        if (map) {
            if (!physical_at(entry).is_aligned_to(big_page) ||
                (kind == BigRunEntry::fresh &&
                 page_fits(PageSize::from_shift(level.va_low).value(), entry)))
                return u64{0};
            entries = static_cast<unsigned>(
                std::min<u64>(entries, contiguous_at(entry, entries * coverage) / coverage));
            if (entries == 0) return u64{0};
        }
        if constexpr (!commit) {
            if (kind == BigRunEntry::fresh)
                for (unsigned i = index; i < index + entries; ++i) {
                    auto made = attach_prepared(node, i + 256, depth + 1, true);
                    if (!made) return failure(made.error());
                }
            return u64{entries};
        } else {
            const Level at_directory{static_cast<u8>(depth)}, at_big{static_cast<u8>(small_depth)};
            const u64 pte_step = request_step(big_page.bytes());
            GPUMMU_TRY(flush_run(node, depth, before));  // writes stay in VA order
            if (kind == BigRunEntry::live && map) {
                // Remap in place: the pointers stay; the old pages may be cached.
                for (unsigned i = 0; i < entries; ++i) {
                    const PageTableNode &big_table = nodes_[child_at(node, index + i + 256)];
                    GPUMMU_TRY(write_run(big_table.page.address,
                                         pte_at(entry + u64{i} * coverage).raw(), pte_step,
                                         big_entries));
                }
                batch_->record_downgrade(at_big);
                return u64{entries};
            }
            EntryRun pointers;
            BigPointers page_pointers;
            for (unsigned i = index; i < index + entries; ++i) {
                PageTableNode &big_table = nodes_[child_at(node, i + 256)];
                if (map) {
                    const u64 va = entry + u64{i - index} * coverage;
                    GPUMMU_TRY(
                        write_run(big_table.page.address, pte_at(va).raw(), pte_step, big_entries));
                    big_table.mapped.assign(0, big_entries, true);
                    big_table.live = big_entries;
                    big_table.flags &= static_cast<u8>(~PageTableNode::prepared);
                    publish_counts(big_table, node, i, Content{});
                    auto pointer = big_pointer(page_pointers, big_table.page.address);
                    if (!pointer) return failure(pointer.error());
                    GPUMMU_TRY(stage_entry(node, depth, pointers, i, (*pointer)[0], (*pointer)[1]));
                } else {
                    // The PTEs stay: once the entry is invalid the table is unreachable
                    // (but through entries the GPU may have cached, which the batch
                    // invalidates), and big tables are zeroed when freed, after the flush.
                    big_table.mapped.clear_all();  // its 32 entries, all it has
                    big_table.live = 0;
                }
            }
            if (map)
                GPUMMU_TRY(flush_run(node, depth, pointers));
            else  // the entries invalid, written as one run
                GPUMMU_TRY(write_entries(node, depth, index, 0, 0, entries));
            if (map) {
                batch_->record_write(at_big);
                batch_->record_write(at_directory);
            } else {
                // The old pages may be cached, and the tables go only after the flush.
                for (unsigned i = index; i < index + entries; ++i)
                    retire(take_child(node, i + 256));
                nodes_[node].live = static_cast<u16>(nodes_[node].live - entries);
                batch_->record_downgrade(at_big);
                batch_->record_downgrade(at_directory);
            }
            return u64{entries};
        }
    }
    // The words of a dual entry pointing at big-page table `table` only. Sixteen tables
    // share a 4 KiB page: one encode of the page's first two tables, then a step per 256
    // bytes (big_pointers_step_within_a_page proves it for the format).
    struct BigPointers {
        VramAddress page{~u64{0}};
        std::array<u64, 2> first{}, step{};
    };
    [[nodiscard]] static Result<std::array<u64, 2>> big_pointer(BigPointers &cache,
                                                                VramAddress table) noexcept
    {
        const VramAddress page{align_down(table.value(), 4096)};
        if (page != cache.page) {
            auto first = F::DualPde::point_to({Aperture::video, physical(page)}, {});
            if (!first) return failure(first.error());
            auto second = F::DualPde::point_to({Aperture::video, physical(page + 256)}, {});
            if (!second) return failure(second.error());
            cache.page = page;
            cache.first = {first->low(), first->high()};
            cache.step = {second->low() - first->low(), second->high() - first->high()};
        }
        const u64 index = (table.value() - page.value()) / 256;
        return std::array<u64, 2>{cache.first[0] + index * cache.step[0],
                                  cache.first[1] + index * cache.step[1]};
    }
    // A first look, inline, whether dual entry `index` may start a whole_big_tables run (a
    // map or protect of 4 KiB pages, say, is not one).
    template <bool commit>
    [[nodiscard]] bool may_start_big_run(u32 node, unsigned index) const noexcept
    {
        if (!commit && nodes_[node].has(PageTableNode::prepared)) return true;
        const u32 big = child_at(node, index + 256);
        if (request_.operation == Operation::map)
            return big == no_table_node ? !commit : !published(big) ? commit : request_.replace;
        return request_.operation == Operation::unmap && published(big);
    }
    // A big-page table whose 32 PTEs are 64 KiB pages, with nothing sparse beneath them.
    [[nodiscard]] bool whole_big_table(u32 big) const noexcept
    {
        static_assert(big_entries == 32);  // every bit of a u32 chunk mask
        const PageTableNode &table = nodes_[big];
        return !table.has(PageTableNode::foreign) && big_pages_mapped(big, ~u32{0}) &&
               static_cast<u32>(table.sparse_backed.word(0)) == 0 && table.no_valid_4k == 0;
    }

    // Writes a whole entry at a directory level: a large page, sparse, or invalid. With
    // `run`, a large page joins the run of pages before it instead (flush_run writes it).
    [[nodiscard]] Result<void> set_entry(u32 node, unsigned depth, unsigned index, u64 va,
                                         Content content, Step step,
                                         EntryRun *run = nullptr) noexcept
    {
        PageTableNode &table = nodes_[node];
        const Level level{static_cast<u8>(depth)};
        const bool was_mapped = content.kind == Kind::mapped;
        switch (step) {
        case Step::skip: return success();
        case Step::place: {
            if (run == nullptr) {
                GPUMMU_TRY(write_entry(node, depth, index, pte_at(va).raw()));
            } else {
                GPUMMU_TRY(stage_entry(node, depth, *run, index, pte_at(va).raw()));
            }
            table.mapped.set(index);
            table.sparse_backed.assign(index, content.kind == Kind::sparse || content.underlay);
            break;
        }
        case Step::set_sparse:
            GPUMMU_TRY(write_entry(node, depth, index,
                                   F::levels[depth].dual ? F::DualPde::sparse().low()
                                                         : F::Pde::sparse().raw()));
            table.mapped.clear(index);
            table.sparse_backed.set(index);
            break;
        case Step::set_none:
            GPUMMU_TRY(write_entry(node, depth, index, 0));
            table.mapped.clear(index);
            table.sparse_backed.clear(index);
            break;
        case Step::descend: return failure(Error::invalid_argument);
        }
        if (content.kind == Kind::none) ++table.live;
        if (step == Step::set_none) --table.live;
        if (was_mapped || step == Step::set_none)
            batch_->record_downgrade(level);
        else
            batch_->record_write(level);
        return success();
    }

    // Into the table below a (non-dual) directory entry, creating or splitting as needed.
    template <bool commit>
    [[nodiscard]] Result<void> descend(u32 node, unsigned depth, unsigned index, u64 first,
                                       u64 last, Content content) noexcept
    {
        u32 child = child_at(node, index);
        if constexpr (!commit) {
            if (child == no_table_node) {
                auto made = attach_prepared(node, index, depth + 1, false);
                if (!made) return failure(made.error());
                child = *made;
            }
            return visit<false>(child, depth + 1, first, last,
                                content.kind == Kind::table ? Content{} : content);
        } else {
            if (!published(child)) GPUMMU_TRY(materialize(node, index, child, content));
            GPUMMU_TRY(visit<true>(child, depth + 1, first, last, Content{}));
            if (nodes_[child].has(PageTableNode::foreign)) return success();  // stays as made
            if (nodes_[child].live == 0) {
                GPUMMU_TRY(write_entry(node, depth, index, 0));
                set_child(node, index, no_table_node);
                --nodes_[node].live;
                retire(child);
                batch_->record_downgrade(Level{static_cast<u8>(depth)});
            } else if (all_sparse(child)) {
                // Nothing but sparse entries left: one sparse entry above says the same, so
                // the tables depend only on the pages' states, not on their history.
                GPUMMU_TRY(write_entry(node, depth, index, F::Pde::sparse().raw()));
                set_child(node, index, no_table_node);
                nodes_[node].mapped.clear(index);
                nodes_[node].sparse_backed.set(index);  // still live: sparse is content
                nodes_[child].flags |= PageTableNode::folded;
                retire(child);
                batch_->record_downgrade(Level{static_cast<u8>(depth)});
            }
            return success();
        }
    }

    // ---- PD0: one dual entry, its big-page and small-page tables -----------------------

    struct ChunkState {
        Content big;         // the big PTE's content (none if there is no big table)
        bool small = false;  // any small PTE of the chunk has content
    };
    enum class ChunkStep : u8 { skip, place_big, big_none, big_sparse, small, split_then_small };

    [[nodiscard]] Result<ChunkStep> decide_chunk(ChunkState state, bool full,
                                                 bool fits) const noexcept
    {
        const Content big = state.big;
        switch (request_.operation) {
        case Operation::map:
            if (big.kind == Kind::mapped && !request_.replace)
                return failure(Error::already_mapped);
            // Over small content only when 4 KiB pages are not allowed (see the contract).
            if (full && fits && (!state.small || !request_.sizes.contains(PageSize::size_4k())))
                return ChunkStep::place_big;
            return big.kind != Kind::none ? ChunkStep::split_then_small : ChunkStep::small;
        case Operation::unmap:
            if (big.kind == Kind::sparse) return failure(Error::not_mapped);
            if (big.kind == Kind::mapped) {
                if (!full) return ChunkStep::split_then_small;
                return big.underlay ? ChunkStep::big_sparse : ChunkStep::big_none;
            }
            return ChunkStep::small;
        case Operation::make_sparse:
            if (big.kind == Kind::mapped) return failure(Error::already_mapped);
            if (big.kind == Kind::sparse) return ChunkStep::skip;
            return full && !state.small ? ChunkStep::big_sparse : ChunkStep::small;
        case Operation::clear_sparse:
            if (big.kind == Kind::mapped) return failure(Error::already_mapped);
            if (big.kind == Kind::sparse)
                return full ? ChunkStep::big_none : ChunkStep::split_then_small;
            return state.small ? ChunkStep::small : ChunkStep::skip;
        }
        return failure(Error::invalid_argument);
    }

    [[nodiscard]] Content big_content(u32 big, unsigned chunk) const noexcept
    {
        const PageTableNode &table = nodes_[big];
        if (table.mapped.test(chunk)) return {Kind::mapped, table.sparse_backed.test(chunk)};
        if (table.sparse_backed.test(chunk)) return {Kind::sparse, true};
        return {};
    }

    // Checks the small pages [page, page + count) of a published small table (or none).
    [[nodiscard]] Result<void> check_small(u32 small, unsigned page, unsigned count,
                                           bool inherited_mapped) const noexcept
    {
        const bool have = published(small);
        switch (request_.operation) {
        case Operation::map:
            if (!request_.sizes.contains(PageSize::size_4k())) return failure(Error::misaligned);
            if (!request_.replace && have && nodes_[small].mapped.any(page, count))
                return failure(Error::already_mapped);
            return success();
        case Operation::unmap:
            if (inherited_mapped) return success();
            if (!have || !nodes_[small].mapped.all(page, count)) return failure(Error::not_mapped);
            return success();
        case Operation::make_sparse:
        case Operation::clear_sparse:
            if (have && nodes_[small].mapped.any(page, count))
                return failure(Error::already_mapped);
            return success();
        }
        return failure(Error::invalid_argument);
    }

    template <bool commit>
    [[nodiscard]] Result<void> visit_dual(u32 node, unsigned depth, unsigned index, u64 entry,
                                          u64 first, u64 last, Content content) noexcept
    {
        const bool splitting = content.kind == Kind::mapped || content.kind == Kind::sparse;
        u32 big = child_at(node, index + 256);
        u32 small = child_at(node, index);
        const u32 big_before = published(big) ? big : no_table_node;
        const u32 small_before = published(small) ? small : no_table_node;
        if constexpr (commit) {
            // New tables are written before the entry points at them.
            if (splitting) {
                GPUMMU_TRY(materialize_big(node, index, big, content));
            }
            if (!published(big) && big != no_table_node) {
                nodes_[big].flags &= static_cast<u8>(~PageTableNode::prepared);
                publish_counts(nodes_[big], node, index, {Kind::table, false});
            }
            if (!published(small) && small != no_table_node) {
                nodes_[small].flags &= static_cast<u8>(~PageTableNode::prepared);
                publish_counts(nodes_[small], node, index, {Kind::table, false});
            }
            if (big != big_before || small != small_before) {
                if (content.kind == Kind::none) ++nodes_[node].live;
                nodes_[node].mapped.clear(index);
                nodes_[node].sparse_backed.clear(index);
                GPUMMU_TRY(write_dual_pointers(node, depth, index));
            }
        }
        bool need_big = splitting, need_small = false;
        unsigned run_first = 0, run_count = 0;  // pending small-page run (commit)
        BigRun big_run;                         // pending run of 64 KiB PTEs (commit)
        const u64 chunk_bytes = PageSize::size_64k().bytes();
        // Per chunk: does the big PTE hold content, do the small PTEs? (As before this
        // request touched the entry; a chunk changes only when its turn comes.)
        u32 big_mask = 0, small_mask = 0;
        if (splitting) {
            big_mask = ~u32{0};
        } else if (commit || !nodes_[node].has(PageTableNode::prepared)) {
            if (published(big) || (commit && big != no_table_node))
                big_mask = static_cast<u32>(nodes_[big].mapped.word(0) |
                                            nodes_[big].sparse_backed.word(0));
        }
        const bool small_exists = published(small) || (commit && small != no_table_node);
        auto small_chunks = [&]() { return small_exists ? small_chunk_content(small) : 0u; };
        // The common case in one step: no big content and a request that, without it, sends
        // every chunk to the small PTEs (maps that may not use 64 KiB pages, unmaps, clears).
        const Operation operation = request_.operation;
        // The chunks the range covers whole when both ends are 64 KiB aligned, else none.
        const u32 whole =
            ((first | last) & (chunk_bytes - 1)) == 0 ? chunks_covered(first, last, entry) : 0u;
        if (big_mask == 0 &&
            ((operation == Operation::map && !request_.sizes.contains(PageSize::size_64k())) ||
             operation == Operation::unmap || operation == Operation::clear_sparse)) {
            const unsigned page = static_cast<unsigned>((first - entry) >> 12);
            const unsigned count = static_cast<unsigned>((last - first) >> 12);
            if (operation == Operation::clear_sparse && small_chunks() == 0) {
                if constexpr (commit) return tidy_dual(node, depth, index);
                return success();
            }
            if constexpr (!commit) {
                GPUMMU_TRY(check_small(small, page, count, false));
                need_small = true;
                // An unmap that leaves a whole chunk sparse folds it into a sparse big PTE
                // (tidy_dual): if the entry has no big table, this is where it is made.
                if (operation == Operation::unmap && big == no_table_node && small_exists &&
                    leaves_sparse_chunk(small, page, count, false))
                    need_big = true;
            } else {
                GPUMMU_TRY(apply_small(small, page, count, entry));
            }
        } else if (operation == Operation::map && request_.sizes.contains(PageSize::size_64k()) &&
                   whole != 0 &&
                   (big_mask == 0 ||
                    (request_.replace && !splitting && big_pages_mapped(big, whole))) &&
                   physical_at(first).is_aligned_to(chunk_bytes) &&
                   contiguous_at(first, last - first) >= last - first && small_chunks() == 0) {
            // Every chunk is whole, aligned and contiguous, and either free or (a remap: a
            // protect, a rebind, a move) a 64 KiB page already: one run of 64 KiB PTEs. A
            // remapped chunk keeps what it holds (mapped, and any sparse underlay beneath);
            // its old page may be cached, so the batch asks for an acknowledged invalidate.
            const bool remap = big_mask != 0;
            const auto chunk = static_cast<unsigned>(std::countr_zero(whole));
            const auto count = count_ones(whole);
            if constexpr (!commit) {
                need_big = true;
            } else {
                PageTableNode &table = nodes_[big];
                const typename F::Pte pte = pte_at(first);
                GPUMMU_TRY(write_run(table.page.address + u64{chunk} * 8, pte.raw(),
                                     request_step(chunk_bytes), count));
                table.no_valid_4k &= ~whole;
                if (remap) {
                    batch_->record_downgrade(Level{static_cast<u8>(small_depth)});
                } else {
                    table.mapped.assign(chunk, count, true);
                    table.live = static_cast<u16>(table.live + count);
                    batch_->record_write(Level{static_cast<u8>(small_depth)});
                }
            }
        } else if (operation == Operation::unmap && !splitting && big_mask != 0 && whole != 0 &&
                   big_pages_mapped(big, whole) && uniform_underlay(big, whole) &&
                   (small_chunks() & whole) == 0) {
            // An unmap of whole 64 KiB pages with nothing beneath them but, for all of them
            // alike, a sparse underlay or none: one run of sparse or invalid big PTEs.
            const auto chunk = static_cast<unsigned>(std::countr_zero(whole));
            const auto count = count_ones(whole);
            const bool underlay =
                (static_cast<u32>(nodes_[big].sparse_backed.word(0)) & whole) != 0;
            if constexpr (commit) {
                PageTableNode &table = nodes_[big];
                GPUMMU_TRY(write_run(table.page.address + u64{chunk} * 8,
                                     underlay ? F::Pte::sparse().raw() : 0, 0, count));
                table.mapped.assign(chunk, count, false);
                table.no_valid_4k &= ~whole;
                if (!underlay) table.live = static_cast<u16>(table.live - count);
                batch_->record_downgrade(Level{static_cast<u8>(small_depth)});
            }
        } else {
            small_mask = small_chunks();
            for (u64 chunk_va = align_down(first, chunk_bytes); chunk_va < last;
                 chunk_va += chunk_bytes) {
                const unsigned chunk = static_cast<unsigned>((chunk_va - entry) / chunk_bytes);
                const u64 from = std::max(first, chunk_va),
                          to = std::min(last, chunk_va + chunk_bytes);
                const bool full = from == chunk_va && to == chunk_va + chunk_bytes;
                const unsigned page = static_cast<unsigned>((from - entry) >> 12);
                const unsigned count = static_cast<unsigned>((to - from) >> 12);
                ChunkState state;
                state.small = ((small_mask >> chunk) & 1u) != 0;
                if (((big_mask >> chunk) & 1u) != 0)
                    state.big = (!commit && splitting) ? content : big_content(big, chunk);
                const bool fits = full && page_fits(PageSize::size_64k(), chunk_va);
                auto step = decide_chunk(state, full, fits);
                if (!step) return failure(step.error());
                if constexpr (!commit) {
                    switch (*step) {
                    case ChunkStep::place_big:
                        if (state.small && !request_.replace &&
                            nodes_[small].mapped.any(page, count))
                            return failure(Error::already_mapped);
                        need_big = true;
                        break;
                    case ChunkStep::big_sparse: need_big = true; break;
                    case ChunkStep::small:
                    case ChunkStep::split_then_small:
                        GPUMMU_TRY(check_small(small, page, count, state.big.kind == Kind::mapped));
                        need_small = true;
                        // A make_sparse that completes a sparse chunk folds it (tidy_dual).
                        if (operation == Operation::make_sparse && big == no_table_node &&
                            small_exists && leaves_sparse_chunk(small, page, count, true))
                            need_big = true;
                        break;
                    default: break;
                    }
                } else {
                    const bool small_step =
                        *step == ChunkStep::small || *step == ChunkStep::split_then_small;
                    if (run_count != 0 && (!small_step || *step == ChunkStep::split_then_small ||
                                           run_first + run_count != page)) {
                        GPUMMU_TRY(apply_small(small, run_first, run_count, entry));
                        run_count = 0;
                    }
                    switch (*step) {
                    case ChunkStep::skip: break;
                    case ChunkStep::place_big:
                    case ChunkStep::big_none:
                    case ChunkStep::big_sparse:
                        GPUMMU_TRY(set_big(big, chunk, chunk_va, state.big, *step, big_run));
                        if (*step == ChunkStep::place_big && state.small) {
                            // The big PTE first: from then on it hides the small ones.
                            GPUMMU_TRY(flush_big_run(big, big_run));
                            GPUMMU_TRY(uncover_small(small, page, count));
                        }
                        break;
                    case ChunkStep::split_then_small:
                        GPUMMU_TRY(split_chunk(big, small, chunk, state.big));
                        [[fallthrough]];
                    case ChunkStep::small:
                        if (run_count == 0) run_first = page;
                        run_count += count;
                        break;
                    }
                }
            }
        }
        if constexpr (!commit) {
            if (need_big && big == no_table_node) {
                auto made = attach_prepared(node, index + 256, depth + 1, true);
                if (!made) return failure(made.error());
            }
            if (need_small && small == no_table_node) {
                auto made = attach_prepared(node, index, depth + 1, false);
                if (!made) return failure(made.error());
            }
            return success();
        } else {
            if (run_count != 0) GPUMMU_TRY(apply_small(small, run_first, run_count, entry));
            GPUMMU_TRY(flush_big_run(big, big_run));
            return tidy_dual(node, depth, index);
        }
    }

    [[nodiscard]] Result<void> write_dual_pointers(u32 node, unsigned depth,
                                                   unsigned index) noexcept
    {
        const u32 big = child_at(node, index + 256), small = child_at(node, index);
        TablePointer big_pointer{}, small_pointer{};
        if (big != no_table_node)
            big_pointer = {Aperture::video, physical(nodes_[big].page.address)};
        if (small != no_table_node)
            small_pointer = {Aperture::video, physical(nodes_[small].page.address)};
        if (big == no_table_node && small == no_table_node)
            return write_entry(node, depth, index, 0);
        auto dual = F::DualPde::point_to(big_pointer, small_pointer);
        if (!dual) return failure(dual.error());
        batch_->record_write(Level{static_cast<u8>(depth)});
        return write_entry(node, depth, index, dual->low(), dual->high());
    }

    // A 2 MiB page or sparse dual entry becomes 32 big PTEs in a new big table.
    [[nodiscard]] Result<void> materialize_big(u32 node, unsigned index, u32 big,
                                               Content content) noexcept
    {
        PageTableNode &table = nodes_[big];
        if (content.kind == Kind::sparse) {
            GPUMMU_TRY(write_run(table.page.address, F::Pte::sparse().raw(), 0, big_entries));
        } else {
            std::array<u64, 1> word{};
            GPUMMU_TRY(memory_->read(entry_address(node, index, 16), word));
            auto first = F::Pte::map(F::Pte::from_raw(word[0]).attributes());
            if (!first) return failure(Error::malformed_record);
            GPUMMU_TRY(write_run(table.page.address, first->raw(),
                                 pte_step(*first, PageSize::size_64k().bytes()), big_entries));
        }
        table.mapped.assign(0, big_entries, content.kind == Kind::mapped);
        table.sparse_backed.assign(0, big_entries,
                                   content.kind == Kind::sparse || content.underlay);
        table.live = big_entries;
        return success();
    }

    // Does every chunk of `mask` in big table `big` hold a mapped 64 KiB page? Do all of
    // them, or none, have a sparse underlay?
    [[nodiscard]] bool big_pages_mapped(u32 big, u32 mask) const noexcept
    {
        return (static_cast<u32>(nodes_[big].mapped.word(0)) & mask) == mask;
    }
    [[nodiscard]] bool uniform_underlay(u32 big, u32 mask) const noexcept
    {
        const auto underlay = static_cast<u32>(nodes_[big].sparse_backed.word(0)) & mask;
        return underlay == 0 || underlay == mask;
    }
    // The 64 KiB chunks of dual entry `entry` that [first, last) covers, as bits (both ends
    // 64 KiB aligned).
    [[nodiscard]] static u32 chunks_covered(u64 first, u64 last, u64 entry) noexcept
    {
        const u64 bytes = PageSize::size_64k().bytes();
        const auto chunk = static_cast<unsigned>((first - entry) / bytes);
        const auto count = static_cast<unsigned>((last - first) / bytes);
        return static_cast<u32>(((u64{1} << count) - 1) << chunk);
    }
    [[nodiscard]] Result<void> write_big(u32 big, unsigned chunk, u64 word) noexcept
    {
        std::array<u64, 1> words{word};
        nodes_[big].no_valid_4k &= ~(1u << chunk);
        return memory_->write(nodes_[big].page.address + u64{chunk} * 8, words);
    }

    // Consecutive 64 KiB PTEs over contiguous memory, written as one run.
    struct BigRun {
        unsigned first = 0, count = 0;
        u64 va = 0;
    };
    [[nodiscard]] Result<void> flush_big_run(u32 big, BigRun &run) noexcept
    {
        if (run.count == 0) return success();
        const typename F::Pte pte = pte_at(run.va);
        const unsigned count = std::exchange(run.count, 0u);
        return write_run(nodes_[big].page.address + u64{run.first} * 8, pte.raw(),
                         request_step(PageSize::size_64k().bytes()), count);
    }

    [[nodiscard]] Result<void> set_big(u32 big, unsigned chunk, u64 va, Content content,
                                       ChunkStep step, BigRun &run) noexcept
    {
        PageTableNode &table = nodes_[big];
        const Level level{static_cast<u8>(small_depth)};
        if (step == ChunkStep::place_big) {
            const u64 bytes = PageSize::size_64k().bytes();
            const bool extends = run.count != 0 && chunk == run.first + run.count &&
                                 physical_at(va) == physical_at(run.va) + u64{run.count} * bytes;
            if (!extends) {
                GPUMMU_TRY(flush_big_run(big, run));
                run = BigRun{chunk, 0, va};
            }
            ++run.count;
            table.no_valid_4k &= ~(1u << chunk);
            table.mapped.set(chunk);
            table.sparse_backed.assign(chunk, content.kind == Kind::sparse || content.underlay);
        } else if (step == ChunkStep::big_sparse) {
            GPUMMU_TRY(write_big(big, chunk, F::Pte::sparse().raw()));
            table.mapped.clear(chunk);
            table.sparse_backed.set(chunk);
        } else {
            GPUMMU_TRY(write_big(big, chunk, 0));
            table.mapped.clear(chunk);
            table.sparse_backed.clear(chunk);
        }
        if (content.kind == Kind::none) ++table.live;
        if (step == ChunkStep::big_none) --table.live;
        if (content.kind == Kind::mapped || step == ChunkStep::big_none)
            batch_->record_downgrade(level);
        else
            batch_->record_write(level);
        return success();
    }

    // Small pages [page, page + count) under a 64 KiB page just placed: mapped ones go
    // back to what lies beneath them (sparse or invalid); sparse ones stay.
    [[nodiscard]] Result<void> uncover_small(u32 small, unsigned page, unsigned count) noexcept
    {
        PageTableNode &table = nodes_[small];
        if (!table.mapped.any(page, count)) return success();
        const unsigned content_before = count_content(table, page, count);
        unsigned at = page;
        while (at < page + count) {
            const bool sparse = table.sparse_backed.test(at);
            unsigned end = at + 1;
            while (end < page + count && table.sparse_backed.test(end) == sparse) ++end;
            GPUMMU_TRY(memory_->fill(table.page.address + u64{at} * 8,
                                     sparse ? F::Pte::sparse().raw() : 0, end - at));
            at = end;
        }
        table.mapped.assign(page, count, false);
        table.live =
            static_cast<u16>(table.live - content_before + count_content(table, page, count));
        batch_->record_downgrade(Level{static_cast<u8>(small_depth)});
        return success();
    }

    // The chunk's big PTE (valid or sparse) becomes 16 small PTEs; the big PTE is cleared.
    // Sparse small PTEs beneath a valid big one (see the contract) stay what the pages
    // return to.
    [[nodiscard]] Result<void> split_chunk(u32 big, u32 small, unsigned chunk,
                                           Content content) noexcept
    {
        PageTableNode &table = nodes_[small];
        const unsigned page = chunk * chunk_pages;
        const VramAddress at = table.page.address + u64{page} * 8;
        const unsigned content_before =
            table.live == 0 ? 0 : count_content(table, page, chunk_pages);
        if (content.kind == Kind::sparse) {
            GPUMMU_TRY(write_run(at, F::Pte::sparse().raw(), 0, chunk_pages));
        } else {
            std::array<u64, 1> word{};
            GPUMMU_TRY(memory_->read(nodes_[big].page.address + u64{chunk} * 8, word));
            auto first = F::Pte::map(F::Pte::from_raw(word[0]).attributes());
            if (!first) return failure(Error::malformed_record);
            GPUMMU_TRY(write_run(at, first->raw(), pte_step(*first, 4096), chunk_pages));
        }
        table.mapped.assign(page, chunk_pages, content.kind == Kind::mapped);
        if (content.kind == Kind::sparse || content.underlay)
            table.sparse_backed.assign(page, chunk_pages, true);
        table.live = static_cast<u16>(table.live - content_before + chunk_pages);
        GPUMMU_TRY(write_big(big, chunk, 0));
        nodes_[big].mapped.clear(chunk);
        nodes_[big].sparse_backed.clear(chunk);
        --nodes_[big].live;
        batch_->record_write(Level{static_cast<u8>(small_depth)});
        return success();
    }

    // Applies the request to small pages [page, page + count) of one small table.
    [[nodiscard]] Result<void> apply_small(u32 small, unsigned page, unsigned count,
                                           u64 entry) noexcept
    {
        PageTableNode &table = nodes_[small];
        const Level level{static_cast<u8>(small_depth)};
        const VramAddress base = table.page.address;
        // Live entries before and after, from what each operation leaves behind: a map or
        // make_sparse leaves content on every page, an unmap only where the range was
        // sparse, a clear none (mapped pages were refused in prepare).
        const bool fresh = table.live == 0;
        const unsigned content_before = fresh ? 0 : count_content(table, page, count);
        const bool any_mapped = !fresh && table.mapped.any(page, count);
        const bool any_sparse = !fresh && table.sparse_backed.any(page, count);
        unsigned content_after = count;
        switch (request_.operation) {
        case Operation::map: {
            u64 va = entry + (u64{page} << 12);
            unsigned done = 0;
            while (done < count) {
                const typename F::Pte pte = pte_at(va);
                const u64 run_bytes = contiguous_at(va, u64{count - done} << 12);
                const unsigned run =
                    static_cast<unsigned>(std::min<u64>(run_bytes >> 12, count - done));
                GPUMMU_TRY(
                    write_run(base + u64{page + done} * 8, pte.raw(), request_.step_4k, run));
                done += run;
                va += u64{run} << 12;
            }
            table.mapped.assign(page, count, true);
            if (any_mapped)
                batch_->record_downgrade(level);
            else
                batch_->record_write(level);
            break;
        }
        case Operation::unmap: {
            // Back to sparse where the range was sparse, to invalid elsewhere: runs by bit.
            content_after = any_sparse ? table.sparse_backed.count(page, count) : 0;
            if (!any_sparse) {
                GPUMMU_TRY(memory_->fill(base + u64{page} * 8, 0, count));
                table.mapped.assign(page, count, false);
                batch_->record_downgrade(level);
                break;
            }
            unsigned at = page;
            while (at < page + count) {
                const bool sparse = table.sparse_backed.test(at);
                unsigned end = at + 1;
                while (end < page + count && table.sparse_backed.test(end) == sparse) ++end;
                GPUMMU_TRY(memory_->fill(base + u64{at} * 8, sparse ? F::Pte::sparse().raw() : 0,
                                         end - at));
                at = end;
            }
            table.mapped.assign(page, count, false);
            batch_->record_downgrade(level);
            break;
        }
        case Operation::make_sparse:
            GPUMMU_TRY(memory_->fill(base + u64{page} * 8, F::Pte::sparse().raw(), count));
            table.sparse_backed.assign(page, count, true);
            batch_->record_write(level);
            break;
        case Operation::clear_sparse:
            if (!any_sparse) return success();
            content_after = 0;
            GPUMMU_TRY(memory_->fill(base + u64{page} * 8, 0, count));
            table.sparse_backed.assign(page, count, false);
            batch_->record_downgrade(level);
            break;
        }
        table.live = static_cast<u16>(table.live - content_before + content_after);
        return success();
    }

    [[nodiscard]] static unsigned count_content(const PageTableNode &table, unsigned page,
                                                unsigned count) noexcept
    {
        // mapped implies content; sparse_backed without mapped is sparse content.
        unsigned total = 0;
        for (unsigned i = 0; i < 8; ++i) {
            const u64 lo = u64{i} * 64, hi = lo + 64;
            if (hi <= page || lo >= page + count) continue;
            u64 mask = ~u64{0};
            if (page > lo) mask &= ~u64{0} << (page - lo);
            if (page + count < hi) mask &= (u64{1} << (page + count - lo)) - 1;
            total += static_cast<unsigned>(
                count_ones((table.mapped.word(i) | table.sparse_backed.word(i)) & mask));
        }
        return total;
    }

    // Bit k set: some small PTE of 64 KiB chunk k holds content (mapped or sparse).
    [[nodiscard]] u32 small_chunk_content(u32 small) const noexcept
    {
        const PageTableNode &table = nodes_[small];
        return table.live == 0 ? 0u : table.mapped.chunk_mask() | table.sparse_backed.chunk_mask();
    }

    // Every entry of table `node` is sparse (and so none is mapped or points to a table).
    [[nodiscard]] bool all_sparse(u32 node) const noexcept
    {
        const PageTableNode &table = nodes_[node];
        const unsigned entries = table.has(PageTableNode::big)
                                     ? big_entries
                                     : static_cast<unsigned>(F::levels[table.depth].entry_count());
        return table.mapped.none() && table.sparse_backed.all(0, entries);
    }
    // Every 64 KiB chunk of a dual entry is sparse, in its big PTE or in all 16 small ones.
    [[nodiscard]] bool dual_all_sparse(u32 small, u32 big) const noexcept
    {
        if (small == no_table_node && big == no_table_node) return false;
        for (unsigned chunk = 0; chunk < big_entries; ++chunk) {
            if (big != no_table_node) {
                if (nodes_[big].mapped.test(chunk)) return false;
                if (nodes_[big].sparse_backed.test(chunk)) continue;
            }
            if (small == no_table_node) return false;
            const unsigned first = chunk * chunk_pages;
            if (nodes_[small].mapped.any(first, chunk_pages) ||
                !nodes_[small].sparse_backed.all(first, chunk_pages))
                return false;
        }
        return true;
    }

    // After pages [page, page + count) of small table `small` are unmapped (back to what
    // they were: sparse where sparse_backed) or made sparse (`made_sparse`), is some chunk
    // they touch all sparse?
    [[nodiscard]] bool leaves_sparse_chunk(u32 small, unsigned page, unsigned count,
                                           bool made_sparse) const noexcept
    {
        const PageTableNode &table = nodes_[small];
        auto sparse_outside = [&](unsigned from, unsigned to) {
            return from >= to ||
                   (table.sparse_backed.all(from, to - from) && !table.mapped.any(from, to - from));
        };
        for (unsigned chunk = page / chunk_pages; chunk <= (page + count - 1) / chunk_pages;
             ++chunk) {
            const unsigned first = chunk * chunk_pages, end = first + chunk_pages;
            const unsigned inside_first = std::max(first, page);
            const unsigned inside_end = std::min(end, page + count);
            if (!made_sparse && !table.sparse_backed.all(inside_first, inside_end - inside_first))
                continue;
            if (sparse_outside(first, inside_first) && sparse_outside(inside_end, end)) return true;
        }
        return false;
    }

    // A 64 KiB chunk whose 16 small PTEs are all sparse says the same as one sparse big
    // PTE: it becomes one (where the entry has a big table), so that the tables depend only
    // on the pages' states. The big PTE is written first: in between, both read sparse.
    [[nodiscard]] Result<void> fold_sparse_chunks(u32 big, u32 small) noexcept
    {
        PageTableNode &big_table = nodes_[big];
        PageTableNode &small_table = nodes_[small];
        const u32 big_content =
            static_cast<u32>(big_table.mapped.word(0) | big_table.sparse_backed.word(0));
        for (unsigned chunk = 0; chunk < big_entries; ++chunk) {
            const unsigned first = chunk * chunk_pages;
            if (((big_content >> chunk) & 1u) != 0 || small_table.mapped.any(first, chunk_pages) ||
                !small_table.sparse_backed.all(first, chunk_pages))
                continue;
            GPUMMU_TRY(write_big(big, chunk, F::Pte::sparse().raw()));
            big_table.sparse_backed.set(chunk);
            ++big_table.live;
            GPUMMU_TRY(memory_->fill(small_table.page.address + u64{first} * 8, 0, chunk_pages));
            small_table.sparse_backed.assign(first, chunk_pages, false);
            small_table.live = static_cast<u16>(small_table.live - chunk_pages);
            batch_->record_write(Level{static_cast<u8>(small_depth)});
        }
        return success();
    }

    // After a dual entry changed: fold an all-sparse entry into a sparse dual PDE, reclaim
    // empty tables, rewrite the pointers, refresh NV4K.
    [[nodiscard]] Result<void> tidy_dual(u32 node, unsigned depth, unsigned index) noexcept
    {
        u32 big = child_at(node, index + 256);
        u32 small = child_at(node, index);
        auto foreign = [&](u32 child) {
            return child != no_table_node && nodes_[child].has(PageTableNode::foreign);
        };
        if (big != no_table_node && small != no_table_node)
            GPUMMU_TRY(fold_sparse_chunks(big, small));
        if (!foreign(small) && !foreign(big) && dual_all_sparse(small, big)) {
            const u32 old_small = take_child(node, index), old_big = take_child(node, index + 256);
            GPUMMU_TRY(write_entry(node, depth, index, F::DualPde::sparse().low(),
                                   F::DualPde::sparse().high()));
            nodes_[node].mapped.clear(index);
            nodes_[node].sparse_backed.set(index);  // the entry stays live: sparse is content
            batch_->record_downgrade(Level{static_cast<u8>(depth)});
            for (u32 folded : {old_small, old_big}) {
                if (folded == no_table_node) continue;
                nodes_[folded].flags |= PageTableNode::folded;
                retire(folded);
            }
            return success();
        }
        bool pointers_changed = false;
        u32 retire_big = no_table_node, retire_small = no_table_node;
        if (small != no_table_node && nodes_[small].live == 0 && !foreign(small)) {
            retire_small = take_child(node, index);
            small = no_table_node;
            pointers_changed = true;
        }
        if (big != no_table_node && nodes_[big].live == 0 && !foreign(big)) {
            retire_big = take_child(node, index + 256);
            big = no_table_node;
            pointers_changed = true;
        }
        if (big != no_table_node) {
            const PageTableNode &table = nodes_[big];
            const u32 content =
                static_cast<u32>(table.mapped.word(0) | table.sparse_backed.word(0));
            u32 wanted = 0;
            if (small != no_table_node) wanted = ~content & ~small_chunk_content(small);
            u32 change = wanted ^ table.no_valid_4k;
            while (change != 0) {
                const unsigned chunk = static_cast<unsigned>(std::countr_zero(change));
                change &= change - 1;
                const bool set = (wanted >> chunk) & 1u;
                GPUMMU_TRY(write_big(big, chunk, set ? F::Pte::no_valid_4k().raw() : 0));
                if (set) nodes_[big].no_valid_4k |= 1u << chunk;
                batch_->record_write(Level{static_cast<u8>(small_depth)});
            }
        }
        if (pointers_changed) {
            GPUMMU_TRY(write_dual_pointers(node, depth, index));
            if (big == no_table_node && small == no_table_node) --nodes_[node].live;
            batch_->record_downgrade(Level{static_cast<u8>(depth)});
            if (retire_small != no_table_node) retire(retire_small);
            if (retire_big != no_table_node) retire(retire_big);
        }
        return success();
    }

    // Entry `index` of `node` holds no table: mapped (read the PTE), sparse or unmapped.
    // The answer is written field by field into the one Result every path returns (so it
    // is built in the caller's memory): a Translation assembled on the stack and copied
    // out reloaded its narrow stores with wide loads, four store-forwarding stalls that
    // were most of a translate.
    [[nodiscard]] Result<Translation> leaf_translation(u32 node, unsigned depth, unsigned index,
                                                       unsigned entry_bytes, VirtualAddress va,
                                                       unsigned shift, bool dual) const noexcept
    {
        const PageTableNode &table = nodes_[node];
        Result<Translation> result{Translation{}};
        Translation &out = *result;
        out.level = Level{static_cast<u8>(depth)};
        if (!table.mapped.test(index)) {
            if (table.sparse_backed.test(index)) {
                out.state = TranslationState::sparse;
            } else {
                // An empty dual entry is reported where the MMU gives up: the page-table level.
                out.state = TranslationState::unmapped;
                if (dual) out.level = Level{static_cast<u8>(small_depth)};
            }
            return result;
        }
        // A mapped dual entry's low word is its 2 MiB PTE.
        std::array<u64, 1> word{};
        // Only PTE-capable levels hold mapped entries, so the shift names a page size.
        auto size = PageSize::from_shift(shift);
        if (auto read = memory_->read(table.page.address + u64{index} * entry_bytes, word); !read)
            result = failure(read.error());
        else if (!size)
            result = failure(Error::malformed_record);
        else
            detail::fill_from_pte<F>(F::Pte::from_raw(word[0]), va, *size, out);
        return result;
    }

    // ---- adoption ----------------------------------------------------------------------

    static constexpr u64 foreign_hash_start = 0xcbf29ce484222325ull;  // FNV-1a
    static void hash_words(u64 &hash, std::span<const u64> words) noexcept
    {
        for (u64 word : words) {
            for (unsigned byte = 0; byte < 8; ++byte) {
                hash ^= (word >> (8 * byte)) & 0xFF;
                hash *= 0x100000001b3ull;
            }
        }
    }
    [[nodiscard]] static std::size_t table_words(const PageTableNode &table) noexcept
    {
        const LevelDescriptor &level =
            table.has(PageTableNode::big) ? F::big_page_table : F::levels[table.depth];
        return static_cast<std::size_t>(level.table_bytes() / sizeof(u64));
    }

    // Reads table `node` (at `depth`, its first entry at VA `base`) and the foreign tables
    // below it into the shadow; hashes every word read.
    [[nodiscard]] Result<void> adopt(u32 node, unsigned depth, u64 base, u64 &hash) noexcept
    {
        const bool big = nodes_[node].has(PageTableNode::big);
        const LevelDescriptor &level = big ? F::big_page_table : F::levels[depth];
        const unsigned entries = static_cast<unsigned>(level.entry_count());
        const u64 coverage = level.entry_coverage();
        std::array<u64, 512> words{};
        const std::span<u64> read(words.data(), table_words(nodes_[node]));
        GPUMMU_TRY(memory_->read(nodes_[node].page.address, read));
        hash_words(hash, read);
        for (unsigned i = 0; i < entries; ++i) {
            const u64 va = base + u64{i} * coverage;
            const u64 low = level.dual ? words[2 * i] : words[i];
            const u64 high = level.dual ? words[2 * i + 1] : 0;
            if (low == 0 && high == 0) continue;
            PageTableNode &table = nodes_[node];
            if (level.dual) {
                const auto dual = F::DualPde::from_raw(low, high);
                if (low == F::DualPde::sparse().low() && high == F::DualPde::sparse().high()) {
                    GPUMMU_TRY(adopt_content(node, i, va, coverage, false));
                    continue;
                }
                if (dual.is_pte()) {
                    if (high != 0 || F::Pte::from_raw(low).state() != PteState::valid ||
                        !level.may_hold_pte())
                        return failure(Error::malformed_record);
                    GPUMMU_TRY(adopt_content(node, i, va, coverage, true));
                    continue;
                }
                const TablePointer small = dual.small_pointer(), big_table = dual.big_pointer();
                auto canonical = F::DualPde::point_to(big_table, small);
                if (!canonical || canonical->low() != low || canonical->high() != high)
                    return failure(Error::malformed_record);
                if (small.aperture != Aperture::invalid)
                    GPUMMU_TRY(adopt_child(node, i, depth + 1, false, small, va, hash));
                if (big_table.aperture != Aperture::invalid)
                    GPUMMU_TRY(adopt_child(node, i + 256, depth + 1, true, big_table, va, hash));
                ++nodes_[node].live;
                continue;
            }
            if (!big && depth < small_depth) {
                if (low == F::Pde::sparse().raw()) {
                    GPUMMU_TRY(adopt_content(node, i, va, coverage, false));
                    continue;
                }
                const auto pde = F::Pde::from_raw(low);
                if (pde.is_pte()) {
                    if (F::Pte::from_raw(low).state() != PteState::valid || !level.may_hold_pte())
                        return failure(Error::malformed_record);
                    GPUMMU_TRY(adopt_content(node, i, va, coverage, true));
                    continue;
                }
                auto canonical = F::Pde::point_to(pde.pointer());
                if (!canonical || canonical->raw() != low) return failure(Error::malformed_record);
                GPUMMU_TRY(adopt_child(node, i, depth + 1, false, pde.pointer(), va, hash));
                ++nodes_[node].live;
                continue;
            }
            if (big && low == F::Pte::no_valid_4k().raw()) {
                table.no_valid_4k |= 1u << i;
                continue;
            }
            if (low == F::Pte::sparse().raw()) {
                GPUMMU_TRY(adopt_content(node, i, va, coverage, false));
                continue;
            }
            if (F::Pte::from_raw(low).state() != PteState::valid)
                return failure(Error::malformed_record);
            GPUMMU_TRY(adopt_content(node, i, va, coverage, true));
        }
        return success();
    }

    // Entry `index` of `node` holds a page (`mapped`) or is sparse: the shadow says so and
    // the VA joins the foreign ranges.
    [[nodiscard]] Result<void> adopt_content(u32 node, unsigned index, u64 va, u64 size,
                                             bool mapped) noexcept
    {
        PageTableNode &table = nodes_[node];
        if (mapped)
            table.mapped.set(index);
        else
            table.sparse_backed.set(index);
        ++table.live;
        if (foreign_count_ != 0) {
            ForeignRange &last = foreign_[foreign_count_ - 1];
            if (last.end == va && last.mapped == mapped) {
                last.end = va + size;
                return success();
            }
        }
        if (foreign_count_ == max_foreign_ranges) return failure(Error::out_of_storage);
        foreign_[foreign_count_++] = ForeignRange{va, va + size, mapped};
        return success();
    }

    // A foreign table below entry `slot` of `parent`, read recursively.
    [[nodiscard]] Result<void> adopt_child(u32 parent, unsigned slot, unsigned depth, bool big,
                                           TablePointer pointer, u64 base, u64 &hash) noexcept
    {
        if (pointer.aperture != Aperture::video) return failure(Error::malformed_record);
        const VramAddress address{pointer.address.value()};
        if (!address.is_aligned_to(big ? 256 : 4096)) return failure(Error::malformed_record);
        // A table reached twice (or the root again) would have two shadows.
        for (const PageTableNode &other : nodes_)
            if (other.has(PageTableNode::in_use) && other.page.address == address)
                return failure(Error::malformed_record);
        auto child = allocate_node(depth, big);
        if (!child) return failure(child.error());
        PageTableNode &record = nodes_[*child];
        record.flags =
            static_cast<u8>((record.flags & ~PageTableNode::prepared) | PageTableNode::foreign);
        record.page =
            TablePage{address, big ? TableSize::big_page : TableSize::small_page_or_directory};
        record.parent = parent;
        record.parent_index = static_cast<u16>(slot);
        set_child(parent, slot, *child);
        ++stats_.foreign_tables;
        return adopt(*child, depth, base, hash);
    }

    // Hashes the words of every foreign table below and including `node`, in the order
    // adopt() read them.
    [[nodiscard]] Result<void> hash_foreign(u32 node, u64 &hash) const noexcept
    {
        const PageTableNode &table = nodes_[node];
        std::array<u64, 512> words{};
        const std::span<u64> read(words.data(), table_words(table));
        GPUMMU_TRY(memory_->read(table.page.address, read));
        hash_words(hash, read);
        if (table.children == no_table_node) return success();
        const bool dual = F::levels[table.depth].dual;
        const unsigned entries = static_cast<unsigned>(F::levels[table.depth].entry_count());
        for (unsigned i = 0; i < entries; ++i) {
            for (unsigned slot : {i, i + 256}) {  // a dual entry: small table, then big
                if (!dual && slot != i) continue;
                const u32 child = child_at(node, slot);
                if (child != no_table_node && nodes_[child].has(PageTableNode::foreign))
                    GPUMMU_TRY(hash_foreign(child, hash));
            }
        }
        return success();
    }

    // Operations may not touch foreign pages, nor clear foreign sparse ranges.
    [[nodiscard]] Result<void> check_foreign(const Request &request) const noexcept
    {
        for (std::size_t i = 0; i < foreign_count_; ++i) {
            const ForeignRange &range = foreign_[i];
            if (range.begin >= request.end || request.begin >= range.end) continue;
            if (range.mapped || request.operation == Operation::clear_sparse)
                return failure(Error::foreign_entry);
        }
        return success();
    }

    // ---- audit -------------------------------------------------------------------------

    [[nodiscard]] Result<void> audit(u32 node, unsigned depth, u64 &reached) const noexcept
    {
        const PageTableNode &table = nodes_[node];
        if (!table.has(PageTableNode::in_use) || table.has(PageTableNode::retired) ||
            table.has(PageTableNode::prepared) || table.depth != depth)
            return failure(Error::malformed_record);
        ++reached;
        if (table.children != no_table_node) {  // the bitmap names exactly the linked slots
            const PageTableChildren &block = children_[table.children];
            for (unsigned slot = 0; slot < EntryBits::capacity; ++slot)
                if (block.present.test(slot) != (block.node[slot] != no_table_node))
                    return failure(Error::malformed_record);
        }
        const bool big = table.has(PageTableNode::big);
        const LevelDescriptor &level = big ? F::big_page_table : F::levels[depth];
        const unsigned entries = static_cast<unsigned>(level.entry_count());
        std::array<u64, 512> words{};
        GPUMMU_TRY(memory_->read(table.page.address,
                                 std::span<u64>(words.data(), level.table_bytes() / sizeof(u64))));
        unsigned live = 0;
        for (unsigned i = 0; i < entries; ++i) {
            const bool mapped = table.mapped.test(i), sparse = table.sparse_backed.test(i);
            if (level.dual) {
                const auto dual = F::DualPde::from_raw(words[2 * i], words[2 * i + 1]);
                const u32 small = child_at(node, i), big_child = child_at(node, i + 256);
                if (small != no_table_node || big_child != no_table_node) {
                    if (mapped || sparse || dual.is_pte()) return failure(Error::malformed_record);
                    const TablePointer want_small =
                        small == no_table_node
                            ? TablePointer{}
                            : TablePointer{Aperture::video, physical(nodes_[small].page.address)};
                    const TablePointer want_big =
                        big_child == no_table_node
                            ? TablePointer{}
                            : TablePointer{Aperture::video,
                                           physical(nodes_[big_child].page.address)};
                    if (dual.small_pointer() != want_small || dual.big_pointer() != want_big)
                        return failure(Error::malformed_record);
                    if (small != no_table_node) {
                        if (nodes_[small].parent != node || nodes_[small].parent_index != i)
                            return failure(Error::malformed_record);
                        GPUMMU_TRY(audit(small, depth + 1, reached));
                    }
                    if (big_child != no_table_node) {
                        if (nodes_[big_child].parent != node ||
                            nodes_[big_child].parent_index != i + 256)
                            return failure(Error::malformed_record);
                        GPUMMU_TRY(audit(big_child, depth + 1, reached));
                        GPUMMU_TRY(audit_no_valid_4k(big_child, small));
                    }
                    ++live;
                    continue;
                }
                GPUMMU_TRY(audit_directory_word(dual.is_pte(), dual.state(), words[2 * i],
                                                words[2 * i + 1], mapped, sparse));
                live += (mapped || sparse) ? 1u : 0u;
                continue;
            }
            const u32 child = (big || depth == small_depth) ? no_table_node : child_at(node, i);
            if (child != no_table_node) {
                const auto pde = F::Pde::from_raw(words[i]);
                if (mapped || sparse || pde.is_pte() ||
                    pde.pointer() !=
                        TablePointer{Aperture::video, physical(nodes_[child].page.address)} ||
                    nodes_[child].parent != node || nodes_[child].parent_index != i)
                    return failure(Error::malformed_record);
                GPUMMU_TRY(audit(child, depth + 1, reached));
                ++live;
                continue;
            }
            const bool nv4k = big && ((table.no_valid_4k >> i) & 1u);
            if (nv4k) {
                if (mapped || sparse || F::Pte::from_raw(words[i]).state() != PteState::no_valid_4k)
                    return failure(Error::malformed_record);
                continue;
            }
            if (!big && depth < small_depth) {
                const auto pde = F::Pde::from_raw(words[i]);
                GPUMMU_TRY(
                    audit_directory_word(pde.is_pte(), pde.state(), words[i], 0, mapped, sparse));
            } else {
                GPUMMU_TRY(audit_leaf_word(F::Pte::from_raw(words[i]), mapped, sparse, true));
            }
            live += (mapped || sparse) ? 1u : 0u;
        }
        if (live != table.live) return failure(Error::malformed_record);
        if (live == 0 && node != root_ && !table.has(PageTableNode::foreign))
            return failure(Error::malformed_record);
        return success();
    }

    [[nodiscard]] static Result<void> audit_leaf_word(typename F::Pte pte, bool mapped, bool sparse,
                                                      bool high_clear) noexcept
    {
        if (!high_clear) return failure(Error::malformed_record);
        if (mapped)
            return pte.state() == PteState::valid ? success() : failure(Error::malformed_record);
        if (sparse)
            return pte.state() == PteState::sparse ? success() : failure(Error::malformed_record);
        return pte.raw() == 0 ? success() : failure(Error::malformed_record);
    }

    // A directory entry with no table below: a large page (IS_PTE with a valid PTE),
    // sparse, or all zero.
    [[nodiscard]] static Result<void> audit_directory_word(bool is_pte, PdeState state, u64 low,
                                                           u64 high, bool mapped,
                                                           bool sparse) noexcept
    {
        bool good = false;
        if (mapped)
            good = is_pte && F::Pte::from_raw(low).state() == PteState::valid && high == 0;
        else if (sparse)
            good = !is_pte && state == PdeState::sparse;
        else
            good = low == 0 && high == 0;
        return good ? success() : failure(Error::malformed_record);
    }

    // Recomputes the NV4K rule chunk by chunk on its own, not through small_chunk_content():
    // an audit sharing the code it checks would miss that code's bugs.
    [[nodiscard]] Result<void> audit_no_valid_4k(u32 big, u32 small) const noexcept
    {
        const PageTableNode &table = nodes_[big];
        const u32 content = static_cast<u32>(table.mapped.word(0) | table.sparse_backed.word(0));
        u32 wanted = 0;
        if (small != no_table_node) {
            const PageTableNode &below = nodes_[small];
            u32 small_content = 0;
            for (unsigned chunk = 0; chunk < big_entries; ++chunk) {
                const bool mapped_below = below.mapped.any(chunk * chunk_pages, chunk_pages);
                const bool any =
                    mapped_below || below.sparse_backed.any(chunk * chunk_pages, chunk_pages);
                // Content in both only as sparse small pages beneath a valid big PTE.
                const bool hidden_sparse =
                    table.mapped.test(chunk) && !table.sparse_backed.test(chunk) && !mapped_below;
                if (any && ((content >> chunk) & 1u) && !hidden_sparse)
                    return failure(Error::malformed_record);
                if (any) small_content |= 1u << chunk;
            }
            wanted = ~content & ~small_content;
        }
        return wanted == table.no_valid_4k ? success() : failure(Error::malformed_record);
    }

    M *memory_;
    S *pages_;
    std::span<PageTableNode> nodes_;
    std::span<PageTableChildren> children_;
    PageTableConfig config_;
    u32 root_ = no_table_node;
    u32 free_nodes_ = no_table_node;
    std::size_t spare_nodes_ = 0;     // on the free list
    std::size_t spare_children_ = 0;  // child blocks on their free list
    u32 free_children_ = no_table_node;
    u32 retired_ = no_table_node;
    u32 prepared_head_ = no_table_node;
    bool plan_outstanding_ = false;
    PageTableStats stats_{};
    // An adopted root's foreign ranges and the hash of its foreign tables' words.
    std::array<ForeignRange, max_foreign_ranges> foreign_{};
    std::size_t foreign_count_ = 0;
    u64 foreign_hash_ = 0;
    // State of the operation being run (one at a time).
    Request request_{};
    std::size_t segment_ = 0;
    u64 segment_va_ = 0;
    TlbBatch *batch_ = nullptr;
};

// Member functions defined outside the class, so that an `extern template` declaration
// of an instantiation keeps them out of the including translation unit (docs/consuming.md).
template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::create(M &memory, S &pages, PageTableStorage storage,
                                PageTableConfig config) noexcept -> Result<PageTable>
{
    PageTable table(memory, pages, storage, config);
    GPUMMU_TRY(table.check_config());
    auto node = table.allocate_node(0, false);
    if (!node) return failure(node.error());
    auto page = pages.allocate_table(TableSize::small_page_or_directory);
    if (!page) return failure(page.error());
    table.nodes_[*node].page = *page;
    table.finish_root(*node);
    return table;
}

template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::with_root(M &memory, S &pages, PageTableStorage storage, VramAddress root,
                                   PageTableConfig config) noexcept -> Result<PageTable>
{
    if (!root.is_aligned_to(4096)) return failure(Error::misaligned);
    PageTable table(memory, pages, storage, config);
    GPUMMU_TRY(table.check_config());
    auto node = table.allocate_node(0, false);
    if (!node) return failure(node.error());
    table.nodes_[*node].page = TablePage{root, TableSize::small_page_or_directory};
    table.nodes_[*node].flags |= PageTableNode::caller_root;
    table.finish_root(*node);
    u64 hash = foreign_hash_start;
    GPUMMU_TRY(table.adopt(*node, 0, 0, hash));
    if (table.foreign_count_ != 0 || table.stats_.foreign_tables != 0) {
        table.nodes_[*node].flags |= PageTableNode::foreign;
        table.foreign_hash_ = hash;
        GPUMMU_TRY(table.check_invariants());  // the shadow built says what VRAM says
    }
    return table;
}

template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::prepare_map(VirtualRange range, std::span<const PhysicalSegment> segments,
                                     const PageAttributes &attributes, MapOptions options) noexcept
    -> Result<Prepared>
{
    if (plan_outstanding_) return failure(Error::invalid_argument);
    Request request;
    request.operation = Operation::map;
    request.segments = segments;
    request.attributes = attributes;
    request.replace = options.replace;
    GPUMMU_TRY(validate_range(range, request));
    GPUMMU_TRY(check_foreign(request));
    GPUMMU_TRY(validate_map(request, options));
    auto prepared = run_prepare(request);
    if (!prepared) return failure(prepared.error());
    plan_outstanding_ = true;
    return Prepared(request, *prepared, this);
}

template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::commit(Prepared &&plan) noexcept -> Result<TlbBatch>
{
    if (plan.owner_ != this) return failure(Error::invalid_argument);
    plan.owner_ = nullptr;
    plan_outstanding_ = false;
    return run_commit(plan.request_);
}

template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::cancel(Prepared &&plan) noexcept -> void
{
    if (plan.owner_ != this) return;
    plan.owner_ = nullptr;
    plan_outstanding_ = false;
    release_prepared(plan.prepared_);
}

template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::map(VirtualRange range, std::span<const PhysicalSegment> segments,
                             const PageAttributes &attributes, MapOptions options) noexcept
    -> Result<TlbBatch>
{
    auto plan = prepare_map(range, segments, attributes, options);
    if (!plan) return failure(plan.error());
    return commit(std::move(*plan));
}

template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::map(VirtualRange range, const PageAttributes &attributes,
                             MapOptions options) noexcept -> Result<TlbBatch>
{
    const PhysicalSegment segment{attributes.address, range.size()};
    return map(range, std::span<const PhysicalSegment>(&segment, 1), attributes, options);
}

template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::unmap(VirtualRange range) noexcept -> Result<TlbBatch>
{
    return change(range, Operation::unmap);
}

template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::make_sparse(VirtualRange range) noexcept -> Result<TlbBatch>
{
    return change(range, Operation::make_sparse);
}

template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::clear_sparse(VirtualRange range) noexcept -> Result<TlbBatch>
{
    return change(range, Operation::clear_sparse);
}

template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::release_retired(const TlbBatch &finished) noexcept -> Result<void>
{
    if (finished.pending()) return failure(Error::invalid_argument);
    while (retired_ != no_table_node) {
        u32 node = retired_;
        PageTableNode &record = nodes_[node];
        const bool big = record.has(PageTableNode::big);
        // Retired tables hold only invalid words, except big tables (NV4K words, or the
        // PTEs of whole 64 KiB tables an unmap left: the page source zeroes big tables
        // itself) and folded tables' sparse words.
        GPUMMU_TRY(pages_->free_table(record.page, !big && !record.has(PageTableNode::folded)));
        retired_ = record.next;
        --stats_.retired_tables;
        free_node(node);
    }
    return success();
}

template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::release_root() noexcept -> Result<void>
{
    if (root_ == no_table_node) return failure(Error::invalid_argument);
    if (prepared_head_ != no_table_node || retired_ != no_table_node) return failure(Error::in_use);
    if (stats_.tables() != 1) return failure(Error::in_use);
    const PageTableNode &root = nodes_[root_];
    if (root.has(PageTableNode::foreign)) {
        // Adopted: the foreign tables must hold exactly the words they held when
        // adopted (everything mapped into them was unmapped); then only the shadow goes.
        u64 hash = foreign_hash_start;
        GPUMMU_TRY(hash_foreign(root_, hash));
        if (hash != foreign_hash_) return failure(Error::in_use);
        for (u32 i = 0; i < nodes_.size(); ++i) {
            if (!nodes_[i].has(PageTableNode::foreign)) continue;
            unlink_children(i, [](u32) {});  // the whole tree goes at once
            if (i != root_) free_node(i);
        }
        free_node(root_);
        root_ = no_table_node;
        stats_ = PageTableStats{};
        foreign_count_ = 0;
        release_spare_pages();
        return success();
    }
    std::array<u64, 512> words{};
    constexpr std::size_t root_words = F::levels[0].table_bytes() / sizeof(u64);
    GPUMMU_TRY(memory_->read(root.page.address, std::span<u64>(words.data(), root_words)));
    for (std::size_t i = 0; i < root_words; ++i)
        if (words[i] != 0) return failure(Error::in_use);
    if (!root.has(PageTableNode::caller_root))
        GPUMMU_TRY(pages_->free_table(root.page, true));  // every word invalid: zero
    free_node(root_);
    root_ = no_table_node;
    stats_ = PageTableStats{};
    release_spare_pages();
    return success();
}

template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::sparse_pages(VirtualRange range) const noexcept -> u64
{
    if (root_ == no_table_node || range.empty()) return 0;
    u64 end = range.end().value();
    if constexpr (F::va_bits < 64) end = std::min(end, u64{1} << F::va_bits);
    if (range.begin().value() >= end) return 0;
    return sparse_pages_below(root_, 0, range.begin().value(), end);
}

template <MmuFormat F, TableMemory M, TablePageSource S>
auto PageTable<F, M, S>::check_invariants() const noexcept -> Result<void>
{
    u64 reached = 0;
    GPUMMU_TRY(audit(root_, 0, reached));
    u64 in_use = 0, retired = 0;
    for (const PageTableNode &node : nodes_) {
        if (!node.has(PageTableNode::in_use)) continue;
        if (node.has(PageTableNode::retired))
            ++retired;
        else
            ++in_use;
        if (node.has(PageTableNode::prepared) && !plan_outstanding_)
            return failure(Error::malformed_record);
    }
    // A block on the free list holds no table (allocate_node does not fill it): its bitmap
    // is empty, and the bitmap of every block matched its links while it was in use (audit
    // checks the blocks of reachable directories; blocks are emptied before they are freed).
    std::size_t free_blocks = 0;
    for (u32 block = free_children_; block != no_table_node; block = children_[block].next) {
        if (block >= children_.size() || ++free_blocks > children_.size() ||
            !children_[block].present.none())
            return failure(Error::malformed_record);
    }
    if (free_blocks != spare_children_) return failure(Error::malformed_record);
    if (plan_outstanding_) return success();  // prepared nodes are not reachable yet
    if (in_use != reached || retired != stats_.retired_tables)
        return failure(Error::malformed_record);
    return success();
}

}  // namespace gpummu
