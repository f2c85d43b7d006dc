// sim/reference_mmu.hpp: the simulator's MMU, written from the manual, decodes what gpummu's
// page tables write (a differential test of the encoders against an independent decoder),
// and its TLB keeps stale translations until invalidated.
#include <doctest/doctest.h>

#include <vector>

#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/sim/reference_mmu.hpp"
#include "instantiation/spaces.hpp"
#include "support/page_table_fixture.hpp"
#include "support/random.hpp"

using namespace gpummu;
using testing::PageTableFixture;
using testing::va_range;

namespace {

constexpr u64 kib = 1024, mib = 1024 * kib, gib = 1024 * mib;

template <class F>
sim::MmuGeneration generation_of()
{
    return F::version == MmuVersion::v2 ? sim::MmuGeneration::ver2 : sim::MmuGeneration::ver3;
}

template <class Fixture>
void compare(Fixture &fixture, sim::ReferenceMmu &mmu, u64 va)
{
    auto ours = fixture.table->translate(VirtualAddress{va});
    REQUIRE(ours.has_value());
    const sim::ReferenceTranslation theirs = mmu.walk(fixture.table->root().address.value(), va);
    INFO("va " << va);
    switch (ours->state) {
    case TranslationState::mapped:
        REQUIRE(theirs.kind == sim::ReferenceTranslation::Kind::mapped);
        CHECK(theirs.pa == ours->address.value());
        CHECK(theirs.page_bytes == ours->page_size.bytes());
        CHECK(theirs.read_only == ours->attributes.read_only);
        CHECK(theirs.aperture == (ours->attributes.aperture == Aperture::video ? 0u : 2u));
        break;
    case TranslationState::sparse:
        CHECK(theirs.kind == sim::ReferenceTranslation::Kind::sparse);
        break;
    case TranslationState::unmapped:
        CHECK(theirs.kind == sim::ReferenceTranslation::Kind::unmapped);
        break;
    }
}

}  // namespace

TEST_CASE_TEMPLATE("the reference MMU agrees with every page table gpummu writes", F, MmuV2, MmuV3)
{
    const PageTableConfig config{
        {PageSize::size_4k(), PageSize::size_64k(), PageSize::size_2m(), PageSize::size_512m()}};
    PageTableFixture<F> fixture(config, 32 * mib);
    sim::ReferenceMmu mmu(generation_of<F>(), fixture.image);
    testing::Random random(77);
    const u64 base = 4 * gib;
    unsigned applied = 0;
    for (int step = 0; step < 600; ++step) {
        static constexpr u64 granules[] = {4 * kib, 64 * kib, 2 * mib};
        const u64 granule = granules[random.below(3)];
        const u64 va = base + random.below((gib) / granule) * granule;
        const u64 size = granule * (1 + random.below(8));
        const VirtualRange range = va_range(va, size);
        Result<TlbBatch> batch = failure(Error::invalid_argument);
        switch (random.below(4)) {
        case 0:
        case 1: {
            PageAttributes attributes;
            attributes.read_only = random.coin();
            attributes.aperture = random.coin() ? Aperture::video : Aperture::system_coherent;
            attributes.address = PhysicalAddress{random.below(1024) * 2 * mib};
            batch = fixture.table->map(range, attributes);
            break;
        }
        case 2: batch = fixture.table->unmap(range); break;
        case 3: batch = fixture.table->make_sparse(range); break;
        }
        if (batch) {
            ++applied;
            fixture.flush(*batch);
        }
        for (int k = 0; k < 16; ++k) compare(fixture, mmu, va + random.below(size + 4 * mib));
        compare(fixture, mmu, base + random.below(gib));
    }
    CHECK(applied > 100);
    // A 512 MiB page too.
    auto huge = fixture.table->map(va_range(16 * gib, 512 * mib), [] {
        PageAttributes a;
        a.address = PhysicalAddress{gib};
        return a;
    }());
    REQUIRE(huge.has_value());
    fixture.flush(*huge);
    compare(fixture, mmu, 16 * gib + 300 * mib + 0x123);
    CHECK(mmu.walk(fixture.table->root().address.value(), 16 * gib).page_bytes == 512 * mib);
}

TEST_CASE_TEMPLATE("the TLB keeps stale translations until invalidated", F, MmuV2, MmuV3)
{
    PageTableFixture<F> fixture;
    sim::ReferenceMmu mmu(generation_of<F>(), fixture.image);
    const u64 pdb = fixture.table->root().address.value();
    PageAttributes first;
    first.address = PhysicalAddress{64 * mib};
    auto batch = fixture.table->map(va_range(gib, 4 * kib), first);
    REQUIRE(batch.has_value());
    fixture.flush(*batch);
    CHECK(mmu.translate(pdb, gib + 8).pa == 64 * mib + 8);
    // Replace the mapping without telling the TLB: the old answer stays.
    PageAttributes second;
    second.address = PhysicalAddress{96 * mib};
    auto replaced = fixture.table->map(va_range(gib, 4 * kib), second, {.replace = true});
    REQUIRE(replaced.has_value());
    fixture.flush(*replaced);
    CHECK(mmu.walk(pdb, gib + 8).pa == 96 * mib + 8);
    CHECK(mmu.translate(pdb, gib + 8).pa == 64 * mib + 8);  // stale
    mmu.invalidate(pdb + 4096, false);                      // another address space
    CHECK(mmu.translate(pdb, gib + 8).pa == 64 * mib + 8);
    mmu.invalidate(pdb, false);
    CHECK(mmu.translate(pdb, gib + 8).pa == 96 * mib + 8);
    CHECK(mmu.tlb_hits() >= 2);
    // Faults are not cached.
    CHECK(mmu.translate(pdb, u64{1} << 60).kind == sim::ReferenceTranslation::Kind::fault);
}
