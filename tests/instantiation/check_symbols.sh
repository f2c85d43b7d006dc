#!/usr/bin/env bash
# The translation unit that declares the address spaces and the page table `extern template`
# must compile none of their work: no definition of their out-of-class members (map,
# release, ...) or of the private functions behind them, only references to them (defined in
# definitions.cpp). Small members defined in the class (create, translate, stats) may be
# compiled there when not inlined (-O0, -Og).
set -u
archive=${1:?usage: check_symbols.sh LIBRARY_OF_THE_USER_TU}
symbols=$(nm -C "$archive") || { echo "FAIL: nm $archive"; exit 1; }
work='gpummu::(AddressSpace|PageTable)<[^(]*>::(create_impl|with_root|map|map_fixed|prepare_map|commit|unmap|release|release_root|destroy|check_invariants|run_prepare|run_commit|change)\('
defined=$(grep -E '^[0-9a-f]+ [TtWw] ' <<<"$symbols" | grep -E "$work")
if [ -n "$defined" ]; then
  echo "FAIL: the extern-declared TU defines address-space work:"; echo "$defined" | head; exit 1
fi
for member in AddressSpace::map AddressSpace::release AddressSpace::destroy PageTable::map \
              PageTable::unmap PageTable::release_root; do
  pattern=" U gpummu::${member%%::*}<gpummu::MmuV[23][^(]*>::${member##*::}\\("
  if ! grep -qE "$pattern" <<<"$symbols"; then
    echo "FAIL: no reference to $member (is the test using it?)"; exit 1
  fi
done
echo "ok: AddressSpace and PageTable work referenced, not compiled, in $archive"
