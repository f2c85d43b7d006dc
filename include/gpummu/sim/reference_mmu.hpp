// gpummu/sim/reference_mmu.hpp: an MMU model written from the manual, for the simulator.
//
// What it does
//   - `ReferenceMmu::walk(pdb, va)` decodes page tables in simulated VRAM the way the
//     hardware would, with its own shifts and masks (it never calls gpummu's format codecs:
//     a bug in an encoder must not be mirrored by the decoder):
//
//       ver2 (49-bit VA)                       ver3 (57-bit VA)
//       PD3 48:47 (4 x 8 B)                    PD4 56:56 (2 x 8 B)
//       PD2 46:38                              PD3 55:47
//       PD1 37:29  [512 MiB PTE, Ampere+]      PD2 46:38  [256 GiB PTE, Blackwell]
//       PD0 28:21  dual 16 B [2 MiB PTE]       PD1 37:29  [512 MiB PTE]
//       PT  20:12 (small)  PT 20:16 (big)      PD0 28:21  dual [2 MiB PTE]; PT as ver2
//
//     Big PTE first: valid maps 64 KiB, sparse is sparse, "no valid 4K" means unmapped,
//     plain invalid defers to the small PTE.
//   - `walk_instance(block, va)`: the same walk with the PDB read from an instance block's
//     words 128/129, as an engine bound to that block would find it.
//   - `translate(pdb, va)` goes through a small TLB (64 entries, round robin) that keeps a
//     translation until `invalidate(pdb)`: a caller that forgets to invalidate sees the
//     stale answer, as on hardware.
//
// What it does not do
//   - Tables in system memory, peer memory and ATS are not modelled: a PDE pointing outside
//     video memory, or past the end of VRAM, is a fault.
#pragma once

#include <array>
#include <span>

#include "gpummu/core/types.hpp"

namespace gpummu::sim {

enum class MmuGeneration : u8 { ver2, ver3 };

struct ReferenceTranslation {
    enum class Kind : u8 { mapped, unmapped, sparse, fault } kind = Kind::unmapped;
    u64 pa = 0;             // mapped: the physical address of the byte
    u64 page_bytes = 0;     // mapped: page size
    unsigned aperture = 0;  // 0 video, 1 peer, 2 system coherent, 3 system non-coherent
    bool read_only = false;
};

class ReferenceMmu {
public:
    static constexpr std::size_t tlb_entries = 64;

    ReferenceMmu(MmuGeneration generation, std::span<const u64> vram) noexcept
        : generation_(generation),
          vram_(vram)
    {
    }

    [[nodiscard]] ReferenceTranslation walk(u64 pdb, u64 va) const noexcept
    {
        last_entry_ = ~u64{0};
        return generation_ == MmuGeneration::ver2 ? walk_ver2(pdb, va) : walk_ver3(pdb, va);
    }
    // A walk as an engine bound to the instance block at `block` does it: the PDB from
    // bytes 0x200..0x207 (TARGET 1:0 must be video memory; on ver2 bit 10 must select the
    // ver2 format, else the instance is unbound; address 63:12), then walk(). An unbound or
    // unreadable block, or a PDB outside video memory, is a fault.
    [[nodiscard]] ReferenceTranslation walk_instance(u64 block, u64 va) const noexcept
    {
        last_entry_ = ~u64{0};
        u64 word = 0;
        if ((block & 0xFFF) != 0 || !load(block + 0x200, word)) return fault();
        if ((word & 3) != 0) return fault();  // 1 unbound; 2, 3 system memory: not modelled
        if (generation_ == MmuGeneration::ver2 && ((word >> 10) & 1) == 0) return fault();
        return walk(word & ~u64{0xFFF}, va);
    }

    // The VRAM address of the last entry the previous walk() read (for a mapped address: its
    // PTE), or ~0. The simulator uses it to corrupt PTEs on purpose.
    [[nodiscard]] u64 last_entry() const noexcept { return last_entry_; }

    // Through the TLB: a hit returns what was cached, even if the tables changed since.
    [[nodiscard]] ReferenceTranslation translate(u64 pdb, u64 va) noexcept
    {
        const u64 page = va >> 12;
        const CachedEntry &recent = tlb_[last_hit_];
        if (recent.valid && recent.pdb == pdb && recent.page == page) {
            ++hits_;
            ReferenceTranslation hit = recent.translation;
            if (hit.kind == ReferenceTranslation::Kind::mapped)
                hit.pa = recent.page_pa + (va & 0xFFF);
            return hit;
        }
        for (std::size_t index = 0; index < tlb_entries; ++index) {
            const CachedEntry &entry = tlb_[index];
            if (entry.valid && entry.pdb == pdb && entry.page == page) {
                ++hits_;
                last_hit_ = index;
                ReferenceTranslation hit = entry.translation;
                if (hit.kind == ReferenceTranslation::Kind::mapped)
                    hit.pa = entry.page_pa + (va & 0xFFF);
                return hit;
            }
        }
        ++misses_;
        ReferenceTranslation fresh = walk(pdb, va);
        // Faults are not cached (hardware does not fill the TLB with them).
        if (fresh.kind != ReferenceTranslation::Kind::fault) {
            last_hit_ = next_victim_++ % tlb_entries;
            tlb_[last_hit_] = CachedEntry{true, pdb, page, fresh.pa & ~u64{0xFFF}, fresh};
        }
        return fresh;
    }

    // Drops every cached translation of `pdb` (all of them when `all_pdb`).
    void invalidate(u64 pdb, bool all_pdb) noexcept
    {
        for (CachedEntry &entry : tlb_)
            if (all_pdb || entry.pdb == pdb) entry.valid = false;
    }

    [[nodiscard]] u64 tlb_hits() const noexcept { return hits_; }
    [[nodiscard]] u64 tlb_misses() const noexcept { return misses_; }

private:
    using Kind = ReferenceTranslation::Kind;

    struct CachedEntry {
        bool valid = false;
        u64 pdb = 0;
        u64 page = 0;
        u64 page_pa = 0;
        ReferenceTranslation translation{};
    };

    static constexpr u64 mask(unsigned width) noexcept
    {
        return width >= 64 ? ~u64{0} : (u64{1} << width) - 1;
    }

    // A VRAM word, or false when the address is outside VRAM or not 8-byte aligned.
    [[nodiscard]] bool load(u64 address, u64 &word) const noexcept
    {
        if ((address & 7) != 0 || address / 8 >= vram_.size()) return false;
        word = vram_[address / 8];
        last_entry_ = address;
        return true;
    }

    static ReferenceTranslation fault() noexcept { return {Kind::fault}; }
    static ReferenceTranslation plain(Kind kind) noexcept { return {kind}; }

    // ---- ver2 ----------------------------------------------------------------------------
    // PTE: 0 VALID, 2:1 APERTURE, 3 VOL, 5 PRIVILEGE, 6 READ_ONLY, 32:8 (video/peer) or
    // 53:8 (system) address >> 12.
    static ReferenceTranslation ver2_pte(u64 word, u64 va, u64 page_bytes) noexcept
    {
        ReferenceTranslation out;
        out.kind = Kind::mapped;
        out.aperture = static_cast<unsigned>((word >> 1) & 3);
        const u64 frame = out.aperture <= 1 ? (word >> 8) & mask(25) : (word >> 8) & mask(46);
        out.pa = (frame << 12) + (va & (page_bytes - 1));
        out.page_bytes = page_bytes;
        out.read_only = ((word >> 6) & 1) != 0;
        return out;
    }

    [[nodiscard]] ReferenceTranslation walk_ver2(u64 pdb, u64 va) const noexcept
    {
        if ((va >> 49) != 0) return fault();
        u64 table = pdb;
        // PD3, PD2, PD1: 8-byte PDEs. APERTURE 2:1 (0 = none, 1 = video), VOL 3, address 32:8.
        static constexpr unsigned shifts[3] = {47, 38, 29};
        static constexpr u64 index_masks[3] = {3, 511, 511};
        for (unsigned level = 0; level < 3; ++level) {
            u64 word = 0;
            if (!load(table + ((va >> shifts[level]) & index_masks[level]) * 8, word))
                return fault();
            if ((word & 1) != 0) {
                if (level != 2) return fault();  // only PD1 may hold a (512 MiB) PTE
                return ver2_pte(word, va, u64{1} << 29);
            }
            const u64 aperture = (word >> 1) & 3;
            if (aperture == 0) return plain(((word >> 3) & 1) != 0 ? Kind::sparse : Kind::unmapped);
            if (aperture != 1) return fault();
            table = ((word >> 8) & mask(25)) << 12;
        }
        // PD0: 16-byte dual entry.
        u64 low = 0, high = 0;
        const u64 entry = table + ((va >> 21) & 255) * 16;
        if (!load(entry, low) || !load(entry + 8, high)) return fault();
        if ((low & 1) != 0) return ver2_pte(low, va, u64{1} << 21);
        const u64 big_aperture = (low >> 1) & 3, small_aperture = (high >> 1) & 3;
        if (big_aperture == 0 && small_aperture == 0)
            return plain(((low >> 3) & 1) != 0 ? Kind::sparse : Kind::unmapped);
        if (big_aperture == 1) {
            const u64 big_table = ((low >> 4) & mask(29)) << 8;  // 32:4, shift 8
            u64 big = 0;
            if (!load(big_table + ((va >> 16) & 31) * 8, big)) return fault();
            if ((big & 1) != 0) return ver2_pte(big, va, u64{1} << 16);
            if (((big >> 3) & 1) != 0) return plain(Kind::sparse);
            if (((big >> 5) & 1) != 0) return plain(Kind::unmapped);  // no valid 4K PTE below
        } else if (big_aperture != 0) {
            return fault();
        }
        if (small_aperture == 0) return plain(Kind::unmapped);
        if (small_aperture != 1) return fault();
        const u64 small_table = ((high >> 8) & mask(25)) << 12;
        u64 small = 0;
        if (!load(small_table + ((va >> 12) & 511) * 8, small)) return fault();
        if ((small & 1) != 0) return ver2_pte(small, va, u64{1} << 12);
        return plain(((small >> 3) & 1) != 0 ? Kind::sparse : Kind::unmapped);
    }

    // ---- ver3 ----------------------------------------------------------------------------
    // PTE: 0 VALID, 2:1 APERTURE, 7:3 PCF (valid: bit 2 of PCF = read-only; invalid: 1 sparse,
    // 2 mapping nowhere, 3 no valid 4K), 51:12 address in place.
    static constexpr u64 ver3_address = 0x000F'FFFF'FFFF'F000ull;  // bits 51:12

    static ReferenceTranslation ver3_pte(u64 word, u64 va, u64 page_bytes) noexcept
    {
        ReferenceTranslation out;
        out.kind = Kind::mapped;
        out.aperture = static_cast<unsigned>((word >> 1) & 3);
        out.pa = (word & ver3_address) + (va & (page_bytes - 1));
        out.page_bytes = page_bytes;
        out.read_only = ((word >> 5) & 1) != 0;
        return out;
    }

    [[nodiscard]] ReferenceTranslation walk_ver3(u64 pdb, u64 va) const noexcept
    {
        if ((va >> 57) != 0) return fault();
        u64 table = pdb;
        // PD4, PD3, PD2, PD1: APERTURE 2:1, PCF 5:3 (with APERTURE 0: bit 0 = sparse).
        static constexpr unsigned shifts[4] = {56, 47, 38, 29};
        static constexpr u64 index_masks[4] = {1, 511, 511, 511};
        for (unsigned level = 0; level < 4; ++level) {
            u64 word = 0;
            if (!load(table + ((va >> shifts[level]) & index_masks[level]) * 8, word))
                return fault();
            if ((word & 1) != 0) {
                if (level < 2) return fault();  // PTEs only at PD2 (256 GiB) and PD1 (512 MiB)
                return ver3_pte(word, va, u64{1} << shifts[level]);
            }
            const u64 aperture = (word >> 1) & 3;
            if (aperture == 0) return plain(((word >> 3) & 1) != 0 ? Kind::sparse : Kind::unmapped);
            if (aperture != 1) return fault();
            table = word & ver3_address;
        }
        u64 low = 0, high = 0;
        const u64 entry = table + ((va >> 21) & 255) * 16;
        if (!load(entry, low) || !load(entry + 8, high)) return fault();
        if ((low & 1) != 0) return ver3_pte(low, va, u64{1} << 21);
        const u64 big_aperture = (low >> 1) & 3, small_aperture = (high >> 1) & 3;
        if (big_aperture == 0 && small_aperture == 0)
            return plain(((low >> 3) & 1) != 0 ? Kind::sparse : Kind::unmapped);
        if (big_aperture == 1) {
            const u64 big_table = low & 0x000F'FFFF'FFFF'FF00ull;  // 51:8, in place
            u64 big = 0;
            if (!load(big_table + ((va >> 16) & 31) * 8, big)) return fault();
            if ((big & 1) != 0) return ver3_pte(big, va, u64{1} << 16);
            const u64 pcf = (big >> 3) & 31;
            if (pcf == 1) return plain(Kind::sparse);
            if (pcf == 2 || pcf == 3) return plain(Kind::unmapped);  // nowhere / no valid 4K
        } else if (big_aperture != 0) {
            return fault();
        }
        if (small_aperture == 0) return plain(Kind::unmapped);
        if (small_aperture != 1) return fault();
        const u64 small_table = high & ver3_address;
        u64 small = 0;
        if (!load(small_table + ((va >> 12) & 511) * 8, small)) return fault();
        if ((small & 1) != 0) return ver3_pte(small, va, u64{1} << 12);
        return plain(((small >> 3) & 31) == 1 ? Kind::sparse : Kind::unmapped);
    }

    MmuGeneration generation_;
    std::span<const u64> vram_;
    std::array<CachedEntry, tlb_entries> tlb_{};
    std::size_t next_victim_ = 0;
    std::size_t last_hit_ = 0;  // checked first: accesses come in runs on one page
    mutable u64 last_entry_ = ~u64{0};
    u64 hits_ = 0;
    u64 misses_ = 0;
};

}  // namespace gpummu::sim
