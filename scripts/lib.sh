# Shared by scripts/test, scripts/demo and .ci/run: install what the build needs.
# ensure_packages PKG...: installs the missing ones with apt when run as root; otherwise
# prints the exact apt line and exits 1.
ensure_packages() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]} == 0)) && return 0
  local line="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]}" >&2
    echo "run as root: $line" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The packages a plain build with tests, benchmarks and examples needs.
# (librsvg2-bin: rsvg-convert, which the tool tests render every SVG picture with)
build_packages=(meson ninja-build g++ pkg-config cmake doctest-dev libbenchmark-dev librsvg2-bin)
# What the libFuzzer targets of fuzz/ need beyond that: clang and its runtime (libFuzzer,
# ASan, UBSan).
fuzz_packages=(clang libclang-rt-dev)

# configure_once DIR [meson setup args...]: sets up DIR unless it is already configured.
configure_once() {
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then return 0; fi
  meson setup "$dir" "$@"
}
