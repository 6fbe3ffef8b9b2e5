// add() latency while flushes run, on real threads and a SQLite file in WAL
// mode: the production HybridBuffer (Pipeline, embedded default) and the
// legacy synchronous design (sim/legacy/legacy_sync_buffer.h, one lock held
// across the storage writes), side by side in one run.
//
// One thread calls add() at a fixed pace (one call every 100 us, 20 000
// calls) and times each call. Regimes:
//   idle        no flush runs (the buffer never fills): the floor;
//   flushing    a second client adds one round every 200 us and batches of
//               100 flush all the time;
//   slow_store  the same, and another connection holds SQLite's write lock
//               50 ms out of every 100 ms (a slow disk, a checkpoint, another
//               process);
//   full_queue  one flush worker, a flush queue of one task, and the write
//               lock held 200 ms out of every 250 ms: the queue is full most
//               of the time (the counter queue_full shows it).
// BM_AddLatencyFloor/<regime>/0 is the control: the same pipeline, load and
// stalls, but the timed thread runs a fixed piece of arithmetic as long as a
// median add() (no allocation, no lock, no system call) in the timed span,
// and makes its add() right after, untimed: the same rounds flow, the same
// batches are cut by the same threads and flushed, so the flushing threads
// do the same work as in the add() run. Its tail is what the host alone adds
// to a call of that length in that regime: interrupts, the hypervisor, caches
// shared with the flushing threads. BM_AddLatencyFloor/0/1 (idle) keeps, per
// call, as much new memory as a buffered round holds instead of adding it:
// the page faults of a growing heap.
// Counters: p50_us, p99_us, p999_us, max_us: the add() call (service time);
// response_p50_us, response_p99_us, response_p999_us: from when the call was
// due to its return, so a call held up behind a blocked one counts its wait
// (the legacy design blocks the caller; production never does); overloaded
// (calls answered Overloaded, timed like the rest); flushes. And why calls
// were slower than the goal's 10 us, read around each call (outside its timed
// span) from the thread's own accounting: over_10us_pct of the calls, split
// into faulted_pct (the call took a page fault), switched_pct (no fault; the
// thread was switched out: it slept on a lock or was preempted) and
// on_cpu_pct (neither, and the thread's CPU time covered >= 90 % of the call:
// it ran the whole time, slowly), the rest in other_pct.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <future>
#include <thread>

#include <sys/resource.h>
#include <time.h>

#include "bench_support.h"
#include "legacy_sync_buffer.h"
#include "memfuse/asio_runtime.h"
#include "memfuse/pipeline.h"

#include <nlohmann/json.hpp>

namespace {

using namespace std::chrono_literals;
using memfuse::bench::percentiles;
using memfuse::bench::seed_round;

constexpr std::uint64_t kTimedAdds = 20'000;
constexpr auto kTimedInterval = 100us;
constexpr auto kLoadInterval = 200us;

struct Regime {
  const char* name;
  bool load;
  std::chrono::milliseconds hold;
  std::chrono::milliseconds period;
  int max_size;
  int workers;
  int queue;
};

constexpr Regime kRegimes[] = {
    {"idle", false, 0ms, 0ms, 1'000'000, 3, 100},
    {"flushing", true, 0ms, 0ms, 100, 3, 100},
    {"slow_store", true, 50ms, 100ms, 100, 3, 100},
    {"full_queue", true, 200ms, 250ms, 100, 1, 1},
};

// Runs the timed client against `timed` and the load client against `add`;
// both return true when the call was answered Overloaded.
struct Timings {
  std::vector<std::int64_t> service_ns;   // the add() call itself
  std::vector<std::int64_t> response_ns;  // from when the call was due to its return
  std::vector<std::int64_t> cpu_ns;       // the thread's CPU time during the call
  std::vector<long> faults;               // page faults the thread took during the call
  std::vector<long> switches;             // times it was switched out during the call
};

// The calling thread's CPU time, page faults and context switches so far.
struct ThreadUsage {
  std::int64_t cpu_ns = 0;
  long faults = 0;
  long switches = 0;
  static ThreadUsage now() {
    ThreadUsage u;
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    u.cpu_ns = static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
    rusage r{};
    ::getrusage(RUSAGE_THREAD, &r);
    u.faults = r.ru_minflt + r.ru_majflt;
    u.switches = r.ru_nvcsw + r.ru_nivcsw;
    return u;
  }
};

// `timed` gets each round of the timed client inside the timed span and
// `untimed` right after it, outside (the control's add()).
template <typename Add, typename Timed, typename Untimed>
Timings drive(const Regime& regime, Add add, Timed timed, Untimed untimed, std::uint64_t* overloaded) {
  std::atomic<bool> stop{false};
  std::thread load;
  if (regime.load) {
    load = std::thread([&] {
      const auto start = std::chrono::steady_clock::now();
      for (std::uint64_t i = 0; !stop.load(); ++i) {
        std::this_thread::sleep_until(start + kLoadInterval * static_cast<std::int64_t>(i));
        (void)add(seed_round(1'000'000 + i));
      }
    });
  }
  Timings t;
  t.service_ns.reserve(kTimedAdds);
  t.response_ns.reserve(kTimedAdds);
  t.cpu_ns.reserve(kTimedAdds);
  t.faults.reserve(kTimedAdds);
  t.switches.reserve(kTimedAdds);
  std::vector<memfuse::NewRound> rounds;
  rounds.reserve(kTimedAdds);
  for (std::uint64_t i = 0; i < kTimedAdds; ++i) rounds.push_back(seed_round(i));
  memfuse::bench::paced(kTimedAdds, kTimedInterval, [&](std::uint64_t i, auto due) {
    const ThreadUsage u0 = ThreadUsage::now();
    const auto t0 = std::chrono::steady_clock::now();
    const bool refused = timed(rounds[i]);
    const auto t1 = std::chrono::steady_clock::now();
    const ThreadUsage u1 = ThreadUsage::now();
    untimed(rounds[i]);
    t.service_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    t.response_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - due).count());
    t.cpu_ns.push_back(u1.cpu_ns - u0.cpu_ns);
    t.faults.push_back(u1.faults - u0.faults);
    t.switches.push_back(u1.switches - u0.switches);
    if (refused) ++*overloaded;
  });
  stop.store(true);
  if (load.joinable()) load.join();
  return t;
}

void report(benchmark::State& state, const Regime& regime, const Timings& t,
            std::uint64_t overloaded) {
  const auto p = percentiles(t.service_ns);
  state.counters["p50_us"] = p.p50_us;
  state.counters["p99_us"] = p.p99_us;
  state.counters["p999_us"] = p.p999_us;
  state.counters["max_us"] = p.max_us;
  const auto r = percentiles(t.response_ns);
  state.counters["response_p50_us"] = r.p50_us;
  state.counters["response_p99_us"] = r.p99_us;
  state.counters["response_p999_us"] = r.p999_us;
  state.counters["overloaded"] = static_cast<double>(overloaded);
  // Why calls missed the goal (see the header).
  constexpr std::int64_t kGoalNs = 10'000;
  std::uint64_t over = 0, faulted = 0, switched = 0, on_cpu = 0;
  for (std::size_t i = 0; i < t.service_ns.size(); ++i) {
    if (t.service_ns[i] <= kGoalNs) continue;
    ++over;
    if (t.faults[i] > 0) {
      ++faulted;
    } else if (t.switches[i] > 0) {
      ++switched;
    } else if (10 * t.cpu_ns[i] >= 9 * t.service_ns[i]) {
      ++on_cpu;
    }
  }
  const double calls = static_cast<double>(std::max<std::size_t>(t.service_ns.size(), 1));
  auto pct = [&](std::uint64_t n) { return 100.0 * static_cast<double>(n) / calls; };
  state.counters["over_10us_pct"] = pct(over);
  state.counters["faulted_pct"] = pct(faulted);
  state.counters["switched_pct"] = pct(switched);
  state.counters["on_cpu_pct"] = pct(on_cpu);
  state.counters["other_pct"] = pct(over - faulted - switched - on_cpu);
  state.counters["timed_adds"] = static_cast<double>(t.service_ns.size());
  state.SetLabel(regime.name);
}

// The control's work: `rounds` rounds of xorshift and a read-modify-write
// in a 16 KiB table (an embedder's access pattern), no allocation.
std::uint64_t arithmetic(std::uint64_t rounds) {
  static thread_local std::array<std::uint32_t, 4096> table{};
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  for (std::uint64_t i = 0; i < rounds; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    table[x & 4095] += static_cast<std::uint32_t>(x >> 32);
  }
  return x + table[0];
}

// How many rounds of arithmetic() take `target` on this host now: the median
// of 201 closed-loop timings, scaled.
std::uint64_t calibrate(std::chrono::nanoseconds target) {
  constexpr std::uint64_t kProbe = 2'000;
  std::vector<std::int64_t> ns;
  for (int i = 0; i < 201; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(arithmetic(kProbe));
    ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(ns.begin(), ns.begin() + 100, ns.end());
  return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(static_cast<double>(kProbe) * static_cast<double>(target.count()) /
                                                                static_cast<double>(std::max<std::int64_t>(ns[100], 1))));
}

// The control's work, and the memory it keeps per call (none, or as much as
// a buffered round holds: its text, its 384-float vector, the bookkeeping).
struct Control {
  std::uint64_t rounds = 0;
  std::size_t keep_bytes = 0;
};

// The production pipeline in `regime`; the timed thread calls add() or runs
// the control.
void run_production(benchmark::State& state, const Regime& regime, std::optional<Control> control) {
  for (auto _ : state) {
    memfuse::bench::ScratchDir dir(std::string("add-prod-") + regime.name);
    memfuse::Config config;
    config.sqlite.path = dir.file("memfuse.db");
    config.sqlite.synchronous = memfuse::SqliteSynchronous::Normal;
    config.sqlite.busy_timeout_ms = 60'000;
    auto& hb = config.buffer.hybrid_buffer;
    hb.max_size = regime.max_size;
    hb.enable_auto_flush = false;
    hb.max_pending_rounds = 1'000'000;
    hb.max_pending_bytes = std::size_t{1} << 30;
    auto& fm = config.buffer.flush_manager;
    fm.max_workers = regime.workers;
    fm.max_queue_size = regime.queue;
    fm.enable_auto_flush = false;
    memfuse::AsioRuntime rt({.io_threads = 1, .blocking_threads = 3});
    auto pipeline = memfuse::Pipeline::open(rt, config);
    if (!pipeline) {
      state.SkipWithError(pipeline.error().to_string().c_str());
      return;
    }
    auto& buffer = (*pipeline)->buffer();
    std::uint64_t overloaded = 0;
    Timings ns;
    {
      memfuse::bench::WriteLockStaller staller(config.sqlite.path, regime.hold, regime.period);
      auto add = [&](memfuse::NewRound r) {
        auto receipt = buffer.add(std::move(r));
        return !receipt && receipt.error().code() == memfuse::ErrorCode::Overloaded;
      };
      std::vector<std::unique_ptr<char[]>> kept;
      if (control) {
        kept.reserve(kTimedAdds);
        ns = drive(
            regime, add,
            [&](memfuse::NewRound&) {
              benchmark::DoNotOptimize(arithmetic(control->rounds));
              if (control->keep_bytes > 0) {  // new memory, written, kept: a growing buffer's pages
                kept.push_back(std::make_unique_for_overwrite<char[]>(control->keep_bytes));
                std::memset(kept.back().get(), 1, control->keep_bytes);
              }
              return false;
            },
            [&](memfuse::NewRound& r) {
              if (control->keep_bytes == 0) (void)add(std::move(r));
            },
            &overloaded);
      } else {
        ns = drive(regime, add, [&](memfuse::NewRound& r) { return add(std::move(r)); },
                   [](memfuse::NewRound&) {}, &overloaded);
      }
    }
    state.PauseTiming();
    std::promise<memfuse::HybridDrainReport> drained;
    buffer.drain(rt.clock().now() + 120s, [&](memfuse::HybridDrainReport r) { drained.set_value(std::move(r)); });
    const auto drain_report = drained.get_future().get();
    const auto stats = buffer.stats();
    const auto fm_stats = (*pipeline)->manager().stats();
    report(state, regime, ns, overloaded);
    state.counters["flushes"] = static_cast<double>(stats.total_successful_flushes);
    state.counters["queue_full"] = static_cast<double>(fm_stats.rejected_queue_full);
    state.counters["unpersisted"] = static_cast<double>(drain_report.unpersisted.size());
    state.ResumeTiming();
    if (!drain_report.completed_in_time) {
      const std::string why = "the drain did not complete: " + nlohmann::json::parse(stats.to_json()).dump();
      state.SkipWithError(why.c_str());
    }
  }
}

void BM_AddLatencyProduction(benchmark::State& state) {
  run_production(state, kRegimes[state.range(0)], std::nullopt);
}

// As long as a median add() on an idle buffer (BM_AddCallCost's mean, about
// 4 us here); fixed, so every regime's control does the same work.
constexpr auto kControlLength = std::chrono::microseconds(4);
// What memory_bench counts per buffered round at 384 dimensions (payload
// ~2 KiB, x1.25).
constexpr std::size_t kRoundFootprint = 2'600;

// Arguments: the regime, and whether the control keeps kRoundFootprint bytes
// of new memory per call (in the idle regime the buffer only grows).
void BM_AddLatencyFloor(benchmark::State& state) {
  const Control control{calibrate(kControlLength), state.range(1) != 0 ? kRoundFootprint : 0};
  run_production(state, kRegimes[state.range(0)], control);
  state.counters["control_rounds"] = static_cast<double>(control.rounds);
  state.counters["keep_bytes"] = static_cast<double>(control.keep_bytes);
}

void BM_AddLatencyLegacy(benchmark::State& state) {
  const Regime& regime = kRegimes[state.range(0)];
  for (auto _ : state) {
    memfuse::bench::ScratchDir dir(std::string("add-legacy-") + regime.name);
    memfuse::SqliteStoreOptions so;
    so.path = dir.file("memfuse.db");
    so.synchronous = memfuse::SqliteSynchronous::Normal;
    so.busy_timeout_ms = 60'000;
    auto rounds = memfuse::SqliteRoundStore::open(so);
    auto vectors = memfuse::SqliteVectorStore::open(so, 384);
    if (!rounds || !vectors) {
      state.SkipWithError("cannot open the SQLite stores");
      return;
    }
    memfuse::AsioRuntime rt({.io_threads = 1, .blocking_threads = 1});
    memfuse::HashingEmbedder embedder(384);
    memfuse::sim::legacy::LegacySyncBuffer buffer(rt, **rounds, **vectors, embedder,
                                                  {.max_size = regime.max_size});
    std::uint64_t overloaded = 0;
    std::uint64_t failed = 0;
    Timings ns;
    {
      memfuse::bench::WriteLockStaller staller(so.path, regime.hold, regime.period);
      auto add = [&](memfuse::NewRound r) {
        if (!buffer.add(std::move(r))) ++failed;
        return false;
      };
      ns = drive(regime, add, [&](memfuse::NewRound& r) { return add(std::move(r)); },
                 [](memfuse::NewRound&) {}, &overloaded);
    }
    state.PauseTiming();
    if (!buffer.flush()) ++failed;
    report(state, regime, ns, overloaded);
    state.counters["failed"] = static_cast<double>(failed);
    state.ResumeTiming();
  }
}

// The CPU cost of one add() on an idle buffer, closed loop: what the
// latencies above are made of (validation, id, chunking, embedding, append).
constexpr std::uint64_t kCostAdds = 20'000;

void BM_AddCallCost(benchmark::State& state) {
  memfuse::bench::ScratchDir dir("add-cost");
  memfuse::Config config;
  config.sqlite.path = dir.file("memfuse.db");
  config.buffer.hybrid_buffer.max_size = 1'000'000;
  config.buffer.hybrid_buffer.enable_auto_flush = false;
  config.buffer.hybrid_buffer.max_pending_rounds = 10'000'000;
  config.buffer.hybrid_buffer.max_pending_bytes = std::size_t{8} << 30;
  memfuse::AsioRuntime rt({.io_threads = 1, .blocking_threads = 1});
  auto pipeline = memfuse::Pipeline::open(rt, config);
  auto& buffer = (*pipeline)->buffer();
  std::vector<memfuse::NewRound> rounds;
  for (std::uint64_t i = 0; i < kCostAdds; ++i) rounds.push_back(seed_round(i));
  std::size_t next = 0;
  for (auto _ : state) benchmark::DoNotOptimize(buffer.add(std::move(rounds[next++])));
  std::promise<void> drained;
  buffer.drain(rt.clock().now() + 600s, [&](memfuse::HybridDrainReport) { drained.set_value(); });
  drained.get_future().wait();
}
BENCHMARK(BM_AddCallCost)->Iterations(kCostAdds);

void BM_EmbedOneChunk(benchmark::State& state) {
  memfuse::HashingEmbedder embedder(384);
  const auto r = seed_round(7);
  const std::string text = r.messages[0].content + "\n" + r.messages[1].content;
  for (auto _ : state) benchmark::DoNotOptimize(embedder.embed(text));
}
BENCHMARK(BM_EmbedOneChunk);

// The floor under a call that starts a flush: handing work to a sleeping
// thread (a mutex, a flag, a condition variable's notify), paced like the
// timed client above. One add() in max_size (1 % of the timed calls in the
// flushing regimes) cuts a batch and pays one such wake-up to start it.
void BM_WakeASleepingThread(benchmark::State& state) {
  for (auto _ : state) {
    std::mutex mutex;
    std::condition_variable cv;
    std::uint64_t posted = 0, taken = 0;
    bool stop = false;
    std::thread sleeper([&] {
      std::unique_lock lock(mutex);
      while (!stop) {
        cv.wait(lock, [&] { return stop || taken < posted; });
        taken = posted;
      }
    });
    std::vector<std::int64_t> ns;
    ns.reserve(kTimedAdds);
    memfuse::bench::paced(kTimedAdds, kTimedInterval, [&](std::uint64_t, auto) {
      const auto t0 = std::chrono::steady_clock::now();
      {
        std::lock_guard lock(mutex);
        ++posted;
      }
      cv.notify_one();
      const auto t1 = std::chrono::steady_clock::now();
      ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    });
    {
      std::lock_guard lock(mutex);
      stop = true;
    }
    cv.notify_one();
    sleeper.join();
    const auto p = percentiles(ns);
    state.counters["p50_us"] = p.p50_us;
    state.counters["p99_us"] = p.p99_us;
    state.counters["p999_us"] = p.p999_us;
  }
}
BENCHMARK(BM_WakeASleepingThread)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK(BM_AddLatencyProduction)->DenseRange(0, 3)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AddLatencyFloor)
    ->ArgsProduct({{0, 1, 2, 3}, {0}})
    ->Args({0, 1})
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AddLatencyLegacy)->DenseRange(0, 3)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
