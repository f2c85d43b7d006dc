// hw/instance_block.hpp: the PDB words of an instance block, encoded, decoded and written,
// and the reference MMU walking a context through them.
#include <doctest/doctest.h>

#include <vector>

#include "gpummu/hw/instance_block.hpp"
#include "gpummu/memory/host_memory.hpp"
#include "gpummu/sim/reference_mmu.hpp"
#include "support/random.hpp"

using namespace gpummu;

TEST_CASE("PDB words: every field round-trips, bad inputs are refused")
{
    testing::Random random(0x1b);
    const Aperture targets[] = {Aperture::video, Aperture::system_coherent,
                                Aperture::system_noncoherent};
    for (int trial = 0; trial < 20000; ++trial) {
        PageDirectoryBase pdb;
        pdb.target = targets[random.below(3)];
        pdb.root = PhysicalAddress{random.next() & ~u64{0xFFF}};
        pdb.format = random.coin() ? MmuVersion::v2 : MmuVersion::v3;
        pdb.volatile_root = random.coin();
        pdb.replayable_faults = random.coin();
        auto word = encode_page_directory_base(pdb);
        REQUIRE(word);
        CHECK((*word & ~u64{0xFFF}) == pdb.root.value());              // LO 31:12 and HI 63:32
        CHECK(((*word >> 10) & 1) == (pdb.format == MmuVersion::v2));  // RM's rule
        CHECK(((*word >> 11) & 1) == 1);                               // 64 KiB big pages
        auto back = decode_page_directory_base(*word, pdb.format);
        REQUIRE(back);
        CHECK(*back == pdb);
    }
    CHECK(encode_page_directory_base({Aperture::peer, PhysicalAddress{0x1000}}).error() ==
          Error::invalid_aperture);
    CHECK(encode_page_directory_base({Aperture::invalid, PhysicalAddress{0x1000}}).error() ==
          Error::invalid_aperture);
    CHECK(encode_page_directory_base({Aperture::video, PhysicalAddress{0x1080}}).error() ==
          Error::misaligned);
    // Decoding what hardware would refuse or treat as unbound.
    CHECK(decode_page_directory_base(0x1000 | 1 | 0xC00, MmuVersion::v2).error() ==
          Error::invalid_aperture);  // TARGET invalid
    CHECK(decode_page_directory_base(0x1000 | 0x400, MmuVersion::v2).error() ==
          Error::conflicting_fields);  // 128 KiB big pages
    CHECK(decode_page_directory_base(0x1000 | 0x800, MmuVersion::v2).error() ==
          Error::conflicting_fields);  // ver1 tables on a ver2-only chip
    CHECK(decode_page_directory_base(0x1000 | 0x800, MmuVersion::v3));  // bit 10 unread on v3
    CHECK(decode_page_directory_base(0x1000 | 0xC10, MmuVersion::v2).error() ==
          Error::conflicting_fields);  // one replay bit without the other
}

TEST_CASE("write_page_directory_base fills the PDB, sub-context 0, unbinds the rest")
{
    std::vector<u64> image(16 * 1024, 0xFFFF'FFFF'FFFF'FFFFull);  // 128 KiB of garbage
    HostMemory memory(image);
    const PageDirectoryBase pdb{Aperture::video, PhysicalAddress{0x1'2340'0000}, MmuVersion::v3};
    CHECK(write_page_directory_base(memory, VramAddress{0x1800}, pdb).error() == Error::misaligned);
    REQUIRE(write_page_directory_base(memory, VramAddress{0x4000}, pdb));
    const u64 word = encode_page_directory_base(pdb).value();
    auto at = [&](u64 byte) { return image[(0x4000 + byte) / 8]; };
    CHECK(at(0x200) == word);
    CHECK(at(0x2A0) == word);                                          // sub-context 0
    for (unsigned i = 1; i < 64; ++i) CHECK(at(0x2A0 + 16 * i) == 1);  // TARGET invalid
    CHECK(at(0x298) == 1);                                             // valid mask: sub-context 0
    CHECK(image[0x4000 / 8] == ~u64{0});                               // nothing else written
    CHECK(at(0x208) == ~u64{0});
}

TEST_CASE("the reference MMU walks through an instance block, and faults on a bad one")
{
    // A v2 root at 0x10000 whose first PD3 entry is invalid: a walk ends unmapped.
    std::vector<u64> vram(1 << 16, 0);
    HostMemory memory(vram);
    sim::ReferenceMmu v2(sim::MmuGeneration::ver2, vram);
    PageDirectoryBase pdb{Aperture::video, PhysicalAddress{0x10000}, MmuVersion::v2};
    REQUIRE(write_page_directory_base(memory, VramAddress{0x20000}, pdb));
    CHECK(v2.walk_instance(0x20000, 0x1000).kind == sim::ReferenceTranslation::Kind::unmapped);
    // The same root marked as a ver3 space: a ver2 MMU takes it for ver1 tables: unbound.
    pdb.format = MmuVersion::v3;
    REQUIRE(write_page_directory_base(memory, VramAddress{0x21000}, pdb));
    CHECK(v2.walk_instance(0x21000, 0x1000).kind == sim::ReferenceTranslation::Kind::fault);
    // An unbound block (TARGET invalid) and a misaligned block address fault too.
    vram[0x22200 / 8] = 0x10000 | 1 | 0xC00;
    CHECK(v2.walk_instance(0x22000, 0x1000).kind == sim::ReferenceTranslation::Kind::fault);
    CHECK(v2.walk_instance(0x20008, 0x1000).kind == sim::ReferenceTranslation::Kind::fault);
}
