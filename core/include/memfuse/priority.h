// Priority of a flush task.
//
// This header is the one place that defines which priority is more urgent:
// more_urgent(). Queues, schedulers and tests all ask it; none compares the
// enumerators' numeric values itself. The numeric values exist only for
// serialisation and array indexing.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "memfuse/error.h"

namespace memfuse {

enum class Priority : std::uint8_t {
  Critical = 0,  // drain at shutdown
  High = 1,      // manual flush()
  Normal = 2,    // size trigger (max_size rounds buffered)
  Low = 3,       // time trigger (auto_flush_interval)
};

inline constexpr int kPriorityCount = 4;

// Every priority, most urgent first.
inline constexpr std::array<Priority, kPriorityCount> kPrioritiesByUrgency = {
    Priority::Critical, Priority::High, Priority::Normal, Priority::Low};

// Urgency rank: 0 is the most urgent. The single definition of the order.
[[nodiscard]] constexpr int urgency_rank(Priority p) noexcept {
  return static_cast<int>(p);
}

// True when a must run before b.
[[nodiscard]] constexpr bool more_urgent(Priority a, Priority b) noexcept {
  return urgency_rank(a) < urgency_rank(b);
}

static_assert(more_urgent(Priority::Critical, Priority::High));
static_assert(more_urgent(Priority::High, Priority::Normal));
static_assert(more_urgent(Priority::Normal, Priority::Low));
static_assert(!more_urgent(Priority::Normal, Priority::Normal));

// "critical", "high", "normal", "low".
[[nodiscard]] std::string_view to_string(Priority p) noexcept;

// Parses the names above (case-sensitive, lower case).
[[nodiscard]] Result<Priority> parse_priority(std::string_view name);

// Validates a numeric value received from outside (0..3).
[[nodiscard]] Result<Priority> priority_from_int(long long value);

}  // namespace memfuse
