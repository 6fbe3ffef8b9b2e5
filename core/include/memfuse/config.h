// Config: every tunable of memfuse-flush, read from JSON.
//
// The JSON mirrors MemFuse's YAML (DESIGN.md, "Configuration"); every key is
// optional and defaults to the value documented here and in
// docs/configuration.md. Durations are JSON numbers of seconds unless the key
// ends in _ms. Parsing rejects, with the full JSON path of the key:
//   - an unknown key, suggesting the nearest known one
//     ("buffer.flush_manager.max_wrokers: unknown key (did you mean max_workers?)");
//   - a wrong type, or a value outside its documented range;
//   - an inconsistent pair (a flush timeout longer than the delivery deadline).
// All problems found are reported together, one per line, in one
// InvalidArgument Error. Parsing never throws.
//
// Thread-safety: a Config is a plain value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "memfuse/error.h"
#include "memfuse/time.h"
#include "memfuse/validation.h"

namespace memfuse {

using namespace std::chrono_literals;

// What submit() does when the flush queue holds max_queue_size tasks.
enum class QueueFullPolicy : std::uint8_t {
  Reject,  // fail at once with QueueFull (default: backpressure reaches the caller)
  Wait,    // complete asynchronously when space frees, or fail at queue_full_wait_s
};

enum class SqliteSynchronous : std::uint8_t {
  Normal,  // WAL + NORMAL: fast; a power loss may lose the last commits (not corrupt)
  Full,    // fsync on every commit: every acknowledged flush survives power loss
};

enum class VectorStoreKind : std::uint8_t {
  Sqlite,  // embedded default: vectors as BLOBs in the SQLite file, exact top-k
  Qdrant,  // Qdrant over REST
};

struct RetryConfig {
  int max_retries = 3;              // retries after the first attempt; 0..100
  Duration backoff_base = 100ms;    // first backoff; doubles per retry
  Duration backoff_cap = 10s;       // ceiling of one backoff
  double jitter = 0.2;              // +-fraction of each backoff drawn at random; 0..1
  friend bool operator==(const RetryConfig&, const RetryConfig&) = default;
};

struct FlushManagerConfig {
  int max_workers = 3;                  // attempts running at once; 1..256
  int max_queue_size = 100;             // queued tasks; 1..1,000,000
  Duration default_timeout = 30s;       // per attempt; (0, 1 day]
  Duration flush_interval = 60s;        // auto-flush tick period; (0, 1 day]
  bool enable_auto_flush = true;        // deliver the periodic tick at all
  QueueFullPolicy queue_full_policy = QueueFullPolicy::Reject;
  Duration queue_full_wait = 5s;        // Wait policy: how long a submission may wait
  RetryConfig retry;
  Duration delivery_deadline = 300s;    // from submit to the last retry; >= default_timeout
  friend bool operator==(const FlushManagerConfig&, const FlushManagerConfig&) = default;
};

struct HybridBufferConfig {
  int max_size = 5;                         // rounds that trigger a NORMAL flush
  Duration auto_flush_interval = 60s;       // LOW flush of whatever is buffered
  bool enable_auto_flush = true;
  std::size_t max_pending_rounds = 10'000;  // buffered + in flight; add() -> Overloaded past it
  std::size_t max_pending_bytes = 64u << 20;  // payload bytes buffered + in flight
  std::size_t max_message_bytes = 32u << 10;  // one message's content
  std::size_t max_messages_per_round = 100;
  friend bool operator==(const HybridBufferConfig&, const HybridBufferConfig&) = default;
};

struct SqliteConfig {
  std::string path = "memfuse.db";
  SqliteSynchronous synchronous = SqliteSynchronous::Normal;
  int busy_timeout_ms = 5000;  // how long a writer waits on a lock; 0..600,000
  friend bool operator==(const SqliteConfig&, const SqliteConfig&) = default;
};

struct QdrantConfig {
  std::string url = "http://localhost:6333";  // http:// or https:// (TLS, verified)
  std::string collection = "memfuse_chunks";
  std::string api_key;                        // sent as the api-key header; never logged
  std::string ca_file;                        // extra CA bundle for https; empty: system CAs
  Duration request_timeout = 10s;             // one HTTP exchange
  Duration connect_timeout = 5s;
  std::size_t max_request_bytes = 5u << 20;   // upserts are split above this; Qdrant caps 32 MiB
  std::size_t max_response_bytes = 64u << 20; // larger responses are refused
  friend bool operator==(const QdrantConfig&, const QdrantConfig&) = default;
};

struct VectorStoreConfig {
  VectorStoreKind kind = VectorStoreKind::Sqlite;
  QdrantConfig qdrant;
  friend bool operator==(const VectorStoreConfig&, const VectorStoreConfig&) = default;
};

struct EmbeddingConfig {
  int dimension = 384;  // 1..65,536; must match the vector store's collection
  friend bool operator==(const EmbeddingConfig&, const EmbeddingConfig&) = default;
};

struct ChunkingConfig {
  std::size_t chunk_size_bytes = 1024;  // longest chunk text; 16..1 MiB
  friend bool operator==(const ChunkingConfig&, const ChunkingConfig&) = default;
};

struct BufferConfig {
  FlushManagerConfig flush_manager;
  HybridBufferConfig hybrid_buffer;
  friend bool operator==(const BufferConfig&, const BufferConfig&) = default;
};

struct Config {
  BufferConfig buffer;
  SqliteConfig sqlite;
  VectorStoreConfig vector_store;
  EmbeddingConfig embedding;
  ChunkingConfig chunking;

  // Parses and validates. Errors are InvalidArgument (Io/NotFound for files).
  [[nodiscard]] static Result<Config> from_json(std::string_view json_text);
  [[nodiscard]] static Result<Config> from_file(const std::filesystem::path& path);

  // Validates a Config built in code (the same rules as parsing).
  [[nodiscard]] Result<void> validate() const;

  // Every key, defaults included; from_json(to_json()) == *this.
  [[nodiscard]] std::string to_json(int indent = 2) const;
  // The same with secrets (the Qdrant API key) replaced by "<redacted>": for logs.
  [[nodiscard]] std::string to_redacted_json(int indent = 2) const;

  [[nodiscard]] RoundLimits round_limits() const noexcept {
    return RoundLimits{buffer.hybrid_buffer.max_message_bytes,
                       buffer.hybrid_buffer.max_messages_per_round};
  }

  // The dotted JSON path of every key, in document order.
  [[nodiscard]] static std::vector<std::string> keys();

  friend bool operator==(const Config&, const Config&) = default;
};

[[nodiscard]] std::string_view to_string(QueueFullPolicy p) noexcept;
[[nodiscard]] std::string_view to_string(SqliteSynchronous s) noexcept;
[[nodiscard]] std::string_view to_string(VectorStoreKind k) noexcept;

}  // namespace memfuse
