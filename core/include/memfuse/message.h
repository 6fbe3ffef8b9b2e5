// A message in a conversation round: a role and UTF-8 content.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace memfuse {

// The roles a message may carry. Roles are strings at the API (as in MemFuse's
// JSON) and validated against this list.
inline constexpr std::array<std::string_view, 4> kRoles = {"user", "assistant", "system",
                                                           "tool"};

[[nodiscard]] bool is_known_role(std::string_view role) noexcept;

struct Message {
  std::string role;     // one of kRoles
  std::string content;  // non-empty, valid UTF-8, at most limits.max_message_bytes
  friend bool operator==(const Message&, const Message&) = default;
};

}  // namespace memfuse
