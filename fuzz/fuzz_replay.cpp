// libFuzzer target: gpummu-replay's script parser and executor, both formats (the first
// byte picks), with the buddy and every live address space audited after every line
// (tables, both record sets, VRAM accounting: replay's `audit_each_line`). A malformed
// script must be refused by the parser (gpummu-replay exits 2 there; here it throws to this
// target), never crash it; a well-formed one runs to its summary whatever its lines do.
#define GPUMMU_REPLAY_NO_MAIN
#include "../examples/gpummu-replay.cpp"
#include "fuzz_stream.hpp"

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    // The executor prints one JSON line per translation and error: not wanted here.
    if (std::freopen("/dev/null", "w", stdout) == nullptr) std::abort();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    if (size == 0) return 0;
    const bool v2 = (data[0] & 1u) != 0;
    const std::string script(reinterpret_cast<const char *>(data) + 1, size - 1);
    std::vector<Line> lines;
    try {
        lines = parse_script(script);
    } catch (const UsageError &) {
        return 0;  // refused as malformed: what gpummu-replay reports with exit status 2
    }
    if (lines.size() > 300) return 0;  // keep each run short
    constexpr u64 vram = 16u << 20;
    const int status =
        v2 ? replay<MmuV2>(lines, vram, nullptr, true) : replay<MmuV3>(lines, vram, nullptr, true);
    FUZZ_CHECK(status == 0 || status == 1);
    return 0;
}
