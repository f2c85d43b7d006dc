#!/usr/bin/env bash
# expect_compile_failure.sh REGEX SOURCE INCLUDE_DIR COMPILER [ARGS...]
# Passes when SOURCE fails to compile with a diagnostic matching REGEX, and the same source
# compiles with -DGPUMMU_COMPILE_FAIL_CONTROL (proving the failure is the intended misuse).
set -u
regex=$1 source=$2 include=$3
shift 3
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if "$@" -std=c++20 -fsyntax-only -I "$include" -DGPUMMU_COMPILE_FAIL_CONTROL "$source" >"$log" 2>&1; then
  :
else
  echo "FAIL: control build of $source did not compile:"; cat "$log"; exit 1
fi
if "$@" -std=c++20 -fsyntax-only -I "$include" "$source" >"$log" 2>&1; then
  echo "FAIL: $source compiled but must not"; exit 1
fi
if grep -Eq "$regex" "$log"; then
  echo "ok: $source failed to compile as expected (/$regex/)"; exit 0
fi
echo "FAIL: $source failed, but no diagnostic matched /$regex/:"; cat "$log"; exit 1
