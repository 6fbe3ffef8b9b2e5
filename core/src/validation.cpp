#include "memfuse/validation.h"

#include <cstring>

#include <fmt/format.h>

namespace memfuse {
namespace {

Result<void> invalid(std::string message) {
  return fail(ErrorCode::InvalidArgument, false, std::move(message));
}

// Shows a possibly long or binary value in an error message, safely.
std::string excerpt(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7F) ? std::string(1, c) : fmt::format("\\x{:02x}", u);
  }
  if (s.size() > 40) out += "...";
  return out;
}

}  // namespace

bool is_valid_utf8(std::string_view text) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    // Eight ASCII bytes at a time: the same as eight turns of the branch below.
    if (end - p >= 8) {
      std::uint64_t word = 0;
      std::memcpy(&word, p, sizeof word);
      if ((word & 0x8080808080808080ull) == 0) {
        p += 8;
        continue;
      }
    }
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int extra = 0;
    std::uint32_t cp = 0;
    std::uint32_t min = 0;
    if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
      min = 0x10000;
    } else {
      return false;  // a continuation byte where a lead byte belongs, or 0xF8..0xFF
    }
    if (end - p <= extra) return false;  // truncated sequence
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min) return false;                       // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;   // UTF-16 surrogate
    if (cp > 0x10FFFF) return false;
    p += extra + 1;
  }
  return true;
}

Result<void> validate_session_id(std::string_view session_id) {
  if (session_id.empty()) return invalid("session_id: must not be empty");
  if (session_id.size() > kMaxSessionIdBytes) {
    return invalid(fmt::format("session_id: {} bytes is too long (at most {})", session_id.size(),
                               kMaxSessionIdBytes));
  }
  if (!is_valid_utf8(session_id)) {
    return invalid(fmt::format("session_id: \"{}\" is not valid UTF-8", excerpt(session_id)));
  }
  return {};
}

Result<void> validate_message(const Message& message, const RoundLimits& limits) {
  if (!is_known_role(message.role)) {
    return invalid(fmt::format("role: \"{}\" is not a known role (allowed: user, assistant, "
                               "system, tool)",
                               excerpt(message.role)));
  }
  if (message.content.empty()) return invalid("content: must not be empty");
  if (message.content.size() > limits.max_message_bytes) {
    return invalid(fmt::format("content: {} bytes is more than "
                               "buffer.hybrid_buffer.max_message_bytes ({})",
                               message.content.size(), limits.max_message_bytes));
  }
  if (!is_valid_utf8(message.content)) return invalid("content: is not valid UTF-8");
  return {};
}

Result<void> validate_round(const Round& round, const RoundLimits& limits) {
  if (auto ok = validate_session_id(round.session_id); !ok) return ok;
  if (round.user_id) {
    if (round.user_id->empty()) return invalid("user_id: must not be empty when present");
    if (round.user_id->size() > kMaxUserIdBytes) {
      return invalid(fmt::format("user_id: {} bytes is too long (at most {})",
                                 round.user_id->size(), kMaxUserIdBytes));
    }
    if (!is_valid_utf8(*round.user_id)) return invalid("user_id: is not valid UTF-8");
  }
  if (round.messages.empty()) return invalid("messages: a round needs at least one message");
  if (round.messages.size() > limits.max_messages_per_round) {
    return invalid(fmt::format("messages: {} messages is more than "
                               "buffer.hybrid_buffer.max_messages_per_round ({})",
                               round.messages.size(), limits.max_messages_per_round));
  }
  for (std::size_t i = 0; i < round.messages.size(); ++i) {
    if (auto ok = validate_message(round.messages[i], limits); !ok) {
      return invalid(fmt::format("messages[{}].{}", i, ok.error().message()));
    }
  }
  return {};
}

Result<void> validate_chunk(const Chunk& chunk) {
  if (chunk.id.round != chunk.round_id) {
    return invalid(fmt::format("chunk {}: id does not belong to round {}", chunk.id.to_string(),
                               chunk.round_id.to_string()));
  }
  if (chunk.id.index != chunk.index) {
    return invalid(fmt::format("chunk {}: id index does not match index {}",
                               chunk.id.to_string(), chunk.index));
  }
  if (auto ok = validate_session_id(chunk.session_id); !ok) {
    return invalid(fmt::format("chunk {}: {}", chunk.id.to_string(), ok.error().message()));
  }
  if (chunk.text.empty()) return invalid(fmt::format("chunk {}: text is empty", chunk.id.to_string()));
  if (!is_valid_utf8(chunk.text)) {
    return invalid(fmt::format("chunk {}: text is not valid UTF-8", chunk.id.to_string()));
  }
  return {};
}

}  // namespace memfuse
