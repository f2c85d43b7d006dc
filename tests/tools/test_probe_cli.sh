#!/usr/bin/env bash
# gpummu-probe on a fake sysfs tree whose resource0 is a 16 MiB file standing in for BAR0:
# identification output, the PRAMIN window base, unknown chips (exit 1), bad arguments
# (exit 2), no device (exit 3), and that the stand-in BAR0 is byte-for-byte unchanged.
set -u
tool=${1:?usage: test_probe_cli.sh PATH_TO_gpummu-probe}
passed=0 failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
check() { if [ "$2" = 0 ]; then passed=$((passed+1)); else failed=$((failed+1)); printf 'FAIL %s\n%s\n' "$1" "$3"; fi; }

put32() {  # put32 FILE OFFSET VALUE (little-endian)
  local v=$3
  printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((v & 255)) $(((v >> 8) & 255)) $(((v >> 16) & 255)) $(((v >> 24) & 255)))" |
    dd of="$1" bs=1 seek=$(($2)) conv=notrunc status=none
}
make_device() {  # make_device DIR BDF DRIVER BOOT0 BOOT42 WINDOW_OFFSET WINDOW_VALUE
  local d=$1/$2
  mkdir -p "$d" "$1/drivers/$3"
  echo 0x10de > "$d/vendor"; echo 0x2204 > "$d/device"; echo 0x030000 > "$d/class"
  printf '0x00000000fb000000 0x00000000fbffffff 0x0000000000140204\n0x0000000000000000 0x0000000000000000 0x0000000000000000\n0x000000e000000000 0x000000e00fffffff 0x000000000014220c\n' > "$d/resource"
  truncate -s 16M "$d/resource0"
  put32 "$d/resource0" 0 $4
  put32 "$d/resource0" 0xA00 $5
  put32 "$d/resource0" $6 $7
  ln -s "../drivers/$3" "$d/driver"
}

sys=$work/sys
mkdir -p "$sys"
make_device "$sys" 0000:01:00.0 nouveau 0x172000A1 0x172A1000 0x1700 0x10
make_device "$sys" 0000:02:00.0 nvidia 0x180000A1 0x180A1000 0x10FD40 0x20
before=$(sha256sum "$sys/0000:01:00.0/resource0" | cut -d' ' -f1)

out=$("$tool" --sysfs "$sys" 2>&1); rc=$?
[ $rc -eq 0 ] && [[ "$out" == *"device 0000:01:00.0"* ]] && [[ "$out" == *"driver nouveau"* ]] \
  && [[ "$out" == *"chip id 0x172 (from BOOT_42)"* ]] && [[ "$out" == *"architecture Ampere, MMU v2"* ]] \
  && [[ "$out" == *"base 0x100000, target VRAM"* ]] && [[ "$out" == *"BAR0 16 MiB, BAR1 (resource2) 256 MiB"* ]] \
  && [[ "$out" == *"nothing was written"* ]]
check default-device $? "rc=$rc
$out"

out=$("$tool" --sysfs "$sys" --device 0000:02:00.0 2>&1); rc=$?
[ $rc -eq 0 ] && [[ "$out" == *"architecture Hopper, MMU v3"* ]] && [[ "$out" == *"register 0x10fd40 = 0x00000020: base 0x200000"* ]] \
  && [[ "$out" != *"target"* ]]
check hopper $? "rc=$rc
$out"

after=$(sha256sum "$sys/0000:01:00.0/resource0" | cut -d' ' -f1)
[ "$before" = "$after" ]; check bar0-unchanged $? "$before != $after"

make_device "$work/volta" 0000:03:00.0 nvidia 0x140000A1 0x140A1000 0x1700 0
out=$("$tool" --sysfs "$work/volta" 2>&1); rc=$?
[ $rc -eq 1 ] && [[ "$out" == *"unknown to gpummu"* ]]; check unknown-chip $? "rc=$rc $out"

# A GPU that fell off the bus reads all-ones: said so, not taken for a chip.
make_device "$work/lost" 0000:04:00.0 nvidia 0xFFFFFFFF 0xFFFFFFFF 0x1700 0xFFFFFFFF
out=$("$tool" --sysfs "$work/lost" 2>&1); rc=$?
[ $rc -eq 3 ] && [[ "$out" == *"device lost"* ]]; check device-lost $? "rc=$rc $out"

# The resource table claims 16 MiB but the file is shorter: refused, no SIGBUS.
make_device "$work/short" 0000:05:00.0 nvidia 0x172000A1 0x172A1000 0x1700 0x10
truncate -s 4096 "$work/short/0000:05:00.0/resource0"
out=$("$tool" --sysfs "$work/short" 2>&1); rc=$?
[ $rc -eq 3 ] && [[ "$out" == *"cannot map"* ]]; check short-resource-file $? "rc=$rc $out"

mkdir -p "$work/empty"
out=$("$tool" --sysfs "$work/empty" 2>&1); rc=$?
[ $rc -eq 3 ] && [[ "$out" == *"no NVIDIA"* ]]; check no-device $? "rc=$rc $out"
out=$("$tool" --sysfs "$sys" --device 0000:09:00.0 2>&1); rc=$?
[ $rc -eq 3 ]; check missing-bdf $? "rc=$rc $out"
chmod 000 "$sys/0000:02:00.0/resource0"
if [ "$(id -u)" != 0 ]; then
  out=$("$tool" --sysfs "$sys" --device 0000:02:00.0 2>&1); rc=$?
  [ $rc -eq 3 ]; check no-permission $? "rc=$rc $out"
fi
out=$("$tool" --sysfs "$work/does-not-exist" 2>&1); rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"does-not-exist is not a directory"* ]]
check sysfs-missing $? "rc=$rc $out"
out=$("$tool" --frobnicate 2>&1); rc=$?
[ $rc -eq 2 ]; check bad-argument $? "rc=$rc"

echo "probe cli: $passed passed, $failed failed"
[ $failed -eq 0 ]
