// Simulator throughput, side by side with a plain io_context post loop in the
// same run (the baseline: what one Asio thread does with an empty handler).
//
// Figures are items per second; compare each sim figure with
// BM_IoContextPostEmptyHandlers from the same run, not across runs.
#include <benchmark/benchmark.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include "memfuse/sim/sim_context.h"
#include "memfuse/sim/sim_runtime.h"

namespace {

namespace asio = boost::asio;
using memfuse::sim::SimContext;
using memfuse::sim::Strategy;
using memfuse::sim::Trace;

constexpr int kBatch = 10'000;

void BM_IoContextPostEmptyHandlers(benchmark::State& state) {
  asio::io_context ioc(1);
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) asio::post(ioc, [] {});
    ioc.run();
    ioc.restart();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_IoContextPostEmptyHandlers);

void sim_handlers(benchmark::State& state, Strategy strategy, Trace::Mode mode) {
  Trace trace(mode, 4096);
  SimContext ctx({.strategy = strategy, .seed = 1}, &trace);
  auto ex = ctx.get_executor();
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) asio::post(ex, [] {});
    benchmark::DoNotOptimize(ctx.run_until_quiescent(kBatch + 1));
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK_CAPTURE(sim_handlers, fifo_hash_only, Strategy::Fifo, Trace::Mode::HashOnly);
BENCHMARK_CAPTURE(sim_handlers, fifo_bounded_trace, Strategy::Fifo, Trace::Mode::Bounded);
BENCHMARK_CAPTURE(sim_handlers, random_bounded_trace, Strategy::Random, Trace::Mode::Bounded);

void BM_SimStrandHandlers(benchmark::State& state) {
  Trace trace(Trace::Mode::Bounded, 4096);
  SimContext ctx({.strategy = Strategy::Random, .seed = 1}, &trace);
  auto strand = asio::make_strand(ctx.get_executor());
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) asio::post(strand, [] {});
    benchmark::DoNotOptimize(ctx.run_until_quiescent(kBatch + 1));
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_SimStrandHandlers);

void BM_IoContextStrandHandlers(benchmark::State& state) {
  asio::io_context ioc(1);
  auto strand = asio::make_strand(ioc);
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) asio::post(strand, [] {});
    ioc.run();
    ioc.restart();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_IoContextStrandHandlers);

// Context-level timers: what every port timer and modelled latency costs.
void BM_SimTimers(benchmark::State& state) {
  Trace trace(Trace::Mode::Bounded, 4096);
  SimContext ctx({.strategy = Strategy::Random, .seed = 1}, &trace);
  memfuse::SeededRandom random(7);
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      ctx.schedule_at(ctx.now() + std::chrono::microseconds(random.uniform(1'000'000)), [] {},
                      "bench");
    }
    benchmark::DoNotOptimize(ctx.run_until_quiescent(2 * kBatch));
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_SimTimers);

// Timers through the Timer port (as production code uses them).
void BM_SimPortTimers(benchmark::State& state) {
  memfuse::sim::SimRuntime rt({.seed = 1, .strategy = Strategy::Random});
  std::vector<std::unique_ptr<memfuse::Timer>> timers;
  for (int i = 0; i < kBatch; ++i) timers.push_back(rt.make_timer(rt.executor()));
  for (auto _ : state) {
    for (auto& t : timers) {
      t->async_wait_until(rt.now() + std::chrono::microseconds(rt.random().uniform(1'000'000)),
                          [](std::error_code) {});
    }
    benchmark::DoNotOptimize(rt.run_until_quiescent(2 * kBatch));
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_SimPortTimers);

}  // namespace

BENCHMARK_MAIN();
