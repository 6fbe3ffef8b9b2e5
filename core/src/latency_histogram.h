// A log-linear histogram of durations: 16 sub-buckets per power of two, so a
// percentile is within 1/16 (6.25 %) of the true value. Exact min, max, mean.
// Internal to core. Not thread-safe: its owner locks.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

#include "memfuse/flush_manager.h"

namespace memfuse::detail {

class LatencyHistogram {
 public:
  void add(Duration d) noexcept {
    const auto v = static_cast<std::uint64_t>(std::max<std::int64_t>(d.count(), 0));
    ++buckets_[index(v)];
    ++count_;
    sum_ += static_cast<double>(v);
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }

  [[nodiscard]] LatencySummary summary() const noexcept {
    LatencySummary s;
    s.count = count_;
    if (count_ == 0) return s;
    s.min = Duration(static_cast<std::int64_t>(min_));
    s.max = Duration(static_cast<std::int64_t>(max_));
    s.mean = Duration(static_cast<std::int64_t>(sum_ / static_cast<double>(count_)));
    s.p50 = percentile(0.50);
    s.p99 = percentile(0.99);
    return s;
  }

 private:
  static constexpr int kSub = 16;
  static constexpr std::size_t kBuckets = 61 * kSub + kSub;

  static std::size_t index(std::uint64_t v) noexcept {
    if (v < kSub) return static_cast<std::size_t>(v);
    const int e = 63 - std::countl_zero(v);  // >= 4
    const auto sub = static_cast<std::size_t>((v >> (e - 4)) & (kSub - 1));
    return static_cast<std::size_t>(e - 3) * kSub + sub;
  }
  static std::uint64_t lower_bound_of(std::size_t i) noexcept {
    if (i < kSub) return i;
    const int e = static_cast<int>(i / kSub) + 3;
    return (std::uint64_t{1} << e) | (static_cast<std::uint64_t>(i % kSub) << (e - 4));
  }
  Duration percentile(double q) const noexcept {
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i];
      if (seen >= rank) {
        const std::uint64_t v = std::clamp(lower_bound_of(i), min_, max_);
        return Duration(static_cast<std::int64_t>(v));
      }
    }
    return Duration(static_cast<std::int64_t>(max_));
  }

  std::array<std::uint64_t, kBuckets> buckets_{};
  std::uint64_t count_ = 0;
  double sum_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
};

}  // namespace memfuse::detail
