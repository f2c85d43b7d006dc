#!/usr/bin/env bash
# gpummu-replay's interface: the JSON lines of the documented examples on both formats,
# exit status 1 for failing lines (which change nothing), 2 for malformed scripts and
# arguments (nothing runs, stdout stays empty), --image, address spaces (space, destroy),
# replace / partial unmap / protect / mappings / stats, jobs that take effect whole or not
# at all, and a v2-versus-v3 cross-check of every translation on a generated script.
set -u
tool=${1:?usage: test_replay_cli.sh PATH_TO_gpummu-replay}
passed=0 failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

check() {  # check NAME CONDITION_RESULT DETAIL
  if [ "$2" = 0 ]; then passed=$((passed+1)); else failed=$((failed+1)); printf 'FAIL %s\n%s\n' "$1" "$3"; fi
}
run() {  # run MMU SCRIPT [ARGS...] -> $out, $rc, $err
  local mmu=$1 script=$2; shift 2
  out=$(printf '%b' "$script" | "$tool" --mmu "$mmu" --vram 0x1000000 "$@" 2>"$work/err"); rc=$?
  err=$(cat "$work/err")
}

script='# a 2 MiB page, a conflict, a split by unmap\n'
script+='map 0x40000000 0x10000000 0x200000\n'
script+='translate 0x40001234\n'
script+='map 0x40000000 0 0x1000\n'
script+='unmap 0x40000000 0x1000\n'
script+='translate 0x40000000\n'
script+='translate 0x40001000\n'
script+='translate 0x40010000\n'
script+='sparse 0x80000000 0x10000\n'
script+='map 0x80000000 0x5000 0x1000 ro aperture=sys_coherent kind=6\n'
script+='translate 0x80000000\n'
script+='sparse 0x80000000 0x1000\n'
script+='unmap 0x80000000 0x1000\n'
script+='translate 0x80000000\n'
script+='translate 0x80001000  # comment\n'
script+='unmap 0x90000000 0x1000\n'
script+='map 0x100000000 0x20000000 0x20000000 page=512m\n'
script+='translate 0x110000000\n'
script+='map 0x200000000 0x20000 0x10000 page=2m\n'
expected='{"va":"0x40001234","state":"mapped","pa":"0x10001234","page_size":2097152,"aperture":"vram","read_only":false}
{"line":4,"error":"already_mapped","va":"0x40000000"}
{"va":"0x40000000","state":"unmapped"}
{"va":"0x40001000","state":"mapped","pa":"0x10001000","page_size":4096,"aperture":"vram","read_only":false}
{"va":"0x40010000","state":"mapped","pa":"0x10010000","page_size":65536,"aperture":"vram","read_only":false}
{"va":"0x80000000","state":"mapped","pa":"0x5000","page_size":4096,"aperture":"sys_coherent","read_only":true}
{"line":12,"error":"already_mapped","va":"0x80000000"}
{"va":"0x80000000","state":"sparse"}
{"va":"0x80001000","state":"sparse"}
{"line":16,"error":"not_mapped","va":"0x90000000"}
{"va":"0x110000000","state":"mapped","pa":"0x30000000","page_size":536870912,"aperture":"vram","read_only":false}
{"line":19,"error":"misaligned","va":"0x200000000"}'
for mmu in v2 v3; do
  run $mmu "$script" --vram 0x40000000  # the physical addresses lie below 1 GiB
  body=$(printf '%s\n' "$out" | head -n -2)
  space_line=$(printf '%s\n' "$out" | tail -n 2 | head -n 1)
  summary=$(printf '%s\n' "$out" | tail -n 1)
  [ "$body" = "$expected" ] && [ $rc -eq 1 ]; check "$mmu-example" $? "rc=$rc got:
$body"
  [[ "$space_line" =~ ^\{\"space\":\"main\",\"pdb\":\"0x[0-9a-f]+\",\"tables\":[0-9]+,\"table_bytes\":[0-9]+\}$ ]]
  check "$mmu-space-line" $? "$space_line"
  [[ "$summary" =~ ^\{\"pdb\":\"0x[0-9a-f]+\",\"tables\":[0-9]+,\"table_bytes\":[0-9]+,\"tlb_invalidations\":6,\"vram_free\":[0-9]+\}$ ]]
  check "$mmu-summary" $? "$summary"
  # The same mapping past the end of a 16 MiB VRAM fails.
  run $mmu 'map 0x40000000 0x10000000 0x200000\nmap 0x40000000 0xE00000 0x200000\n'
  [ $rc -eq 1 ] && [[ "$out" == '{"line":1,"error":"out_of_range","va":"0x40000000"}'* ]] && [ "$(printf '%s\n' "$out" | grep -c '"line"')" = 1 ]
  check "$mmu-past-vram" $? "rc=$rc $out"
done

# A clean script exits 0; unmapping everything leaves only the root, and every table
# page is free again but the root's.
run v3 'map 0x40000000 0x0 0x1000\nunmap 0x40000000 0x1000\n'
[ $rc -eq 0 ] && [[ "$out" == *'"tables":1,"table_bytes":4096,"tlb_invalidations":2,"vram_free":16773120}' ]]
check reclaim $? "rc=$rc $out"

# Bind-job lines: replace, partial unmap, protect, mappings, jobs that take effect whole
# or not at all, a second space, destroy (and lines failing while the current space is
# destroyed), clear_sparse, stats. Table pages are all the shared VRAM gives out, so the
# final vram_free is --vram minus the live spaces' table bytes.
script=''
script+='map 0x40000000 0x100000 0x10000\n'
script+='map 0x40004000 0x300000 0x2000 replace\n'
script+='map 0x40008000 0 0x1000\n'
script+='mappings\n'
script+='unmap 0x4000E000 0x4000\n'
script+='unmap 0x4000E000 0x2000\n'
script+='protect 0x40000000 0x2000 ro\n'
script+='protect 0x40020000 0x1000 ro\n'
script+='translate 0x40001000\n'
script+='translate 0x40005000\n'
script+='mappings\n'
script+='job\n'
script+='map 0x50000000 0x200000 0x1000\n'
script+='map 0x50001000 0x201000 0x1000\n'
script+='unmap 0x50005000 0x1000\n'
script+='map 0x50006000 0x0 0x1000\n'
script+='end\n'
script+='translate 0x50000000\n'
script+='job\n'
script+='map 0x50000000 0x200000 0x2000\n'
script+='protect 0x50000000 0x1000 ro\n'
script+='end\n'
script+='translate 0x50000000\n'
script+='space other\n'
script+='map 0x40000000 0x400000 0x1000\n'
script+='translate 0x40000000\n'
script+='space main\n'
script+='translate 0x40000000\n'
script+='destroy other\n'
script+='space other\n'
script+='translate 0x40000000\n'
script+='destroy other\n'
script+='translate 0x40000000\n'
script+='map 0x40000000 0 0x1000\n'
script+='space main\n'
script+='sparse 0x60000000 0x4000\n'
script+='clear_sparse 0x60001000 0x1000\n'
script+='translate 0x60000000\n'
script+='translate 0x60001000\n'
script+='stats\n'
expected='{"line":3,"error":"already_mapped","va":"0x40008000"}
{"mappings":[{"va":"0x40000000","size":16384,"pa":"0x100000","read_only":false},{"va":"0x40004000","size":8192,"pa":"0x300000","read_only":false},{"va":"0x40006000","size":40960,"pa":"0x106000","read_only":false}]}
{"line":5,"error":"not_mapped","va":"0x4000e000"}
{"line":8,"error":"not_mapped","va":"0x40020000"}
{"va":"0x40001000","state":"mapped","pa":"0x101000","page_size":4096,"aperture":"vram","read_only":true}
{"va":"0x40005000","state":"mapped","pa":"0x301000","page_size":4096,"aperture":"vram","read_only":false}
{"mappings":[{"va":"0x40000000","size":8192,"pa":"0x100000","read_only":true},{"va":"0x40002000","size":8192,"pa":"0x102000","read_only":false},{"va":"0x40004000","size":8192,"pa":"0x300000","read_only":false},{"va":"0x40006000","size":32768,"pa":"0x106000","read_only":false}]}
{"line":15,"error":"not_mapped","va":"0x50005000"}
{"va":"0x50000000","state":"unmapped"}
{"va":"0x50000000","state":"mapped","pa":"0x200000","page_size":4096,"aperture":"vram","read_only":true}
{"va":"0x40000000","state":"mapped","pa":"0x400000","page_size":4096,"aperture":"vram","read_only":false}
{"va":"0x40000000","state":"mapped","pa":"0x100000","page_size":4096,"aperture":"vram","read_only":true}
{"va":"0x40000000","state":"unmapped"}
{"line":33,"error":"not_allocated","va":"0x40000000"}
{"line":34,"error":"not_allocated","va":"0x40000000"}
{"va":"0x60000000","state":"sparse"}
{"va":"0x60001000","state":"unmapped"}'
for mmu in v2 v3; do
  run $mmu "$script"
  body=$(printf '%s\n' "$out" | head -n 17)
  stats=$(printf '%s\n' "$out" | sed -n 18p)
  space_line=$(printf '%s\n' "$out" | sed -n 19p)
  summary=$(printf '%s\n' "$out" | sed -n 20p)
  table_bytes=$(printf '%s' "$space_line" | sed -n 's/.*"table_bytes":\([0-9]*\)}/\1/p')
  free=$(printf '%s' "$summary" | sed -n 's/.*"vram_free":\([0-9]*\)}/\1/p')
  [ "$body" = "$expected" ] && [ $rc -eq 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 20 ] &&
    [[ "$space_line" == '{"space":"main",'* ]] && [ -n "$table_bytes" ] &&
    [ $((table_bytes + free)) = 16777216 ] && [ "$stats" = "{\"vram_free\":$free}" ] &&
    [[ "$summary" == *'"tlb_invalidations":9,'* ]]
  check "$mmu-bind-lines" $? "rc=$rc got:
$out"
done

# Spaces in creation order at the end; with main destroyed the summary is the first live
# space's; with none live, zeros and all VRAM free.
run v3 'space b\nmap 0x1000 0x1000 0x1000\nspace a\ndestroy main\nspace main\nspace c\ndestroy c\n'
pdb_b=$(printf '%s\n' "$out" | sed -n 's/^{"space":"b","pdb":"\(0x[0-9a-f]*\)".*/\1/p')
[ $rc -eq 0 ] && [ "$(printf '%s\n' "$out" | head -n 3 | sed 's/,"pdb.*//')" = '{"space":"b"
{"space":"a"
{"space":"main"' ] && [ -n "$pdb_b" ] && [ "$(printf '%s\n' "$out" | wc -l)" = 4 ]
check spaces-in-creation-order $? "rc=$rc $out"
run v2 'space b\nmap 0x1000 0x1000 0x1000\ndestroy main\n'
pdb_b=$(printf '%s\n' "$out" | sed -n 's/^{"space":"b","pdb":"\(0x[0-9a-f]*\)".*/\1/p')
[ $rc -eq 0 ] && [[ "$(printf '%s\n' "$out" | tail -n 1)" == "{\"pdb\":\"$pdb_b\","* ]]
check main-destroyed $? "rc=$rc $out"
run v2 'map 0x1000 0x1000 0x1000\ndestroy main\ntranslate 0x1000\nstats\n'
[ $rc -eq 1 ] && [ "$out" = '{"line":3,"error":"not_allocated","va":"0x1000"}
{"vram_free":16777216}
{"pdb":"0x0","tables":0,"table_bytes":0,"tlb_invalidations":2,"vram_free":16777216}' ]
check none-live $? "rc=$rc $out"
run v2 'destroy nothing\n'
[ $rc -eq 1 ] && [[ "$out" == '{"line":1,"error":"not_allocated"}'* ]]
check destroy-unknown $? "rc=$rc $out"
# A job whose range does not form (wraps) fails at that line and runs nothing.
run v2 'job\nmap 0x1000 0x1000 0x1000\nunmap 0xFFFFFFFFFFFFF000 0x2000\nend\ntranslate 0x1000\n'
[ $rc -eq 1 ] && [[ "$out" == '{"line":3,"error":"'*'"}
{"va":"0x1000","state":"unmapped"}'* ]]
check job-bad-range $? "rc=$rc $out"

# A range whose worst-case tables exceed what VRAM could ever hold (found by fuzzing: the
# reserve's storage was sized from it and could not be allocated) fails as a whole job.
run v3 'sparse 0x1000 0x1ffffff000e000\nmap 0x1000 0x1000 0x1000\n'
[ $rc -eq 1 ] && [[ "$out" == '{"line":1,"error":"out_of_storage","va":"0x1000"}'* ]]
check huge-range-reserve $? "rc=$rc $out"

# Malformed: exit 2, message on stderr, nothing on stdout (nothing ran).
for bad in 'frobnicate 1' 'map 0x1000 0x1000' 'map 0x1000 0 0x1000 page=3k' 'map 1 2 3 aperture=x' \
           'translate zz' 'unmap 1 2 3' 'map 1 2 3 kind=256' 'translate 0x1g' \
           'translate 99999999999999999999999' 'translate 0x40000000\nbogus' \
           'job\nmap 0x1000 0 0x1000' 'end' 'job\njob\nend' 'job\ntranslate 0\nend' \
           'job\nspace a\nend' 'space' 'space a b' 'space a"b' 'destroy' 'protect 0 0x1000 frob' \
           'mappings 1' 'stats x' 'map 1 2 3 replace=1' 'clear_sparse 1'; do
  run v2 "$bad"
  [ $rc -eq 2 ] && [ -z "$out" ] && [ -n "$err" ]; check "malformed: $bad" $? "rc=$rc out=$out err=$err"
done
out=$("$tool" --mmu v4 </dev/null 2>/dev/null); rc=$?; [ $rc -eq 2 ]; check bad-mmu $? "rc=$rc"
out=$("$tool" </dev/null 2>/dev/null); rc=$?; [ $rc -eq 2 ]; check missing-mmu $? "rc=$rc"
out=$("$tool" --mmu v2 --vram 12345 </dev/null 2>/dev/null); rc=$?; [ $rc -eq 2 ]; check bad-vram $? "rc=$rc"
out=$("$tool" --mmu v2 --frob </dev/null 2>/dev/null); rc=$?; [ $rc -eq 2 ]; check bad-arg $? "rc=$rc"

# --image: the VRAM bytes, with the root's first entry pointing somewhere.
run v2 'map 0x40000000 0x100000 0x1000\n' --image "$work/image.bin"
size=$(stat -c %s "$work/image.bin" 2>/dev/null || echo 0)
pdb=$(printf '%s\n' "$out" | tail -n 1 | sed -n 's/.*"pdb":"\(0x[0-9a-f]*\)".*/\1/p')
root_word=$(od -An -tx8 -j $((pdb)) -N 8 "$work/image.bin" | tr -d ' ')
[ $rc -eq 0 ] && [ "$size" = 16777216 ] && [ -n "$root_word" ] && [ "$root_word" != 0000000000000000 ]
check image $? "rc=$rc size=$size pdb=$pdb root=$root_word"

# v2 and v3 agree on every translation of a generated script (same errors too).
RANDOM=4242
gen=''
for i in $(seq 1 400); do
  va=$(( 0x40000000 + (RANDOM % 64) * 0x10000 + (RANDOM % 4) * 0x200000 ))
  size=$(( (1 + RANDOM % 40) * 0x1000 ))
  case $((RANDOM % 5)) in
    0|1) gen+="map $va $(( (RANDOM % 256) * 0x10000 )) $size\n" ;;
    2) gen+="unmap $va $size\n" ;;
    3) gen+="sparse $va $size\n" ;;
    4) gen+="translate $(( va + RANDOM % size ))\n" ;;
  esac
done
for i in $(seq 0 255); do gen+="translate $(( 0x40000000 + i * 0x8000 ))\n"; done
run v2 "$gen"; out2=$(printf '%s\n' "$out" | grep -v '"pdb"'); rc2=$rc
run v3 "$gen"; out3=$(printf '%s\n' "$out" | grep -v '"pdb"'); rc3=$rc
lines=$(printf '%s\n' "$out2" | grep -c '"state":"mapped"')
[ "$out2" = "$out3" ] && [ $rc2 = $rc3 ] && [ "$lines" -gt 20 ]
check v2-equals-v3 $? "$(diff <(echo "$out2") <(echo "$out3") | head -5) mapped=$lines"

echo "replay cli: $passed passed, $failed failed"
[ $failed -eq 0 ]
