// Reads a Result the wrong way round; tests/death/expect_message.sh runs it in each mode and
// checks that a debug build stops with the error's name and the caller's location on stderr.
//   argv[1] = value | deref | arrow | error | control
#include <cstring>

#include "gpummu/core/result.hpp"

namespace {
struct Pair {
    int first = 0;
};
gpummu::Result<Pair> refuse()
{
    return gpummu::failure(gpummu::Error::out_of_memory);
}
gpummu::Result<Pair> succeed()
{
    return Pair{7};
}
}  // namespace

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    const char *mode = argv[1];
    auto refused = refuse();
    if (std::strcmp(mode, "value") == 0) return refused.value().first;  // mark:value
    if (std::strcmp(mode, "deref") == 0) return (*refused).first;
    if (std::strcmp(mode, "arrow") == 0) return refused->first;
    if (std::strcmp(mode, "error") == 0) return static_cast<int>(succeed().error());  // mark:error
    if (std::strcmp(mode, "control") == 0)
        return refused.error() == gpummu::Error::out_of_memory && succeed()->first == 7 ? 0 : 1;
    return 2;
}
