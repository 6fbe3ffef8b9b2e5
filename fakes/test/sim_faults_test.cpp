// The FaultPlan wired into a simulated run: SQLite latency, stalls and hangs
// through the blocking-work port, and VFS faults as trace events.
#include "memfuse/fakes/sim_faults.h"

#include <sqlite3.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace memfuse::fakes {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> fault_labels(sim::SimRuntime& rt) {
  std::vector<std::string> out;
  for (const auto& e : rt.trace().events()) {
    if (e.kind == sim::EventKind::Fault) out.push_back(e.label);
  }
  return out;
}

TEST(SqliteBlockingModel, LatencyComesFromThePlanPerOperationKind) {
  sim::SimRuntime rt({.seed = 3});
  FaultPlan plan;
  plan.sqlite.read_latency = {1ms, 1ms};
  plan.sqlite.write_latency = {7ms, 7ms};
  rt.set_blocking_model(sqlite_blocking_model(plan, rt));
  std::map<std::string, Duration> done_at;
  const TimePoint t0 = rt.now();
  for (const char* kind : {"sqlite.read", "sqlite.write", "other"}) {
    rt.blocking().submit(kind, rt.executor(), [](const CancelToken&) {},
                         [&, kind](std::error_code) { done_at[kind] = rt.now() - t0; });
  }
  (void)rt.run_until_quiescent(100);
  EXPECT_EQ(done_at["sqlite.read"], 1ms);
  EXPECT_EQ(done_at["sqlite.write"], 7ms);
  EXPECT_EQ(done_at["other"], 0ms);
}

TEST(SqliteBlockingModel, AStallTakesAsLongAsTheSeedsProductionLog) {
  sim::SimRuntime rt({.seed = 3});
  FaultPlan plan;
  plan.sqlite.stall = 1.0;
  rt.set_blocking_model(sqlite_blocking_model(plan, rt));
  Duration took{};
  const TimePoint t0 = rt.now();
  rt.blocking().submit("sqlite.write", rt.executor(), [](const CancelToken&) {},
                       [&](std::error_code) { took = rt.now() - t0; });
  (void)rt.run_until_quiescent(100);
  EXPECT_GE(took, 45s);
  EXPECT_LE(took, 50s);
  EXPECT_THAT(fault_labels(rt), ::testing::Contains("sqlite: stall"));
}

TEST(SqliteBlockingModel, HangsComeBeforeOrAfterTheEffect) {
  int after = 0;
  int before = 0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    sim::SimRuntime rt({.seed = seed});
    FaultPlan plan;
    plan.sqlite.hang = 1.0;
    plan.sqlite.hang_after_effect = 0.5;
    rt.set_blocking_model(sqlite_blocking_model(plan, rt));
    bool effect = false;
    std::error_code got;
    auto handle = rt.blocking().submit("sqlite.write", rt.executor(),
                                       [&](const CancelToken&) { effect = true; },
                                       [&](std::error_code ec) { got = ec; });
    (void)rt.run_for(1h);
    EXPECT_EQ(rt.hung_operations(), 1u);
    handle->cancel();
    (void)rt.run_until_quiescent(100);
    EXPECT_EQ(got, std::errc::operation_canceled);
    (effect ? after : before) += 1;
  }
  EXPECT_GT(after, 5) << "some hangs happen after the commit: outcome unknown";
  EXPECT_GT(before, 5);
}

TEST(TraceFaults, EveryVfsFaultIsATraceEvent) {
  sim::SimRuntime rt({.seed = 9});
  FaultVfs vfs("sim-faults-test", rt.fault_random(), &rt.clock());
  trace_faults(vfs, rt);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2("/db", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs.name().c_str()),
            SQLITE_OK);
  vfs.set_faults({.write = {.countdown = 1}});
  EXPECT_NE(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  vfs.crash(CrashModel::DropUnsynced);
  sqlite3_close_v2(db);
  EXPECT_THAT(fault_labels(rt), ::testing::ElementsAre("vfs.write: SQLITE_IOERR_WRITE",
                                                       "vfs.crash: drop_unsynced"));
}

}  // namespace
}  // namespace memfuse::fakes
