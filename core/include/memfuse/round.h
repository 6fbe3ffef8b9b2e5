// A round: what one add() call stores. See DESIGN.md, "Data model".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "memfuse/ids.h"
#include "memfuse/message.h"
#include "memfuse/time.h"

namespace memfuse {

struct Round {
  RoundId id;                          // assigned by the buffer (UUIDv7 layout)
  std::string session_id;              // non-empty, at most kMaxSessionIdBytes
  std::optional<std::string> user_id;  // when present: non-empty, at most kMaxUserIdBytes
  std::uint64_t seq = 0;               // assigned by the buffer; strictly increasing
  TimePoint created_at{};              // runtime clock at add()
  std::vector<Message> messages;       // at least one

  // Bytes of text this round holds (session, user and every message's role and
  // content): the unit of max_pending_bytes accounting.
  [[nodiscard]] std::size_t payload_bytes() const noexcept;

  friend bool operator==(const Round&, const Round&) = default;
};

}  // namespace memfuse
