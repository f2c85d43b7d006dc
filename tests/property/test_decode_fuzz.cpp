// Decoding any 64-bit value never misbehaves: millions of random words (and 128-bit dual
// PDEs) go through every decoder and both renderers. Run under ASan+UBSan in CI, where any
// out-of-bounds access, overflow or uninitialised read fails the test. Each output is also
// checked for shape: valid JSON structure, a known state name, nothing truncated.
#include <doctest/doctest.h>

#include <string_view>

#include "gpummu/format/describe.hpp"
#include "support/random.hpp"

#ifndef GPUMMU_FUZZ_ITERATIONS
#define GPUMMU_FUZZ_ITERATIONS 2000000
#endif

using namespace gpummu;

namespace {

bool json_is_balanced(std::string_view json)
{
    int depth = 0;
    bool in_string = false;
    for (char c : json) {
        if (c == '"')
            in_string = !in_string;
        else if (!in_string && c == '{')
            ++depth;
        else if (!in_string && c == '}' && --depth < 0)
            return false;
    }
    return depth == 0 && !in_string && json.front() == '{' && json.back() == '}';
}

bool has_known_state(std::string_view json)
{
    for (std::string_view state :
         {"\"state\":\"valid\"", "\"state\":\"invalid\"", "\"state\":\"sparse\"",
          "\"state\":\"no_valid_4k\"", "\"state\":\"mapping_nowhere\""})
        if (json.find(state) != std::string_view::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("every decoder accepts every word")
{
    testing::Random random(0xf022);
    long long checked = 0;
    for (long long i = 0; i < GPUMMU_FUZZ_ITERATIONS; ++i) {
        u64 low = random.next();
        u64 high = random.next();
        if (i % 3 == 1) low &= random.next();  // sparser words reach the special states
        if (i % 3 == 2) low &= random.next() & random.next() & random.next();
        auto version = (i & 1) ? MmuVersion::v3 : MmuVersion::v2;
        auto kind = static_cast<EntryKind>((i >> 1) % 3);
        EntryDescription description = describe(version, kind, low, high);
        TextBuffer<2048> json;
        render_json(description, json);
        TextBuffer<4096> text;
        render_text(description, text);
        if (json.truncated() || text.truncated() || !json_is_balanced(json.view()) ||
            !has_known_state(json.view())) {
            CAPTURE(low);
            CAPTURE(high);
            CAPTURE(std::string(json.view()));
            FAIL("decoder output malformed");
        }
        ++checked;
    }
    CHECK(checked == GPUMMU_FUZZ_ITERATIONS);
}
