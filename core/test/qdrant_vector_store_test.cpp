// The Qdrant client's response handling and request splitting, without a
// server: every status class, malformed bodies from an untrusted peer, and
// points that break the session filter.
#include "memfuse/qdrant_vector_store.h"

#include <cmath>
#include <cstring>
#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace memfuse {
namespace {

using ::testing::HasSubstr;

HttpResponse response(int status, std::string body) { return HttpResponse{status, {}, std::move(body)}; }

TEST(QdrantResponses, AWriteCountsOnlyWhenCompleted) {
  EXPECT_TRUE(qdrant::check_write_response(
      response(200, R"({"result":{"operation_id":1,"status":"completed"},"status":"ok"})")));
  EXPECT_TRUE(qdrant::check_write_response(response(200, R"({"result":true,"status":"ok"})")));
  auto ack = qdrant::check_write_response(
      response(200, R"({"result":{"operation_id":1,"status":"acknowledged"},"status":"ok"})"));
  ASSERT_FALSE(ack);
  EXPECT_EQ(ack.error().code(), ErrorCode::Unavailable);
  EXPECT_TRUE(ack.error().retryable());
  EXPECT_THAT(ack.error().message(), HasSubstr("acknowledged"));
}

TEST(QdrantResponses, MalformedBodiesAreRetryableNotCrashes) {
  for (const char* body : {"", "not json", "[]", "{}", R"({"result":null})", R"({"result":{"status":7}})",
                           R"({"result":{"status":"completed"})"}) {
    auto r = qdrant::check_write_response(response(200, body));
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code(), ErrorCode::Unavailable) << body;
    EXPECT_TRUE(r.error().retryable()) << body;
  }
}

TEST(QdrantResponses, StatusesMapToCodesAndRetryability) {
  struct Case { int status; ErrorCode code; bool retryable; };
  for (const Case c : {Case{400, ErrorCode::InvalidArgument, false}, Case{401, ErrorCode::Unavailable, false},
                       Case{403, ErrorCode::Unavailable, false}, Case{404, ErrorCode::NotFound, true},
                       Case{408, ErrorCode::Timeout, true}, Case{409, ErrorCode::Unavailable, false},
                       Case{429, ErrorCode::Unavailable, true}, Case{500, ErrorCode::Unavailable, true},
                       Case{502, ErrorCode::Unavailable, true}, Case{503, ErrorCode::Unavailable, true},
                       Case{302, ErrorCode::Unavailable, false}}) {
    auto r = qdrant::check_write_response(response(c.status, R"({"status":{"error":"boom"}})"));
    ASSERT_FALSE(r) << c.status;
    EXPECT_EQ(r.error().code(), c.code) << c.status;
    EXPECT_EQ(r.error().retryable(), c.retryable) << c.status;
    EXPECT_THAT(r.error().message(), HasSubstr("boom"));
  }
}

TEST(QdrantResponses, APeerMessageIsBoundedAndHasNoControlCharacters) {
  const std::string huge = nlohmann::json{{"status", {{"error", std::string(10000, 'x') + "\n\x1b[31m"}}}}.dump();
  auto r = qdrant::check_write_response(response(500, huge));
  ASSERT_FALSE(r);
  EXPECT_LT(r.error().message().size(), 400u);
  EXPECT_EQ(r.error().message().find('\n'), std::string::npos);
  EXPECT_EQ(r.error().message().find('\x1b'), std::string::npos);
}

std::string point(const std::string& session, double score = 0.5, std::string round = "") {
  if (round.empty()) round = make_round_id(1, 2, 3).to_string();
  return nlohmann::json{{"id", "x"}, {"score", score},
                        {"payload", {{"round_id", round}, {"session_id", session}, {"chunk_index", 2}, {"text", "t"}}}}
      .dump();
}

TEST(QdrantResponses, QueryResultsCarryTheirChunk) {
  auto r = qdrant::parse_query_response(
      response(200, R"({"result":{"points":[)" + point("s", 0.9) + "," + point("s", 0.1) + "]}}"), "s");
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].chunk.index, 2u);
  EXPECT_EQ((*r)[0].chunk.id, make_chunk_id(make_round_id(1, 2, 3), 2));
  EXPECT_DOUBLE_EQ((*r)[0].score, 0.9);
  auto none = qdrant::parse_query_response(response(404, "{}"), "s");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty()) << "no collection yet: nothing stored";
}

TEST(QdrantResponses, PointsOfAnotherSessionOrMalformedAreCorrupt) {
  for (const std::string& p : {point("other"), point("s", 0.5, "not-a-uuid"), std::string(R"({"score":1})"),
                               std::string(R"({"score":"high","payload":{}})"), std::string("7")}) {
    auto r = qdrant::parse_query_response(response(200, R"({"result":{"points":[)" + p + "]}}"), "s");
    ASSERT_FALSE(r) << p;
    EXPECT_EQ(r.error().code(), ErrorCode::Corrupt) << p;
  }
}

TEST(QdrantRequests, UpsertBodiesSplitAtTheLimitAndKeepEveryPoint) {
  std::vector<EmbeddedChunk> chunks;
  for (std::uint32_t i = 0; i < 50; ++i) {
    EmbeddedChunk c;
    c.chunk.round_id = make_round_id(1, i, 0);
    c.chunk.index = i;
    c.chunk.id = make_chunk_id(c.chunk.round_id, i);
    c.chunk.session_id.assign(1, 's');  // not = "s": g++ 12 -O2 false -Wrestrict (bug 105329)
    c.chunk.text = std::string(i * 10, 'a');
    c.vector = {0.5f, 0.5f};
    chunks.push_back(c);
  }
  const auto bodies = qdrant::upsert_bodies(chunks, 2048);
  std::size_t points = 0;
  for (const auto& b : bodies) {
    EXPECT_LE(b.size(), 2048u);
    const auto j = nlohmann::json::parse(b);
    for (const auto& p : j["points"]) {
      const auto& c = chunks[points++];
      EXPECT_EQ(p["id"], point_id_for(c.chunk.id).to_string()) << "deterministic point ids";
      EXPECT_EQ(p["payload"]["round_id"], c.chunk.round_id.to_string());
      EXPECT_EQ(p["payload"]["chunk_index"], c.chunk.index);
      EXPECT_EQ(p["payload"]["session_id"], "s");
    }
  }
  EXPECT_EQ(points, chunks.size());
  EXPECT_GT(bodies.size(), 3u);
  EXPECT_EQ(qdrant::upsert_bodies(chunks, 64).size(), chunks.size()) << "oversized points go alone";
}

// Vectors go out as the shortest text that reads back as the same float;
// strings are escaped and invalid UTF-8 is replaced, never sent raw.
TEST(QdrantRequests, UpsertBodiesCarryEveryFloatExactlyAndEscapeText) {
  std::vector<float> awkward = {0.0f, -0.0f, 1.0f, -1.0f, 0.1f, 1.0f / 3.0f, 1e-30f, -3.4028235e38f,
                                std::numeric_limits<float>::denorm_min(),
                                std::numeric_limits<float>::min(), 16777217.0f, 123456.789f};
  std::uint32_t bits = 0x9e3779b9u;
  while (awkward.size() < 4096) {  // random bit patterns over the whole range, finite only
    bits = bits * 1664525u + 1013904223u;
    float x = 0;
    std::memcpy(&x, &bits, sizeof x);
    if (std::isfinite(x)) awkward.push_back(x);
  }
  EmbeddedChunk c;
  c.chunk.round_id = make_round_id(1, 2, 3);
  c.chunk.index = 7;
  c.chunk.id = make_chunk_id(c.chunk.round_id, 7);
  c.chunk.session_id = std::string("s\"q\\;\x01", 6);
  c.chunk.text = std::string("caf\xc3\xa9 \xff\xfe end\n", 13);
  c.vector = awkward;
  const auto bodies = qdrant::upsert_bodies({c}, 1 << 20);
  ASSERT_EQ(bodies.size(), 1u);
  const auto j = nlohmann::json::parse(bodies[0]);  // throws if the body is not JSON
  const auto& p = j.at("points").at(0);
  EXPECT_EQ(p.at("id"), point_id_for(c.chunk.id).to_string());
  EXPECT_EQ(p.at("payload").at("session_id"), c.chunk.session_id) << "escaped and read back byte for byte";
  EXPECT_EQ(p.at("payload").at("text"), "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd end\n") << "invalid bytes become U+FFFD";
  EXPECT_EQ(p.at("payload").at("chunk_index"), 7);
  EXPECT_EQ(p.at("payload").at("round_id"), c.chunk.round_id.to_string());
  const auto& v = p.at("vector");
  ASSERT_EQ(v.size(), awkward.size());
  for (std::size_t i = 0; i < awkward.size(); ++i) {
    // As a server reads it: a double, then the nearest float.
    const float back = static_cast<float>(v[i].get<double>());
    std::uint32_t want = 0, got = 0;
    std::memcpy(&want, &awkward[i], sizeof want);
    std::memcpy(&got, &back, sizeof got);
    ASSERT_EQ(got, want) << "element " << i << " (" << awkward[i] << ") came back as " << back << " from "
                         << v[i].dump();
  }
  EXPECT_LT(bodies[0].size(), awkward.size() * 17) << "shortest float text, not 17-digit doubles";
}

}  // namespace
}  // namespace memfuse
