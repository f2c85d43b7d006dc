// gpummu-inspect: what an address space maps, read from a VRAM image.
//
//   gpummu-inspect --mmu v2|v3 --image FILE --pdb ADDR [--json] [--svg FILE] [--va BEGIN:END]
//
// The file's byte N is VRAM address N (gpummu-replay --image writes such files; so does a
// dump of a GPU's VRAM). The tables are walked from the PDB (the root table's VRAM address)
// with paging/table_walk.hpp, deciding as the MMU does, and what is mapped is printed as
// runs: consecutive pages with consecutive VAs, consecutive physical addresses, one page
// size, one aperture and the same attributes form one run; consecutive sparse pages form
// one run. Unmapped VAs are not printed. --va limits the walk to the pages meeting
// [BEGIN, END) (default: the format's whole VA space).
//
// Text: one line per run, then a totals line:
//   0x0000000000200000 +0x200000 mapped pa=0x40000000 page_size=65536 aperture=vram ro=0 ...
//   0x0000000040000000 +0x400000 sparse
//   tables 7 table_bytes 24832
// --json: one object per line,
//   {"va":"0x...","size":N,"state":"mapped|sparse","pa":"0x...","page_size":N,
//    "aperture":"vram|sys_coherent|sys_noncoherent|peer","read_only":B}
//   (pa, page_size, aperture and read_only only when mapped), then
//   {"tables":N,"table_bytes":N}
// tables: those reached from the PDB (each counts the 4 KiB page it takes, a big-page table
// 256 bytes, as gpummu's page tables count them).
// --svg FILE: a picture of the table tree (levels as rows, tables as boxes, entries coloured
// by kind).
//
// Exit status: 0; 1 when the tables are corrupt (a pointer outside the image or into
// system memory, a misaligned table, a loop or shared table, a word with bits the format
// leaves undefined: one message naming the VA and the table address, after the runs found
// before it); 2 for bad arguments or an unreadable image.
#include <algorithm>
#include <cinttypes>
#include <cstring>
#include <iterator>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <sys/stat.h>

#include "cli.hpp"
#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/paging/table_walk.hpp"
#include "table_picture.hpp"

namespace {

using namespace gpummu;

constexpr int exit_corrupt = 1;
constexpr int exit_usage = 2;
constexpr const char *usage_line =
    "usage: gpummu-inspect --mmu v2|v3 --image FILE --pdb ADDR [--json] [--svg FILE] "
    "[--va BEGIN:END]";

[[noreturn]] void usage_error(const char *message, std::string_view detail = {})
{
    std::fprintf(stderr, "gpummu-inspect: %s", message);
    if (!detail.empty())
        std::fprintf(stderr, " '%.*s'", static_cast<int>(detail.size()), detail.data());
    std::fprintf(stderr, "\n%s\n", usage_line);
    std::exit(exit_usage);
}

struct Run {
    u64 va = 0;
    u64 size = 0;
    TranslationState state = TranslationState::mapped;
    PageSize page_size = PageSize::size_4k();
    PageAttributes attributes{};  // address: the run's first physical address
};

// Coalesces the walked pages into runs and prints each when the next one cannot extend it.
class Printer {
public:
    explicit Printer(bool json) : json_(json) {}

    void add(const WalkedPage &page)
    {
        if (open_ && extends(page)) {
            run_.size += page.bytes;
            return;
        }
        flush();
        run_ = Run{page.va.value(), page.bytes, page.state, page.page_size, page.attributes};
        open_ = true;
    }
    void flush()
    {
        if (!open_) return;
        open_ = false;
        const bool mapped = run_.state == TranslationState::mapped;
        const auto &a = run_.attributes;
        if (json_) {
            std::printf("{\"va\":\"0x%" PRIx64 "\",\"size\":%" PRIu64 ",\"state\":\"%s\"", run_.va,
                        run_.size, mapped ? "mapped" : "sparse");
            if (mapped)
                std::printf(",\"pa\":\"0x%" PRIx64 "\",\"page_size\":%" PRIu64
                            ",\"aperture\":\"%s\",\"read_only\":%s",
                            a.address.value(), run_.page_size.bytes(), aperture_name(a.aperture),
                            a.read_only ? "true" : "false");
            std::puts("}");
            return;
        }
        std::printf("0x%016" PRIx64 " +0x%" PRIx64 " %s", run_.va, run_.size,
                    mapped ? "mapped" : "sparse");
        if (mapped)
            std::printf(" pa=0x%" PRIx64 " page_size=%" PRIu64
                        " aperture=%s ro=%d priv=%d noatomic=%d uncached=%d kind=0x%x",
                        a.address.value(), run_.page_size.bytes(), aperture_name(a.aperture),
                        a.read_only, a.privileged, a.atomics_disabled, a.uncached, a.kind);
        if (mapped && a.aperture == Aperture::peer) std::printf(" peer=%u", a.peer);
        std::putchar('\n');
    }
    void totals(u64 tables, u64 table_bytes) const
    {
        if (json_)
            std::printf("{\"tables\":%" PRIu64 ",\"table_bytes\":%" PRIu64 "}\n", tables,
                        table_bytes);
        else
            std::printf("tables %" PRIu64 " table_bytes %" PRIu64 "\n", tables, table_bytes);
    }

private:
    bool extends(const WalkedPage &page) const
    {
        if (page.state != run_.state || page.va.value() != run_.va + run_.size) return false;
        if (run_.state == TranslationState::sparse) return true;
        if (page.page_size != run_.page_size) return false;
        PageAttributes expected = run_.attributes;
        expected.address = PhysicalAddress{run_.attributes.address.value() + run_.size};
        return page.attributes == expected;
    }

    bool json_;
    bool open_ = false;
    Run run_{};
};

// Sees every table before it is read: refuses one that overlaps a table already reached
// (a loop back up the tree, or two entries sharing a table).
struct Visitor {
    Printer &printer;
    std::map<u64, u64> tables;  // first byte -> one past the last
    std::vector<WalkedTable> order;
    u64 table_bytes = 0;

    Result<void> table(const WalkedTable &table)
    {
        const u64 begin = table.address.value(), end = begin + table.bytes;
        auto after = tables.lower_bound(end);
        if (after != tables.begin() && std::prev(after)->second > begin)
            return failure(Error::overlap);
        tables.emplace(begin, end);
        order.push_back(table);
        table_bytes += table.big_page_table ? 256 : 4096;
        return success();
    }
    void page(const WalkedPage &page) { printer.add(page); }
};

std::vector<u64> read_image(const char *path, u64 &bytes)
{
    std::FILE *file = std::fopen(path, "rb");
    if (file == nullptr) usage_error("cannot open the image", path);
    // Read straight into the words: sized once from the file's size when it has one (a
    // multi-GiB VRAM dump is read in place, not copied), doubled as needed when it has none
    // (a pipe). One byte of room past the size lets the first read see the end of the file.
    std::size_t room = std::size_t{1} << 20;
    struct stat status {};
    if (fstat(fileno(file), &status) == 0 && S_ISREG(status.st_mode) && status.st_size > 0)
        room = static_cast<std::size_t>(status.st_size) + 1;
    std::vector<u64> words((room + 7) / 8, 0);
    bytes = 0;
    for (;;) {
        if (bytes == words.size() * 8) words.resize(words.size() * 2, 0);
        const std::size_t got = std::fread(reinterpret_cast<unsigned char *>(words.data()) + bytes,
                                           1, words.size() * 8 - bytes, file);
        if (got == 0) break;
        bytes += got;
    }
    const bool failed = std::ferror(file) != 0;
    std::fclose(file);
    if (failed) usage_error("cannot read the image", path);
    // An empty image keeps one word: every table lies outside it.
    words.resize(std::max<std::size_t>((bytes + 7) / 8, 1));
    return words;
}

struct Options {
    std::string_view mmu;
    const char *image = nullptr;
    u64 pdb = 0;
    bool have_pdb = false;
    bool json = false;
    const char *svg = nullptr;
    u64 va_begin = 0, va_end = 0;
    bool have_va = false;
};

template <MmuFormat F>
int inspect(const Options &options)
{
    u64 bytes = 0;
    std::vector<u64> image = read_image(options.image, bytes);
    HostMemory memory(image);
    Printer printer(options.json);
    Visitor visitor{printer, {}, {}, 0};
    const u64 va_limit = u64{1} << F::va_bits;
    u64 begin = 0, end = va_limit;
    if (options.have_va) {
        if (options.va_end > va_limit) usage_error("--va ends past the format's VA space");
        begin = options.va_begin;
        end = options.va_end;
    }
    WalkFailure why;
    auto walked = walk_tables<F>(memory, VramAddress{bytes},
                                 TablePointer{Aperture::video, PhysicalAddress{options.pdb}},
                                 VirtualAddress{begin}, VirtualAddress{end}, visitor, &why);
    printer.flush();
    if (options.svg != nullptr) {
        if (!write_table_picture<F>(options.svg, memory, visitor.order))
            usage_error("cannot write the picture", options.svg);
    }
    if (!walked) {
        std::fprintf(stderr, "gpummu-inspect: %s: VA 0x%" PRIx64 ", table 0x%" PRIx64 " (%s)\n",
                     why.reason, why.va.value(), why.table.value(), error_name(why.error));
        return exit_corrupt;
    }
    printer.totals(visitor.order.size(), visitor.table_bytes);
    return 0;
}

}  // namespace

int main(int argc, char **argv)
{
    Options options;
    for (int i = 1; i < argc; ++i) {
        const std::string_view argument = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) usage_error("missing value after", argument);
            return argv[++i];
        };
        if (argument == "--mmu") {
            options.mmu = value();
        } else if (argument == "--image") {
            options.image = argv[i + 1 < argc ? i + 1 : i];
            (void)value();
        } else if (argument == "--pdb") {
            const std::string_view text = value();
            if (!cli::parse_number(text, options.pdb)) usage_error("--pdb: not a number", text);
            options.have_pdb = true;
        } else if (argument == "--json") {
            options.json = true;
        } else if (argument == "--svg") {
            options.svg = argv[i + 1 < argc ? i + 1 : i];
            (void)value();
        } else if (argument == "--va") {
            const std::string_view text = value();
            const auto colon = text.find(':');
            if (colon == std::string_view::npos ||
                !cli::parse_number(text.substr(0, colon), options.va_begin) ||
                !cli::parse_number(text.substr(colon + 1), options.va_end) ||
                options.va_begin >= options.va_end)
                usage_error("--va: expected BEGIN:END with BEGIN < END", text);
            options.have_va = true;
        } else if (argument == "--help" || argument == "-h") {
            std::puts(usage_line);
            return 0;
        } else {
            usage_error("unknown argument", argument);
        }
    }
    if (options.mmu != "v2" && options.mmu != "v3") usage_error("--mmu must be v2 or v3");
    if (options.image == nullptr) usage_error("--image is required");
    if (!options.have_pdb) usage_error("--pdb is required");
    return options.mmu == "v2" ? inspect<MmuV2>(options) : inspect<MmuV3>(options);
}
