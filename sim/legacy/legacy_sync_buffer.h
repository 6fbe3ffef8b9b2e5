// LegacySyncBuffer: the original synchronous MemFuse buffer on real threads,
// for the benchmarks only - never shipped in core.
//
// One lock is held across the whole flush: an add() that fills the buffer
// writes the batch to SQLite (rounds), then the vectors, then returns, and
// every other add() waits for that lock meanwhile. It is LegacyBuffer's
// design (legacy_buffer.h, which runs on the simulated runtime for the seed
// report) with real stores instead of modelled latency.
//
// To be fair to it, it does what production add() does outside its lock
// outside the lock too: validation, the id, chunking and embedding.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "memfuse/embedder.h"
#include "memfuse/error.h"
#include "memfuse/hybrid_buffer.h"
#include "memfuse/runtime.h"
#include "memfuse/sqlite_round_store.h"
#include "memfuse/sqlite_vector_store.h"

namespace memfuse::sim::legacy {

struct LegacySyncOptions {
  int max_size = 5;                     // rounds that trigger the flush inside add()
  std::size_t chunk_size_bytes = 1024;
  RoundLimits limits{};
};

class LegacySyncBuffer {
 public:
  LegacySyncBuffer(Runtime& runtime, SqliteRoundStore& rounds, SqliteVectorStore& vectors,
                   const Embedder& embedder, LegacySyncOptions options);

  // Blocks while another thread's add() flushes, and flushes itself when it
  // fills the buffer. A failed flush keeps the batch for the next one.
  [[nodiscard]] Result<void> add(NewRound round);
  // Flushes what is buffered.
  [[nodiscard]] Result<void> flush();

 private:
  Result<void> flush_locked();

  Runtime& runtime_;
  SqliteRoundStore& rounds_;
  SqliteVectorStore& vectors_;
  const Embedder& embedder_;
  LegacySyncOptions options_;
  std::mutex mutex_;
  std::uint64_t next_seq_ = 1;
  std::vector<Round> buffer_;
  std::vector<EmbeddedChunk> chunks_;
};

}  // namespace memfuse::sim::legacy
