// Mapping records against a naive model: a sorted list of records to which map (with and
// without replace), unmap and protect are applied by their definitions, one record at a
// time. After every operation the records, the steps reported, the backings' lists and
// the queries must agree with the model; a refusal must be the model's (same error, no
// change). The pool is small in some runs so that out_of_storage is reached, and the
// space sits at the top of the 64-bit range in others.
//   GPUMMU_MAPPING_RECORDS_OPERATIONS: operations per seed (CI: the default below; the
//   soak runs millions).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <vector>

#include "gpummu/vmm/mapping_records.hpp"
#include "support/random.hpp"

#ifndef GPUMMU_MAPPING_RECORDS_OPERATIONS
#define GPUMMU_MAPPING_RECORDS_OPERATIONS 40000
#endif

using namespace gpummu;

namespace {

constexpr u64 KiB = 1024, MiB = 1024 * KiB;
constexpr std::size_t backing_count = 3;
constexpr u64 backing_size = 512 * KiB;

struct Record {
    u64 begin = 0, end = 0;
    int backing = -1;  // -1: raw physical memory at `address`
    u64 offset = 0;    // backing offset or physical address
    PageAttributes attributes{};
    bool operator==(const Record &) const = default;
};

struct ExpectedStep {
    MappingStep::Kind kind;
    u64 begin, end;        // the record the step is about (before a cut for remapped)
    u64 previous_end = 0;  // remapped: previous = [begin, previous_end) when non-zero size
    u64 next_begin = 0;    // remapped: next = [next_begin, end) when non-zero size
    bool operator==(const ExpectedStep &) const = default;
};

class Model {
public:
    std::vector<Record> records;  // sorted by begin, disjoint
    std::size_t capacity = 0;

    // Cuts [begin, end) out of `record`: the parts that remain outside.
    static std::vector<Record> outside(const Record &record, u64 begin, u64 end)
    {
        std::vector<Record> parts;
        if (record.begin < begin) {
            Record previous = record;
            previous.end = begin;
            parts.push_back(previous);
        }
        if (record.end > end) {
            Record next = record;
            next.offset += end - record.begin;
            next.begin = end;
            parts.push_back(next);
        }
        return parts;
    }
    static ExpectedStep cut_step(const Record &record, u64 begin, u64 end)
    {
        ExpectedStep step{MappingStep::Kind::remapped, record.begin, record.end};
        step.previous_end = record.begin < begin ? begin : record.begin;
        step.next_begin = record.end > end ? end : record.end;
        return step;
    }
    bool overlaps(u64 begin, u64 end) const
    {
        for (const Record &record : records)
            if (record.begin < end && begin < record.end) return true;
        return false;
    }
    bool covers(u64 begin, u64 end) const
    {
        u64 reached = begin;
        for (const Record &record : records)
            if (record.begin <= reached && record.end > reached) reached = record.end;
        return reached >= end;
    }

    // Removes [begin, end) from every record; returns the steps and the new list.
    std::vector<Record> removed(u64 begin, u64 end, std::vector<ExpectedStep> &steps) const
    {
        std::vector<Record> out;
        for (const Record &record : records) {
            if (record.end <= begin || record.begin >= end) {
                out.push_back(record);
                continue;
            }
            if (record.begin >= begin && record.end <= end) {
                steps.push_back({MappingStep::Kind::unmapped, record.begin, record.end});
                continue;
            }
            steps.push_back(cut_step(record, begin, end));
            for (const Record &part : outside(record, begin, end)) out.push_back(part);
        }
        return out;
    }

    std::optional<Error> map(const Record &fresh, bool replace, std::vector<ExpectedStep> &steps)
    {
        if (!replace && overlaps(fresh.begin, fresh.end)) return Error::already_mapped;
        std::vector<Record> out = replace ? removed(fresh.begin, fresh.end, steps) : records;
        out.push_back(fresh);
        if (out.size() > capacity) {
            steps.clear();
            return Error::out_of_storage;
        }
        std::sort(out.begin(), out.end(),
                  [](const Record &a, const Record &b) { return a.begin < b.begin; });
        steps.push_back({MappingStep::Kind::mapped, fresh.begin, fresh.end});
        records = out;
        return std::nullopt;
    }
    std::optional<Error> unmap(u64 begin, u64 end, std::vector<ExpectedStep> &steps)
    {
        if (!covers(begin, end)) return Error::not_mapped;
        std::vector<Record> out = removed(begin, end, steps);
        if (out.size() > capacity) {
            steps.clear();
            return Error::out_of_storage;
        }
        records = out;
        return std::nullopt;
    }
    std::optional<Error> protect(u64 begin, u64 end, const AttributeChange &change,
                                 std::vector<ExpectedStep> &steps)
    {
        if (!covers(begin, end)) return Error::not_mapped;
        std::vector<Record> out;
        for (const Record &record : records) {
            const bool inside = record.begin < end && begin < record.end;
            if (!inside || change.applied_to(record.attributes) == record.attributes) {
                out.push_back(record);
                continue;
            }
            Record middle = record;
            if (record.begin < begin || record.end > end) {
                steps.push_back(cut_step(record, begin, end));
                for (const Record &part : outside(record, begin, end)) out.push_back(part);
                middle.begin = std::max(begin, record.begin);
                middle.end = std::min(end, record.end);
                middle.offset += middle.begin - record.begin;
            }
            middle.attributes = change.applied_to(record.attributes);
            steps.push_back({MappingStep::Kind::protected_, middle.begin, middle.end});
            out.push_back(middle);
        }
        if (out.size() > capacity) {
            steps.clear();
            return Error::out_of_storage;
        }
        std::sort(out.begin(), out.end(),
                  [](const Record &a, const Record &b) { return a.begin < b.begin; });
        records = out;
        return std::nullopt;
    }
};

struct Harness {
    std::array<std::array<PhysicalSegment, 2>, backing_count> layouts{};
    std::vector<MappingBacking *> backings;
    std::vector<MappingNode> pool;
    std::vector<OrderedIndexNode> index;
    MappingRecords records;
    Model model;
    u64 base = 0;
    u64 span = 0;
};

Record from_view(const MappingView &view, const std::vector<MappingBacking *> &backings)
{
    Record record;
    record.begin = view.range.begin().value();
    record.end = view.range.end().value();
    record.attributes = view.attributes;
    if (view.backing == nullptr) {
        record.offset = view.attributes.address.value();
        record.attributes.address = PhysicalAddress{0};
    } else {
        record.backing = static_cast<int>(
            std::find(backings.begin(), backings.end(), view.backing) - backings.begin());
        record.offset = view.offset;
    }
    return record;
}

std::vector<Record> listed(const Harness &harness)
{
    std::vector<Record> out;
    harness.records.visit(VirtualAddress{0}, [&](const MappingView &view) {
        out.push_back(from_view(view, harness.backings));
        return true;
    });
    return out;
}

ExpectedStep from_step(const MappingStep &step)
{
    ExpectedStep out{step.kind, step.record.range.begin().value(), step.record.range.end().value()};
    if (step.kind == MappingStep::Kind::remapped) {
        out.previous_end = step.previous.empty() ? out.begin : step.previous.end().value();
        out.next_begin = step.next.empty() ? out.end : step.next.begin().value();
    }
    return out;
}

PageAttributes random_attributes(testing::Random &random)
{
    PageAttributes attributes;
    attributes.read_only = random.below(2) == 0;
    attributes.privileged = random.below(4) == 0;
    attributes.kind = static_cast<u8>(random.below(3));
    return attributes;
}

// A range that often lies inside or across existing records.
std::pair<u64, u64> random_range(testing::Random &random, const Harness &harness)
{
    u64 begin, size = (1 + random.below(32)) * 4 * KiB;
    if (!harness.model.records.empty() && random.below(3) != 0) {
        const Record &record = harness.model.records[random.below(harness.model.records.size())];
        begin = record.begin + random.below((record.end - record.begin) / (4 * KiB)) * 4 * KiB;
    } else {
        begin = harness.base + random.below(harness.span / (4 * KiB)) * 4 * KiB;
    }
    if (begin + size > harness.base + harness.span) size = harness.base + harness.span - begin;
    return {begin, begin + size};
}

void run(u64 seed, long operations)
{
    testing::Random random(seed);
    Harness harness;
    std::vector<std::unique_ptr<MappingBacking>> owned;
    for (std::size_t i = 0; i < backing_count; ++i) {
        harness.layouts[i] = {PhysicalSegment{PhysicalAddress{(i + 1) * 64 * MiB}, 256 * KiB},
                              PhysicalSegment{PhysicalAddress{(i + 9) * 64 * MiB}, 256 * KiB}};
        owned.push_back(std::make_unique<MappingBacking>(Aperture::video, harness.layouts[i]));
        harness.backings.push_back(owned.back().get());
    }
    const std::size_t capacity = seed % 3 == 0 ? 6 : 48;
    harness.pool.resize(capacity);
    harness.index.resize(MappingRecords::index_nodes_for(capacity));
    REQUIRE(harness.records.create(harness.pool, harness.index));
    harness.model.capacity = capacity;
    harness.span = 2 * MiB;
    harness.base = seed % 2 == 0 ? ~u64{0} - 4 * MiB + 1 : 0x1'0000'0000ull;
    harness.base &= ~(4 * KiB - 1);

    for (long operation = 0; operation < operations; ++operation) {
        CAPTURE(operation);
        const auto [begin, end] = random_range(random, harness);
        const VirtualRange range =
            VirtualRange::from_bounds(VirtualAddress{begin}, VirtualAddress{end}).value();
        std::vector<MappingStep> steps;
        auto sink = [&](const MappingStep &step) { steps.push_back(step); };
        std::vector<ExpectedStep> expected;
        std::optional<Error> model_error;
        Result<void> result = success();
        const unsigned choice = static_cast<unsigned>(random.below(10));
        if (choice < 4) {
            const bool replace = random.below(2) == 0;
            Record fresh;
            fresh.begin = begin;
            fresh.end = end;
            fresh.attributes = random_attributes(random);
            MappingTarget target{};
            PageAttributes attributes = fresh.attributes;
            if (random.below(3) == 0) {
                fresh.offset = (random.below(1u << 20)) * 4 * KiB;
                attributes.address = PhysicalAddress{fresh.offset};
            } else {
                fresh.backing = static_cast<int>(random.below(backing_count));
                fresh.offset = random.below(backing_size / (4 * KiB)) * 4 * KiB;
                target = {harness.backings[static_cast<std::size_t>(fresh.backing)], fresh.offset};
            }
            if (fresh.backing >= 0 && fresh.offset + (end - begin) > backing_size)
                model_error = Error::out_of_range;
            else
                model_error = harness.model.map(fresh, replace, expected);
            result = harness.records.map(range, target, attributes, replace, sink);
        } else if (choice < 7) {
            model_error = harness.model.unmap(begin, end, expected);
            result = harness.records.unmap(range, sink);
        } else if (choice < 9) {
            AttributeChange change;
            change.fields = static_cast<u8>(1 + random.below(63));
            change.values = random_attributes(random);
            change.values.uncached = random.below(2) == 0;
            change.values.atomics_disabled = random.below(2) == 0;
            change.values.access_counting_disabled = random.below(2) == 0;
            model_error = harness.model.protect(begin, end, change, expected);
            result = harness.records.protect(range, change, sink);
        } else {
            // Queries only.
            const u64 probe = begin;
            auto found = harness.records.find(VirtualAddress{probe});
            const Record *holder = nullptr;
            for (const Record &record : harness.model.records)
                if (record.begin <= probe && probe < record.end) holder = &record;
            REQUIRE(found.has_value() == (holder != nullptr));
            if (holder != nullptr) CHECK(from_view(*found, harness.backings) == *holder);
            std::vector<Record> from;
            harness.records.visit(VirtualAddress{probe}, [&](const MappingView &view) {
                from.push_back(from_view(view, harness.backings));
                return from.size() < 3;
            });
            std::vector<Record> model_from;
            for (const Record &record : harness.model.records)
                if (record.end > probe && model_from.size() < 3) model_from.push_back(record);
            CHECK(from == model_from);
            // Whether some record, or records without a gap, hold pages of the range.
            CHECK(harness.records.overlaps(range) == harness.model.overlaps(begin, end));
            CHECK(harness.records.covers(range) == harness.model.covers(begin, end));
            continue;
        }
        CAPTURE(choice);
        REQUIRE(result.has_value() == !model_error.has_value());
        if (model_error) {
            CHECK(result.error() == *model_error);
            CHECK(steps.empty());
        } else {
            std::vector<ExpectedStep> reported;
            for (const MappingStep &step : steps) reported.push_back(from_step(step));
            CHECK(reported == expected);
        }
        // Raw records keep their physical address in `offset` in the model.
        std::vector<Record> model_records = harness.model.records;
        for (Record &record : model_records) record.attributes.address = PhysicalAddress{0};
        REQUIRE(listed(harness) == model_records);
        for (std::size_t b = 0; b < backing_count; ++b) {
            const u64 expected_count = static_cast<u64>(std::count_if(
                model_records.begin(), model_records.end(),
                [&](const Record &record) { return record.backing == static_cast<int>(b); }));
            REQUIRE(harness.backings[b]->mapping_count() == expected_count);
        }
        if (operation % 64 == 0) REQUIRE(harness.records.check_invariants());
    }
    REQUIRE(harness.records.check_invariants());
    harness.records.clear([](const MappingStep &) {});
    for (MappingBacking *backing : harness.backings) CHECK(backing->mapping_count() == 0);
}

}  // namespace

TEST_CASE("mapping records vs a naive model")
{
    for (u64 seed = 1; seed <= 6; ++seed) {
        CAPTURE(seed);
        run(seed, GPUMMU_MAPPING_RECORDS_OPERATIONS);
    }
}
