// gpummu-demo: the README's main job.
//
// Today (foundation stage) it shows both MMU formats as the library knows them: the level
// tree of each, the page sizes each architecture maps, and a set of representative entries
// built with the encoders and read back with the decoder, checking that each decodes to
// what was encoded. It exits 0 only if every check passed. The simulated-GPU demo (buddy,
// page tables, PRAMIN, BAR1) replaces the second half as those layers land.
#include <cstdio>
#include <string_view>

#include "gpummu/gpummu.hpp"

namespace {

using namespace gpummu;

int failures = 0;

void check(bool condition, const char *what)
{
    if (!condition) {
        std::printf("  CHECK FAILED: %s\n", what);
        ++failures;
    }
}

void print(std::string_view text)
{
    std::fwrite(text.data(), 1, text.size(), stdout);
}

void print_size_list(PageSizeSet sizes)
{
    constexpr struct {
        PageSize size;
        const char *name;
    } names[] = {{PageSize::size_4k(), "4K"},
                 {PageSize::size_64k(), "64K"},
                 {PageSize::size_2m(), "2M"},
                 {PageSize::size_512m(), "512M"},
                 {PageSize::size_256g(), "256G"}};
    for (const auto &entry : names)
        if (sizes.contains(entry.size)) std::printf(" %s", entry.name);
}

template <MmuFormat F>
void print_levels()
{
    std::printf("MMU %s: %u-bit VA\n", F::name, F::va_bits);
    std::printf("  %-6s %-8s %8s %6s %10s  %s\n", "level", "VA bits", "entries", "bytes", "table",
                "PTE maps");
    auto row = [](const LevelDescriptor &level, const char *indent) {
        char bits[16];
        std::snprintf(bits, sizeof bits, "%u:%u", level.va_high, level.va_low);
        std::printf("  %s%-*s %-8s %8llu %6u %9lluB ", indent,
                    6 - static_cast<int>(std::string_view(indent).size()), level.name, bits,
                    static_cast<unsigned long long>(level.entry_count()), level.entry_bytes,
                    static_cast<unsigned long long>(level.table_bytes()));
        if (level.pte_sizes.empty()) std::printf(" -");
        print_size_list(level.pte_sizes);
        std::printf("%s\n", level.dual ? "  (dual PDE: big + small table)" : "");
    };
    for (const LevelDescriptor &level : F::levels) row(level, "");
    row(F::big_page_table, "");
}

void show(MmuVersion version, EntryKind kind, u64 low, u64 high = 0)
{
    TextBuffer<4096> text;
    render_text(describe(version, kind, low, high), text);
    print(text.view());
}

template <MmuFormat F>
void representative_entries()
{
    constexpr MmuVersion version = F::version;
    std::printf("\nRepresentative MMU %s entries (encoded, then decoded)\n", F::name);

    // A 4 KiB read-only VRAM page, generic kind.
    PageAttributes page{.address = PhysicalAddress{0x1234'5000}, .read_only = true, .kind = 6};
    auto pte = F::Pte::map(page);
    check(pte.has_value(), "4 KiB PTE encodes");
    if (pte) {
        show(version, EntryKind::pte, pte->raw());
        check(pte->attributes() == page, "4 KiB PTE decodes to its attributes");
        check(pte->state() == PteState::valid, "4 KiB PTE is valid");
    }

    // A 2 MiB page at PD0: the dual PDE's low qword is the PTE.
    auto big_page = F::Pte::map({.aperture = Aperture::system_coherent,
                                 .address = PhysicalAddress{0x4000'0000},
                                 .uncached = true});
    check(big_page.has_value(), "2 MiB PTE encodes");
    if (big_page) {
        auto dual = F::DualPde::from_pte(*big_page);
        show(version, EntryKind::dual_pde, dual.low(), dual.high());
        check(dual.is_pte() && dual.as_pte().attributes().uncached, "2 MiB PTE in PD0 decodes");
    }

    // A PD0 entry pointing at both a 64 KiB (256 B) table and a 4 KiB table.
    auto dual = F::DualPde::point_to({Aperture::video, PhysicalAddress{0x20'0100}},
                                     {Aperture::video, PhysicalAddress{0x20'1000}});
    check(dual.has_value(), "dual PDE encodes");
    if (dual) {
        show(version, EntryKind::dual_pde, dual->low(), dual->high());
        check(dual->big_pointer().address == PhysicalAddress{0x20'0100}, "big half address");
        check(dual->small_pointer().address == PhysicalAddress{0x20'1000}, "small half address");
    }

    // The special invalid states.
    show(version, EntryKind::pte, F::Pte::sparse().raw());
    check(F::Pte::sparse().raw() == 0x8, "sparse PTE is 0x8");
    show(version, EntryKind::pte, F::Pte::no_valid_4k().raw());
    check(F::Pte::no_valid_4k().state() == PteState::no_valid_4k, "NV4K PTE decodes");

    // Refusals: a misaligned address and an aperture a PDE cannot use.
    auto misaligned = F::Pte::map({.address = PhysicalAddress{0x1234'5800}});
    check(!misaligned && misaligned.error() == Error::misaligned, "misaligned PTE refused");
    auto peer_pde = F::Pde::point_to({Aperture::peer, PhysicalAddress{0x1000}});
    check(!peer_pde && peer_pde.error() == Error::invalid_aperture, "peer PDE refused");
    std::printf("  refused: PTE at 0x12345800 -> %s; PDE to a peer -> %s\n",
                error_name(misaligned.error()), error_name(peer_pde.error()));
}

}  // namespace

int main()
{
    std::printf("gpummu demo: NVIDIA MMU page-table formats\n\n");
    print_levels<MmuV2>();
    std::printf("\n");
    print_levels<MmuV3>();
    std::printf("\nArchitectures\n");
    for (const ArchitectureRecord &record : architecture_records) {
        std::printf("  %-16s BOOT_42 0x%02X  MMU %s  pages:", record.name, record.boot42_code,
                    mmu_version_name(record.mmu_version));
        print_size_list(record.page_sizes);
        std::printf("\n");
    }
    representative_entries<MmuV2>();
    representative_entries<MmuV3>();
    std::printf("\n%s: %d check(s) failed\n", failures == 0 ? "PASS" : "FAIL", failures);
    return failures == 0 ? 0 : 1;
}
