// A toy workload for testing the runtimes and the schedulers, written only
// against the runtime ports, so that it runs unchanged on SimRuntime and on
// AsioRuntime (real threads).
//
// A writer stages a batch of `steps` items, one handler per item (each step
// posts the next), then publishes the batch, persists it through blocking
// work, and confirms it on a timer. A reader, posted independently, observes
// what is published.
//
// The planted bug (planted_bug = true): the writer publishes every step, and
// the reader mishandles the one intermediate state `observe_at`. Seeing it
// needs two ordering constraints at once (writer step observe_at before the
// reader, the reader before step observe_at + 1): a bug of depth 2 in PCT's
// sense. A uniformly random scheduler finds it with probability about
// 2^-(observe_at+1) per run; PCT with d = 2 about 1/(2k).
//
// Thread-safety: the shared state is guarded by a mutex, so the workload is
// race-free on real threads (checked under ThreadSanitizer).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "memfuse/runtime.h"

namespace memfuse::toy {

struct ToyOptions {
  int steps = 20;
  int observe_at = 10;
  bool planted_bug = false;
  // Called once, from a runtime thread, when the batch is confirmed and the
  // reader has run. Lets a real-thread test wait for the end without sleeping.
  std::function<void()> on_finished;
};

struct ToyOutcome {
  bool finished = false;      // published, persisted and confirmed
  bool bug_observed = false;  // the reader saw the intermediate state observe_at
  int observed = -1;          // what the reader saw
  int persisted = 0;          // items the blocking work stored
};

class ToyWorkload : public std::enable_shared_from_this<ToyWorkload> {
 public:
  static std::shared_ptr<ToyWorkload> create(Runtime& runtime, ToyOptions options);

  // Posts the writer's first step and the reader. Call once.
  void start();
  [[nodiscard]] ToyOutcome outcome() const;

 private:
  ToyWorkload(Runtime& runtime, ToyOptions options);
  void writer_step(int i);
  void publish_and_persist();
  void read();

  Runtime& runtime_;
  const ToyOptions options_;
  mutable std::mutex mutex_;
  int staged_ = 0;     // guarded by mutex_
  int published_ = 0;  // guarded by mutex_
  ToyOutcome outcome_;  // guarded by mutex_
  std::unique_ptr<Timer> confirm_timer_;
};

}  // namespace memfuse::toy
