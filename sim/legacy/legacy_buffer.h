// LegacyBuffer: the original synchronous MemFuse buffer, for the seed report
// only - never shipped in core. One lock is held across the whole flush: an
// add() that fills the buffer writes SQLite, then Qdrant, then returns, and
// every other request (adds and reads alike) waits for that lock. This is the
// design the seed document's "Original Implementation" describes, and the one
// whose API calls waited 10+ seconds behind a flush.
//
// It runs on the simulated runtime: storage calls go through the BlockingWork
// port with the kinds "sqlite.write", "sqlite.read" and "qdrant.upsert", so
// the same latency model drives it and the production pipeline.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_set>
#include <vector>

#include "memfuse/round.h"
#include "memfuse/sim/sim_runtime.h"

namespace memfuse::sim::legacy {

class LegacyBuffer {
 public:
  LegacyBuffer(SimRuntime& runtime, int max_size);

  // Completes (on the runtime's executor) when the round is buffered - and,
  // if it filled the buffer, flushed to both stores.
  void add(Round round, std::move_only_function<void()> done);
  // Reads a session's context under the same lock.
  void list(std::string session, std::move_only_function<void()> done);
  // Flushes what is left (at the end of a run).
  void flush(std::move_only_function<void()> done);

  [[nodiscard]] std::size_t persisted() const noexcept { return stored_.size(); }
  [[nodiscard]] bool stored(const RoundId& id) const { return stored_.contains(id); }
  // [start, end) of every flush, in virtual time.
  [[nodiscard]] const std::vector<std::pair<TimePoint, TimePoint>>& flushes() const noexcept { return flushes_; }

 private:
  void acquire(std::move_only_function<void()> critical_section);
  void release();
  void flush_locked(std::move_only_function<void()> then);

  SimRuntime& runtime_;
  int max_size_;
  bool locked_ = false;
  std::deque<std::move_only_function<void()>> waiters_;
  std::vector<Round> buffer_;
  std::unordered_set<RoundId> stored_;
  std::vector<std::pair<TimePoint, TimePoint>> flushes_;
};

}  // namespace memfuse::sim::legacy
