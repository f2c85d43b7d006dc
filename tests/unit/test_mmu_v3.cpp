// MMU v3 entry codecs: golden values, PCF, every validation rule, special states.
#include <doctest/doctest.h>

#include "gpummu/format/mmu_v2.hpp"
#include "gpummu/format/mmu_v3.hpp"

using namespace gpummu;
using mmu_v3::DualPde;
using mmu_v3::DualPdeFields;
using mmu_v3::Pde;
using mmu_v3::PdeFields;
using mmu_v3::PdePcf;
using mmu_v3::Pte;
using mmu_v3::PteFields;
using mmu_v3::PtePcf;

TEST_CASE("v3 PTE golden values")
{
    CHECK(Pte::invalid().raw() == 0);
    CHECK(Pte::sparse().raw() == 0x8);
    CHECK(Pte::mapping_nowhere().raw() == 0x10);
    CHECK(Pte::no_valid_4k().raw() == 0x18);
    CHECK(Pte::sparse().state() == PteState::sparse);
    CHECK(Pte::mapping_nowhere().state() == PteState::mapping_nowhere);
    CHECK(Pte::no_valid_4k().state() == PteState::no_valid_4k);
    CHECK(Pte::from_raw(0x20).state() == PteState::invalid);  // PCF 4 with VALID=0: undefined
}

TEST_CASE("v3 PCF bits follow NVIDIA's enumeration")
{
    // REGULAR_RW_ATOMIC_UNCACHED_ACE = 1, PRIVILEGE_... = 2, RO = 4, NO_ATOMIC = 8, ACD = 0x10.
    CHECK(PtePcf::from_flags(true, false, false, false, false).value() == 0x01);
    CHECK(PtePcf::from_flags(false, true, false, false, false).value() == 0x02);
    CHECK(PtePcf::from_flags(false, false, true, false, false).value() == 0x04);
    CHECK(PtePcf::from_flags(false, false, false, true, false).value() == 0x08);
    CHECK(PtePcf::from_flags(false, false, false, false, true).value() == 0x10);
    auto pte = Pte::map({.address = PhysicalAddress{0x5000},
                         .privileged = true,
                         .access_counting_disabled = true})
                   .value();
    CHECK(((pte.raw() >> 3) & 0x1F) == 0x12);
    CHECK(pte.attributes().privileged);
    CHECK(pte.attributes().access_counting_disabled);
    CHECK_FALSE(pte.attributes().read_only);
    CHECK(PtePcf::from_value(32).error() == Error::field_overflow);
}

TEST_CASE("v3 PTE fields land on the manual's bits")
{
    PteFields fields;
    fields.valid = true;
    fields.aperture = Aperture::peer;
    fields.pcf = PtePcf::from_value(0x1F).value();
    fields.kind = 0xF;
    fields.address = PhysicalAddress{0xF'FFFF'FFFF'F000};
    fields.peer = 7;
    u64 raw = Pte::from_fields(fields).value().raw();
    CHECK(raw == (1ull | (1ull << 1) | (0x1Full << 3) | (0xFull << 8) | 0xF'FFFF'FFFF'F000ull |
                  (7ull << 61)));
    CHECK(Pte::from_raw(raw).fields() == fields);
    CHECK(Pte::from_raw(raw).undefined_bits() == 0);
    CHECK(Pte::from_raw(u64{1} << 55).undefined_bits() == (u64{1} << 55));
}

TEST_CASE("v3 PTE encoder refuses what the hardware cannot hold")
{
    PteFields fields;
    fields.valid = true;
    fields.address = PhysicalAddress{0x800};
    CHECK(Pte::from_fields(fields).error() == Error::misaligned);
    fields.address = PhysicalAddress{u64{1} << 52};
    CHECK(Pte::from_fields(fields).error() == Error::field_overflow);
    fields.address = PhysicalAddress{0};
    fields.kind = 16;
    CHECK(Pte::from_fields(fields).error() == Error::field_overflow);
    fields.kind = 0;
    fields.peer = 8;
    CHECK(Pte::from_fields(fields).error() == Error::field_overflow);
    fields.peer = 0;
    fields.valid = false;
    fields.pcf = PtePcf::from_value(4).value();
    CHECK(Pte::from_fields(fields).error() == Error::invalid_argument);
    fields.pcf = PtePcf::from_value(3).value();
    CHECK(Pte::from_fields(fields).value().state() == PteState::no_valid_4k);
    fields.aperture = Aperture::invalid;
    CHECK(Pte::from_fields(fields).error() == Error::invalid_aperture);
    CHECK(Pte::map({.peer = 2}).error() == Error::conflicting_fields);
}

TEST_CASE("v3 PDE: PCF per aperture, sparse, and nouveau's pointer choices")
{
    CHECK(Pde::sparse().raw() == 0x8);
    CHECK(Pde::sparse().state() == PdeState::sparse);
    CHECK(Pde::from_raw(0x10).state() == PdeState::invalid);  // INVALID_ATS_NOT_ALLOWED
    CHECK(Pde::from_raw(0x18).state() == PdeState::sparse);   // SPARSE_ATS_NOT_ALLOWED
    auto vram = Pde::point_to({Aperture::video, PhysicalAddress{0x123000}}).value();
    CHECK(vram.raw() == (0x2 | (2u << 3) | 0x123000));  // VALID_CACHED_ATS_NOT_ALLOWED
    auto coherent = Pde::point_to({Aperture::system_coherent, PhysicalAddress{0x1000}}).value();
    CHECK(coherent.fields().pcf.value() == 1);  // VALID_UNCACHED_ATS_ALLOWED
    auto noncoherent =
        Pde::point_to({Aperture::system_noncoherent, PhysicalAddress{0x1000}}).value();
    CHECK(noncoherent.fields().pcf.value() == 0);
    CHECK(PdePcf::from_value(4).error() == Error::invalid_argument);
    CHECK(
        Pde::from_fields({Aperture::video, PdePcf::from_raw_bits(4), PhysicalAddress{0}}).error() ==
        Error::invalid_argument);
    CHECK(Pde::from_fields({Aperture::invalid, {}, PhysicalAddress{0x1000}}).error() ==
          Error::conflicting_fields);
    CHECK(Pde::point_to({Aperture::peer, PhysicalAddress{0}}).error() == Error::invalid_aperture);
    CHECK(Pde::point_to({Aperture::video, PhysicalAddress{u64{1} << 52}}).error() ==
          Error::field_overflow);
    CHECK(Pde::from_raw(0x1).is_pte());
    CHECK(Pde::from_raw(u64{1} << 60).undefined_bits() == (u64{1} << 60));
}

TEST_CASE("v3 dual PDE: big half shift 8, small half in the high qword")
{
    CHECK(DualPde::sparse().low() == 0x8);
    CHECK(DualPde::sparse().high() == 0);
    auto dual = DualPde::point_to({Aperture::video, PhysicalAddress{0x4300}},
                                  {Aperture::system_coherent, PhysicalAddress{0x8000}})
                    .value();
    CHECK(dual.low() == (0x2 | (2u << 3) | 0x4300));
    CHECK(dual.high() == (0x4 | (1u << 3) | 0x8000));
    CHECK(dual.big_pointer() == TablePointer{Aperture::video, PhysicalAddress{0x4300}});
    CHECK(dual.small_pointer() == TablePointer{Aperture::system_coherent, PhysicalAddress{0x8000}});
    CHECK(DualPde::point_to({Aperture::video, PhysicalAddress{0x4380}}, {}).error() ==
          Error::misaligned);
    DualPdeFields bad;
    bad.big.pcf = PdePcf::from_flags(true, false);  // sparse
    bad.small = {Aperture::video, {}, PhysicalAddress{0x1000}};
    CHECK(DualPde::from_fields(bad).error() == Error::conflicting_fields);
    auto page = DualPde::from_pte(Pte::map({.address = PhysicalAddress{0x400000}}).value());
    CHECK(page.is_pte());
    CHECK(page.as_pte().state() == PteState::valid);
}

TEST_CASE("a default TablePointer means no table, in both formats")
{
    CHECK(TablePointer{}.aperture == Aperture::invalid);
    auto v3 = DualPde::point_to({}, {Aperture::video, PhysicalAddress{0x3000}}).value();
    CHECK(v3.low() == 0);
    CHECK(v3.big_pointer().aperture == Aperture::invalid);
    auto v2 = mmu_v2::DualPde::point_to({Aperture::video, PhysicalAddress{0x100}}, {}).value();
    CHECK(v2.high() == 0);
    CHECK(v2.small_pointer().aperture == Aperture::invalid);
    CHECK(Pde::point_to({}).error() == Error::invalid_aperture);
}
