// Bind jobs against a naive page model: two address spaces share three backings; random
// jobs of one to four operations (map with and without replace, some with page sizes
// that may not place, unmap, protect, make sparse, clear sparse, some bound to fail) are
// prepared up to three deep, then committed in order or the newest cancelled; backings
// move (relocate to another VRAM place or to system memory) and every space rebinds them.
// The model holds one entry per mapped 4 KiB page (which backing and offset, or which
// physical address, and the attributes) and the set of sparse pages.
//   - a job is refused exactly when the model says one of its operations is invalid in
//     the state the earlier jobs and operations leave, with that error and that
//     operation's index, and leaves no trace (later jobs see the state without it; the
//     buddy's free bytes are unchanged);
//   - after every commit, sampled pages translate to what the model says (mapped through
//     the current layout of their backing, sparse, or unmapped), both through the page
//     table and through the reference MMU walking the VRAM image; the record list equals
//     the model's mapped pages; every so often the full audit runs (tables, records,
//     every record's pages).
//   GPUMMU_BIND_JOB_OPERATIONS: jobs per format (CI: the default; the soak runs more).
#include <doctest/doctest.h>

#include <array>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/sim/reference_mmu.hpp"
#include "gpummu/vmm/bind_job.hpp"
#include "instantiation/spaces.hpp"
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
constexpr u64 sparse_bytes = 8 * MiB;  // where sparse operations mostly go
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
struct PageModel {
    std::map<u64, PageEntry> pages;  // mapped pages by VA
    std::set<u64> sparse;            // sparse pages (mapped ones keep sparse beneath)
    [[nodiscard]] bool mapped(u64 va) const { return pages.count(va) != 0; }
};

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

// Can a map with page sizes `sizes` place every page? Each 4 KiB page must lie in an
// aligned block of an allowed size that is inside the range and, physically, inside one
// run with the same alignment. `backing` < 0: one run at `address`.
bool placeable(const BindOperation &operation, const Backings &backings, int backing)
{
    if (operation.page_sizes.empty() || operation.page_sizes.contains(PageSize::size_4k()))
        return true;
    const u64 begin = operation.range.begin().value(), end = operation.range.end().value();
    auto physical = [&](u64 va) {
        const u64 at = operation.target.offset + (va - begin);
        return backing < 0 ? operation.attributes.address.value() + (va - begin)
                           : backings.address_of(static_cast<std::size_t>(backing), at);
    };
    auto same_run = [&](u64 first, u64 last) {  // VAs
        if (backing < 0) return true;
        const u64 run = 256 * KiB;
        return (operation.target.offset + (first - begin)) / run ==
               (operation.target.offset + (last - begin)) / run;
    };
    for (u64 va = begin; va < end; va += page) {
        bool covered = false;
        for (const PageSize size :
             {PageSize::size_64k(), PageSize::size_2m(), PageSize::size_512m()}) {
            if (!operation.page_sizes.contains(size)) continue;
            const u64 block = va & ~(size.bytes() - 1);
            const u64 last = block + size.bytes() - page;
            if (block >= begin && block + size.bytes() <= end && same_run(block, last) &&
                physical(block) % size.bytes() == 0)
                covered = true;
        }
        if (!covered) return false;
    }
    return true;
}

template <MmuFormat F>
struct Space {
    testing::BindStorage storage{2048, 128, 256, 4096};
    BindSpace<F, HostMemory, RecordingInvalidator> space;
    PageModel committed;
    PageModel projected_model;
    struct Queued {
        std::vector<BindOperation> operations;
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
        const bool mapped = model.mapped(va);
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
            model.pages[va] = entry;
        }
        return std::nullopt;
    }
    case BindOperation::Kind::unmap:
        if (!all) return Error::not_mapped;
        for (u64 va = begin; va < end; va += page) model.pages.erase(va);
        return std::nullopt;
    case BindOperation::Kind::make_sparse:
    case BindOperation::Kind::clear_sparse:
        if (any) return Error::already_mapped;
        for (u64 va = begin; va < end; va += page) {
            if (operation.kind == BindOperation::Kind::make_sparse)
                model.sparse.insert(va);
            else
                model.sparse.erase(va);
        }
        return std::nullopt;
    case BindOperation::Kind::protect:
        if (!all) return Error::not_mapped;
        for (u64 va = begin; va < end; va += page) {
            PageEntry &entry = model.pages[va];
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

// A map allowing only pages of 2 MiB and more: each such page stands in one directory
// entry, which records one thing for its pages to return to when unmapped; a block whose
// pages are partly sparse cannot take it (misaligned). If a sparse operation queued ahead
// (an outstanding job, or earlier in the job) touches such a block, prepare refuses with
// in_use.
std::optional<Error> large_page_error(const BindOperation &operation, const PageModel &model,
                                      const std::vector<const BindOperation *> &ahead)
{
    const PageSizeSet sizes = operation.page_sizes;
    if (operation.kind != BindOperation::Kind::map || sizes.empty() ||
        sizes.contains(PageSize::size_4k()) || sizes.contains(PageSize::size_64k()))
        return std::nullopt;
    const u64 begin = operation.range.begin().value(), end = operation.range.end().value();
    const u64 block_bytes = PageSize::size_2m().bytes();  // the only size drawn
    for (u64 block = begin; block < end; block += block_bytes) {
        for (const BindOperation *other : ahead)
            if ((other->kind == BindOperation::Kind::make_sparse ||
                 other->kind == BindOperation::Kind::clear_sparse) &&
                other->range.begin().value() < block + block_bytes &&
                block < other->range.end().value())
                return Error::in_use;
        const bool first_sparse = model.sparse.count(block) != 0;
        for (u64 va = block; va < block + block_bytes; va += page)
            if ((model.sparse.count(va) != 0) != first_sparse) return Error::misaligned;
    }
    return std::nullopt;
}

// Errors an operation has whatever the state: the backing's bounds, page sizes that
// cannot place the map.
std::optional<Error> static_error(const BindOperation &operation, const Backings &backings,
                                  const std::vector<MappingBacking *> &pointers)
{
    if (operation.kind != BindOperation::Kind::map) return std::nullopt;
    if (operation.target.backing != nullptr &&
        operation.target.offset + operation.range.size() > backing_bytes)
        return Error::out_of_range;
    int backing = -1;
    for (std::size_t b = 0; b < pointers.size(); ++b)
        if (pointers[b] == operation.target.backing) backing = static_cast<int>(b);
    if (!placeable(operation, backings, backing)) return Error::misaligned;
    return std::nullopt;
}

BindOperation random_operation(Random &random, const PageModel &model,
                               const std::vector<MappingBacking *> &backings)
{
    BindOperation operation;
    u64 size = (1 + random.below(random.below(4) == 0 ? 128 : 16)) * page;
    u64 begin;
    if (!model.pages.empty() && random.below(3) != 0) {
        auto it = model.pages.begin();
        std::advance(it, static_cast<long>(random.below(model.pages.size())));
        begin = it->first;
    } else {
        begin = window + random.below(window_bytes / page) * page;
    }
    size = std::min(size, window + window_bytes - begin);
    const unsigned choice = static_cast<unsigned>(random.below(12));
    // Mostly valid operations (one in eight is left as drawn, often invalid): unmap and
    // protect stop at the first unmapped page, a map without replace and the sparse
    // operations before the first mapped one.
    const bool shape = random.below(8) != 0;
    if (shape && choice >= 5) {
        // Unmap and protect from the first mapped page on, sparse operations from the
        // first unmapped one.
        const bool want_mapped = choice < 10;
        while (begin + page < window + window_bytes && model.mapped(begin) != want_mapped)
            begin += page;
        size = std::min(size, window + window_bytes - begin);
    }
    if (choice >= 10 && begin >= window + sparse_bytes && random.below(4) != 0) {
        // Mostly in the window's first 8 MiB: the last 2 MiB blocks stay free of sparse
        // pages, where maps of 2 MiB pages only can place.
        begin = window + random.below(sparse_bytes / page) * page;
    }
    if (choice >= 10) size = std::min(size, window + window_bytes - begin);
    if (shape) {
        const bool want_mapped = choice >= 5 && choice < 10;
        u64 length = 0;
        while (length < size && model.mapped(begin + length) == want_mapped) length += page;
        if (length != 0) size = length;
    }
    operation.range = va_range(begin, size);
    if (choice < 5) {
        operation.kind = BindOperation::Kind::map;
        operation.replace = random.below(2) == 0 || (shape && model.mapped(begin));
        if (random.below(8) == 0) {
            // Page sizes without 4 KiB: placing may be impossible (misaligned).
            const unsigned sizes = static_cast<unsigned>(random.below(3));
            operation.page_sizes = sizes == 0 ? PageSizeSet{PageSize::size_64k()}
                                   : sizes == 1
                                       ? PageSizeSet{PageSize::size_2m()}
                                       : PageSizeSet{PageSize::size_64k(), PageSize::size_2m()};
            if (random.below(2) == 0) {  // 64 KiB-aligned VA and size: often placeable
                const u64 aligned = operation.range.begin().value() & ~(64 * KiB - 1);
                const u64 length = (operation.range.size() + 64 * KiB - 1) & ~(64 * KiB - 1);
                if (aligned >= window && aligned + length <= window + window_bytes)
                    operation.range = va_range(aligned, length);
            }
        }
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
        if (auto it = model.pages.find(begin);
            it != model.pages.end() && operation.page_sizes.empty() &&
            it->second.offset < backing_bytes && random.below(6) == 0) {
            // (The drawing model may hold pages of operations that will fail: offsets past
            // the backing.)
            // A remap of what is there (the same bytes and attributes from `begin` on):
            // the pages that do not change keep their PTEs (keep hints).
            const PageEntry &entry = it->second;
            operation.replace = true;
            operation.attributes.read_only = entry.read_only;
            operation.attributes.kind = entry.kind;
            if (entry.backing < 0) {
                operation.target = {};
                operation.attributes.address = PhysicalAddress{entry.address};
            } else {
                operation.target = {backings[static_cast<std::size_t>(entry.backing)],
                                    entry.offset};
                if (entry.offset + operation.range.size() > backing_bytes)
                    operation.range = va_range(begin, backing_bytes - entry.offset);
            }
        }
        if (operation.page_sizes == PageSizeSet{PageSize::size_2m()} && random.below(2) == 0) {
            // One whole 2 MiB page of raw memory: placed unless the block is partly sparse.
            u64 block = operation.range.begin().value() & ~(2 * MiB - 1);
            std::vector<u64> uniform;  // blocks whose pages are all sparse or none is
            for (u64 candidate = window; candidate < window + window_bytes; candidate += 2 * MiB) {
                u64 sparse = 0;
                for (u64 va = candidate; va < candidate + 2 * MiB; va += page)
                    sparse += model.sparse.count(va);
                if (sparse == 0 || sparse == 2 * MiB / page) uniform.push_back(candidate);
            }
            if (!uniform.empty() && random.coin()) block = uniform[random.below(uniform.size())];
            if (block >= window && block + 2 * MiB <= window + window_bytes) {
                operation.range = va_range(block, 2 * MiB);
                operation.replace = true;
                operation.target = {};
                operation.attributes.address = PhysicalAddress{random.below(8) * 2 * MiB};
            }
        }
    } else if (choice < 8) {
        operation.kind = BindOperation::Kind::unmap;
    } else if (choice >= 10) {
        operation.kind =
            choice == 10 ? BindOperation::Kind::make_sparse : BindOperation::Kind::clear_sparse;
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

template <MmuFormat F>
sim::MmuGeneration generation_of()
{
    return F::version == MmuVersion::v2 ? sim::MmuGeneration::ver2 : sim::MmuGeneration::ver3;
}

template <MmuFormat F, class S>
void check_pages(S &space, const PageModel &model, const Backings &backings, Random &random,
                 std::span<const u64> image)
{
    const sim::ReferenceMmu walker(generation_of<F>(), image);
    for (int sample = 0; sample < 24; ++sample) {
        const u64 va = window + random.below(window_bytes / page) * page;
        auto translation = space.space.translate(VirtualAddress{va});
        REQUIRE(translation);
        const sim::ReferenceTranslation walked =
            walker.walk(space.space.root().address.value(), va);
        auto it = model.pages.find(va);
        CAPTURE(va);
        if (it == model.pages.end()) {
            const bool sparse = model.sparse.count(va) != 0;
            CHECK(translation->state ==
                  (sparse ? TranslationState::sparse : TranslationState::unmapped));
            CHECK(walked.kind == (sparse ? sim::ReferenceTranslation::Kind::sparse
                                         : sim::ReferenceTranslation::Kind::unmapped));
            continue;
        }
        REQUIRE(translation->state == TranslationState::mapped);
        REQUIRE(walked.kind == sim::ReferenceTranslation::Kind::mapped);
        CHECK(walked.pa == translation->address.value());
        CHECK(walked.read_only == translation->attributes.read_only);
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

// The committed records, expanded to pages, are the model's mapped pages.
template <class S>
void check_records(S &space, const PageModel &model, const std::vector<MappingBacking *> &pointers)
{
    std::map<u64, PageEntry> pages;
    space.space.records().visit(VirtualAddress{0}, [&](const MappingView &view) {
        int backing = -1;
        for (std::size_t b = 0; b < pointers.size(); ++b)
            if (pointers[b] == view.backing) backing = static_cast<int>(b);
        for (u64 at = 0; at < view.range.size(); at += page) {
            PageEntry entry;
            entry.backing = backing;
            entry.offset = view.offset + at;
            entry.address = backing < 0 ? view.attributes.address.value() + at : 0;
            entry.read_only = view.attributes.read_only;
            entry.kind = view.attributes.kind;
            pages[view.range.begin().value() + at] = entry;
        }
        return true;
    });
    REQUIRE(pages.size() == model.pages.size());
    for (const auto &item : model.pages) {
        const u64 va = item.first;  // no structured binding: CAPTURE's lambda (clang 14)
        const PageEntry &entry = item.second;
        CAPTURE(va);
        auto it = pages.find(va);
        REQUIRE(it != pages.end());
        CHECK(it->second.backing == entry.backing);
        if (entry.backing >= 0) CHECK(it->second.offset == entry.offset);
        if (entry.backing < 0) CHECK(it->second.address == entry.address);
        CHECK(it->second.read_only == entry.read_only);
        CHECK(it->second.kind == entry.kind);
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
        // The second space keeps emptied table pages for later jobs.
        config.spare_table_pages = space == spaces[1] ? 6 : 0;
        REQUIRE(
            space->space.create(memory, buddy.buddy, invalidator, space->storage.get(), config));
    }
    auto ignore = [](const MappingStep &) {};
    long refused = 0, committed = 0, cancelled = 0;
    std::array<long, error_count> refusals{};
    long large_only_maps = 0;  // prepared maps allowing 2 MiB pages only

    auto commit_oldest = [&](Space<F> &space) {
        auto &queued = space.queue.front();
        auto batch = space.space.commit(std::move(*queued.job), ignore);
        if (!batch) {
            for (const BindOperation &operation : queued.operations)
                MESSAGE("operation "
                        << static_cast<int>(operation.kind) << " at 0x" << std::hex
                        << operation.range.begin().value() << " size 0x" << operation.range.size()
                        << " sizes 0x" << operation.page_sizes.bits() << " pa 0x"
                        << operation.attributes.address.value() << " backing "
                        << operation.target.backing << " offset 0x" << operation.target.offset
                        << " replace " << operation.replace << std::dec);
            FAIL("commit: " << std::string(error_name(batch.error())));
        }
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
                // One rebind per record of the backing in this space; a first call with
                // too little room says how many.
                std::vector<BindOperation> rebinds(1);
                rebinds.resize(other->space.rebind_operations(*pointers[b], rebinds));
                const std::size_t records = other->space.rebind_operations(*pointers[b], rebinds);
                REQUIRE(records == rebinds.size());
                if (rebinds.empty()) continue;
                for (const BindOperation &rebind : rebinds) {
                    auto view = other->space.records().find(rebind.range.begin());
                    REQUIRE(view);
                    CHECK(view->backing == pointers[b]);
                    CHECK(view->range == rebind.range);
                }
                auto job = other->space.prepare(rebinds);
                if (!job)
                    MESSAGE("rebind refused: " << std::string(error_name(job.error())) << ", "
                                               << rebinds.size() << " records");
                REQUIRE(job);
                auto batch = other->space.commit(std::move(*job), ignore);
                REQUIRE(batch);
                REQUIRE(other->space.flush(*batch));
                check_pages<F>(*other, other->committed, backings, random, image);
            }
            continue;
        }
        if (action < 6 && !space.queue.empty()) {
            commit_oldest(space);
            check_pages<F>(space, space.committed, backings, random, image);
            if (step % 13 == 0) check_records(space, space.committed, pointers);
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
        // Mostly short jobs; one in 16 long, so that later operations of a job often reach
        // its earlier maps (checked directly, or through the overlay).
        const std::size_t count =
            random.below(16) == 0 ? 1 + random.below(48) : 1 + random.below(4);
        PageModel scratch = space.projected_model, drawing = scratch;
        for (std::size_t i = 0; i < count; ++i) {
            queued.operations.push_back(random_operation(random, drawing, pointers));
            (void)apply(drawing, queued.operations.back(), pointers);
        }
        std::optional<Error> expected;
        std::size_t expected_index = queued.operations.size();
        std::vector<const BindOperation *> ahead;
        for (auto &earlier : space.queue)
            for (const BindOperation &operation : earlier.operations) ahead.push_back(&operation);
        for (std::size_t i = 0; i < queued.operations.size() && !expected; ++i) {
            expected = static_error(queued.operations[i], backings, pointers);
            if (!expected) expected = apply(scratch, queued.operations[i], pointers);
            if (!expected) expected = large_page_error(queued.operations[i], scratch, ahead);
            if (expected) expected_index = i;
            ahead.push_back(&queued.operations[i]);
        }
        const u64 free_before = buddy.buddy.free_bytes();
        const u64 available_before = buddy.buddy.available_bytes();
        std::size_t failed_index = 0;
        auto job = space.space.prepare(queued.operations, &failed_index);
        REQUIRE(job.has_value() == !expected.has_value());
        if (!job) {
            CHECK(job.error() == *expected);
            CHECK(failed_index == expected_index);
            ++refusals[static_cast<std::size_t>(job.error())];
            CHECK(buddy.buddy.free_bytes() == free_before);
            CHECK(buddy.buddy.available_bytes() == available_before);  // nothing set aside
            ++refused;
            continue;
        }
        space.projected_model = scratch;
        for (const BindOperation &operation : queued.operations)
            if (operation.kind == BindOperation::Kind::map &&
                operation.page_sizes == PageSizeSet{PageSize::size_2m()})
                ++large_only_maps;
        queued.job.emplace(std::move(*job));
        space.queue.push_back(std::move(queued));
        if (step % 97 == 0) REQUIRE(space.space.check_invariants());
    }
    for (auto &space : spaces) {
        while (!space->queue.empty()) commit_oldest(*space);
        REQUIRE(space->space.check_invariants());
        check_pages<F>(*space, space->committed, backings, random, image);
        check_records(*space, space->committed, pointers);
        REQUIRE(space->space.destroy());
    }
    CHECK(buddy.buddy.free_bytes() == 16 * MiB);
    CHECK(buddy.buddy.set_aside_bytes() == 0);  // every reserve released
    for (MappingBacking *backing : pointers) CHECK(backing->mapping_count() == 0);
    MESSAGE("bind jobs: " << committed << " committed, " << refused << " refused, " << cancelled
                          << " cancelled");
    for (std::size_t e = 0; e < error_count; ++e)
        if (refusals[e] != 0)
            MESSAGE("  refused " << refusals[e] << ": "
                                 << std::string(error_name(static_cast<Error>(e))));
    MESSAGE("  maps of 2 MiB pages only, prepared: " << large_only_maps);
    CHECK(large_only_maps > 0);
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
