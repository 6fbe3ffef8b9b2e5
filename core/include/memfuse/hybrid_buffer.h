// HybridBuffer: what applications call. It buffers conversation rounds,
// chunks and embeds them, and flushes them through FlushManager to a round
// store (SQLite) and a vector store (SQLite vectors or Qdrant), keeping every
// invariant in DESIGN.md.
//
// A round's life:
//   add()      validates it, gives it an id (UUIDv7) and a seq, chunks and
//              embeds it, and appends it to the buffer. It never waits on
//              storage or on a flush: the critical section appends and
//              counts, nothing more. Past max_pending_rounds or
//              max_pending_bytes (buffered + in flight) it answers
//              Overloaded and changes nothing.
//   trigger    size (max_size rounds buffered) -> NORMAL; the auto-flush
//              timer (hybrid_buffer.auto_flush_interval, and the flush
//              manager's tick) -> LOW; flush() -> HIGH; drain() -> CRITICAL.
//   in flight  the buffer's rounds move, in one step under the lock, into an
//              in-flight batch that reads still see, and a task goes to the
//              FlushManager. If the queue refuses it, the rounds go back at
//              once, in order, and stay buffered.
//   legs       each attempt writes the legs not yet acknowledged: the rounds
//              to the round store and the chunks to the vector store, at
//              once. A leg acknowledged once is never written again for that
//              batch, so a retry after "SQLite committed, Qdrant failed"
//              redoes only Qdrant. Both writes are idempotent (by round id,
//              by chunk id), so an attempt that timed out after its effect
//              duplicates nothing.
//   success    both legs acknowledged: the batch leaves the in-flight set.
//   failure    retries exhausted, a final error, or the delivery deadline:
//              the batch returns to the buffer ahead of newer rounds, in its
//              original (seq) order, and on_flush_failed fires with its ids.
//   drain      drain(deadline) stops intake, flushes what is buffered at
//              CRITICAL, waits for what is in flight, and hands back, in the
//              report, every round it could not persist.
//
// Sessions never mix: a batch may hold several sessions' rounds, and every
// row (round or chunk) carries its own session id into both stores; reads
// filter on it. No row is ever attributed to the batch's "session".
//
// Reads merge, in this order, the buffer and the in-flight batches (one
// snapshot under the lock) and then the stores, dedupe by id, and order by
// seq (search: by score, ties by chunk id). Because the memory snapshot is
// taken before the store is read, and a batch leaves the in-flight set only
// after its legs are durable, a round acknowledged before the read began is
// always seen: there is no read gap. A store error fails the read (it never
// silently returns less), and so does a store that does not answer within
// read_timeout (Timeout, retryable).
//
// Threading: add(), flush(), reads, stats() and drain() may be called from
// any thread. Callbacks (read results, flush handlers, on_flush_failed, the
// drain report) run on the buffer's strand on the runtime's executor, never
// inline in the call that caused them.
//
// Lifetime: the runtime, FlushManager, stores and embedder outlive the
// buffer. Destroy it only after drain() has reported (asserted in debug).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "memfuse/config.h"
#include "memfuse/embedder.h"
#include "memfuse/error.h"
#include "memfuse/flush_manager.h"
#include "memfuse/logger.h"
#include "memfuse/round.h"
#include "memfuse/runtime.h"
#include "memfuse/store.h"

namespace memfuse {

// What a caller hands to add(); the buffer assigns id, seq and created_at.
struct NewRound {
  std::string session_id;
  std::optional<std::string> user_id;
  std::vector<Message> messages;
};

struct AddReceipt {
  RoundId id;
  std::uint64_t seq = 0;
  std::size_t chunks = 0;
};

enum class FlushTrigger : std::uint8_t { Size, Timer, Manual, Drain };
inline constexpr int kFlushTriggerCount = 4;
[[nodiscard]] std::string_view to_string(FlushTrigger t) noexcept;
[[nodiscard]] Priority priority_of(FlushTrigger t) noexcept;

// A batch that failed for good and went back to the buffer.
struct FlushFailure {
  TaskId task;
  FlushTrigger trigger = FlushTrigger::Size;
  Error error;
  std::vector<RoundId> rounds;  // in seq order
};

struct HybridDrainReport {
  bool completed_in_time = false;  // everything acknowledged is durable
  std::vector<Round> unpersisted;  // what could not be persisted, in seq order, with its data
};

struct HybridBufferStats {
  // The seed's get_stats, counted correctly.
  std::uint64_t total_rounds_received = 0;  // add() calls that succeeded
  std::uint64_t total_chunks_created = 0;
  std::uint64_t total_flushes = 0;          // batches handed to the FlushManager
  std::uint64_t total_auto_flushes = 0;     // ... by the size or timer trigger
  std::uint64_t total_manual_flushes = 0;   // ... by flush()
  std::size_t pending_flush_tasks = 0;      // batches in flight now
  std::size_t buffer_rounds = 0;            // current_buffer_size.rounds
  std::size_t buffer_chunks = 0;            // current_buffer_size.chunks
  std::optional<TimePoint> last_flush_time; // last batch made durable (runtime clock)
  // More.
  std::uint64_t total_successful_flushes = 0;
  std::uint64_t total_failed_flushes = 0;   // batches restored after a final failure
  std::array<std::uint64_t, kFlushTriggerCount> flushes_by_trigger{};
  std::uint64_t rounds_persisted = 0;       // rounds of successful batches
  std::uint64_t rounds_restored = 0;        // rounds put back after a final failure
  std::uint64_t leg_writes_skipped = 0;     // retries that skipped an acknowledged leg
  std::uint64_t flush_submit_rejected = 0;  // batches the queue refused (rounds stayed buffered)
  std::uint64_t rejected_invalid = 0;       // add() -> InvalidArgument
  std::uint64_t rejected_overloaded = 0;    // add() -> Overloaded
  std::uint64_t rejected_shutting_down = 0; // add() -> ShuttingDown
  // Memory for a growing buffer, touched ahead off the callers' threads (see
  // hybrid_buffer.cpp, Buffered): runs of it started, and chunk vectors put
  // in it by add().
  std::uint64_t prepared_runs_started = 0;
  std::uint64_t prepared_vectors_used = 0;
  std::size_t prepared_vectors_ready = 0;   // touched, waiting for a chunk now
  std::size_t in_flight_rounds = 0;
  std::size_t pending_rounds = 0;           // buffered + in flight
  std::size_t pending_bytes = 0;            // payload bytes buffered + in flight
  FlushStats flush_manager;

  [[nodiscard]] std::string to_json() const;
};

struct HybridBufferOptions {
  HybridBufferConfig buffer;
  ChunkingConfig chunking;
  std::uint64_t first_seq = 1;  // a restarted buffer continues after the store's max_seq
  std::optional<Duration> flush_timeout;  // per attempt; default: the manager's default_timeout
  // A read (get, list, search) that waits longer than this on a store is
  // cancelled and fails with Timeout (retryable): a hung store never hangs a reader.
  Duration read_timeout = std::chrono::seconds(30);
  std::move_only_function<void(const FlushFailure&)> on_flush_failed;
};

class HybridBuffer {
 public:
  // Validates the options (InvalidArgument names the key) and arms the
  // auto-flush timer if enabled. The embedder's dimension must be the
  // vector store's.
  [[nodiscard]] static Result<std::unique_ptr<HybridBuffer>> create(
      Runtime& runtime, FlushManager& manager, RoundStore& rounds, VectorStore& vectors,
      const Embedder& embedder, HybridBufferOptions options, Logger logger = {});
  ~HybridBuffer();
  HybridBuffer(const HybridBuffer&) = delete;
  HybridBuffer& operator=(const HybridBuffer&) = delete;

  // InvalidArgument (the round or its embedding; nothing changes),
  // Overloaded (a pending bound; nothing changes), ShuttingDown (drain began).
  [[nodiscard]] Result<AddReceipt> add(NewRound round);

  // Flushes what is buffered now at HIGH. `on_durable` gets success once
  // every round acknowledged before this call is durable in both stores, or
  // the first error (a final failure of a batch it waits for, a refused
  // submission, a drain).
  void flush(std::move_only_function<void(Result<void>)> on_durable = {});

  void get(RoundId id, std::move_only_function<void(Result<std::optional<Round>>)> done);
  // Reads refuse malformed arguments with InvalidArgument (through `done`,
  // like every result): a session id that add() would refuse, a limit or
  // top_k outside 1..kMaxReadCount, search text that is empty, not UTF-8, or
  // longer than max_message_bytes.
  static constexpr std::size_t kMaxReadCount = 10'000;

  // The `limit` most recent rounds of `session` (by seq), in ascending seq order.
  void list(std::string session, std::size_t limit,
            std::move_only_function<void(Result<std::vector<Round>>)> done);
  // The `top_k` chunks of `session` most similar to `text`, best first.
  void search(std::string session, std::string text, std::size_t top_k,
              std::move_only_function<void(Result<std::vector<ScoredChunk>>)> done);

  // Stops intake, flushes everything at CRITICAL, waits for in-flight work,
  // and drains the FlushManager with `deadline`. `done` gets the report once.
  void drain(TimePoint deadline, std::move_only_function<void(HybridDrainReport)> done);

  [[nodiscard]] HybridBufferStats stats() const;

  // The ids of the rounds buffered and in flight now, each in seq order: what
  // is not yet known to be durable (for monitoring and the simulator).
  struct Pending {
    std::vector<RoundId> buffered;
    std::vector<RoundId> in_flight;
  };
  [[nodiscard]] Pending pending() const;

  struct Impl;

 private:
  explicit HybridBuffer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace memfuse
