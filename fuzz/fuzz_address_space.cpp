// libFuzzer target: three address spaces (one format per input) sharing one buddy, driven
// by a byte stream: create, map anywhere, map_fixed (with replace, inside and outside sparse
// reservations), reserve_sparse, release of own, released (stale) and other spaces' (foreign)
// handles, translate, destroy. After every step: each live space's audit; a released handle
// is refused as stale, another space's as foreign, both without change; a translation of a
// live mapping's first page gives its physical address; once every space is destroyed the
// buddy is exactly as it started (every table page came back).
#include <array>
#include <memory>
#include <vector>

#include "fuzz_stream.hpp"
#include "gpummu/alloc/buddy.hpp"
#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/format/mmu_version.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/vmm/address_space.hpp"

using namespace gpummu;

namespace {

struct NoInvalidate {
    Result<void> invalidate(const TlbInvalidation &) { return success(); }
};

struct Live {
    MappingHandle handle;
    VirtualRange range;
    u64 pa;
    bool reservation;
};

template <MmuFormat F>
struct Space {
    std::vector<RangeNode> range_nodes = std::vector<RangeNode>(RangeAllocator::nodes_for(64));
    std::vector<PageTableNode> nodes = std::vector<PageTableNode>(512);
    std::vector<PageTableChildren> children = std::vector<PageTableChildren>(16);
    std::vector<BigTableSlot> slots = std::vector<BigTableSlot>(16);
    std::vector<MappingRecord> records = std::vector<MappingRecord>(32);
    AddressSpace<F, HostMemory, NoInvalidate> space;
    bool created = false;
    std::vector<Live> live;
    std::vector<MappingHandle> released;
};

template <MmuFormat F>
void run(fuzz::Stream &in)
{
    constexpr u64 vram = 8u << 20;
    std::vector<u64> image(vram / 8);
    HostMemory memory(image);
    const std::array<VramRange, 1> regions{VramRange::from_size(VramAddress{0}, vram).value()};
    std::vector<u64> metadata(BuddyAllocator::metadata_words(regions).value());
    BuddyAllocator buddy = BuddyAllocator::create(regions, metadata).value();
    const u64 fingerprint = buddy.fingerprint();
    NoInvalidate invalidator;
    std::array<std::unique_ptr<Space<F>>, 3> spaces;
    for (auto &space : spaces) space = std::make_unique<Space<F>>();
    const u64 base = u64{1} << 32;
    const AddressSpaceConfig config{
        VirtualRange::from_size(VirtualAddress{base}, u64{1} << 34).value(),
        {architecture_record(Architecture::ampere).page_sizes}};

    for (int step = 0; step < 200 && !in.empty(); ++step) {
        const std::size_t which = in.below(3);
        Space<F> &s = *spaces[which];
        if (!s.created) {
            FUZZ_CHECK(s.space
                           .create(memory, buddy, invalidator,
                                   {s.range_nodes, {s.nodes, s.children}, s.slots, s.records},
                                   config)
                           .has_value());
            s.created = true;
            continue;
        }
        const u64 unit = in.coin() ? 4096 : (in.coin() ? 65536 : 2u << 20);
        const u64 bytes = unit * (1 + in.below(8));
        const u64 pa = in.below(1u << 12) * unit;
        const PhysicalSegment segment{PhysicalAddress{pa}, bytes};
        PageAttributes attributes;
        attributes.address = PhysicalAddress{pa};
        attributes.aperture = Aperture::system_coherent;
        switch (in.byte() % 9) {
        case 0:
        case 1: {
            auto made = s.space.map({&segment, 1}, attributes);
            if (made) s.live.push_back({made->handle, made->range, pa, false});
            break;
        }
        case 2: {
            const u64 va = base + in.below((u64{1} << 34) / unit - 8) * unit;
            auto range = VirtualRange::from_size(VirtualAddress{va}, bytes).value();
            auto made = s.space.map_fixed(range, {&segment, 1}, attributes, {.replace = in.coin()});
            if (made) {
                // A replace may have cut or removed other mappings: re-read the bookkeeping.
                s.live.clear();
                s.space.visit_mappings([&](const MappingInfo &info) {
                    s.live.push_back({info.handle, info.range, ~u64{0}, info.sparse_reservation});
                });
            }
            break;
        }
        case 3: {
            auto made = s.space.reserve_sparse(bytes * (1 + in.below(4)));
            if (made) s.live.push_back({made->handle, made->range, 0, true});
            break;
        }
        case 4:
        case 5: {
            if (s.live.empty()) break;
            const std::size_t index = in.below(s.live.size());
            auto released = s.space.release(s.live[index].handle);
            if (released) {
                s.released.push_back(s.live[index].handle);
                s.live.clear();
                s.space.visit_mappings([&](const MappingInfo &info) {
                    s.live.push_back({info.handle, info.range, ~u64{0}, info.sparse_reservation});
                });
            }
            break;
        }
        case 6: {  // stale and foreign handles are refused, changing nothing
            const u64 before = buddy.fingerprint();
            if (!s.released.empty()) {
                bool still_live = false;
                const MappingHandle old = s.released[in.below(s.released.size())];
                for (const Live &l : s.live) still_live |= l.handle == old;
                if (!still_live) FUZZ_CHECK(!s.space.release(old).has_value());
            }
            Space<F> &other = *spaces[(which + 1) % 3];
            if (other.created && !other.live.empty())
                FUZZ_CHECK(
                    s.space.release(other.live[in.below(other.live.size())].handle).error() ==
                    Error::foreign_handle);
            FUZZ_CHECK(buddy.fingerprint() == before);
            break;
        }
        case 7: {  // a mapping's first page translates to its physical address
            for (const Live &l : s.live) {
                if (l.reservation || l.pa == ~u64{0}) continue;
                auto seen = s.space.translate(l.range.begin());
                FUZZ_CHECK(seen.has_value() && seen->state == TranslationState::mapped &&
                           seen->address.value() == l.pa);
            }
            break;
        }
        default:
            FUZZ_CHECK(s.space.destroy().has_value());
            s.created = false;
            s.live.clear();
            s.released.clear();
        }
        for (auto &each : spaces)
            if (each->created) FUZZ_CHECK(each->space.check_invariants().has_value());
    }
    for (auto &each : spaces)
        if (each->created) FUZZ_CHECK(each->space.destroy().has_value());
    FUZZ_CHECK(buddy.free_bytes() == vram);
    buddy.reset_clear(false);  // table pages come back known zero; the start knew nothing
    FUZZ_CHECK(buddy.fingerprint() == fingerprint);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    fuzz::Stream in(data, size);
    if (in.coin())
        run<MmuV2>(in);
    else
        run<MmuV3>(in);
    return 0;
}
