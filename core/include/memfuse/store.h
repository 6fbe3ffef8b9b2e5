// The store ports HybridBuffer flushes to and reads from: asynchronous,
// idempotent, cancellable.
//
//   RoundStore   the relational leg: rounds by id, per session in seq order.
//                Production: SqliteRoundStore run on the BlockingWork port
//                (make_sqlite_round_store below).
//   VectorStore  the vector leg: chunks with their vectors, exact or
//                approximate top-k per session. Production: SqliteVectorStore
//                on the BlockingWork port (the embedded default), or
//                QdrantVectorStore over the HTTP transport port.
//
// Contract shared by every implementation:
//   - put() is idempotent, keyed by round id (rounds) or chunk id (chunks): a
//     retry after an unknown outcome never duplicates anything;
//   - every call completes exactly once, never inline: `done` is posted to the
//     `completion` executor the caller names;
//   - cancel() on the returned handle asks the call to stop (sqlite3_interrupt,
//     closing the HTTP exchange); the call then completes with Cancelled, or
//     with its real result if that came first. A cancelled put's effect is
//     unknown (it may have committed): callers retry, and idempotence makes
//     that harmless;
//   - sessions never mix: every stored row carries its own session id, and
//     reads filter on it.
//
// Thread-safety: calls may be made from any thread; completions run on the
// executor given.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "memfuse/error.h"
#include "memfuse/round.h"
#include "memfuse/runtime.h"
#include "memfuse/sqlite_vector_store.h"

namespace memfuse {

class StoreCall {
 public:
  virtual ~StoreCall() = default;
  virtual void cancel() noexcept = 0;  // idempotent; harmless after completion
};

using StoreCallPtr = std::shared_ptr<StoreCall>;

template <typename T>
using StoreHandler = std::move_only_function<void(Result<T>)>;

using RoundBatch = std::shared_ptr<const std::vector<Round>>;
using ChunkBatch = std::shared_ptr<const std::vector<EmbeddedChunk>>;

class RoundStore {
 public:
  virtual ~RoundStore() = default;
  virtual StoreCallPtr put(RoundBatch rounds, const Executor& completion,
                           StoreHandler<void> done) = 0;
  virtual StoreCallPtr get(RoundId id, const Executor& completion,
                           StoreHandler<std::optional<Round>> done) = 0;
  // The `limit` rounds of `session` with the highest seq, in ascending seq order.
  virtual StoreCallPtr list(std::string session, std::size_t limit, const Executor& completion,
                            StoreHandler<std::vector<Round>> done) = 0;
};

class VectorStore {
 public:
  virtual ~VectorStore() = default;
  virtual StoreCallPtr put(ChunkBatch chunks, const Executor& completion,
                           StoreHandler<void> done) = 0;
  // The `top_k` chunks of `session` most similar to `query`, best first.
  virtual StoreCallPtr search(std::string session, std::vector<float> query, std::size_t top_k,
                              const Executor& completion,
                              StoreHandler<std::vector<ScoredChunk>> done) = 0;
};

// The SQLite stores on the runtime's BlockingWork port (a pool thread in
// production, inline with modelled latency in simulation). Operation kinds:
// "sqlite.write" for put, "sqlite.read" for the rest. Reads and writes use
// separate connections and never queue behind each other. Cancelling a call that
// is running interrupts that call's statement only. The store must outlive
// the adapter and every call made through it.
[[nodiscard]] std::unique_ptr<RoundStore> make_sqlite_round_store(
    Runtime& runtime, std::shared_ptr<SqliteRoundStore> store);
[[nodiscard]] std::unique_ptr<VectorStore> make_sqlite_vector_store(
    Runtime& runtime, std::shared_ptr<SqliteVectorStore> store);

}  // namespace memfuse
