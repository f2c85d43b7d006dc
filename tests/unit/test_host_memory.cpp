// HostMemory: ranged read/write/fill, counters, and refusals that change nothing.
#include <doctest/doctest.h>

#include <array>
#include <vector>

#include "gpummu/memory/host_memory.hpp"

using namespace gpummu;

TEST_CASE("reads, writes and fills land where addressed and are counted")
{
    std::vector<u64> image(512, 0);
    HostMemory memory(image, VramAddress{0x10000});
    std::array<u64, 3> in{1, 2, 3};
    REQUIRE(memory.write(VramAddress{0x10008}, in));
    CHECK(image[1] == 1);
    CHECK(image[3] == 3);
    REQUIRE(memory.fill(VramAddress{0x10100}, 0x8, 32));
    CHECK(image[32] == 0x8);
    CHECK(image[63] == 0x8);
    CHECK(image[64] == 0);
    std::array<u64, 4> out{};
    REQUIRE(memory.read(VramAddress{0x10000}, out));
    CHECK(out == std::array<u64, 4>{0, 1, 2, 3});
    CHECK(memory.counters() == MemoryCounters{1, 1, 1, 32, 24, 256});
    memory.reset_counters();
    CHECK(memory.counters() == MemoryCounters{});
    CHECK(memory.range() == VramRange::from_size(VramAddress{0x10000}, 4096).value());
    // A zero fill (memset, not the word loop) clears exactly its words.
    REQUIRE(memory.fill(VramAddress{0x10108}, 0, 30));
    CHECK(image[32] == 0x8);
    for (std::size_t i = 33; i < 63; ++i) CHECK(image[i] == 0);
    CHECK(image[63] == 0x8);
    CHECK(memory.counters().fills == 1);
}

TEST_CASE("sequences and pair sequences write exactly their words, wrapping mod 2^64")
{
    std::vector<u64> image(64, 5);
    HostMemory memory(image, VramAddress{0x2000});
    REQUIRE(memory.write_sequence(VramAddress{0x2008}, ~u64{0} - 1, 1, 4));
    CHECK(image[0] == 5);
    CHECK(image[1] == ~u64{0} - 1);
    CHECK(image[2] == ~u64{0});
    CHECK(image[3] == 0);
    CHECK(image[4] == 1);
    CHECK(image[5] == 5);
    // Dual entries: the low word steps, the high word stays.
    REQUIRE(memory.write_pair_sequence(VramAddress{0x2040}, 0x100, 0x20, 0xAB, 5));
    CHECK(image[7] == 5);
    for (std::size_t i = 0; i < 5; ++i) {
        CHECK(image[8 + 2 * i] == 0x100 + 0x20 * i);
        CHECK(image[9 + 2 * i] == 0xAB);
    }
    CHECK(image[18] == 5);
    CHECK(memory.counters().writes == 2);
    CHECK(memory.counters().bytes_written == (4 + 10) * 8);
    // Refusals change nothing: misaligned, past the end, a pair count whose word count
    // wraps.
    const std::vector<u64> before = image;
    CHECK(memory.write_pair_sequence(VramAddress{0x2004}, 1, 1, 1, 1).error() == Error::misaligned);
    CHECK(memory.write_pair_sequence(VramAddress{0x21F8}, 1, 1, 1, 1).error() ==
          Error::out_of_range);
    CHECK(
        memory.write_pair_sequence(VramAddress{0x2000}, 1, 1, 1, ~std::size_t{0} / 2 + 1).error() ==
        Error::out_of_range);
    CHECK(memory.write_pair_sequence(VramAddress{0x2000}, 1, 1, 1, 33).error() ==
          Error::out_of_range);
    CHECK(image == before);
    CHECK(memory.counters().writes == 2);
    REQUIRE(memory.write_pair_sequence(VramAddress{0x21F0}, 9, 1, 8, 1));  // the last pair
    CHECK(image[62] == 9);
    CHECK(image[63] == 8);
}

TEST_CASE("bad addresses are refused without touching the image or the counters")
{
    std::vector<u64> image(16, 7);
    HostMemory memory(image, VramAddress{0x1000});
    std::array<u64, 2> in{1, 2};
    CHECK(memory.write(VramAddress{0x1004}, in).error() == Error::misaligned);
    CHECK(memory.write(VramAddress{0x0ff8}, in).error() == Error::out_of_range);
    CHECK(memory.write(VramAddress{0x1078}, in).error() == Error::out_of_range);  // last word + 1
    CHECK(memory.fill(VramAddress{0x1000}, 0, 17).error() == Error::out_of_range);
    std::array<u64, 1> out{};
    CHECK(memory.read(VramAddress{0x1080}, out).error() == Error::out_of_range);
    CHECK(std::all_of(image.begin(), image.end(), [](u64 word) { return word == 7; }));
    CHECK(memory.counters() == MemoryCounters{});
    REQUIRE(memory.write(VramAddress{0x1070}, in));  // exactly the last two words
    CHECK(image[15] == 2);
}

TEST_CASE("zero-length operations at the end are fine")
{
    std::vector<u64> image(4, 0);
    HostMemory memory(image);
    CHECK(memory.fill(VramAddress{32}, 1, 0).has_value());
    CHECK(memory.fill(VramAddress{40}, 1, 0).error() == Error::out_of_range);
}
