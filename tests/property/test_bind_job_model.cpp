// Bind jobs against a naive page model: two address spaces share three backings; random
// jobs of one to four operations (map with and without replace, unmap, protect, some
// bound to fail) are prepared up to three deep, then committed in order or the newest
// cancelled; backings move (relocate to another VRAM place or to system memory) and every
// space rebinds them. The model holds one entry per 4 KiB page: which backing and offset
// (or which physical address) and the attributes.
//   - a job is refused exactly when the model says one of its operations is invalid in
//     the state the earlier jobs and operations leave, with that error, and leaves no
//     trace (later jobs see the state without it; the buddy's free bytes are unchanged);
//   - after every commit, sampled pages translate to what the model says, through the
//     current layout of their backing; every so often the full audit runs (tables,
//     records, every record's pages).
//   GPUMMU_BIND_JOB_OPERATIONS: jobs per format (CI: the default; the soak runs more).
#include <doctest/doctest.h>

#include <array>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/vmm/bind_job.hpp"
#include "support/page_table_fixture.hpp"
#include "support/random.hpp"
#include "support/space_storage.hpp"

#ifndef GPUMMU_BIND_JOB_OPERATIONS
#define GPUMMU_BIND_JOB_OPERATIONS 1500
#endif

using namespace gpummu;
using testing::Random;
using testing::RecordingInvalidator;
using testing::va_range;

namespace {

constexpr u64 KiB = 1024, MiB = 1024 * KiB;
constexpr u64 vram_bytes = 96 * MiB;
constexpr u64 window = 0x1'0000'0000ull - 4 * MiB;  // crosses a 4 GiB boundary
constexpr u64 window_bytes = 12 * MiB;
constexpr u64 page = 4096;
constexpr std::size_t backing_count = 3;
constexpr u64 backing_bytes = 1 * MiB;

struct PageEntry {
    int backing = -1;  // -1: raw physical memory at `address`
    u64 offset = 0;
    u64 address = 0;
    bool read_only = false;
    u8 kind = 0;
};
using PageModel = std::map<u64, PageEntry>;  // by VA

struct Backings {
    // Each backing lives in 4 runs of 256 KiB; a relocation picks new places.
    std::array<std::array<PhysicalSegment, 4>, backing_count> layouts{};
    std::vector<std::unique_ptr<MappingBacking>> objects;
    std::array<Aperture, backing_count> apertures{};

    void place(std::size_t b, Random &random, bool system)
    {
        for (std::size_t run = 0; run < 4; ++run) {
            const u64 slot = system ? 0x40'0000'0000ull + random.below(1u << 16) * 256 * KiB
                                    : (16 * MiB) + (b * 4 + run) * 256 * KiB +
                                          (random.below(2) == 0 ? 0 : 48 * MiB);
            layouts[b][run] = PhysicalSegment{PhysicalAddress{slot}, 256 * KiB};
        }
        apertures[b] = system ? Aperture::system_coherent : Aperture::video;
    }
    u64 address_of(std::size_t b, u64 offset) const
    {
        return layouts[b][offset / (256 * KiB)].address.value() + offset % (256 * KiB);
    }
};

template <MmuFormat F>
struct Space {
    testing::BindStorage storage{2048, 128, 256, 4096};
    BindSpace<F, HostMemory, RecordingInvalidator> space;
    PageModel committed;
    PageModel projected_model;
    struct Queued {
        std::vector<BindOperation> operations;
        std::vector<TablePage> reserve;
        std::optional<typename BindSpace<F, HostMemory, RecordingInvalidator>::PreparedJob> job;
    };
    std::deque<Queued> queue;
};

// Applies one operation to a page model; the error the operation must fail with, if any.
std::optional<Error> apply(PageModel &model, const BindOperation &operation,
                           const std::vector<MappingBacking *> &backings)
{
    const u64 begin = operation.range.begin().value(), end = operation.range.end().value();
    bool any = false, all = true;
    for (u64 va = begin; va < end; va += page) {
        const bool mapped = model.count(va) != 0;
        any = any || mapped;
        all = all && mapped;
    }
    switch (operation.kind) {
    case BindOperation::Kind::map: {
        if (!operation.replace && any) return Error::already_mapped;
        int backing = -1;
        for (std::size_t b = 0; b < backings.size(); ++b)
            if (backings[b] == operation.target.backing) backing = static_cast<int>(b);
        for (u64 va = begin; va < end; va += page) {
            PageEntry entry;
            entry.backing = backing;
            entry.offset = operation.target.offset + (va - begin);
            entry.address = operation.attributes.address.value() + (va - begin);
            entry.read_only = operation.attributes.read_only;
            entry.kind = operation.attributes.kind;
            model[va] = entry;
        }
        return std::nullopt;
    }
    case BindOperation::Kind::unmap:
        if (!all) return Error::not_mapped;
        for (u64 va = begin; va < end; va += page) model.erase(va);
        return std::nullopt;
    case BindOperation::Kind::protect:
        if (!all) return Error::not_mapped;
        for (u64 va = begin; va < end; va += page) {
            PageEntry &entry = model[va];
            const PageAttributes after = operation.change.applied_to(
                PageAttributes{.read_only = entry.read_only, .kind = entry.kind});
            entry.read_only = after.read_only;
            entry.kind = after.kind;
        }
        return std::nullopt;
    case BindOperation::Kind::rebind:
        if (!all) return Error::not_mapped;
        return std::nullopt;
    }
    return Error::invalid_argument;
}

// Errors prepare finds before looking at any state: the backing's bounds.
std::optional<Error> static_error(const BindOperation &operation)
{
    if (operation.kind == BindOperation::Kind::map && operation.target.backing != nullptr &&
        operation.target.offset + operation.range.size() > backing_bytes)
        return Error::out_of_range;
    return std::nullopt;
}

BindOperation random_operation(Random &random, const PageModel &model,
                               const std::vector<MappingBacking *> &backings)
{
    BindOperation operation;
    u64 size = (1 + random.below(random.below(4) == 0 ? 128 : 16)) * page;
    u64 begin;
    if (!model.empty() && random.below(3) != 0) {
        auto it = model.begin();
        std::advance(it, static_cast<long>(random.below(model.size())));
        begin = it->first;
    } else {
        begin = window + random.below(window_bytes / page) * page;
    }
    size = std::min(size, window + window_bytes - begin);
    const unsigned choice = static_cast<unsigned>(random.below(10));
    // Mostly valid operations (one in eight is left as drawn, often invalid): unmap and
    // protect stop at the first unmapped page, a map without replace before the first
    // mapped one.
    const bool shape = random.below(8) != 0;
    if (shape) {
        const bool want_mapped = choice >= 5;
        u64 length = 0;
        while (length < size && (model.count(begin + length) != 0) == want_mapped) length += page;
        if (length != 0) size = length;
    }
    operation.range = va_range(begin, size);
    if (choice < 5) {
        operation.kind = BindOperation::Kind::map;
        operation.replace = random.below(2) == 0 || (shape && model.count(begin) != 0);
        operation.attributes.read_only = random.below(4) == 0;
        operation.attributes.kind = static_cast<u8>(random.below(2) * 6);
        if (random.below(4) == 0) {
            operation.attributes.address = PhysicalAddress{(random.below(16) * 256 * KiB)};
        } else {
            operation.target.backing = backings[random.below(backings.size())];
            // Mostly inside the backing; sometimes past its end (out_of_range).
            const u64 room = backing_bytes > size ? (backing_bytes - size) / page : 0;
            operation.target.offset =
                random.below(16) == 0 ? backing_bytes - page : random.below(room + 1) * page;
        }
    } else if (choice < 8) {
        operation.kind = BindOperation::Kind::unmap;
    } else {
        operation.kind = BindOperation::Kind::protect;
        operation.change.fields = static_cast<u8>(
            random.below(2) == 0 ? AttributeChange::read_only
                                 : AttributeChange::read_only | AttributeChange::kind);
        operation.change.values.read_only = random.below(2) == 0;
        operation.change.values.kind = static_cast<u8>(random.below(2) * 6);
    }
    return operation;
}

template <class S>
void check_pages(S &space, const PageModel &model, const Backings &backings, Random &random)
{
    for (int sample = 0; sample < 24; ++sample) {
        const u64 va = window + random.below(window_bytes / page) * page;
        auto translation = space.space.translate(VirtualAddress{va});
        REQUIRE(translation);
        auto it = model.find(va);
        CAPTURE(va);
        if (it == model.end()) {
            CHECK(translation->state != TranslationState::mapped);
            continue;
        }
        REQUIRE(translation->state == TranslationState::mapped);
        const PageEntry &entry = it->second;
        const u64 expected =
            entry.backing < 0
                ? entry.address
                : backings.address_of(static_cast<std::size_t>(entry.backing), entry.offset);
        CHECK(translation->address.value() == expected);
        CHECK(translation->attributes.read_only == entry.read_only);
        CHECK(translation->attributes.kind == entry.kind);
        if (entry.backing >= 0)
            CHECK(translation->attributes.aperture ==
                  backings.apertures[static_cast<std::size_t>(entry.backing)]);
    }
}

template <MmuFormat F>
void run(u64 seed, long jobs)
{
    Random random(seed);
    std::vector<u64> image(vram_bytes / 8, 0xDEADBEEFDEADBEEFull);
    HostMemory memory(image);
    auto buddy = testing::BuddyFixture::make({testing::range_of(0, 16 * MiB)});
    RecordingInvalidator invalidator;
    Backings backings;
    std::vector<MappingBacking *> pointers;
    for (std::size_t b = 0; b < backing_count; ++b) {
        backings.place(b, random, false);
        backings.objects.push_back(
            std::make_unique<MappingBacking>(backings.apertures[b], backings.layouts[b]));
        pointers.push_back(backings.objects.back().get());
    }
    std::array<std::unique_ptr<Space<F>>, 2> spaces{std::make_unique<Space<F>>(),
                                                    std::make_unique<Space<F>>()};
    for (auto &space : spaces) {
        BindSpaceConfig config;
        config.space = va_range(0, u64{1} << 40);
        config.vram_end = VramAddress{vram_bytes};
        REQUIRE(
            space->space.create(memory, buddy.buddy, invalidator, space->storage.get(), config));
    }
    auto ignore = [](const MappingStep &) {};
    long refused = 0, committed = 0, cancelled = 0;

    auto commit_oldest = [&](Space<F> &space) {
        auto &queued = space.queue.front();
        auto batch = space.space.commit(std::move(*queued.job), ignore);
        REQUIRE(batch);
        REQUIRE(space.space.flush(*batch));
        for (const BindOperation &operation : queued.operations)
            REQUIRE_FALSE(apply(space.committed, operation, pointers).has_value());
        queued.job.reset();
        space.queue.pop_front();
        ++committed;
    };

    for (long step = 0; step < jobs; ++step) {
        CAPTURE(step);
        Space<F> &space = *spaces[random.below(2)];
        const unsigned action = static_cast<unsigned>(random.below(20));
        if (action == 0) {
            // A backing moves; with nothing outstanding anywhere, every space rebinds it.
            for (auto &other : spaces)
                while (!other->queue.empty()) commit_oldest(*other);
            const std::size_t b = random.below(backing_count);
            backings.place(b, random, random.below(2) == 0);
            REQUIRE(pointers[b]->relocate(backings.apertures[b], backings.layouts[b]));
            for (auto &other : spaces) {
                std::vector<BindOperation> rebinds;
                pointers[b]->visit_mappings([&](const MappingView &view) {
                    if (view.space != &other->space.records()) return;
                    BindOperation rebind;
                    rebind.kind = BindOperation::Kind::rebind;
                    rebind.range = view.range;
                    rebinds.push_back(rebind);
                });
                if (rebinds.empty()) continue;
                std::vector<TablePage> reserve(4096);
                auto job = other->space.prepare(rebinds, reserve);
                if (!job)
                    MESSAGE("rebind refused: " << std::string(error_name(job.error())) << ", "
                                               << rebinds.size() << " records");
                REQUIRE(job);
                auto batch = other->space.commit(std::move(*job), ignore);
                REQUIRE(batch);
                REQUIRE(other->space.flush(*batch));
                check_pages(*other, other->committed, backings, random);
            }
            continue;
        }
        if (action < 6 && !space.queue.empty()) {
            commit_oldest(space);
            check_pages(space, space.committed, backings, random);
            continue;
        }
        if (action == 6 && !space.queue.empty()) {
            auto &newest = space.queue.back();
            REQUIRE(space.space.cancel(std::move(*newest.job)));
            newest.job.reset();
            space.queue.pop_back();
            space.projected_model = space.committed;
            for (auto &queued : space.queue)
                for (const BindOperation &operation : queued.operations)
                    (void)apply(space.projected_model, operation, pointers);
            ++cancelled;
            continue;
        }
        if (space.queue.size() == 3) {
            commit_oldest(space);
            continue;
        }
        // A new job against the projected state.
        typename Space<F>::Queued queued;
        const std::size_t count = 1 + random.below(4);
        PageModel scratch = space.projected_model, drawing = scratch;
        for (std::size_t i = 0; i < count; ++i) {
            queued.operations.push_back(random_operation(random, drawing, pointers));
            (void)apply(drawing, queued.operations.back(), pointers);
        }
        std::optional<Error> expected;
        for (const BindOperation &operation : queued.operations)
            if (!expected) expected = static_error(operation);
        for (const BindOperation &operation : queued.operations)
            if (!expected) expected = apply(scratch, operation, pointers);
        queued.reserve.resize(8192);
        const u64 free_before = buddy.buddy.free_bytes();
        auto job = space.space.prepare(queued.operations, queued.reserve);
        REQUIRE(job.has_value() == !expected.has_value());
        if (!job) {
            CHECK(job.error() == *expected);
            CHECK(buddy.buddy.free_bytes() == free_before);
            ++refused;
            continue;
        }
        space.projected_model = scratch;
        queued.job.emplace(std::move(*job));
        space.queue.push_back(std::move(queued));
        if (step % 97 == 0) REQUIRE(space.space.check_invariants());
    }
    for (auto &space : spaces) {
        while (!space->queue.empty()) commit_oldest(*space);
        REQUIRE(space->space.check_invariants());
        check_pages(*space, space->committed, backings, random);
        REQUIRE(space->space.destroy());
    }
    CHECK(buddy.buddy.free_bytes() == 16 * MiB);
    for (MappingBacking *backing : pointers) CHECK(backing->mapping_count() == 0);
    MESSAGE("bind jobs: " << committed << " committed, " << refused << " refused, " << cancelled
                          << " cancelled");
    CHECK(committed > jobs / 4);
    CHECK(refused > 0);
}

}  // namespace

TEST_CASE_TEMPLATE("bind jobs vs a naive page model", F, MmuV2, MmuV3)
{
    for (u64 seed = 1; seed <= 2; ++seed) {
        CAPTURE(seed);
        run<F>(seed, GPUMMU_BIND_JOB_OPERATIONS);
    }
}
