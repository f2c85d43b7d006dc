// gpummu/core/result.hpp: errors as values.
//
// What it does
//   - `Error` lists every way a gpummu operation can refuse or fail. `error_name()` gives
//     the snake_case name (stable: tools print it and scripts match it) and
//     `error_message()` a one-line explanation.
//   - `Result<T>` holds either a T or an Error; `Result<void>` holds success or an Error.
//     It never throws and never allocates. Reading the value of a failed result (or the
//     error of a successful one) is a caller bug, caught in debug builds: a hosted build
//     prints the error's name and message and the caller's file, line and function to
//     stderr (`value()` and `error()` take the caller's location as a defaulted argument;
//     `operator*` and `operator->` cannot take one, so they print the caller's code address,
//     for addr2line), then traps; a freestanding build traps without a message.
//
// Invariants
//   - A function that returns an Error has changed nothing it was given (gpummu's rule:
//     bad input leaves state unchanged). Errors from a device (timeouts, I/O) are the only
//     exception and say so in the operation's own header.
#pragma once

#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

#include "gpummu/core/config.hpp"

#if GPUMMU_HOSTED
#include <cstdio>
#endif

namespace gpummu {

enum class Error : std::uint8_t {
    invalid_argument,         // a value that makes no sense for this operation
    misaligned,               // an address or size not aligned as the hardware requires
    out_of_range,             // an address or index outside the space it names
    field_overflow,           // a value wider than the entry field that must hold it
    invalid_aperture,         // an aperture this entry kind cannot use
    field_not_in_format,      // a field the selected MMU format does not have
    conflicting_fields,       // two inputs that contradict each other
    page_size_not_supported,  // a page size the format, level or chip cannot map
    arithmetic_overflow,      // address arithmetic wrapped around
    out_of_memory,            // no memory left for the request (VRAM for blocks or tables)
    double_free,              // freeing something already free
    not_allocated,            // freeing or changing something never allocated
    overlap,                  // the request overlaps something that exists
    not_mapped,               // the address range holds no mapping
    already_mapped,           // the address range already holds a mapping
    stale_handle,             // the handle's generation no longer matches
    timeout,                  // the device did not answer within the polling bound
    device_error,             // the device reported an error or an access failed
    read_only_device,         // a write to a device opened read-only
    unknown_chip,             // a BOOT_0 / BOOT_42 value no record describes
    malformed_record,         // a firmware record that contradicts itself
    space_too_large,          // more memory than the allocator's fixed metadata can index
    device_lost,              // registers read all-ones or a poison value: the GPU is gone
    foreign_handle,           // a handle that another address space (or object) issued
    in_use,                   // still holds something that must be released first
    out_of_va,                // no free virtual-address range fits the request
    out_of_storage,           // a caller-supplied bookkeeping pool is full (handles, nodes)
    foreign_entry,            // the range holds entries firmware made (an adopted table's)
};

inline constexpr std::size_t error_count = static_cast<std::size_t>(Error::foreign_entry) + 1;

[[nodiscard]] constexpr const char *error_name(Error error) noexcept
{
    switch (error) {
    case Error::invalid_argument: return "invalid_argument";
    case Error::misaligned: return "misaligned";
    case Error::out_of_range: return "out_of_range";
    case Error::field_overflow: return "field_overflow";
    case Error::invalid_aperture: return "invalid_aperture";
    case Error::field_not_in_format: return "field_not_in_format";
    case Error::conflicting_fields: return "conflicting_fields";
    case Error::page_size_not_supported: return "page_size_not_supported";
    case Error::arithmetic_overflow: return "arithmetic_overflow";
    case Error::out_of_memory: return "out_of_memory";
    case Error::double_free: return "double_free";
    case Error::not_allocated: return "not_allocated";
    case Error::overlap: return "overlap";
    case Error::not_mapped: return "not_mapped";
    case Error::already_mapped: return "already_mapped";
    case Error::stale_handle: return "stale_handle";
    case Error::timeout: return "timeout";
    case Error::device_error: return "device_error";
    case Error::read_only_device: return "read_only_device";
    case Error::unknown_chip: return "unknown_chip";
    case Error::malformed_record: return "malformed_record";
    case Error::space_too_large: return "space_too_large";
    case Error::device_lost: return "device_lost";
    case Error::foreign_handle: return "foreign_handle";
    case Error::in_use: return "in_use";
    case Error::out_of_va: return "out_of_va";
    case Error::out_of_storage: return "out_of_storage";
    case Error::foreign_entry: return "foreign_entry";
    }
    return "unknown_error";
}

[[nodiscard]] constexpr const char *error_message(Error error) noexcept
{
    switch (error) {
    case Error::invalid_argument: return "the value makes no sense for this operation";
    case Error::misaligned: return "address or size is not aligned as required";
    case Error::out_of_range: return "address or index is outside its space";
    case Error::field_overflow: return "value is wider than the entry field";
    case Error::invalid_aperture: return "this entry kind cannot use that aperture";
    case Error::field_not_in_format: return "the MMU format has no such field";
    case Error::conflicting_fields: return "two inputs contradict each other";
    case Error::page_size_not_supported: return "page size not supported here";
    case Error::arithmetic_overflow: return "address arithmetic overflowed";
    case Error::out_of_memory: return "no space left for the request";
    case Error::double_free: return "already free";
    case Error::not_allocated: return "not allocated";
    case Error::overlap: return "overlaps an existing range";
    case Error::not_mapped: return "range is not mapped";
    case Error::already_mapped: return "range is already mapped";
    case Error::stale_handle: return "handle is stale";
    case Error::timeout: return "device did not respond in time";
    case Error::device_error: return "device access failed";
    case Error::read_only_device: return "device is open read-only";
    case Error::unknown_chip: return "unknown chip";
    case Error::malformed_record: return "malformed firmware record";
    case Error::space_too_large:
        return "space too large: the buddy indexes at most 2^35 chunks from the first region's "
               "start to the last region's end (128 TiB of 4 KiB chunks, 2 PiB of 64 KiB)";
    case Error::device_lost:
        return "device lost: a register read all-ones or a poison value (off the bus, "
               "powered down, or not answering)";
    case Error::foreign_handle: return "the handle belongs to another address space";
    case Error::in_use: return "still in use: release what it holds first";
    case Error::out_of_va: return "no free virtual address range fits";
    case Error::out_of_storage:
        return "bookkeeping storage is full: give more handle slots, range or table nodes";
    case Error::foreign_entry:
        return "the range holds page-table entries firmware made (an adopted root's): they "
               "are never changed";
    }
    return "unknown error";
}

// Tag for constructing a failed Result: `return failure(Error::misaligned);`
namespace detail {

// The caller's location, filled by default arguments (__builtin_FILE and friends work on g++
// 12 and clang 14 alike; std::source_location does not on clang 14 with libstdc++).
struct CallerLocation {
    const char *file;
    unsigned line;
    const char *function;
};

// A Result read the wrong way round (debug builds): say what and where, then stop.
[[noreturn]] GPUMMU_NOINLINE inline void bad_result_access(const char *what, bool holds_error,
                                                           Error error, CallerLocation at,
                                                           const void *code) noexcept
{
#if GPUMMU_HOSTED
    if (holds_error)
        std::fprintf(stderr, "gpummu: %s of a Result that holds error %s (%s)\n", what,
                     error_name(error), error_message(error));
    else
        std::fprintf(stderr, "gpummu: %s of a Result that holds a value, not an error\n", what);
    if (at.file != nullptr)
        std::fprintf(stderr, "gpummu:   called at %s:%u in %s\n", at.file, at.line, at.function);
    else
        std::fprintf(stderr, "gpummu:   called from code address %p\n", code);
    std::fflush(stderr);
#else
    (void)what, (void)holds_error, (void)error, (void)at, (void)code;
#endif
    __builtin_trap();
}

// `operator*` and `operator->` are always inlined into their caller, so the return address
// of this (never inlined) function lies in the caller's own code.
[[noreturn]] GPUMMU_NOINLINE inline void bad_dereference(const char *what, Error error) noexcept
{
    bad_result_access(what, true, error, CallerLocation{nullptr, 0, nullptr},
                      __builtin_return_address(0));
}

// error() of a Result that holds a value (debug builds stop; release builds read on).
constexpr void check_error_access(bool holds_value, CallerLocation at) noexcept
{
#if GPUMMU_DEBUG
    if (holds_value) bad_result_access("error()", false, Error{}, at, nullptr);
#else
    (void)holds_value, (void)at;
#endif
}

}  // namespace detail

#define GPUMMU_CALLER_LOCATION                                                                     \
    ::gpummu::detail::CallerLocation at = {__builtin_FILE(), __builtin_LINE(), __builtin_FUNCTION()}

struct Failure {
    Error error;
};
[[nodiscard]] constexpr Failure failure(Error error) noexcept
{
    return Failure{error};
}

namespace detail {

// The union and its flag. Whether the destructor is trivial is decided by specialisation,
// not by a constrained destructor: clang 14 does not implement conditionally trivial
// special members (P0848) and deletes the destructor of a union holding a non-trivial T.
template <class T, bool = std::is_trivially_destructible_v<T>>
struct ResultStorage {
    constexpr ResultStorage() noexcept : error_(Error::invalid_argument), has_value_(false) {}
    // The value or the error is built in place by the member initialiser: no second store.
    template <class U>
    constexpr ResultStorage(std::in_place_t,
                            U &&value) noexcept(std::is_nothrow_constructible_v<T, U &&>)
        : value_(std::forward<U>(value)),
          has_value_(true)
    {
    }
    constexpr explicit ResultStorage(Error error) noexcept : error_(error), has_value_(false) {}
    union {
        T value_;
        Error error_;
    };
    bool has_value_;
};

template <class T>
struct ResultStorage<T, false> {
    constexpr ResultStorage() noexcept : error_(Error::invalid_argument), has_value_(false) {}
    // The value or the error is built in place by the member initialiser: no second store.
    template <class U>
    constexpr ResultStorage(std::in_place_t,
                            U &&value) noexcept(std::is_nothrow_constructible_v<T, U &&>)
        : value_(std::forward<U>(value)),
          has_value_(true)
    {
    }
    constexpr explicit ResultStorage(Error error) noexcept : error_(error), has_value_(false) {}
    ResultStorage(const ResultStorage &) = default;
    ResultStorage(ResultStorage &&) = default;
    ResultStorage &operator=(const ResultStorage &) = default;
    ResultStorage &operator=(ResultStorage &&) = default;
    constexpr ~ResultStorage()
    {
        if (has_value_) std::destroy_at(&value_);
    }
    union {
        T value_;
        Error error_;
    };
    bool has_value_;
};

}  // namespace detail

template <class T>
class [[nodiscard]] Result : private detail::ResultStorage<T> {
    static_assert(!std::is_reference_v<T>, "Result<T&> is not supported; return a pointer");
    using Storage = detail::ResultStorage<T>;
    using Storage::error_;
    using Storage::has_value_;
    using Storage::value_;

public:
    using value_type = T;

    constexpr Result(const T &value) noexcept(std::is_nothrow_copy_constructible_v<T>)
        : Storage(std::in_place, value)
    {
    }
    constexpr Result(T &&value) noexcept(std::is_nothrow_move_constructible_v<T>)
        : Storage(std::in_place, std::move(value))
    {
    }
    constexpr Result(Failure failed) noexcept : Storage(failed.error) {}

    constexpr Result(const Result &other) requires std::is_trivially_copy_constructible_v<T>
    = default;
    constexpr Result(const Result &other) noexcept(std::is_nothrow_copy_constructible_v<T>)
    {
        if (other.has_value_) {
            std::construct_at(&value_, other.value_);
            has_value_ = true;
        } else {
            error_ = other.error_;
        }
    }
    constexpr Result(Result &&other) requires std::is_trivially_move_constructible_v<T>
    = default;
    constexpr Result(Result &&other) noexcept(std::is_nothrow_move_constructible_v<T>)
    {
        if (other.has_value_) {
            std::construct_at(&value_, std::move(other.value_));
            has_value_ = true;
        } else {
            error_ = other.error_;
        }
    }
    constexpr Result &
    operator=(const Result &other) noexcept(std::is_nothrow_copy_constructible_v<T>)
    {
        if (this != &other) {
            std::destroy_at(this);
            std::construct_at(this, other);
        }
        return *this;
    }
    constexpr Result &operator=(Result &&other) noexcept(std::is_nothrow_move_constructible_v<T>)
    {
        if (this != &other) {
            std::destroy_at(this);
            std::construct_at(this, std::move(other));
        }
        return *this;
    }

    [[nodiscard]] constexpr bool has_value() const noexcept { return has_value_; }
    constexpr explicit operator bool() const noexcept { return has_value_; }

    [[nodiscard]] constexpr T &value(GPUMMU_CALLER_LOCATION) &noexcept
    {
        check_value("value()", at);
        return value_;
    }
    [[nodiscard]] constexpr const T &value(GPUMMU_CALLER_LOCATION) const &noexcept
    {
        check_value("value()", at);
        return value_;
    }
    [[nodiscard]] constexpr T &&value(GPUMMU_CALLER_LOCATION) &&noexcept
    {
        check_value("value()", at);
        return std::move(value_);
    }
    [[nodiscard]] GPUMMU_ALWAYS_INLINE constexpr T *operator->() noexcept
    {
        if (GPUMMU_DEBUG && !has_value_) detail::bad_dereference("operator->", error_);
        return &value_;
    }
    [[nodiscard]] GPUMMU_ALWAYS_INLINE constexpr const T *operator->() const noexcept
    {
        if (GPUMMU_DEBUG && !has_value_) detail::bad_dereference("operator->", error_);
        return &value_;
    }
    [[nodiscard]] GPUMMU_ALWAYS_INLINE constexpr T &operator*() &noexcept
    {
        if (GPUMMU_DEBUG && !has_value_) detail::bad_dereference("operator*", error_);
        return value_;
    }
    [[nodiscard]] GPUMMU_ALWAYS_INLINE constexpr const T &operator*() const &noexcept
    {
        if (GPUMMU_DEBUG && !has_value_) detail::bad_dereference("operator*", error_);
        return value_;
    }

    [[nodiscard]] constexpr Error error(GPUMMU_CALLER_LOCATION) const noexcept
    {
        detail::check_error_access(has_value_, at);
        return error_;
    }
    [[nodiscard]] constexpr T value_or(T fallback) const noexcept
    {
        return has_value_ ? value_ : fallback;
    }

private:
    constexpr void check_value(const char *what, detail::CallerLocation at) const noexcept
    {
#if GPUMMU_DEBUG
        if (!has_value_) detail::bad_result_access(what, true, error_, at, nullptr);
#else
        (void)what, (void)at;
#endif
    }
};

// Results of plain values stay trivial: returned in registers, usable in constant
// expressions.
static_assert(std::is_trivially_copy_constructible_v<Result<std::uint64_t>>);
static_assert(std::is_trivially_destructible_v<Result<std::uint64_t>>);

template <>
class [[nodiscard]] Result<void> {
public:
    using value_type = void;
    constexpr Result() noexcept = default;
    constexpr Result(Failure failed) noexcept : error_(failed.error), has_value_(false) {}

    [[nodiscard]] constexpr bool has_value() const noexcept { return has_value_; }
    constexpr explicit operator bool() const noexcept { return has_value_; }
    [[nodiscard]] constexpr Error error(GPUMMU_CALLER_LOCATION) const noexcept
    {
        detail::check_error_access(has_value_, at);
        return error_;
    }

private:
    Error error_ = Error::invalid_argument;
    bool has_value_ = true;
};

[[nodiscard]] constexpr Result<void> success() noexcept
{
    return Result<void>{};
}

}  // namespace gpummu

// Propagates a failed Result<...> to the caller: `GPUMMU_TRY(check(x));`
#define GPUMMU_TRY(expression)                                                                     \
    do {                                                                                           \
        if (auto gpummu_try_result_ = (expression); !gpummu_try_result_)                           \
            return ::gpummu::failure(gpummu_try_result_.error());                                  \
    } while (false)
