// Validation of what callers hand in: messages, rounds, chunks, UTF-8.
//
// Every check returns an InvalidArgument Error whose message names the field
// ("messages[2].role: ...") and the rule it broke. Validation never modifies
// its input and never allocates unless it fails.
#pragma once

#include <cstddef>
#include <string_view>

#include "memfuse/chunk.h"
#include "memfuse/error.h"
#include "memfuse/message.h"
#include "memfuse/round.h"

namespace memfuse {

inline constexpr std::size_t kMaxSessionIdBytes = 256;
inline constexpr std::size_t kMaxUserIdBytes = 256;

// The size limits a round must respect. Built from the configuration
// (Config::round_limits()); the defaults equal the configuration's defaults.
struct RoundLimits {
  std::size_t max_message_bytes = 32 * 1024;
  std::size_t max_messages_per_round = 100;
};

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
// U+10FFFF, no truncated sequences. NUL bytes are valid UTF-8 and allowed.
[[nodiscard]] bool is_valid_utf8(std::string_view text) noexcept;

[[nodiscard]] Result<void> validate_session_id(std::string_view session_id);
[[nodiscard]] Result<void> validate_message(const Message& message, const RoundLimits& limits);
// Checks session id, user id and messages; not id or seq, which the buffer assigns.
[[nodiscard]] Result<void> validate_round(const Round& round, const RoundLimits& limits);
[[nodiscard]] Result<void> validate_chunk(const Chunk& chunk);

}  // namespace memfuse
