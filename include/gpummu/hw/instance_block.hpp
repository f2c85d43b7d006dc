// gpummu/hw/instance_block.hpp: the page-directory-base words of a channel's instance block.
//
// What it does
//   An instance block (RAMIN: 4 KiB, 4 KiB aligned, in VRAM or system memory) tells an
//   engine which address space its channel runs in. Words 128 and 129 (byte 0x200, read
//   here as one little-endian 64-bit word) hold the page-directory base (PDB):
//
//       63 ............................. 12 | 11 | 10 | 5 | 4 | 2 | 1:0
//       PDB address bits 63:12 (LO 31:12,    | BIG| VER2| replay | VOL | TARGET
//       HI 63:32 in word 129)                | 64K| fmt | GCC TEX|     | 0 vid 1 invalid
//                                                                          2 coh 3 noncoh
//   Since Volta the same words are repeated per sub-context at 0x2A0 + 16 * i (i < 64) with
//   a valid mask at 0x298 (one bit per sub-context); the last bind decides the format.
//   - `PageDirectoryBase` is the decoded form; `encode` / `decode` convert, refusing what
//     the hardware cannot take (a peer target, a misaligned root, a v3 space marked as
//     using 128 KiB big pages).
//   - `write_page_directory_base(memory, block, pdb)` fills a 4 KiB instance block's PDB,
//     sub-context 0 with the same PDB, sub-contexts 1..63 unbound (TARGET invalid) and the
//     valid mask = sub-context 0, through any TableMemory (PRAMIN on a GPU).
//   The format bit follows NVIDIA's own driver: USE_VER2_PT_FORMAT = 1 for MMU v2, 0 for v3
//   (nouveau sets it for both; Hopper accepts only v3 tables, so the bit is believed to be
//   ignored there). BIG_PAGE_SIZE = 1 (64 KiB) always: gpummu's big pages are 64 KiB.
//
// What it does not do
//   - It does not bind the block to an engine or a channel (that is the scheduler's and,
//     with GSP firmware, GSP's job) and writes nothing beyond the words above.
//   - No locking: the caller writes a block no engine is using.
#pragma once

#include <array>
#include <span>

#include "gpummu/core/bitfield.hpp"
#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/format/mmu_version.hpp"
#include "gpummu/memory/table_memory_concepts.hpp"

namespace gpummu {

namespace instance_block {
inline constexpr u64 bytes = 4096;
inline constexpr u64 page_directory_base = 0x200;  // words 128 (LO) and 129 (HI)
inline constexpr u64 subcontext_valid = 0x298;     // words 166, 167: one bit per sub-context
inline constexpr u64 subcontext_base = 0x2A0;      // + 16 * i: the PDB words of sub-context i
inline constexpr u64 subcontext_stride = 16;
inline constexpr unsigned subcontexts = 64;

inline constexpr BitField target = bits(1, 0);
inline constexpr BitField volatile_ = bits(2, 2);
inline constexpr BitField fault_replay_tex = bits(4, 4);
inline constexpr BitField fault_replay_gcc = bits(5, 5);
inline constexpr BitField use_ver2_format = bits(10, 10);
inline constexpr BitField big_page_64k = bits(11, 11);
inline constexpr AddressField address{bits(63, 12), 12};

inline constexpr u64 target_video = 0, target_invalid = 1, target_coherent = 2,
                     target_noncoherent = 3;

inline constexpr std::array<BitField, 7> all_fields{
    target,          volatile_,    fault_replay_tex, fault_replay_gcc,
    use_ver2_format, big_page_64k, address.field};
static_assert(fields_are_disjoint(all_fields), "PDB word fields overlap");
static_assert(fields_fit(all_fields, 8), "PDB word fields leave the 64-bit word");
}  // namespace instance_block

struct PageDirectoryBase {
    Aperture target = Aperture::video;  // video, system coherent or system non-coherent
    PhysicalAddress root{};             // the page directory's address, 4 KiB aligned
    MmuVersion format = MmuVersion::v2;
    bool volatile_root = false;  // VOL: L2 may not cache the top level
    bool replayable_faults = false;
    constexpr bool operator==(const PageDirectoryBase &) const noexcept = default;
};

// Words 128 and 129 as one 64-bit word (word 128 in the low half).
[[nodiscard]] constexpr Result<u64>
encode_page_directory_base(const PageDirectoryBase &pdb) noexcept
{
    namespace ib = instance_block;
    u64 target = 0;
    switch (pdb.target) {
    case Aperture::video: target = ib::target_video; break;
    case Aperture::system_coherent: target = ib::target_coherent; break;
    case Aperture::system_noncoherent: target = ib::target_noncoherent; break;
    default: return failure(Error::invalid_aperture);  // peer and invalid cannot hold a PDB
    }
    auto address = ib::address.encode(0, pdb.root.value());
    if (!address) return failure(address.error());
    u64 word = *address;
    word = ib::target.insert(word, target);
    word = ib::volatile_.insert_flag(word, pdb.volatile_root);
    word = ib::fault_replay_tex.insert_flag(word, pdb.replayable_faults);
    word = ib::fault_replay_gcc.insert_flag(word, pdb.replayable_faults);
    word = ib::use_ver2_format.insert_flag(word, pdb.format == MmuVersion::v2);
    word = ib::big_page_64k.insert_flag(word, true);
    return word;
}

// The PDB a word describes. Errors: invalid_aperture (TARGET invalid: an unbound
// context), conflicting_fields (128 KiB big pages, or the two replay bits disagree).
// `format` is the chip's MMU version: on v3 chips the format bit is not read.
[[nodiscard]] constexpr Result<PageDirectoryBase>
decode_page_directory_base(u64 word, MmuVersion chip_format) noexcept
{
    namespace ib = instance_block;
    PageDirectoryBase pdb;
    switch (ib::target.get(word)) {
    case ib::target_video: pdb.target = Aperture::video; break;
    case ib::target_coherent: pdb.target = Aperture::system_coherent; break;
    case ib::target_noncoherent: pdb.target = Aperture::system_noncoherent; break;
    default: return failure(Error::invalid_aperture);
    }
    if (!ib::big_page_64k.get_flag(word)) return failure(Error::conflicting_fields);
    if (ib::fault_replay_tex.get_flag(word) != ib::fault_replay_gcc.get_flag(word))
        return failure(Error::conflicting_fields);
    if (chip_format == MmuVersion::v2 && !ib::use_ver2_format.get_flag(word))
        return failure(Error::conflicting_fields);  // ver1 tables: an unbound-instance fault
    pdb.root = PhysicalAddress{ib::address.decode(word)};
    pdb.format = chip_format;
    pdb.volatile_root = ib::volatile_.get_flag(word);
    pdb.replayable_faults = ib::fault_replay_tex.get_flag(word);
    return pdb;
}

// Fills the PDB words of the 4 KiB instance block at `block` (see the header comment).
template <TableMemory M>
[[nodiscard]] Result<void> write_page_directory_base(M &memory, VramAddress block,
                                                     const PageDirectoryBase &pdb) noexcept
{
    namespace ib = instance_block;
    if (!block.is_aligned_to(ib::bytes)) return failure(Error::misaligned);
    auto word = encode_page_directory_base(pdb);
    if (!word) return failure(word.error());
    GPUMMU_TRY(memory.write(block + ib::page_directory_base, std::span<const u64>(&*word, 1)));
    const u64 unbound = ib::target.insert(0, ib::target_invalid);
    for (unsigned i = 0; i < ib::subcontexts; ++i) {
        const u64 value = i == 0 ? *word : unbound;
        GPUMMU_TRY(memory.write(block + (ib::subcontext_base + ib::subcontext_stride * i),
                                std::span<const u64>(&value, 1)));
    }
    const u64 valid = 1;  // sub-context 0 only (words 166 and 167)
    return memory.write(block + ib::subcontext_valid, std::span<const u64>(&valid, 1));
}

// ---- proofs beside the table --------------------------------------------------------------
// v2, video memory, root at 0x12345000: LO = 0x12345000 | VER2 (bit 10) | BIG 64K (bit 11).
static_assert(encode_page_directory_base({Aperture::video, PhysicalAddress{0x1234'5000},
                                          MmuVersion::v2})
                  .value() == 0x0000'0000'1234'5C00ull);
// v3 root above 4 GiB, coherent system memory: HI holds bits 63:32, no VER2 bit.
static_assert(encode_page_directory_base({Aperture::system_coherent,
                                          PhysicalAddress{0x0000'0012'3456'7000}, MmuVersion::v3})
                  .value() == 0x0000'0012'3456'7802ull);
static_assert(encode_page_directory_base({Aperture::peer, PhysicalAddress{0x1000}}).error() ==
              Error::invalid_aperture);
static_assert(encode_page_directory_base({Aperture::video, PhysicalAddress{0x1800}}).error() ==
              Error::misaligned);
static_assert(decode_page_directory_base(0x1234'5C00ull, MmuVersion::v2).value() ==
              PageDirectoryBase{Aperture::video, PhysicalAddress{0x1234'5000}, MmuVersion::v2});
static_assert(decode_page_directory_base(0x1234'5001ull, MmuVersion::v2).error() ==
              Error::invalid_aperture);  // TARGET invalid: unbound

}  // namespace gpummu
