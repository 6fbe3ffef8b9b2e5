// Scenario files: the swarm fills what a file leaves out, deterministically;
// malformed files get errors that name the field.
#include "memfuse/sim/scenario.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace memfuse::sim {
namespace {

using ::testing::HasSubstr;

TEST(Scenario, EmptyIsTheFullSwarmAndDependsOnTheSeedOnly) {
  auto a = resolve_scenario("{}", 7), b = resolve_scenario("{}", 7), c = resolve_scenario("{}", 8);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->to_json(), b->to_json());
  EXPECT_NE(a->to_json(), c->to_json());
  EXPECT_TRUE(a->config.validate()) << "a swarm configuration is always valid";
}

TEST(Scenario, TheResolvedFormReplaysExactly) {
  for (std::uint64_t seed = 1; seed <= 50; ++seed) {
    auto s = resolve_scenario("{}", seed);
    ASSERT_TRUE(s) << seed << ": " << s.error().to_string();
    auto again = resolve_scenario(s->to_json(), seed + 1000);  // another seed: nothing left to draw
    ASSERT_TRUE(again) << again.error().to_string();
    EXPECT_EQ(again->to_json(), s->to_json()) << seed;
  }
}

TEST(Scenario, GivenFieldsWinOverTheSwarm) {
  auto s = resolve_scenario(R"({"workload": {"rounds": 7, "sessions": 2},
                                "config": {"buffer": {"hybrid_buffer": {"max_size": 3}}},
                                "faults": {"sqlite": {"busy": 0.5}},
                                "scheduler": {"strategy": "pct", "pct_depth": 2}})",
                            3);
  ASSERT_TRUE(s) << s.error().to_string();
  EXPECT_EQ(s->workload.rounds, 7);
  EXPECT_EQ(s->workload.sessions, 2);
  EXPECT_EQ(s->config.buffer.hybrid_buffer.max_size, 3);
  EXPECT_EQ(s->faults.sqlite.busy, 0.5);
  EXPECT_EQ(s->scheduler.strategy, Strategy::Pct);
  auto swarm = resolve_scenario("{}", 3);
  EXPECT_EQ(s->config.buffer.flush_manager.max_workers, swarm->config.buffer.flush_manager.max_workers)
      << "keys left out still come from the seed";
}

TEST(Scenario, MalformedFilesNameTheField) {
  struct Case {
    const char* json;
    const char* field;
  };
  for (const Case c : {Case{"not json", "not valid JSON"}, Case{"[]", "JSON object"},
                       Case{R"({"workload": {"rounds": -1}})", "workload.rounds"},
                       Case{R"({"workload": {"rounds": "many"}})", "workload.rounds"},
                       Case{R"({"workload": {"sesions": 2}})", "workload.sesions"},
                       Case{R"({"workload": {"add_gap_mean_s": 0}})", "workload.add_gap_mean_s"},
                       Case{R"({"scheduler": {"strategy": "lifo"}})", "scheduler.strategy"},
                       Case{R"({"scheduler": {"pct_depth": 0}})", "scheduler.pct_depth"},
                       Case{R"({"config": {"buffer": {"flush_manager": {"max_workers": 0}}}})",
                            "buffer.flush_manager.max_workers"},
                       Case{R"({"faults": {"sqlite": {"busy": 2}}})", "sqlite.busy"},
                       Case{R"({"workloads": {}})", "workloads"},
                       Case{R"({"workload": 5})", "workload"}}) {
    auto s = resolve_scenario(c.json, 1);
    ASSERT_FALSE(s) << c.json;
    EXPECT_EQ(s.error().code(), ErrorCode::InvalidArgument) << c.json;
    EXPECT_THAT(s.error().message(), HasSubstr(c.field)) << c.json << " -> " << s.error().message();
  }
}

}  // namespace
}  // namespace memfuse::sim
