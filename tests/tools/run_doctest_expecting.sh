#!/usr/bin/env bash
# Runs a doctest binary and fails unless it passed and ran at least MIN_CASES test cases: a
# binary whose test cases were not linked in (a static library's object that nothing
# references) reports success on zero cases.
set -u
binary=${1:?usage: run_doctest_expecting.sh BINARY MIN_CASES}
min_cases=${2:?usage: run_doctest_expecting.sh BINARY MIN_CASES}
output=$("$binary" --no-version 2>&1); status=$?
echo "$output"
[ "$status" -eq 0 ] || exit "$status"
ran=$(sed -nE 's/.*test cases: *([0-9]+) \|.*/\1/p' <<<"$output" | tail -n 1)
if [ -z "$ran" ] || [ "$ran" -lt "$min_cases" ]; then
  echo "FAIL: $binary ran ${ran:-no} test cases, expected at least $min_cases"; exit 1
fi
