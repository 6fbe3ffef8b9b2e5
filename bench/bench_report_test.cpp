// The benchmark table's arithmetic and goals (bench_report.h), on made-up
// benchmark output written in Google Benchmark's JSON format: every goal is
// met at its limit and missed just past it, a benchmark that did not run is
// missing and fails, repetitions report their median.
#include "bench_report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace memfuse::bench {
namespace {

using nlohmann::json;

// What the benchmark programs would have written, file by file.
class FakeRuns {
 public:
  FakeRuns() {
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("memfuse-bench-report-test-{}-{}", ::getpid(), counter_++);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~FakeRuns() { std::filesystem::remove_all(dir_); }
  FakeRuns(const FakeRuns&) = delete;
  FakeRuns& operator=(const FakeRuns&) = delete;

  // One single run of `name` in `file`, with these fields.
  void run(const std::string& file, const std::string& name, json fields) {
    fields["name"] = name;
    fields["run_name"] = name;
    fields["run_type"] = "iteration";
    files_[file].push_back(std::move(fields));
  }
  // An aggregate (mean, median, stddev) of repetitions of `name`.
  void aggregate(const std::string& file, const std::string& name, const std::string& which, json fields) {
    fields["name"] = name + "_" + which;
    fields["run_name"] = name;
    fields["run_type"] = "aggregate";
    fields["aggregate_name"] = which;
    files_[file].push_back(std::move(fields));
  }
  std::vector<Row> rows() {
    for (const auto& [file, benchmarks] : files_) {
      std::ofstream((dir_ / (file + ".json")).string()) << json{{"benchmarks", benchmarks}}.dump();
    }
    return build_rows(dir_.string());
  }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
  std::map<std::string, json> files_;
};

const Row& row(const std::vector<Row>& rows, const std::string& figure) {
  for (const auto& r : rows) {
    if (r.figure == figure) return r;
  }
  throw std::runtime_error("no row \"" + figure + "\"");
}

// Every figure, at the values given: `add_p99` for add()'s call p99 in each
// regime (legacy `legacy_factor` times slower), and the others as named.
struct Figures {
  double add_p99 = 5;
  double legacy_factor = 2000;
  double durable_ratio = 0.9;
  double fm_real = 2.5e6;
  double fm_sim = 1.5e6;
  double sim_events = 6e6;
  double compression = 2e4;
  double memory = 1.2;
};

void write_all(FakeRuns& runs, const Figures& f) {
  for (int i = 0; i < 4; ++i) {
    runs.run("add_latency_bench", fmt::format("BM_AddLatencyProduction/{}/iterations:1/real_time", i),
             {{"p99_us", f.add_p99}, {"p50_us", 4.0}, {"response_p99_us", 100.0}, {"over_10us_pct", 0.5},
              {"faulted_pct", 0.1}, {"switched_pct", 0.1}, {"on_cpu_pct", 0.3}});
    runs.run("add_latency_bench", fmt::format("BM_AddLatencyLegacy/{}/iterations:1/real_time", i),
             {{"p99_us", f.add_p99 * f.legacy_factor}, {"response_p99_us", 100.0 * f.legacy_factor}});
    runs.run("add_latency_bench", fmt::format("BM_AddLatencyFloor/{}/0/iterations:1/real_time", i),
             {{"p99_us", 4.0}, {"over_10us_pct", 0.25}, {"response_p99_us", 80.0}});
  }
  runs.run("add_latency_bench", "BM_AddLatencyFloor/0/1/iterations:1/real_time", {{"p99_us", 6.0}});
  runs.run("add_latency_bench", "BM_WakeASleepingThread/iterations:1/real_time", {{"p99_us", 9.0}});
  for (const char* cfg : {"1/1", "1/2", "3/2"}) {
    runs.run("durable_throughput_bench", fmt::format("BM_DurablePaired/{}/iterations:5/manual_time", cfg),
             {{"rounds_per_s", 20'000.0 * f.durable_ratio}, {"raw_rounds_per_s", 20'000.0}, {"ratio", f.durable_ratio}});
  }
  runs.run("durable_throughput_bench", "BM_DurableRawSqlite/1/iterations:3/manual_time", {{"rounds_per_s", 20'000.0}});
  runs.run("durable_throughput_bench", "BM_DurableRawSqlite/2/iterations:3/manual_time", {{"rounds_per_s", 19'000.0}});
  for (int workers : {1, 3, 8}) {
    for (int io : {1, 2}) {
      runs.aggregate("flush_manager_bench", fmt::format("BM_FlushManagerRealThreads/{}/{}/real_time", workers, io),
                     "median", {{"items_per_second", f.fm_real}});
    }
    runs.run("flush_manager_bench", fmt::format("BM_FlushManagerSimulated/{}", workers), {{"items_per_second", f.fm_sim}});
  }
  runs.aggregate("flush_manager_bench", "BM_IoContextPostBaseline/real_time", "median", {{"items_per_second", 8e6}});
  runs.aggregate("flush_manager_bench", "BM_CacheLineRoundTrip/real_time", "median", {{"items_per_second", 2e6}});
  runs.aggregate("flush_manager_bench", "BM_HandOffFloor/real_time", "median", {{"items_per_second", 3e6}});
  runs.run("world_bench", "BM_SimBareExecutorEvents", {{"items_per_second", 2e7}});
  runs.run("world_bench", "BM_SimPipelineEvents", {{"items_per_second", f.sim_events}});
  runs.run("world_bench", "BM_SimSwarmSeeds/iterations:200", {{"items_per_second", 200.0}, {"events_per_s", 5e4}});
  runs.run("world_bench", "BM_SimSeedReportTimeCompression/iterations:5/real_time", {{"time_compression", f.compression}});
  runs.run("memory_bench", "BM_MemoryPerBufferedRound/iterations:1", {{"held_over_payload", f.memory}});
  runs.run("memory_bench", "BM_MemoryPlainContainers/iterations:1", {{"held_over_payload", 1.1}});
}

TEST(BenchReport, EveryGoalIsMetAtItsLimit) {
  FakeRuns runs;
  // Exactly at each limit: 10 us, 1000x, 0.8, 2 M, 1 M, 5 M, 10^4, 1.5.
  write_all(runs, {.add_p99 = 10, .legacy_factor = 1000, .durable_ratio = 0.8, .fm_real = 2e6,
                   .fm_sim = 1e6, .sim_events = 5e6, .compression = 1e4, .memory = 1.5});
  const auto rows = runs.rows();
  ASSERT_GE(rows.size(), 30u);
  for (const auto& r : rows) {
    EXPECT_TRUE(r.value.has_value()) << r.figure;
    EXPECT_TRUE(r.met) << r.figure << ": " << number(r.value, r.unit);
  }
  const Row& flushing = row(rows, "add() call p99, flushing");
  EXPECT_DOUBLE_EQ(*flushing.value, 10);
  EXPECT_DOUBLE_EQ(*flushing.baseline, 10'000);
  EXPECT_DOUBLE_EQ(*flushing.ratio, 1000);
  // The 1000x goal as a bound on the call: legacy's 10 ms / 1000 = 10 us,
  // against a median call of 4 us.
  const Row& bound = row(rows, "the 1000x goal as a bound on the call p99 (legacy's p99 / 1000), flushing");
  EXPECT_DOUBLE_EQ(*bound.value, 10);
  EXPECT_DOUBLE_EQ(*bound.baseline, 4);
  EXPECT_DOUBLE_EQ(*bound.ratio, 2.5);
}

TEST(BenchReport, EachGoalIsMissedJustPastItsLimit) {
  struct Case {
    Figures figures;
    std::string failing;  // the one row expected to fail (among others of its kind)
  };
  const Case cases[] = {
      {{.add_p99 = 10.01, .legacy_factor = 1000}, "add() call p99, idle"},
      {{.add_p99 = 5, .legacy_factor = 999}, "add() call p99, full_queue"},
      {{.add_p99 = 5, .legacy_factor = 999}, "add() response p99, slow_store"},
      {{.durable_ratio = 0.799}, "durable throughput (workers/pool threads 1/2), median of 5 pairs"},
      {{.fm_real = 1.99e6}, "FlushManager, real threads, 8 workers, 2 io thread(s)"},
      {{.fm_sim = 0.99e6}, "FlushManager, simulated runtime, 3 workers"},
      {{.sim_events = 4.99e6}, "simulator events/s, real FlushManager + HybridBuffer"},
      {{.compression = 9'999}, "time compression, seed-report scenario (median of 5 runs)"},
      {{.memory = 1.51}, "memory held per buffered round / payload (384-dim vectors)"},
  };
  for (const auto& c : cases) {
    FakeRuns runs;
    write_all(runs, c.figures);
    const auto rows = runs.rows();
    EXPECT_FALSE(row(rows, c.failing).met) << c.failing;
  }
  // The idle call is held to 10 us only: it has no legacy ratio to meet.
  FakeRuns runs;
  write_all(runs, {.add_p99 = 5, .legacy_factor = 2});
  const auto rows = runs.rows();
  EXPECT_TRUE(row(rows, "add() call p99, idle").met);
  EXPECT_FALSE(row(rows, "add() call p99, flushing").met);
}

TEST(BenchReport, ABenchmarkThatDidNotRunIsMissingAndFails) {
  {
    FakeRuns runs;  // nothing ran at all
    const auto rows = runs.rows();
    ASSERT_GE(rows.size(), 30u);
    for (const auto& r : rows) {
      EXPECT_FALSE(r.value.has_value()) << r.figure;
      EXPECT_FALSE(r.met) << r.figure;
    }
  }
  FakeRuns runs;
  write_all(runs, {});
  // A run that skipped with an error is not a figure.
  runs.run("memory_bench", "BM_MemoryPerBufferedRound/iterations:1",
           {{"held_over_payload", 1.0}, {"error_occurred", true}, {"error_message", "boom"}});
  const auto rows = runs.rows();
  const Row& memory = row(rows, "memory held per buffered round / payload (384-dim vectors)");
  EXPECT_DOUBLE_EQ(*memory.value, 1.2);  // the first, good run
  FakeRuns failed;
  failed.run("memory_bench", "BM_MemoryPerBufferedRound/iterations:1",
             {{"held_over_payload", 1.0}, {"error_occurred", true}});
  const auto failed_rows = failed.rows();
  const Row& lost = row(failed_rows, "memory held per buffered round / payload (384-dim vectors)");
  EXPECT_FALSE(lost.value.has_value());
  EXPECT_FALSE(lost.met);
  EXPECT_NE(to_markdown({lost}).find("| missing |"), std::string::npos);
  EXPECT_TRUE(to_json({lost})["rows"][0]["value"].is_null());
}

TEST(BenchReport, RepetitionsReportTheirMedianNotTheirMean) {
  // As Google Benchmark writes repetitions: the runs, then their aggregates.
  FakeRuns runs;
  const std::string name = "BM_FlushManagerRealThreads/1/1/real_time";
  runs.run("flush_manager_bench", name, {{"items_per_second", 3e6}});
  runs.run("flush_manager_bench", name, {{"items_per_second", 1.5e6}});
  runs.run("flush_manager_bench", name, {{"items_per_second", 1.2e6}});
  runs.aggregate("flush_manager_bench", name, "mean", {{"items_per_second", 1.9e6}});
  runs.aggregate("flush_manager_bench", name, "median", {{"items_per_second", 1.5e6}});
  runs.aggregate("flush_manager_bench", name, "stddev", {{"items_per_second", 0.8e6}});
  runs.aggregate("flush_manager_bench", "BM_IoContextPostBaseline/real_time", "median", {{"items_per_second", 6e6}});
  const auto rows = runs.rows();
  const Row& r = row(rows, "FlushManager, real threads, 1 workers, 1 io thread(s)");
  EXPECT_DOUBLE_EQ(*r.value, 1.5e6);
  EXPECT_FALSE(r.met);  // the first repetition alone would have met 2 M
  EXPECT_DOUBLE_EQ(*r.baseline, 6e6);
  EXPECT_DOUBLE_EQ(*r.ratio, 0.25);
}

TEST(BenchReport, TheOneWorkerFlushManagerIsSetAgainstTheHostsHandOffFloor) {
  FakeRuns runs;
  write_all(runs, {.fm_real = 1.5e6});
  const auto rows = runs.rows();
  const Row& floor = row(rows, "hand-off floor: reused 256-byte objects from one thread to a polling one, a mutex each");
  EXPECT_DOUBLE_EQ(*floor.value, 3e6);
  EXPECT_DOUBLE_EQ(*floor.baseline, 2e6);
  EXPECT_DOUBLE_EQ(*floor.ratio, 1.5);
  EXPECT_TRUE(floor.met);  // reported: met when it ran
  const Row& fm = row(rows, "FlushManager, real threads, 1 workers, 1 io thread(s), against the hand-off floor");
  EXPECT_DOUBLE_EQ(*fm.value, 1.5e6);
  EXPECT_DOUBLE_EQ(*fm.baseline, 3e6);
  EXPECT_DOUBLE_EQ(*fm.ratio, 0.5);
  // The goal stays on the FlushManager's own row: a floor does not excuse it.
  EXPECT_FALSE(row(rows, "FlushManager, real threads, 1 workers, 1 io thread(s)").met);
}

TEST(BenchReport, WhyCallsMissedTenMicrosecondsIsSetAgainstTheControl) {
  FakeRuns runs;
  write_all(runs, {});
  const auto rows = runs.rows();
  const Row& r = row(rows, "add() calls over 10 us, slow_store");
  EXPECT_DOUBLE_EQ(*r.value, 0.5);
  EXPECT_DOUBLE_EQ(*r.baseline, 0.25);
  EXPECT_DOUBLE_EQ(*r.ratio, 2);
  EXPECT_EQ(r.detail, "0.10 % took a page fault, 0.10 % were switched out, 0.30 % ran on the CPU throughout");
  const std::string md = to_markdown({r});
  EXPECT_NE(md.find("| add() calls over 10 us, slow_store (0.10 % took a page fault,"), std::string::npos) << md;
  EXPECT_NE(md.find("| 0.50 % | control calls over 10 us: 0.25 % | 2 |"), std::string::npos) << md;
}

TEST(BenchReport, TheControlsResponseTimeIsSetAgainstAddsResponseTime) {
  FakeRuns runs;
  write_all(runs, {});
  const auto rows = runs.rows();
  const Row& r = row(rows, "control response p99 (the same control), full_queue");
  EXPECT_DOUBLE_EQ(*r.value, 80.0);
  EXPECT_EQ(r.baseline_name, "add() response p99, full_queue");
  EXPECT_DOUBLE_EQ(*r.baseline, 100.0);
  EXPECT_DOUBLE_EQ(*r.ratio, 1.25);
}

}  // namespace
}  // namespace memfuse::bench
