// Error values: every expected failure in memfuse-flush is returned, never thrown.
//
// Functions that can fail return Result<T> (std::expected<T, Error>) and are
// [[nodiscard]]. An Error carries a code, whether retrying the same operation
// later can succeed, and a message that says what happened and what to do.
// docs/errors.md catalogues every code.
//
// Thread-safety: Error is a value type; distinct objects may be used from
// distinct threads freely.
#pragma once

#include <cstdint>
#include <expected>  // empty where the fallback is used
#include <version>
#include <string>
#include <string_view>

#include "memfuse/detail/expected_fallback.h"

namespace memfuse {

enum class ErrorCode : std::uint8_t {
  InvalidArgument,  // the caller passed something malformed; fix the input
  QueueFull,        // the flush queue is at max_queue_size (reject policy)
  Overloaded,       // the pending round or byte budget would be exceeded
  Timeout,          // an operation passed its deadline
  Unavailable,      // a store or peer could not be reached or refused for now
  Cancelled,        // the operation was cancelled (stop, drain deadline)
  ShuttingDown,     // intake has stopped because a drain has begun
  Io,               // a storage I/O error
  Corrupt,          // stored data failed a consistency check
  NotFound,         // the requested item does not exist
};

inline constexpr int kErrorCodeCount = 10;

// The stable lower_snake_case name of a code, as printed and serialised.
[[nodiscard]] std::string_view to_string(ErrorCode code) noexcept;

// The retry flag a code carries unless the producer knows better (a 400 from a
// peer is Unavailable-but-final, for example, and says so explicitly).
[[nodiscard]] bool default_retryable(ErrorCode code) noexcept;

class Error {
 public:
  Error(ErrorCode code, std::string message)
      : Error(code, default_retryable(code), std::move(message)) {}
  Error(ErrorCode code, bool retryable, std::string message)
      : code_(code), retryable_(retryable), message_(std::move(message)) {}

  [[nodiscard]] ErrorCode code() const noexcept { return code_; }
  [[nodiscard]] bool retryable() const noexcept { return retryable_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

  // "<code>: <message>", with " (retryable)" when it is.
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const Error&, const Error&) = default;

 private:
  ErrorCode code_;
  bool retryable_;
  std::string message_;
};

#if defined(__cpp_lib_expected) && __cpp_lib_expected >= 202202L
template <typename T>
using Result = std::expected<T, Error>;
using Unexpected = std::unexpected<Error>;  // return Unexpected(error) from a Result<T> function
#else
// clang 14 with libstdc++ 12 (the fuzzing build): see expected_fallback.h.
template <typename T>
using Result = detail::ExpectedFallback<T, Error>;
using Unexpected = detail::UnexpectedFallback<Error>;
#endif

// Shorthand for returning an error from a function returning Result<T>.
[[nodiscard]] inline Unexpected fail(ErrorCode code, std::string message) {
  return Unexpected(Error(code, std::move(message)));
}
[[nodiscard]] inline Unexpected fail(ErrorCode code, bool retryable, std::string message) {
  return Unexpected(Error(code, retryable, std::move(message)));
}

}  // namespace memfuse
