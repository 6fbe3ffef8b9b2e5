#include "memfuse/round.h"

#include <algorithm>

#include "memfuse/message.h"

namespace memfuse {

bool is_known_role(std::string_view role) noexcept {
  return std::find(kRoles.begin(), kRoles.end(), role) != kRoles.end();
}

std::size_t Round::payload_bytes() const noexcept {
  std::size_t n = session_id.size() + (user_id ? user_id->size() : 0);
  for (const auto& m : messages) n += m.role.size() + m.content.size();
  return n;
}

}  // namespace memfuse
