// The simulator with the production objects in it:
//   - events per second with the real FlushManager and HybridBuffer (stores
//     scripted in memory, 1 ms latency; 384-dimension embeddings; each add()
//     is an event, as a client request is in the world);
//   - seeds per second of the default swarm scenario (`{}`: everything drawn
//     from the seed), the whole world: SQLite over the fault-injecting VFS,
//     faults, checkers;
//   - time compression (virtual time over wall time) of the seed-report
//     scenario, both designs.
// Baseline in the same run: empty handlers through the bare simulated
// executor (FIFO, hash-only trace) - the most events per second the
// simulator can run at all.
#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <vector>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "bench_support.h"
#include "memfuse/embedder.h"
#include "memfuse/executor.h"
#include "memfuse/flush_manager.h"
#include "memfuse/hybrid_buffer.h"
#include "memfuse/sim/scenario.h"
#include "memfuse/sim/seed_report.h"
#include "memfuse/sim/sim_runtime.h"
#include "memfuse/sim/world.h"
#include "scripted_stores.h"

namespace {

using namespace std::chrono_literals;
namespace sim = memfuse::sim;

void BM_SimBareExecutorEvents(benchmark::State& state) {
  sim::SimRuntime rt({.seed = 1, .strategy = sim::Strategy::Fifo,
                      .trace_mode = sim::Trace::Mode::HashOnly});
  constexpr int kBatch = 10'000;
  std::uint64_t events = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) boost::asio::post(rt.executor().get(), [] {});
    events += rt.run_until_quiescent(kBatch + 1).events;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(events));
}
BENCHMARK(BM_SimBareExecutorEvents);

// The world one BM_SimPipelineEvents iteration runs: built and torn down with
// the timer paused, so the figure is the events' cost alone (the teardown, the
// stores' maps freed, had been a tenth of the timed samples).
struct PipelineWorld {
  static constexpr int kRounds = 5'000;
  sim::SimRuntime rt{{.seed = 1, .strategy = sim::Strategy::Fifo,
                      .trace_mode = sim::Trace::Mode::HashOnly}};
  memfuse::testing::ScriptedRoundStore rounds{rt};
  memfuse::testing::ScriptedVectorStore vectors{rt};
  memfuse::HashingEmbedder embedder{384};
  std::unique_ptr<memfuse::FlushManager> manager;
  std::unique_ptr<memfuse::HybridBuffer> buffer;
  std::vector<memfuse::NewRound> input;

  PipelineWorld() {
    rounds.set_script({{}, 1ms});
    vectors.set_script({{}, 1ms});
    memfuse::FlushManagerConfig fc;
    fc.enable_auto_flush = false;
    manager = std::move(*memfuse::FlushManager::create(rt, fc));
    memfuse::HybridBufferOptions bo;
    bo.buffer.max_size = 5;
    bo.buffer.enable_auto_flush = false;
    buffer = std::move(*memfuse::HybridBuffer::create(rt, *manager, rounds, vectors, embedder, std::move(bo)));
    for (int i = 0; i < kRounds; ++i) input.push_back(memfuse::bench::seed_round(static_cast<std::uint64_t>(i)));
  }
  ~PipelineWorld() {
    buffer.reset();  // before the manager it submits to
    manager.reset();
  }
};

void BM_SimPipelineEvents(benchmark::State& state) {
  constexpr int kRounds = PipelineWorld::kRounds;
  std::uint64_t events = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto world = std::make_unique<PipelineWorld>();
    auto& rt = world->rt;
    state.ResumeTiming();

    for (int i = 0; i < kRounds; ++i) {
      rt.context().schedule_at(rt.now() + std::chrono::microseconds(200 * i),
                               [&w = *world, i] { (void)w.buffer->add(std::move(w.input[static_cast<std::size_t>(i)])); },
                               "add");
    }
    events += rt.run_until_quiescent(100'000'000).events;
    bool drained = false;
    world->buffer->drain(rt.now() + 60s, [&](memfuse::HybridDrainReport) { drained = true; });
    events += rt.run_until_quiescent(100'000'000).events;

    state.PauseTiming();
    if (!drained || world->rounds.rows().size() != static_cast<std::size_t>(kRounds)) {
      state.SkipWithError("not every round reached the store");
    }
    world.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(events));
  state.counters["rounds_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kRounds), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SimPipelineEvents)->Unit(benchmark::kMillisecond);

void BM_SimSwarmSeeds(benchmark::State& state) {
  std::uint64_t seed = 1;
  std::uint64_t events = 0;
  std::uint64_t failures = 0;
  for (auto _ : state) {
    auto scenario = sim::resolve_scenario("{}", seed);
    if (!scenario) {
      state.SkipWithError(scenario.error().to_string().c_str());
      return;
    }
    const auto report = sim::run_world(seed, *scenario);
    events += report.events;
    if (!report.passed()) ++failures;
    ++seed;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["events_per_s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
  state.counters["violations"] = static_cast<double>(failures);
}
BENCHMARK(BM_SimSwarmSeeds)->Iterations(200)->Unit(benchmark::kMillisecond);

void BM_SimSeedReportTimeCompression(benchmark::State& state) {
  memfuse::bench::ScratchDir dir("seed-report");
  const std::string json_path = dir.file("report.json");
  // One run swings by 1.5x on this machine: the figure is the median of 5.
  std::vector<double> compression;
  for (auto _ : state) {
    // The report prints its markdown table: keep it out of the benchmark's output.
    std::fflush(stdout);
    const int saved = ::dup(1);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    const int rc = sim::run_seed_report(json_path, "");
    std::fflush(stdout);
    ::dup2(saved, 1);
    ::close(null);
    ::close(saved);
    if (rc != 0) state.SkipWithError("the seed report lost rounds");
    std::ifstream in(json_path);
    const auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.contains("time_compression")) {
      state.SkipWithError("no time_compression in the report");
      return;
    }
    compression.push_back(j["time_compression"].get<double>());
  }
  std::sort(compression.begin(), compression.end());
  state.counters["time_compression"] = compression[compression.size() / 2];
  state.counters["time_compression_min"] = compression.front();
  state.counters["time_compression_max"] = compression.back();
}
BENCHMARK(BM_SimSeedReportTimeCompression)->Iterations(5)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
