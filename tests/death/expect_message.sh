#!/usr/bin/env bash
# Runs tests/death/result_on_error.cpp's program in each mode: the control exits 0, every
# misuse stops the program (a signal, not an exit status) after printing what went wrong and
# where to stderr.
set -u
program=$1
source=$2  # the program's source: the lines marked `mark:value` and `mark:error`
line_of() { grep -n "mark:$1" "$source" | cut -d: -f1; }
fail=0
expect() {  # mode, then the patterns stderr must hold
    local mode=$1
    shift
    local err status
    err=$("$program" "$mode" 2>&1 >/dev/null)
    status=$?
    if [ "$status" -lt 128 ]; then
        echo "FAIL $mode: exit status $status, expected the program to stop on a signal"
        fail=1
    fi
    for pattern in "$@"; do
        if ! grep -qE -- "$pattern" <<<"$err"; then
            echo "FAIL $mode: stderr lacks /$pattern/:"
            echo "$err"
            fail=1
        fi
    done
}
"$program" control || { echo "FAIL control: exit $?"; fail=1; }
expect value 'value\(\) of a Result that holds error out_of_memory' "called at .*result_on_error\.cpp:$(line_of value) in .*main"
expect deref 'operator\* of a Result that holds error out_of_memory' 'called from code address 0x[0-9a-f]+'
expect arrow 'operator-> of a Result that holds error out_of_memory' 'called from code address'
expect error 'error\(\) of a Result that holds a value' "result_on_error\.cpp:$(line_of error) in"
[ "$fail" -eq 0 ] && echo "all modes stop with their message"
exit "$fail"
