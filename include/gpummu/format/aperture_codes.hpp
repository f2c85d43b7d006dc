// gpummu/format/aperture_codes.hpp: hardware codes of the 2-bit APERTURE fields.
//
// MMU v2 and v3 use the same codes (Turing and Hopper dev_mmu.h), but PTEs and PDEs differ:
//
//     code   PTE aperture              PDE aperture (where the next table lives)
//     0      video memory              invalid (no next level; PCF/VOL say sparse or not)
//     1      peer video memory         video memory
//     2      system memory, coherent   system memory, coherent
//     3      system memory, non-coh.   system memory, non-coherent
//
// A PTE cannot say "invalid" through its aperture (VALID does that) and a PDE cannot point
// to a peer. The encoders return Error::invalid_aperture for those.
#pragma once

#include "gpummu/core/result.hpp"
#include "gpummu/core/types.hpp"

namespace gpummu::aperture_codes {

[[nodiscard]] constexpr Result<u64> pte_code(Aperture aperture) noexcept
{
    switch (aperture) {
    case Aperture::video: return u64{0};
    case Aperture::peer: return u64{1};
    case Aperture::system_coherent: return u64{2};
    case Aperture::system_noncoherent: return u64{3};
    case Aperture::invalid: break;
    }
    return failure(Error::invalid_aperture);
}

[[nodiscard]] constexpr Aperture pte_aperture(u64 code) noexcept
{
    constexpr Aperture table[4] = {Aperture::video, Aperture::peer, Aperture::system_coherent,
                                   Aperture::system_noncoherent};
    return table[code & 3];
}

[[nodiscard]] constexpr Result<u64> pde_code(Aperture aperture) noexcept
{
    switch (aperture) {
    case Aperture::invalid: return u64{0};
    case Aperture::video: return u64{1};
    case Aperture::system_coherent: return u64{2};
    case Aperture::system_noncoherent: return u64{3};
    case Aperture::peer: break;
    }
    return failure(Error::invalid_aperture);
}

[[nodiscard]] constexpr Aperture pde_aperture(u64 code) noexcept
{
    constexpr Aperture table[4] = {Aperture::invalid, Aperture::video, Aperture::system_coherent,
                                   Aperture::system_noncoherent};
    return table[code & 3];
}

}  // namespace gpummu::aperture_codes
