// FlushManager throughput with a no-op sink (each attempt completes at once),
// at 1, 3 and 8 workers, on the production runtime (real threads) and on the
// simulator. Baseline in the same run: a plain io_context post of an empty
// handler per task on the same number of threads.
#include <benchmark/benchmark.h>

#include <atomic>
#include <future>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "memfuse/asio_runtime.h"
#include "memfuse/flush_manager.h"
#include "memfuse/sim/sim_runtime.h"

namespace {

using namespace std::chrono_literals;
constexpr int kTasks = 20'000;

memfuse::FlushManagerConfig bench_config(int workers) {
  memfuse::FlushManagerConfig c;
  c.max_workers = workers;
  c.max_queue_size = kTasks;
  c.enable_auto_flush = false;
  return c;
}

memfuse::TaskSpec noop_task(std::atomic<int>* done, std::promise<void>* all) {
  memfuse::TaskSpec spec;
  spec.kind = "bench";
  spec.attempt = [](std::shared_ptr<memfuse::Attempt> a) { a->complete({}); };
  if (done != nullptr) {
    spec.on_complete = [done, all](const memfuse::TaskOutcome&, std::shared_ptr<void>) {
      if (done->fetch_add(1) + 1 == kTasks) all->set_value();
    };
  }
  return spec;
}

void BM_FlushManagerRealThreads(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  memfuse::AsioRuntime rt({.io_threads = static_cast<int>(state.range(1)), .blocking_threads = 1});
  auto m = std::move(*memfuse::FlushManager::create(rt, bench_config(workers)));
  for (auto _ : state) {
    std::atomic<int> done{0};
    std::promise<void> all;
    for (int i = 0; i < kTasks; ++i) {
      if (!m->submit(noop_task(&done, &all))) state.SkipWithError("submit refused");
    }
    all.get_future().wait();
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
  std::promise<void> stopped;
  m->stop([&](memfuse::DrainReport) { stopped.set_value(); });
  stopped.get_future().wait();
}
BENCHMARK(BM_FlushManagerRealThreads)->ArgsProduct({{1, 3, 8}, {1, 2}})->UseRealTime();

void BM_FlushManagerSimulated(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  memfuse::sim::SimRuntime rt({.seed = 1, .strategy = memfuse::sim::Strategy::Fifo,
                               .trace_mode = memfuse::sim::Trace::Mode::HashOnly});
  auto m = std::move(*memfuse::FlushManager::create(rt, bench_config(workers)));
  for (auto _ : state) {
    for (int i = 0; i < kTasks; ++i) {
      if (!m->submit(noop_task(nullptr, nullptr))) state.SkipWithError("submit refused");
    }
    benchmark::DoNotOptimize(rt.run_until_quiescent(100 * kTasks));
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
  m->stop([](memfuse::DrainReport) {});
  (void)rt.run_until_quiescent(1'000'000);
}
BENCHMARK(BM_FlushManagerSimulated)->Arg(1)->Arg(3)->Arg(8);

// Baseline: one empty handler per task through a 2-thread io_context.
void BM_IoContextPostBaseline(benchmark::State& state) {
  for (auto _ : state) {
    boost::asio::io_context ioc;
    std::atomic<int> done{0};
    for (int i = 0; i < kTasks; ++i) boost::asio::post(ioc, [&] { done.fetch_add(1); });
    std::thread t([&] { ioc.run(); });
    ioc.run();
    t.join();
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}
BENCHMARK(BM_IoContextPostBaseline)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
