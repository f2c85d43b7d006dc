// Behaviour of Result<T>, Result<void> and the Error names.
#include <doctest/doctest.h>

#include <cstring>

#include "gpummu/core/result.hpp"

using namespace gpummu;

namespace {
Result<int> half_of_even(int value)
{
    if (value % 2 != 0) return failure(Error::invalid_argument);
    return value / 2;
}
Result<int> quarter(int value)
{
    auto half = half_of_even(value);
    if (!half) return failure(half.error());
    return half_of_even(*half);
}
Result<void> chained(int value)
{
    GPUMMU_TRY(quarter(value));
    return success();
}
}  // namespace

TEST_CASE("Result carries a value or an error")
{
    auto good = half_of_even(8);
    REQUIRE(good.has_value());
    CHECK(*good == 4);
    CHECK(good.value_or(-1) == 4);

    auto bad = half_of_even(7);
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error() == Error::invalid_argument);
    CHECK(bad.value_or(-1) == -1);
}

TEST_CASE("errors propagate through GPUMMU_TRY and explicit checks")
{
    CHECK(quarter(8).value() == 2);
    CHECK(quarter(6).error() == Error::invalid_argument);
    CHECK(chained(8).has_value());
    CHECK(chained(6).error() == Error::invalid_argument);
}

TEST_CASE("Result assignment replaces value and error")
{
    Result<int> result = failure(Error::timeout);
    result = 5;
    CHECK(*result == 5);
    result = failure(Error::overlap);
    CHECK(result.error() == Error::overlap);
}

TEST_CASE("every Error has a distinct snake_case name and a message")
{
    for (std::size_t i = 0; i < error_count; ++i) {
        auto error = static_cast<Error>(i);
        const char *name = error_name(error);
        CHECK(std::strcmp(name, "unknown_error") != 0);
        CHECK(std::strlen(error_message(error)) > 5);
        for (const char *c = name; *c != '\0'; ++c)
            CHECK(((*c >= 'a' && *c <= 'z') || *c == '_' || (*c >= '0' && *c <= '9')));
        for (std::size_t j = 0; j < i; ++j)
            CHECK(std::strcmp(name, error_name(static_cast<Error>(j))) != 0);
    }
}
