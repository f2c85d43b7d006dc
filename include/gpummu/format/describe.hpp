// gpummu/format/describe.hpp: entries as named fields, text and JSON, and back.
//
// What it does
//   - `describe(version, kind, low, high)` decodes any 64-bit word (or 128-bit dual PDE)
//     into an `EntryDescription`: an ordered list of named fields, with nested objects for
//     the halves of a dual PDE or for the PTE held by a PDE whose IS_PTE bit is set.
//   - `render_json` / `render_text` print a description into a caller-supplied fixed
//     buffer (`TextBuffer<N>`): no heap, no iostream.
//   - `encode_entry(version, kind, key_values, offending_key)` is the inverse: it parses
//     `KEY=VALUE` pairs (the same key names) and returns the raw entry, or an Error and
//     the key that caused it, having validated everything through the format encoders.
//   gpummu-decode is a thin shell around these three; the tests use them directly.
//
// Keys (the stable interface of gpummu-decode):
//   pte v2   valid aperture volatile encrypted privileged read_only atomic_disable address
//            peer comptagline kind state        (peer, comptagline: video/peer apertures)
//   pte v3   valid aperture pcf uncached privileged read_only atomic_disable
//            access_counting_disabled kind address peer state
//   pde v2   is_pte aperture volatile no_ats address state
//   pde v3   is_pte aperture pcf uncached ats_disabled address state
//   dual-pde is_pte state big.{pde keys} small.{pde keys}
//   `address` is omitted where the aperture is invalid. Encoding a PTE, an `address` given
//   with neither `valid` nor `state` means valid=1 (write valid=0 for an invalid PTE that
//   keeps an address). Numbers: decimal or 0x-hex with at least one digit; `_` and `'`
//   may separate digits.
//
// What it does not do
//   - No level awareness: a PD0 word with IS_PTE set is described as a PTE, whatever
//     page size the level gives it.
#pragma once

#include <array>
#include <span>
#include <string_view>

#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/format/mmu_version.hpp"

namespace gpummu {

enum class EntryKind : u8 { pte, pde, dual_pde };

[[nodiscard]] constexpr const char *entry_kind_name(EntryKind kind) noexcept
{
    switch (kind) {
    case EntryKind::pte: return "pte";
    case EntryKind::pde: return "pde";
    case EntryKind::dual_pde: return "dual-pde";
    }
    return "unknown";
}

// ---- fixed-capacity text output -------------------------------------------------------

template <std::size_t Capacity>
class TextBuffer {
public:
    constexpr void append(std::string_view text) noexcept
    {
        for (char c : text) put(c);
    }
    constexpr void append_decimal(u64 value) noexcept
    {
        char digits[20];
        std::size_t count = 0;
        do {
            digits[count++] = static_cast<char>('0' + value % 10);
            value /= 10;
        } while (value != 0);
        while (count != 0) put(digits[--count]);
    }
    // "0x" then the hex digits; `min_digits` pads with zeros (16 for a full word).
    constexpr void append_hex(u64 value, unsigned min_digits = 1) noexcept
    {
        append("0x");
        unsigned digits = 1;
        while (digits < 16 && (value >> (4 * digits)) != 0) ++digits;
        if (digits < min_digits) digits = min_digits;
        for (unsigned i = digits; i-- > 0;) put("0123456789abcdef"[(value >> (4 * i)) & 0xF]);
    }
    [[nodiscard]] constexpr std::string_view view() const noexcept
    {
        return std::string_view(data_.data(), size_);
    }
    // True when something did not fit and was cut off.
    [[nodiscard]] constexpr bool truncated() const noexcept { return truncated_; }
    constexpr void clear() noexcept
    {
        size_ = 0;
        truncated_ = false;
    }

private:
    constexpr void put(char c) noexcept
    {
        if (size_ < Capacity)
            data_[size_++] = c;
        else
            truncated_ = true;
    }
    std::array<char, Capacity> data_{};
    std::size_t size_ = 0;
    bool truncated_ = false;
};

// ---- descriptions ---------------------------------------------------------------------

enum class ValueKind : u8 { boolean, number, address, text };

struct DescribedField {
    std::string_view key;
    ValueKind kind = ValueKind::number;
    u64 number = 0;         // boolean (0/1), number or address
    std::string_view text;  // ValueKind::text
};

class FieldList {
public:
    static constexpr std::size_t capacity = 16;
    constexpr void add_flag(std::string_view key, bool value) noexcept
    {
        add({key, ValueKind::boolean, value ? 1u : 0u, {}});
    }
    constexpr void add_number(std::string_view key, u64 value) noexcept
    {
        add({key, ValueKind::number, value, {}});
    }
    constexpr void add_address(std::string_view key, u64 value) noexcept
    {
        add({key, ValueKind::address, value, {}});
    }
    constexpr void add_text(std::string_view key, std::string_view value) noexcept
    {
        add({key, ValueKind::text, 0, value});
    }
    [[nodiscard]] constexpr std::span<const DescribedField> items() const noexcept
    {
        return std::span<const DescribedField>(items_.data(), count_);
    }
    [[nodiscard]] constexpr const DescribedField *find(std::string_view key) const noexcept
    {
        for (const DescribedField &field : items())
            if (field.key == key) return &field;
        return nullptr;
    }

private:
    constexpr void add(const DescribedField &field) noexcept
    {
        GPUMMU_ASSERT(count_ < capacity);
        if (count_ < capacity) items_[count_++] = field;
    }
    std::array<DescribedField, capacity> items_{};
    std::size_t count_ = 0;
};

struct EntryDescription {
    MmuVersion version = MmuVersion::v2;
    EntryKind kind = EntryKind::pte;
    u64 low = 0;
    u64 high = 0;
    u64 undefined_bits = 0;  // bits of `low` that no field of the decoded view covers
    FieldList fields;
    // Nested objects: "big" and "small" for a dual PDE, "pte" for a PDE holding a PTE.
    std::array<std::string_view, 2> child_names{};
    std::array<FieldList, 2> children{};
    std::size_t child_count = 0;
};

namespace detail {

constexpr void describe_pte_fields(FieldList &out, const mmu_v2::Pte &pte) noexcept
{
    mmu_v2::PteFields fields = pte.fields();
    out.add_flag("valid", fields.valid);
    out.add_text("aperture", aperture_name(fields.aperture));
    out.add_flag("volatile", fields.volatile_);
    out.add_flag("encrypted", fields.encrypted);
    out.add_flag("privileged", fields.privileged);
    out.add_flag("read_only", fields.read_only);
    out.add_flag("atomic_disable", fields.atomic_disable);
    out.add_address("address", fields.address.value());
    if (!is_system_memory(fields.aperture)) {
        out.add_number("peer", fields.peer);
        out.add_number("comptagline", fields.comptagline);
    }
    out.add_number("kind", fields.kind);
    out.add_text("state", pte_state_name(pte.state()));
}

constexpr void describe_pte_fields(FieldList &out, const mmu_v3::Pte &pte) noexcept
{
    mmu_v3::PteFields fields = pte.fields();
    // The PCF bits are flags only in a valid PTE; in an invalid one they name its state.
    bool flags = fields.valid;
    out.add_flag("valid", fields.valid);
    out.add_text("aperture", aperture_name(fields.aperture));
    out.add_number("pcf", fields.pcf.value());
    out.add_flag("uncached", flags && fields.pcf.uncached());
    out.add_flag("privileged", flags && fields.pcf.privileged());
    out.add_flag("read_only", flags && fields.pcf.read_only());
    out.add_flag("atomic_disable", flags && fields.pcf.no_atomic());
    out.add_flag("access_counting_disabled", flags && fields.pcf.access_counting_disabled());
    out.add_number("kind", fields.kind);
    out.add_address("address", fields.address.value());
    out.add_number("peer", fields.peer);
    out.add_text("state", pte_state_name(pte.state()));
}

constexpr void describe_pointer(FieldList &out, const mmu_v2::PdeFields &fields, bool has_no_ats,
                                PdeState state) noexcept
{
    out.add_text("aperture", aperture_name(fields.aperture));
    out.add_flag("volatile", fields.volatile_);
    if (has_no_ats) out.add_flag("no_ats", fields.no_ats);
    if (fields.aperture != Aperture::invalid) out.add_address("address", fields.address.value());
    out.add_text("state", pde_state_name(state));
}

constexpr void describe_pointer(FieldList &out, const mmu_v3::PdeFields &fields,
                                PdeState state) noexcept
{
    bool valid = fields.aperture != Aperture::invalid;
    out.add_text("aperture", aperture_name(fields.aperture));
    out.add_number("pcf", fields.pcf.value());
    out.add_flag("uncached", valid && fields.pcf.uncached_or_sparse());
    out.add_flag("ats_disabled", fields.pcf.ats_not_allowed());
    if (valid) out.add_address("address", fields.address.value());
    out.add_text("state", pde_state_name(state));
}

// A half of a dual PDE: valid with a pointer; the big half alone can say sparse.
template <class Fields>
[[nodiscard]] constexpr PdeState half_state(const Fields &fields, bool big, PdeState whole) noexcept
{
    if (fields.aperture != Aperture::invalid) return PdeState::valid;
    return big && whole == PdeState::sparse ? PdeState::sparse : PdeState::invalid;
}

template <MmuFormat F>
constexpr void describe_format(EntryDescription &out) noexcept
{
    constexpr bool v2 = F::version == MmuVersion::v2;
    if (out.kind == EntryKind::pte) {
        auto pte = F::Pte::from_raw(out.low);
        describe_pte_fields(out.fields, pte);
        out.undefined_bits = pte.undefined_bits();
        return;
    }
    if (out.kind == EntryKind::pde) {
        auto pde = F::Pde::from_raw(out.low);
        out.fields.add_flag("is_pte", pde.is_pte());
        if (pde.is_pte()) {
            out.child_names[0] = "pte";
            describe_pte_fields(out.children[0], pde.as_pte());
            out.child_count = 1;
            out.undefined_bits = pde.as_pte().undefined_bits();
            return;
        }
        if constexpr (v2)
            describe_pointer(out.fields, pde.fields(), true, pde.state());
        else
            describe_pointer(out.fields, pde.fields(), pde.state());
        out.undefined_bits = pde.undefined_bits();
        return;
    }
    auto dual = F::DualPde::from_raw(out.low, out.high);
    out.fields.add_flag("is_pte", dual.is_pte());
    if (dual.is_pte()) {
        out.child_names[0] = "pte";
        describe_pte_fields(out.children[0], dual.as_pte());
        out.child_count = 1;
        out.undefined_bits = dual.as_pte().undefined_bits();
        return;
    }
    auto fields = dual.fields();
    PdeState whole = dual.state();
    out.child_names = {"big", "small"};
    out.child_count = 2;
    if constexpr (v2) {
        describe_pointer(out.children[0], fields.big, fields.big.aperture == Aperture::invalid,
                         half_state(fields.big, true, whole));
        describe_pointer(out.children[1], fields.small, false,
                         half_state(fields.small, false, whole));
    } else {
        describe_pointer(out.children[0], fields.big, half_state(fields.big, true, whole));
        describe_pointer(out.children[1], fields.small, half_state(fields.small, false, whole));
    }
    out.fields.add_text("state", pde_state_name(whole));
}

}  // namespace detail

[[nodiscard]] constexpr EntryDescription describe(MmuVersion version, EntryKind kind, u64 low,
                                                  u64 high = 0) noexcept
{
    EntryDescription out;
    out.version = version;
    out.kind = kind;
    out.low = low;
    out.high = kind == EntryKind::dual_pde ? high : 0;
    with_format(version, [&](auto format) {
        detail::describe_format<decltype(format)>(out);
        return 0;
    });
    return out;
}

// ---- rendering ------------------------------------------------------------------------

namespace detail {

template <std::size_t N>
constexpr void render_json_object(const FieldList &fields, TextBuffer<N> &out,
                                  const EntryDescription *children) noexcept
{
    out.append("{");
    bool first = true;
    auto separator = [&] {
        if (!first) out.append(",");
        first = false;
    };
    for (const DescribedField &field : fields.items()) {
        separator();
        out.append("\"");
        out.append(field.key);
        out.append("\":");
        switch (field.kind) {
        case ValueKind::boolean: out.append(field.number ? "true" : "false"); break;
        case ValueKind::number: out.append_decimal(field.number); break;
        case ValueKind::address:
            out.append("\"");
            out.append_hex(field.number);
            out.append("\"");
            break;
        case ValueKind::text:
            out.append("\"");
            out.append(field.text);
            out.append("\"");
            break;
        }
    }
    if (children != nullptr) {
        for (std::size_t i = 0; i < children->child_count; ++i) {
            separator();
            out.append("\"");
            out.append(children->child_names[i]);
            out.append("\":");
            render_json_object(children->children[i], out, nullptr);
        }
    }
    out.append("}");
}

template <std::size_t N>
constexpr void render_text_fields(const FieldList &fields, TextBuffer<N> &out,
                                  std::string_view indent) noexcept
{
    for (const DescribedField &field : fields.items()) {
        out.append(indent);
        out.append(field.key);
        for (std::size_t pad = field.key.size(); pad < 26; ++pad) out.append(" ");
        switch (field.kind) {
        case ValueKind::boolean: out.append(field.number ? "yes" : "no"); break;
        case ValueKind::number: out.append_decimal(field.number); break;
        case ValueKind::address: out.append_hex(field.number); break;
        case ValueKind::text: out.append(field.text); break;
        }
        out.append("\n");
    }
}

}  // namespace detail

// One JSON object on one line (no trailing newline).
template <std::size_t N>
constexpr void render_json(const EntryDescription &description, TextBuffer<N> &out) noexcept
{
    detail::render_json_object(description.fields, out, &description);
}

// A readable block: the raw words, every field, nested halves, and undefined bits if any.
template <std::size_t N>
constexpr void render_text(const EntryDescription &description, TextBuffer<N> &out) noexcept
{
    out.append("MMU ");
    out.append(mmu_version_name(description.version));
    out.append(" ");
    out.append(entry_kind_name(description.kind));
    out.append(" ");
    out.append_hex(description.low, 16);
    if (description.kind == EntryKind::dual_pde) {
        out.append(" ");
        out.append_hex(description.high, 16);
    }
    out.append("\n");
    detail::render_text_fields(description.fields, out, "  ");
    for (std::size_t i = 0; i < description.child_count; ++i) {
        out.append("  ");
        out.append(description.child_names[i]);
        out.append(":\n");
        detail::render_text_fields(description.children[i], out, "    ");
    }
    if (description.undefined_bits != 0) {
        out.append("  warning: bits the manual leaves undefined are set: ");
        out.append_hex(description.undefined_bits, 16);
        out.append("\n");
    }
}

// ---- encoding from KEY=VALUE ----------------------------------------------------------

struct KeyValue {
    std::string_view key;
    std::string_view value;
};

struct EncodedEntry {
    u64 low = 0;
    u64 high = 0;
};

namespace detail {

[[nodiscard]] constexpr Result<u64> parse_number(std::string_view text) noexcept
{
    if (text.empty()) return failure(Error::invalid_argument);
    u64 base = 10;
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        base = 16;
        text.remove_prefix(2);
    }
    u64 value = 0;
    bool any_digit = false;  // separators alone ("_", "0x__") are not a number
    for (char c : text) {
        u64 digit = 0;
        if (c >= '0' && c <= '9')
            digit = static_cast<u64>(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            digit = static_cast<u64>(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            digit = static_cast<u64>(c - 'A' + 10);
        else if (c == '_' || c == '\'')
            continue;
        else
            return failure(Error::invalid_argument);
        if (value > (~u64{0} - digit) / base) return failure(Error::field_overflow);
        value = value * base + digit;
        any_digit = true;
    }
    if (!any_digit) return failure(Error::invalid_argument);
    return value;
}

[[nodiscard]] constexpr Result<bool> parse_flag(std::string_view text) noexcept
{
    if (text == "1" || text == "true" || text == "yes") return true;
    if (text == "0" || text == "false" || text == "no") return false;
    return failure(Error::invalid_argument);
}

[[nodiscard]] constexpr Result<Aperture> parse_aperture(std::string_view text) noexcept
{
    for (Aperture aperture : {Aperture::invalid, Aperture::video, Aperture::peer,
                              Aperture::system_coherent, Aperture::system_noncoherent})
        if (text == aperture_name(aperture)) return aperture;
    if (text == "video") return Aperture::video;
    return failure(Error::invalid_argument);
}

[[nodiscard]] constexpr Result<u64> parse_bounded(std::string_view text, u64 max) noexcept
{
    auto value = parse_number(text);
    if (!value) return value;
    if (*value > max) return failure(Error::field_overflow);
    return value;
}

// Every key any format knows; a key outside this list is "unknown", a key inside it
// that the selected format or entry lacks is Error::field_not_in_format.
inline constexpr std::array<std::string_view, 20> known_keys{
    "valid",     "aperture",       "volatile",     "encrypted", "privileged",
    "read_only", "atomic_disable", "address",      "peer",      "comptagline",
    "kind",      "state",          "pcf",          "uncached",  "access_counting_disabled",
    "is_pte",    "no_ats",         "ats_disabled", "big",       "small"};

[[nodiscard]] constexpr bool is_known_key(std::string_view key) noexcept
{
    for (std::string_view known : known_keys)
        if (key == known) return true;
    return false;
}

// Collects the keys an entry accepts, remembers which were given, and reports the first
// offending key with its error.
class KeyReader {
public:
    constexpr KeyReader(std::span<const KeyValue> pairs, std::string_view prefix,
                        std::string_view &offending) noexcept
        : pairs_(pairs),
          prefix_(prefix),
          offending_(offending)
    {
    }

    // Whether `key` (without prefix) is given; does not count it as read.
    [[nodiscard]] constexpr bool has(std::string_view key) const noexcept
    {
        for (const KeyValue &pair : pairs_)
            if (pair.key.size() == prefix_.size() + key.size() && pair.key.starts_with(prefix_) &&
                pair.key.substr(prefix_.size()) == key)
                return true;
        return false;
    }
    // The value of `key` (without prefix), or nullptr when absent.
    [[nodiscard]] constexpr const KeyValue *find(std::string_view key) noexcept
    {
        for (const KeyValue &pair : pairs_) {
            if (pair.key.size() == prefix_.size() + key.size() && pair.key.starts_with(prefix_) &&
                pair.key.substr(prefix_.size()) == key) {
                ++consumed_;
                return &pair;
            }
        }
        return nullptr;
    }
    constexpr Result<void> flag(std::string_view key, bool &target) noexcept
    {
        const KeyValue *pair = find(key);
        if (pair == nullptr) return success();
        auto value = parse_flag(pair->value);
        if (!value) return fail(pair->key, value.error());
        target = *value;
        return success();
    }
    constexpr Result<void> number(std::string_view key, u64 max, u64 &target) noexcept
    {
        const KeyValue *pair = find(key);
        if (pair == nullptr) return success();
        auto value = parse_bounded(pair->value, max);
        if (!value) return fail(pair->key, value.error());
        target = *value;
        return success();
    }
    constexpr Result<void> aperture(std::string_view key, Aperture &target) noexcept
    {
        const KeyValue *pair = find(key);
        if (pair == nullptr) return success();
        auto value = parse_aperture(pair->value);
        if (!value) return fail(pair->key, value.error());
        target = *value;
        return success();
    }
    [[nodiscard]] constexpr Failure fail(std::string_view key, Error error) noexcept
    {
        offending_ = key;
        return failure(error);
    }
    [[nodiscard]] constexpr std::size_t consumed() const noexcept { return consumed_; }
    [[nodiscard]] constexpr std::string_view prefix() const noexcept { return prefix_; }
    // The full key as the caller wrote it, if it was given: "small.address".
    [[nodiscard]] constexpr std::string_view given_key(std::string_view key) const noexcept
    {
        for (const KeyValue &pair : pairs_)
            if (pair.key.size() == prefix_.size() + key.size() && pair.key.starts_with(prefix_) &&
                pair.key.substr(prefix_.size()) == key)
                return pair.key;
        return {};
    }

private:
    std::span<const KeyValue> pairs_;
    std::string_view prefix_;
    std::string_view &offending_;
    std::size_t consumed_ = 0;
};

// Which key to blame for a pointer (PDE or dual-PDE half) the encoder refused.
[[nodiscard]] constexpr std::string_view pointer_error_key(Error error,
                                                           const KeyReader &reader) noexcept
{
    std::string_view candidates[3] = {"address", "aperture", "pcf"};
    if (error == Error::invalid_aperture)
        candidates[0] = "aperture";
    else if (error == Error::invalid_argument)
        candidates[0] = "pcf";
    else if (error == Error::conflicting_fields) {
        // An address beside an invalid aperture, or NO_ATS beside a big-page table.
        candidates[0] = "address";
        candidates[1] = "no_ats";
    }
    for (std::string_view key : candidates)
        if (std::string_view given = reader.given_key(key); !given.empty()) return given;
    return reader.prefix().empty() ? std::string_view("aperture") : reader.prefix();
}

// The key that made a dual PDE's big half sparse, for the "sparse beside a valid pointer" error.
[[nodiscard]] constexpr std::string_view sparse_marker_key(const KeyReader &big) noexcept
{
    for (std::string_view key : {"volatile", "uncached", "pcf", "state"})
        if (std::string_view given = big.given_key(key); !given.empty()) return given;
    return "big.volatile";
}

// The requested state, or "valid" if none was given. Unknown names are errors.
struct StateRequest {
    bool given = false;
    std::string_view name;
    const KeyValue *pair = nullptr;
};

[[nodiscard]] constexpr Result<void> check_state(KeyReader &reader, const StateRequest &request,
                                                 std::string_view actual) noexcept
{
    if (request.given && request.name != actual)
        return reader.fail(request.pair->key, Error::conflicting_fields);
    return success();
}

[[nodiscard]] constexpr Result<u64> encode_pte_v2(KeyReader &reader) noexcept
{
    mmu_v2::PteFields fields;
    StateRequest state;
    if (const KeyValue *pair = reader.find("state")) state = {true, pair->value, pair};
    if (state.given) {
        if (state.name == "valid")
            fields.valid = true;
        else if (state.name == "sparse")
            fields.volatile_ = true;
        else if (state.name == "no_valid_4k")
            fields.privileged = true;
        else if (state.name == "mapping_nowhere")
            return reader.fail(state.pair->key, Error::field_not_in_format);
        else if (state.name != "invalid")
            return reader.fail(state.pair->key, Error::invalid_argument);
    }
    u64 address = 0, peer = 0, comptagline = 0, kind = 0;
    // An address with neither `valid` nor `state` asks for a PTE that maps it.
    const bool imply_valid = !state.given && !reader.has("valid") && reader.has("address");
    GPUMMU_TRY(reader.flag("valid", fields.valid));
    if (imply_valid) fields.valid = true;
    GPUMMU_TRY(reader.aperture("aperture", fields.aperture));
    GPUMMU_TRY(reader.flag("volatile", fields.volatile_));
    GPUMMU_TRY(reader.flag("encrypted", fields.encrypted));
    GPUMMU_TRY(reader.flag("privileged", fields.privileged));
    GPUMMU_TRY(reader.flag("read_only", fields.read_only));
    GPUMMU_TRY(reader.flag("atomic_disable", fields.atomic_disable));
    GPUMMU_TRY(reader.number("address", ~u64{0}, address));
    GPUMMU_TRY(reader.number("peer", mmu_v2::pte_bits::peer.max_value(), peer));
    GPUMMU_TRY(
        reader.number("comptagline", mmu_v2::pte_bits::comptagline.max_value(), comptagline));
    GPUMMU_TRY(reader.number("kind", mmu_v2::pte_bits::kind.max_value(), kind));
    if (fields.aperture == Aperture::invalid)
        return reader.fail("aperture", Error::invalid_aperture);
    fields.address = PhysicalAddress{address};
    fields.peer = static_cast<u8>(peer);
    fields.comptagline = static_cast<u32>(comptagline);
    fields.kind = static_cast<u8>(kind);
    auto pte = mmu_v2::Pte::from_fields(fields);
    if (!pte) {
        std::string_view key = pte.error() == Error::conflicting_fields
                                   ? (peer != 0 ? "peer" : "comptagline")
                                   : std::string_view("address");
        return reader.fail(key, pte.error());
    }
    GPUMMU_TRY(check_state(reader, state, pte_state_name(pte->state())));
    return pte->raw();
}

[[nodiscard]] constexpr Result<u64> encode_pte_v3(KeyReader &reader) noexcept
{
    mmu_v3::PteFields fields;
    u64 pcf = 0;
    StateRequest state;
    if (const KeyValue *pair = reader.find("state")) state = {true, pair->value, pair};
    if (state.given) {
        if (state.name == "valid")
            fields.valid = true;
        else if (state.name == "sparse")
            pcf = mmu_v3::PtePcf::sparse_state;
        else if (state.name == "mapping_nowhere")
            pcf = mmu_v3::PtePcf::mapping_nowhere_state;
        else if (state.name == "no_valid_4k")
            pcf = mmu_v3::PtePcf::no_valid_4k_state;
        else if (state.name != "invalid")
            return reader.fail(state.pair->key, Error::invalid_argument);
    }
    bool flags[5] = {false, false, false, false, false};
    constexpr std::string_view flag_keys[5] = {"uncached", "privileged", "read_only",
                                               "atomic_disable", "access_counting_disabled"};
    std::size_t before_flags = reader.consumed();
    for (std::size_t i = 0; i < 5; ++i) GPUMMU_TRY(reader.flag(flag_keys[i], flags[i]));
    bool any_flag = reader.consumed() != before_flags;
    if (const KeyValue *pair = reader.find("pcf")) {
        if (any_flag) return reader.fail(pair->key, Error::conflicting_fields);
        auto value = parse_bounded(pair->value, mmu_v3::pte_bits::pcf.max_value());
        if (!value) return reader.fail(pair->key, value.error());
        pcf = *value;
    } else if (any_flag) {
        pcf = mmu_v3::PtePcf::from_flags(flags[0], flags[1], flags[2], flags[3], flags[4]).value();
    }
    u64 address = 0, peer = 0, kind = 0;
    // An address with neither `valid` nor `state` asks for a PTE that maps it.
    const bool imply_valid = !state.given && !reader.has("valid") && reader.has("address");
    GPUMMU_TRY(reader.flag("valid", fields.valid));
    if (imply_valid) fields.valid = true;
    GPUMMU_TRY(reader.aperture("aperture", fields.aperture));
    GPUMMU_TRY(reader.number("address", ~u64{0}, address));
    GPUMMU_TRY(reader.number("peer", mmu_v3::pte_bits::peer.max_value(), peer));
    GPUMMU_TRY(reader.number("kind", mmu_v3::pte_bits::kind.max_value(), kind));
    if (fields.aperture == Aperture::invalid)
        return reader.fail("aperture", Error::invalid_aperture);
    fields.pcf = mmu_v3::PtePcf::from_value(pcf).value();
    fields.address = PhysicalAddress{address};
    fields.peer = static_cast<u8>(peer);
    fields.kind = static_cast<u8>(kind);
    auto pte = mmu_v3::Pte::from_fields(fields);
    if (!pte)
        return reader.fail(pte.error() == Error::invalid_argument ? "pcf" : "address", pte.error());
    GPUMMU_TRY(check_state(reader, state, pte_state_name(pte->state())));
    return pte->raw();
}

[[nodiscard]] constexpr Result<void> read_pde_state(KeyReader &reader, StateRequest &state) noexcept
{
    if (const KeyValue *pair = reader.find("state")) {
        state = {true, pair->value, pair};
        if (state.name != "valid" && state.name != "invalid" && state.name != "sparse")
            return reader.fail(pair->key, Error::invalid_argument);
    }
    return success();
}

// v2 pointer fields (a single PDE or one half of a dual PDE).
[[nodiscard]] constexpr Result<void> read_pointer_v2(KeyReader &reader, mmu_v2::PdeFields &fields,
                                                     StateRequest &state) noexcept
{
    GPUMMU_TRY(read_pde_state(reader, state));
    if (state.given && state.name == "sparse") fields.volatile_ = true;
    u64 address = 0;
    GPUMMU_TRY(reader.aperture("aperture", fields.aperture));
    GPUMMU_TRY(reader.flag("volatile", fields.volatile_));
    GPUMMU_TRY(reader.flag("no_ats", fields.no_ats));
    GPUMMU_TRY(reader.number("address", ~u64{0}, address));
    fields.address = PhysicalAddress{address};
    return success();
}

[[nodiscard]] constexpr Result<void> read_pointer_v3(KeyReader &reader, mmu_v3::PdeFields &fields,
                                                     StateRequest &state) noexcept
{
    GPUMMU_TRY(read_pde_state(reader, state));
    bool uncached = false, ats_disabled = false;
    std::size_t before_flags = reader.consumed();
    GPUMMU_TRY(reader.flag("uncached", uncached));
    GPUMMU_TRY(reader.flag("ats_disabled", ats_disabled));
    bool any_flag = reader.consumed() != before_flags;
    bool sparse = state.given && state.name == "sparse";
    if (const KeyValue *pair = reader.find("pcf")) {
        if (any_flag) return reader.fail(pair->key, Error::conflicting_fields);
        auto value = parse_number(pair->value);
        if (!value) return reader.fail(pair->key, value.error());
        auto pcf = mmu_v3::PdePcf::from_value(*value);
        if (!pcf) return reader.fail(pair->key, pcf.error());
        fields.pcf = *pcf;
    } else {
        fields.pcf = mmu_v3::PdePcf::from_flags(uncached || sparse, ats_disabled);
    }
    u64 address = 0;
    GPUMMU_TRY(reader.aperture("aperture", fields.aperture));
    GPUMMU_TRY(reader.number("address", ~u64{0}, address));
    fields.address = PhysicalAddress{address};
    return success();
}

template <class PdeType>
[[nodiscard]] constexpr Result<u64> finish_pde(KeyReader &reader, Result<PdeType> pde,
                                               const StateRequest &state) noexcept
{
    if (!pde) return reader.fail(pointer_error_key(pde.error(), reader), pde.error());
    GPUMMU_TRY(check_state(reader, state, pde_state_name(pde->state())));
    return pde->raw();
}

// Keys each entry reads (without the big./small. prefix of a dual PDE half).
inline constexpr std::array<std::string_view, 12> pte_v2_keys{
    "valid",          "aperture", "volatile", "encrypted",   "privileged", "read_only",
    "atomic_disable", "address",  "peer",     "comptagline", "kind",       "state"};
inline constexpr std::array<std::string_view, 12> pte_v3_keys{"valid",
                                                              "aperture",
                                                              "pcf",
                                                              "uncached",
                                                              "privileged",
                                                              "read_only",
                                                              "atomic_disable",
                                                              "access_counting_disabled",
                                                              "kind",
                                                              "address",
                                                              "peer",
                                                              "state"};
inline constexpr std::array<std::string_view, 6> pde_v2_keys{"is_pte", "aperture", "volatile",
                                                             "no_ats", "address",  "state"};
inline constexpr std::array<std::string_view, 7> pde_v3_keys{
    "is_pte", "aperture", "pcf", "uncached", "ats_disabled", "address", "state"};

template <std::size_t N>
[[nodiscard]] constexpr bool contains_key(const std::array<std::string_view, N> &keys,
                                          std::string_view key) noexcept
{
    for (std::string_view candidate : keys)
        if (candidate == key) return true;
    return false;
}

// Is `key` one this entry reads? Unknown keys are invalid_argument, known keys the entry
// lacks are field_not_in_format.
[[nodiscard]] constexpr Result<void> accept_key(MmuVersion version, EntryKind kind,
                                                std::string_view key) noexcept
{
    bool v2 = version == MmuVersion::v2;
    std::string_view bare = key;
    bool small_half = false;
    if (kind == EntryKind::dual_pde) {
        if (bare.starts_with("big."))
            bare.remove_prefix(4);
        else if (bare.starts_with("small.")) {
            bare.remove_prefix(6);
            small_half = true;
        } else if (bare != "is_pte" && bare != "state") {
            return failure(is_known_key(bare) ? Error::field_not_in_format
                                              : Error::invalid_argument);
        } else {
            return success();  // the whole entry's is_pte and state
        }
        if (bare == "is_pte") return failure(Error::field_not_in_format);
    }
    if (!is_known_key(bare) || bare == "big" || bare == "small")
        return failure(Error::invalid_argument);
    bool accepted = false;
    if (kind == EntryKind::pte)
        accepted = v2 ? contains_key(pte_v2_keys, bare) : contains_key(pte_v3_keys, bare);
    else
        accepted = v2 ? contains_key(pde_v2_keys, bare) : contains_key(pde_v3_keys, bare);
    if (small_half && v2 && bare == "no_ats") accepted = false;  // v2 small half has no NO_ATS
    return accepted ? success() : Result<void>(failure(Error::field_not_in_format));
}

// Encodes a dual PDE; on failure names the half and key at fault.
template <class DualPdeType, class Fields>
[[nodiscard]] constexpr Result<EncodedEntry>
encode_dual(KeyReader &top, KeyReader &big, KeyReader &small, const Fields &fields,
            const StateRequest &big_state, const StateRequest &small_state) noexcept
{
    // Each half alone first, so an address or aperture error names its half.
    Fields big_only = fields;
    big_only.small = {};
    if (auto encoded = DualPdeType::from_fields(big_only); !encoded)
        return big.fail(pointer_error_key(encoded.error(), big), encoded.error());
    Fields small_only = fields;
    small_only.big = {};
    if (auto encoded = DualPdeType::from_fields(small_only); !encoded)
        return small.fail(pointer_error_key(encoded.error(), small), encoded.error());
    auto dual = DualPdeType::from_fields(fields);
    // Both halves are fine alone: the combination is what the manual forbids (a sparse big
    // half beside a valid pointer).
    if (!dual)
        return big.fail(big_state.given ? big_state.pair->key : sparse_marker_key(big),
                        dual.error());
    if (small_state.given && small_state.name == "sparse")
        return small.fail(small_state.pair->key, Error::conflicting_fields);
    auto halves = dual->fields();
    PdeState whole = dual->state();
    if (const KeyValue *pair = top.find("state");
        pair != nullptr && pair->value != pde_state_name(whole))
        return top.fail(pair->key, pair->value == "valid" || pair->value == "invalid" ||
                                           pair->value == "sparse"
                                       ? Error::conflicting_fields
                                       : Error::invalid_argument);
    if (big_state.given && big_state.name != pde_state_name(half_state(halves.big, true, whole)))
        return big.fail(big_state.pair->key, Error::conflicting_fields);
    if (small_state.given &&
        small_state.name != pde_state_name(half_state(halves.small, false, whole)))
        return small.fail(small_state.pair->key, Error::conflicting_fields);
    return EncodedEntry{dual->low(), dual->high()};
}

}  // namespace detail

// Builds one entry from KEY=VALUE pairs. On failure `offending_key` names the key at fault.
// Checks, in order: every key is known (invalid_argument) and belongs to this format and
// entry (field_not_in_format), no key is given twice (conflicting_fields), each value
// parses and fits (invalid_argument, field_overflow), then the format encoder's own rules.
[[nodiscard]] constexpr Result<EncodedEntry> encode_entry(MmuVersion version, EntryKind kind,
                                                          std::span<const KeyValue> pairs,
                                                          std::string_view &offending_key) noexcept
{
    offending_key = {};
    for (const KeyValue &pair : pairs) {
        if (auto accepted = detail::accept_key(version, kind, pair.key); !accepted) {
            offending_key = pair.key;
            return failure(accepted.error());
        }
        for (const KeyValue &other : pairs)
            if (&other != &pair && other.key == pair.key) {
                offending_key = pair.key;
                return failure(Error::conflicting_fields);
            }
    }

    detail::KeyReader reader(pairs, "", offending_key);
    if (kind == EntryKind::pte) {
        auto raw = version == MmuVersion::v2 ? detail::encode_pte_v2(reader)
                                             : detail::encode_pte_v3(reader);
        if (!raw) return failure(raw.error());
        return EncodedEntry{*raw, 0};
    }
    bool is_pte = false;
    GPUMMU_TRY(reader.flag("is_pte", is_pte));
    // A directory word with IS_PTE set is a large-page PTE: encode it with EntryKind::pte.
    if (is_pte) return reader.fail("is_pte", Error::invalid_argument);

    detail::StateRequest state;
    if (kind == EntryKind::pde) {
        Result<u64> raw = failure(Error::invalid_argument);
        if (version == MmuVersion::v2) {
            mmu_v2::PdeFields fields;
            GPUMMU_TRY(detail::read_pointer_v2(reader, fields, state));
            raw = detail::finish_pde(reader, mmu_v2::Pde::from_fields(fields), state);
        } else {
            mmu_v3::PdeFields fields;
            GPUMMU_TRY(detail::read_pointer_v3(reader, fields, state));
            raw = detail::finish_pde(reader, mmu_v3::Pde::from_fields(fields), state);
        }
        if (!raw) return failure(raw.error());
        return EncodedEntry{*raw, 0};
    }

    detail::KeyReader big(pairs, "big.", offending_key);
    detail::KeyReader small(pairs, "small.", offending_key);
    detail::StateRequest small_state;
    if (version == MmuVersion::v2) {
        mmu_v2::DualPdeFields fields;
        GPUMMU_TRY(detail::read_pointer_v2(big, fields.big, state));
        GPUMMU_TRY(detail::read_pointer_v2(small, fields.small, small_state));
        return detail::encode_dual<mmu_v2::DualPde>(reader, big, small, fields, state, small_state);
    }
    mmu_v3::DualPdeFields fields;
    GPUMMU_TRY(detail::read_pointer_v3(big, fields.big, state));
    GPUMMU_TRY(detail::read_pointer_v3(small, fields.small, small_state));
    return detail::encode_dual<mmu_v3::DualPde>(reader, big, small, fields, state, small_state);
}

}  // namespace gpummu
