// How the Qdrant model reads an upsert body (PUT /collections/{c}/points):
// {"points": [{"id": ..., "vector": [...], "payload": {...}}, ...]}.
//
// Two readers, one answer. `read_upsert_body_general` reads any body through
// nlohmann's SAX parser and decides every error, with the server's messages.
// `read_upsert_body_fast` reads only the plain shape clients send (string
// UUID ids, arrays of numbers, an object payload, nothing else) with no
// tokenizer per character, and returns nullopt for anything else: the
// general reader then has the last word. The fast reader exists because the
// general one was a third of a simulated run's time; the property test
// (property_tests/fake_qdrant_property_test.cpp) checks that whenever it
// answers, it answers exactly as the general reader does.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace memfuse::fakes {

struct UpsertPoint {
  std::string id;              // canonical text: a UUID in lower case, or decimal digits
  std::vector<float> vector;   // as sent (not normalised)
  std::string payload_json;    // the payload object, serialised by nlohmann ("{}" when absent)
  friend bool operator==(const UpsertPoint&, const UpsertPoint&) = default;
};

// The points in order, or the error message of Qdrant's HTTP 400.
using UpsertRead = std::variant<std::vector<UpsertPoint>, std::string>;

[[nodiscard]] UpsertRead read_upsert_body(std::string_view body, std::size_t dimension);
[[nodiscard]] UpsertRead read_upsert_body_general(std::string_view body, std::size_t dimension);
// No dimension check: read_upsert_body applies it to what this returns.
// `expected_dimension` only sizes each vector's memory ahead (0: none).
[[nodiscard]] std::optional<std::vector<UpsertPoint>> read_upsert_body_fast(std::string_view body,
                                                                          std::size_t expected_dimension = 0);

}  // namespace memfuse::fakes
