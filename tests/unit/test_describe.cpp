// describe(), render_json/render_text and encode_entry(): the gpummu-decode interface.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "gpummu/format/describe.hpp"

using namespace gpummu;

namespace {

std::string json_of(MmuVersion version, EntryKind kind, u64 low, u64 high = 0)
{
    TextBuffer<4096> out;
    render_json(describe(version, kind, low, high), out);
    REQUIRE_FALSE(out.truncated());
    return std::string(out.view());
}

struct Encoded {
    bool ok;
    u64 low;
    u64 high;
    Error error;
    std::string key;
};

Encoded encode(MmuVersion version, EntryKind kind, std::vector<KeyValue> pairs)
{
    std::string_view offending;
    auto result = encode_entry(version, kind, pairs, offending);
    if (result) return {true, result->low, result->high, Error::invalid_argument, {}};
    return {false, 0, 0, result.error(), std::string(offending)};
}

}  // namespace

TEST_CASE("JSON of a v2 video PTE lists every key in order")
{
    u64 raw = mmu_v2::Pte::map({.address = PhysicalAddress{0x10000}, .read_only = true, .kind = 6})
                  ->raw();
    CHECK(
        json_of(MmuVersion::v2, EntryKind::pte, raw) ==
        R"({"valid":true,"aperture":"vram","volatile":false,"encrypted":false,"privileged":false,)"
        R"("read_only":true,"atomic_disable":false,"address":"0x10000","peer":0,"comptagline":0,)"
        R"("kind":6,"state":"valid"})");
}

TEST_CASE("v2 system-memory PTEs omit peer and comptagline")
{
    std::string json = json_of(MmuVersion::v2, EntryKind::pte, 0x4 | (0x5000 >> 4) | 1);
    CHECK(json.find("\"peer\"") == std::string::npos);
    CHECK(json.find("\"comptagline\"") == std::string::npos);
    CHECK(json.find(R"("aperture":"sys_coherent")") != std::string::npos);
    CHECK(json.find(R"("address":"0x5000")") != std::string::npos);
}

TEST_CASE("JSON of v3 PTEs: flags only when valid, state from PCF otherwise")
{
    CHECK(json_of(MmuVersion::v3, EntryKind::pte, 0x18) ==
          R"({"valid":false,"aperture":"vram","pcf":3,"uncached":false,"privileged":false,)"
          R"("read_only":false,"atomic_disable":false,"access_counting_disabled":false,"kind":0,)"
          R"("address":"0x0","peer":0,"state":"no_valid_4k"})");
    std::string valid = json_of(MmuVersion::v3, EntryKind::pte, 0x1 | (0x12u << 3));
    CHECK(valid.find(R"("privileged":true)") != std::string::npos);
    CHECK(valid.find(R"("access_counting_disabled":true)") != std::string::npos);
    CHECK(valid.find(R"("uncached":false)") != std::string::npos);
}

TEST_CASE("PDE JSON omits the address of an invalid aperture")
{
    CHECK(
        json_of(MmuVersion::v2, EntryKind::pde, 0x8) ==
        R"({"is_pte":false,"aperture":"invalid","volatile":true,"no_ats":false,"state":"sparse"})");
    CHECK(json_of(MmuVersion::v3, EntryKind::pde, 0x2 | 0x10 | 0x5000) ==
          R"({"is_pte":false,"aperture":"vram","pcf":2,"uncached":false,"ats_disabled":true,)"
          R"("address":"0x5000","state":"valid"})");
}

TEST_CASE("a PDE with IS_PTE set is described as the PTE it is")
{
    std::string json = json_of(MmuVersion::v3, EntryKind::pde, 0x20000001);
    CHECK(json.rfind(R"({"is_pte":true,"pte":{"valid":true)", 0) == 0);
    CHECK(json.find(R"("address":"0x20000000")") != std::string::npos);
}

TEST_CASE("dual PDE JSON nests big and small")
{
    auto dual = mmu_v2::DualPde::point_to({Aperture::video, PhysicalAddress{0x1100}},
                                          {Aperture::video, PhysicalAddress{0x2000}})
                    .value();
    CHECK(json_of(MmuVersion::v2, EntryKind::dual_pde, dual.low(), dual.high()) ==
          R"({"is_pte":false,"state":"valid","big":{"aperture":"vram","volatile":false,)"
          R"("address":"0x1100","state":"valid"},"small":{"aperture":"vram","volatile":false,)"
          R"("address":"0x2000","state":"valid"}})");
    std::string sparse = json_of(MmuVersion::v3, EntryKind::dual_pde, 0x8, 0);
    CHECK(
        sparse.find(
            R"("big":{"aperture":"invalid","pcf":1,"uncached":false,"ats_disabled":false,"state":"sparse"})") !=
        std::string::npos);
}

TEST_CASE("text rendering shows the raw word and warns about undefined bits")
{
    TextBuffer<4096> out;
    render_text(describe(MmuVersion::v3, EntryKind::pte, u64{1} << 55), out);
    std::string text(out.view());
    CHECK(text.find("MMU v3 pte 0x0080000000000000") == 0);
    CHECK(text.find("undefined") != std::string::npos);
    out.clear();
    render_text(describe(MmuVersion::v3, EntryKind::pte, 0x1001), out);
    CHECK(std::string(out.view()).find("undefined") == std::string::npos);
}

TEST_CASE("TextBuffer reports truncation instead of overflowing")
{
    TextBuffer<8> small;
    small.append("0123456789");
    CHECK(small.view() == "01234567");
    CHECK(small.truncated());
    TextBuffer<32> hex;
    hex.append_hex(0xABC, 16);
    CHECK(hex.view() == "0x0000000000000abc");
}

TEST_CASE("encode: PTEs from keys")
{
    auto pte = encode(MmuVersion::v2, EntryKind::pte,
                      {{"valid", "1"}, {"aperture", "vram"}, {"address", "0x1000"}, {"kind", "6"}});
    REQUIRE(pte.ok);
    CHECK(pte.low == 0x0600000000000101ull);
    auto v3 = encode(MmuVersion::v3, EntryKind::pte,
                     {{"valid", "true"},
                      {"aperture", "sys_noncoherent"},
                      {"address", "4096"},
                      {"read_only", "1"},
                      {"uncached", "1"}});
    REQUIRE(v3.ok);
    CHECK(v3.low == (1u | (3u << 1) | (0x5u << 3) | 0x1000u));
    CHECK(encode(MmuVersion::v3, EntryKind::pte, {{"state", "sparse"}}).low == 0x8);
    CHECK(encode(MmuVersion::v3, EntryKind::pte, {{"state", "no_valid_4k"}}).low == 0x18);
    CHECK(encode(MmuVersion::v3, EntryKind::pte, {{"state", "mapping_nowhere"}}).low == 0x10);
    CHECK(encode(MmuVersion::v2, EntryKind::pte, {{"state", "no_valid_4k"}}).low == 0x20);
    CHECK(encode(MmuVersion::v2, EntryKind::pte, {{"state", "sparse"}}).low == 0x8);
}

TEST_CASE("encode: an address without valid or state maps it; valid=0 keeps it invalid")
{
    for (MmuVersion version : {MmuVersion::v2, MmuVersion::v3}) {
        CAPTURE(static_cast<int>(version));
        auto implied = encode(version, EntryKind::pte, {{"address", "0x1000"}});
        auto spelled = encode(version, EntryKind::pte, {{"valid", "1"}, {"address", "0x1000"}});
        REQUIRE(implied.ok);
        REQUIRE(spelled.ok);
        CHECK(implied.low == spelled.low);
        CHECK((implied.low & 1u) == 1u);
        auto invalid = encode(version, EntryKind::pte, {{"valid", "0"}, {"address", "0x1000"}});
        REQUIRE(invalid.ok);
        CHECK((invalid.low & 1u) == 0u);
        CHECK(invalid.low != 0u);  // the address is kept
        // A state other than valid decides alone: no implied VALID.
        auto sparse =
            encode(version, EntryKind::pte, {{"state", "invalid"}, {"address", "0x1000"}});
        REQUIRE(sparse.ok);
        CHECK((sparse.low & 1u) == 0u);
    }
}

TEST_CASE("encode: a number needs a digit; separators alone are refused")
{
    for (const char *text : {"_", "0x_", "0x__", "'", "0x"}) {
        CAPTURE(text);
        auto bad = encode(MmuVersion::v2, EntryKind::pte, {{"valid", "1"}, {"address", text}});
        CHECK(!bad.ok);
        CHECK(bad.error == Error::invalid_argument);
        CHECK(bad.key == "address");
    }
    auto spaced = encode(MmuVersion::v2, EntryKind::pte, {{"valid", "1"}, {"address", "0x1_000"}});
    REQUIRE(spaced.ok);
    CHECK(spaced.low == encode(MmuVersion::v2, EntryKind::pte, {{"address", "0x1000"}}).low);
}

TEST_CASE("encode: PDEs and dual PDEs from keys")
{
    auto pde = encode(MmuVersion::v3, EntryKind::pde,
                      {{"aperture", "vram"}, {"address", "0x7000"}, {"ats_disabled", "1"}});
    REQUIRE(pde.ok);
    CHECK(pde.low == (0x2u | 0x10u | 0x7000u));
    CHECK(encode(MmuVersion::v2, EntryKind::pde, {{"state", "sparse"}}).low == 0x8);
    auto dual = encode(MmuVersion::v2, EntryKind::dual_pde,
                       {{"big.aperture", "vram"},
                        {"big.address", "0x100"},
                        {"small.aperture", "sys_coherent"},
                        {"small.address", "0x1000"}});
    REQUIRE(dual.ok);
    CHECK(dual.low == (0x2u | (0x100u >> 4)));
    CHECK(dual.high == (0x4u | (0x1000u >> 4)));
    auto sparse = encode(MmuVersion::v3, EntryKind::dual_pde, {{"big.state", "sparse"}});
    REQUIRE(sparse.ok);
    CHECK(sparse.low == 0x8);
    CHECK(sparse.high == 0);
}

TEST_CASE("encode: every kind of bad input names its key")
{
    struct Case {
        MmuVersion version;
        EntryKind kind;
        std::vector<KeyValue> pairs;
        Error error;
        const char *key;
    };
    const Case cases[] = {
        {MmuVersion::v2, EntryKind::pte, {{"colour", "red"}}, Error::invalid_argument, "colour"},
        {MmuVersion::v2, EntryKind::pte, {{"pcf", "1"}}, Error::field_not_in_format, "pcf"},
        {MmuVersion::v3,
         EntryKind::pte,
         {{"comptagline", "1"}},
         Error::field_not_in_format,
         "comptagline"},
        {MmuVersion::v3,
         EntryKind::pte,
         {{"volatile", "1"}},
         Error::field_not_in_format,
         "volatile"},
        {MmuVersion::v2, EntryKind::pde, {{"pcf", "0"}}, Error::field_not_in_format, "pcf"},
        {MmuVersion::v2,
         EntryKind::dual_pde,
         {{"small.no_ats", "1"}},
         Error::field_not_in_format,
         "small.no_ats"},
        {MmuVersion::v2,
         EntryKind::dual_pde,
         {{"aperture", "vram"}},
         Error::field_not_in_format,
         "aperture"},
        {MmuVersion::v2,
         EntryKind::dual_pde,
         {{"big.is_pte", "0"}},
         Error::field_not_in_format,
         "big.is_pte"},
        {MmuVersion::v2, EntryKind::pte, {{"kind", "256"}}, Error::field_overflow, "kind"},
        {MmuVersion::v3, EntryKind::pte, {{"kind", "16"}}, Error::field_overflow, "kind"},
        {MmuVersion::v2, EntryKind::pte, {{"peer", "8"}}, Error::field_overflow, "peer"},
        {MmuVersion::v2, EntryKind::pte, {{"address", "0x1800"}}, Error::misaligned, "address"},
        {MmuVersion::v2,
         EntryKind::pte,
         {{"address", "0x2000000000"}},
         Error::field_overflow,
         "address"},
        {MmuVersion::v2, EntryKind::pte, {{"address", "0x1z"}}, Error::invalid_argument, "address"},
        {MmuVersion::v2, EntryKind::pte, {{"valid", "maybe"}}, Error::invalid_argument, "valid"},
        {MmuVersion::v2,
         EntryKind::pte,
         {{"aperture", "moon"}},
         Error::invalid_argument,
         "aperture"},
        {MmuVersion::v2,
         EntryKind::pte,
         {{"aperture", "invalid"}},
         Error::invalid_aperture,
         "aperture"},
        {MmuVersion::v2,
         EntryKind::pte,
         {{"aperture", "sys_coherent"}, {"peer", "1"}},
         Error::conflicting_fields,
         "peer"},
        {MmuVersion::v3,
         EntryKind::pte,
         {{"pcf", "2"}, {"read_only", "1"}},
         Error::conflicting_fields,
         "pcf"},
        {MmuVersion::v3, EntryKind::pte, {{"pcf", "32"}}, Error::field_overflow, "pcf"},
        {MmuVersion::v3, EntryKind::pte, {{"pcf", "7"}}, Error::invalid_argument, "pcf"},
        {MmuVersion::v2,
         EntryKind::pte,
         {{"state", "mapping_nowhere"}},
         Error::field_not_in_format,
         "state"},
        {MmuVersion::v2,
         EntryKind::pte,
         {{"state", "sparse"}, {"valid", "1"}},
         Error::conflicting_fields,
         "state"},
        {MmuVersion::v2, EntryKind::pte, {{"state", "bogus"}}, Error::invalid_argument, "state"},
        {MmuVersion::v2,
         EntryKind::pte,
         {{"kind", "1"}, {"kind", "2"}},
         Error::conflicting_fields,
         "kind"},
        {MmuVersion::v2,
         EntryKind::pde,
         {{"aperture", "peer"}},
         Error::invalid_aperture,
         "aperture"},
        {MmuVersion::v2,
         EntryKind::pde,
         {{"address", "0x1000"}},
         Error::conflicting_fields,
         "address"},
        {MmuVersion::v2, EntryKind::pde, {{"is_pte", "1"}}, Error::invalid_argument, "is_pte"},
        {MmuVersion::v3, EntryKind::pde, {{"pcf", "4"}}, Error::invalid_argument, "pcf"},
        {MmuVersion::v3,
         EntryKind::pde,
         {{"pcf", "1"}, {"uncached", "1"}},
         Error::conflicting_fields,
         "pcf"},
        {MmuVersion::v3, EntryKind::pde, {{"state", "valid"}}, Error::conflicting_fields, "state"},
        {MmuVersion::v2,
         EntryKind::dual_pde,
         {{"big.aperture", "vram"}, {"big.address", "0x80"}},
         Error::misaligned,
         "big.address"},
        {MmuVersion::v3,
         EntryKind::dual_pde,
         {{"small.aperture", "vram"}, {"small.address", "0x100"}},
         Error::misaligned,
         "small.address"},
        {MmuVersion::v2,
         EntryKind::dual_pde,
         {{"big.volatile", "1"}, {"small.aperture", "vram"}},
         Error::conflicting_fields,
         "big.volatile"},
        {MmuVersion::v2,
         EntryKind::dual_pde,
         {{"big.no_ats", "1"}, {"big.aperture", "vram"}},
         Error::conflicting_fields,
         "big.no_ats"},
        {MmuVersion::v3,
         EntryKind::dual_pde,
         {{"small.state", "sparse"}},
         Error::conflicting_fields,
         "small.state"},
    };
    for (const Case &test : cases) {
        CAPTURE(test.key);
        auto result = encode(test.version, test.kind, test.pairs);
        CHECK_FALSE(result.ok);
        CHECK(error_name(result.error) == std::string(error_name(test.error)));
        CHECK(result.key == test.key);
    }
}
