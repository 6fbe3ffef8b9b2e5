// FlushManager: a bounded priority queue of flush tasks, run by a pool of
// asynchronous workers, with a timeout per attempt, retries with backoff and
// jitter, an auto-flush tick, drain, and stats.
//
// What it fixes in the Python original:
//   - order is (priority, sequence) and nothing else: CRITICAL, HIGH, NORMAL,
//     LOW, equal priorities in submission order (the original reversed the
//     priorities and compared tasks on ties). The queue holds only keys; the
//     payload is type-erased and never inspected, so no payload is ever
//     compared: any payload type works, with or without operator<;
//   - a full queue answers QueueFull at once (reject policy) or completes the
//     submission later (wait policy); no thread ever blocks;
//   - drain() runs or hands back every task; nothing is abandoned silently.
//
// Task life: submit() -> queued -> an attempt runs (a worker slot) -> success,
// or a retryable error / timeout -> backoff -> queued again with its original
// sequence number (so it never falls behind later work of its priority) ->
// ... until success, a non-retryable error, max_retries, or the delivery
// deadline. Each task's completion callback receives exactly one final
// outcome: Success, Failed(error, attempts), TimedOut, or Cancelled.
//
// Bounds: at most max_workers attempts run at once; at most max_queue_size
// tasks are accepted and unfinished (queued, running, or waiting to retry);
// under the wait policy at most max_queue_size submissions wait for space.
// A new submission waits behind those already waiting. The manager keeps the
// objects of up to max_queue_size finished tasks for reuse (their user data
// released), as a vector keeps its capacity.
//
// Timeouts: at an attempt's deadline its cancellation hooks run, its worker
// slot is freed at that same instant, and the attempt's outcome is Timeout. A
// later complete() from that attempt changes nothing but the
// late_completions counter.
//
// Threading: submit(), stats() and set_tick_handler() may be called from any
// thread. Everything else - attempts, completion callbacks, the tick, drain
// reports - runs on the manager's strand on the runtime's executor, never
// inline in the call that caused it and never under the manager's lock.
// Attempt::complete() may be called from any thread.
//
// Determinism: time, timers and jitter come from the Runtime; the same inputs
// on the simulated runtime give the same schedule.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "memfuse/config.h"
#include "memfuse/error.h"
#include "memfuse/logger.h"
#include "memfuse/priority.h"
#include "memfuse/runtime.h"
#include "memfuse/time.h"

namespace memfuse {

// "<kind>-<ms>-<sequence>", e.g. "hybrid-1750168589000-1": the seed's format,
// with the runtime clock's milliseconds. Sequence numbers increase with each
// submission; a refused submission uses one up, so accepted ids may skip.
using TaskId = std::string;

enum class TaskStatus : std::uint8_t { Success, Failed, TimedOut, Cancelled };

[[nodiscard]] std::string_view to_string(TaskStatus s) noexcept;

struct TaskOutcome {
  TaskId id;
  TaskStatus status = TaskStatus::Success;
  int attempts = 0;            // attempts started
  std::optional<Error> error;  // the last error, for every status but Success
};

// One attempt of a task, handed to the task's attempt function.
// Thread-safety: every member may be called from any thread.
class Attempt {
 public:
  virtual ~Attempt() = default;
  // The task's id, held by the attempt itself: valid while the attempt lives.
  [[nodiscard]] virtual std::string_view task_id() const noexcept = 0;
  [[nodiscard]] virtual int number() const noexcept = 0;  // 1 for the first attempt
  [[nodiscard]] virtual TimePoint deadline() const noexcept = 0;
  // Reports the attempt's result. The first call decides; a call after the
  // attempt timed out or was cancelled is a late completion and is ignored.
  virtual void complete(Result<void> result) = 0;
  // Runs `fn` once when the attempt is cancelled (timeout, drain deadline,
  // stop), or at once if it already is.
  virtual void on_cancel(std::function<void()> fn) = 0;
  [[nodiscard]] virtual bool cancelled() const noexcept = 0;
};

// Starts one attempt. Called on the manager's strand, once per attempt; it
// must not block: it starts asynchronous work and returns.
using AttemptFn = std::move_only_function<void(std::shared_ptr<Attempt>)>;
// Receives the task's one final outcome and its payload back.
using CompletionFn = std::move_only_function<void(const TaskOutcome&, std::shared_ptr<void>)>;

struct TaskSpec {
  std::string kind = "flush";       // 1..64 of [a-z0-9_]; the first part of the TaskId
  Priority priority = Priority::Normal;
  std::optional<Duration> timeout;  // per attempt; default FlushManagerConfig::default_timeout
  std::shared_ptr<void> payload;    // never inspected; handed back in outcomes and drain reports
  AttemptFn attempt;                // required
  CompletionFn on_complete;         // optional
};

// Builds a TaskSpec with a typed payload. Payload needs no operator<, no
// copy, nothing: the manager never looks inside it.
template <typename Payload, typename Attempt_, typename Complete>
[[nodiscard]] TaskSpec make_task(std::string kind, Priority priority,
                                 std::shared_ptr<Payload> payload, Attempt_ attempt,
                                 Complete on_complete) {
  TaskSpec spec;
  spec.kind = std::move(kind);
  spec.priority = priority;
  spec.payload = payload;
  spec.attempt = [payload, attempt = std::move(attempt)](std::shared_ptr<Attempt> a) mutable {
    attempt(std::move(a), *payload);
  };
  spec.on_complete = [on_complete = std::move(on_complete)](const TaskOutcome& outcome,
                                                            std::shared_ptr<void> p) mutable {
    on_complete(outcome, std::static_pointer_cast<Payload>(std::move(p)));
  };
  return spec;
}

struct UnfinishedTask {
  TaskId id;
  std::string kind;
  Priority priority = Priority::Normal;
  int attempts = 0;
  std::shared_ptr<void> payload;
};

// What drain() or stop() hands back: every task that did not finish, with its
// payload. Each of those tasks' completion callbacks also receives Cancelled.
struct DrainReport {
  bool completed_in_time = false;  // everything finished before the deadline
  std::vector<UnfinishedTask> unfinished;
};

struct LatencySummary {
  std::uint64_t count = 0;
  Duration min{}, mean{}, max{}, p50{}, p99{};
};

struct FlushStats {
  // Counters. They add up: submitted == succeeded + failed + timed_out +
  // cancelled + queue_depth + active_workers + backing_off + waiting_admission.
  std::uint64_t submitted = 0;          // submissions that returned a TaskId
  std::uint64_t started = 0;            // attempts started
  std::uint64_t succeeded = 0;          // final outcomes, by status
  std::uint64_t failed = 0;
  std::uint64_t timed_out = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t retried = 0;            // attempts after the first
  std::uint64_t attempt_timeouts = 0;   // attempts that hit their deadline
  std::uint64_t late_completions = 0;   // complete() after timeout or cancel
  std::uint64_t rejected_queue_full = 0;      // submit() -> QueueFull
  std::uint64_t rejected_shutting_down = 0;   // submit() -> ShuttingDown
  std::uint64_t rejected_invalid = 0;         // submit() -> InvalidArgument
  // Gauges.
  std::size_t queue_depth = 0;          // tasks waiting for a worker
  std::size_t queue_depth_max = 0;
  std::size_t active_workers = 0;       // attempts running
  std::size_t backing_off = 0;          // tasks waiting to retry
  std::size_t waiting_admission = 0;    // wait policy: submissions waiting for space
  std::array<std::size_t, kPriorityCount> queued_by_priority{};  // queue_depth, by priority
  std::array<std::uint64_t, kPriorityCount> submitted_by_priority{};
  std::array<std::uint64_t, kPriorityCount> succeeded_by_priority{};
  LatencySummary attempt_latency;       // from attempt start to its end (any outcome)

  [[nodiscard]] std::uint64_t rejected() const noexcept {
    return rejected_queue_full + rejected_shutting_down + rejected_invalid;
  }
  [[nodiscard]] std::string to_json() const;
};

// What the manager does, event by event, for an observer (metrics, the
// simulator's invariant checkers). `seq` is the task's sequence number, the
// second half of its ordering key.
struct FlushEvent {
  enum class Kind : std::uint8_t {
    Queued,    // entered the queue (first time, or again after a backoff)
    Started,   // an attempt started on a worker slot
    Completed, // the attempt reported (success or failure) and freed its slot
    TimedOut,  // the attempt hit its deadline and freed its slot
    Finished,  // the task's final outcome (status)
  };
  Kind kind = Kind::Queued;
  std::uint64_t seq = 0;
  Priority priority = Priority::Normal;
  int attempt = 0;                 // Started, Completed, TimedOut
  std::size_t slot = 0;            // Started, Completed, TimedOut
  TimePoint at{};                  // runtime clock
  TimePoint deadline{};            // Started, Completed, TimedOut: the attempt's deadline
  TaskStatus status = TaskStatus::Success;  // Finished
};

using FlushObserver = std::function<void(const FlushEvent&)>;

class FlushManager {
 public:
  // Validates the configuration (InvalidArgument names the key) and starts
  // the auto-flush tick if enabled.
  [[nodiscard]] static Result<std::unique_ptr<FlushManager>> create(Runtime& runtime,
                                                                    FlushManagerConfig config,
                                                                    Logger logger = {});
  // REQUIRES: drain() or stop() has reported, or nothing was ever submitted.
  // Otherwise pending tasks are dropped without outcomes (asserted in debug).
  ~FlushManager();
  FlushManager(const FlushManager&) = delete;
  FlushManager& operator=(const FlushManager&) = delete;

  // Accepts a task, or says why not: QueueFull (reject policy, or the wait
  // list is full too), ShuttingDown (a drain has begun), InvalidArgument (bad
  // kind, timeout <= 0, priority out of range, no attempt function).
  [[nodiscard]] Result<TaskId> submit(TaskSpec task);

  // The auto-flush tick: every flush_interval while enable_auto_flush, on the
  // strand. Replaces any earlier handler. HybridBuffer uses it for LOW flushes.
  void set_tick_handler(std::move_only_function<void()> on_tick);

  // Receives every FlushEvent, synchronously and in order, on the strand
  // under the manager's lock: it must be quick and must not call the
  // manager. Set it before the first submit(). Replaces any earlier one.
  void set_observer(FlushObserver observer);

  // Stops intake, runs what is queued, waits for attempts in flight. At
  // `deadline` cancels what remains. `done` receives the report, once.
  void drain(TimePoint deadline, std::move_only_function<void(DrainReport)> done);
  // drain() with the deadline now.
  void stop(std::move_only_function<void(DrainReport)> done);

  [[nodiscard]] FlushStats stats() const;

  struct Impl;

 private:
  explicit FlushManager(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace memfuse
