// The bad-input catalogue (docs/errors.md), the cases not already covered
// next to their component: a peer's bad answers seen through the whole flush
// path, malformed reads, SQL-like text through the pipeline, the API key in
// logs, and 10x the pending-bytes budget.
//
// Each network case checks: the exact error (code, retryability, the words
// that tell the user what to do); the buffer unchanged (the rounds still
// pending and readable); nothing lost (after the peer heals, every round is
// stored); no crash; and no log line, error or stats field carrying the API key.
#include <malloc.h>

#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/post.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include "memfuse/embedder.h"
#include "memfuse/flush_manager.h"
#include "memfuse/hybrid_buffer.h"
#include "memfuse/qdrant_vector_store.h"
#include "memfuse/sim/sim_runtime.h"
#include "scripted_stores.h"

namespace memfuse {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ScriptedRoundStore;
using testing::ScriptedVectorStore;

constexpr int kDimension = 16;
constexpr const char* kApiKey = "sk-live-7f3a9c1e5b2d4f6a8c0e";

class NoopCall final : public HttpCall {
 public:
  void cancel() noexcept override {}
};

// A Qdrant that answers the collection checks correctly and upserts and
// queries with a scripted response (or success when none is scripted).
class CannedQdrant final : public HttpTransport {
 public:
  std::optional<HttpResponse> upsert_reply;
  std::optional<HttpResponse> query_reply;
  std::vector<HttpRequest> requests;
  int upserts_completed = 0;

  std::shared_ptr<HttpCall> async_request(HttpRequest req, const Executor& completion,
                                          HttpHandler done) override {
    requests.push_back(req);
    HttpResponse r{200, {}, {}};
    if (req.method == "GET" && req.target == "/collections/c") {
      r.body = R"({"result":{"config":{"params":{"vectors":{"size":16,"distance":"Cosine"}}}}})";
    } else if (req.method == "PUT" && req.target == "/collections/c") {
      r.body = R"({"result":true})";
    } else if (req.target.find("/points/query") != std::string::npos) {
      r = query_reply.value_or(HttpResponse{200, {}, R"({"result":{"points":[]}})"});
    } else if (req.target.find("/points") != std::string::npos) {
      if (upsert_reply) {
        r = *upsert_reply;
      } else {
        r.body = R"({"result":{"operation_id":1,"status":"completed"},"status":"ok"})";
        ++upserts_completed;
      }
    } else {
      r = HttpResponse{404, {}, R"({"status":{"error":"unexpected request in the test"}})"};
    }
    boost::asio::post(completion.get(), [done = std::move(done), r]() mutable { done(std::move(r)); });
    return std::make_shared<NoopCall>();
  }
};

// Every log line of every component, at trace level.
struct CapturedLog {
  CapturedLog() {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(lines);
    auto l = std::make_shared<spdlog::logger>("captured", sink);
    l->set_level(spdlog::level::trace);
    logger = Logger(l);
  }
  std::ostringstream lines;
  Logger logger;
};

struct Pipeline {
  // `quiet`: no log capture and a hash-only trace, so the heap holds only what
  // the pipeline holds (for the resource-limit test).
  explicit Pipeline(std::size_t max_pending_bytes = 1u << 20, bool quiet = false)
      : rt({.seed = 3, .strategy = sim::Strategy::Fifo,
            .trace_mode = quiet ? sim::Trace::Mode::HashOnly : sim::Trace::Mode::Bounded}),
        rounds(rt), embedder(kDimension) {
    if (quiet) log.logger = Logger();
    QdrantStoreOptions qo;
    qo.collection = "c";
    qo.api_key = kApiKey;
    qo.dimension = kDimension;
    vectors = std::move(*QdrantVectorStore::create(qdrant, qo, log.logger));
    FlushManagerConfig fc;
    fc.enable_auto_flush = false;
    fc.retry.max_retries = 2;
    fc.retry.jitter = 0;
    fc.retry.backoff_base = 1s;
    manager = std::move(*FlushManager::create(rt, fc, log.logger));
    HybridBufferOptions bo;
    bo.buffer.max_size = 1000;
    bo.buffer.enable_auto_flush = false;
    bo.buffer.max_pending_bytes = max_pending_bytes;
    bo.on_flush_failed = [this](const FlushFailure& f) { failures.push_back(f); };
    buffer = std::move(*HybridBuffer::create(rt, *manager, rounds, *vectors, embedder, std::move(bo),
                                             log.logger));
  }
  ~Pipeline() {
    buffer->drain(rt.now() + 60s, [](HybridDrainReport) {});
    (void)rt.run_until_quiescent(10'000'000);
  }

  Result<void> flush() {
    std::optional<Result<void>> out;
    buffer->flush([&](Result<void> r) { out = std::move(r); });
    (void)rt.run_until_quiescent(10'000'000);
    EXPECT_TRUE(out.has_value()) << "the flush never reported";
    return out.value_or(fail(ErrorCode::Cancelled, "no report"));
  }

  CapturedLog log;
  sim::SimRuntime rt;
  ScriptedRoundStore rounds;
  CannedQdrant qdrant;
  HashingEmbedder embedder;
  std::unique_ptr<QdrantVectorStore> vectors;
  std::unique_ptr<FlushManager> manager;
  std::unique_ptr<HybridBuffer> buffer;
  std::vector<FlushFailure> failures;
};

NewRound round_of(std::string session, std::string text) {
  return NewRound{std::move(session), std::nullopt, {{"user", std::move(text)}, {"assistant", "ok"}}};
}

// --- Network: a peer's bad answers to an upsert ---------------------------

struct NetCase {
  const char* id;  // as in docs/errors.md
  HttpResponse reply;
  ErrorCode code;
  bool retryable;
  const char* words;  // what the message must say
};

std::ostream& operator<<(std::ostream& os, const NetCase& c) { return os << c.id; }

class UpsertAnswer : public ::testing::TestWithParam<NetCase> {};

TEST_P(UpsertAnswer, ExactErrorBufferUnchangedNothingLostNoKeyInLogs) {
  const NetCase& c = GetParam();
  Pipeline p;
  std::vector<RoundId> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(p.buffer->add(round_of("s", "round " + std::to_string(i)))->id);
  p.qdrant.upsert_reply = c.reply;

  const auto r = p.flush();
  ASSERT_FALSE(r) << c.id << ": the flush succeeded";
  EXPECT_EQ(r.error().code(), c.code) << c.id << ": " << r.error().to_string();
  EXPECT_EQ(r.error().retryable(), c.retryable) << c.id;
  EXPECT_THAT(r.error().message(), HasSubstr(c.words)) << c.id;
  EXPECT_LT(r.error().message().size(), 600u) << c.id << ": a peer can flood our messages";
  EXPECT_EQ(r.error().message().find('\x1b'), std::string::npos) << c.id;
  ASSERT_EQ(p.failures.size(), 1u) << c.id;
  EXPECT_EQ(p.failures[0].rounds, ids) << c.id << ": on_flush_failed names every round";

  // The buffer unchanged: the same rounds pending, in order, and readable.
  EXPECT_EQ(p.buffer->pending().buffered, ids) << c.id;
  EXPECT_EQ(p.buffer->stats().pending_rounds, 3u) << c.id;
  for (const auto& id : ids) {
    std::optional<Result<std::optional<Round>>> got;
    p.buffer->get(id, [&](Result<std::optional<Round>> g) { got = std::move(g); });
    (void)p.rt.run_for(0s);
    ASSERT_TRUE(got && *got && **got) << c.id;
  }
  // Redirects are not followed: every request went to our collection.
  for (const auto& req : p.qdrant.requests) {
    EXPECT_EQ(req.target.rfind("/collections/c", 0), 0u) << c.id << ": " << req.target;
  }

  // Nothing lost: the peer heals, the next flush stores every round once.
  p.qdrant.upsert_reply.reset();
  const auto healed = p.flush();
  ASSERT_TRUE(healed) << c.id << ": " << healed.error().to_string();
  EXPECT_EQ(p.rounds.rows().size(), 3u) << c.id;
  EXPECT_EQ(p.qdrant.upserts_completed, 1) << c.id;
  EXPECT_TRUE(p.buffer->pending().buffered.empty()) << c.id;

  // The API key went out in headers only: never into a log line, an error or stats.
  bool sent = false;
  for (const auto& req : p.qdrant.requests) {
    for (const auto& [k, v] : req.headers) sent = sent || (k == "api-key" && v == kApiKey);
  }
  EXPECT_TRUE(sent) << c.id << ": the key was not sent at all";
  const std::string logs = p.log.lines.str();
  EXPECT_FALSE(logs.empty()) << c.id << ": nothing was logged; the check below would be empty";
  EXPECT_THAT(logs, Not(HasSubstr(kApiKey))) << c.id;
  EXPECT_THAT(r.error().to_string(), Not(HasSubstr(kApiKey))) << c.id;
  EXPECT_THAT(p.buffer->stats().to_json(), Not(HasSubstr(kApiKey))) << c.id;
}

HttpResponse reply(int status, std::string body, std::vector<std::pair<std::string, std::string>> headers = {}) {
  return HttpResponse{status, std::move(headers), std::move(body)};
}

const std::string kFlood = R"({"status":{"error":")" + std::string(100'000, 'x') + R"(\u001b[31m"}})";

INSTANTIATE_TEST_SUITE_P(
    Catalogue, UpsertAnswer,
    ::testing::Values(
        NetCase{"N01_400", reply(400, R"({"status":{"error":"Wrong input: vector dim"}})"),
                ErrorCode::InvalidArgument, false, "check embedding.dimension"},
        NetCase{"N02_401", reply(401, R"({"status":{"error":"Invalid api-key"}})"),
                ErrorCode::Unavailable, false, "check vector_store.qdrant.api_key"},
        NetCase{"N03_403", reply(403, "forbidden"), ErrorCode::Unavailable, false,
                "check vector_store.qdrant.api_key"},
        NetCase{"N04_404", reply(404, R"({"status":{"error":"Not found: Collection"}})"),
                ErrorCode::NotFound, true, "created again"},
        NetCase{"N05_408", reply(408, ""), ErrorCode::Timeout, true, "HTTP 408"},
        NetCase{"N06_429", reply(429, R"({"status":{"error":"Too many requests"}})"),
                ErrorCode::Unavailable, true, "rate limited"},
        NetCase{"N07_500", reply(500, R"({"status":{"error":"Service internal error"}})"),
                ErrorCode::Unavailable, true, "HTTP 500"},
        NetCase{"N08_503", reply(503, "<html>unavailable</html>"), ErrorCode::Unavailable, true,
                "HTTP 503"},
        NetCase{"N09_redirect", reply(301, "", {{"Location", "http://evil.example/steal"}}),
                ErrorCode::Unavailable, false, "an unexpected status"},
        NetCase{"N10_not_json", reply(200, "<html>ok</html>"), ErrorCode::Unavailable, true,
                "not a Qdrant response"},
        NetCase{"N11_no_result", reply(200, R"({"status":"ok"})"), ErrorCode::Unavailable, true,
                "not a Qdrant response"},
        NetCase{"N12_not_completed", reply(200, R"({"result":{"status":"acknowledged"}})"),
                ErrorCode::Unavailable, true, "acknowledged"},
        NetCase{"N13_flood", reply(500, kFlood), ErrorCode::Unavailable, true, "..."}),
    [](const ::testing::TestParamInfo<NetCase>& param) { return std::string(param.param.id); });

// --- Network: a peer's bad answers to a query ------------------------------

struct QueryCase {
  const char* id;
  HttpResponse reply;
  ErrorCode code;
  const char* words;
};

std::ostream& operator<<(std::ostream& os, const QueryCase& c) { return os << c.id; }

class QueryAnswer : public ::testing::TestWithParam<QueryCase> {};

TEST_P(QueryAnswer, SearchFailsWithTheExactErrorAndTheBufferIsUnchanged) {
  const QueryCase& c = GetParam();
  Pipeline p;
  const auto id = p.buffer->add(round_of("s", "hello world"))->id;
  p.qdrant.query_reply = c.reply;
  std::optional<Result<std::vector<ScoredChunk>>> out;
  p.buffer->search("s", "hello", 5, [&](Result<std::vector<ScoredChunk>> r) { out = std::move(r); });
  (void)p.rt.run_until_quiescent(1'000'000);
  ASSERT_TRUE(out.has_value()) << c.id;
  ASSERT_FALSE(*out) << c.id << ": the search succeeded";
  EXPECT_EQ(out->error().code(), c.code) << c.id << ": " << out->error().to_string();
  EXPECT_THAT(out->error().message(), HasSubstr(c.words)) << c.id;
  EXPECT_EQ(p.buffer->pending().buffered, std::vector<RoundId>{id}) << c.id;
  p.qdrant.query_reply.reset();
  ASSERT_TRUE(p.flush()) << c.id;
  EXPECT_EQ(p.rounds.rows().size(), 1u) << c.id;
}

std::string point(const std::string& session, const std::string& extra = "") {
  return R"({"id":"x","score":0.5,"payload":{"round_id":")" + make_round_id(1, 2, 3).to_string() +
         R"(","session_id":")" + session + R"(","chunk_index":0,"text":"t")" + extra + "}}";
}

INSTANTIATE_TEST_SUITE_P(
    Catalogue, QueryAnswer,
    ::testing::Values(
        QueryCase{"Q01_foreign_session", reply(200, R"({"result":{"points":[)" + point("other") + "]}}"),
                  ErrorCode::Corrupt, "another session"},
        QueryCase{"Q02_malformed_payload",
                  reply(200, R"({"result":{"points":[{"id":"x","score":0.5,"payload":{"text":"t"}}]}})"),
                  ErrorCode::Corrupt, "malformed payload"},
        QueryCase{"Q03_bad_round_id",
                  reply(200, R"({"result":{"points":[{"id":"x","score":0.5,"payload":{"round_id":"nope","session_id":"s","chunk_index":0,"text":"t"}}]}})"),
                  ErrorCode::Corrupt, "malformed round_id"},
        QueryCase{"Q04_not_json", reply(200, "{\"result\":"), ErrorCode::Unavailable,
                  "not a Qdrant response"},
        QueryCase{"Q05_500", reply(500, ""), ErrorCode::Unavailable, "HTTP 500"}),
    [](const ::testing::TestParamInfo<QueryCase>& param) { return std::string(param.param.id); });

// --- Malformed reads ---------------------------------------------------------

TEST(BadReads, MalformedArgumentsAreRefusedAndChangeNothing) {
  Pipeline p;
  const auto id = p.buffer->add(round_of("s", "kept"))->id;
  struct Case {
    const char* id;
    std::function<void(std::function<void(const Error&)>)> call;
    const char* words;
  };
  const std::string long_text(40'000, 'a');
  const Case cases[] = {
      {"R01_list_empty_session", [&](auto f) { p.buffer->list("", 10, [f](auto r) { f(r.error()); }); },
       "session_id: must not be empty"},
      {"R02_list_limit_0", [&](auto f) { p.buffer->list("s", 0, [f](auto r) { f(r.error()); }); },
       "limit is 0"},
      {"R03_list_session_not_utf8",
       [&](auto f) { p.buffer->list("s\xff", 10, [f](auto r) { f(r.error()); }); }, "UTF-8"},
      {"R04_search_top_k_too_big",
       [&](auto f) { p.buffer->search("s", "x", 1'000'000, [f](auto r) { f(r.error()); }); },
       "top_k is 1000000"},
      {"R05_search_empty_text", [&](auto f) { p.buffer->search("s", "", 5, [f](auto r) { f(r.error()); }); },
       "the text must be"},
      {"R06_search_text_not_utf8",
       [&](auto f) { p.buffer->search("s", "\xc0\xaf", 5, [f](auto r) { f(r.error()); }); }, "not UTF-8"},
      {"R07_search_text_too_long",
       [&](auto f) { p.buffer->search("s", long_text, 5, [f](auto r) { f(r.error()); }); },
       "max_message_bytes"},
      {"R08_search_session_too_long",
       [&](auto f) { p.buffer->search(std::string(300, 's'), "x", 5, [f](auto r) { f(r.error()); }); },
       "too long"},
  };
  for (const auto& c : cases) {
    std::optional<Error> e;
    c.call([&](const Error& err) { e = err; });
    (void)p.rt.run_for(0s);
    ASSERT_TRUE(e.has_value()) << c.id << ": no answer";
    EXPECT_EQ(e->code(), ErrorCode::InvalidArgument) << c.id;
    EXPECT_FALSE(e->retryable()) << c.id;
    EXPECT_THAT(e->message(), HasSubstr(c.words)) << c.id << ": " << e->message();
    EXPECT_EQ(p.buffer->pending().buffered, std::vector<RoundId>{id}) << c.id;
  }
  ASSERT_TRUE(p.flush());
  EXPECT_EQ(p.rounds.rows().size(), 1u);
}

// --- SQL-like text, quotes, ';' and NUL bytes through the pipeline ------------

TEST(Security, SqlLikeSessionIdsAndContentsComeBackByteForByte) {
  Pipeline p;
  const std::string session("s'; DROP TABLE rounds; --\0\"x\"", 29);
  const std::string content("a\0b 'quoted' \"double\"; SELECT * FROM rounds; --", 47);
  const auto id = p.buffer->add(round_of(session, content))->id;
  ASSERT_TRUE(p.flush());
  std::optional<Result<std::vector<Round>>> listed;
  p.buffer->list(session, 10, [&](Result<std::vector<Round>> r) { listed = std::move(r); });
  (void)p.rt.run_until_quiescent(1'000'000);
  ASSERT_TRUE(listed && *listed);
  ASSERT_EQ((*listed)->size(), 1u);
  EXPECT_EQ((**listed)[0].id, id);
  EXPECT_EQ((**listed)[0].session_id, session);
  EXPECT_EQ((**listed)[0].messages[0].content, content);
}

// --- 10x the pending-bytes budget ---------------------------------------------

TEST(ResourceLimits, TenTimesThePendingBytesIsRefusedBoundedAndTheAcceptedAllArrive) {
  constexpr std::size_t kBudget = 64 * 1024;
  Pipeline p(kBudget, /*quiet=*/true);
  p.qdrant.upsert_reply = reply(503, "");  // the vector store is down while we feed
  const std::string text(1000, 'x');
  std::vector<RoundId> accepted;
  std::size_t overloaded = 0, offered = 0, max_pending = 0;
  const std::size_t heap_before = mallinfo2().uordblks;
  for (int i = 0; offered < 10 * kBudget; ++i) {
    auto r = p.buffer->add(round_of("s", text + std::to_string(i)));
    offered += text.size();
    if (r) {
      accepted.push_back(r->id);
    } else {
      ASSERT_EQ(r.error().code(), ErrorCode::Overloaded) << r.error().to_string();
      EXPECT_TRUE(r.error().retryable());
      EXPECT_THAT(r.error().message(), HasSubstr("max_pending_bytes"));
      ++overloaded;
    }
    if (i % 50 == 0) p.buffer->flush([](Result<void>) {});  // flushes fail and restore meanwhile
    (void)p.rt.run_for(10ms);
    p.qdrant.requests.clear();  // the test double's record, not the pipeline's memory
    p.qdrant.requests.shrink_to_fit();
    max_pending = std::max(max_pending, p.buffer->stats().pending_bytes);
  }
  const std::size_t heap_growth = mallinfo2().uordblks - heap_before;
  EXPECT_GT(overloaded, 0u);
  EXPECT_LE(max_pending, kBudget);
  // What is held is bounded by the budget, not by what was offered: the rounds
  // with their chunk copies and 16-float vectors (~2x their text), the store's
  // copy of the rounds leg that succeeded, the batch in flight. Holding
  // everything offered would take over 2x 10x the budget.
  EXPECT_LT(heap_growth, 8 * kBudget) << "offered " << offered << " bytes";

  p.qdrant.upsert_reply.reset();  // the store recovers
  ASSERT_TRUE(p.flush());
  EXPECT_EQ(p.rounds.rows().size(), accepted.size());
  for (const auto& id : accepted) EXPECT_TRUE(p.rounds.rows().contains(id));
  std::printf("resource limits: offered %zu bytes (10x the %zu-byte budget), accepted %zu rounds, "
              "refused %zu with Overloaded, peak pending %zu bytes, heap growth %zu bytes; all %zu "
              "accepted rounds stored after recovery\n",
              offered, kBudget, accepted.size(), overloaded, max_pending, heap_growth, accepted.size());
}

}  // namespace
}  // namespace memfuse
