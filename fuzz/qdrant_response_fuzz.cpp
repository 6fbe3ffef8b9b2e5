// Fuzz target: the Qdrant response parser, on what an untrusted peer sends:
// an HTTP status (the input's first two bytes) and a body (the rest).
// Properties: it never crashes; an error's message is bounded (a peer must
// not be able to flood logs through us); a query's accepted points all
// belong to the session asked for and have their payload.
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "memfuse/qdrant_vector_store.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  memfuse::HttpResponse response;
  response.status = 100 + (data[0] << 8 | data[1]) % 500;
  response.body.assign(reinterpret_cast<const char*>(data + 2), size - 2);

  auto write = memfuse::qdrant::check_write_response(response);
  if (!write) FUZZ_CHECK(write.error().message().size() <= 2048, "bounded message");

  auto points = memfuse::qdrant::parse_query_response(response, "session-a");
  if (!points) {
    FUZZ_CHECK(points.error().message().size() <= 2048, "bounded message");
    return 0;
  }
  // 404 means "no collection yet": no points, by design.
  if (!points->empty()) FUZZ_CHECK(response.status == 200, "points only from a 200 answer");
  for (const auto& p : *points) {
    FUZZ_CHECK(p.chunk.session_id == "session-a", "no point of another session");
  }
  return 0;
}
