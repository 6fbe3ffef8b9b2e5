// FakeQdrant: Qdrant's REST shapes, and each injected fault, on virtual time.
#include "memfuse/fakes/fake_qdrant.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "memfuse/executor.h"
#include "memfuse/fakes/qdrant_upsert_body.h"
#include "memfuse/qdrant_vector_store.h"

namespace memfuse::fakes {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;
using namespace std::chrono_literals;

struct Harness {
  explicit Harness(QdrantFaultPlan plan = {}) : rt({.seed = 5}), qdrant(rt, plan) {}

  // Sends a request and runs the simulator until it completes (or quiesces).
  std::optional<Result<HttpResponse>> send(std::string method, std::string target, json body,
                                           std::shared_ptr<HttpCall>* call_out = nullptr) {
    std::optional<Result<HttpResponse>> out;
    auto call = qdrant.async_request(
        HttpRequest{std::move(method), std::move(target), {}, body.is_null() ? "" : body.dump()},
        rt.executor(), [&](Result<HttpResponse> r) { out = std::move(r); });
    if (call_out != nullptr) *call_out = call;
    (void)rt.run_until_quiescent(10'000);
    return out;
  }
  json ok_result(std::string method, std::string target, json body = nullptr) {
    auto r = send(std::move(method), std::move(target), std::move(body));
    EXPECT_TRUE(r.has_value() && r->has_value());
    EXPECT_EQ((*r)->status, 200) << (*r)->body;
    return json::parse((*r)->body)["result"];
  }
  void create(int size = 3) {
    ok_result("PUT", "/collections/c", {{"vectors", {{"size", size}, {"distance", "Cosine"}}}});
  }
  static json point(const std::string& id, std::vector<float> v, const std::string& session) {
    return {{"id", id}, {"vector", v}, {"payload", {{"session_id", session}, {"text", "t"}}}};
  }

  sim::SimRuntime rt;
  FakeQdrant qdrant;
};

const std::string kId1 = "00000000-0000-5000-8000-000000000001";
const std::string kId2 = "00000000-0000-5000-8000-000000000002";
const std::string kId3 = "00000000-0000-5000-8000-000000000003";

TEST(FakeQdrant, CreatesAndDescribesACollection) {
  Harness h;
  h.create(384);
  const json info = h.ok_result("GET", "/collections/c");
  EXPECT_EQ(info["config"]["params"]["vectors"]["size"], 384);
  EXPECT_EQ(info["config"]["params"]["vectors"]["distance"], "Cosine");
  auto again = h.send("PUT", "/collections/c", {{"vectors", {{"size", 384}, {"distance", "Cosine"}}}});
  EXPECT_EQ((*again)->status, 409);
  auto missing = h.send("GET", "/collections/nope", nullptr);
  EXPECT_EQ((*missing)->status, 404);
  EXPECT_THAT((*missing)->body, HasSubstr("Collection `nope` doesn't exist"));
}

TEST(FakeQdrant, UpsertIsIdempotentByIdAndReportsCompleted) {
  Harness h;
  h.create();
  for (int i = 0; i < 3; ++i) {
    const json r = h.ok_result("PUT", "/collections/c/points?wait=true",
                               {{"points", {Harness::point(kId1, {1, 0, 0}, "s")}}});
    EXPECT_EQ(r["status"], "completed");
  }
  EXPECT_EQ(h.ok_result("POST", "/collections/c/points/count", {{"exact", true}})["count"], 1);
}

TEST(FakeQdrant, RefusesBadBodiesWrongDimensionsAndHugeBodies) {
  Harness h;
  h.create();
  EXPECT_EQ((*h.send("PUT", "/collections/c/points?wait=true", {{"pts", 1}}))->status, 400);
  auto dim = h.send("PUT", "/collections/c/points?wait=true",
                    {{"points", {Harness::point(kId1, {1, 0}, "s")}}});
  EXPECT_EQ((*dim)->status, 400);
  EXPECT_THAT((*dim)->body, HasSubstr("expected dim: 3, got 2"));
  std::optional<Result<HttpResponse>> huge;
  h.qdrant.async_request(HttpRequest{"PUT", "/collections/c/points?wait=true", {},
                                     std::string(kQdrantMaxBodyBytes + 1, ' ')},
                         h.rt.executor(), [&](Result<HttpResponse> r) { huge = std::move(r); });
  (void)h.rt.run_until_quiescent(100);
  EXPECT_EQ((*huge)->status, 400);
  EXPECT_EQ((*h.send("PUT", "/collections/nope/points?wait=true", {{"points", json::array()}}))->status, 404);
}

// The upsert body is read by a streaming reader: every malformed vector is
// still refused as Qdrant refuses it, and accepted vectors land as sent.
TEST(FakeQdrant, UpsertRefusesMalformedVectorsAndStoresWellFormedOnesExactly) {
  Harness h;
  h.create();
  struct Case {
    json vector;
    const char* says;
  };
  for (const Case& c : {Case{json::array({1, "x", 0}), "vector must hold numbers"},
                        Case{json::array({1, json::array({0}), 0}), "vector must hold numbers"},
                        Case{json::array({1, {{"a", 1}}, 0}), "vector must hold numbers"},
                        Case{json::array({1, nullptr, true}), "vector must hold numbers"},
                        Case{json::array({1, 0, 0, json::array({1, 2, 3})}), "expected dim: 3, got 4"},
                        Case{json::array({json::array({1, 2, 3})}), "expected dim: 3, got 1"},
                        Case{json(7), "needs `id` and `vector`"},
                        Case{json::object(), "needs `id` and `vector`"}}) {
    json p = Harness::point(kId1, {}, "s");
    p["vector"] = c.vector;
    auto r = h.send("PUT", "/collections/c/points?wait=true", {{"points", {Harness::point(kId2, {0, 1, 0}, "s"), p}}});
    EXPECT_EQ((*r)->status, 400) << c.vector.dump();
    EXPECT_THAT((*r)->body, HasSubstr(c.says)) << c.vector.dump();
  }
  std::optional<Result<HttpResponse>> cut;
  h.qdrant.async_request(HttpRequest{"PUT", "/collections/c/points?wait=true", {},
                                     R"({"points":[{"id":")" + kId1 + R"(","vector":[1,0,)"},
                         h.rt.executor(), [&](Result<HttpResponse> r) { cut = std::move(r); });
  (void)h.rt.run_until_quiescent(100);
  EXPECT_EQ((*cut)->status, 400) << "a truncated body";
  EXPECT_EQ(h.ok_result("POST", "/collections/c/points/count", {{"exact", true}})["count"], 0)
      << "a refused batch stores none of its points";

  // Integers and floats, stored normalised, in order, under the right ids.
  (void)h.ok_result("PUT", "/collections/c/points?wait=true",
                    {{"points", {{{"vector", json::array({3, 0, 4})}, {"id", kId1}, {"payload", {{"session_id", "s"}}}},
                                 Harness::point(kId2, {0.0f, -2.5f, 0.0f}, "s")}}});
  {
    const QdrantModel& m = h.qdrant.model();
    const auto& points = m.collection("c")->points;
    ASSERT_EQ(points.size(), 2u);
    EXPECT_EQ(points.at(kId1).vector, (std::vector<float>{0.6f, 0.0f, 0.8f}));
    EXPECT_EQ(points.at(kId2).vector, (std::vector<float>{0.0f, -1.0f, 0.0f}));
    EXPECT_EQ(json::parse(points.at(kId1).payload_json)["session_id"], "s");
  }
}

// What production sends takes the fast reader, and arrives bit for bit.
TEST(FakeQdrant, ProductionUpsertBodiesTakeTheFastReader) {
  std::vector<EmbeddedChunk> chunks;
  std::uint32_t bits = 12345;
  for (std::uint32_t i = 0; i < 20; ++i) {
    EmbeddedChunk c;
    c.chunk.round_id = make_round_id(1, i, 0);
    c.chunk.index = i;
    c.chunk.id = make_chunk_id(c.chunk.round_id, i);
    c.chunk.session_id = "s\"; DROP TABLE x; --";
    c.chunk.text = "caf\xc3\xa9 \"quoted\" \\ {[ tab\t";
    for (int d = 0; d < 384; ++d) {
      bits = bits * 1664525u + 1013904223u;
      c.vector.push_back(static_cast<float>(static_cast<std::int32_t>(bits)) / 2147483648.0f);
    }
    chunks.push_back(std::move(c));
  }
  const auto bodies = qdrant::upsert_bodies(chunks, 64 * 1024);
  ASSERT_GT(bodies.size(), 1u);
  std::size_t n = 0;
  for (const auto& body : bodies) {
    const auto fast = read_upsert_body_fast(body);
    ASSERT_TRUE(fast.has_value()) << body.substr(0, 200);
    for (const auto& p : *fast) {
      const auto& c = chunks.at(n++);
      EXPECT_EQ(p.id, point_id_for(c.chunk.id).to_string());
      EXPECT_EQ(p.vector, c.vector);
      EXPECT_EQ(json::parse(p.payload_json)["text"], c.chunk.text);
    }
  }
  EXPECT_EQ(n, chunks.size());
}

// The fast reader writes a flat payload back as nlohmann's dump() would,
// without parsing it: keys sorted by their unescaped text, no spaces.
TEST(FakeQdrant, AFlatPayloadIsStoredAsNlohmannWritesIt) {
  const std::string id = R"("0189abcd-0000-7000-8000-000000000001")";
  const std::string payloads[] = {
      R"({"text":"line\nbreak \"q\" back\\slash","round_id":"r","chunk_index":12,"session_id":"s"})",
      R"({ "a b" : "x" , "a" : 1 , "a!" : "caf)" "\xc3\xa9" R"(" , "" : 0 })",
      R"({"a b":"x","a\n":"key with an escape","a":"y"})",   // sorted unescaped: "a", "a\n", "a b"
      R"({"n":007})",                                         // not JSON: refused by both readers
      R"({"s":"\u0041","t":"sl\/ash","n":1.5,"m":-0,"k":"k","k":"twice"})",
  };
  for (const auto& payload : payloads) {
    const std::string body = R"({"points":[{"id":)" + id + R"(,"vector":[0.5,1],"payload":)" + payload + "}]}";
    const auto fast = read_upsert_body_fast(body);
    const auto general = read_upsert_body_general(body, 2);
    const auto* points = std::get_if<std::vector<UpsertPoint>>(&general);
    if (points == nullptr) {
      EXPECT_FALSE(fast.has_value()) << payload;
      continue;
    }
    ASSERT_TRUE(fast.has_value()) << payload;
    ASSERT_EQ(fast->size(), 1u);
    EXPECT_EQ(fast->front().payload_json, points->front().payload_json) << payload;
    EXPECT_EQ(fast->front().payload_json, json::parse(payload).dump()) << payload;
  }
}

TEST(FakeQdrant, QueriesByCosineWithASessionFilter) {
  Harness h;
  h.create();
  h.ok_result("PUT", "/collections/c/points?wait=true",
              {{"points", {Harness::point(kId1, {1, 0, 0}, "a"), Harness::point(kId2, {0.9f, 0.1f, 0}, "a"),
                           Harness::point(kId3, {1, 0, 0}, "b")}}});
  const json r = h.ok_result(
      "POST", "/collections/c/points/query",
      {{"query", {1, 0, 0}}, {"limit", 5}, {"with_payload", true},
       {"filter", {{"must", {{{"key", "session_id"}, {"match", {{"value", "a"}}}}}}}}});
  ASSERT_EQ(r["points"].size(), 2u);
  EXPECT_EQ(r["points"][0]["id"], kId1);
  EXPECT_EQ(r["points"][1]["id"], kId2);
  EXPECT_GT(r["points"][0]["score"].get<double>(), r["points"][1]["score"].get<double>());
  EXPECT_EQ(r["points"][0]["payload"]["session_id"], "a");
}

TEST(FakeQdrant, DeletesByIdsAndByFilter) {
  Harness h;
  h.create();
  h.ok_result("PUT", "/collections/c/points?wait=true",
              {{"points", {Harness::point(kId1, {1, 0, 0}, "a"), Harness::point(kId2, {0, 1, 0}, "a"),
                           Harness::point(kId3, {0, 0, 1}, "b")}}});
  h.ok_result("POST", "/collections/c/points/delete?wait=true", {{"points", {kId1}}});
  EXPECT_EQ(h.ok_result("POST", "/collections/c/points/count", json::object())["count"], 2);
  h.ok_result("POST", "/collections/c/points/delete?wait=true",
              {{"filter", {{"must", {{{"key", "session_id"}, {"match", {{"value", "b"}}}}}}}}});
  EXPECT_EQ(h.ok_result("POST", "/collections/c/points/count", json::object())["count"], 1);
}

TEST(FakeQdrant, WaitFalseIsAcknowledgedAppliedLaterAndLostInACrash) {
  QdrantFaultPlan plan;
  plan.lose_acknowledged_on_crash = 1.0;
  plan.latency = {10ms, 10ms};
  Harness h(plan);
  h.create();
  std::optional<Result<HttpResponse>> ack;
  h.qdrant.async_request(HttpRequest{"PUT", "/collections/c/points?wait=false", {},
                                     json{{"points", {Harness::point(kId1, {1, 0, 0}, "s")}}}.dump()},
                         h.rt.executor(), [&](Result<HttpResponse> r) { ack = std::move(r); });
  EXPECT_EQ(h.qdrant.model().pending_operations(), 1u);
  h.qdrant.crash();  // before the write applied
  (void)h.rt.run_until_quiescent(100);
  EXPECT_EQ(json::parse((*ack)->body)["result"]["status"], "acknowledged");
  EXPECT_EQ(h.qdrant.model().collection("c")->points.size(), 0u) << "acknowledged, then lost";
  EXPECT_EQ(h.qdrant.faults_injected(), 1u);
}

class InjectedStatus : public ::testing::TestWithParam<int> {};

TEST_P(InjectedStatus, AnswersWithTheStatusAndAppliesNothing) {
  QdrantFaultPlan plan;
  const int status = GetParam();
  (status == 400 ? plan.status_400 : status == 408 ? plan.status_408 : status == 429 ? plan.status_429
   : status == 500 ? plan.status_500 : plan.status_503) = 1.0;
  Harness h;
  h.create();
  h.qdrant.set_plan(plan);
  auto r = h.send("PUT", "/collections/c/points?wait=true", {{"points", {Harness::point(kId1, {1, 0, 0}, "s")}}});
  ASSERT_TRUE(r && r->has_value());
  EXPECT_EQ((*r)->status, status);
  EXPECT_EQ(h.qdrant.model().collection("c")->points.size(), 0u);
  const auto events = h.rt.trace().events();
  EXPECT_TRUE(std::any_of(events.begin(), events.end(),
                          [](const sim::TraceEvent& e) { return e.kind == sim::EventKind::Fault; }));
}

INSTANTIATE_TEST_SUITE_P(Statuses, InjectedStatus, ::testing::Values(400, 408, 429, 500, 503));

TEST(FakeQdrant, ATimeoutNeverAnswersUntilCancelled) {
  QdrantFaultPlan plan;
  plan.timeout = 1.0;
  Harness h(plan);
  std::optional<Result<HttpResponse>> out;
  int calls = 0;
  auto call = h.qdrant.async_request(HttpRequest{"GET", "/collections/c", {}, ""}, h.rt.executor(),
                                     [&](Result<HttpResponse> r) {
                                       out = std::move(r);
                                       ++calls;
                                     });
  (void)h.rt.run_for(1h);
  EXPECT_EQ(calls, 0) << "no answer, however long we wait";
  call->cancel();
  call->cancel();  // idempotent
  (void)h.rt.run_until_quiescent(100);
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(out.has_value());
  ASSERT_FALSE(out->has_value());
  EXPECT_EQ(out->error().code(), ErrorCode::Cancelled);
}

TEST(FakeQdrant, WithARequestTimeoutASilentServerIsATimeoutAtThatInstant) {
  QdrantFaultPlan plan;
  plan.timeout = 1.0;
  Harness h(plan);
  h.qdrant.set_request_timeout(7s);
  std::optional<Result<HttpResponse>> out;
  TimePoint at{};
  (void)h.qdrant.async_request(HttpRequest{"GET", "/collections/c", {}, ""}, h.rt.executor(),
                               [&](Result<HttpResponse> r) {
                                 out = std::move(r);
                                 at = h.rt.now();
                               });
  (void)h.rt.run_until_quiescent(100);
  ASSERT_TRUE(out.has_value());
  ASSERT_FALSE(out->has_value());
  EXPECT_EQ(out->error().code(), ErrorCode::Timeout);
  EXPECT_TRUE(out->error().retryable());
  EXPECT_EQ(at - h.rt.options().start, 7s);
}

TEST(FakeQdrant, AnAppliedWriteCanLoseItsResponse) {
  QdrantFaultPlan plan;
  Harness h;
  h.create();
  plan.response_lost = 1.0;
  h.qdrant.set_plan(plan);
  std::optional<Result<HttpResponse>> out;
  auto call = h.qdrant.async_request(
      HttpRequest{"PUT", "/collections/c/points?wait=true", {},
                  json{{"points", {Harness::point(kId1, {1, 0, 0}, "s")}}}.dump()},
      h.rt.executor(), [&](Result<HttpResponse> r) { out = std::move(r); });
  (void)h.rt.run_for(1h);
  EXPECT_FALSE(out.has_value()) << "the response is lost";
  EXPECT_EQ(h.qdrant.model().collection("c")->points.size(), 1u) << "but the write applied";
  call->cancel();
  (void)h.rt.run_until_quiescent(100);
  EXPECT_EQ(out->error().code(), ErrorCode::Cancelled);
}

TEST(FakeQdrant, RespondsAfterTheDrawnLatencyInVirtualTime) {
  QdrantFaultPlan plan;
  plan.latency = {40ms, 40ms};
  Harness h(plan);
  const TimePoint t0 = h.rt.now();
  auto r = h.send("GET", "/collections/c", nullptr);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(h.rt.now() - t0, 40ms);
}

TEST(FaultPlanJson, RoundTripsAndNamesBadFields) {
  const FaultPlan p = FaultPlan::swarm(42);
  auto back = FaultPlan::from_json(p.to_json());
  ASSERT_TRUE(back.has_value()) << back.error().to_string();
  EXPECT_EQ(back->to_json(), p.to_json());
  auto bad = FaultPlan::from_json(R"({"sqlite":{"write_eror":0.1,"busy":2}})");
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error().message(), HasSubstr("sqlite.write_eror: unknown field"));
  EXPECT_THAT(bad.error().message(), HasSubstr("sqlite.busy: expected a number in [0, 1]"));
}

TEST(FaultPlanSwarm, DifferentSeedsDrawDifferentMixesWithinTheMaximum) {
  const FaultPlan max = FaultPlan::maximum();
  std::set<std::string> mixes;
  int all_off = 0;
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    const FaultPlan p = FaultPlan::swarm(seed);
    EXPECT_EQ(p, FaultPlan::swarm(seed)) << "deterministic";
    EXPECT_LE(p.sqlite.write_error, max.sqlite.write_error);
    EXPECT_LE(p.qdrant.status_503, max.qdrant.status_503);
    mixes.insert(p.to_json());
    all_off += p.sqlite.write_error == 0 && p.sqlite.sync_error == 0 && p.qdrant.status_503 == 0;
  }
  EXPECT_EQ(mixes.size(), 200u);
  EXPECT_GT(all_off, 5) << "each kind is off about half the time";
}

}  // namespace
}  // namespace memfuse::fakes
