// FlushManager throughput with a no-op sink (each attempt completes at once),
// at 1, 3 and 8 workers, on the production runtime (real threads) and on the
// simulator. Baselines in the same run: a plain io_context post of an empty
// handler per task on the same number of threads; and the host's limits for
// handing work from one thread to another: a cache line's round trip, and
// the least a mutex-guarded hand-off of reused objects costs (the shape of
// the FlushManager's intake at 1 worker, without any of its work).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

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
  // The completion count lives on its own cache line: on the submitter's
  // stack, beside the TaskSpec it builds, each completion took that line
  // from the submitter (perf: 8 % of samples in the count's fetch_add).
  struct alignas(128) Progress {
    std::atomic<int> done{0};
    std::promise<void> all;
  };
  for (auto _ : state) {
    auto progress = std::make_unique<Progress>();
    for (int i = 0; i < kTasks; ++i) {
      if (!m->submit(noop_task(&progress->done, &progress->all))) state.SkipWithError("submit refused");
    }
    progress->all.get_future().wait();
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

// The host's floor for one thread waiting on another: a cache line bounces
// between two threads, each storing once the other's store is seen. One
// item is one round trip (two transfers of the line).
void BM_CacheLineRoundTrip(benchmark::State& state) {
  constexpr int kRoundTrips = 20'000;
  struct alignas(128) Line {
    std::atomic<std::uint64_t> turn{0};
  };
  struct alignas(128) Flag {
    std::atomic<bool> stop{false};
  };
  auto line = std::make_unique<Line>();
  auto flag = std::make_unique<Flag>();
  std::thread partner([&] {
    for (std::uint64_t n = 1;; n += 2) {
      while (line->turn.load(std::memory_order_acquire) != n) {
        if (flag->stop.load(std::memory_order_relaxed)) return;
      }
      line->turn.store(n + 1, std::memory_order_release);
    }
  });
  std::uint64_t n = 0;
  for (auto _ : state) {
    for (int i = 0; i < kRoundTrips; ++i, n += 2) {
      line->turn.store(n + 1, std::memory_order_release);
      while (line->turn.load(std::memory_order_acquire) != n + 2) {
      }
    }
  }
  flag->stop.store(true, std::memory_order_relaxed);
  partner.join();
  state.SetItemsProcessed(state.iterations() * kRoundTrips);
}
BENCHMARK(BM_CacheLineRoundTrip)->UseRealTime();

// The least a mutex-guarded hand-off costs here: one thread hands kTasks
// reused 256-byte objects (it writes half of each) to a thread that polls,
// reads each, writes one of its lines and hands it back. The producer takes
// one lock per object, which also refills its spare object, as submit()
// does; the consumer takes one per batch. Nothing else: no queue, no
// callbacks, no attempts.
void BM_HandOffFloor(benchmark::State& state) {
  struct Obj {
    char bytes[256];
  };
  std::vector<std::unique_ptr<Obj>> owned;
  for (int i = 0; i < kTasks; ++i) owned.push_back(std::make_unique<Obj>());
  struct alignas(128) Shared {
    std::mutex mutex;
    std::vector<Obj*> handed;
    std::vector<Obj*> free;
  };
  struct alignas(128) Progress {
    std::atomic<std::int64_t> done{0};
    std::atomic<bool> stop{false};
  };
  auto shared = std::make_unique<Shared>();
  auto progress = std::make_unique<Progress>();
  for (auto& o : owned) shared->free.push_back(o.get());
  std::thread consumer([&] {
    std::vector<Obj*> got;
    std::vector<Obj*> back;
    std::int64_t done = 0;
    unsigned sum = 0;
    while (!progress->stop.load(std::memory_order_relaxed)) {
      {
        std::lock_guard lock(shared->mutex);
        got.swap(shared->handed);
        shared->free.insert(shared->free.end(), back.begin(), back.end());
      }
      back.clear();
      for (Obj* o : got) {
        sum += static_cast<unsigned char>(o->bytes[0]) + static_cast<unsigned char>(o->bytes[127]);
        o->bytes[192] = 1;
        back.push_back(o);
      }
      done += static_cast<std::int64_t>(got.size());
      got.clear();
      progress->done.store(done, std::memory_order_release);
    }
    benchmark::DoNotOptimize(sum);
  });
  std::int64_t target = 0;
  Obj* spare = nullptr;
  for (auto _ : state) {
    target += kTasks;
    for (int i = 0; i < kTasks; ++i) {
      Obj* o = std::exchange(spare, nullptr);
      while (o == nullptr) {  // only when the consumer has not handed any back yet
        std::lock_guard lock(shared->mutex);
        if (!shared->free.empty()) {
          o = shared->free.back();
          shared->free.pop_back();
        }
      }
      std::memset(o->bytes, i, 128);
      std::lock_guard lock(shared->mutex);
      shared->handed.push_back(o);
      if (!shared->free.empty()) {
        spare = shared->free.back();
        shared->free.pop_back();
      }
    }
    while (progress->done.load(std::memory_order_acquire) < target) {
    }
  }
  progress->stop.store(true, std::memory_order_relaxed);
  consumer.join();
  state.SetItemsProcessed(state.iterations() * kTasks);
}
BENCHMARK(BM_HandOffFloor)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
