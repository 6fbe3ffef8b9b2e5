#include "legacy_sync_buffer.h"

#include "memfuse/chunker.h"
#include "memfuse/validation.h"

namespace memfuse::sim::legacy {

LegacySyncBuffer::LegacySyncBuffer(Runtime& runtime, SqliteRoundStore& rounds,
                                   SqliteVectorStore& vectors, const Embedder& embedder,
                                   LegacySyncOptions options)
    : runtime_(runtime), rounds_(rounds), vectors_(vectors), embedder_(embedder),
      options_(options) {}

Result<void> LegacySyncBuffer::add(NewRound input) {
  Round round;
  round.session_id = std::move(input.session_id);
  round.user_id = std::move(input.user_id);
  round.messages = std::move(input.messages);
  if (auto ok = validate_round(round, options_.limits); !ok) return ok;
  const TimePoint now = runtime_.clock().now();
  round.id = make_round_id(to_millis(now), runtime_.random().next_u64(),
                           runtime_.random().next_u64());
  round.created_at = now;
  std::vector<EmbeddedChunk> chunks;
  for (Chunk& c : chunk_round(round, options_.chunk_size_bytes)) {
    auto v = embedder_.embed(c.text);
    if (!v) return Unexpected(v.error());
    chunks.push_back(EmbeddedChunk{std::move(c), std::move(*v)});
  }
  std::lock_guard lock(mutex_);
  round.seq = next_seq_++;
  buffer_.push_back(std::move(round));
  for (auto& c : chunks) chunks_.push_back(std::move(c));
  if (static_cast<int>(buffer_.size()) < options_.max_size) return {};
  return flush_locked();
}

Result<void> LegacySyncBuffer::flush() {
  std::lock_guard lock(mutex_);
  return flush_locked();
}

Result<void> LegacySyncBuffer::flush_locked() {
  if (buffer_.empty()) return {};
  if (auto r = rounds_.put(buffer_); !r) return Unexpected(r.error());
  if (auto v = vectors_.put(chunks_); !v) return Unexpected(v.error());
  buffer_.clear();
  chunks_.clear();
  return {};
}

}  // namespace memfuse::sim::legacy
