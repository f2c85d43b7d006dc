// gpummu-replay: run a script of page-table operations against gpummu's PageTable.
//
//   gpummu-replay --mmu v2|v3 [--vram BYTES] [--image FILE] < SCRIPT
//
// Script lines ('#' starts a comment; numbers are 0x-hex or decimal):
//   map VA PA SIZE [page=auto|4k|64k|2m|512m] [ro] [priv] [noatomic] [uncached]
//                  [aperture=vram|sys_coherent|sys_noncoherent] [kind=N]
//   unmap VA SIZE
//   sparse VA SIZE
//   translate VA
// `map` over a mapped page is an error, over sparse pages it is allowed; `unmap` of a range
// holding an unmapped page is an error, and unmapped pages of a sparse range turn sparse
// again; `sparse` over a mapped page is an error. A failing line changes nothing.
//
// Page tables come from a buddy allocator over VRAM [0, --vram) (default 1 GiB) held in a
// host-memory image; page sizes are those of the format's most capable chip without
// 256 GiB pages (4 KiB, 64 KiB, 2 MiB, 512 MiB). Output, one JSON object per line:
//   {"va":"0x...","state":"mapped|unmapped|sparse","pa":"0x...","page_size":N,
//    "aperture":"...","read_only":true|false}      for each translate
//   {"line":N,"error":"..."}                        for each failing line
//   {"pdb":"0x...","tables":N,"table_bytes":N,"tlb_invalidations":N}   at the end
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

namespace {

using namespace gpummu;

constexpr int exit_failed_line = 1;
constexpr int exit_usage = 2;

[[noreturn]] void usage_error(const char *message, std::string_view detail = {}, unsigned line = 0)
{
    std::fprintf(stderr, "gpummu-replay: ");
    if (line != 0) std::fprintf(stderr, "line %u: ", line);
    std::fprintf(stderr, "%s", message);
    if (!detail.empty())
        std::fprintf(stderr, " '%.*s'", static_cast<int>(detail.size()), detail.data());
    std::fputs("\nusage: gpummu-replay --mmu v2|v3 [--vram BYTES] [--image FILE] < SCRIPT\n",
               stderr);
    std::exit(exit_usage);
}

bool parse_number(std::string_view text, u64 &out)
{
    unsigned base = 10;
    if (text.starts_with("0x") || text.starts_with("0X")) {
        base = 16;
        text.remove_prefix(2);
    }
    if (text.empty()) return false;
    u64 value = 0;
    for (char c : text) {
        unsigned digit = 0;
        if (c >= '0' && c <= '9')
            digit = static_cast<unsigned>(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            digit = static_cast<unsigned>(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            digit = static_cast<unsigned>(c - 'A' + 10);
        else
            return false;
        if (digit >= base) return false;
        if (value > (~u64{0} - digit) / base) return false;  // overflow
        value = value * base + digit;
    }
    out = value;
    return true;
}

enum class Command { map, unmap, sparse, translate };

struct Line {
    unsigned number = 0;
    Command command = Command::translate;
    u64 va = 0, pa = 0, size = 0;
    PageSizeSet page_sizes{};  // empty: automatic
    PageAttributes attributes{};
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

// Parses the whole script first: a malformed line stops everything before anything runs.
std::vector<Line> parse_script(const std::string &script)
{
    std::vector<Line> lines;
    unsigned number = 0;
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
        auto number_at = [&](std::size_t index) {
            u64 value = 0;
            if (!parse_number(words[index], value))
                usage_error("not a number:", words[index], number);
            return value;
        };
        if (words[0] == "map") {
            need(4);
            line.command = Command::map;
            line.va = number_at(1);
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
                    u64 kind = 0;
                    if (!parse_number(option.substr(5), kind) || kind > 0xFF)
                        usage_error("bad kind:", option, number);
                    line.attributes.kind = static_cast<u8>(kind);
                } else {
                    usage_error("unknown map option:", option, number);
                }
            }
        } else if (words[0] == "unmap" || words[0] == "sparse") {
            need(3);
            if (words.size() > 3) usage_error("too many arguments for", words[0], number);
            line.command = words[0] == "unmap" ? Command::unmap : Command::sparse;
            line.va = number_at(1);
            line.size = number_at(2);
        } else if (words[0] == "translate") {
            need(2);
            if (words.size() > 2) usage_error("too many arguments for", words[0], number);
            line.command = Command::translate;
            line.va = number_at(1);
        } else {
            usage_error("unknown command:", words[0], number);
        }
        lines.push_back(line);
    }
    return lines;
}

const char *script_aperture_name(Aperture aperture)
{
    switch (aperture) {
    case Aperture::video: return "vram";
    case Aperture::system_coherent: return "sys_coherent";
    case Aperture::system_noncoherent: return "sys_noncoherent";
    case Aperture::peer: return "peer";
    case Aperture::invalid: return "invalid";
    }
    return "invalid";
}

struct CountingInvalidator {
    u64 count = 0;
    Result<void> invalidate(const TlbInvalidation &)
    {
        ++count;
        return success();
    }
};

template <class F>
int replay(const std::vector<Line> &lines, u64 vram, const char *image_path)
{
    // calloc: the image's pages stay untouched (and zero) until a table lands on them.
    std::unique_ptr<u64, decltype(&std::free)> image(
        static_cast<u64 *>(std::calloc(vram / 8, sizeof(u64))), &std::free);
    if (!image) usage_error("cannot allocate the VRAM image");
    HostMemory memory(std::span<u64>(image.get(), vram / 8));
    const VramRange all = VramRange::from_size(VramAddress{0}, vram).value();
    std::vector<u64> metadata(BuddyAllocator::metadata_words({&all, 1}, 4096).value());
    auto buddy = BuddyAllocator::create({&all, 1}, metadata, 4096);
    if (!buddy) usage_error("cannot create the buddy allocator");
    // Shadow storage: up to 65536 tables (enough for 256 GiB of 4 KiB mappings); past
    // that map lines fail with out_of_storage, past the VRAM with out_of_memory.
    const u64 pages_total = vram / 4096;
    const std::size_t table_limit = static_cast<std::size_t>(std::min<u64>(pages_total, 65536));
    std::vector<BigTableSlot> slots(table_limit / 16 + 1);
    BuddyTablePages<HostMemory> pages(*buddy, memory, slots);
    std::vector<PageTableNode> nodes(table_limit + 16);
    std::vector<PageTableChildren> children(table_limit / 16 + 16);
    PageTableConfig config{
        {PageSize::size_4k(), PageSize::size_64k(), PageSize::size_2m(), PageSize::size_512m()}};
    auto made = PageTable<F, HostMemory, BuddyTablePages<HostMemory>>::create(
        memory, pages, {nodes, children}, config);
    if (!made) usage_error("cannot create the page table:", error_name(made.error()));
    auto &table = *made;
    CountingInvalidator invalidator;
    bool any_failed = false;
    auto report = [&](const Line &line, Error error) {
        std::printf("{\"line\":%u,\"error\":\"%s\"}\n", line.number, error_name(error));
        any_failed = true;
    };
    for (const Line &line : lines) {
        if (line.command == Command::translate) {
            auto translation = table.translate(VirtualAddress{line.va});
            if (!translation) {
                report(line, translation.error());
                continue;
            }
            std::printf("{\"va\":\"0x%" PRIx64 "\",\"state\":\"%s\"", line.va,
                        translation_state_name(translation->state));
            if (translation->state == TranslationState::mapped)
                std::printf(",\"pa\":\"0x%" PRIx64 "\",\"page_size\":%" PRIu64
                            ",\"aperture\":\"%s\",\"read_only\":%s",
                            translation->address.value(), translation->page_size.bytes(),
                            script_aperture_name(translation->attributes.aperture),
                            translation->attributes.read_only ? "true" : "false");
            std::printf("}\n");
            continue;
        }
        auto range = VirtualRange::from_size(VirtualAddress{line.va}, line.size);
        if (!range) {
            report(line, range.error());
            continue;
        }
        Result<TlbBatch> batch = failure(Error::invalid_argument);
        if (line.command == Command::map) {
            PageAttributes attributes = line.attributes;
            attributes.address = PhysicalAddress{line.pa};
            const PhysicalSegment segment{PhysicalAddress{line.pa}, line.size};
            batch = table.map(*range, {&segment, 1}, attributes, {.page_sizes = line.page_sizes});
        } else if (line.command == Command::unmap) {
            batch = table.unmap(*range);
        } else {
            batch = table.make_sparse(*range);
        }
        if (!batch) {
            report(line, batch.error());
            continue;
        }
        if (auto flushed = table.flush(*batch, invalidator); !flushed) {
            report(line, flushed.error());
            continue;
        }
    }
    const PageTableStats &stats = table.stats();
    std::printf("{\"pdb\":\"0x%" PRIx64 "\",\"tables\":%" PRIu64 ",\"table_bytes\":%" PRIu64
                ",\"tlb_invalidations\":%" PRIu64 "}\n",
                table.root().address.value(), stats.tables(), stats.table_bytes, invalidator.count);
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
            if (!parse_number(text, vram) || vram < (64u << 10) || vram % 4096 != 0 ||
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
