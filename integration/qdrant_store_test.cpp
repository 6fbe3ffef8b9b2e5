// The real Qdrant client (QdrantVectorStore over BeastHttpTransport) against
// the loopback fake Qdrant server over TCP: collection creation, upserts with
// deterministic point ids, session-filtered queries, batch splitting, the
// api-key header, and the status mapping for 400, 404, 408, 429, 503,
// timeouts and connection resets. Then the whole pipeline with Qdrant.
//
// When QDRANT_URL is set, the tests that need no injected fault also run
// against that server (a fresh collection per test); the fault tests need
// the fake's injection and run against it only.
#include "memfuse/qdrant_vector_store.h"

#include <cstdlib>
#include <future>
#include <mutex>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "memfuse/asio_runtime.h"
#include "memfuse/beast_http_transport.h"
#include "memfuse/executor.h"
#include "memfuse/fakes/qdrant_server.h"
#include "memfuse/pipeline.h"

namespace memfuse {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kKey = "sk-test-6f1c0ffee-secret";

class CaptureSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    lines_.emplace_back(msg.payload.begin(), msg.payload.end());
  }
  void flush_() override {}

 private:
  std::vector<std::string> lines_;
};

std::string external_url() {
  const char* u = std::getenv("QDRANT_URL");
  return u != nullptr ? std::string(u) : std::string();
}

std::string unique_collection() {
  static std::atomic<int> n{0};
  return "memfuse_it_" + std::to_string(::getpid()) + "_" + std::to_string(n++);
}

EmbeddedChunk chunk(const std::string& session, std::uint32_t index, std::vector<float> v,
                    std::uint64_t round_bits = 1) {
  EmbeddedChunk c;
  c.chunk.round_id = make_round_id(1'750'168'589'000, round_bits, 7);
  c.chunk.index = index;
  c.chunk.id = make_chunk_id(c.chunk.round_id, index);
  c.chunk.session_id = session;
  c.chunk.text = "text " + std::to_string(index) + " of " + session;
  c.vector = std::move(v);
  return c;
}

struct Harness {
  explicit Harness(bool use_external = false, std::size_t max_request_bytes = 5u << 20,
                   Duration request_timeout = 10s) {
    const std::string url = use_external ? external_url() : server.url();
    auto t = BeastHttpTransport::create(rt, {.base_url = url, .request_timeout = request_timeout});
    EXPECT_TRUE(t) << t.error().to_string();
    transport = std::move(*t);
    auto backend = std::make_shared<spdlog::logger>("qdrant-test", sink);
    backend->set_level(spdlog::level::trace);
    auto s = QdrantVectorStore::create(
        *transport, {use_external ? unique_collection() : "c", kKey, 3, max_request_bytes}, Logger(backend));
    EXPECT_TRUE(s) << s.error().to_string();
    store = std::move(*s);
  }

  Result<void> put(std::vector<EmbeddedChunk> chunks) {
    std::promise<Result<void>> p;
    (void)store->put(std::make_shared<const std::vector<EmbeddedChunk>>(std::move(chunks)),
                     rt.executor(), [&](Result<void> r) { p.set_value(std::move(r)); });
    return wait(p);
  }
  Result<std::vector<ScoredChunk>> search(const std::string& session, std::vector<float> q, std::size_t k) {
    std::promise<Result<std::vector<ScoredChunk>>> p;
    (void)store->search(session, std::move(q), k, rt.executor(),
                        [&](Result<std::vector<ScoredChunk>> r) { p.set_value(std::move(r)); });
    return wait(p);
  }
  template <typename T>
  static T wait(std::promise<T>& p) {
    auto f = p.get_future();
    EXPECT_EQ(f.wait_for(60s), std::future_status::ready);
    return f.get();
  }
  void expect_key_never_logged() {
    for (const auto& line : sink->lines()) EXPECT_THAT(line, Not(HasSubstr(kKey)));
  }

  fakes::QdrantServer server;
  // The sink outlives the runtime: a call still in flight when the store goes away keeps the
  // store's logger alive on an io thread, and that logger's last reference to the sink is then
  // dropped inside libspdlog, which ThreadSanitizer cannot see (a false race with our own release
  // of `sink` on this thread). Joining the io threads first orders the two.
  std::shared_ptr<CaptureSink> sink = std::make_shared<CaptureSink>();
  AsioRuntime rt{{.io_threads = 2, .blocking_threads = 1}};
  std::unique_ptr<BeastHttpTransport> transport;
  std::unique_ptr<QdrantVectorStore> store;
};

// Runs against the fake, and against QDRANT_URL when it is set.
class QdrantAnyServer : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam() && external_url().empty()) GTEST_SKIP() << "QDRANT_URL is not set";
  }
};

TEST_P(QdrantAnyServer, CreatesTheCollectionUpsertsAndQueriesPerSession) {
  Harness h(GetParam());
  ASSERT_TRUE(h.put({chunk("alice", 0, {1, 0, 0}), chunk("alice", 1, {0, 1, 0}),
                     chunk("bob", 0, {1, 0, 0}, 2)}));
  auto hits = h.search("alice", {1, 0.1f, 0}, 5);
  ASSERT_TRUE(hits) << hits.error().to_string();
  ASSERT_EQ(hits->size(), 2u) << "bob's point is filtered out";
  EXPECT_EQ((*hits)[0].chunk.index, 0u);
  EXPECT_EQ((*hits)[0].chunk.session_id, "alice");
  EXPECT_EQ((*hits)[0].chunk.text, "text 0 of alice");
  EXPECT_GT((*hits)[0].score, (*hits)[1].score);
  // The same chunks again: the same point ids, nothing added.
  ASSERT_TRUE(h.put({chunk("alice", 0, {1, 0, 0}), chunk("alice", 1, {0, 1, 0})}));
  hits = h.search("alice", {1, 0, 0}, 10);
  ASSERT_TRUE(hits);
  EXPECT_EQ(hits->size(), 2u) << "idempotent upsert";
  h.expect_key_never_logged();
}

TEST_P(QdrantAnyServer, SearchBeforeAnyWriteFindsNothing) {
  Harness h(GetParam());
  auto hits = h.search("nobody", {1, 0, 0}, 3);
  ASSERT_TRUE(hits) << hits.error().to_string();
  EXPECT_TRUE(hits->empty());
}

INSTANTIATE_TEST_SUITE_P(, QdrantAnyServer, ::testing::Values(false, true),
                         [](const auto& param_info) { return param_info.param ? "QdrantUrl" : "Fake"; });

TEST(QdrantVectorStore, SendsTheApiKeyAndWritesWithWaitTrue) {
  Harness h;
  ASSERT_TRUE(h.put({chunk("s", 0, {1, 0, 0})}));
  bool key = false;
  for (const auto& [k, v] : h.server.last_headers()) key = key || (k == "api-key" && v == kKey);
  EXPECT_TRUE(key);
  h.server.with_model([](fakes::QdrantModel& m) {
    EXPECT_EQ(m.pending_operations(), 0u) << "wait=true: nothing left unapplied";
    ASSERT_NE(m.collection("c"), nullptr);
    EXPECT_EQ(m.collection("c")->size, 3);
    EXPECT_EQ(m.collection("c")->points.size(), 1u);
  });
}

TEST(QdrantVectorStore, SplitsUpsertsAtMaxRequestBytes) {
  Harness h(false, 1024);
  std::vector<EmbeddedChunk> many;
  for (std::uint32_t i = 0; i < 20; ++i) many.push_back(chunk("s", i, {1, static_cast<float>(i), 0}));
  const auto before = h.store->requests_sent();
  ASSERT_TRUE(h.put(many));
  const auto requests = h.store->requests_sent() - before;
  const auto bodies = qdrant::upsert_bodies(many, 1024);
  EXPECT_GE(bodies.size(), 3u);
  EXPECT_EQ(requests, 2u + bodies.size()) << "GET + PUT collection, then one request per body";
  for (const auto& body : bodies) EXPECT_LE(body.size(), 1024u);
  h.server.with_model([](fakes::QdrantModel& m) { EXPECT_EQ(m.collection("c")->points.size(), 20u); });
}

struct StatusCase {
  int status;
  ErrorCode code;
  bool retryable;
};

TEST(QdrantVectorStore, MapsStatusesToRetryableOrFinal) {
  for (const StatusCase c : {StatusCase{400, ErrorCode::InvalidArgument, false},
                             StatusCase{408, ErrorCode::Timeout, true},
                             StatusCase{429, ErrorCode::Unavailable, true},
                             StatusCase{500, ErrorCode::Unavailable, true},
                             StatusCase{503, ErrorCode::Unavailable, true},
                             StatusCase{401, ErrorCode::Unavailable, false}}) {
    Harness h;
    ASSERT_TRUE(h.put({chunk("s", 0, {1, 0, 0})}));  // the collection exists
    h.server.inject({.status = c.status});
    auto r = h.put({chunk("s", 1, {0, 1, 0})});
    ASSERT_FALSE(r) << c.status;
    EXPECT_EQ(r.error().code(), c.code) << c.status;
    EXPECT_EQ(r.error().retryable(), c.retryable) << c.status;
    EXPECT_THAT(r.error().message(), Not(HasSubstr(kKey)));
    EXPECT_TRUE(h.put({chunk("s", 1, {0, 1, 0})})) << "the retry succeeds: " << c.status;
    h.expect_key_never_logged();
  }
}

TEST(QdrantVectorStore, ADeletedCollectionIsCreatedAgainOnRetry) {
  Harness h;
  ASSERT_TRUE(h.put({chunk("s", 0, {1, 0, 0})}));
  h.server.inject({.status = 404});
  auto r = h.put({chunk("s", 1, {0, 1, 0})});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::NotFound);
  EXPECT_TRUE(r.error().retryable());
  EXPECT_TRUE(h.put({chunk("s", 1, {0, 1, 0})}));
}

TEST(QdrantVectorStore, ResetsAndTimeoutsAreRetryable) {
  Harness h(false, 5u << 20, 200ms);
  ASSERT_TRUE(h.put({chunk("s", 0, {1, 0, 0})}));
  // Two resets: the transport retries a reused keep-alive connection once.
  h.server.inject({.reset = true});
  h.server.inject({.reset = true});
  auto r = h.put({chunk("s", 1, {0, 1, 0})});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::Unavailable);
  EXPECT_TRUE(r.error().retryable());
  h.server.inject({.delay = 5s});
  r = h.put({chunk("s", 1, {0, 1, 0})});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::Timeout);
  EXPECT_TRUE(r.error().retryable());
  EXPECT_TRUE(h.put({chunk("s", 1, {0, 1, 0})}));
}

TEST(QdrantVectorStore, AWrongDimensionCollectionIsAFinalError) {
  Harness h;
  h.server.with_model([](fakes::QdrantModel& m) {
    (void)m.handle(HttpRequest{"PUT", "/collections/c", {}, R"({"vectors":{"size":5,"distance":"Cosine"}})"});
  });
  auto r = h.put({chunk("s", 0, {1, 0, 0})});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument);
  EXPECT_FALSE(r.error().retryable());
  EXPECT_THAT(r.error().message(), HasSubstr("embedding.dimension"));
}

TEST(QdrantVectorStore, CancellingAHungUpsertCompletesItWithCancelled) {
  Harness h;
  ASSERT_TRUE(h.put({chunk("s", 0, {1, 0, 0})}));
  h.server.inject({.delay = 30s});
  std::promise<Result<void>> p;
  auto call = h.store->put(std::make_shared<const std::vector<EmbeddedChunk>>(
                               std::vector<EmbeddedChunk>{chunk("s", 1, {0, 1, 0})}),
                           h.rt.executor(), [&](Result<void> r) { p.set_value(std::move(r)); });
  call->cancel();
  auto r = Harness::wait(p);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::Cancelled);
}

TEST(QdrantVectorStore, RefusesUnsafeCollectionNames) {
  fakes::QdrantServer server;
  AsioRuntime rt{{.io_threads = 1, .blocking_threads = 1}};
  auto t = BeastHttpTransport::create(rt, {.base_url = server.url()});
  ASSERT_TRUE(t);
  for (const char* name : {"", "a/b", "../x", "c?x=1", "spa ce"}) {
    auto s = QdrantVectorStore::create(**t, {name, "", 3, 5u << 20});
    ASSERT_FALSE(s) << name;
    EXPECT_THAT(s.error().message(), HasSubstr("vector_store.qdrant.collection"));
  }
}

// The whole pipeline on real threads: SQLite rounds in a file, Qdrant vectors
// over loopback, with a 503 and a reset on the way.
TEST(QdrantPipeline, FlushesThroughFaultsAndSearchFindsTheRounds) {
  fakes::QdrantServer server;
  AsioRuntime rt{{.io_threads = 2, .blocking_threads = 2}};
  const auto dir = std::filesystem::temp_directory_path() / ("memfuse_qp_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto config = Config::from_json(R"({"vector_store": {"kind": "qdrant"}, "embedding": {"dimension": 32},
      "buffer": {"flush_manager": {"retry": {"backoff_base_s": 0.01}},
                 "hybrid_buffer": {"max_size": 2, "enable_auto_flush": false}}})");
  ASSERT_TRUE(config) << config.error().to_string();
  config->sqlite.path = (dir / "p.db").string();
  config->vector_store.qdrant.url = server.url();
  config->vector_store.qdrant.api_key = kKey;
  server.inject({.status = 503});
  server.inject({.reset = true});
  auto p = Pipeline::open(rt, *config);
  ASSERT_TRUE(p) << p.error().to_string();
  auto& b = (*p)->buffer();
  ASSERT_TRUE(b.add(NewRound{"s1", std::nullopt, {{"user", "where is the red lighthouse"}}}));
  ASSERT_TRUE(b.add(NewRound{"s2", std::nullopt, {{"user", "the red lighthouse is in another session"}}}));
  ASSERT_TRUE(b.add(NewRound{"s1", std::nullopt, {{"assistant", "on the northern cliff"}}}));
  std::promise<Result<void>> durable;
  b.flush([&](Result<void> r) { durable.set_value(std::move(r)); });
  auto d = Harness::wait(durable);
  ASSERT_TRUE(d) << d.error().to_string();
  std::promise<Result<std::vector<ScoredChunk>>> found;
  b.search("s1", "red lighthouse", 5, [&](auto r) { found.set_value(std::move(r)); });
  auto hits = Harness::wait(found);
  ASSERT_TRUE(hits) << hits.error().to_string();
  ASSERT_EQ(hits->size(), 2u);
  for (const auto& hit : *hits) EXPECT_EQ(hit.chunk.session_id, "s1");
  EXPECT_THAT(hits->front().chunk.text, HasSubstr("red lighthouse"));
  EXPECT_GE(b.stats().flush_manager.retried, 1u);
  std::promise<HybridDrainReport> drained;
  b.drain(rt.clock().now() + 30s, [&](HybridDrainReport r) { drained.set_value(std::move(r)); });
  EXPECT_TRUE(Harness::wait(drained).completed_in_time);
  p->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace memfuse
