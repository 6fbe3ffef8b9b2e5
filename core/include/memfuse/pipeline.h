// Pipeline: the whole flush path assembled from a Config - the embedded
// default (SQLite rounds + SQLite vectors in one file, the hashing embedder),
// or Qdrant for vectors when vector_store.kind is "qdrant".
//
//   auto p = Pipeline::open(runtime, config, logger);   // opens the file, migrates
//   p->buffer().add({...});
//   p->buffer().drain(deadline, [](HybridDrainReport r) { ... });
//
// open() blocks (it opens SQLite and reads max(seq) so a restarted buffer
// continues after what is stored); call it before serving, not from a
// handler. For Qdrant it makes a BeastHttpTransport on the runtime unless a
// transport is passed in (the simulator passes FakeQdrant).
//
// Lifetime: drain the buffer before destroying the pipeline; the runtime
// outlives it.
#pragma once

#include <memory>

#include "memfuse/config.h"
#include "memfuse/embedder.h"
#include "memfuse/error.h"
#include "memfuse/flush_manager.h"
#include "memfuse/http_transport.h"
#include "memfuse/hybrid_buffer.h"
#include "memfuse/logger.h"
#include "memfuse/runtime.h"
#include "memfuse/store.h"

namespace memfuse {

struct PipelineOptions {
  // Used instead of the hashing embedder when set; its dimension must equal
  // embedding.dimension.
  std::shared_ptr<const Embedder> embedder;
  // Used for Qdrant instead of a new BeastHttpTransport when set; must
  // outlive the pipeline.
  HttpTransport* transport = nullptr;
  // SQLite VFS name (the simulator's fault-injecting VFS); empty: real files.
  std::string sqlite_vfs;
  std::move_only_function<void(const FlushFailure&)> on_flush_failed;
};

class Pipeline {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Pipeline>> open(Runtime& runtime, const Config& config,
                                                              Logger logger = {},
                                                              PipelineOptions options = {});
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  [[nodiscard]] HybridBuffer& buffer() noexcept { return *buffer_; }
  [[nodiscard]] FlushManager& manager() noexcept { return *manager_; }
  [[nodiscard]] RoundStore& round_store() noexcept { return *round_store_; }
  [[nodiscard]] VectorStore& vector_store() noexcept { return *vector_store_; }
  [[nodiscard]] const Embedder& embedder() const noexcept { return *embedder_; }
  // The synchronous SQLite stores underneath (for tools and tests).
  [[nodiscard]] SqliteRoundStore& sqlite_rounds() noexcept { return *sqlite_rounds_; }
  // Null when vectors go to Qdrant.
  [[nodiscard]] SqliteVectorStore* sqlite_vectors() noexcept { return sqlite_vectors_.get(); }

 private:
  Pipeline() = default;
  // Destroyed in reverse: the buffer first, the transport last.
  std::unique_ptr<HttpTransport> owned_transport_;
  std::shared_ptr<const Embedder> embedder_;
  std::shared_ptr<SqliteRoundStore> sqlite_rounds_;
  std::shared_ptr<SqliteVectorStore> sqlite_vectors_;
  std::unique_ptr<RoundStore> round_store_;
  std::unique_ptr<VectorStore> vector_store_;
  std::unique_ptr<FlushManager> manager_;
  std::unique_ptr<HybridBuffer> buffer_;
};

}  // namespace memfuse
