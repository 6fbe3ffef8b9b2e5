// QdrantVectorStore: the vector leg over Qdrant's REST API, through the
// HttpTransport port (Boost.Beast in production, FakeQdrant in simulation).
//
// What it sends (Qdrant v1.x):
//   GET  /collections/{c}                       does the collection exist?
//   PUT  /collections/{c}                       {"vectors": {"size": D, "distance": "Cosine"}}
//   PUT  /collections/{c}/points?wait=true      upsert; ids are point_id_for(chunk id), so a
//                                               retry overwrites the same points
//   POST /collections/{c}/points/query          {"query": [...], "limit": k, "with_payload": true,
//                                                "filter": {"must": [{"key": "session_id",
//                                                           "match": {"value": s}}]}}
// Payload of every point: {"round_id", "session_id", "chunk_index", "text"}.
// Every request carries the api-key header when a key is configured. The key
// is never logged, traced, or put into an error message.
//
// The collection is ensured (created when missing; its size checked when
// present) before the first upsert, and again after a 404.
//
// Upserts are split so that no request body exceeds max_request_bytes (a
// single point larger than that goes alone). A write counts only when the
// response says result.status == "completed".
//
// Response mapping (check_write_response, parse_query_response):
//   200 + completed       success
//   200, anything else    Unavailable, retryable (not applied yet, or unreadable)
//   400                   InvalidArgument, final (a malformed request or a dimension mismatch)
//   401, 403              Unavailable, final (check qdrant.api_key)
//   404                   NotFound, retryable for writes (the collection is re-ensured);
//                         for a query: no collection yet, so no results
//   408                   Timeout, retryable
//   429                   Unavailable, retryable (rate limited)
//   5xx                   Unavailable, retryable
//   other statuses        Unavailable, final
//   transport errors      as the transport reports them (resets and timeouts retryable)
//
// Thread-safety: put() and search() may be called from any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "memfuse/config.h"
#include "memfuse/http_transport.h"
#include "memfuse/logger.h"
#include "memfuse/store.h"

namespace memfuse {

struct QdrantStoreOptions {
  std::string collection = "memfuse_chunks";
  std::string api_key;  // empty: no api-key header
  int dimension = 384;
  std::size_t max_request_bytes = 5u << 20;

  [[nodiscard]] static QdrantStoreOptions from(const Config& c) {
    return {c.vector_store.qdrant.collection, c.vector_store.qdrant.api_key, c.embedding.dimension,
            c.vector_store.qdrant.max_request_bytes};
  }
};

class QdrantVectorStore final : public VectorStore {
 public:
  // InvalidArgument for an empty or unsafe collection name (it goes into URL
  // paths: [A-Za-z0-9_-], 1..255), dimension < 1, or max_request_bytes < 1 KiB.
  // The transport must outlive the store and every call made through it.
  [[nodiscard]] static Result<std::unique_ptr<QdrantVectorStore>> create(
      HttpTransport& transport, QdrantStoreOptions options, Logger logger = {});
  ~QdrantVectorStore() override;

  StoreCallPtr put(ChunkBatch chunks, const Executor& completion,
                   StoreHandler<void> done) override;
  StoreCallPtr search(std::string session, std::vector<float> query, std::size_t top_k,
                      const Executor& completion,
                      StoreHandler<std::vector<ScoredChunk>> done) override;
  // Ensures the collection now (put() does it on its own when needed).
  StoreCallPtr ensure_collection(const Executor& completion, StoreHandler<void> done);

  // Requests sent so far (to observe batching).
  [[nodiscard]] std::uint64_t requests_sent() const noexcept;

  struct Impl;

 private:
  explicit QdrantVectorStore(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

namespace qdrant {

// The status mapping above, for a write (collection create or upsert).
// Exposed for tests and fuzzing: the response comes from an untrusted peer.
[[nodiscard]] Result<void> check_write_response(const HttpResponse& response);
// A query's response: the scored points with their payloads, best first.
// Points whose payload is malformed or belongs to another session are
// refused as Corrupt (a server must never return them through our filter).
[[nodiscard]] Result<std::vector<ScoredChunk>> parse_query_response(const HttpResponse& response,
                                                                    std::string_view session);
// The upsert bodies for `chunks`, split at max_request_bytes.
[[nodiscard]] std::vector<std::string> upsert_bodies(const std::vector<EmbeddedChunk>& chunks,
                                                     std::size_t max_request_bytes);

}  // namespace qdrant

}  // namespace memfuse
