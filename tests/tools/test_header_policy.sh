#!/usr/bin/env bash
# Core headers (everything under include/gpummu except the POSIX backend hw/pci_bar.hpp)
# must not use iostream, heap containers, operator new, malloc, exceptions or RTTI.
set -u
root=${1:?usage: test_header_policy.sh INCLUDE_DIR}
fail=0
pattern='#include <(iostream|ostream|istream|sstream|fstream|vector|string|map|unordered_map|list|deque|set|functional|any|regex|thread|mutex)>|\bnew\b|\bmalloc\b|\bthrow\b|\btry\b|\bcatch\b|\btypeid\b|\bdynamic_cast\b|\bstatic [a-z_:<>]+ [a-z_]+ *(=|;)'
while IFS= read -r file; do
  case "$file" in */hw/pci_bar.hpp) continue ;; esac
  # Comments are prose: strip // comments before matching.
  if sed 's://.*$::' "$file" | grep -nE "$pattern" >/tmp/policy.$$ 2>/dev/null; then
    echo "FAIL: $file breaks the core-header policy:"; sed 's/^/  /' /tmp/policy.$$; fail=1
  fi
done < <(find "$root/gpummu" -name '*.hpp' | sort)
rm -f /tmp/policy.$$
count=$(find "$root/gpummu" -name '*.hpp' | wc -l)
[ "$count" -gt 0 ] || { echo "FAIL: no headers found under $root"; exit 1; }
[ $fail -eq 0 ] && echo "ok: $count headers follow the policy"
exit $fail
