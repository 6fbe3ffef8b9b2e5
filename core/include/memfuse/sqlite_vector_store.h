// SqliteVectorStore: the embedded default vector store. Chunk vectors live as
// BLOBs in the same SQLite file as the rounds; search is an exact cosine top-k
// over one session's chunks. No server, no index to tune, exact answers.
//
// Like SqliteRoundStore it is synchronous (run it through the BlockingWork
// port), idempotent (keyed by (round id, chunk index), ON CONFLICT DO
// NOTHING), uses prepared statements only, and maps errors the same way.
// Sessions never mix: every row carries its chunk's own session id, and
// search filters on it.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "memfuse/chunk.h"
#include "memfuse/error.h"
#include "memfuse/sqlite_round_store.h"

namespace memfuse {

struct EmbeddedChunk {
  Chunk chunk;
  std::vector<float> vector;  // embedding.dimension values
};

struct ScoredChunk {
  Chunk chunk;
  double score = 0;  // cosine similarity to the query
};

class SqliteVectorStore {
 public:
  // REQUIRES: dimension >= 1 (embedding.dimension).
  [[nodiscard]] static Result<std::unique_ptr<SqliteVectorStore>> open(SqliteStoreOptions options,
                                                                       int dimension);
  ~SqliteVectorStore();
  SqliteVectorStore(const SqliteVectorStore&) = delete;
  SqliteVectorStore& operator=(const SqliteVectorStore&) = delete;

  // One transaction; chunks already stored are left as they are. Returns how
  // many were new. InvalidArgument if a vector has the wrong dimension.
  [[nodiscard]] Result<std::size_t> put(std::span<const EmbeddedChunk> chunks);
  // The `top_k` chunks of `session` most similar to `query`, best first (ties by id).
  [[nodiscard]] Result<std::vector<ScoredChunk>> search(std::string_view session,
                                                        std::span<const float> query,
                                                        std::size_t top_k);
  [[nodiscard]] Result<std::uint64_t> count();
  void interrupt() noexcept;        // the write (put) running now
  void interrupt_reads() noexcept;  // the search running now (reads use a second connection)

 private:
  struct Impl;
  explicit SqliteVectorStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace memfuse
