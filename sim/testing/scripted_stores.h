// In-memory RoundStore and VectorStore with scripted faults, for testing
// HybridBuffer on any runtime with exact control: each put() plays the next
// step of its script (succeed, fail, hang, apply-then-fail) after a latency,
// through the runtime's timers. They count every row written, so a test can
// see duplicates (a write of an id already present is counted, and ignored,
// as ON CONFLICT DO NOTHING would).
//
// Thread-safety: a mutex guards the rows, so integration tests may use them
// from real threads too.
#pragma once

#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "memfuse/runtime.h"
#include "memfuse/store.h"

namespace memfuse::testing {

enum class StoreStep {
  // Effects apply when the call reports, after the latency (a cancelled
  // call applies nothing).
  Succeed,        // apply, then report success
  FailRetryable,  // report Unavailable (retryable); nothing applied
  FailFinal,      // report InvalidArgument (final); nothing applied
  ApplyThenFail,  // apply, then report Unavailable: the caller cannot know it applied
  Hang,           // apply nothing, never report (until cancelled)
};

struct StoreScript {
  std::deque<StoreStep> steps;  // consumed one per put(); when empty: Succeed
  Duration latency{};           // of every put()
  Duration read_latency{};      // of every read
  bool hang_reads = false;      // reads never answer (until cancelled)
};

class ScriptedStoreBase {
 public:
  explicit ScriptedStoreBase(Runtime& runtime) : runtime_(runtime) {}
  void set_script(StoreScript s) {
    std::lock_guard lock(mutex_);
    script_ = std::move(s);
  }
  void push(StoreStep step) {
    std::lock_guard lock(mutex_);
    script_.steps.push_back(step);
  }
  [[nodiscard]] std::uint64_t put_calls() const {
    std::lock_guard lock(mutex_);
    return put_calls_;
  }
  [[nodiscard]] std::uint64_t hung_calls() const {
    std::lock_guard lock(mutex_);
    return hung_;
  }

 protected:
  StoreStep next_step();
  // Posts `fn(cancelled)` to `completion` after the latency, or on cancel.
  StoreCallPtr later(const Executor& completion, bool hang, std::move_only_function<void(bool)> fn,
                     bool read = false);

  Runtime& runtime_;
  mutable std::mutex mutex_;
  StoreScript script_;
  std::uint64_t put_calls_ = 0;
  std::uint64_t hung_ = 0;
};

class ScriptedRoundStore final : public RoundStore, public ScriptedStoreBase {
 public:
  using ScriptedStoreBase::ScriptedStoreBase;
  StoreCallPtr put(RoundBatch rounds, const Executor& completion, StoreHandler<void> done) override;
  StoreCallPtr get(RoundId id, const Executor& completion,
                   StoreHandler<std::optional<Round>> done) override;
  StoreCallPtr list(std::string session, std::size_t limit, const Executor& completion,
                    StoreHandler<std::vector<Round>> done) override;

  [[nodiscard]] std::map<RoundId, Round> rows() const;
  [[nodiscard]] std::map<RoundId, int> writes() const;  // row writes per id, duplicates included

 private:
  std::map<RoundId, Round> rows_;
  std::map<RoundId, int> writes_;
};

class ScriptedVectorStore final : public VectorStore, public ScriptedStoreBase {
 public:
  using ScriptedStoreBase::ScriptedStoreBase;
  StoreCallPtr put(ChunkBatch chunks, const Executor& completion, StoreHandler<void> done) override;
  StoreCallPtr search(std::string session, std::vector<float> query, std::size_t top_k,
                      const Executor& completion,
                      StoreHandler<std::vector<ScoredChunk>> done) override;

  [[nodiscard]] std::map<ChunkId, EmbeddedChunk> rows() const;
  [[nodiscard]] std::map<ChunkId, int> writes() const;

 private:
  std::map<ChunkId, EmbeddedChunk> rows_;
  std::map<ChunkId, int> writes_;
};

}  // namespace memfuse::testing
