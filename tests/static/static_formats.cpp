// Compile-only checks: nothing here runs. If this file compiles, every fact below holds.
// (The formats carry their own proofs beside their tables; these restate the published
// golden values and concept facts from the outside, through the public API only.)
#include "gpummu/gpummu.hpp"

namespace {
using namespace gpummu;

static_assert(MmuFormat<MmuV2>);
static_assert(MmuFormat<MmuV3>);
static_assert(!MmuFormat<int>);
static_assert(!MmuFormat<mmu_v2::Pte>);

// Golden encodings (NVIDIA manuals, UVM, nouveau).
static_assert(MmuV2::Pte::invalid().raw() == 0 && MmuV3::Pte::invalid().raw() == 0);
static_assert(MmuV2::Pte::sparse().raw() == 0x8 && MmuV3::Pte::sparse().raw() == 0x8);
static_assert(MmuV2::Pte::no_valid_4k().raw() == 0x20);
static_assert(MmuV3::Pte::no_valid_4k().raw() == 0x18);
static_assert(MmuV2::Pde::sparse().raw() == 0x8 && MmuV3::Pde::sparse().raw() == 0x8);

// Level geometry.
static_assert(MmuV2::levels.size() == 5 && MmuV3::levels.size() == 6);
static_assert(MmuV2::levels[3].entry_count() == 256 && MmuV2::levels[3].entry_bytes == 16);
static_assert(MmuV3::levels[4].table_bytes() == 4096);
static_assert(MmuV2::levels[2].pte_sizes.contains(PageSize::size_512m()));
static_assert(MmuV3::levels[2].pte_sizes.contains(PageSize::size_256g()));
static_assert(!MmuV2::levels[1].may_hold_pte());

// Encoders are usable in constant expressions, including their error paths.
static_assert(MmuV3::Pte::map({.address = PhysicalAddress{0x1000}, .read_only = true})->raw() ==
              (0x1001 | (4u << 3)));
static_assert(MmuV2::Pde::point_to({Aperture::peer, PhysicalAddress{0}}).error() ==
              Error::invalid_aperture);
static_assert(
    mmu_v3::DualPde::point_to({Aperture::video, PhysicalAddress{0x100}}, {}).value().low() ==
    (0x2 | 0x10 | 0x100));

// Describe and encode work at compile time too.
static_assert(describe(MmuVersion::v3, EntryKind::pte, 0x18).fields.find("state")->text ==
              "no_valid_4k");
static_assert([] {
    KeyValue pairs[] = {{"state", "sparse"}};
    std::string_view offending;
    return encode_entry(MmuVersion::v2, EntryKind::pte, pairs, offending).value().low;
}() == 0x8);

// Strong types do not mix.
static_assert(!std::is_convertible_v<VirtualAddress, VramAddress>);
static_assert(!std::is_convertible_v<u64, VirtualAddress>);
static_assert(!std::is_convertible_v<PhysicalAddress, VramAddress>);
static_assert(!std::is_convertible_v<Pfn, Vfn>);

}  // namespace
