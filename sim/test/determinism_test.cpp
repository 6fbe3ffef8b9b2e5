// Determinism: one seed gives one trace hash, within a process and across
// two processes (where ASLR would expose any ordering by address).
#include "memfuse/sim/determinism.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace memfuse::sim {
namespace {

const std::string kToy = MEMFUSE_SIM_TOY_PATH;

TEST(Determinism, TheSameSeedGivesTheSameHashInTwoProcesses) {
  for (const char* strategy : {"fifo", "random", "pct"}) {
    for (const char* seed : {"1", "42", "987654321"}) {
      auto report = compare_across_processes({kToy, "--seed", seed, "--strategy", strategy});
      ASSERT_TRUE(report.has_value()) << report.error().to_string();
      EXPECT_TRUE(report->same()) << strategy << " seed " << seed << ": " << report->to_string();
    }
  }
}

TEST(Determinism, DifferentSeedsGiveDifferentHashes) {
  auto a = run_process({kToy, "--seed", "1", "--strategy", "random"});
  auto b = run_process({kToy, "--seed", "2", "--strategy", "random"});
  ASSERT_TRUE(a && b);
  EXPECT_NE(*parse_trace_hash(a->output), *parse_trace_hash(b->output));
}

TEST(Determinism, ParseTraceHashRejectsMissingOrMalformedHashes) {
  EXPECT_EQ(parse_trace_hash("x trace_hash=0x00000000000000ff y").value(), 0xffu);
  EXPECT_FALSE(parse_trace_hash("no hash here").has_value());
  EXPECT_FALSE(parse_trace_hash("trace_hash=0x00zz000000000000").has_value());
  EXPECT_FALSE(parse_trace_hash("trace_hash=0x12").has_value());
}

TEST(Determinism, RunProcessReportsExitCodesAndMissingPrograms) {
  auto usage = run_process({kToy, "--no-such-flag"});
  ASSERT_TRUE(usage.has_value());
  EXPECT_EQ(usage->exit_code, 2);
  EXPECT_FALSE(run_process({"/nonexistent/program"}).has_value());
}

}  // namespace
}  // namespace memfuse::sim
