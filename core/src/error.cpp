#include "memfuse/error.h"

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "memfuse/assert.h"

namespace memfuse {

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::InvalidArgument: return "invalid_argument";
    case ErrorCode::QueueFull: return "queue_full";
    case ErrorCode::Overloaded: return "overloaded";
    case ErrorCode::Timeout: return "timeout";
    case ErrorCode::Unavailable: return "unavailable";
    case ErrorCode::Cancelled: return "cancelled";
    case ErrorCode::ShuttingDown: return "shutting_down";
    case ErrorCode::Io: return "io";
    case ErrorCode::Corrupt: return "corrupt";
    case ErrorCode::NotFound: return "not_found";
  }
  return "unknown";
}

bool default_retryable(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::QueueFull:
    case ErrorCode::Overloaded:
    case ErrorCode::Timeout:
    case ErrorCode::Unavailable:
    case ErrorCode::Io:
      return true;
    case ErrorCode::InvalidArgument:
    case ErrorCode::Cancelled:
    case ErrorCode::ShuttingDown:
    case ErrorCode::Corrupt:
    case ErrorCode::NotFound:
      return false;
  }
  return false;
}

std::string Error::to_string() const {
  return fmt::format("{}: {}{}", memfuse::to_string(code_), message_,
                     retryable_ ? " (retryable)" : "");
}

namespace detail {
void assertion_failed(const char* expr, const char* file, int line,
                      const char* function) noexcept {
  std::fprintf(stderr, "memfuse: assertion failed: %s\n  at %s:%d in %s\n", expr, file, line,
               function);
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail

}  // namespace memfuse
