#include "memfuse/priority.h"

#include <fmt/format.h>

namespace memfuse {

std::string_view to_string(Priority p) noexcept {
  switch (p) {
    case Priority::Critical: return "critical";
    case Priority::High: return "high";
    case Priority::Normal: return "normal";
    case Priority::Low: return "low";
  }
  return "unknown";
}

Result<Priority> parse_priority(std::string_view name) {
  for (Priority p : kPrioritiesByUrgency) {
    if (to_string(p) == name) return p;
  }
  return fail(ErrorCode::InvalidArgument, false,
              fmt::format("priority \"{}\" is unknown (allowed: critical, high, normal, low)",
                          name));
}

Result<Priority> priority_from_int(long long value) {
  if (value < 0 || value >= kPriorityCount) {
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("priority value {} is out of range (allowed 0..{}: 0 critical, "
                            "1 high, 2 normal, 3 low)",
                            value, kPriorityCount - 1));
  }
  return static_cast<Priority>(value);
}

}  // namespace memfuse
