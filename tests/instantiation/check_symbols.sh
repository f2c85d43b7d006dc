#!/usr/bin/env bash
# The translation unit that declares the address spaces, the bind space and the page tables
# `extern template` must compile none of their work: no definition of their out-of-class
# members (map, release, prepare, ...) or of the private functions behind them, only
# references to them (defined in definitions.cpp). Small members defined in the class
# (AddressSpace::create, translate, stats) may be compiled there when not inlined (-O0, -Og),
# and so is BindSpace::commit, a member template over the caller's sink.
set -u
archive=${1:?usage: check_symbols.sh LIBRARY_OF_THE_USER_TU}
symbols=$(nm -C "$archive") || { echo "FAIL: nm $archive"; exit 1; }
work='gpummu::(AddressSpace|PageTable)<[^(]*>::(create_impl|with_root|map|map_fixed|prepare_map|commit|unmap|release|release_root|destroy|check_invariants|run_prepare|run_commit|change)\('
bind_work='gpummu::BindSpace<[^(]*>::(create|prepare|cancel|flush|destroy|job_needs|check_invariants|apply_projected|write_pages|write_changed_pages|direct_map|rebuild_projected|finish_job)\('
defined=$(grep -E '^[0-9a-f]+ [TtWw] ' <<<"$symbols" | grep -E "$work|$bind_work")
if [ -n "$defined" ]; then
  echo "FAIL: the extern-declared TU defines address-space work:"; echo "$defined" | head; exit 1
fi
for member in AddressSpace::map AddressSpace::release AddressSpace::destroy PageTable::map \
              PageTable::unmap PageTable::release_root BindSpace::create BindSpace::prepare \
              BindSpace::write_pages BindSpace::destroy; do
  pattern=" U gpummu::${member%%::*}<gpummu::MmuV[23][^(]*>::${member##*::}\\("
  if ! grep -qE "$pattern" <<<"$symbols"; then
    echo "FAIL: no reference to $member (is the test using it?)"; exit 1
  fi
done
echo "ok: AddressSpace, BindSpace and PageTable work referenced, not compiled, in $archive"
