// MMU v2 entry codecs: golden values, every validation rule, special states.
#include <doctest/doctest.h>

#include "gpummu/format/mmu_v2.hpp"

using namespace gpummu;
using mmu_v2::DualPde;
using mmu_v2::DualPdeFields;
using mmu_v2::Pde;
using mmu_v2::PdeFields;
using mmu_v2::Pte;
using mmu_v2::PteFields;

TEST_CASE("v2 PTE golden values")
{
    CHECK(Pte::invalid().raw() == 0);
    CHECK(Pte::sparse().raw() == 0x8);
    CHECK(Pte::no_valid_4k().raw() == 0x20);
    CHECK(Pte::invalid().state() == PteState::invalid);
    CHECK(Pte::sparse().state() == PteState::sparse);
    CHECK(Pte::no_valid_4k().state() == PteState::no_valid_4k);
    // A video page at 1 GiB + 4 KiB, kind generic (6): address field = PA >> 4.
    PageAttributes attributes{.address = PhysicalAddress{0x40001000}, .kind = 6};
    CHECK(Pte::map(attributes).value().raw() == (0x0600000000000001ull | (0x40001000ull >> 4)));
}

TEST_CASE("v2 PTE fields land on the manual's bits")
{
    PteFields fields;
    fields.valid = true;
    fields.aperture = Aperture::system_noncoherent;
    fields.volatile_ = true;
    fields.privileged = true;
    fields.read_only = true;
    fields.atomic_disable = true;
    fields.address = PhysicalAddress{u64{1} << 57};
    fields.kind = 0xFF;
    u64 raw = Pte::from_fields(fields).value().raw();
    CHECK((raw & 1) == 1);
    CHECK(((raw >> 1) & 3) == 3);
    CHECK(((raw >> 3) & 1) == 1);
    CHECK(((raw >> 4) & 1) == 0);
    CHECK(((raw >> 5) & 7) == 7);
    CHECK(((raw >> 8) & ((u64{1} << 46) - 1)) == (u64{1} << 45));
    CHECK((raw >> 56) == 0xFF);

    PteFields video;
    video.valid = true;
    video.aperture = Aperture::peer;
    video.address = PhysicalAddress{0x1F'FFFF'F000};
    video.peer = 5;
    video.comptagline = 0xABCDE;
    raw = Pte::from_fields(video).value().raw();
    CHECK(((raw >> 1) & 3) == 1);
    CHECK(((raw >> 8) & 0x1FFFFFF) == 0x1FFFFFF);
    CHECK(((raw >> 33) & 7) == 5);
    CHECK(((raw >> 36) & 0xFFFFF) == 0xABCDE);
    CHECK(Pte::from_raw(raw).fields() == video);
}

TEST_CASE("v2 PTE encoder refuses what the hardware cannot hold")
{
    PteFields fields;
    fields.valid = true;
    fields.address = PhysicalAddress{0x1234};
    CHECK(Pte::from_fields(fields).error() == Error::misaligned);
    fields.address = PhysicalAddress{u64{1} << 37};
    CHECK(Pte::from_fields(fields).error() == Error::field_overflow);
    fields.address = PhysicalAddress{0};
    fields.peer = 8;
    CHECK(Pte::from_fields(fields).error() == Error::field_overflow);
    fields.peer = 0;
    fields.comptagline = 1u << 20;
    CHECK(Pte::from_fields(fields).error() == Error::field_overflow);
    fields.comptagline = 0;
    fields.aperture = Aperture::system_coherent;
    fields.peer = 1;
    CHECK(Pte::from_fields(fields).error() == Error::conflicting_fields);
    fields.peer = 0;
    fields.comptagline = 1;
    CHECK(Pte::from_fields(fields).error() == Error::conflicting_fields);
    fields.comptagline = 0;
    fields.aperture = Aperture::invalid;
    CHECK(Pte::from_fields(fields).error() == Error::invalid_aperture);
    fields.aperture = Aperture::system_coherent;
    fields.address = PhysicalAddress{u64{1} << 58};
    CHECK(Pte::from_fields(fields).error() == Error::field_overflow);
}

TEST_CASE("v2 map() refuses fields v2 lacks and peers without the peer aperture")
{
    CHECK(Pte::map({.access_counting_disabled = true}).error() == Error::field_not_in_format);
    CHECK(Pte::map({.peer = 1}).error() == Error::conflicting_fields);
    auto peer =
        Pte::map({.aperture = Aperture::peer, .address = PhysicalAddress{0x2000}, .peer = 3});
    REQUIRE(peer);
    CHECK(peer->attributes().peer == 3);
    CHECK(peer->attributes().aperture == Aperture::peer);
}

TEST_CASE("v2 PTE state decoding: VOL decides before PRIVILEGE")
{
    CHECK(Pte::from_raw(0x28).state() == PteState::sparse);  // RM's GV100 template
    CHECK(Pte::from_raw(0x20).state() == PteState::no_valid_4k);
    CHECK(Pte::from_raw(0x21).state() == PteState::valid);
    CHECK(Pte::from_raw(0x6).state() == PteState::invalid);
}

TEST_CASE("v2 undefined bits: 55:54 under a system aperture only")
{
    u64 sys_raw = 0x4 | (u64{3} << 54);
    CHECK(Pte::from_raw(sys_raw).undefined_bits() == (u64{3} << 54));
    u64 video_raw = u64{3} << 54;  // comptagline bits under a video aperture
    CHECK(Pte::from_raw(video_raw).undefined_bits() == 0);
}

TEST_CASE("v2 PDE: pointers, sparse, and the invalid-aperture rule")
{
    CHECK(Pde::invalid().raw() == 0);
    CHECK(Pde::sparse().raw() == 0x8);
    CHECK(Pde::sparse().state() == PdeState::sparse);
    auto pde = Pde::point_to({Aperture::video, PhysicalAddress{0x7000}}).value();
    CHECK(pde.raw() == (0x2 | (0x7000 >> 4)));
    CHECK(pde.state() == PdeState::valid);
    CHECK(pde.pointer() == TablePointer{Aperture::video, PhysicalAddress{0x7000}});
    CHECK_FALSE(pde.is_pte());
    CHECK(Pde::point_to({Aperture::peer, PhysicalAddress{0x1000}}).error() ==
          Error::invalid_aperture);
    CHECK(Pde::point_to({Aperture::invalid, PhysicalAddress{0}}).error() ==
          Error::invalid_aperture);
    CHECK(Pde::point_to({Aperture::video, PhysicalAddress{0x7100}}).error() == Error::misaligned);
    CHECK(Pde::from_fields({Aperture::invalid, false, false, PhysicalAddress{0x1000}}).error() ==
          Error::conflicting_fields);
    auto coherent = Pde::point_to({Aperture::system_coherent, PhysicalAddress{0x1000}}).value();
    CHECK(coherent.fields().volatile_);  // nouveau's convention for snooped tables
    PdeFields no_ats{Aperture::video, false, true, PhysicalAddress{0x3000}};
    CHECK(Pde::from_fields(no_ats).value().raw() == (0x2 | 0x20 | (0x3000 >> 4)));
    CHECK(Pde::from_fields(no_ats).value().fields() == no_ats);
    // IS_PTE at PD1: a 512 MiB PTE.
    CHECK(Pde::from_raw(0x1).is_pte());
}

TEST_CASE("v2 dual PDE: halves, address shift 8, and the sparse rule")
{
    CHECK(DualPde::sparse().low() == 0x8);
    CHECK(DualPde::sparse().high() == 0);
    CHECK(DualPde::sparse().state() == PdeState::sparse);
    CHECK(DualPde::invalid().state() == PdeState::invalid);
    auto dual = DualPde::point_to({Aperture::video, PhysicalAddress{0x10100}},
                                  {Aperture::video, PhysicalAddress{0x20000}})
                    .value();
    CHECK(dual.low() == (0x2 | (0x10100 >> 4)));  // shift 8 stored at bit 4
    CHECK(dual.high() == (0x2 | (0x20000 >> 4)));
    CHECK(dual.big_pointer().address == PhysicalAddress{0x10100});
    CHECK(dual.small_pointer().address == PhysicalAddress{0x20000});
    CHECK(dual.state() == PdeState::valid);
    // Big tables are 256-byte aligned, small ones 4 KiB.
    CHECK(DualPde::point_to({Aperture::video, PhysicalAddress{0x10080}}, {}).error() ==
          Error::misaligned);
    CHECK(DualPde::point_to({}, {Aperture::video, PhysicalAddress{0x20100}}).error() ==
          Error::misaligned);
    auto small_only =
        DualPde::point_to({Aperture::invalid, {}}, {Aperture::video, PhysicalAddress{0x3000}});
    REQUIRE(small_only);
    CHECK(small_only->low() == 0);
    // Sparse big half beside a valid small pointer is what the manual forbids.
    DualPdeFields bad;
    bad.big.volatile_ = true;
    bad.small = {Aperture::video, false, false, PhysicalAddress{0x3000}};
    CHECK(DualPde::from_fields(bad).error() == Error::conflicting_fields);
    // The small half has no NO_ATS; the big half's NO_ATS is address bit 9 once it points.
    DualPdeFields small_no_ats;
    small_no_ats.small.no_ats = true;
    CHECK(DualPde::from_fields(small_no_ats).error() == Error::field_not_in_format);
    DualPdeFields big_no_ats;
    big_no_ats.big = {Aperture::video, false, true, PhysicalAddress{0x100}};
    CHECK(DualPde::from_fields(big_no_ats).error() == Error::conflicting_fields);
    big_no_ats.big = {Aperture::invalid, false, true, PhysicalAddress{0}};
    big_no_ats.small = {Aperture::video, false, false, PhysicalAddress{0x3000}};
    auto with_no_ats = DualPde::from_fields(big_no_ats).value();
    CHECK(with_no_ats.fields() == big_no_ats);
    // A 2 MiB page: the low qword is a PTE, the high one zero.
    auto page = DualPde::from_pte(Pte::map({.address = PhysicalAddress{0x200000}}).value());
    CHECK(page.is_pte());
    CHECK(page.high() == 0);
    CHECK(page.as_pte().attributes().address == PhysicalAddress{0x200000});
}
