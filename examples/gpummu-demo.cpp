// gpummu-demo: the README's main job, on simulated GPUs (no hardware is touched).
//
//   gpummu-demo [--chip ga102|gh100|all] [--vram BYTES] [--buffer BYTES] [--svg FILE]
//
// BYTES: a number, or one with a K, M, G or T suffix (--vram 512M). --svg FILE draws the
// first chip's BAR1 page-table tree and a map of its VRAM (free, known zero, allocated,
// page tables, firmware's) while the buffer of step 4 is mapped.
//
// For each chip (default: a simulated GA102, MMU v2, then a simulated GH100, MMU v3):
//   1. boot the simulator: BOOT_0/42, PRAMIN window register, TLB registers, GSP-style FB
//      regions with the BAR1 root in reserved VRAM;
//   2. build GpuMm from BAR0 and the FB layout (buddy over every usable region, PRAMIN window,
//      TLB, BAR1 user over GSP's root);
//   3. run the PRAMIN and BAR1 self-tests;
//   4. allocate a buffer (default 64 MiB) from the buddy, map it through BAR1 with automatic
//      page sizes, write a pattern to every 64-bit word through BAR1, verify every word
//      through PRAMIN, release;
//   5. print the page-table tree (tables per level, entries per page size), TLB invalidations
//      and PRAMIN window moves;
//   6. two GPU contexts map one buffer, found by the reference MMU through their instance
//      blocks;
//   7. a bind job (map a buffer, punch a hole, make a sparse range, make part read-only) in
//      a bind space, its mappings printed; the buffer is evicted to system memory and
//      rebound; the reference MMU walks VRAM after each step.
// Exit status 0 only if every check passed; 1 otherwise; 2 for bad arguments.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

#include "cli.hpp"
#include "table_picture.hpp"
#include "gpummu/gpummu.hpp"
#include "gpummu/hw/gpu_mm.hpp"
#include "gpummu/hw/selftest.hpp"

namespace {

using namespace gpummu;
using Mm = GpuMm<sim::Gpu::Bar0, sim::Gpu::Bar1>;

int failures = 0;
const char *svg_path = nullptr;  // --svg: drawn once, for the first chip

void check(bool condition, const char *what)
{
    if (!condition) {
        std::printf("  CHECK FAILED: %s\n", what);
        ++failures;
    }
}

constexpr const char *usage_line =
    "usage: gpummu-demo [--chip ga102|gh100|all] [--vram BYTES] [--buffer BYTES] [--svg FILE]";

[[noreturn]] void usage(const char *message)
{
    std::fprintf(stderr, "gpummu-demo: %s\n%s\n", message, usage_line);
    std::exit(2);
}

u64 parse_bytes(const char *text)
{
    u64 value = 0;
    if (!cli::parse_size(text, value))
        usage("BYTES: a number (decimal or 0x-hex), or one with a K, M, G or T suffix (64M)");
    return value;
}

// --svg: the BAR1 tables (walked from GSP's root in VRAM, as the MMU sees them) over a map of
// VRAM from the buddy's blocks.
template <class F>
bool draw_picture(const char *path, std::vector<u64> &vram, Mm &mm, const FbLayout &layout,
                  u64 bar1_bytes)
{
    HostMemory memory(vram);
    struct Collect {
        std::vector<WalkedTable> tables;
        Result<void> table(const WalkedTable &table)
        {
            tables.push_back(table);
            return success();
        }
        void page(const WalkedPage &) {}
    } collect;
    const u64 vram_end = vram.size() * 8;
    auto walked =
        walk_tables<F>(memory, VramAddress{vram_end},
                       TablePointer{Aperture::video, PhysicalAddress{layout.bar1_pdb().value()}},
                       VirtualAddress{0}, VirtualAddress{bar1_bytes}, collect);
    if (!walked) return false;
    std::vector<VramSpan> spans;
    for (const VramRange &region : layout.usable_regions()) {
        for (u64 at = region.begin().value(); at < region.end().value();) {
            auto here = mm.buddy().block_state_at(VramAddress{at});
            if (!here) return false;
            const VramUse use = here->state == BuddyBlockState::allocated ? VramUse::allocated
                                : here->state == BuddyBlockState::free_cleared
                                    ? VramUse::free_cleared
                                    : VramUse::free_dirty;
            at = here->block.address.value() + here->block.size;
            spans.push_back({here->block.address.value(), at, use});
        }
    }
    for (const WalkedTable &table : collect.tables)
        spans.push_back({table.address.value(),
                         table.address.value() + (table.big_page_table ? 256 : 4096),
                         VramUse::tables});
    return write_tree_and_vram_picture<F>(
        path, memory, collect.tables, "BAR1 page tables (GSP's root, adopted)", spans, vram_end);
}

template <class F>
void print_levels(const PageTableStats &stats)
{
    std::printf("  page tables (BAR1 address space, MMU %s):\n", F::name);
    for (std::size_t depth = 0; depth < F::levels.size(); ++depth)
        std::printf("    %-4s VA %2u:%-2u  %3" PRIu64 " table%s%s\n", F::levels[depth].name,
                    F::levels[depth].va_high, F::levels[depth].va_low,
                    stats.tables_per_level[depth], stats.tables_per_level[depth] == 1 ? "" : "s",
                    depth == 0 ? "  (GSP's root, not owned)" : "");
    std::printf("    PT64K VA 20:16  %3" PRIu64 " big table%s (256 B each)\n", stats.big_tables,
                stats.big_tables == 1 ? "" : "s");
    std::printf("    total %" PRIu64 " tables, %" PRIu64 " bytes (ours; GSP's %" PRIu64
                " tables below its root are adopted, not counted)\n",
                stats.tables(), stats.table_bytes, stats.foreign_tables);
}

// Two GPU contexts (channel address spaces) map one buffer; each gets an instance block
// whose PDB words the reference MMU follows, as an engine bound to it would.
void run_contexts(sim::Gpu &gpu, Mm &mm, std::span<const u64> vram, u64 buffer_bytes)
{
    struct Storage {
        std::vector<RangeNode> range_nodes = std::vector<RangeNode>(RangeAllocator::nodes_for(16));
        std::vector<PageTableNode> nodes = std::vector<PageTableNode>(1024);
        std::vector<PageTableChildren> children = std::vector<PageTableChildren>(32);
        std::vector<BigTableSlot> big_tables = std::vector<BigTableSlot>(32);
        std::vector<MappingRecord> handles = std::vector<MappingRecord>(16);
        AddressSpaceStorage get() { return {range_nodes, {nodes, children}, big_tables, handles}; }
    };
    const u64 free_before = mm.buddy().free_bytes();
    const u64 invalidates_before = gpu.invalidate_count();
    std::array<Storage, 2> storage;
    std::array<Mm::Context, 2> contexts;
    std::array<BuddyBlock, 2> instance_blocks{};
    std::vector<BuddyBlock> blocks(1024);
    auto buffer = mm.buddy().allocate(buffer_bytes, {.min_block_size = 64 * 1024}, blocks);
    check(buffer.has_value(), "the context buffer is allocated");
    if (!buffer) return;
    std::vector<PhysicalSegment> segments;
    for (const BuddyBlock &block : buffer->blocks)
        segments.push_back({PhysicalAddress{block.address.value()}, block.size});
    const sim::ReferenceMmu engine(mm.chip().mmu_version == MmuVersion::v2
                                       ? sim::MmuGeneration::ver2
                                       : sim::MmuGeneration::ver3,
                                   vram);
    for (std::size_t i = 0; i < contexts.size(); ++i) {
        if (!mm.create_context(contexts[i], storage[i].get())) {
            check(false, "a GPU context is created");
            return;
        }
        auto mapping = contexts[i].map(segments, PageAttributes{});
        check(mapping.has_value(), "the buffer maps in the context");
        auto pdb = mm.page_directory_base(contexts[i]);
        check(mm.buddy().allocate(4096, {}, std::span(&instance_blocks[i], 1)).has_value() &&
                  pdb.has_value() &&
                  write_page_directory_base(mm.pramin(), instance_blocks[i].address, *pdb)
                      .has_value(),
              "the context's instance block is written");
        if (!mapping || !pdb) return;
        // An engine bound to the instance block reads every 64 KiB of the buffer where it is.
        u64 wrong = 0, at = 0;
        for (const BuddyBlock &block : buffer->blocks)
            for (u64 offset = 0; offset < block.size; offset += 64 * 1024, at += 64 * 1024) {
                auto walked = engine.walk_instance(instance_blocks[i].address.value(),
                                                   mapping->range.begin().value() + at);
                if (walked.kind != sim::ReferenceTranslation::Kind::mapped ||
                    walked.pa != block.address.value() + offset)
                    ++wrong;
            }
        const AddressSpaceStats stats = contexts[i].stats();
        std::printf("  context %zu: PDB 0x%" PRIx64 " (instance block 0x%" PRIx64
                    ", PDB word 0x%016" PRIx64 "), buffer at VA 0x%" PRIx64 ", %" PRIu64
                    " tables in %" PRIu64 " KiB of VRAM, %" PRIu64 " wrong walks\n",
                    i, pdb->root.value(), instance_blocks[i].address.value(),
                    encode_page_directory_base(*pdb).value(), mapping->range.begin().value(),
                    stats.tables.tables(), stats.table_vram_bytes >> 10, wrong);
        check(wrong == 0, "an engine bound to the context finds the buffer");
    }
    check(mm.page_directory_base(contexts[0])->root != mm.page_directory_base(contexts[1])->root,
          "each context has its own page directory");
    for (Mm::Context &context : contexts)
        check(context.destroy().has_value(), "the context is destroyed");
    check(mm.buddy().free(instance_blocks).has_value() &&
              mm.buddy().free(buffer->blocks).has_value(),
          "the buffer and instance blocks go back");
    std::printf("  two contexts mapped and destroyed: %" PRIu64
                " TLB invalidations, VRAM free %s\n",
                gpu.invalidate_count() - invalidates_before,
                mm.buddy().free_bytes() == free_before ? "as before" : "NOT as before");
    check(mm.buddy().free_bytes() == free_before, "every context table went back to the buddy");
}

// A bind job in a VM_BIND-style address space over the same VRAM, then an eviction.
template <MmuFormat F>
void run_bind_job(sim::Gpu &gpu, Mm &mm, std::span<const u64> vram)
{
    using Space = BindSpace<F, Mm::Window, Mm::Invalidator>;
    constexpr u64 KiB = 1024, MiB = 1024 * KiB;
    const u64 free_before = mm.buddy().free_bytes();
    const u64 invalidates_before = gpu.invalidate_count();
    std::vector<PageTableNode> nodes(512);
    std::vector<PageTableChildren> children(32);
    std::vector<BigTableSlot> big_tables(32);
    std::vector<MappingNode> records(64), projected(64);
    std::vector<OrderedIndexNode> records_index(MappingRecords::index_nodes_for(64)),
        projected_index(MappingRecords::index_nodes_for(64));
    Space space;
    BindSpaceConfig config;
    config.space = VirtualRange::from_size(VirtualAddress{0}, u64{1} << 40).value();
    config.page_table.page_sizes = mm.chip().page_sizes;
    config.vram_end = mm.layout().vram_end();
    if (!space.create(
            mm.pramin(), mm.buddy(), mm.tlb(),
            {{nodes, children}, big_tables, records, projected, records_index, projected_index},
            config)) {
        check(false, "the bind space is created");
        return;
    }
    // A 4 MiB buffer object in VRAM blocks of at least 64 KiB.
    std::vector<BuddyBlock> blocks(64);
    auto buffer = mm.buddy().allocate(4 * MiB, {.min_block_size = 64 * KiB}, blocks);
    check(buffer.has_value(), "the bind-job buffer is allocated");
    if (!buffer) return;
    std::vector<PhysicalSegment> layout;
    for (const BuddyBlock &block : buffer->blocks)
        layout.push_back({PhysicalAddress{block.address.value()}, block.size});
    MappingBacking object(Aperture::video, layout);
    const u64 base = 0x10'0000'0000;
    auto range = [&](u64 offset, u64 size) {
        return VirtualRange::from_size(VirtualAddress{base + offset}, size).value();
    };
    std::array<BindOperation, 4> job{};
    job[0].kind = BindOperation::Kind::map;
    job[0].range = range(0, 4 * MiB);
    job[0].target = {&object, 0};
    job[1].kind = BindOperation::Kind::unmap;
    job[1].range = range(1 * MiB, 64 * KiB);
    job[2].kind = BindOperation::Kind::make_sparse;
    job[2].range = range(4 * MiB, 2 * MiB);
    job[3].kind = BindOperation::Kind::protect;
    job[3].range = range(0, 256 * KiB);
    job[3].change.fields = AttributeChange::read_only;
    job[3].change.values.read_only = true;
    unsigned steps = 0;  // record steps the commits reported
    auto run = [&](std::span<const BindOperation> operations) {
        auto prepared = space.prepare(operations);
        if (!prepared) return false;
        auto batch = space.commit(std::move(*prepared), [&](const MappingStep &) { ++steps; });
        return batch && space.flush(*batch);
    };
    check(run(job) && steps == 4, "the bind job is prepared and committed: mapped, remapped "
                                  "around the hole, cut and protected");
    auto print = [](std::string_view text) {
        std::printf("%.*s", static_cast<int>(text.size()), text.data());
    };
    std::printf("  bind job (map 4 MiB, unmap 64 KiB, sparse 2 MiB, read-only 256 KiB):\n");
    bool line_start = true;
    dump_mappings_text(space.records(), [&](std::string_view text) {
        if (line_start) print("    ");
        print(text);
        line_start = !text.empty() && text.back() == '\n';
    });
    const sim::ReferenceMmu engine(
        F::version == MmuVersion::v2 ? sim::MmuGeneration::ver2 : sim::MmuGeneration::ver3, vram);
    const u64 pdb = space.root().address.value();
    auto walk = [&](u64 offset) { return engine.walk(pdb, base + offset); };
    const u64 first_block = buffer->blocks[0].address.value();
    check(walk(0).kind == sim::ReferenceTranslation::Kind::mapped && walk(0).read_only &&
              walk(0).pa == first_block,
          "the walker finds the buffer's first page, read-only");
    check(walk(1 * MiB).kind == sim::ReferenceTranslation::Kind::unmapped,
          "the walker finds the hole");
    check(walk(5 * MiB).kind == sim::ReferenceTranslation::Kind::sparse,
          "the walker finds the sparse range");
    // Evicted: the bytes move to system memory (as a driver would copy them), every
    // record of the buffer is rebound in one job.
    const std::array in_system{PhysicalSegment{PhysicalAddress{u64{1} << 36}, 4 * MiB}};
    check(object.relocate(Aperture::system_coherent, in_system).has_value(),
          "the buffer object moves to system memory");
    std::array<BindOperation, 8> rebind{};
    const std::size_t count = space.rebind_operations(object, rebind);
    check(count > 0 && count <= rebind.size() && run(std::span(rebind).first(count)),
          "the rebind job is committed");
    check(walk(0).kind == sim::ReferenceTranslation::Kind::mapped && walk(0).aperture == 2 &&
              walk(0).pa == (u64{1} << 36) && walk(0).read_only,
          "the walker finds the page in system memory, still read-only");
    std::printf("  evicted to system memory and rebound: %zu records in one job, first page now "
                "at 0x%" PRIx64 " (system coherent)\n",
                count, walk(0).pa);
    check(space.destroy().has_value() && mm.buddy().free(buffer->blocks).has_value(),
          "the bind space is destroyed");
    std::printf("  bind space destroyed: %" PRIu64 " TLB invalidations, VRAM free %s\n",
                gpu.invalidate_count() - invalidates_before,
                mm.buddy().free_bytes() == free_before ? "as before" : "NOT as before");
    check(mm.buddy().free_bytes() == free_before, "every bind-space table went back");
}

void run_chip(const sim::ChipModel &chip, u64 vram_bytes, u64 buffer_bytes)
{
    std::vector<u64> vram(vram_bytes / 8, 0x5A5A5A5A5A5A5A5Aull);  // power-on garbage
    auto made = sim::Gpu::create(chip, vram);
    if (!made) {
        std::printf("%s: cannot simulate: %s\n", chip.name, error_name(made.error()));
        ++failures;
        return;
    }
    auto gpu = std::make_unique<sim::Gpu>(std::move(*made));
    const sim::GspStaticInfo info = gpu->gsp_static_info();  // as GSP reports it
    auto layout = FbLayout::from_records(info.fb_regions, VramAddress{info.bar1_pde_base});
    check(layout.has_value(), "GSP's FB layout is well formed");
    if (!layout) return;

    std::vector<u64> buddy_words(Mm::buddy_metadata_words(*layout).value());
    std::vector<RangeNode> range_nodes(RangeAllocator::nodes_for(256));
    std::vector<PageTableNode> table_nodes(4096);
    std::vector<PageTableChildren> directories(64);
    std::vector<BigTableSlot> big_tables(64);
    std::vector<MappingRecord> handles(256);
    std::vector<PhysicalSegment> scratch(4096);
    auto mm = std::make_unique<Mm>();
    auto created = mm->create(
        gpu->bar0(), gpu->bar1(), *layout, gpu->bar1_bytes(),
        {buddy_words, {{range_nodes, {table_nodes, directories}, big_tables, handles}, scratch}});
    if (!created) {
        std::printf("%s: GpuMm: %s\n", chip.name, error_name(created.error()));
        ++failures;
        return;
    }
    const ChipRecord &record = mm->chip();
    std::printf("%s: %s, chip id 0x%03x (from BOOT_%s), MMU %s, PRAMIN window reg 0x%06x "
                "(BASE %u bits, reach %" PRIu64 " GiB)\n",
                chip.name, record.name, mm->chip_id().chip_id(),
                mm->chip_id().from_boot42 ? "42" : "0", mmu_version_name(record.mmu_version),
                record.window.offset, record.window.base_bits, record.window.reach() >> 30);
    std::printf("  VRAM %" PRIu64 " MiB; usable:", vram_bytes >> 20);
    for (const VramRange &range : layout->usable_regions())
        std::printf(" [0x%" PRIx64 ", 0x%" PRIx64 ")", range.begin().value(), range.end().value());
    std::printf("; BAR1 root at 0x%" PRIx64 " (GSP-reserved), BAR1 %" PRIu64 " MiB\n",
                layout->bar1_pdb().value(), gpu->bar1_bytes() >> 20);
    // GSP's BAR1 tables, adopted as they are: what they hold is never touched.
    mm->bar1().address_space().with_page_table([](const auto &table) {
        std::printf("  GSP's BAR1 tables adopted (%" PRIu64 " below the root):",
                    table.stats().foreign_tables);
        for (const ForeignRange &range : table.foreign_ranges())
            std::printf(" [0x%" PRIx64 ", 0x%" PRIx64 ") %s", range.begin, range.end,
                        range.mapped ? "GSP's pages" : "sparse");
        std::printf("\n");
        return 0;
    });

    // Self-tests.
    const SelfTestReport report = run_selftests(*mm);
    std::size_t passed = 0;
    for (std::size_t i = 0; i < report.count; ++i) {
        const SelfTestResult &result = report.results[i];
        passed += result.passed ? 1 : 0;
        std::printf("  self-test %-22s %s%s%s\n", result.name, result.passed ? "ok" : "FAILED",
                    result.passed ? "" : ": ", result.detail);
    }
    std::printf("  self-tests: %zu of %zu passed\n", passed, report.count);
    check(report.all_passed(), "every self-test passed");

    // A buffer mapped through BAR1, written through BAR1, verified through PRAMIN.
    const u64 invalidates_before = gpu->invalidate_count();
    const u64 moves_before = mm->pramin().moves();
    std::vector<BuddyBlock> blocks(1024);
    auto allocation = mm->buddy().allocate(buffer_bytes, {}, blocks);
    check(allocation.has_value(), "the buffer is allocated from the buddy");
    if (!allocation) return;
    auto mapping = mm->bar1().map(allocation->blocks);
    check(mapping.has_value(), "the buffer maps through BAR1");
    if (mapping) {
        std::printf("  buffer: %" PRIu64 " MiB in %zu buddy block%s, BAR1 offsets [0x%" PRIx64
                    ", 0x%" PRIx64 ")\n",
                    allocation->size >> 20, allocation->blocks.size(),
                    allocation->blocks.size() == 1 ? "" : "s", mapping->range().begin().value(),
                    mapping->range().end().value());
        // Entries per page size, from the page table's own translation.
        u64 pages[64] = {};
        for (u64 offset = 0; offset < mapping->size();) {
            auto translation = mm->bar1().translate(mapping->range().begin().value() + offset);
            if (!translation || translation->state != TranslationState::mapped) {
                check(false, "every page of the buffer translates");
                break;
            }
            ++pages[translation->page_size.shift()];
            offset += translation->page_size.bytes();
        }
        std::printf("  entries per page size:");
        for (unsigned shift : {29u, 21u, 16u, 12u})
            if (pages[shift] != 0)
                std::printf(" %" PRIu64 " x %s", pages[shift],
                            shift == 29   ? "512 MiB"
                            : shift == 21 ? "2 MiB"
                            : shift == 16 ? "64 KiB"
                                          : "4 KiB");
        std::printf("\n");
        const auto stats = mm->bar1().stats().tables;
        if (record.mmu_version == MmuVersion::v2)
            print_levels<MmuV2>(stats);
        else
            print_levels<MmuV3>(stats);
        if (svg_path != nullptr) {
            const bool drawn =
                record.mmu_version == MmuVersion::v2
                    ? draw_picture<MmuV2>(svg_path, vram, *mm, *layout, gpu->bar1_bytes())
                    : draw_picture<MmuV3>(svg_path, vram, *mm, *layout, gpu->bar1_bytes());
            check(drawn, "the picture is drawn (--svg)");
            if (drawn) std::printf("  picture of the BAR1 tables and VRAM: %s\n", svg_path);
            svg_path = nullptr;
        }

        bool written = true;
        for (u64 offset = 0; offset < mapping->size() && written; offset += 8)
            written =
                mapping->write64(offset, offset * 0x9E3779B97F4A7C15ull ^ 0xC0FFEE).has_value();
        check(written, "the pattern is written through BAR1");
        u64 wrong = 0, at = 0;
        for (const BuddyBlock &block : allocation->blocks) {
            for (u64 offset = 0; offset < block.size; offset += 8, at += 8) {
                auto word = mm->pramin().read64(block.address + offset);
                if (!word || *word != (at * 0x9E3779B97F4A7C15ull ^ 0xC0FFEE)) ++wrong;
            }
        }
        std::printf("  pattern: %" PRIu64 " words written through BAR1, %" PRIu64
                    " wrong when read back through PRAMIN\n",
                    mapping->size() / 8, wrong);
        check(wrong == 0, "PRAMIN reads back every word BAR1 wrote");
        check(mm->bar1().release(*mapping).has_value(), "the buffer unmaps");
        check(mm->bar1().stats().tables.tables() == 1,
              "unmapping frees every table but GSP's root");
    }
    check(mm->buddy().free(allocation->blocks).has_value(), "the buffer goes back to the buddy");
    std::printf("  TLB invalidations %" PRIu64 " (hub-only, last PDB 0x%" PRIx64
                "), PRAMIN window moves %" PRIu64 ", BAR1 faults %" PRIu64
                " (GSP left BAR1 sparse: released offsets read zero), invalidates before ordered "
                "writes %" PRIu64 "\n",
                gpu->invalidate_count() - invalidates_before, gpu->last_invalidate().pdb,
                mm->pramin().moves() - moves_before, gpu->bar1_faults(),
                gpu->unordered_invalidates());
    check(gpu->unordered_invalidates() == 0, "every invalidate came after a PRAMIN read-back");
    check(gpu->last_invalidate().pdb == layout->bar1_pdb().value(), "invalidates name GSP's root");
    run_contexts(*gpu, *mm, vram, buffer_bytes);
    if (record.mmu_version == MmuVersion::v2)
        run_bind_job<MmuV2>(*gpu, *mm, vram);
    else
        run_bind_job<MmuV3>(*gpu, *mm, vram);
}

}  // namespace

int main(int argc, char **argv)
{
    std::string_view chip = "all";
    u64 vram = 256ull << 20;
    u64 buffer = 64ull << 20;
    for (int i = 1; i < argc; ++i) {
        std::string_view argument = argv[i];
        if (i + 1 >= argc && argument != "--help") usage("missing value");
        if (argument == "--chip")
            chip = argv[++i];
        else if (argument == "--vram")
            vram = parse_bytes(argv[++i]);
        else if (argument == "--buffer")
            buffer = parse_bytes(argv[++i]);
        else if (argument == "--svg")
            svg_path = argv[++i];
        else if (argument == "--help") {
            std::puts(usage_line);
            return 0;
        } else
            usage("unknown argument");
    }
    if (chip != "all" && chip != "ga102" && chip != "gh100")
        usage("--chip wants ga102, gh100 or all");
    if (vram < (32ull << 20) || vram % (2ull << 20) != 0 || vram > (8ull << 30))
        usage("--vram wants a multiple of 2 MiB between 32 MiB and 8 GiB");
    if (buffer == 0 || buffer > vram / 2) usage("--buffer wants 1 byte .. half the VRAM");
    std::printf("gpummu-demo: simulated GPUs (nothing here touches hardware)\n");
    if (chip != "gh100") run_chip(sim::ga102, vram, buffer);
    if (chip != "ga102") run_chip(sim::gh100, vram, buffer);
    std::printf("%s: %d check%s failed\n", failures == 0 ? "ok" : "FAILED", failures,
                failures == 1 ? "" : "s");
    return failures == 0 ? 0 : 1;
}
