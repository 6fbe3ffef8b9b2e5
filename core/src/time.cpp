#include "memfuse/time.h"

#include <cmath>
#include <limits>

namespace memfuse {

Duration seconds_to_duration(double seconds) noexcept {
  const double ns = seconds * 1e9;
  constexpr double kMax = static_cast<double>(std::numeric_limits<std::int64_t>::max() / 2);
  if (!(ns < kMax)) return Duration(std::numeric_limits<std::int64_t>::max() / 2);
  if (!(ns > -kMax)) return Duration(std::numeric_limits<std::int64_t>::min() / 2);
  return Duration(std::llround(ns));
}

double duration_to_seconds(Duration d) noexcept {
  return static_cast<double>(d.count()) / 1e9;
}

}  // namespace memfuse
