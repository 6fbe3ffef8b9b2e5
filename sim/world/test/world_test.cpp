// The simulation world: swarm seeds pass on the production code, a seed's
// trace repeats, and the checkers do fire (a liveness budget shorter than a
// forced stall must be reported as invariant 9).
#include "memfuse/sim/world.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace memfuse::sim {
namespace {

using ::testing::HasSubstr;

TEST(World, SwarmSeedsPassAndRepeat) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    auto sc = resolve_scenario("{}", seed);
    ASSERT_TRUE(sc);
    const RunReport r = run_world_twice(seed, *sc);
    EXPECT_TRUE(r.passed()) << "seed " << seed << ": " << (r.violation ? r.violation->event : "")
                            << "\n  replay: memfuse-sim run --seed " << seed;
    EXPECT_GT(r.rounds_acked, 0u) << seed;
  }
}

TEST(World, ReportsLivenessWhenAStallOutlastsTheBudget) {
  // Every SQLite write stalls 45-50 s, so nothing is durable within 1 s of healing...
  // except that healing removes the stall; the flushes in flight still take it.
  auto sc = resolve_scenario(R"({"workload": {"rounds": 5, "add_gap_mean_s": 0.01, "liveness_budget_s": 1},
                                 "config": {"buffer": {"hybrid_buffer": {"max_size": 1},
                                            "flush_manager": {"default_timeout": 100, "delivery_deadline_s": 300}},
                                            "vector_store": {"qdrant": {"request_timeout_s": 10}}},
                                 "faults": {"sqlite": {"stall": 1, "hang": 0}}})",
                             5);
  ASSERT_TRUE(sc) << sc.error().to_string();
  const RunReport r = run_world(5, *sc);
  ASSERT_FALSE(r.passed());
  EXPECT_EQ(r.violation->invariant, 9) << r.violation->event;
  EXPECT_THAT(r.violation->event, HasSubstr("after the faults stopped"));
  EXPECT_FALSE(r.violation->ids.empty());
}

TEST(World, ReportJsonRoundTrips) {
  auto sc = resolve_scenario("{}", 3);
  ASSERT_TRUE(sc);
  const RunReport r = run_world(3, *sc);
  auto back = RunReport::from_json(r.to_json());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->trace_hash, r.trace_hash);
  EXPECT_EQ(back->events, r.events);
  EXPECT_EQ(back->faults, r.faults);
}

}  // namespace
}  // namespace memfuse::sim
