#!/usr/bin/env bash
# gpummu-decode's command-line interface, as scripts use it: decode text and JSON, encode,
# the encode -> decode round trip, and exit status 2 with a message for every kind of bad
# input.
set -u
tool=${1:?usage: test_decode_cli.sh PATH_TO_gpummu-decode}
passed=0 failed=0

expect_output() {  # expect_output NAME EXPECTED -- ARGS...
  local name=$1 expected=$2; shift 3
  local out rc
  out=$("$tool" "$@" 2>&1); rc=$?
  if [ $rc -eq 0 ] && [ "$out" = "$expected" ]; then passed=$((passed+1))
  else failed=$((failed+1)); printf 'FAIL %s: rc=%s\n  got:      %s\n  expected: %s\n' "$name" "$rc" "$out" "$expected"; fi
}
expect_contains() {  # expect_contains NAME NEEDLE -- ARGS...
  local name=$1 needle=$2; shift 3
  local out rc
  out=$("$tool" "$@" 2>&1); rc=$?
  if [ $rc -eq 0 ] && [[ "$out" == *"$needle"* ]]; then passed=$((passed+1))
  else failed=$((failed+1)); printf 'FAIL %s: rc=%s, %q not in:\n%s\n' "$name" "$rc" "$needle" "$out"; fi
}
expect_error() {  # expect_error NAME STDERR_NEEDLE -- ARGS...  (exit 2, empty stdout)
  local name=$1 needle=$2; shift 3
  local out err rc errfile
  errfile=$(mktemp)
  out=$("$tool" "$@" 2>"$errfile"); rc=$?
  err=$(cat "$errfile"); rm -f "$errfile"
  if [ $rc -eq 2 ] && [ -z "$out" ] && [[ "$err" == *"$needle"* ]]; then passed=$((passed+1))
  else failed=$((failed+1)); printf 'FAIL %s: rc=%s stdout=%q stderr=%q (wanted %q)\n' "$name" "$rc" "$out" "$err" "$needle"; fi
}

# Decoding.
expect_output v2-pte-json '{"valid":true,"aperture":"vram","volatile":false,"encrypted":false,"privileged":false,"read_only":false,"atomic_disable":false,"address":"0x1000","peer":0,"comptagline":0,"kind":6,"state":"valid"}' \
  -- --mmu v2 --entry pte --json 0x0600000000000101
expect_output v3-sparse-json '{"valid":false,"aperture":"vram","pcf":1,"uncached":false,"privileged":false,"read_only":false,"atomic_disable":false,"access_counting_disabled":false,"kind":0,"address":"0x0","peer":0,"state":"sparse"}' \
  -- --mmu v3 --entry pte --json 8
expect_contains v2-nv4k-text 'state                     no_valid_4k' -- --mmu v2 --entry pte 0x20
expect_contains v3-pde-text 'ats_disabled              yes' -- --mmu v3 --entry pde 0x5012
expect_contains dual-json '"small":{"aperture":"vram"' -- --mmu v3 --entry dual-pde --json 0x0 0x5002
expect_contains undefined-bits-warning 'undefined are set: 0x0080000000000000' -- --mmu v3 --entry pte 0x80000000000000

# Encoding.
expect_output v2-encode 0x0600000000000101 -- --mmu v2 --entry pte --encode valid=1,aperture=vram,address=0x1000,kind=6
expect_output v3-encode-flags 0x0000000000001021 -- --mmu v3 --entry pte --encode valid=1,read_only=1,address=0x1000
expect_output v3-encode-nv4k 0x0000000000000018 -- --mmu v3 --entry pte --encode state=no_valid_4k
expect_output dual-encode '0x0000000000000012 0x0000000000000102' -- --mmu v2 --entry dual-pde --encode big.aperture=vram,big.address=0x100,small.aperture=vram,small.address=0x1000
expect_output pde-sparse 0x0000000000000008 -- --mmu v2 --entry pde --encode state=sparse

# Round trip through both directions for a handful of words.
for word in 0xe000000012345f01 0x00000000000001f5 0x00000000deadb00f 0x8; do
  json=$("$tool" --mmu v3 --entry pte --json "$word")
  pairs=$(printf '%s' "$json" | sed -e 's/[{}"]//g' -e 's/,\(uncached\|privileged\|read_only\|atomic_disable\|access_counting_disabled\):[a-z]*//g' -e 's/:/=/g')
  again=$("$tool" --mmu v3 --entry pte --encode "$pairs")
  if [ "$((again))" = "$((word))" ]; then passed=$((passed+1)); else failed=$((failed+1)); echo "FAIL round trip $word -> $pairs -> $again"; fi
done

# Bad input: message on stderr naming the problem, exit 2.
expect_error unknown-key "key 'colour'" -- --mmu v2 --entry pte --encode colour=red
expect_error unknown-key-says-so "unknown key" -- --mmu v2 --entry pte --encode colour=red
expect_error out-of-range "value is wider than the entry field" -- --mmu v3 --entry pte --encode kind=16
expect_error misaligned "key 'address'" -- --mmu v2 --entry pte --encode address=0x1800
expect_error misaligned-name "misaligned" -- --mmu v2 --entry pte --encode address=0x1800
expect_error lacking-field "field_not_in_format" -- --mmu v2 --entry pte --encode pcf=1
expect_error pcf-and-flag "conflicting_fields" -- --mmu v3 --entry pte --encode pcf=1,read_only=1
expect_error dual-half "key 'big.address'" -- --mmu v2 --entry dual-pde --encode big.aperture=vram,big.address=0x80
expect_error bad-version "unknown MMU version" -- --mmu v4 --entry pte 0
expect_error bad-kind "unknown entry kind" -- --mmu v2 --entry ptx 0
expect_error missing-mmu "--mmu" -- --entry pte 0
expect_error bad-hex "not a hex word" -- --mmu v2 --entry pte 0xZZ
expect_error too-long "not a 64-bit hex word" -- --mmu v2 --entry pte 0x11112222333344445
expect_error dual-needs-two "two hex words" -- --mmu v2 --entry dual-pde 0x8
expect_error extra-word "exactly one hex word" -- --mmu v2 --entry pte 0x8 0x9
expect_error malformed-pair "expected KEY=VALUE" -- --mmu v2 --entry pte --encode valid
expect_error unknown-option "unknown option" -- --mmu v2 --entry pte --frobnicate 0

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
