// gpummu/sim/gpu.hpp: a simulated NVIDIA GPU for tests, demos and users' own CI.
//
// What it models (this increment)
//   - VRAM: a caller-supplied span of 64-bit words (host memory, little-endian host).
//   - BAR0 (`Gpu::Bar0`, a BarIo):
//       0x000000 BOOT_0, 0x000A00 BOOT_42 of the chosen chip (GA102 for MMU v2, GH100 for v3)
//       the chip's PRAMIN window register, keeping only the bits its fields have (a write of
//         a wider base is truncated, as hardware drops bits it does not have)
//       0x700000..0x7FFFFF the PRAMIN window onto VRAM; accesses past VRAM read all-ones and
//         are recorded as faults
//       the TLB invalidate registers: a write of CONTROL with TRIGGER starts an invalidate;
//         the next `invalidate_polls` reads of CONTROL (default 3) show TRIGGER still set and
//         the one after shows it clear; completed invalidates are
//         recorded (PDB, aperture, flags)
//   - A log of the last 512 register accesses outside PRAMIN (reads and writes, in order), so
//     tests can check register sequences.
//
//   - GSP-style static info: VRAM split into regions (usable, a protected hole in the
//     middle, and 2 MiB reserved at the top), with the BAR1 root page directory at the
//     start of the reserved top, as GSP firmware builds it. By default the BAR1 tables are
//     made like RM's (Bar1Tables::rm_like): the whole BAR1 space sparse (so CPU prefetches
//     never fault) and GSP's own 64 KiB at BAR1 offset 0 mapped with 4 KiB pages to the
//     second half of the reserved top; the tables live in the reserved top after the root.
//     The BAR1 size must then be a multiple of 2 MiB that each directory level's entry
//     either divides or exceeds.
//     Bar1Tables::empty leaves the root zeroed.
//
//         0 ... usable ... | 1 MiB protected | ... usable ... | reserved: BAR1 root,
//                                                                tables | GSP's pages | end
//
//   - BAR1 (`Gpu::Bar1`, a BarIo of `bar1_bytes`): offset X is GPU VA X in the BAR1 address
//     space rooted at that PDB, translated by sim::ReferenceMmu through its TLB. Mapped video
//     memory is read and written; sparse reads 0 and drops writes; anything else is a fault
//     (recorded; reads return 0xBAD0AC00 patterns, writes are dropped). Completed invalidates
//     drop the TLB's entries for their PDB, so a missing invalidate shows as a stale
//     translation.
//
// What it does not model
//   - Other registers read 0 and ignore writes (logged). No BAR1 bind registers: GSP owns
//     the BAR1 instance block.
//
// The model is independent of the library's hw/ code: it decodes register values with its own
// masks written from the manual.
#pragma once

#include <algorithm>
#include <array>
#include <cstring>
#include <span>

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"
#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"
#include "gpummu/hw/chip.hpp"
#include "gpummu/hw/fb_layout.hpp"
#include "gpummu/sim/reference_mmu.hpp"

namespace gpummu::sim {

struct ChipModel {
    const char *name;
    u32 boot0;
    u32 boot42;
};

// Architecture 0x17 implementation 2 revision A1; architecture 0x18 implementation 0.
inline constexpr ChipModel ga102{"GA102", 0x172000A1u, 0x172A1000u};
inline constexpr ChipModel gh100{"GH100", 0x180000A1u, 0x180A1000u};

struct RegisterAccess {
    u32 offset = 0;
    u32 value = 0;
    bool write = false;
    constexpr bool operator==(const RegisterAccess &) const noexcept = default;
};

struct CompletedInvalidate {
    u64 pdb = 0;
    bool system_memory = false;
    u32 control = 0;
};

// How the simulated GSP leaves the BAR1 tables (see the header).
enum class Bar1Tables : u8 { rm_like, empty };

// What GSP firmware's static-info record tells a driver about memory (the part gpummu
// needs): the FB region records and the BAR1 page directory it built.
struct GspStaticInfo {
    std::span<const FbRegionRecord> fb_regions;
    u64 bar1_pde_base = 0;
    u64 bar1_bytes = 0;
};

class Gpu {
public:
    static constexpr std::size_t log_capacity = 512;
    static constexpr u32 all_ones32 = 0xFFFF'FFFFu;

    // One BAR of the device as a BarIo: BAR0 (registers and PRAMIN) or BAR1 (the aperture).
    enum class BarNumber : u8 { bar0, bar1 };
    template <BarNumber Number>
    class Bar {
    public:
        explicit Bar(Gpu &gpu) noexcept : gpu_(&gpu) {}
        Result<u8> read8(u64 offset) noexcept { return read<u8>(offset); }
        Result<u16> read16(u64 offset) noexcept { return read<u16>(offset); }
        Result<u32> read32(u64 offset) noexcept { return read<u32>(offset); }
        Result<u64> read64(u64 offset) noexcept { return read<u64>(offset); }
        Result<void> write8(u64 offset, u8 value) noexcept { return write(offset, value); }
        Result<void> write16(u64 offset, u16 value) noexcept { return write(offset, value); }
        Result<void> write32(u64 offset, u32 value) noexcept { return write(offset, value); }
        Result<void> write64(u64 offset, u64 value) noexcept { return write(offset, value); }
        // BarBlockIo: a run of words, with the same effects as one write64/read64 per word.
        Result<void> read64_block(u64 offset, std::span<u64> out) noexcept
        {
            if constexpr (Number == BarNumber::bar0)
                if (gpu_->pramin_run(offset, out.size())) {
                    gpu_->copy_from_window(offset, out);
                    return success();
                }
            for (std::size_t i = 0; i < out.size(); ++i) {
                auto word = read64(offset + i * 8);
                if (!word) return failure(word.error());
                out[i] = *word;
            }
            return success();
        }
        Result<void> write64_block(u64 offset, std::span<const u64> in) noexcept
        {
            if constexpr (Number == BarNumber::bar0)
                if (gpu_->pramin_run(offset, in.size())) {
                    gpu_->copy_to_window(offset, in);
                    return success();
                }
            for (std::size_t i = 0; i < in.size(); ++i) GPUMMU_TRY(write64(offset + i * 8, in[i]));
            return success();
        }

    private:
        template <class T>
        Result<T> read(u64 offset) noexcept
        {
            if constexpr (Number == BarNumber::bar0)
                return gpu_->read_sized<T>(offset);
            else
                return gpu_->bar1_read<T>(offset);
        }
        template <class T>
        Result<void> write(u64 offset, T value) noexcept
        {
            if constexpr (Number == BarNumber::bar0)
                return gpu_->write_sized(offset, value);
            else
                return gpu_->bar1_write(offset, value);
        }
        Gpu *gpu_;
    };
    using Bar0 = Bar<BarNumber::bar0>;
    using Bar1 = Bar<BarNumber::bar1>;

    static constexpr u64 bar0_bytes = 16u << 20;
    static constexpr u64 reserved_top = 2u << 20;  // GSP's share at the top of VRAM
    static constexpr u64 protected_hole = 1u << 20;
    static constexpr u64 fault_pattern = 0xBAD0AC00BAD0AC00ull;

    // `vram` must stay alive as long as the Gpu; its size (in bytes) is the VRAM size.
    // VRAM must be a multiple of 2 MiB, at least 8 MiB. `bar1_bytes`: the BAR1 aperture size.
    static constexpr u64 gsp_pages_offset = 1u << 20;  // GSP's pages: reserved top + 1 MiB
    static constexpr u64 gsp_pages_bytes = 64u << 10;  // mapped at BAR1 offset 0

    [[nodiscard]] static Result<Gpu> create(const ChipModel &chip, std::span<u64> vram,
                                            u64 bar1_bytes = 256u << 20,
                                            Bar1Tables tables = Bar1Tables::rm_like) noexcept
    {
        auto record = chip_record(decode_boot(chip.boot0, chip.boot42));
        if (!record) return failure(record.error());
        const u64 bytes = vram.size() * 8;
        if (bytes < (8u << 20) || bytes % (2u << 20) != 0 || bar1_bytes < (2u << 20) ||
            bar1_bytes % (2u << 20) != 0)
            return failure(Error::invalid_argument);
        Gpu gpu(chip, *record, vram, bar1_bytes);
        // GSP's regions: usable, a protected hole at the middle, usable, reserved top.
        const u64 middle = bytes / 2;
        gpu.regions_[0] = {0, middle - 1, false, false, true, true};
        gpu.regions_[1] = {middle, middle + protected_hole - 1, false, true, false, false};
        gpu.regions_[2] = {
            middle + protected_hole, bytes - reserved_top - 1, false, false, true, true};
        gpu.regions_[3] = {bytes - reserved_top, bytes - 1, true, false, false, false};
        gpu.bar1_pdb_ = bytes - reserved_top;
        for (u64 i = 0; i < 4096 / 8; ++i) vram[gpu.bar1_pdb_ / 8 + i] = 0;
        if (tables == Bar1Tables::rm_like) {
            Result<void> built = record->mmu_version == MmuVersion::v2
                                     ? build_gsp_bar1<MmuV2>(vram, gpu.bar1_pdb_, bar1_bytes)
                                     : build_gsp_bar1<MmuV3>(vram, gpu.bar1_pdb_, bar1_bytes);
            if (!built) return failure(built.error());
        }
        return gpu;
    }

    Gpu(const Gpu &) = delete;
    Gpu &operator=(const Gpu &) = delete;
    // Moves re-point the BAR0 view at the new object.
    Gpu(Gpu &&other) noexcept
        : chip_(other.chip_),
          record_(other.record_),
          vram_(other.vram_),
          bar0_(*this),
          bar1_(*this),
          mmu_(other.mmu_),
          bar1_bytes_(other.bar1_bytes_),
          bar1_pdb_(other.bar1_pdb_),
          regions_(other.regions_),
          bar1_faults_(other.bar1_faults_),
          last_bar1_fault_(other.last_bar1_fault_),
          window_value_(other.window_value_),
          window_writes_(other.window_writes_),
          pdb_(other.pdb_),
          upper_pdb_(other.upper_pdb_),
          control_(other.control_),
          pending_(other.pending_),
          invalidate_polls_(other.invalidate_polls_),
          hang_(other.hang_),
          completed_(other.completed_),
          invalidates_(other.invalidates_),
          log_(other.log_),
          log_count_(other.log_count_),
          faults_(other.faults_),
          writes_unordered_(other.writes_unordered_),
          unordered_invalidates_(other.unordered_invalidates_)
    {
    }

    [[nodiscard]] Bar0 &bar0() noexcept { return bar0_; }
    [[nodiscard]] Bar1 &bar1() noexcept { return bar1_; }
    [[nodiscard]] GspStaticInfo gsp_static_info() const noexcept
    {
        return GspStaticInfo{regions_, bar1_pdb_, bar1_bytes_};
    }
    // The same, piece by piece: the FB region records and the BAR1 root it built.
    [[nodiscard]] std::span<const FbRegionRecord> fb_regions() const noexcept { return regions_; }
    [[nodiscard]] VramAddress bar1_pdb() const noexcept { return VramAddress{bar1_pdb_}; }
    [[nodiscard]] u64 bar1_bytes() const noexcept { return bar1_bytes_; }
    [[nodiscard]] ReferenceMmu &mmu() noexcept { return mmu_; }
    [[nodiscard]] u64 bar1_faults() const noexcept { return bar1_faults_; }
    // Fault injection: overwrite the PTE that maps BAR1 `offset` (found by the reference MMU's
    // own walk) with `word`, behind gpummu's back and without an invalidate. False if the
    // offset is not mapped.
    bool corrupt_bar1_pte(u64 offset, u64 word) noexcept
    {
        const ReferenceTranslation translation = mmu_.walk(bar1_pdb_, offset);
        if (translation.kind != ReferenceTranslation::Kind::mapped) return false;
        vram_[mmu_.last_entry() / 8] = word;
        return true;
    }
    [[nodiscard]] u64 last_bar1_fault() const noexcept { return last_bar1_fault_; }
    [[nodiscard]] const ChipModel &chip() const noexcept { return chip_; }
    [[nodiscard]] const ChipRecord &record() const noexcept { return record_; }
    [[nodiscard]] u64 vram_bytes() const noexcept { return vram_.size() * 8; }
    [[nodiscard]] std::span<u64> vram() noexcept { return vram_; }

    // Completed TLB invalidates, oldest first (the last 64 are kept).
    [[nodiscard]] u64 invalidate_count() const noexcept { return invalidates_; }
    [[nodiscard]] const CompletedInvalidate &last_invalidate() const noexcept
    {
        return completed_[(invalidates_ + completed_.size() - 1) % completed_.size()];
    }
    void set_invalidate_polls(unsigned polls) noexcept { invalidate_polls_ = polls; }
    // Make invalidates never finish (a hung device, for timeout tests).
    void hang_invalidates(bool hang) noexcept { hang_ = hang; }
    // Every register then reads all-ones, as a GPU that fell off the bus does.
    void fall_off_bus(bool lost) noexcept { lost_ = lost; }

    // Register accesses outside PRAMIN, oldest first.
    [[nodiscard]] std::size_t log_size() const noexcept
    {
        return log_count_ < log_capacity ? log_count_ : log_capacity;
    }
    [[nodiscard]] RegisterAccess log_entry(std::size_t index) const noexcept
    {
        const std::size_t first = log_count_ < log_capacity ? 0 : log_count_ % log_capacity;
        return log_[(first + index) % log_capacity];
    }
    void clear_log() noexcept { log_count_ = 0; }

    [[nodiscard]] u64 faults() const noexcept { return faults_; }
    // Invalidates triggered while a PRAMIN write had not been followed by a PRAMIN read.
    [[nodiscard]] u64 unordered_invalidates() const noexcept { return unordered_invalidates_; }
    // A PRAMIN write not yet followed by a PRAMIN read (an invalidate now would be unordered).
    [[nodiscard]] bool has_unordered_writes() const noexcept { return writes_unordered_; }
    [[nodiscard]] u32 window_register() const noexcept { return window_value_; }
    [[nodiscard]] u64 window_writes() const noexcept { return window_writes_; }

private:
    // Makes the BAR1 tables as RM does: everything sparse, GSP's 64 KiB at offset 0 mapped
    // with 4 KiB pages. Written directly with the format's encoders (as firmware's own code
    // would), one chain of tables down to PD0 entry 0, sparse entries for the rest; the
    // reference MMU that reads them back is independent of those encoders. Tables are
    // handed out upward from just after the root.
    template <class F>
    [[nodiscard]] static Result<void> build_gsp_bar1(std::span<u64> vram, u64 root,
                                                     u64 bar1_bytes) noexcept
    {
        u64 next_table = root + 4096;
        auto new_table = [&]() -> u64 {
            const u64 table = next_table;
            next_table += 4096;
            for (u64 i = 0; i < 512; ++i) vram[table / 8 + i] = 0;
            return table;
        };
        auto pointer = [](u64 table) {
            return TablePointer{Aperture::video, PhysicalAddress{table}};
        };
        constexpr unsigned dual_depth = static_cast<unsigned>(F::levels.size()) - 2;
        u64 table = root;
        for (unsigned depth = 0;; ++depth) {
            const LevelDescriptor &level = F::levels[depth];
            const u64 coverage = level.entry_coverage();
            // Entries wholly inside the BAR1 space are sparse; entry 0 holds GSP's pages.
            const u64 whole = std::min<u64>(bar1_bytes / coverage, level.entry_count());
            for (u64 i = 1; i < whole; ++i) {
                if (level.dual) {
                    vram[table / 8 + 2 * i] = F::DualPde::sparse().low();
                    vram[table / 8 + 2 * i + 1] = F::DualPde::sparse().high();
                } else {
                    vram[table / 8 + i] = F::Pde::sparse().raw();
                }
            }
            if (bar1_bytes % coverage != 0 && whole != 0) return failure(Error::invalid_argument);
            if (depth < dual_depth) {
                const u64 child = new_table();
                auto pde = F::Pde::point_to(pointer(child));
                if (!pde) return failure(pde.error());
                vram[table / 8] = pde->raw();
                table = child;
                continue;
            }
            // PD0 entry 0: a small table with GSP's 16 pages, a big table with chunks 1..31
            // sparse (chunk 0's content is in the small PTEs).
            const u64 small = new_table(), big = new_table();
            for (u64 page = 0; page < gsp_pages_bytes / 4096; ++page) {
                PageAttributes attributes;
                attributes.aperture = Aperture::video;
                attributes.address = PhysicalAddress{root + gsp_pages_offset + page * 4096};
                auto pte = F::Pte::map(attributes);
                if (!pte) return failure(pte.error());
                vram[small / 8 + page] = pte->raw();
            }
            for (u64 chunk = gsp_pages_bytes / (64u << 10); chunk < 32; ++chunk)
                vram[big / 8 + chunk] = F::Pte::sparse().raw();
            auto dual = F::DualPde::point_to(pointer(big), pointer(small));
            if (!dual) return failure(dual.error());
            vram[table / 8] = dual->low();
            vram[table / 8 + 1] = dual->high();
            return success();
        }
    }

    Gpu(const ChipModel &chip, const ChipRecord &record, std::span<u64> vram,
        u64 bar1_bytes) noexcept
        : chip_(chip),
          record_(record),
          vram_(vram),
          bar0_(*this),
          bar1_(*this),
          mmu_(record.mmu_version == MmuVersion::v2 ? MmuGeneration::ver2 : MmuGeneration::ver3,
               vram),
          bar1_bytes_(bar1_bytes)
    {
    }

    // ---- BAR1: through the reference MMU and its TLB ------------------------------------
    // The VRAM byte behind BAR1 `offset` (mapped video memory), or why not.
    enum class Bar1Target : u8 { vram, sparse, fault };
    [[nodiscard]] Bar1Target bar1_target(u64 offset, unsigned width, u64 &address) noexcept
    {
        const ReferenceTranslation translation = mmu_.translate(bar1_pdb_, offset);
        if (translation.kind == ReferenceTranslation::Kind::sparse) return Bar1Target::sparse;
        if (translation.kind != ReferenceTranslation::Kind::mapped || translation.aperture != 0 ||
            translation.pa + width > vram_bytes()) {
            ++bar1_faults_;
            last_bar1_fault_ = offset;
            return Bar1Target::fault;
        }
        address = translation.pa;
        return Bar1Target::vram;
    }

    template <class T>
    Result<T> bar1_read(u64 offset) noexcept
    {
        if (offset % sizeof(T) != 0) return failure(Error::misaligned);
        if (offset >= bar1_bytes_ || bar1_bytes_ - offset < sizeof(T))
            return failure(Error::out_of_range);
        u64 address = 0;
        switch (bar1_target(offset, sizeof(T), address)) {
        case Bar1Target::sparse: return static_cast<T>(0);
        case Bar1Target::fault: return static_cast<T>(fault_pattern);
        case Bar1Target::vram: break;
        }
        T value;
        std::memcpy(&value, reinterpret_cast<const unsigned char *>(vram_.data()) + address,
                    sizeof(T));
        return value;
    }

    template <class T>
    Result<void> bar1_write(u64 offset, T value) noexcept
    {
        if (offset % sizeof(T) != 0) return failure(Error::misaligned);
        if (offset >= bar1_bytes_ || bar1_bytes_ - offset < sizeof(T))
            return failure(Error::out_of_range);
        u64 address = 0;
        if (bar1_target(offset, sizeof(T), address) != Bar1Target::vram) return success();
        std::memcpy(reinterpret_cast<unsigned char *>(vram_.data()) + address, &value, sizeof(T));
        return success();
    }

    // The window register keeps BASE (and TARGET where the chip has it).
    [[nodiscard]] u32 window_mask() const noexcept
    {
        u32 mask = static_cast<u32>((u64{1} << record_.window.base_bits) - 1);
        if (record_.window.has_target) mask |= 3u << record_.window.target_low;
        return mask;
    }
    [[nodiscard]] u64 window_base() const noexcept
    {
        const u32 base = window_value_ & static_cast<u32>((u64{1} << record_.window.base_bits) - 1);
        return u64{base} << record_.window.base_shift;
    }
    [[nodiscard]] bool window_targets_vram() const noexcept
    {
        return !record_.window.has_target ||
               ((window_value_ >> record_.window.target_low) & 3u) == 0;
    }

    void log(u32 offset, u32 value, bool write) noexcept
    {
        log_[log_count_ % log_capacity] = RegisterAccess{offset, value, write};
        ++log_count_;
    }

    // VRAM byte address behind a PRAMIN offset, or ~0 when it falls outside VRAM.
    [[nodiscard]] u64 pramin_target(u64 offset, unsigned width) const noexcept
    {
        const u64 address = window_base() + (offset - pramin_offset);
        if (!window_targets_vram() || address + width > vram_bytes()) return ~u64{0};
        return address;
    }

    // A run of `words` 64-bit words at a PRAMIN offset, aligned, inside the window and inside
    // VRAM: the block accesses copy it; anything else goes word by word (faults, registers).
    [[nodiscard]] bool pramin_run(u64 offset, std::size_t words) const noexcept
    {
        if (offset % 8 != 0 || offset < pramin_offset) return false;
        const u64 within = offset - pramin_offset;
        if (within > pramin_bytes || words > (pramin_bytes - within) / 8) return false;
        if (words == 0) return true;
        return pramin_target(offset + (words - 1) * 8, 8) != ~u64{0};
    }
    void copy_from_window(u64 offset, std::span<u64> out) noexcept
    {
        if (out.empty()) return;
        std::memcpy(out.data(),
                    reinterpret_cast<const unsigned char *>(vram_.data()) +
                        pramin_target(offset, 8),
                    out.size_bytes());
        writes_unordered_ = false;
    }
    void copy_to_window(u64 offset, std::span<const u64> in) noexcept
    {
        if (in.empty()) return;
        std::memcpy(reinterpret_cast<unsigned char *>(vram_.data()) + pramin_target(offset, 8),
                    in.data(), in.size_bytes());
        writes_unordered_ = true;
    }

    template <class T>
    Result<T> read_sized(u64 offset) noexcept
    {
        if (offset % sizeof(T) != 0) return failure(Error::misaligned);
        if (offset + sizeof(T) > bar0_bytes) return failure(Error::out_of_range);
        if (offset >= pramin_offset && offset < pramin_offset + pramin_bytes) {
            const u64 address = pramin_target(offset, sizeof(T));
            if (address == ~u64{0}) {
                ++faults_;
                return static_cast<T>(~T{0});
            }
            T value;
            std::memcpy(&value, reinterpret_cast<const unsigned char *>(vram_.data()) + address,
                        sizeof(T));
            writes_unordered_ = false;
            return value;
        }
        const u32 value = sizeof(T) == 4 ? register_read(static_cast<u32>(offset)) : 0u;
        if (sizeof(T) != 4) log(static_cast<u32>(offset), 0, false);
        return static_cast<T>(value);
    }

    template <class T>
    Result<void> write_sized(u64 offset, T value) noexcept
    {
        if (offset % sizeof(T) != 0) return failure(Error::misaligned);
        if (offset + sizeof(T) > bar0_bytes) return failure(Error::out_of_range);
        if (offset >= pramin_offset && offset < pramin_offset + pramin_bytes) {
            const u64 address = pramin_target(offset, sizeof(T));
            if (address == ~u64{0}) {
                ++faults_;
                return success();  // dropped, as a write to nowhere is
            }
            std::memcpy(reinterpret_cast<unsigned char *>(vram_.data()) + address, &value,
                        sizeof(T));
            writes_unordered_ = true;  // posted until a read through BAR0 follows
            return success();
        }
        if (sizeof(T) == 4) {
            register_write(static_cast<u32>(offset), static_cast<u32>(value));
        } else {
            log(static_cast<u32>(offset), static_cast<u32>(value), true);
        }
        return success();
    }

    u32 register_read(u32 offset) noexcept
    {
        u32 value = 0;
        if (offset == boot_registers::boot_0) {
            value = chip_.boot0;
        } else if (offset == boot_registers::boot_42) {
            value = chip_.boot42;
        } else if (offset == record_.window.offset) {
            value = window_value_;
        } else if (offset == record_.invalidate.control) {
            value = control_;
            if (pending_ != 0 && !hang_ && --pending_ == 0) complete_invalidate();
        } else if (offset == record_.invalidate.pdb) {
            value = pdb_;
        } else if (offset == record_.invalidate.upper_pdb) {
            value = upper_pdb_;
        }
        if (lost_) value = 0xFFFF'FFFFu;
        log(offset, value, false);
        return value;
    }

    void register_write(u32 offset, u32 value) noexcept
    {
        log(offset, value, true);
        if (offset == record_.window.offset) {
            window_value_ = value & window_mask();
            ++window_writes_;
        } else if (offset == record_.invalidate.pdb) {
            pdb_ = value;
        } else if (offset == record_.invalidate.upper_pdb) {
            upper_pdb_ = value & 0xF'FFFFu;
        } else if (offset == record_.invalidate.control) {
            control_ = value;
            if ((value & (1u << 31)) != 0) {
                pending_ = invalidate_polls_ == 0 ? 1 : invalidate_polls_;
                // An invalidate started while PRAMIN writes may still be in flight could walk
                // stale tables on hardware: count it, so tests can insist on the read-back.
                if (writes_unordered_) ++unordered_invalidates_;
            }
        }
    }

    void complete_invalidate() noexcept
    {
        // PDB bits 39:12 are ADDR 31:4, bits 59:40 are UPPER 19:0; APERTURE is bit 1.
        CompletedInvalidate done;
        done.pdb = (u64{pdb_ >> 4} << 12) | (u64{upper_pdb_} << 40);
        done.system_memory = ((pdb_ >> 1) & 1u) != 0;
        done.control = control_;
        completed_[invalidates_ % completed_.size()] = done;
        mmu_.invalidate(done.pdb, (control_ & 2u) != 0);  // ALL_PDB is bit 1
        ++invalidates_;
        control_ &= ~(1u << 31);
    }

    ChipModel chip_;
    ChipRecord record_;
    std::span<u64> vram_;
    Bar0 bar0_;
    Bar1 bar1_;
    ReferenceMmu mmu_;
    u64 bar1_bytes_ = 0;
    u64 bar1_pdb_ = 0;
    std::array<FbRegionRecord, 4> regions_{};
    u64 bar1_faults_ = 0;
    u64 last_bar1_fault_ = 0;
    u32 window_value_ = 0;
    u64 window_writes_ = 0;
    u32 pdb_ = 0, upper_pdb_ = 0, control_ = 0;
    unsigned pending_ = 0;
    unsigned invalidate_polls_ = 3;
    bool hang_ = false;
    bool lost_ = false;
    std::array<CompletedInvalidate, 64> completed_{};
    u64 invalidates_ = 0;
    std::array<RegisterAccess, log_capacity> log_{};
    std::size_t log_count_ = 0;
    u64 faults_ = 0;
    bool writes_unordered_ = false;
    u64 unordered_invalidates_ = 0;
};

}  // namespace gpummu::sim
