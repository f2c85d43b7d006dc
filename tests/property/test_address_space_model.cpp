// Several address spaces sharing one buddy and one VRAM image, against a model of handles:
// random create / map / map_fixed (inside reservations, with and without replace) /
// reserve_sparse / release (own, stale and foreign handles) / destroy. After every step the
// handle bookkeeping (visit_mappings, stats) must equal the model's records, every mapped
// page must translate to its record's physical address, reservation pages no mapping covers
// must read sparse, and the audit must pass. When every space is destroyed, the buddy holds
// exactly what it held at the start (free bytes, and after reset_clear the fingerprint).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "gpummu/format/mmu_version.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/vmm/address_space.hpp"
#include "instantiation/spaces.hpp"
#include "support/buddy_fixture.hpp"
#include "support/page_table_fixture.hpp"
#include "support/random.hpp"
#include "support/space_storage.hpp"

using namespace gpummu;

namespace {

constexpr u64 kib = 1024, mib = 1024 * kib, gib = 1024 * mib;
constexpr std::size_t space_count = 3;

struct Record {
    MappingHandle handle;
    VirtualRange range;
    u64 pa = 0;                // mappings: physical address of range.begin()
    bool reservation = false;  // a sparse reservation
    MappingHandle parent{};    // a mapping inside a reservation
    bool in_reservation = false;
};

template <MmuFormat F>
struct Space {
    testing::SpaceStorage storage_vectors{64, 2048, 64};
    std::vector<MappingRecord> &records = storage_vectors.records;
    AddressSpace<F, HostMemory, testing::RecordingInvalidator> space;
    bool live = false;
    std::vector<Record> model;
    AddressSpaceStorage storage() { return storage_vectors.get(); }
};

VirtualRange range_at(u64 begin, u64 size)
{
    return VirtualRange::from_size(VirtualAddress{begin}, size).value();
}

template <MmuFormat F>
void check_space(Space<F> &space, testing::Random &random)
{
    REQUIRE(space.space.check_invariants());
    // Bookkeeping: the same handles and ranges, in any order.
    std::vector<MappingInfo> seen;
    space.space.visit_mappings([&](const MappingInfo &info) { seen.push_back(info); });
    REQUIRE(seen.size() == space.model.size());
    u64 mapped_bytes = 0, mappings = 0;
    for (const Record &record : space.model) {
        auto found = std::find_if(seen.begin(), seen.end(), [&](const MappingInfo &info) {
            return info.handle == record.handle;
        });
        REQUIRE(found != seen.end());
        CHECK(found->range == record.range);
        CHECK(found->sparse_reservation == record.reservation);
        if (record.in_reservation) CHECK(found->reservation == record.parent);
        if (!record.reservation) {
            mapped_bytes += record.range.size();
            ++mappings;
            // First, last and one random page translate to the record's physical pages.
            for (u64 offset : {u64{0}, record.range.size() - 4 * kib,
                               random.below(record.range.size() / (4 * kib)) * 4 * kib}) {
                auto translation = space.space.translate(record.range.begin() + offset);
                REQUIRE(translation);
                REQUIRE(translation->state == TranslationState::mapped);
                CHECK(translation->address == PhysicalAddress{record.pa + offset});
            }
        } else {
            // A page no mapping covers reads sparse.
            u64 offset = random.below(record.range.size() / (4 * kib)) * 4 * kib;
            const VirtualAddress va = record.range.begin() + offset;
            bool covered = false;
            for (const Record &other : space.model)
                covered = covered || (!other.reservation && other.range.contains(va));
            if (!covered) CHECK(space.space.translate(va)->state == TranslationState::sparse);
        }
    }
    CHECK(space.space.stats().mapped_bytes == mapped_bytes);
    CHECK(space.space.stats().mappings == mappings);
}

template <MmuFormat F>
void run(u64 seed, long steps)
{
    testing::Random random(seed);
    std::vector<u64> image(64 * mib / 8, 0);
    HostMemory memory(image);
    auto buddy = testing::BuddyFixture::make({testing::range_of(0, 64 * mib)});
    const u64 start_free = buddy.buddy.free_bytes();
    const u64 start_fingerprint = buddy.buddy.fingerprint();
    testing::RecordingInvalidator invalidator;
    std::array<std::unique_ptr<Space<F>>, space_count> spaces;
    for (auto &space : spaces) space = std::make_unique<Space<F>>();
    AddressSpaceConfig config{range_at(1 * gib, 64 * gib),
                              {architecture_record(Architecture::ampere).page_sizes}};
    // Odd seeds keep emptied table pages for reuse: destroy must still give every byte back.
    config.spare_table_pages = seed % 2 == 1 ? 4 : 0;
    long replaced = 0, foreign = 0, destroyed = 0, cut_refused = 0;

    for (long step = 0; step < steps; ++step) {
        CAPTURE(step);
        Space<F> &space = *spaces[random.below(space_count)];
        if (!space.live) {
            REQUIRE(space.space.create(memory, buddy.buddy, invalidator, space.storage(), config));
            space.live = true;
            continue;
        }
        const u64 op = random.below(100);
        if (op < 25) {  // map anywhere
            const u64 size = (1 + random.below(64)) * (random.coin() ? 4 * kib : 64 * kib);
            const u64 pa = (1 + random.below(1024)) * 2 * mib;
            const PhysicalSegment segment{PhysicalAddress{pa}, size};
            PageAttributes attributes;
            attributes.address = PhysicalAddress{pa};
            const bool full = space.model.size() >= space.records.size();
            auto mapping = space.space.map({&segment, 1}, attributes);
            if (mapping)
                space.model.push_back({mapping->handle, mapping->range, pa});
            else  // handle slots, else VRAM for tables ran out
                CHECK(mapping.error() == (full ? Error::out_of_storage : Error::out_of_memory));
        } else if (op < 35) {  // a reservation
            const bool full = space.model.size() >= space.records.size();
            auto reservation = space.space.reserve_sparse((1 + random.below(16)) * 2 * mib);
            if (reservation)
                space.model.push_back({reservation->handle, reservation->range, 0, true});
            else
                CHECK(reservation.error() == (full ? Error::out_of_storage : Error::out_of_memory));
        } else if (op < 60) {  // map_fixed inside a reservation, sometimes replacing
            std::vector<std::size_t> reservations;
            for (std::size_t i = 0; i < space.model.size(); ++i)
                if (space.model[i].reservation) reservations.push_back(i);
            if (reservations.empty()) continue;
            const Record holder = space.model[reservations[random.below(reservations.size())]];
            const u64 pages = holder.range.size() / (4 * kib);
            u64 first = random.below(pages);
            u64 count = 1 + random.below(std::min<u64>(pages - first, 32));
            // Half the time aim at a mapping already in the reservation: cover it whole,
            // with a margin, or cut it.
            std::vector<const Record *> children;
            for (const Record &record : space.model)
                if (record.in_reservation && record.parent == holder.handle)
                    children.push_back(&record);
            if (!children.empty() && random.coin()) {
                const Record &child = *children[random.below(children.size())];
                const u64 child_first =
                    (child.range.begin().value() - holder.range.begin().value()) / (4 * kib);
                const u64 child_pages = child.range.size() / (4 * kib);
                const u64 before = random.below(std::min<u64>(child_first, 4) + 1);
                const u64 after =
                    random.below(std::min<u64>(pages - child_first - child_pages, 4) + 1);
                first = child_first - before;
                count = before + child_pages + after;
                if (random.coin() && child_pages > 1) {  // cut: end inside the child
                    count = before + 1 + random.below(child_pages - 1);
                }
            }
            const VirtualRange range =
                range_at(holder.range.begin().value() + first * 4 * kib, count * 4 * kib);
            const u64 pa = (1 + random.below(1024)) * 2 * mib + random.below(16) * 4 * kib;
            const PhysicalSegment segment{PhysicalAddress{pa}, range.size()};
            PageAttributes attributes;
            attributes.address = PhysicalAddress{pa};
            const bool replace = random.coin();
            // What the user may expect: mapped pages need replace; with replace, mappings
            // the range covers whole are replaced and one it would cut is refused.
            bool any_mapped = false, any_cut = false;
            for (const Record &record : space.model) {
                if (record.reservation || !record.range.overlaps(range)) continue;
                any_mapped = true;
                any_cut = any_cut || !range.contains(record.range);
            }
            const u64 invalidations = invalidator.seen.size();
            // Every handle slot taken: out_of_storage is a valid answer too.
            const bool full = space.model.size() >= space.records.size();
            auto mapping = space.space.map_fixed(range, {&segment, 1}, attributes,
                                                 MapOptions{.replace = replace});
            auto refused_with = [&](Error expected) {
                return !mapping && (mapping.error() == expected ||
                                    (full && mapping.error() == Error::out_of_storage));
            };
            if (any_mapped && !replace) {
                CHECK(refused_with(Error::already_mapped));
                CHECK(invalidator.seen.size() == invalidations);
            } else if (any_cut) {
                CHECK(refused_with(Error::overlap));
                CHECK(invalidator.seen.size() == invalidations);
                ++cut_refused;
            } else if (!mapping) {
                CHECK(mapping.error() == (full ? Error::out_of_storage : Error::out_of_memory));
            } else {
                auto covered = [&](const Record &record) {
                    return !record.reservation && range.contains(record.range);
                };
                replaced += std::count_if(space.model.begin(), space.model.end(), covered);
                space.model.erase(std::remove_if(space.model.begin(), space.model.end(), covered),
                                  space.model.end());
                space.model.push_back({mapping->handle, range, pa, false, holder.handle, true});
            }
        } else if (op < 85) {  // release own, a stale or a foreign handle
            if (space.model.empty()) continue;
            const std::size_t pick = random.below(space.model.size());
            Space<F> &other = *spaces[random.below(space_count)];
            if (&other != &space && other.live && !other.model.empty() && random.below(4) == 0) {
                const u64 free_before = buddy.buddy.free_bytes();
                CHECK(space.space.release(other.model[random.below(other.model.size())].handle)
                          .error() == Error::foreign_handle);
                CHECK(buddy.buddy.free_bytes() == free_before);
                ++foreign;
            } else {
                const Record record = space.model[pick];
                bool holds = false;
                for (const Record &child : space.model)
                    holds = holds || (child.in_reservation && child.parent == record.handle);
                auto released = space.space.release(record.handle);
                if (holds) {
                    CHECK(released.error() == Error::in_use);
                } else {
                    REQUIRE(released);
                    space.model.erase(space.model.begin() + static_cast<long>(pick));
                    CHECK(space.space.release(record.handle).error() == Error::stale_handle);
                }
            }
        } else if (op < 88) {  // destroy
            REQUIRE(space.space.destroy());
            space.live = false;
            space.model.clear();
            ++destroyed;
            continue;
        }
        check_space(space, random);
    }
    for (auto &space : spaces)
        if (space->live) REQUIRE(space->space.destroy());
    CHECK(buddy.buddy.free_bytes() == start_free);
    buddy.buddy.reset_clear(false);  // table pages come back known zero
    CHECK(buddy.buddy.fingerprint() == start_fingerprint);
    CHECK(replaced > 0);
    CHECK(foreign > 0);
    CHECK(destroyed > 0);
    CHECK(cut_refused > 0);
}

}  // namespace

#ifndef GPUMMU_ADDRESS_SPACE_OPERATIONS
#define GPUMMU_ADDRESS_SPACE_OPERATIONS 4000
#endif

TEST_CASE_TEMPLATE("address spaces sharing one buddy vs a handle model", F, MmuV2, MmuV3)
{
    for (u64 seed = 1; seed <= 6; ++seed) {
        CAPTURE(seed);
        run<F>(seed, GPUMMU_ADDRESS_SPACE_OPERATIONS);  // steps per seed
    }
}
