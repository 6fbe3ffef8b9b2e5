// Error values, priorities and time conversion: the small core types.
#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "memfuse/error.h"
#include "memfuse/priority.h"
#include "memfuse/time.h"

namespace memfuse {
namespace {

using ::testing::HasSubstr;

TEST(Error, CarriesCodeRetryFlagAndMessage) {
  const Error e(ErrorCode::Unavailable, "qdrant answered 503; retrying later");
  EXPECT_EQ(e.code(), ErrorCode::Unavailable);
  EXPECT_TRUE(e.retryable());
  EXPECT_EQ(e.to_string(), "unavailable: qdrant answered 503; retrying later (retryable)");
  const Error final_error(ErrorCode::Unavailable, false, "400 bad request");
  EXPECT_FALSE(final_error.retryable());
  EXPECT_EQ(final_error.to_string(), "unavailable: 400 bad request");
}

TEST(Error, EveryCodeHasADistinctName) {
  std::set<std::string_view> names;
  for (int i = 0; i < kErrorCodeCount; ++i) {
    const auto name = to_string(static_cast<ErrorCode>(i));
    EXPECT_NE(name, "unknown") << i;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(kErrorCodeCount));
}

TEST(Error, DefaultRetryabilityFollowsTheCode) {
  EXPECT_TRUE(default_retryable(ErrorCode::Timeout));
  EXPECT_TRUE(default_retryable(ErrorCode::Io));
  EXPECT_TRUE(default_retryable(ErrorCode::QueueFull));
  EXPECT_TRUE(default_retryable(ErrorCode::Overloaded));
  EXPECT_FALSE(default_retryable(ErrorCode::InvalidArgument));
  EXPECT_FALSE(default_retryable(ErrorCode::ShuttingDown));
  EXPECT_FALSE(default_retryable(ErrorCode::Corrupt));
  EXPECT_FALSE(default_retryable(ErrorCode::Cancelled));
  EXPECT_FALSE(default_retryable(ErrorCode::NotFound));
}

Result<int> half(int x) {
  if (x % 2 != 0) return fail(ErrorCode::InvalidArgument, "x must be even");
  return x / 2;
}

TEST(Error, ResultIsStdExpected) {
  EXPECT_EQ(half(4).value(), 2);
  ASSERT_FALSE(half(3).has_value());
  EXPECT_EQ(half(3).error().code(), ErrorCode::InvalidArgument);
}

TEST(Priority, CriticalIsTheMostUrgentThenHighNormalLow) {
  EXPECT_TRUE(more_urgent(Priority::Critical, Priority::High));
  EXPECT_TRUE(more_urgent(Priority::High, Priority::Normal));
  EXPECT_TRUE(more_urgent(Priority::Normal, Priority::Low));
  EXPECT_TRUE(more_urgent(Priority::Critical, Priority::Low));
  EXPECT_FALSE(more_urgent(Priority::Low, Priority::Critical));
  for (Priority p : kPrioritiesByUrgency) EXPECT_FALSE(more_urgent(p, p)) << to_string(p);
  for (std::size_t i = 1; i < kPrioritiesByUrgency.size(); ++i) {
    EXPECT_TRUE(more_urgent(kPrioritiesByUrgency[i - 1], kPrioritiesByUrgency[i]));
  }
}

TEST(Priority, ParsesNamesAndValidatesNumbers) {
  for (Priority p : kPrioritiesByUrgency) EXPECT_EQ(parse_priority(to_string(p)).value(), p);
  EXPECT_THAT(parse_priority("urgent").error().message(), HasSubstr("\"urgent\" is unknown"));
  EXPECT_EQ(priority_from_int(0).value(), Priority::Critical);
  EXPECT_EQ(priority_from_int(3).value(), Priority::Low);
  EXPECT_THAT(priority_from_int(4).error().message(), HasSubstr("4 is out of range"));
  EXPECT_THAT(priority_from_int(-1).error().message(), HasSubstr("-1 is out of range"));
}

TEST(Time, SecondsConvertToNanosecondsAndBack) {
  EXPECT_EQ(seconds_to_duration(1.5), std::chrono::milliseconds(1500));
  EXPECT_EQ(seconds_to_duration(0.000000001), std::chrono::nanoseconds(1));
  EXPECT_DOUBLE_EQ(duration_to_seconds(std::chrono::milliseconds(250)), 0.25);
  for (std::int64_t ns : {1LL, 999LL, 123'456'789LL, 300'000'000'000LL, 604'800'000'000'000LL}) {
    EXPECT_EQ(seconds_to_duration(duration_to_seconds(Duration(ns))), Duration(ns)) << ns;
  }
  EXPECT_GT(seconds_to_duration(1e300), Duration::zero()) << "saturates, never overflows";
  EXPECT_EQ(to_millis(TimePoint(std::chrono::milliseconds(1234))), 1234);
}

}  // namespace
}  // namespace memfuse
