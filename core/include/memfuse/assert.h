// MEMFUSE_ASSERT: programmer errors.
//
// An expected failure (bad input, storage down, a full queue) is a returned
// Error, never an assertion. An assertion states something the code itself
// guarantees; when it fails the process is wrong and stops, printing the
// expression and where it is. Assertions stay on in the dev, ci, asan, tsan
// and simulation builds (MEMFUSE_ASSERTIONS=ON) and are compiled out only in
// the release preset. Split compound conditions so the failing one is obvious.
#pragma once

namespace memfuse::detail {
[[noreturn]] void assertion_failed(const char* expr, const char* file, int line,
                                   const char* function) noexcept;
}  // namespace memfuse::detail

#if MEMFUSE_ASSERTIONS_ENABLED
#define MEMFUSE_ASSERT(expr)                                                        \
  ((expr) ? static_cast<void>(0)                                                    \
          : ::memfuse::detail::assertion_failed(#expr, __FILE__, __LINE__, __func__))
#else
#define MEMFUSE_ASSERT(expr) static_cast<void>(sizeof(static_cast<bool>(expr)))
#endif
