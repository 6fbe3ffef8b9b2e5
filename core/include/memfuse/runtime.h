// The runtime ports: the only way production code meets time, timers,
// randomness, scheduling and blocking work.
//
// Everything nondeterministic enters through a Runtime passed in by
// constructor. Two implementations exist:
//   - AsioRuntime (memfuse/asio_runtime.h): io_context on N threads, a steady
//     clock, steady_timer, a bounded pool of threads for blocking work, and a
//     generator seeded from std::random_device (or a given seed).
//   - SimRuntime (sim/): one thread, a seeded scheduler, a virtual clock that
//     jumps to the next timer, blocking work run inline with modelled latency.
// The production objects are the same code on both; they never ask which.
//
// The executor port is Asio's executor model itself (memfuse/executor.h), so
// that asio::post, asio::strand and any_io_executor work on both sides. This
// header is kept free of Asio: code that only needs time, timers, randomness
// or blocking work includes just this.
//
// Ordering guarantees common to both runtimes:
//   - A completion handler (timer, blocking work) is never invoked inside the
//     call that started the operation; it is posted to the executor the caller
//     named, so it runs serialised with the caller's strand.
//   - Each started operation completes exactly once, with success or with
//     std::errc::operation_canceled / asio's operation_aborted; never twice,
//     never not at all while the runtime runs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <system_error>

#include "memfuse/time.h"

namespace memfuse {

class Executor;  // memfuse/executor.h: Asio's any_io_executor behind an opaque name

// Clock: the runtime's monotonic time. Never goes backwards.
// Thread-safety: now() may be called from any thread of the runtime.
class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual TimePoint now() const noexcept = 0;
};

// Random: a seeded generator for jitter and id bits. Production seeds it from
// std::random_device unless given a seed; simulation from the run's seed.
// Thread-safety: next_u64() may be called from any thread (production locks).
class Random {
 public:
  virtual ~Random() = default;
  [[nodiscard]] virtual std::uint64_t next_u64() noexcept = 0;

  // Uniform in [0, bound). REQUIRES: bound > 0.
  [[nodiscard]] std::uint64_t uniform(std::uint64_t bound) noexcept;
  // Uniform in [0, 1).
  [[nodiscard]] double uniform01() noexcept;
  // True with probability p (p <= 0: never; p >= 1: always).
  [[nodiscard]] bool chance(double p) noexcept;
};

// A deterministic generator (xoshiro256**, seeded through splitmix64). Not
// thread-safe: each owner guards it or keeps it on one thread.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(std::uint64_t seed) noexcept;
  [[nodiscard]] std::uint64_t next_u64() noexcept override;

 private:
  std::uint64_t s_[4];
};

using WaitHandler = std::move_only_function<void(std::error_code)>;

// Timer: waits until a time point on the runtime clock, then posts its
// handler to the executor it was made for. One wait may be outstanding at a
// time (asserted); a wait whose deadline has fired no longer is, even if its
// handler has not run yet, so the timer may be re-armed at once. Cancelling
// completes the outstanding wait with std::errc::operation_canceled (equal to
// asio::error::operation_aborted) and returns true; with nothing outstanding
// it returns false. A handler whose deadline has already fired still runs
// with success, even if the Timer is cancelled, re-armed or destroyed
// meanwhile: callers must check, in the handler, that the wait is still the
// one they care about. Destroying a Timer cancels its outstanding wait.
// Thread-safety: a Timer is used from one strand at a time.
class Timer {
 public:
  virtual ~Timer() = default;
  virtual void async_wait_until(TimePoint deadline, WaitHandler handler) = 0;
  virtual bool cancel() noexcept = 0;
};

// Set by a canceller, polled by blocking work (e.g. from a SQLite progress
// handler). The work may also register an interrupt function, run once on
// cancellation from the cancelling thread (e.g. sqlite3_interrupt).
// Thread-safety: all members may be called from any thread.
class CancelToken {
 public:
  virtual ~CancelToken() = default;
  [[nodiscard]] virtual bool cancelled() const noexcept = 0;
  // Runs `interrupt` at once if already cancelled. Replaces any earlier one.
  virtual void on_cancel(std::function<void()> interrupt) const = 0;
};

// A handle to submitted blocking work, for cancellation.
class BlockingHandle {
 public:
  virtual ~BlockingHandle() = default;
  // Requests cancellation. Queued work then never runs; running work sees its
  // token cancelled. Either way `done` completes with operation_canceled
  // (the outcome of work that had already started is then unknown to the
  // caller, as for any timed-out storage call). Idempotent.
  virtual void cancel() noexcept = 0;
};

using BlockingFunction = std::move_only_function<void(const CancelToken&)>;

// BlockingWork: runs a function away from the event loop (production: a
// bounded pool of threads; simulation: inline, completing after a modelled
// latency, or never until cancelled when a hang is modelled), then posts
// done(ec) to `completion`. `kind` names the operation for latency models and
// traces ("sqlite.write", "qdrant.upsert"): a static string.
//   ec == {}                 the function ran to the end;
//   ec == operation_canceled cancel() came first (see BlockingHandle);
//   ec == resource_unavailable_try_again  the pool's queue was full; the
//                            function never ran.
// Thread-safety: submit() may be called from any thread.
class BlockingWork {
 public:
  virtual ~BlockingWork() = default;
  virtual std::shared_ptr<BlockingHandle> submit(std::string_view kind, const Executor& completion,
                                                 BlockingFunction work, WaitHandler done) = 0;
};

// Runtime: the bundle of ports handed to production objects.
class Runtime {
 public:
  virtual ~Runtime() = default;
  [[nodiscard]] virtual const Executor& executor() const noexcept = 0;
  [[nodiscard]] virtual Clock& clock() noexcept = 0;
  [[nodiscard]] virtual Random& random() noexcept = 0;
  [[nodiscard]] virtual BlockingWork& blocking() noexcept = 0;
  // A timer whose handlers are posted to `completion` (e.g. a strand).
  [[nodiscard]] virtual std::unique_ptr<Timer> make_timer(const Executor& completion) = 0;
};

}  // namespace memfuse
