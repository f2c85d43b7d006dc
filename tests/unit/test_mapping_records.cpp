// Mapping records: drm_gpuvm-style cuts (remap with previous / next), protect, queries in
// VA order, per-backing lists across address spaces, refusals that leave no trace.
#include <doctest/doctest.h>

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "gpummu/vmm/mapping_dump.hpp"
#include "gpummu/vmm/mapping_records.hpp"

using namespace gpummu;

namespace {

constexpr u64 KiB = 1024, MiB = 1024 * KiB;

VirtualRange va(u64 begin, u64 size)
{
    return VirtualRange::from_size(VirtualAddress{begin}, size).value();
}

struct Steps {
    std::vector<MappingStep> list;
    void operator()(const MappingStep &step) { list.push_back(step); }
};

std::vector<MappingView> all(const MappingRecords &records)
{
    std::vector<MappingView> out;
    records.visit(VirtualAddress{0}, [&](const MappingView &view) {
        out.push_back(view);
        return true;
    });
    return out;
}

struct Space {
    std::vector<MappingNode> pool;
    std::vector<OrderedIndexNode> index;
    MappingRecords records;
    explicit Space(std::size_t nodes) : pool(nodes), index(MappingRecords::index_nodes_for(nodes))
    {
        REQUIRE(records.create(pool, index));
    }
};

}  // namespace

TEST_CASE("a map inside a record with replace leaves the record's previous and next parts")
{
    std::array layout{PhysicalSegment{PhysicalAddress{0x1000'0000}, 1 * MiB}};
    MappingBacking buffer(Aperture::video, layout);
    Space space(8);
    Steps steps;
    REQUIRE(space.records.map(va(0x100000, 1 * MiB), {&buffer, 0}, {}, false, steps));
    REQUIRE(steps.list.size() == 1);
    CHECK(steps.list[0].kind == MappingStep::Kind::mapped);

    std::array other_layout{PhysicalSegment{PhysicalAddress{0x2000'0000}, 64 * KiB}};
    MappingBacking other(Aperture::system_coherent, other_layout);
    steps.list.clear();
    // 64 KiB at offset 256 KiB of the record, replaced by `other`.
    REQUIRE(space.records.map(va(0x140000, 64 * KiB), {&other, 0}, {}, true, steps));
    REQUIRE(steps.list.size() == 2);
    CHECK(steps.list[0].kind == MappingStep::Kind::remapped);
    CHECK(steps.list[0].record.range == va(0x100000, 1 * MiB));
    CHECK(steps.list[0].previous == va(0x100000, 256 * KiB));
    CHECK(steps.list[0].next == va(0x150000, 1 * MiB - 320 * KiB));
    CHECK(steps.list[1].kind == MappingStep::Kind::mapped);

    auto records = all(space.records);
    REQUIRE(records.size() == 3);
    CHECK(records[0].range == va(0x100000, 256 * KiB));
    CHECK(records[0].offset == 0);
    CHECK(records[1].backing == &other);
    CHECK(records[2].range == va(0x150000, 1 * MiB - 320 * KiB));
    CHECK(records[2].offset == 320 * KiB);  // moved by the bytes cut
    CHECK(records[2].backing == &buffer);
    CHECK(buffer.mapping_count() == 2);
    CHECK(other.mapping_count() == 1);
    CHECK(space.records.check_invariants());
}

TEST_CASE("records are never merged, and a raw physical record's address follows a cut")
{
    Space space(8);
    Steps steps;
    PageAttributes attributes;
    attributes.address = PhysicalAddress{0x4000'0000};
    REQUIRE(space.records.map(va(0, 64 * KiB), {}, attributes, false, steps));
    attributes.address = PhysicalAddress{0x4001'0000};  // physically next to the first
    REQUIRE(space.records.map(va(64 * KiB, 64 * KiB), {}, attributes, false, steps));
    CHECK(space.records.count() == 2);
    steps.list.clear();
    REQUIRE(space.records.unmap(va(16 * KiB, 8 * KiB), steps));
    auto records = all(space.records);
    REQUIRE(records.size() == 3);
    CHECK(records[1].range == va(24 * KiB, 40 * KiB));
    CHECK(records[1].attributes.address == PhysicalAddress{0x4000'6000});
    CHECK(records[2].attributes.address == PhysicalAddress{0x4001'0000});
    REQUIRE(steps.list.size() == 1);
    CHECK(steps.list[0].previous == va(0, 16 * KiB));
    CHECK(steps.list[0].next == va(24 * KiB, 40 * KiB));
    CHECK(space.records.check_invariants());
}

TEST_CASE("unmap and protect need every page mapped; refusals change nothing")
{
    Space space(3);
    Steps steps;
    REQUIRE(space.records.map(va(0, 64 * KiB), {}, {}, false, steps));
    REQUIRE(space.records.map(va(128 * KiB, 64 * KiB), {}, {}, false, steps));
    const auto before = all(space.records);
    steps.list.clear();
    CHECK(space.records.unmap(va(32 * KiB, 128 * KiB), steps).error() == Error::not_mapped);
    AttributeChange read_only{AttributeChange::read_only, {}};
    read_only.values.read_only = true;
    CHECK(space.records.protect(va(0, 192 * KiB), read_only, steps).error() == Error::not_mapped);
    CHECK(space.records.map(va(60 * KiB, 8 * KiB), {}, {}, false, steps).error() ==
          Error::already_mapped);
    CHECK(space.records.map(va(1, 4 * KiB), {}, {}, false, steps).error() == Error::misaligned);
    CHECK(space.records.map(va(0, 0), {}, {}, false, steps).error() == Error::invalid_argument);
    // One node left: a protect that cuts a record on both sides needs two.
    CHECK(space.records.protect(va(16 * KiB, 16 * KiB), read_only, steps).error() ==
          Error::out_of_storage);
    CHECK(steps.list.empty());
    CHECK(all(space.records) == before);
    CHECK(space.records.check_invariants());
    // With exactly enough nodes it goes through.
    REQUIRE(space.records.protect(va(16 * KiB, 48 * KiB), read_only, steps));
    CHECK(space.records.count() == 3);
}

TEST_CASE("create needs an index sized for the pool")
{
    std::vector<MappingNode> pool(100);
    std::vector<OrderedIndexNode> index(MappingRecords::index_nodes_for(100) - 1);
    MappingRecords records;
    CHECK(records.create(pool, index).error() == Error::invalid_argument);
    CHECK(!records.created());
    index.resize(MappingRecords::index_nodes_for(100));
    CHECK(records.create(pool, index));
}

TEST_CASE("thousands of records: lookups, front cuts and removals across index levels")
{
    // 4,000 records of 64 KiB with 64 KiB gaps; then every record loses its first 16 KiB
    // (a cut that moves its key in the index), every third goes, and the lookups, the
    // visit and the invariants stay right.
    constexpr u64 count = 4000;
    Space space(count);
    auto ignore = [](const MappingStep &) {};
    for (u64 i = 0; i < count; ++i)
        REQUIRE(space.records.map(va(i * 128 * KiB, 64 * KiB), {}, {}, false, ignore));
    REQUIRE(space.records.check_invariants());
    for (u64 i = 0; i < count; ++i)
        REQUIRE(space.records.unmap(va((count - 1 - i) * 128 * KiB, 16 * KiB), ignore));
    REQUIRE(space.records.check_invariants());
    for (u64 i = 0; i < count; i += 3)
        REQUIRE(space.records.unmap(va(i * 128 * KiB + 16 * KiB, 48 * KiB), ignore));
    REQUIRE(space.records.check_invariants());
    for (u64 i = 0; i < count; ++i) {
        const u64 base = i * 128 * KiB;
        CHECK(!space.records.find(VirtualAddress{base + 16 * KiB - 1}));
        auto held = space.records.find(VirtualAddress{base + 40 * KiB});
        CHECK(held.has_value() == (i % 3 != 0));
        if (held) CHECK(held->range == va(base + 16 * KiB, 48 * KiB));
    }
    u64 visited = 0, last_end = 0;
    space.records.visit(VirtualAddress{0}, [&](const MappingView &view) {
        CHECK(view.range.begin().value() >= last_end);
        last_end = view.range.end().value();
        ++visited;
        return true;
    });
    CHECK(visited == count - (count + 2) / 3);
}

TEST_CASE("protect cuts only records it changes and reports downgrades")
{
    Space space(8);
    Steps steps;
    REQUIRE(space.records.map(va(0, 64 * KiB), {}, {}, false, steps));
    PageAttributes read_only_attributes;
    read_only_attributes.read_only = true;
    REQUIRE(space.records.map(va(64 * KiB, 64 * KiB), {}, read_only_attributes, false, steps));
    AttributeChange read_only{AttributeChange::read_only, {}};
    read_only.values.read_only = true;
    CHECK(read_only.downgrades(PageAttributes{}));
    CHECK_FALSE(read_only.downgrades(read_only_attributes));
    steps.list.clear();
    // Over [32 KiB, 96 KiB): the first record is cut and its second half changes; the
    // second record is read-only already, so it is neither cut nor reported.
    REQUIRE(space.records.protect(va(32 * KiB, 64 * KiB), read_only, steps));
    REQUIRE(steps.list.size() == 2);
    CHECK(steps.list[0].kind == MappingStep::Kind::remapped);
    CHECK(steps.list[0].previous == va(0, 32 * KiB));
    CHECK(steps.list[0].next.empty());
    CHECK(steps.list[1].kind == MappingStep::Kind::protected_);
    CHECK(steps.list[1].record.range == va(32 * KiB, 32 * KiB));
    CHECK_FALSE(steps.list[1].before.read_only);
    CHECK(steps.list[1].record.attributes.read_only);
    auto records = all(space.records);
    REQUIRE(records.size() == 3);
    CHECK(records[1].range == va(32 * KiB, 32 * KiB));
    CHECK(records[2].range == va(64 * KiB, 64 * KiB));
    CHECK(space.records.check_invariants());
}

TEST_CASE("queries: the record holding a VA, a visit from a VA, a backing's records everywhere")
{
    std::array layout{PhysicalSegment{PhysicalAddress{0x100000}, 64 * KiB},
                      PhysicalSegment{PhysicalAddress{0x900000}, 64 * KiB}};
    MappingBacking buffer(Aperture::video, layout);
    Space first(8), second(8);
    Steps steps;
    REQUIRE(first.records.map(va(0x10000, 128 * KiB), {&buffer, 0}, {}, false, steps));
    REQUIRE(second.records.map(va(0x80000, 64 * KiB), {&buffer, 64 * KiB}, {}, false, steps));
    REQUIRE(second.records.map(va(0x20000, 64 * KiB), {}, {}, false, steps));

    auto found = first.records.find(VirtualAddress{0x2f000});
    REQUIRE(found);
    CHECK(found->range == va(0x10000, 128 * KiB));
    CHECK(first.records.find(VirtualAddress{0x30000}).error() == Error::not_mapped);
    CHECK(first.records.find(VirtualAddress{0xf000}).error() == Error::not_mapped);

    std::vector<u64> from;
    second.records.visit(VirtualAddress{0x2f000}, [&](const MappingView &view) {
        from.push_back(view.range.begin().value());
        return true;
    });
    CHECK(from == std::vector<u64>{0x20000, 0x80000});  // the first ends after 0x2f000
    from.clear();
    second.records.visit(VirtualAddress{0x30000}, [&](const MappingView &view) {
        from.push_back(view.range.begin().value());
        return false;  // stop after one
    });
    CHECK(from == std::vector<u64>{0x80000});

    std::vector<const MappingRecords *> spaces;
    buffer.visit_mappings([&](const MappingView &view) { spaces.push_back(view.space); });
    CHECK(spaces.size() == 2);
    CHECK(buffer.mapping_count() == 2);

    std::array<PhysicalSegment, 2> runs{};
    auto count = buffer.physical_runs(32 * KiB, 64 * KiB, runs);
    REQUIRE(count);
    REQUIRE(*count == 2);
    CHECK(runs[0].address == PhysicalAddress{0x108000});
    CHECK(runs[0].size == 32 * KiB);
    CHECK(runs[1].address == PhysicalAddress{0x900000});
    CHECK(runs[1].size == 32 * KiB);
    CHECK(buffer.physical_runs(64 * KiB, 128 * KiB, runs).error() == Error::out_of_range);
    CHECK(
        first.records.map(va(0x100000, 64 * KiB), {&buffer, 96 * KiB}, {}, false, steps).error() ==
        Error::out_of_range);

    // Relocation keeps the records and their offsets; only the layout changes.
    std::array moved{PhysicalSegment{PhysicalAddress{0x7000'0000}, 128 * KiB}};
    REQUIRE(buffer.relocate(Aperture::system_noncoherent, moved));
    CHECK(buffer.relocate(Aperture::video, std::span(moved).first(0)).error() ==
          Error::invalid_argument);
    CHECK(buffer.aperture() == Aperture::system_noncoherent);
    CHECK(buffer.mapping_count() == 2);

    first.records.clear(steps);
    second.records.clear(steps);
    CHECK(buffer.mapping_count() == 0);
    CHECK(first.records.free_nodes() == 8);
    CHECK(first.records.check_invariants());
    CHECK(second.records.check_invariants());
}

TEST_CASE("the dump writes records and table statistics as text and JSON")
{
    std::array layout{PhysicalSegment{PhysicalAddress{0x200000}, 64 * KiB},
                      PhysicalSegment{PhysicalAddress{0x900000}, 64 * KiB}};
    MappingBacking buffer(Aperture::video, layout);
    Space space(4);
    Steps steps;
    PageAttributes raw;
    raw.aperture = Aperture::system_coherent;
    raw.address = PhysicalAddress{0x7000'0000};
    raw.read_only = true;
    raw.kind = 6;
    REQUIRE(space.records.map(va(0x10000, 64 * KiB), {&buffer, 64 * KiB}, {}, false, steps));
    REQUIRE(space.records.map(va(0x40000, 8 * KiB), {}, raw, false, steps));
    std::string text, json;
    dump_mappings_text(space.records, [&](std::string_view piece) { text += piece; });
    dump_mappings_json(space.records, [&](std::string_view piece) { json += piece; });
    CHECK(text == "0x0000000000010000 +0x10000 pa 0x900000 vram rw kind 0 backing+0x10000\n"
                  "0x0000000000040000 +0x2000 pa 0x70000000 sys_coherent ro kind 6\n");
    CHECK(json == "{\"mappings\":[{\"va\":\"0x10000\",\"size\":65536,\"pa\":\"0x900000\","
                  "\"read_only\":false},{\"va\":\"0x40000\",\"size\":8192,\"pa\":\"0x70000000\","
                  "\"read_only\":true}]}");
    std::string empty;
    Space none(1);
    dump_mappings_json(none.records, [&](std::string_view piece) { empty += piece; });
    CHECK(empty == "{\"mappings\":[]}");

    PageTableStats stats;
    stats.tables_per_level = {1, 1, 2, 0, 0, 0, 0, 0};
    stats.big_tables = 3;
    stats.table_bytes = 4 * 4096 + 3 * 256;
    std::string stats_json, stats_text;
    dump_table_stats_json(stats, 3, [&](std::string_view piece) { stats_json += piece; });
    dump_table_stats_text(stats, 3, [&](std::string_view piece) { stats_text += piece; });
    CHECK(stats_json ==
          "{\"tables\":7,\"table_bytes\":17152,\"per_level\":[1,1,2],\"big_tables\":3}");
    CHECK(stats_text == "tables 7 (level 0: 1, level 1: 1, level 2: 2; big 3), 17152 bytes\n");
}
