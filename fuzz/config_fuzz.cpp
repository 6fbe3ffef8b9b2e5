// Fuzz target: the configuration parser (Config::from_json).
// Properties: it never crashes; an error is InvalidArgument with a message;
// an accepted configuration validates, survives to_json -> from_json
// unchanged, and its redacted form never carries the Qdrant API key.
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "memfuse/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = memfuse::Config::from_json(text);
  if (!config) {
    FUZZ_CHECK(config.error().code() == memfuse::ErrorCode::InvalidArgument, "error code");
    FUZZ_CHECK(!config.error().message().empty(), "error message");
    return 0;
  }
  FUZZ_CHECK(config->validate().has_value(), "an accepted configuration validates");
  auto again = memfuse::Config::from_json(config->to_json());
  FUZZ_CHECK(again.has_value(), "to_json parses back");
  FUZZ_CHECK(*again == *config, "to_json round-trips");
  const auto& key = config->vector_store.qdrant.api_key;
  if (key.size() >= 12) {  // shorter keys can occur in the JSON by chance ("http", "Cosine"...)
    FUZZ_CHECK(config->to_redacted_json().find(key) == std::string::npos, "redacted");
  }
  return 0;
}
