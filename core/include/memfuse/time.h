// Time types shared by every port.
//
// TimePoint is a point on the runtime's monotonic clock. MonotonicClock has no
// now(): production code reads time only through the Clock port
// (memfuse/runtime.h), so that the simulator can run it on virtual time. That
// omission is deliberate; do not add one.
#pragma once

#include <chrono>
#include <cstdint>

namespace memfuse {

struct MonotonicClock {
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::duration<rep, period>;
  using time_point = std::chrono::time_point<MonotonicClock>;
  static constexpr bool is_steady = true;
};

using Duration = MonotonicClock::duration;
using TimePoint = MonotonicClock::time_point;

// Seconds as configured (double) to Duration, rounded to the nearest nanosecond.
[[nodiscard]] Duration seconds_to_duration(double seconds) noexcept;
// Duration to seconds, for serialisation and display.
[[nodiscard]] double duration_to_seconds(Duration d) noexcept;

// Whole milliseconds since the clock's epoch (used in task ids and round ids).
[[nodiscard]] constexpr std::int64_t to_millis(TimePoint t) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace memfuse
