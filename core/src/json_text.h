// JSON strings written straight into a buffer, for the stores' hot paths.
#pragma once

#include <string>
#include <string_view>

namespace memfuse::detail {

// `text` as a JSON string, appended to `out`: byte for byte what nlohmann's
// dump() writes for valid UTF-8 (", \ and the control characters escaped:
// \b \f \n \r \t by name, the others as \u00xx; every other byte as is), without
// a json value and a serializer per field (without them the durable-throughput
// benchmark's production rate rose 10-12 % at one worker and one pool thread;
// the Qdrant store's upsert bodies are built the same way).
// REQUIRES: `text` is valid UTF-8 (callers check; nlohmann would throw, or
// replace, where this copies the bytes).
void append_json_string(std::string& out, std::string_view text);

}  // namespace memfuse::detail
