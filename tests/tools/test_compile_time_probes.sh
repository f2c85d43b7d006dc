#!/usr/bin/env bash
# test_compile_time_probes.sh INCLUDE_DIR PROBE_DIR COMPILER [ARGS...]
# The compile-time probes (PROBE_DIR/*.cpp, bench/compile_time/, timed by hand: see
# docs/consuming.md) are not built by meson; this keeps every one of them compiling,
# warning-free, as the headers change: -fsyntax-only (templates are still instantiated),
# each on its own.
set -u
include=$1 probe_dir=$2
shift 2
shopt -s nullglob
probes=("$probe_dir"/*.cpp)
[ ${#probes[@]} -gt 0 ] || { echo "FAIL: no probes in $probe_dir"; exit 1; }
status=0
for probe in "${probes[@]}"; do
  if "$@" -std=c++20 -fsyntax-only -Wall -Wextra -Wpedantic -Werror -I "$include" "$probe"; then
    echo "ok: $probe"
  else
    echo "FAIL: $probe"; status=1
  fi
done
exit $status
