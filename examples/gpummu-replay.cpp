// gpummu-replay: run a script of bind operations against gpummu's BindSpace.
//
//   gpummu-replay --mmu v2|v3 [--vram BYTES] [--image FILE] < SCRIPT
//   (BYTES: a number, or one with a K, M or G suffix: --vram 64M)
//
// Script lines ('#' starts a comment; numbers are 0x-hex or decimal):
//   map VA PA SIZE [page=auto|4k|64k|2m|512m] [ro] [priv] [noatomic] [uncached]
//                  [aperture=vram|sys_coherent|sys_noncoherent] [kind=N] [replace]
//   unmap VA SIZE
//   sparse VA SIZE
//   clear_sparse VA SIZE
//   protect VA SIZE [ro|rw] [priv|nopriv] [noatomic|atomic] [uncached|cached] [kind=N]
//   translate VA
//   mappings
//   stats
//   space NAME
//   destroy NAME
//   job ... end
// `map` over a mapped page is an error unless `replace` is given (then the mappings it
// covers are cut around it), over sparse pages it is allowed; a map whose video-memory
// range ends beyond --vram is an error. `unmap` and `protect` need every page of the
// range mapped (mappings are cut at the range's edges); unmapped pages of a sparse range
// turn sparse again. `sparse` and `clear_sparse` over a mapped page are errors. `protect`
// changes the attributes it names and keeps the physical addresses. A failing line
// changes nothing.
//
// Address spaces: the script starts in one named `main`; `space NAME` selects NAME,
// creating it (a new root from the shared VRAM) if it does not exist; `destroy NAME`
// unmaps everything in NAME and frees all its tables, root included (NAME may be created
// again later; while the current space is destroyed, lines that need one fail with
// not_allocated). `job` ... `end` makes the lines between them one bind job: all take
// effect or none does (only map, unmap, sparse, clear_sparse and protect lines inside).
//
// Page tables come from a buddy allocator over VRAM [0, --vram) (default 1 GiB) held in a
// host-memory image; page sizes are those of the format's most capable chip without
// 256 GiB pages (4 KiB, 64 KiB, 2 MiB, 512 MiB). Each space holds up to 65,536 tables
// (fewer when --vram has fewer pages) and 262,144 mappings (out_of_storage past that).
// Output, one JSON object per line:
//   {"va":"0x...","state":"mapped|unmapped|sparse","pa":"0x...","page_size":N,
//    "aperture":"...","read_only":true|false}      for each translate
//   {"line":N,"error":"...","va":"0x..."}           for each failing line; for a failing
//                                                   job, its first failing line only (the
//                                                   `job` line when the job as a whole
//                                                   failed: VRAM or storage for it); "va"
//                                                   is the line's VA, on lines that have
//                                                   one (map, unmap, sparse, clear_sparse,
//                                                   protect, translate)
//   {"mappings":[{"va":"0x...","size":N,"pa":"0x...","read_only":B},...]}   for mappings
//   {"vram_free":N}                                 for stats
// and at the end one {"space":"NAME","pdb":"0x...","tables":N,"table_bytes":N} per live
// space in creation order, then
//   {"pdb":"0x...","tables":N,"table_bytes":N,"tlb_invalidations":N,"vram_free":N}
// for `main` (or the first live space if `main` is destroyed; zeros if none is live).
// --image FILE writes the VRAM bytes [0, --vram) to FILE. Exit status: 0, 1 if any line
// failed, 2 for a malformed script or arguments (nothing is run then).
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gpummu/alloc/buddy.hpp"
#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/memory/table_pages.hpp"
#include "gpummu/paging/page_table.hpp"
#include "gpummu/vmm/bind_job.hpp"
#include "gpummu/vmm/mapping_dump.hpp"
#include "cli.hpp"

namespace {

using namespace gpummu;

constexpr int exit_failed_line = 1;
constexpr int exit_usage = 2;

#ifdef GPUMMU_REPLAY_NO_MAIN
// Built into a fuzz target (fuzz/fuzz_replay.cpp): a malformed script is thrown to it, not
// an exit of the process.
struct UsageError {};
#endif

[[noreturn]] void usage_error(const char *message, std::string_view detail = {}, unsigned line = 0)
{
#ifdef GPUMMU_REPLAY_NO_MAIN
    (void)message, (void)detail, (void)line;
    throw UsageError{};
#endif
    std::fprintf(stderr, "gpummu-replay: ");
    if (line != 0) std::fprintf(stderr, "line %u: ", line);
    std::fprintf(stderr, "%s", message);
    if (!detail.empty())
        std::fprintf(stderr, " '%.*s'", static_cast<int>(detail.size()), detail.data());
    std::fputs("\nusage: gpummu-replay --mmu v2|v3 [--vram BYTES] [--image FILE] < SCRIPT\n",
               stderr);
    std::exit(exit_usage);
}

using cli::parse_number;

enum class Command {
    map,
    unmap,
    sparse,
    clear_sparse,
    protect,
    translate,
    mappings,
    stats,
    space,
    destroy,
    job,
    end
};

struct Line {
    unsigned number = 0;
    Command command = Command::translate;
    u64 va = 0, pa = 0, size = 0;
    bool has_va = false;       // the command names a VA (its errors report it)
    PageSizeSet page_sizes{};  // empty: automatic
    PageAttributes attributes{};
    bool replace = false;
    AttributeChange change{};
    std::string name;  // space, destroy
};

std::vector<std::string_view> split(std::string_view text)
{
    std::vector<std::string_view> words;
    std::size_t at = 0;
    while (at < text.size()) {
        while (at < text.size() && (text[at] == ' ' || text[at] == '\t' || text[at] == '\r')) ++at;
        std::size_t end = at;
        while (end < text.size() && text[end] != ' ' && text[end] != '\t' && text[end] != '\r')
            ++end;
        if (end > at) words.push_back(text.substr(at, end - at));
        at = end;
    }
    return words;
}

bool valid_name(std::string_view name)
{
    if (name.empty() || name.size() > 64) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-' || c == '.';
    });
}

// Parses the whole script first: a malformed line stops everything before anything runs.
std::vector<Line> parse_script(const std::string &script)
{
    std::vector<Line> lines;
    unsigned number = 0;
    unsigned open_job = 0;  // the line of the `job` being read, 0 outside one
    std::size_t at = 0;
    while (at <= script.size()) {
        std::size_t end = script.find('\n', at);
        if (end == std::string::npos) end = script.size();
        std::string_view text(script.data() + at, end - at);
        at = end + 1;
        ++number;
        if (auto hash = text.find('#'); hash != std::string_view::npos) text = text.substr(0, hash);
        auto words = split(text);
        if (words.empty()) continue;
        Line line;
        line.number = number;
        auto need = [&](std::size_t count) {
            if (words.size() < count) usage_error("too few arguments for", words[0], number);
        };
        auto exactly = [&](std::size_t count) {
            need(count);
            if (words.size() > count) usage_error("too many arguments for", words[0], number);
        };
        auto number_at = [&](std::size_t index) {
            u64 value = 0;
            if (!parse_number(words[index], value))
                usage_error("not a number:", words[index], number);
            return value;
        };
        auto va_at = [&](std::size_t index) {
            line.has_va = true;
            return number_at(index);
        };
        auto kind_of = [&](std::string_view option) {
            u64 kind = 0;
            if (!parse_number(option.substr(5), kind) || kind > 0xFF)
                usage_error("bad kind:", option, number);
            return static_cast<u8>(kind);
        };
        if (words[0] == "map") {
            need(4);
            line.command = Command::map;
            line.va = va_at(1);
            line.pa = number_at(2);
            line.size = number_at(3);
            for (std::size_t i = 4; i < words.size(); ++i) {
                std::string_view option = words[i];
                if (option == "ro") {
                    line.attributes.read_only = true;
                } else if (option == "priv") {
                    line.attributes.privileged = true;
                } else if (option == "noatomic") {
                    line.attributes.atomics_disabled = true;
                } else if (option == "uncached") {
                    line.attributes.uncached = true;
                } else if (option == "replace") {
                    line.replace = true;
                } else if (option.starts_with("page=")) {
                    std::string_view page = option.substr(5);
                    if (page == "auto")
                        line.page_sizes = {};
                    else if (page == "4k")
                        line.page_sizes = {PageSize::size_4k()};
                    else if (page == "64k")
                        line.page_sizes = {PageSize::size_64k()};
                    else if (page == "2m")
                        line.page_sizes = {PageSize::size_2m()};
                    else if (page == "512m")
                        line.page_sizes = {PageSize::size_512m()};
                    else
                        usage_error("unknown page size:", option, number);
                } else if (option.starts_with("aperture=")) {
                    std::string_view aperture = option.substr(9);
                    if (aperture == "vram")
                        line.attributes.aperture = Aperture::video;
                    else if (aperture == "sys_coherent")
                        line.attributes.aperture = Aperture::system_coherent;
                    else if (aperture == "sys_noncoherent")
                        line.attributes.aperture = Aperture::system_noncoherent;
                    else
                        usage_error("unknown aperture:", option, number);
                } else if (option.starts_with("kind=")) {
                    line.attributes.kind = kind_of(option);
                } else {
                    usage_error("unknown map option:", option, number);
                }
            }
        } else if (words[0] == "protect") {
            need(3);
            line.command = Command::protect;
            line.va = va_at(1);
            line.size = number_at(2);
            AttributeChange &change = line.change;
            auto set = [&](u8 field, bool &value, bool to) {
                change.fields = static_cast<u8>(change.fields | field);
                value = to;
            };
            for (std::size_t i = 3; i < words.size(); ++i) {
                std::string_view option = words[i];
                PageAttributes &values = change.values;
                if (option == "ro" || option == "rw")
                    set(AttributeChange::read_only, values.read_only, option == "ro");
                else if (option == "priv" || option == "nopriv")
                    set(AttributeChange::privileged, values.privileged, option == "priv");
                else if (option == "noatomic" || option == "atomic")
                    set(AttributeChange::atomics_disabled, values.atomics_disabled,
                        option == "noatomic");
                else if (option == "uncached" || option == "cached")
                    set(AttributeChange::uncached, values.uncached, option == "uncached");
                else if (option.starts_with("kind=")) {
                    change.fields = static_cast<u8>(change.fields | AttributeChange::kind);
                    values.kind = kind_of(option);
                } else
                    usage_error("unknown protect option:", option, number);
            }
        } else if (words[0] == "unmap" || words[0] == "sparse" || words[0] == "clear_sparse") {
            exactly(3);
            line.command = words[0] == "unmap"    ? Command::unmap
                           : words[0] == "sparse" ? Command::sparse
                                                  : Command::clear_sparse;
            line.va = va_at(1);
            line.size = number_at(2);
        } else if (words[0] == "translate") {
            exactly(2);
            line.command = Command::translate;
            line.va = va_at(1);
        } else if (words[0] == "mappings" || words[0] == "stats") {
            exactly(1);
            line.command = words[0] == "mappings" ? Command::mappings : Command::stats;
        } else if (words[0] == "space" || words[0] == "destroy") {
            exactly(2);
            line.command = words[0] == "space" ? Command::space : Command::destroy;
            if (!valid_name(words[1]))
                usage_error("a space name is 1 to 64 of A-Z a-z 0-9 _ - .:", words[1], number);
            line.name = std::string(words[1]);
        } else if (words[0] == "job" || words[0] == "end") {
            exactly(1);
            line.command = words[0] == "job" ? Command::job : Command::end;
            if (line.command == Command::job && open_job != 0)
                usage_error("a job inside a job:", words[0], number);
            if (line.command == Command::end && open_job == 0)
                usage_error("an end without a job:", words[0], number);
            open_job = line.command == Command::job ? number : 0;
        } else {
            usage_error("unknown command:", words[0], number);
        }
        const bool operation = line.command == Command::map || line.command == Command::unmap ||
                               line.command == Command::sparse ||
                               line.command == Command::clear_sparse ||
                               line.command == Command::protect;
        if (open_job != 0 && line.command != Command::job && !operation)
            usage_error("not allowed inside a job:", words[0], number);
        lines.push_back(std::move(line));
    }
    if (open_job != 0) usage_error("a job without its end", {}, open_job);
    return lines;
}

struct CountingInvalidator {
    u64 count = 0;
    Result<void> invalidate(const TlbInvalidation &)
    {
        ++count;
        return success();
    }
};

// One address space of the script, with the storage it needs.
template <class F>
struct ScriptSpace {
    using Space = BindSpace<F, HostMemory, CountingInvalidator>;
    static constexpr std::size_t record_limit = std::size_t{1} << 18;

    std::string name;
    std::vector<PageTableNode> nodes;
    std::vector<PageTableChildren> children;
    std::vector<BigTableSlot> slots;
    // calloc: the record pools are written only as records need them.
    std::unique_ptr<MappingNode, decltype(&std::free)> records{nullptr, &std::free};
    std::unique_ptr<MappingNode, decltype(&std::free)> projected{nullptr, &std::free};
    // aligned_alloc: index nodes are cache-line aligned; also written only as needed.
    static constexpr std::size_t index_limit = MappingRecords::index_nodes_for(record_limit);
    std::unique_ptr<OrderedIndexNode, decltype(&std::free)> records_index{nullptr, &std::free};
    std::unique_ptr<OrderedIndexNode, decltype(&std::free)> projected_index{nullptr, &std::free};
    Space space;

    ScriptSpace(std::string space_name, std::size_t table_limit)
        : name(std::move(space_name)),
          nodes(table_limit + 16),
          children(table_limit / 16 + 16),
          slots(table_limit / 16 + 1),
          records(static_cast<MappingNode *>(std::calloc(record_limit, sizeof(MappingNode))),
                  &std::free),
          projected(static_cast<MappingNode *>(std::calloc(record_limit, sizeof(MappingNode))),
                    &std::free),
          records_index(allocate_index(), &std::free),
          projected_index(allocate_index(), &std::free)
    {
        if (!records || !projected || !records_index || !projected_index)
            usage_error("cannot allocate the mapping records");
    }
    static OrderedIndexNode *allocate_index()
    {
        return static_cast<OrderedIndexNode *>(
            std::aligned_alloc(alignof(OrderedIndexNode), index_limit * sizeof(OrderedIndexNode)));
    }
    BindSpaceStorage storage()
    {
        return {{nodes, children},
                slots,
                {records.get(), record_limit},
                {projected.get(), record_limit},
                {records_index.get(), index_limit},
                {projected_index.get(), index_limit}};
    }
};

template <class F>
// `audit_each_line`: after every line, audit the buddy and every live space (the fuzz
// target's invariant check); a failed audit aborts.
int replay(const std::vector<Line> &lines, u64 vram, const char *image_path,
           bool audit_each_line = false)
{
    using Slot = ScriptSpace<F>;
    // calloc: the image's pages stay untouched (and zero) until a table lands on them.
    std::unique_ptr<u64, decltype(&std::free)> image(
        static_cast<u64 *>(std::calloc(vram / 8, sizeof(u64))), &std::free);
    if (!image) usage_error("cannot allocate the VRAM image");
    HostMemory memory(std::span<u64>(image.get(), vram / 8));
    const VramRange all = VramRange::from_size(VramAddress{0}, vram).value();
    std::vector<u64> metadata(BuddyAllocator::metadata_words({&all, 1}, 4096).value());
    auto buddy = BuddyAllocator::create({&all, 1}, metadata, 4096);
    if (!buddy) usage_error("cannot create the buddy allocator");
    // Up to 65536 tables per space (enough for 256 GiB of 4 KiB mappings); past that map
    // lines fail with out_of_storage, past the VRAM with out_of_memory.
    const u64 pages_total = vram / 4096;
    const std::size_t table_limit = static_cast<std::size_t>(std::min<u64>(pages_total, 65536));
    BindSpaceConfig config;
    config.space =
        VirtualRange::from_bounds(VirtualAddress{0},
                                  VirtualAddress{F::va_bits < 64 ? u64{1} << F::va_bits : ~u64{0}})
            .value();
    config.page_table.page_sizes = {PageSize::size_4k(), PageSize::size_64k(), PageSize::size_2m(),
                                    PageSize::size_512m()};
    config.vram_end = VramAddress{vram};
    CountingInvalidator invalidator;
    std::vector<std::unique_ptr<Slot>> spaces;  // live spaces, in creation order
    std::string current = "main";
    auto find = [&](const std::string &name) -> Slot * {
        for (auto &slot : spaces)
            if (slot->name == name) return slot.get();
        return nullptr;
    };
    auto create = [&](const std::string &name) -> Result<void> {
        auto slot = std::make_unique<Slot>(name, table_limit);
        GPUMMU_TRY(slot->space.create(memory, *buddy, invalidator, slot->storage(), config));
        spaces.push_back(std::move(slot));
        return success();
    };
    if (auto made = create("main"); !made)
        usage_error("cannot create the page table:", error_name(made.error()));

    bool any_failed = false;
    // A failing line; `about` (a line that names a VA) adds the VA to the report.
    auto report = [&](unsigned line, Error error, const Line *about = nullptr) {
        if (about != nullptr && about->has_va)
            std::printf("{\"line\":%u,\"error\":\"%s\",\"va\":\"0x%" PRIx64 "\"}\n", line,
                        error_name(error), about->va);
        else
            std::printf("{\"line\":%u,\"error\":\"%s\"}\n", line, error_name(error));
        any_failed = true;
    };
    // The current space, or nullptr after reporting (as line `number`, with `about`'s VA
    // when it names one) that it was destroyed.
    auto current_space = [&](unsigned number, const Line *about) -> Slot * {
        Slot *slot = find(current);
        if (slot == nullptr) report(number, Error::not_allocated, about);
        return slot;
    };
    // The operation of one map / unmap / sparse / clear_sparse / protect line.
    auto operation_of = [&](const Line &line) -> Result<BindOperation> {
        auto range = VirtualRange::from_size(VirtualAddress{line.va}, line.size);
        if (!range) return failure(range.error());
        BindOperation operation;
        operation.range = *range;
        switch (line.command) {
        case Command::map:
            operation.kind = BindOperation::Kind::map;
            operation.attributes = line.attributes;
            operation.attributes.address = PhysicalAddress{line.pa};
            operation.page_sizes = line.page_sizes;
            operation.replace = line.replace;
            break;
        case Command::unmap: operation.kind = BindOperation::Kind::unmap; break;
        case Command::sparse: operation.kind = BindOperation::Kind::make_sparse; break;
        case Command::clear_sparse: operation.kind = BindOperation::Kind::clear_sparse; break;
        case Command::protect:
            operation.kind = BindOperation::Kind::protect;
            operation.change = line.change;
            break;
        default: return failure(Error::invalid_argument);
        }
        return operation;
    };
    // Runs `job` (operations of script lines `numbers`; `job_line` names the job as a
    // whole) in the current space as one bind job.
    std::vector<BindOperation> job;
    std::vector<const Line *> numbers;
    auto run_job = [&](unsigned job_line) {
        // A single line outside `job`...`end` is its own job: its errors carry its VA.
        const Line *about =
            numbers.size() == 1 && numbers[0]->number == job_line ? numbers[0] : nullptr;
        Slot *slot = current_space(job_line, about);
        if (slot == nullptr) return;
        std::size_t failed = job.size();
        auto prepared = slot->space.prepare(job, &failed);
        if (!prepared)
            return failed < job.size()
                       ? report(numbers[failed]->number, prepared.error(), numbers[failed])
                       : report(job_line, prepared.error(), about);
        auto batch = slot->space.commit(std::move(*prepared), [](const MappingStep &) {});
        if (!batch) return report(job_line, batch.error(), about);
        if (auto flushed = slot->space.flush(*batch); !flushed)
            report(job_line, flushed.error(), about);
    };

    unsigned job_line = 0;    // inside a job: its `job` line
    bool job_failed = false;  // a line of the job failed already (it was reported)
    struct LineAudit {
        bool enabled;
        const std::vector<std::unique_ptr<Slot>> &spaces;
        const BuddyAllocator &buddy;
        unsigned line;
        ~LineAudit()
        {
            if (!enabled) return;
            bool ok = buddy.check_invariants().has_value();
            for (const auto &slot : spaces) ok = ok && slot->space.check_invariants().has_value();
            if (ok) return;
            std::fprintf(stderr, "gpummu-replay: audit failed after line %u\n", line);
            std::abort();
        }
    };
    for (const Line &line : lines) {
        const LineAudit audit{audit_each_line, spaces, *buddy, line.number};
        switch (line.command) {
        case Command::job:
            job_line = line.number;
            job_failed = false;
            job.clear();
            numbers.clear();
            continue;
        case Command::end:
            if (!job_failed && !job.empty()) run_job(job_line);
            job_line = 0;
            continue;
        case Command::map:
        case Command::unmap:
        case Command::sparse:
        case Command::clear_sparse:
        case Command::protect: {
            if (job_line != 0 && job_failed) continue;
            auto operation = operation_of(line);
            if (!operation) {
                report(line.number, operation.error(), &line);
                job_failed = job_line != 0;
                continue;
            }
            if (job_line == 0) {
                job.clear();
                numbers.clear();
            }
            job.push_back(*operation);
            numbers.push_back(&line);
            if (job_line == 0) run_job(line.number);
            continue;
        }
        case Command::translate: {
            Slot *slot = current_space(line.number, &line);
            if (slot == nullptr) continue;
            auto translation = slot->space.translate(VirtualAddress{line.va});
            if (!translation) {
                report(line.number, translation.error(), &line);
                continue;
            }
            std::printf("{\"va\":\"0x%" PRIx64 "\",\"state\":\"%s\"", line.va,
                        translation_state_name(translation->state));
            if (translation->state == TranslationState::mapped)
                std::printf(",\"pa\":\"0x%" PRIx64 "\",\"page_size\":%" PRIu64
                            ",\"aperture\":\"%s\",\"read_only\":%s",
                            translation->address.value(), translation->page_size.bytes(),
                            aperture_name(translation->attributes.aperture),
                            translation->attributes.read_only ? "true" : "false");
            std::printf("}\n");
            continue;
        }
        case Command::mappings: {
            Slot *slot = current_space(line.number, &line);
            if (slot == nullptr) continue;
            dump_mappings_json(slot->space.records(), [](std::string_view text) {
                std::fwrite(text.data(), 1, text.size(), stdout);
            });
            std::printf("\n");
            continue;
        }
        case Command::stats:
            std::printf("{\"vram_free\":%" PRIu64 "}\n", buddy->free_bytes());
            continue;
        case Command::space:
            current = line.name;
            if (find(current) == nullptr)
                if (auto made = create(current); !made) report(line.number, made.error());
            continue;
        case Command::destroy: {
            auto it = std::find_if(spaces.begin(), spaces.end(),
                                   [&](const auto &slot) { return slot->name == line.name; });
            if (it == spaces.end()) {
                report(line.number, Error::not_allocated);
                continue;
            }
            if (auto destroyed = (*it)->space.destroy(); !destroyed) {
                report(line.number, destroyed.error());
                continue;
            }
            spaces.erase(it);
            continue;
        }
        }
    }
    for (const auto &slot : spaces) {
        const PageTableStats &stats = slot->space.table_stats();
        std::printf("{\"space\":\"%s\",\"pdb\":\"0x%" PRIx64 "\",\"tables\":%" PRIu64
                    ",\"table_bytes\":%" PRIu64 "}\n",
                    slot->name.c_str(), slot->space.root().address.value(), stats.tables(),
                    stats.table_bytes);
    }
    const Slot *summary = find("main");
    if (summary == nullptr && !spaces.empty()) summary = spaces.front().get();
    u64 pdb = 0, tables = 0, table_bytes = 0;
    if (summary != nullptr) {
        pdb = summary->space.root().address.value();
        tables = summary->space.table_stats().tables();
        table_bytes = summary->space.table_stats().table_bytes;
    }
    std::printf("{\"pdb\":\"0x%" PRIx64 "\",\"tables\":%" PRIu64 ",\"table_bytes\":%" PRIu64
                ",\"tlb_invalidations\":%" PRIu64 ",\"vram_free\":%" PRIu64 "}\n",
                pdb, tables, table_bytes, invalidator.count, buddy->free_bytes());
    if (image_path != nullptr) {
        std::FILE *file = std::fopen(image_path, "wb");
        if (file == nullptr) usage_error("cannot open the image file:", image_path);
        const bool written = std::fwrite(image.get(), 1, vram, file) == vram;
        if (std::fclose(file) != 0 || !written)
            usage_error("cannot write the image file:", image_path);
    }
    return any_failed ? exit_failed_line : 0;
}

}  // namespace

#ifndef GPUMMU_REPLAY_NO_MAIN
int main(int argc, char **argv)
{
    const char *mmu = nullptr;
    const char *image = nullptr;
    u64 vram = u64{1} << 30;
    for (int i = 1; i < argc; ++i) {
        std::string_view argument = argv[i];
        auto value = [&]() -> const char * {
            if (i + 1 >= argc) usage_error("missing value for", argument);
            return argv[++i];
        };
        if (argument == "--mmu") {
            mmu = value();
        } else if (argument == "--vram") {
            const char *text = value();
            if (!cli::parse_size(text, vram) || vram < (64u << 10) || vram % 4096 != 0 ||
                vram > (u64{64} << 30))
                usage_error("--vram wants a multiple of 4096 between 64 KiB and 64 GiB:", text);
        } else if (argument == "--image") {
            image = value();
        } else if (argument == "--help" || argument == "-h") {
            std::puts("usage: gpummu-replay --mmu v2|v3 [--vram BYTES] [--image FILE] < SCRIPT");
            return 0;
        } else {
            usage_error("unknown argument", argument);
        }
    }
    if (mmu == nullptr) usage_error("--mmu is required");
    std::string_view version = mmu;
    if (version != "v2" && version != "v3") usage_error("--mmu wants v2 or v3:", version);
    std::string script;
    char buffer[65536];
    std::size_t got = 0;
    while ((got = std::fread(buffer, 1, sizeof buffer, stdin)) > 0) script.append(buffer, got);
    const std::vector<Line> lines = parse_script(script);
    return version == "v2" ? replay<MmuV2>(lines, vram, image) : replay<MmuV3>(lines, vram, image);
}
#endif
