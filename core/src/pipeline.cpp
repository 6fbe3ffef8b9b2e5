#include "memfuse/pipeline.h"

#include <fmt/format.h>

#include "memfuse/beast_http_transport.h"
#include "memfuse/qdrant_vector_store.h"
#include "memfuse/sqlite_round_store.h"
#include "memfuse/sqlite_vector_store.h"

namespace memfuse {

Pipeline::~Pipeline() = default;

Result<std::unique_ptr<Pipeline>> Pipeline::open(Runtime& runtime, const Config& config,
                                                 Logger logger, PipelineOptions options) {
  if (auto ok = config.validate(); !ok) return Unexpected(ok.error());
  std::unique_ptr<Pipeline> p(new Pipeline());
  p->embedder_ = options.embedder ? options.embedder
                                  : std::make_shared<HashingEmbedder>(config.embedding.dimension);
  if (p->embedder_->dimension() != config.embedding.dimension) {
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("embedding.dimension is {} but the embedder produces {} values",
                            config.embedding.dimension, p->embedder_->dimension()));
  }
  SqliteStoreOptions sqlite = SqliteStoreOptions::from(config.sqlite);
  sqlite.vfs = options.sqlite_vfs;
  sqlite.write_lock = std::make_shared<std::mutex>();  // rounds and vectors share the file
  auto rounds = SqliteRoundStore::open(sqlite);
  if (!rounds) return Unexpected(rounds.error());
  p->sqlite_rounds_ = std::move(*rounds);
  auto max_seq = p->sqlite_rounds_->max_seq();
  if (!max_seq) return Unexpected(max_seq.error());
  p->round_store_ = make_sqlite_round_store(runtime, p->sqlite_rounds_);

  if (config.vector_store.kind == VectorStoreKind::Sqlite) {
    auto vectors = SqliteVectorStore::open(sqlite, config.embedding.dimension);
    if (!vectors) return Unexpected(vectors.error());
    p->sqlite_vectors_ = std::move(*vectors);
    p->vector_store_ = make_sqlite_vector_store(runtime, p->sqlite_vectors_);
  } else {
    HttpTransport* transport = options.transport;
    if (transport == nullptr) {
      const auto& q = config.vector_store.qdrant;
      auto t = BeastHttpTransport::create(
          runtime, HttpTransportOptions{q.url, q.connect_timeout, q.request_timeout,
                                        q.max_response_bytes, q.ca_file, 8});
      if (!t) return Unexpected(t.error());
      p->owned_transport_ = std::move(*t);
      transport = p->owned_transport_.get();
    }
    auto q = QdrantVectorStore::create(*transport, QdrantStoreOptions::from(config), logger);
    if (!q) return Unexpected(q.error());
    p->vector_store_ = std::move(*q);
  }

  auto manager = FlushManager::create(runtime, config.buffer.flush_manager, logger);
  if (!manager) return Unexpected(manager.error());
  p->manager_ = std::move(*manager);

  HybridBufferOptions bo;
  bo.buffer = config.buffer.hybrid_buffer;
  bo.chunking = config.chunking;
  bo.first_seq = *max_seq + 1;
  bo.read_timeout = config.buffer.flush_manager.default_timeout;
  bo.on_flush_failed = std::move(options.on_flush_failed);
  auto buffer = HybridBuffer::create(runtime, *p->manager_, *p->round_store_, *p->vector_store_,
                                     *p->embedder_, std::move(bo), std::move(logger));
  if (!buffer) return Unexpected(buffer.error());
  p->buffer_ = std::move(*buffer);
  return p;
}

}  // namespace memfuse
