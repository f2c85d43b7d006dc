// Property tests over random field values for every entry kind of both formats:
//   1. fields -> encode -> decode gives the same fields;
//   2. any raw word -> decode -> encode gives the word back minus the bits the decoder
//      reports as undefined (or the encoder refuses it, exactly when the word holds a value
//      the manual leaves undefined);
//   3. the text interface agrees: describe -> KEY=VALUE pairs -> encode_entry gives the
//      same entry as the struct encoder.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "gpummu/format/describe.hpp"
#include "support/random.hpp"

using namespace gpummu;
using testing::Random;

namespace {

constexpr int cases_per_property = 200000;

Aperture random_pte_aperture(Random &random)
{
    constexpr Aperture apertures[] = {Aperture::video, Aperture::peer, Aperture::system_coherent,
                                      Aperture::system_noncoherent};
    return apertures[random.below(4)];
}

Aperture random_pde_aperture(Random &random)
{
    constexpr Aperture apertures[] = {Aperture::invalid, Aperture::video, Aperture::system_coherent,
                                      Aperture::system_noncoherent};
    return apertures[random.below(4)];
}

mmu_v2::PteFields random_v2_pte(Random &random)
{
    mmu_v2::PteFields fields;
    fields.valid = random.coin();
    fields.aperture = random_pte_aperture(random);
    fields.volatile_ = random.coin();
    fields.encrypted = random.coin();
    fields.privileged = random.coin();
    fields.read_only = random.coin();
    fields.atomic_disable = random.coin();
    fields.kind = static_cast<u8>(random.bits(8));
    if (is_system_memory(fields.aperture)) {
        fields.address = PhysicalAddress{random.bits(46) << 12};
    } else {
        fields.address = PhysicalAddress{random.bits(25) << 12};
        fields.peer = static_cast<u8>(random.bits(3));
        fields.comptagline = static_cast<u32>(random.bits(20));
    }
    return fields;
}

mmu_v3::PteFields random_v3_pte(Random &random)
{
    mmu_v3::PteFields fields;
    fields.valid = random.coin();
    fields.aperture = random_pte_aperture(random);
    fields.pcf =
        mmu_v3::PtePcf::from_value(fields.valid ? random.bits(5) : random.below(4)).value();
    fields.kind = static_cast<u8>(random.bits(4));
    fields.address = PhysicalAddress{random.bits(40) << 12};
    fields.peer = static_cast<u8>(random.bits(3));
    return fields;
}

mmu_v2::PdeFields random_v2_pointer(Random &random, unsigned shift)
{
    mmu_v2::PdeFields fields;
    fields.aperture = random_pde_aperture(random);
    fields.volatile_ = random.coin();
    if (fields.aperture == Aperture::video)
        fields.address = PhysicalAddress{random.bits(37 - shift) << shift};
    else if (fields.aperture != Aperture::invalid)
        fields.address = PhysicalAddress{random.bits(58 - shift) << shift};
    return fields;
}

mmu_v3::PdeFields random_v3_pointer(Random &random, unsigned shift)
{
    mmu_v3::PdeFields fields;
    fields.aperture = random_pde_aperture(random);
    fields.pcf = mmu_v3::PdePcf::from_value(random.below(4)).value();
    if (fields.aperture != Aperture::invalid)
        fields.address = PhysicalAddress{random.bits(52 - shift) << shift};
    return fields;
}

// The manual forbids a sparse big half beside a valid pointer; NO_ATS needs no big table.
template <class Fields, class Fix>
void make_dual_legal(Fields &fields, Fix clear_sparse)
{
    bool any_pointer =
        fields.big.aperture != Aperture::invalid || fields.small.aperture != Aperture::invalid;
    if (any_pointer && fields.big.aperture == Aperture::invalid) clear_sparse(fields.big);
}

// KEY=VALUE pairs from a description, as a script would build them from the JSON.
std::vector<std::string> pairs_from(const FieldList &fields, const std::string &prefix,
                                    bool skip_pcf_flags)
{
    std::vector<std::string> out;
    for (const DescribedField &field : fields.items()) {
        std::string key(field.key);
        if (skip_pcf_flags &&
            (key == "uncached" || key == "privileged" || key == "read_only" ||
             key == "atomic_disable" || key == "access_counting_disabled" || key == "ats_disabled"))
            continue;
        std::string value;
        switch (field.kind) {
        case ValueKind::boolean: value = field.number ? "true" : "false"; break;
        case ValueKind::number: value = std::to_string(field.number); break;
        case ValueKind::address: {
            TextBuffer<32> hex;
            hex.append_hex(field.number);
            value = std::string(hex.view());
            break;
        }
        case ValueKind::text: value = std::string(field.text); break;
        }
        out.push_back(prefix + key + "=" + value);
    }
    return out;
}

Result<EncodedEntry> encode_text(MmuVersion version, EntryKind kind,
                                 const std::vector<std::string> &items, std::string_view &offending)
{
    std::vector<KeyValue> pairs;
    for (const std::string &item : items) {
        auto equals = item.find('=');
        std::string_view view(item);
        pairs.push_back({view.substr(0, equals), view.substr(equals + 1)});
    }
    return encode_entry(version, kind, pairs, offending);
}

Result<EncodedEntry> text_round_trip(MmuVersion version, EntryKind kind, u64 low, u64 high,
                                     std::string_view &offending)
{
    EntryDescription description = describe(version, kind, low, high);
    bool v3 = version == MmuVersion::v3;
    std::vector<std::string> items = pairs_from(description.fields, "", v3);
    for (std::size_t i = 0; i < description.child_count; ++i) {
        auto child =
            pairs_from(description.children[i], std::string(description.child_names[i]) + ".", v3);
        items.insert(items.end(), child.begin(), child.end());
    }
    return encode_text(version, kind, items, offending);
}

}  // namespace

TEST_CASE("fields -> entry -> fields is the identity (v2)")
{
    Random random(0x5eed0002);
    for (int i = 0; i < cases_per_property; ++i) {
        auto pte_fields = random_v2_pte(random);
        auto pte = mmu_v2::Pte::from_fields(pte_fields);
        REQUIRE(pte);
        REQUIRE(pte->fields() == pte_fields);
        REQUIRE(pte->undefined_bits() == 0);

        auto pde_fields = random_v2_pointer(random, 12);
        pde_fields.no_ats = random.coin();
        auto pde = mmu_v2::Pde::from_fields(pde_fields);
        REQUIRE(pde);
        REQUIRE(pde->fields() == pde_fields);

        mmu_v2::DualPdeFields dual_fields{random_v2_pointer(random, 8),
                                          random_v2_pointer(random, 12)};
        if (dual_fields.big.aperture == Aperture::invalid) dual_fields.big.no_ats = random.coin();
        make_dual_legal(dual_fields, [](mmu_v2::PdeFields &big) { big.volatile_ = false; });
        auto dual = mmu_v2::DualPde::from_fields(dual_fields);
        REQUIRE(dual);
        REQUIRE(dual->fields() == dual_fields);
    }
}

TEST_CASE("fields -> entry -> fields is the identity (v3)")
{
    Random random(0x5eed0003);
    for (int i = 0; i < cases_per_property; ++i) {
        auto pte_fields = random_v3_pte(random);
        auto pte = mmu_v3::Pte::from_fields(pte_fields);
        REQUIRE(pte);
        REQUIRE(pte->fields() == pte_fields);
        REQUIRE(pte->undefined_bits() == 0);

        auto pde_fields = random_v3_pointer(random, 12);
        auto pde = mmu_v3::Pde::from_fields(pde_fields);
        REQUIRE(pde);
        REQUIRE(pde->fields() == pde_fields);

        mmu_v3::DualPdeFields dual_fields{random_v3_pointer(random, 8),
                                          random_v3_pointer(random, 12)};
        make_dual_legal(dual_fields, [](mmu_v3::PdeFields &big) {
            big.pcf = mmu_v3::PdePcf::from_flags(false, big.pcf.ats_not_allowed());
        });
        auto dual = mmu_v3::DualPde::from_fields(dual_fields);
        REQUIRE(dual);
        REQUIRE(dual->fields() == dual_fields);
    }
}

TEST_CASE("raw -> fields -> raw keeps every defined bit")
{
    Random random(0xdeadbeef);
    constexpr u64 is_pte_bit = 1;
    for (int i = 0; i < cases_per_property; ++i) {
        u64 raw = random.next();
        // Sparser words too, so special states and small fields show up often.
        if (random.coin()) raw &= random.next() & random.next();

        auto v2_pte = mmu_v2::Pte::from_raw(raw);
        REQUIRE(mmu_v2::Pte::from_fields(v2_pte.fields()).value().raw() ==
                (raw & ~v2_pte.undefined_bits()));

        auto v3_pte = mmu_v3::Pte::from_raw(raw);
        auto v3_again = mmu_v3::Pte::from_fields(v3_pte.fields());
        bool undefined_state = (raw & 1) == 0 && ((raw >> 3) & 0x1F) > 3;
        REQUIRE(v3_again.has_value() == !undefined_state);
        if (v3_again)
            REQUIRE(v3_again->raw() == (raw & ~v3_pte.undefined_bits()));
        else
            REQUIRE(v3_again.error() == Error::invalid_argument);

        u64 pde_raw = raw & ~is_pte_bit;
        auto v2_pde = mmu_v2::Pde::from_raw(pde_raw);
        REQUIRE(mmu_v2::Pde::from_fields(v2_pde.fields()).value().raw() ==
                (pde_raw & ~v2_pde.undefined_bits()));

        auto v3_pde = mmu_v3::Pde::from_raw(pde_raw);
        auto v3_pde_again = mmu_v3::Pde::from_fields(v3_pde.fields());
        bool undefined_pcf = ((pde_raw >> 3) & 7) > 3;
        REQUIRE(v3_pde_again.has_value() == !undefined_pcf);
        if (v3_pde_again) REQUIRE(v3_pde_again->raw() == (pde_raw & ~v3_pde.undefined_bits()));

        // Dual PDEs: whenever the decoded fields form a legal entry, re-encoding is stable.
        u64 high = random.next() & random.next();
        auto v2_dual = mmu_v2::DualPde::from_raw(pde_raw, high);
        if (auto again = mmu_v2::DualPde::from_fields(v2_dual.fields()))
            REQUIRE(again->fields() == v2_dual.fields());
        auto v3_dual = mmu_v3::DualPde::from_raw(pde_raw, high);
        if (auto again = mmu_v3::DualPde::from_fields(v3_dual.fields()))
            REQUIRE(again->fields() == v3_dual.fields());
    }
}

TEST_CASE("describe -> KEY=VALUE -> encode_entry agrees with the struct encoders")
{
    Random random(0x7e57);
    for (int i = 0; i < cases_per_property / 4; ++i) {
        u64 raw = random.next();
        if (random.coin()) raw &= random.next() & random.next();
        u64 high = random.next() & random.next();
        std::string_view offending;
        for (MmuVersion version : {MmuVersion::v2, MmuVersion::v3}) {
            CAPTURE(raw);
            CAPTURE(static_cast<int>(version));
            with_format(version, [&](auto format) {
                using F = decltype(format);
                auto pte = F::Pte::from_raw(raw);
                auto expected = F::Pte::from_fields(pte.fields());
                auto through_text = text_round_trip(version, EntryKind::pte, raw, 0, offending);
                REQUIRE(through_text.has_value() == expected.has_value());
                if (expected) REQUIRE(through_text->low == expected->raw());

                u64 pde_raw = raw & ~u64{1};
                auto pde = F::Pde::from_raw(pde_raw);
                auto expected_pde = F::Pde::from_fields(pde.fields());
                auto pde_text = text_round_trip(version, EntryKind::pde, pde_raw, 0, offending);
                REQUIRE(pde_text.has_value() == expected_pde.has_value());
                if (expected_pde) REQUIRE(pde_text->low == expected_pde->raw());

                auto dual = F::DualPde::from_raw(pde_raw, high);
                auto expected_dual = F::DualPde::from_fields(dual.fields());
                auto dual_text =
                    text_round_trip(version, EntryKind::dual_pde, pde_raw, high, offending);
                REQUIRE(dual_text.has_value() == expected_dual.has_value());
                if (expected_dual) {
                    REQUIRE(dual_text->low == expected_dual->low());
                    REQUIRE(dual_text->high == expected_dual->high());
                }
                return 0;
            });
        }
    }
}
