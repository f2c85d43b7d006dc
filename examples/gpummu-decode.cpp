// gpummu-decode: decode or encode one NVIDIA page-table entry.
//
//   gpummu-decode --mmu v2|v3 --entry pte|pde|dual-pde [--json] HEX [HEX_HI]
//   gpummu-decode --mmu v2|v3 --entry pte|pde|dual-pde --encode KEY=VAL[,KEY=VAL...]
//
// Decoding prints the fields as text, or one JSON object with --json. Encoding prints the
// entry as 0x%016x (a dual PDE as low word, a space, high word). Bad input: a message on
// stderr naming the problem, exit 2. The key names are documented in
// include/gpummu/format/describe.hpp and in the README.
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "gpummu/format/describe.hpp"

namespace {

constexpr int exit_usage = 2;

void print_usage(std::FILE *out)
{
    std::fputs(
        "usage: gpummu-decode --mmu v2|v3 --entry pte|pde|dual-pde [--json] HEX [HEX_HI]\n"
        "       gpummu-decode --mmu v2|v3 --entry pte|pde|dual-pde --encode KEY=VAL[,KEY=VAL...]\n"
        "Keys: see the README (pte: valid aperture address kind state ...; dual-pde: is_pte,\n"
        "big.KEY, small.KEY). Exit status 2 on bad input.\n",
        out);
}

[[noreturn]] void fail(const char *message, std::string_view detail = {})
{
    std::fprintf(stderr, "gpummu-decode: %s", message);
    if (!detail.empty())
        std::fprintf(stderr, " '%.*s'", static_cast<int>(detail.size()), detail.data());
    std::fputc('\n', stderr);
    std::exit(exit_usage);
}

gpummu::u64 parse_word(std::string_view text)
{
    if (text.starts_with("0x") || text.starts_with("0X")) text.remove_prefix(2);
    if (text.empty() || text.size() > 16) fail("not a 64-bit hex word:", text);
    gpummu::u64 value = 0;
    for (char c : text) {
        unsigned digit = 0;
        if (c >= '0' && c <= '9')
            digit = static_cast<unsigned>(c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = static_cast<unsigned>(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            digit = static_cast<unsigned>(c - 'A' + 10);
        else
            fail("not a hex word:", text);
        value = (value << 4) | digit;
    }
    return value;
}

}  // namespace

int main(int argc, char **argv)
{
    using namespace gpummu;
    std::string_view mmu, entry, encode;
    bool json = false, have_encode = false;
    std::vector<std::string_view> words;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        auto value = [&](const char *name) -> std::string_view {
            if (i + 1 >= argc) fail("missing value after", name);
            return argv[++i];
        };
        if (arg == "--mmu")
            mmu = value("--mmu");
        else if (arg == "--entry")
            entry = value("--entry");
        else if (arg == "--json")
            json = true;
        else if (arg == "--encode") {
            encode = value("--encode");
            have_encode = true;
        } else if (arg == "--help" || arg == "-h") {
            print_usage(stdout);
            return 0;
        } else if (arg.starts_with("--"))
            fail("unknown option", arg);
        else
            words.push_back(arg);
    }

    MmuVersion version;
    if (mmu == "v2")
        version = MmuVersion::v2;
    else if (mmu == "v3")
        version = MmuVersion::v3;
    else if (mmu.empty())
        fail("--mmu v2|v3 is required");
    else
        fail("unknown MMU version (want v2 or v3):", mmu);

    EntryKind kind;
    if (entry == "pte")
        kind = EntryKind::pte;
    else if (entry == "pde")
        kind = EntryKind::pde;
    else if (entry == "dual-pde")
        kind = EntryKind::dual_pde;
    else if (entry.empty())
        fail("--entry pte|pde|dual-pde is required");
    else
        fail("unknown entry kind (want pte, pde or dual-pde):", entry);

    if (have_encode) {
        if (!words.empty()) fail("--encode takes no hex words; unexpected", words.front());
        if (json) fail("--json applies to decoding only");
        std::vector<KeyValue> pairs;
        std::string_view rest = encode;
        while (!rest.empty()) {
            std::size_t comma = rest.find(',');
            std::string_view item = rest.substr(0, comma);
            rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            std::size_t equals = item.find('=');
            if (item.empty() || equals == std::string_view::npos || equals == 0)
                fail("expected KEY=VALUE, got", item);
            pairs.push_back({item.substr(0, equals), item.substr(equals + 1)});
        }
        if (pairs.empty()) fail("--encode needs at least one KEY=VALUE");
        std::string_view offending;
        auto encoded = encode_entry(version, kind, pairs, offending);
        if (!encoded) {
            std::string_view value_view;
            for (const KeyValue &pair : pairs)
                if (pair.key == offending) value_view = pair.value;
            std::fprintf(stderr, "gpummu-decode: key '%.*s'", static_cast<int>(offending.size()),
                         offending.data());
            if (!value_view.empty())
                std::fprintf(stderr, " (value '%.*s')", static_cast<int>(value_view.size()),
                             value_view.data());
            const char *explanation = error_message(encoded.error());
            std::string_view bare = offending;
            if (bare.starts_with("big."))
                bare.remove_prefix(4);
            else if (bare.starts_with("small."))
                bare.remove_prefix(6);
            if (encoded.error() == Error::invalid_argument && !detail::is_known_key(bare))
                explanation = "unknown key";
            else if (encoded.error() == Error::invalid_argument && bare == "is_pte")
                explanation =
                    "a directory entry with is_pte=1 is a PTE: encode it with --entry pte";
            else if (encoded.error() == Error::invalid_argument)
                explanation =
                    "value not understood (numbers: 0x-hex or decimal; flags: 0/1/true/false)";
            std::fprintf(stderr, ": %s (%s) for MMU %s %s\n", explanation,
                         error_name(encoded.error()), mmu_version_name(version),
                         entry_kind_name(kind));
            return exit_usage;
        }
        if (kind == EntryKind::dual_pde)
            std::printf("0x%016llx 0x%016llx\n", static_cast<unsigned long long>(encoded->low),
                        static_cast<unsigned long long>(encoded->high));
        else
            std::printf("0x%016llx\n", static_cast<unsigned long long>(encoded->low));
        return 0;
    }

    std::size_t expected = kind == EntryKind::dual_pde ? 2 : 1;
    if (words.size() != expected) {
        if (kind == EntryKind::dual_pde) fail("a dual PDE needs two hex words: HEX HEX_HI");
        fail("expected exactly one hex word");
    }
    u64 low = parse_word(words[0]);
    u64 high = expected == 2 ? parse_word(words[1]) : 0;
    EntryDescription description = describe(version, kind, low, high);
    TextBuffer<4096> text;
    if (json)
        render_json(description, text);
    else
        render_text(description, text);
    std::fwrite(text.view().data(), 1, text.view().size(), stdout);
    if (json) std::fputc('\n', stdout);
    return 0;
}
