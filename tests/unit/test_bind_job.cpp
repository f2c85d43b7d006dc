// Bind jobs: operation lists that take effect as a whole, several prepared at once and
// committed in order without allocating, record steps, protect downgrades, rebind after a
// backing moved, refusals that leave no trace.
#include <doctest/doctest.h>

#include <array>
#include <concepts>
#include <memory>
#include <string>
#include <vector>

#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/vmm/bind_job.hpp"
#include "instantiation/spaces.hpp"
#include "support/page_table_fixture.hpp"
#include "support/space_storage.hpp"

using namespace gpummu;
using testing::RecordingInvalidator;
using testing::va_range;

namespace {

constexpr u64 KiB = 1024, MiB = 1024 * KiB;
constexpr u64 vram_bytes = 64 * MiB;

// One simulated VRAM (host memory), its buddy, and an invalidator shared by the spaces.
struct Machine {
    std::vector<u64> image = std::vector<u64>(vram_bytes / 8, 0xDEADBEEFDEADBEEFull);
    HostMemory memory{image};
    testing::BuddyFixture buddy = testing::BuddyFixture::make({testing::range_of(0, vram_bytes)});
    RecordingInvalidator invalidator;
};

// A bind space over the machine's buddy, writing its tables through `memory` (the
// machine's VRAM unless a test wraps it).
template <MmuFormat F, TableMemory M = HostMemory>
struct Space {
    testing::BindStorage storage;
    BindSpace<F, M, RecordingInvalidator> space;

    Space(Machine &machine, M &memory, std::size_t record_nodes, unsigned spare_table_pages = 0)
        : storage(512, 64, 64, record_nodes)
    {
        BindSpaceConfig config;
        config.space = va_range(0, u64{1} << 40);
        config.vram_end = VramAddress{vram_bytes};
        config.spare_table_pages = spare_table_pages;
        REQUIRE(
            space.create(memory, machine.buddy.buddy, machine.invalidator, storage.get(), config));
    }
    explicit Space(Machine &machine, std::size_t record_nodes = 64,
                   unsigned spare_table_pages = 0) requires std::same_as<M, HostMemory>
        : Space(machine, machine.memory, record_nodes, spare_table_pages)
    {
    }
};

struct Steps {
    std::vector<MappingStep> list;
    void operator()(const MappingStep &step) { list.push_back(step); }
};

BindOperation map_of(VirtualRange range, MappingBacking *backing, u64 offset, bool replace = false)
{
    BindOperation operation;
    operation.kind = BindOperation::Kind::map;
    operation.range = range;
    operation.target = {backing, offset};
    operation.replace = replace;
    return operation;
}
BindOperation unmap_of(VirtualRange range)
{
    BindOperation operation;
    operation.kind = BindOperation::Kind::unmap;
    operation.range = range;
    return operation;
}
BindOperation read_only_of(VirtualRange range)
{
    BindOperation operation;
    operation.kind = BindOperation::Kind::protect;
    operation.range = range;
    operation.change.fields = AttributeChange::read_only;
    operation.change.values.read_only = true;
    return operation;
}

// Commits a prepared job and flushes its batch.
template <class S, class Job>
void commit_flushed(S &space, Job &&job)
{
    Steps steps;
    auto batch = space.commit(std::move(job), steps);
    REQUIRE(batch);
    REQUIRE(space.flush(*batch));
}
// Prepares `operations` as one job, commits and flushes it; the error of prepare if it
// fails (`failed`: the index of the failing operation).
template <class S>
Result<void> run_job(S &space, std::span<const BindOperation> operations,
                     std::size_t *failed = nullptr)
{
    auto prepared = space.prepare(operations, failed);
    if (!prepared) return failure(prepared.error());
    commit_flushed(space, std::move(*prepared));
    REQUIRE(space.check_invariants());
    return success();
}

// Record i of a row of 64 KiB records side by side from 1 MiB.
VirtualRange row_record(u64 i)
{
    return va_range(1 * MiB + i * 64 * KiB, 64 * KiB);
}
// Maps for the first `count` records of the row, record i at backing offset i * 64 KiB.
std::vector<BindOperation> row_maps(u64 count, MappingBacking &buffer)
{
    std::vector<BindOperation> maps;
    for (u64 i = 0; i < count; ++i) maps.push_back(map_of(row_record(i), &buffer, i * 64 * KiB));
    return maps;
}

template <class S>
PhysicalAddress pa_of(S &space, u64 va)
{
    auto translation = space.translate(VirtualAddress{va});
    REQUIRE(translation);
    REQUIRE(translation->state == TranslationState::mapped);
    return translation->address;
}

}  // namespace

TEST_CASE_TEMPLATE("a job maps, cuts and protects as a whole, with one TLB batch", F, MmuV2, MmuV3)
{
    Machine machine;
    Space<F> space(machine);
    // A 2 MiB buffer in two physical runs.
    std::array layout{PhysicalSegment{PhysicalAddress{8 * MiB}, 1 * MiB},
                      PhysicalSegment{PhysicalAddress{20 * MiB}, 1 * MiB}};
    MappingBacking buffer(Aperture::video, layout);
    const u64 base = 0x4000'0000;
    const std::array job{map_of(va_range(base, 2 * MiB), &buffer, 0),
                         unmap_of(va_range(base + 512 * KiB, 64 * KiB)),
                         read_only_of(va_range(base + 1 * MiB, 256 * KiB))};
    auto prepared = space.space.prepare(job);
    REQUIRE(prepared);
    Steps steps;
    auto batch = space.space.commit(std::move(*prepared), steps);
    REQUIRE(batch);
    CHECK(batch->invalidation().ack_globally);  // the protect took writes away
    CHECK(batch->invalidation().sys_membar);
    REQUIRE(space.space.flush(*batch));
    CHECK(machine.invalidator.seen.size() == 1);  // one invalidate for the whole job

    // mapped, then the unmap's cut, then the protect's cut and its protected part.
    REQUIRE(steps.list.size() == 4);
    CHECK(steps.list[0].kind == MappingStep::Kind::mapped);
    CHECK(steps.list[1].kind == MappingStep::Kind::remapped);
    CHECK(steps.list[1].previous == va_range(base, 512 * KiB));
    CHECK(steps.list[1].next == va_range(base + 576 * KiB, 2 * MiB - 576 * KiB));
    CHECK(steps.list[2].kind == MappingStep::Kind::remapped);
    CHECK(steps.list[3].kind == MappingStep::Kind::protected_);
    CHECK(steps.list[3].record.range == va_range(base + 1 * MiB, 256 * KiB));

    CHECK(space.space.records().count() == 4);
    CHECK(pa_of(space.space, base + 4 * KiB) == PhysicalAddress{8 * MiB + 4 * KiB});
    CHECK(pa_of(space.space, base + 1 * MiB + 8 * KiB) == PhysicalAddress{20 * MiB + 8 * KiB});
    auto hole = space.space.translate(VirtualAddress{base + 520 * KiB});
    REQUIRE(hole);
    CHECK(hole->state != TranslationState::mapped);
    auto protected_page = space.space.translate(VirtualAddress{base + 1 * MiB});
    REQUIRE(protected_page);
    CHECK(protected_page->attributes.read_only);
    auto writable = space.space.translate(VirtualAddress{base + 1 * MiB + 256 * KiB});
    REQUIRE(writable);
    CHECK_FALSE(writable->attributes.read_only);
    CHECK(buffer.mapping_count() == 4);
    CHECK(space.space.check_invariants());
    REQUIRE(space.space.destroy());
    CHECK(buffer.mapping_count() == 0);
    CHECK(machine.buddy.buddy.free_bytes() == vram_bytes);
}

TEST_CASE_TEMPLATE("prepared jobs commit in order from their reserves, with the buddy exhausted", F,
                   MmuV2, MmuV3)
{
    Machine machine;
    Space<F> space(machine);
    std::array layout{PhysicalSegment{PhysicalAddress{4 * MiB}, 4 * MiB}};
    MappingBacking buffer(Aperture::video, layout);
    const std::array first{map_of(va_range(0x1'0000'0000, 4 * MiB), &buffer, 0)};
    // The second job depends on the first: it replaces part of what the first maps.
    const std::array second{map_of(va_range(0x1'0010'0000, 64 * KiB), &buffer, 0, true),
                            unmap_of(va_range(0x1'0020'0000, 4 * KiB))};
    auto job_first = space.space.prepare(first);
    REQUIRE(job_first);
    auto job_second = space.space.prepare(second);
    REQUIRE(job_second);
    CHECK(space.space.outstanding() == 2);
    // Without the first job, the second's unmap would have nothing to unmap: validated
    // against the state the first leaves.
    const std::array alone{unmap_of(va_range(0x2'0000'0000, 4 * KiB))};
    CHECK(space.space.prepare(alone).error() == Error::not_mapped);

    // Every byte no reserve holds is taken: the reserves are set aside, so the hog cannot
    // have them, and the buddy refuses anything more.
    std::vector<BuddyBlock> hog(64);
    REQUIRE(machine.buddy.buddy.set_aside_bytes() != 0);
    REQUIRE(machine.buddy.buddy.allocate(machine.buddy.buddy.available_bytes(), {}, hog));
    std::array<BuddyBlock, 1> more{};
    CHECK(machine.buddy.buddy.allocate(4 * KiB, {}, more).error() == Error::out_of_memory);
    Steps steps;
    CHECK(space.space.commit(std::move(*job_second), steps).error() == Error::invalid_argument);
    CHECK(space.space.cancel(std::move(*job_first)).error() == Error::in_use);
    auto batch_first = space.space.commit(std::move(*job_first), steps);
    REQUIRE(batch_first);
    auto batch_second = space.space.commit(std::move(*job_second), steps);
    REQUIRE(batch_second);
    REQUIRE(batch_first->merge(std::move(*batch_second)));
    REQUIRE(space.space.flush(*batch_first));
    CHECK(pa_of(space.space, 0x1'0010'0000) == PhysicalAddress{4 * MiB});  // replaced
    CHECK(pa_of(space.space, 0x1'0011'0000) == PhysicalAddress{5 * MiB + 64 * KiB});
    auto unmapped = space.space.translate(VirtualAddress{0x1'0020'0000});
    REQUIRE(unmapped);
    CHECK(unmapped->state != TranslationState::mapped);
    CHECK(space.space.outstanding() == 0);
    CHECK(space.space.check_invariants());
    for (const BuddyBlock &block : hog)
        if (block.size != 0) REQUIRE(machine.buddy.buddy.free(block));
    REQUIRE(space.space.destroy());
    CHECK(machine.buddy.buddy.free_bytes() == vram_bytes);
}

TEST_CASE_TEMPLATE("a failed prepare or a cancel leaves no trace", F, MmuV2, MmuV3)
{
    Machine machine;
    Space<F> space(machine);
    std::array layout{PhysicalSegment{PhysicalAddress{2 * MiB}, 1 * MiB}};
    MappingBacking buffer(Aperture::video, layout);
    const u64 free_before = machine.buddy.buddy.free_bytes();
    // The second operation fails: the first must not stay in the projected records.
    const std::array failing{map_of(va_range(0x10'0000, 1 * MiB), &buffer, 0),
                             unmap_of(va_range(0x90'0000, 4 * KiB))};
    CHECK(space.space.prepare(failing).error() == Error::not_mapped);
    const std::array past_backing{map_of(va_range(0x10'0000, 1 * MiB), &buffer, 4 * KiB)};
    CHECK(space.space.prepare(past_backing).error() == Error::out_of_range);
    const std::array mapping{map_of(va_range(0x10'0000, 1 * MiB), &buffer, 0)};
    {
        // No VRAM for the reserve: refused, nothing set aside, no record left.
        std::vector<BuddyBlock> hog(4096);
        auto taken = machine.buddy.buddy.allocate(free_before, {}, hog);
        REQUIRE(taken);
        CHECK(space.space.prepare(mapping).error() == Error::out_of_memory);
        CHECK(machine.buddy.buddy.set_aside_bytes() == 0);
        REQUIRE(machine.buddy.buddy.free(taken->blocks));
    }
    CHECK(machine.buddy.buddy.free_bytes() == free_before);
    CHECK(space.space.outstanding() == 0);
    auto job = space.space.prepare(mapping);  // the same VA: nothing was left
    REQUIRE(job);
    // Its reserve is set aside, not taken: no page leaves the buddy before commit.
    CHECK(machine.buddy.buddy.free_bytes() == free_before);
    CHECK(machine.buddy.buddy.available_bytes() < free_before);
    REQUIRE(space.space.cancel(std::move(*job)));
    CHECK(machine.buddy.buddy.available_bytes() == free_before);
    auto again = space.space.prepare(mapping);
    REQUIRE(again);
    Steps steps;
    auto batch = space.space.commit(std::move(*again), steps);
    REQUIRE(batch);
    REQUIRE(space.space.flush(*batch));
    CHECK(space.space.records().count() == 1);
    CHECK(space.space.check_invariants());
    REQUIRE(space.space.destroy());
}

// A failed prepare undoes its own steps on the projected records, newest first; the audit
// then finds them equal to the committed ones (it compares them whenever no job is
// outstanding), and a later job is judged against the right state.
TEST_CASE_TEMPLATE("a failed prepare undoes cuts, removals, new records and protects", F, MmuV2,
                   MmuV3)
{
    Machine machine;
    Space<F> space(machine, 160);
    std::array layout{PhysicalSegment{PhysicalAddress{2 * MiB}, 8 * MiB}};
    MappingBacking buffer(Aperture::video, layout);
    auto run = [&](std::span<const BindOperation> job) { REQUIRE(run_job(space.space, job)); };
    const std::vector<BindOperation> eight = row_maps(8, buffer);
    run(eight);
    REQUIRE(space.space.records().count() == 8);

    SUBCASE("every kind of step, then a failure")
    {
        const std::array failing{
            // cuts records 1 and 3, protects 1 (part), 2 and 3 (part)
            read_only_of(va_range(1 * MiB + 96 * KiB, 160 * KiB)),
            // removes record 5 whole, cuts 6
            map_of(va_range(1 * MiB + 5 * 64 * KiB, 96 * KiB), &buffer, 4 * MiB, true),
            // cuts record 0 on both sides
            unmap_of(va_range(1 * MiB + 16 * KiB, 16 * KiB)),
            // a new record elsewhere
            map_of(va_range(64 * MiB, 64 * KiB), &buffer, 6 * MiB),
            // fails: nothing is mapped there
            unmap_of(va_range(128 * MiB, 4 * KiB)),
        };
        std::size_t failed = 0;
        CHECK(space.space.prepare(failing, &failed).error() == Error::not_mapped);
        CHECK(failed == 4);
        CHECK(space.space.check_invariants());
        // Judged against the state before the failed job: record 5 is whole, so an unmap
        // of all of it passes; the new VA is free, so a map without replace passes.
        const std::array after{unmap_of(row_record(5)),
                               map_of(va_range(64 * MiB, 64 * KiB), &buffer, 6 * MiB)};
        run(after);
        CHECK(space.space.records().count() == 8);
        CHECK(space.space.check_invariants());
    }
    SUBCASE("behind an outstanding job")
    {
        const std::array first{unmap_of(row_record(2))};
        auto outstanding = space.space.prepare(first);
        REQUIRE(outstanding);
        // Sees record 2 gone: maps over it without replace, then fails.
        const std::array failing{map_of(row_record(2), &buffer, 0),
                                 read_only_of(va_range(1 * MiB, 8 * 64 * KiB)),
                                 unmap_of(va_range(128 * MiB, 4 * KiB))};
        CHECK(space.space.prepare(failing).error() == Error::not_mapped);
        commit_flushed(space.space, std::move(*outstanding));
        CHECK(space.space.records().count() == 7);
        CHECK(space.space.check_invariants());
        const std::array again{map_of(row_record(2), &buffer, 0)};  // record 2 is free
        run(again);
        CHECK(space.space.check_invariants());
    }
    SUBCASE("cancel of the newest job undoes its steps; an older one's log is gone")
    {
        const std::array first{read_only_of(va_range(1 * MiB + 96 * KiB, 160 * KiB)),
                               unmap_of(row_record(5))};
        auto a = space.space.prepare(first);
        REQUIRE(a);
        const std::array second{
            map_of(va_range(1 * MiB + 6 * 64 * KiB, 32 * KiB), &buffer, 4 * MiB, true),
            map_of(va_range(64 * MiB, 64 * KiB), &buffer, 6 * MiB)};
        auto b = space.space.prepare(second);
        REQUIRE(b);
        REQUIRE(space.space.cancel(std::move(*b)));
        // Record 6 is whole again (b cut it), record 5 still gone (a removed it).
        const std::array third{unmap_of(row_record(6)), map_of(row_record(5), &buffer, 0)};
        auto c = space.space.prepare(third);
        REQUIRE(c);
        REQUIRE(space.space.cancel(std::move(*c)));
        REQUIRE(space.space.cancel(std::move(*a)));  // its log was overwritten: a rebuild
        CHECK(space.space.outstanding() == 0);
        CHECK(space.space.check_invariants());
        const std::array whole{unmap_of(row_record(5)), unmap_of(row_record(6))};  // both whole
        run(whole);
        CHECK(space.space.records().count() == 6);
        CHECK(space.space.check_invariants());
    }
    SUBCASE("a failed prepare overwrites the newest job's log: its cancel rebuilds")
    {
        const std::array first{unmap_of(row_record(5)), read_only_of(row_record(6))};
        auto a = space.space.prepare(first);
        REQUIRE(a);
        const std::array failing{map_of(row_record(5), &buffer, 0),
                                 unmap_of(va_range(128 * MiB, 4 * KiB))};
        CHECK(space.space.prepare(failing).error() == Error::not_mapped);
        REQUIRE(space.space.cancel(std::move(*a)));
        CHECK(space.space.check_invariants());
        const std::array whole{unmap_of(row_record(5))};
        run(whole);
        CHECK(space.space.check_invariants());
    }
    SUBCASE("more steps than the undo log holds: the records are rebuilt")
    {
        std::vector<BindOperation> many;  // 130 records of 4 KiB over 2 MiB at 32 MiB
        for (u64 i = 0; i < 130; ++i)
            many.push_back(map_of(va_range(32 * MiB + i * 4 * KiB, 4 * KiB), &buffer, i * 4 * KiB));
        for (std::size_t first = 0; first < many.size(); first += 10)  // reserves fit
            run(std::span(many).subspan(first, 10));
        // One map with replace removes all 130 (130 steps), then the job fails.
        const std::array failing{map_of(va_range(32 * MiB, 130 * 4 * KiB), &buffer, 0, true),
                                 unmap_of(va_range(128 * MiB, 4 * KiB))};
        CHECK(space.space.prepare(failing).error() == Error::not_mapped);
        CHECK(space.space.records().count() == 138);
        CHECK(space.space.check_invariants());
        std::vector<BindOperation> remove_all;  // every one of them is still a record
        for (u64 i = 0; i < 130; ++i)
            remove_all.push_back(unmap_of(va_range(32 * MiB + i * 4 * KiB, 4 * KiB)));
        for (std::size_t first = 0; first < remove_all.size(); first += 10)
            run(std::span(remove_all).subspan(first, 10));
        CHECK(space.space.records().count() == 8);
        CHECK(space.space.check_invariants());
    }
    REQUIRE(space.space.destroy());
}

// A job alone in the queue that maps one range into a hole is judged against the committed
// records only (its overlay is not built); every later prepare must still see it, a cancel
// must drop it, and a failure must leave nothing.
TEST_CASE_TEMPLATE("a lone map job is seen by the jobs prepared after it", F, MmuV2, MmuV3)
{
    Machine machine;
    Space<F> space(machine);
    std::array layout{PhysicalSegment{PhysicalAddress{2 * MiB}, 8 * MiB}};
    MappingBacking buffer(Aperture::video, layout);
    const std::array first{map_of(row_record(0), &buffer, 0)};
    REQUIRE(run_job(space.space, first));
    const u64 available = machine.buddy.buddy.available_bytes();
    // Over a committed record: refused at operation 0, nothing set aside or queued.
    std::size_t failed = 9;
    const std::array over{map_of(va_range(1 * MiB + 60 * KiB, 8 * KiB), &buffer, 0)};
    CHECK(space.space.prepare(over, &failed).error() == Error::already_mapped);
    CHECK(failed == 0);
    CHECK(space.space.outstanding() == 0);
    CHECK(machine.buddy.buddy.available_bytes() == available);
    CHECK(space.space.check_invariants());

    const std::array second{map_of(row_record(1), &buffer, 64 * KiB)};
    auto lone = space.space.prepare(second);
    REQUIRE(lone);
    CHECK(space.space.check_invariants());
    // Later prepares see the lone job's record: a plain map there is refused, an unmap of
    // it and a map with replace over it are accepted.
    const std::array again{map_of(row_record(1), &buffer, 0)};
    CHECK(space.space.prepare(again, &failed).error() == Error::already_mapped);
    CHECK(failed == 0);
    const std::array across{unmap_of(va_range(1 * MiB + 32 * KiB, 64 * KiB))};  // both records
    auto unmapping = space.space.prepare(across);
    REQUIRE(unmapping);
    CHECK(space.space.check_invariants());
    REQUIRE(space.space.cancel(std::move(*unmapping)));
    const std::array replacing{map_of(row_record(1), &buffer, 128 * KiB, true)};
    auto replace = space.space.prepare(replacing);
    REQUIRE(replace);
    REQUIRE(space.space.cancel(std::move(*replace)));
    // Cancelled, the lone job leaves nothing: its VA maps again and the reserve is back.
    REQUIRE(space.space.cancel(std::move(*lone)));
    CHECK(machine.buddy.buddy.available_bytes() == available);
    CHECK(space.space.check_invariants());
    auto relone = space.space.prepare(second);
    REQUIRE(relone);
    auto behind = space.space.prepare(replacing);  // queued behind it, sees it
    REQUIRE(behind);
    commit_flushed(space.space, std::move(*relone));
    Steps steps;
    auto batch = space.space.commit(std::move(*behind), steps);
    REQUIRE(batch);
    REQUIRE(space.space.flush(*batch));
    REQUIRE(steps.list.size() == 2);
    CHECK(steps.list[0].kind == MappingStep::Kind::unmapped);
    CHECK(steps.list[0].record.offset == 64 * KiB);
    CHECK(steps.list[1].kind == MappingStep::Kind::mapped);
    CHECK(pa_of(space.space, row_record(1).begin().value()) ==
          PhysicalAddress{2 * MiB + 128 * KiB});
    CHECK(space.space.records().count() == 2);
    CHECK(space.space.check_invariants());
    REQUIRE(space.space.destroy());
}

// With no job outstanding, a job's maps into holes are checked against the committed
// records alone and projected only when a later operation of the job, or a later job,
// reaches them. Whatever reaches them must see them.
TEST_CASE_TEMPLATE("a job's maps into holes are seen by its later operations and by later jobs", F,
                   MmuV2, MmuV3)
{
    Machine machine;
    Space<F> space(machine, 640);
    std::array layout{PhysicalSegment{PhysicalAddress{2 * MiB}, 8 * MiB}};
    MappingBacking buffer(Aperture::video, layout);
    const u64 available = machine.buddy.buddy.available_bytes();
    // A map over an earlier map of the same job: refused there, nothing left.
    std::size_t failed = 9;
    const std::array twice{map_of(row_record(0), &buffer, 0), map_of(row_record(2), &buffer, 0),
                           map_of(va_range(1 * MiB + 32 * KiB, 64 * KiB), &buffer, 0)};
    CHECK(space.space.prepare(twice, &failed).error() == Error::already_mapped);
    CHECK(failed == 2);
    CHECK(space.space.outstanding() == 0);
    CHECK(space.space.records().count() == 0);
    CHECK(machine.buddy.buddy.available_bytes() == available);
    CHECK(space.space.check_invariants());
    // Later operations of the job cut, protect and replace its earlier maps; record 3 is
    // reached by nothing of the job.
    const std::array reach{map_of(row_record(0), &buffer, 0),
                           map_of(row_record(1), &buffer, 64 * KiB),
                           map_of(row_record(2), &buffer, 128 * KiB),
                           map_of(row_record(3), &buffer, 192 * KiB),
                           unmap_of(va_range(1 * MiB + 16 * KiB, 16 * KiB)),
                           read_only_of(row_record(1)),
                           map_of(row_record(2), &buffer, 512 * KiB, true)};
    auto job = space.space.prepare(reach, &failed);
    REQUIRE(job);
    CHECK(space.space.check_invariants());
    // A job behind it sees all of them, record 3 included.
    const std::array onto_three{map_of(row_record(3), &buffer, 0)};
    CHECK(space.space.prepare(onto_three, &failed).error() == Error::already_mapped);
    CHECK(failed == 0);
    const std::array into_hole{map_of(va_range(1 * MiB + 16 * KiB, 16 * KiB), &buffer, 0)};
    auto behind = space.space.prepare(std::span<const BindOperation>(into_hole));
    REQUIRE(behind);
    CHECK(space.space.check_invariants());
    commit_flushed(space.space, std::move(*job));
    commit_flushed(space.space, std::move(*behind));
    CHECK(space.space.check_invariants());
    // 0 cut in two around the hole the second job filled, 1 read-only, 2 moved, 3 as mapped.
    CHECK(space.space.records().count() == 6);
    CHECK(pa_of(space.space, 1 * MiB + 32 * KiB) == PhysicalAddress{2 * MiB + 32 * KiB});
    CHECK(pa_of(space.space, 1 * MiB + 16 * KiB) == PhysicalAddress{2 * MiB});
    CHECK(space.space.translate(row_record(1).begin())->attributes.read_only);
    CHECK(pa_of(space.space, row_record(2).begin().value()) ==
          PhysicalAddress{2 * MiB + 512 * KiB});
    CHECK(pa_of(space.space, row_record(3).begin().value()) ==
          PhysicalAddress{2 * MiB + 192 * KiB});

    // A map into what an earlier operation of the job unmapped (committed, not yet gone).
    const std::array move_three{unmap_of(row_record(3)), map_of(row_record(3), &buffer, 0)};
    REQUIRE(run_job(space.space, move_three));
    CHECK(pa_of(space.space, row_record(3).begin().value()) == PhysicalAddress{2 * MiB});

    // More maps than the direct list holds: the rest go through the overlay, and the last
    // operation still sees the first map.
    std::vector<BindOperation> many;
    for (u64 i = 0; i < 300; ++i)
        many.push_back(map_of(row_record(16 + i), &buffer, (i % 64) * 64 * KiB));
    many.push_back(map_of(va_range(row_record(16).begin().value() + 4 * KiB, 4 * KiB), &buffer, 0));
    CHECK(space.space.prepare(many, &failed).error() == Error::already_mapped);
    CHECK(failed == 300);
    CHECK(space.space.check_invariants());
    many.back() = unmap_of(row_record(16));
    many.push_back(unmap_of(row_record(315)));
    auto large = space.space.prepare(many);
    REQUIRE(large);
    CHECK(space.space.check_invariants());
    commit_flushed(space.space, std::move(*large));
    CHECK(space.space.records().count() == 6 + 298);
    CHECK(space.space.records().find(row_record(16).begin()).error() == Error::not_mapped);
    CHECK(pa_of(space.space, row_record(17).begin().value()) ==
          PhysicalAddress{2 * MiB + 64 * KiB});
    CHECK(space.space.check_invariants());
    REQUIRE(space.space.destroy());
}

// The records every outstanding job leaves must fit the record pool once they commit: prepare
// counts them (new records, records removed whole, records cut on both sides), across jobs.
TEST_CASE_TEMPLATE("prepare refuses a job whose records would not fit the pool", F, MmuV2, MmuV3)
{
    Machine machine;
    Space<F> space(machine, 8);
    std::array layout{PhysicalSegment{PhysicalAddress{2 * MiB}, 8 * MiB}};
    MappingBacking buffer(Aperture::video, layout);
    const std::vector<BindOperation> six = row_maps(6, buffer);
    REQUIRE(run_job(space.space, six));
    const std::array seventh{map_of(row_record(6), &buffer, 0)};
    auto a = space.space.prepare(seventh);  // 7 once it commits
    REQUIRE(a);
    std::size_t failed = 0;
    const std::array two_more{map_of(row_record(7), &buffer, 0), map_of(row_record(8), &buffer, 0)};
    CHECK(space.space.prepare(two_more, &failed).error() == Error::out_of_storage);
    CHECK(failed == 1);
    const std::array swap{unmap_of(row_record(0)), map_of(row_record(7), &buffer, 0),
                          map_of(row_record(8), &buffer, 0)};  // 7 - 1 + 2 = 8: fits
    auto b = space.space.prepare(swap);
    REQUIRE(b);
    const std::array one_more{map_of(row_record(9), &buffer, 0)};
    CHECK(space.space.prepare(one_more).error() == Error::out_of_storage);
    REQUIRE(space.space.cancel(std::move(*b)));  // its log was overwritten: a rebuild
    const std::array eighth{map_of(row_record(7), &buffer, 0)};
    auto e = space.space.prepare(eighth);  // 8
    REQUIRE(e);
    REQUIRE(space.space.cancel(std::move(*e)));  // undone by its log: 7 again
    auto d = space.space.prepare(one_more);      // 7 + 1 fits
    REQUIRE(d);
    REQUIRE(space.space.cancel(std::move(*d)));
    REQUIRE(space.space.cancel(std::move(*a)));
    // Six records: a cut inside one record adds one, a map that cuts another on both
    // sides adds two (its remainder and itself): 6 + 1 + 2 = 9 does not fit.
    const std::array cuts{
        unmap_of(va_range(1 * MiB + 16 * KiB, 16 * KiB)),
        map_of(va_range(1 * MiB + 64 * KiB + 16 * KiB, 16 * KiB), &buffer, 0, true)};
    CHECK(space.space.prepare(cuts, &failed).error() == Error::out_of_storage);
    CHECK(failed == 1);
    CHECK(space.space.check_invariants());
    const std::array cut{cuts[0]};  // 7 fits
    auto c = space.space.prepare(cut);
    REQUIRE(c);
    REQUIRE(space.space.cancel(std::move(*c)));
    CHECK(space.space.check_invariants());
    REQUIRE(space.space.destroy());
}

TEST_CASE_TEMPLATE("rebind after eviction rewrites every space that maps the backing", F, MmuV2,
                   MmuV3)
{
    Machine machine;
    Space<F> first(machine), second(machine);
    std::array in_vram{PhysicalSegment{PhysicalAddress{16 * MiB}, 256 * KiB}};
    MappingBacking buffer(Aperture::video, in_vram);
    Steps steps;
    for (auto *space : {&first.space, &second.space}) {
        const std::array job{map_of(va_range(0x80'0000, 256 * KiB), &buffer, 0)};
        auto prepared = space->prepare(job);
        REQUIRE(prepared);
        auto batch = space->commit(std::move(*prepared), steps);
        REQUIRE(batch);
        REQUIRE(space->flush(*batch));
    }
    CHECK(buffer.mapping_count() == 2);
    // Evicted to scattered system memory pages.
    std::array in_system{PhysicalSegment{PhysicalAddress{0x7'0000'0000}, 128 * KiB},
                         PhysicalSegment{PhysicalAddress{0x9'0000'0000}, 128 * KiB}};
    REQUIRE(buffer.relocate(Aperture::system_coherent, in_system));
    for (auto *space : {&first.space, &second.space}) {
        std::array<BindOperation, 2> job{};
        REQUIRE(space->rebind_operations(buffer, job) == 1);  // this space's one record
        CHECK(job[0].kind == BindOperation::Kind::rebind);
        CHECK(job[0].range == va_range(0x80'0000, 256 * KiB));
        auto prepared = space->prepare(std::span(job).first(1));
        REQUIRE(prepared);
        auto batch = space->commit(std::move(*prepared), steps);
        REQUIRE(batch);
        REQUIRE(space->flush(*batch));
        auto translation = space->translate(VirtualAddress{0x80'0000 + 136 * KiB});
        REQUIRE(translation);
        CHECK(translation->address == PhysicalAddress{0x9'0000'0000 + 8 * KiB});
        CHECK(translation->attributes.aperture == Aperture::system_coherent);
        CHECK(space->check_invariants());
    }
    REQUIRE(first.space.destroy());
    REQUIRE(second.space.destroy());
    CHECK(machine.buddy.buddy.free_bytes() == vram_bytes);
}

// VRAM that stops taking writes on demand (a device that went away mid-commit).
struct FlakyMemory {
    HostMemory &inner;
    u64 writes_left = ~u64{0};
    Result<void> read(VramAddress address, std::span<u64> out) { return inner.read(address, out); }
    Result<void> write(VramAddress address, std::span<const u64> in)
    {
        if (writes_left == 0) return failure(Error::device_error);
        --writes_left;
        return inner.write(address, in);
    }
    Result<void> fill(VramAddress address, u64 value, std::size_t count)
    {
        if (writes_left == 0) return failure(Error::device_error);
        --writes_left;
        return inner.fill(address, value, count);
    }
};
static_assert(TableMemory<FlakyMemory>);

// A device error in commit: the job's tables are undefined and its records stop where the
// error hit (a map writes its tables first, so it made no record); prepares after it judge
// against the committed records plus the jobs still queued.
TEST_CASE_TEMPLATE("after a device error in commit, prepares see what is committed and queued", F,
                   MmuV2, MmuV3)
{
    Machine machine;
    FlakyMemory memory{machine.memory};
    Space<F, FlakyMemory> flaky(machine, memory, 64);
    auto &space = flaky.space;
    std::array layout{PhysicalSegment{PhysicalAddress{2 * MiB}, 8 * MiB}};
    MappingBacking buffer(Aperture::video, layout);
    const std::vector<BindOperation> eight = row_maps(8, buffer);
    REQUIRE(run_job(space, eight));

    // Far from the row: the map needs new directories, drawn as 4 KiB pages.
    const u64 far = u64{512} << 30;
    const std::array fresh{map_of(va_range(far, 64 * KiB), &buffer, 0)};
    auto a = space.prepare(fresh);
    REQUIRE(a);
    const std::array remove_three{unmap_of(row_record(3))};
    BuddyAllocator &buddy = machine.buddy.buddy;
    const u64 promised_for_a = buddy.set_aside_bytes();
    auto b = space.prepare(remove_three);
    REQUIRE(b);
    const u64 promised_for_b = buddy.set_aside_bytes() - promised_for_a;
    // The first table the commit draws on its promise cannot be zeroed: the page goes
    // back, and the promise stays whole until the job ends and returns it. (All free
    // memory dirty: the page drawn must be zeroed, and that write is the one that fails.)
    buddy.reset_clear(false);
    memory.writes_left = 0;
    Steps steps;
    CHECK(space.commit(std::move(*a), steps).error() == Error::device_error);
    memory.writes_left = ~u64{0};
    CHECK(buddy.set_aside_bytes() == promised_for_b);
    CHECK(buddy.check_invariants());
    CHECK(space.records().count() == 8);
    CHECK(space.outstanding() == 1);
    // Still queued: record 3 is gone for a prepare; the failed map's VA holds no record.
    CHECK(space.prepare(remove_three).error() == Error::not_mapped);
    const std::array over_fresh{unmap_of(va_range(far, 4 * KiB))};
    CHECK(space.prepare(over_fresh).error() == Error::not_mapped);
    REQUIRE(space.cancel(std::move(*b)));
    auto again = space.prepare(remove_three);  // record 3 is back
    REQUIRE(again);
    REQUIRE(space.cancel(std::move(*again)));
    CHECK(space.outstanding() == 0);
    CHECK(buddy.set_aside_bytes() == 0);
}

TEST_CASE_TEMPLATE("a prepare that runs out of VRAM at any table leaves no trace", F, MmuV2, MmuV3)
{
    // Fault injection: leave exactly n free table pages in the buddy for n = 0, 1, ...
    // until the job's reserve fits; every shortfall is out_of_memory with nothing kept.
    Machine machine;
    Space<F> space(machine);
    std::array layout{PhysicalSegment{PhysicalAddress{32 * MiB}, 4 * MiB}};
    MappingBacking buffer(Aperture::video, layout);
    const std::array job{map_of(va_range(0x3ff000, 3 * MiB), &buffer, 0),
                         unmap_of(va_range(0x400000, 64 * KiB))};
    for (u64 free_pages = 0;; ++free_pages) {
        CAPTURE(free_pages);
        std::vector<BuddyBlock> hog(4096);
        const u64 keep = free_pages * 4 * KiB;
        const u64 take = machine.buddy.buddy.free_bytes() - keep;
        auto taken = machine.buddy.buddy.allocate(take, {.min_block_size = 4 * KiB}, hog);
        REQUIRE(taken);
        auto prepared = space.space.prepare(job);
        if (prepared) {
            CHECK(space.space.outstanding() == 1);
            Steps steps;
            auto batch = space.space.commit(std::move(*prepared), steps);
            REQUIRE(batch);
            REQUIRE(space.space.flush(*batch));
            for (const BuddyBlock &block : taken->blocks) REQUIRE(machine.buddy.buddy.free(block));
            CHECK(space.space.check_invariants());
            CHECK(free_pages > 4);  // the worst case needs more than a handful of tables
            break;
        }
        CHECK(prepared.error() == Error::out_of_memory);
        CHECK(machine.buddy.buddy.free_bytes() == keep);
        CHECK(space.space.outstanding() == 0);
        CHECK(space.space.records().count() == 0);
        for (const BuddyBlock &block : taken->blocks) REQUIRE(machine.buddy.buddy.free(block));
    }
    REQUIRE(space.space.destroy());
    CHECK(machine.buddy.buddy.free_bytes() == vram_bytes);
}

namespace {

BindOperation sparse_of(VirtualRange range, bool make = true)
{
    BindOperation operation;
    operation.kind = make ? BindOperation::Kind::make_sparse : BindOperation::Kind::clear_sparse;
    operation.range = range;
    return operation;
}
BindOperation raw_map_of(VirtualRange range, u64 pa, PageSizeSet sizes = {}, bool replace = false)
{
    BindOperation operation;
    operation.kind = BindOperation::Kind::map;
    operation.range = range;
    operation.attributes.address = PhysicalAddress{pa};
    operation.page_sizes = sizes;
    operation.replace = replace;
    return operation;
}

template <class S>
TranslationState state_of(S &space, u64 va)
{
    auto translation = space.translate(VirtualAddress{va});
    REQUIRE(translation);
    return translation->state;
}

}  // namespace

TEST_CASE_TEMPLATE("jobs make and clear sparse ranges; maps go over them and unmaps return to them",
                   F, MmuV2, MmuV3)
{
    Machine machine;
    Space<F> space(machine);
    const u64 base = 0x8000'0000;
    const std::array job{sparse_of(va_range(base, 4 * MiB)),
                         raw_map_of(va_range(base + 64 * KiB, 8 * KiB), 2 * MiB)};
    REQUIRE(run_job(space.space, job));
    CHECK(state_of(space.space, base) == TranslationState::sparse);
    CHECK(state_of(space.space, base + 64 * KiB) == TranslationState::mapped);
    CHECK(space.space.records().count() == 1);  // sparse ranges are no records

    // Sparse operations never touch mapped pages; the failing operation is named.
    std::size_t failed = 99;
    const std::array clash{sparse_of(va_range(base + 8 * MiB, 64 * KiB)),
                           sparse_of(va_range(base, 128 * KiB), false)};
    CHECK(run_job(space.space, clash, &failed).error() == Error::already_mapped);
    CHECK(failed == 1);
    CHECK(state_of(space.space, base + 8 * MiB) == TranslationState::unmapped);  // no trace

    const std::array back{unmap_of(va_range(base + 64 * KiB, 8 * KiB)),
                          sparse_of(va_range(base + 2 * MiB, 4 * KiB), false)};
    REQUIRE(run_job(space.space, back));
    CHECK(state_of(space.space, base + 64 * KiB) == TranslationState::sparse);
    CHECK(state_of(space.space, base + 2 * MiB) == TranslationState::unmapped);
    CHECK(state_of(space.space, base + 2 * MiB + 4 * KiB) == TranslationState::sparse);

    // destroy clears the sparse ranges too: every table goes back.
    REQUIRE(space.space.destroy());
    CHECK(machine.buddy.buddy.free_bytes() == vram_bytes);
}

TEST_CASE_TEMPLATE("maps with pinned page sizes are placed over what the tables hold, or refused "
                   "at prepare",
                   F, MmuV2, MmuV3)
{
    Machine machine;
    Space<F> space(machine);
    const u64 base = 0x1'0000'0000;
    const PageSizeSet only_64k{PageSize::size_64k()}, only_2m{PageSize::size_2m()};
    // 4 KiB pages, then a 64 KiB-only map replaces them: one big page.
    REQUIRE(run_job(space.space, std::array{raw_map_of(va_range(base, 64 * KiB), 1 * MiB,
                                                       {PageSize::size_4k()})}));
    REQUIRE(run_job(space.space,
                    std::array{raw_map_of(va_range(base, 64 * KiB), 4 * MiB, only_64k, true)}));
    auto translation = space.space.translate(VirtualAddress{base + 4 * KiB});
    REQUIRE(translation);
    CHECK(translation->page_size == PageSize::size_64k());
    CHECK(translation->address.value() == 4 * MiB + 4 * KiB);

    // A 64 KiB page over a chunk with some sparse 4 KiB pages: they come back on unmap.
    const u64 chunk = base + 2 * MiB;
    REQUIRE(run_job(space.space, std::array{sparse_of(va_range(chunk, 8 * KiB))}));
    REQUIRE(
        run_job(space.space, std::array{raw_map_of(va_range(chunk, 64 * KiB), 8 * MiB, only_64k)}));
    CHECK(space.space.translate(VirtualAddress{chunk})->page_size == PageSize::size_64k());
    REQUIRE(run_job(space.space, std::array{unmap_of(va_range(chunk, 64 * KiB))}));
    CHECK(state_of(space.space, chunk + 4 * KiB) == TranslationState::sparse);
    CHECK(state_of(space.space, chunk + 8 * KiB) == TranslationState::unmapped);

    // A 2 MiB-only map with replace over the first block (4 KiB and 64 KiB pages below it,
    // no sparse page): the 2 MiB page takes the tables' place.
    REQUIRE(run_job(space.space,
                    std::array{raw_map_of(va_range(base, 2 * MiB), 16 * MiB, only_2m, true)}));
    translation = space.space.translate(VirtualAddress{base + 1 * MiB});
    REQUIRE(translation);
    CHECK(translation->page_size == PageSize::size_2m());
    CHECK(translation->address.value() == 17 * MiB);

    // Over the second block, partly sparse: no 2 MiB page can record that (misaligned).
    std::size_t failed = 99;
    CHECK(run_job(space.space,
                  std::array{raw_map_of(va_range(chunk, 2 * MiB), 16 * MiB, only_2m, true)},
                  &failed)
              .error() == Error::misaligned);
    CHECK(failed == 0);
    // With the whole block sparse first (in an earlier job) it places, and unmapping
    // returns all of it to sparse.
    REQUIRE(run_job(space.space, std::array{sparse_of(va_range(chunk, 2 * MiB))}));
    REQUIRE(run_job(space.space,
                    std::array{raw_map_of(va_range(chunk, 2 * MiB), 16 * MiB, only_2m, true)}));
    CHECK(space.space.translate(VirtualAddress{chunk})->page_size == PageSize::size_2m());
    REQUIRE(run_job(space.space, std::array{unmap_of(va_range(chunk, 2 * MiB))}));
    CHECK(state_of(space.space, chunk + 64 * KiB) == TranslationState::sparse);

    // A sparse operation queued ahead of such a map over the same block: in_use.
    const u64 third = base + 4 * MiB;
    CHECK(run_job(space.space,
                  std::array{sparse_of(va_range(third, 4 * KiB)),
                             raw_map_of(va_range(third, 2 * MiB), 16 * MiB, only_2m)},
                  &failed)
              .error() == Error::in_use);
    CHECK(failed == 1);
    REQUIRE(space.space.destroy());
    CHECK(machine.buddy.buddy.free_bytes() == vram_bytes);
}

TEST_CASE_TEMPLATE("a map with replace rewrites only the pages that change", F, MmuV2, MmuV3)
{
    Machine machine;
    Space<F> space(machine);
    const u64 base = 0x2'0000'0000;
    REQUIRE(run_job(space.space, std::array{raw_map_of(va_range(base, 1 * MiB), 4 * MiB)}));
    // The same bytes with the same attributes again: nothing written, nothing to invalidate.
    const u64 writes = machine.memory.counters().writes;
    const std::size_t invalidates = machine.invalidator.seen.size();
    const std::array again{
        raw_map_of(va_range(base + 64 * KiB, 512 * KiB), 4 * MiB + 64 * KiB, {}, true)};
    auto prepared = space.space.prepare(again);
    REQUIRE(prepared);
    Steps steps;
    auto batch = space.space.commit(std::move(*prepared), steps);
    REQUIRE(batch);
    CHECK_FALSE(batch->pending());
    REQUIRE(space.space.flush(*batch));
    CHECK(machine.memory.counters().writes == writes);
    CHECK(machine.invalidator.seen.size() == invalidates);
    CHECK(steps.list.size() == 2);  // the record is still cut (remapped) and the new one made
    // Half of it moves: only that half is written, and the result is as a fresh map.
    REQUIRE(
        run_job(space.space, std::array{raw_map_of(va_range(base, 256 * KiB), 8 * MiB, {}, true)}));
    CHECK(machine.memory.counters().writes > writes);
    CHECK(pa_of(space.space, base + 4 * KiB) == PhysicalAddress{8 * MiB + 4 * KiB});
    CHECK(pa_of(space.space, base + 512 * KiB) == PhysicalAddress{4 * MiB + 512 * KiB});
    // Other attributes are a change: rewritten.
    BindOperation read_only =
        raw_map_of(va_range(base + 512 * KiB, 64 * KiB), 4 * MiB + 512 * KiB, {}, true);
    read_only.attributes.read_only = true;
    REQUIRE(run_job(space.space, std::array{read_only}));
    auto translation = space.space.translate(VirtualAddress{base + 512 * KiB});
    REQUIRE(translation);
    CHECK(translation->attributes.read_only);
    REQUIRE(space.space.destroy());
}

TEST_CASE_TEMPLATE("spare table pages serve later jobs, even with the buddy exhausted", F, MmuV2,
                   MmuV3)
{
    Machine machine;
    const u64 free_at_start = machine.buddy.buddy.free_bytes();
    Space<F> spare_keeping(machine, 64, 8);
    auto &space = spare_keeping.space;
    std::array layout{PhysicalSegment{PhysicalAddress{2 * MiB}, 1 * MiB}};
    MappingBacking buffer(Aperture::video, layout);
    const std::array mapping{map_of(va_range(0x10'0000, 1 * MiB), &buffer, 0)};
    const std::array unmapping{unmap_of(va_range(0x10'0000, 1 * MiB))};
    REQUIRE(run_job(space, std::span<const BindOperation>(mapping)));
    const u64 with_tables = machine.buddy.buddy.free_bytes();
    REQUIRE(run_job(space, std::span<const BindOperation>(unmapping)));
    CHECK(space.translate(VirtualAddress{0x10'0000})->state == TranslationState::unmapped);
    CHECK(machine.buddy.buddy.free_bytes() == with_tables);  // emptied tables kept

    // Two pages left in the buddy, less than the job's worst case: the spare pages make up
    // its promise.
    std::vector<BuddyBlock> hog(4096);
    auto taken =
        machine.buddy.buddy.allocate(machine.buddy.buddy.available_bytes() - 8 * KiB, {}, hog);
    REQUIRE(taken);
    REQUIRE(run_job(space, std::span<const BindOperation>(mapping)));
    CHECK(pa_of(space, 0x10'0000 + 4 * KiB).value() == 2 * MiB + 4 * KiB);
    REQUIRE(machine.buddy.buddy.free(taken->blocks));
    REQUIRE(run_job(space, std::span<const BindOperation>(unmapping)));
    REQUIRE(space.destroy());
    CHECK(machine.buddy.buddy.free_bytes() == free_at_start);
    CHECK(machine.buddy.buddy.check_invariants());
}
