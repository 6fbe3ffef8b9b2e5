// Fuzz target: round and message validation (UTF-8, sizes, roles), then
// chunking and embedding of what validation accepts.
// The input is split at 0xFF bytes (never valid UTF-8, so never inside a
// valid field): session, user (empty: none), then role/content pairs.
// Properties: validation never crashes; an accepted round has a session and
// messages of known roles with valid UTF-8 within the limits; its chunks are
// valid (validate_chunk) and cover every message; its embeddings are finite
// unit vectors of the configured dimension.
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "memfuse/chunker.h"
#include "memfuse/embedder.h"
#include "memfuse/validation.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> fields(1);
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0xFF) {
      fields.emplace_back();
    } else {
      fields.back().push_back(static_cast<char>(data[i]));
    }
  }
  memfuse::Round round;
  round.session_id = fields[0];
  if (fields.size() > 1 && !fields[1].empty()) round.user_id = fields[1];
  for (std::size_t i = 2; i + 1 < fields.size(); i += 2) {
    round.messages.push_back(memfuse::Message{fields[i], fields[i + 1]});
  }
  const memfuse::RoundLimits limits{.max_message_bytes = 512, .max_messages_per_round = 8};
  auto ok = memfuse::validate_round(round, limits);
  if (!ok) {
    FUZZ_CHECK(ok.error().code() == memfuse::ErrorCode::InvalidArgument, "error code");
    FUZZ_CHECK(!ok.error().message().empty(), "error message");
    return 0;
  }
  FUZZ_CHECK(!round.session_id.empty() && memfuse::is_valid_utf8(round.session_id), "session");
  FUZZ_CHECK(!round.messages.empty() && round.messages.size() <= 8, "message count");
  for (const auto& m : round.messages) {
    FUZZ_CHECK(memfuse::is_known_role(m.role), "role");
    FUZZ_CHECK(!m.content.empty() && m.content.size() <= 512, "content size");
    FUZZ_CHECK(memfuse::is_valid_utf8(m.content), "content UTF-8");
  }
  const auto chunks = memfuse::chunk_round(round, 64);
  FUZZ_CHECK(!chunks.empty(), "an accepted round has chunks");
  static const memfuse::HashingEmbedder embedder(16);
  for (const auto& c : chunks) {
    FUZZ_CHECK(memfuse::validate_chunk(c).has_value(), "valid chunk");
    FUZZ_CHECK(c.text.size() <= 64, "chunk size");
    auto v = embedder.embed(c.text);
    FUZZ_CHECK(v.has_value(), "embedding");
    FUZZ_CHECK(memfuse::validate_embedding(*v, 16).has_value(), "finite, right dimension");
  }
  return 0;
}
