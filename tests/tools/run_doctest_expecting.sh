#!/usr/bin/env bash
# Runs a doctest binary (with --no-version and ARGS) and fails unless it passed and ran at
# least MIN_CASES test cases: a binary whose test cases were not linked in (a static
# library's object that nothing references), or a source-file filter that matches no file
# any more, reports success on zero cases.
set -u
min_cases=${1:?usage: run_doctest_expecting.sh MIN_CASES BINARY [ARGS...]}
binary=${2:?usage: run_doctest_expecting.sh MIN_CASES BINARY [ARGS...]}
shift 2
output=$("$binary" --no-version "$@" 2>&1); status=$?
echo "$output"
[ "$status" -eq 0 ] || exit "$status"
ran=$(sed -nE 's/.*test cases: *([0-9]+) \|.*/\1/p' <<<"$output" | tail -n 1)
if [ -z "$ran" ] || [ "$ran" -lt "$min_cases" ]; then
  echo "FAIL: $binary ran ${ran:-no} test cases, expected at least $min_cases"; exit 1
fi
