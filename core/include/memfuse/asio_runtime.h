// AsioRuntime: the production runtime.
//
//   - executor: an io_context run by `io_threads` threads;
//   - clock: std::chrono::steady_clock, anchored at construction to Unix time
//     (monotonic, and its milliseconds are Unix milliseconds for round ids);
//   - timers: asio::steady_timer;
//   - random: xoshiro256** seeded from std::random_device, or from `seed`;
//   - blocking work: a pool of `blocking_threads` threads with a queue of at
//     most `blocking_queue_limit` waiting functions.
//
// Construction starts the threads. Destruction is orderly: blocking work still
// queued completes with operation_canceled, running work finishes, the pool
// joins, then the io_context stops and its threads join; handlers still queued
// then are destroyed without running. Drain your FlushManager and HybridBuffer
// first, and destroy every object that uses the runtime (timers, transports)
// before the runtime itself.
//
// Thread-safety: every member may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "memfuse/runtime.h"

namespace memfuse {

struct AsioRuntimeOptions {
  int io_threads = 2;                     // threads running the io_context; >= 1
  int blocking_threads = 4;               // threads for blocking work; >= 1
  std::size_t blocking_queue_limit = 4096;  // waiting functions before submit refuses
  std::optional<std::uint64_t> seed;      // fixed seed for Random (tests); else random_device
  // The runtime's threads are background threads: on Linux they run under
  // SCHED_BATCH, so waking one (a flush that add() starts, a finished write)
  // never preempts the application's thread on its CPU; they still get their
  // share of CPU time. Measured on 2 cores: add() p99 during flushes 26-34 us
  // -> 21-27 us, p999 150-270 us -> 40-210 us (bench/add_latency_bench).
  // Best effort: where the policy cannot be set, the threads keep the default.
  bool background_scheduling = true;
};

class AsioRuntime final : public Runtime {
 public:
  explicit AsioRuntime(AsioRuntimeOptions options = {});
  ~AsioRuntime() override;
  AsioRuntime(const AsioRuntime&) = delete;
  AsioRuntime& operator=(const AsioRuntime&) = delete;

  [[nodiscard]] const Executor& executor() const noexcept override;
  [[nodiscard]] Clock& clock() noexcept override;
  [[nodiscard]] Random& random() noexcept override;
  [[nodiscard]] BlockingWork& blocking() noexcept override;
  [[nodiscard]] std::unique_ptr<Timer> make_timer(const Executor& completion) override;

  // Stops as the destructor does; idempotent. Afterwards nothing runs.
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace memfuse
