// gpummu/core/config.hpp: the one place that looks at the compiler and the environment.
//
// What it does
//   - Detects whether exceptions and RTTI are on, whether the environment is hosted, and
//     which compiler is in use, and states the result as GPUMMU_* macros that every other
//     header tests instead of probing the compiler itself.
//   - Defines GPUMMU_ASSERT, the internal-consistency check. It is active unless NDEBUG is
//     set; it is for library bugs, never for bad caller input (that is an Error value).
//   - Defines gpummu::detail::constant_evaluation_failure(), a function that is deliberately
//     not constexpr: calling it while evaluating a constant expression turns the misuse
//     into a compile error that names the call, the same trick {fmt} uses.
//
// What it does not do
//   - It never throws, never allocates and keeps no state. Nothing here needs a lock. (A
//     hosted build prints a failed check to stderr with <cstdio> before trapping.)
#pragma once

#if !defined(__cplusplus) || __cplusplus < 202002L
#error "gpummu needs C++20 (-std=c++20 or newer)"
#endif

#if defined(__clang__)
#define GPUMMU_COMPILER_CLANG 1
#define GPUMMU_COMPILER_GCC 0
#elif defined(__GNUC__)
#define GPUMMU_COMPILER_CLANG 0
#define GPUMMU_COMPILER_GCC 1
#else
#define GPUMMU_COMPILER_CLANG 0
#define GPUMMU_COMPILER_GCC 0
#endif

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define GPUMMU_HAS_EXCEPTIONS 1
#else
#define GPUMMU_HAS_EXCEPTIONS 0
#endif

#if defined(__cpp_rtti) || defined(__GXX_RTTI)
#define GPUMMU_HAS_RTTI 1
#else
#define GPUMMU_HAS_RTTI 0
#endif

#if defined(__STDC_HOSTED__) && __STDC_HOSTED__ == 1
#define GPUMMU_HOSTED 1
#else
#define GPUMMU_HOSTED 0
#endif

#if defined(NDEBUG)
#define GPUMMU_DEBUG 0
#else
#define GPUMMU_DEBUG 1
#endif

#if GPUMMU_COMPILER_GCC || GPUMMU_COMPILER_CLANG
#define GPUMMU_ALWAYS_INLINE inline __attribute__((always_inline))
#define GPUMMU_LIKELY(x) __builtin_expect(!!(x), 1)
#define GPUMMU_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define GPUMMU_NOINLINE __attribute__((noinline))  // a rarer path kept out of its caller
#else
#define GPUMMU_ALWAYS_INLINE inline
#define GPUMMU_LIKELY(x) (x)
#define GPUMMU_UNLIKELY(x) (x)
#define GPUMMU_NOINLINE
#endif

#if GPUMMU_HOSTED
#include <cstdio>
#endif

namespace gpummu::detail {

// Not constexpr on purpose: reaching it during constant evaluation is a compile error.
[[noreturn]] inline void constant_evaluation_failure(const char * /*what*/) noexcept
{
    __builtin_trap();
}

// Reached at run time only when an internal invariant is broken (a gpummu bug). A hosted
// build says which check failed and where before it stops.
[[noreturn]] inline void assertion_failure(const char *expression,
                                           const char *file = __builtin_FILE(),
                                           unsigned line = __builtin_LINE()) noexcept
{
#if GPUMMU_HOSTED
    std::fprintf(stderr, "gpummu: internal check failed: %s\ngpummu:   at %s:%u\n", expression,
                 file, line);
    std::fflush(stderr);
#else
    (void)expression, (void)file, (void)line;
#endif
    __builtin_trap();
}

}  // namespace gpummu::detail

#if GPUMMU_DEBUG
#define GPUMMU_ASSERT(expression)                                                                  \
    ((expression) ? static_cast<void>(0)                                                           \
                  : ::gpummu::detail::assertion_failure(#expression, __FILE__, __LINE__))
#else
#define GPUMMU_ASSERT(expression) static_cast<void>(0)
#endif
