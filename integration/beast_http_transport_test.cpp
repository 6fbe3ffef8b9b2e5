// The production HTTP transport over real TCP against the loopback Qdrant
// server: keep-alive, statuses, resets, timeouts, the response cap,
// cancellation and a refused connection. No timing thresholds: waits use
// futures; timeouts are provoked with delays far longer than the deadline.
#include "memfuse/beast_http_transport.h"

#include <future>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "memfuse/asio_runtime.h"
#include "memfuse/executor.h"
#include "memfuse/fakes/qdrant_server.h"

namespace memfuse {
namespace {

using namespace std::chrono_literals;

struct Harness {
  explicit Harness(HttpTransportOptions o = {}) {
    o.base_url = o.base_url.empty() ? server.url() : o.base_url;
    auto t = BeastHttpTransport::create(rt, o);
    EXPECT_TRUE(t.has_value()) << t.error().to_string();
    transport = std::move(*t);
  }
  Result<HttpResponse> send(std::string method, std::string target, std::string body = "") {
    std::promise<Result<HttpResponse>> p;
    transport->async_request(HttpRequest{std::move(method), std::move(target), {{"api-key", "k"}}, std::move(body)},
                             rt.executor(), [&](Result<HttpResponse> r) { p.set_value(std::move(r)); });
    auto f = p.get_future();
    EXPECT_EQ(f.wait_for(60s), std::future_status::ready);
    return f.get();
  }
  fakes::QdrantServer server;
  AsioRuntime rt{{.io_threads = 2, .blocking_threads = 1}};
  std::unique_ptr<BeastHttpTransport> transport;
};

TEST(BeastHttpTransport, SpeaksHttpAndReusesTheConnection) {
  Harness h;
  auto created = h.send("PUT", "/collections/c", R"({"vectors":{"size":2,"distance":"Cosine"}})");
  ASSERT_TRUE(created.has_value()) << created.error().to_string();
  EXPECT_EQ(created->status, 200);
  for (int i = 0; i < 5; ++i) {
    auto r = h.send("GET", "/collections/c");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(h.server.connections(), 1u) << "keep-alive: one connection for six requests";
  EXPECT_EQ(h.transport->connections_opened(), 1u);
  bool key = false;
  for (const auto& [k, v] : h.server.last_headers()) key = key || (k == "api-key" && v == "k");
  EXPECT_TRUE(key);
}

TEST(BeastHttpTransport, ReturnsErrorStatusesAsResponses) {
  Harness h;
  h.server.inject({.status = 429});
  h.server.inject({.status = 503});
  EXPECT_EQ(h.send("GET", "/collections/c")->status, 429);
  EXPECT_EQ(h.send("GET", "/collections/c")->status, 503);
  EXPECT_EQ(h.send("GET", "/collections/c")->status, 404);
}

TEST(BeastHttpTransport, AResetIsRetryableUnavailable) {
  Harness h;
  h.server.inject({.reset = true});
  auto r = h.send("GET", "/collections/c");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::Unavailable);
  EXPECT_TRUE(r.error().retryable());
  EXPECT_EQ(h.send("GET", "/collections/c")->status, 404) << "the next call opens a new connection";
}

TEST(BeastHttpTransport, ASlowServerIsATimeout) {
  HttpTransportOptions o;
  o.request_timeout = 100ms;
  Harness h(o);
  h.server.inject({.delay = 2000ms});
  auto r = h.send("GET", "/collections/c");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::Timeout);
  EXPECT_TRUE(r.error().retryable());
}

TEST(BeastHttpTransport, AResponseThatNeverFinishesIsATimeout) {
  HttpTransportOptions o;
  o.request_timeout = 200ms;
  Harness h(o);
  h.server.inject({.stall_mid_body = true});
  auto r = h.send("GET", "/collections/c");
  ASSERT_FALSE(r.has_value()) << "status " << r->status;
  EXPECT_EQ(r.error().code(), ErrorCode::Timeout);
  EXPECT_TRUE(r.error().retryable());
  // The transport recovers: the next request gets a fresh connection and an answer.
  auto next = h.send("GET", "/collections/c");
  ASSERT_TRUE(next.has_value()) << next.error().to_string();
}

TEST(BeastHttpTransport, RedirectsAreReturnedNotFollowed) {
  fakes::QdrantServer elsewhere;
  Harness h;
  h.server.inject({.status = 301, .location = elsewhere.url() + "/collections/c"});
  auto r = h.send("GET", "/collections/c");
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->status, 301);
  EXPECT_EQ(elsewhere.requests(), 0u) << "the redirect was followed";
}

TEST(BeastHttpTransport, RefusesAResponseOverTheCap) {
  HttpTransportOptions o;
  o.max_response_bytes = 4096;
  Harness h(o);
  h.server.inject({.body_bytes = 100'000});
  auto r = h.send("GET", "/collections/c");
  ASSERT_FALSE(r.has_value()) << "status " << r->status << ", " << r->body.size() << " bytes";
  EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument);
  EXPECT_THAT(r.error().message(), ::testing::HasSubstr("max_response_bytes"));
}

TEST(BeastHttpTransport, CancelCompletesOnceWithCancelled) {
  Harness h;
  h.server.inject({.delay = 3000ms});
  std::promise<Result<HttpResponse>> p;
  std::atomic<int> calls{0};
  auto call = h.transport->async_request(HttpRequest{"GET", "/collections/c", {}, ""}, h.rt.executor(),
                                         [&](Result<HttpResponse> r) {
                                           ++calls;
                                           p.set_value(std::move(r));
                                         });
  call->cancel();
  call->cancel();
  auto r = p.get_future().get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::Cancelled);
  EXPECT_EQ(calls.load(), 1);
}

TEST(BeastHttpTransport, ARefusedConnectionIsUnavailable) {
  std::uint16_t dead_port = 0;
  {
    fakes::QdrantServer gone;
    dead_port = gone.port();
  }
  HttpTransportOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(dead_port);
  Harness h(o);
  auto r = h.send("GET", "/collections/c");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::Unavailable);
}

TEST(BeastHttpTransport, RejectsBadUrlsAndCaFiles) {
  AsioRuntime rt({.io_threads = 1});
  EXPECT_FALSE(BeastHttpTransport::create(rt, {.base_url = "ftp://x"}).has_value());
  auto bad_ca = BeastHttpTransport::create(rt, {.base_url = "https://x", .ca_file = "/nonexistent.pem"});
  ASSERT_FALSE(bad_ca.has_value());
  EXPECT_THAT(bad_ca.error().message(), ::testing::HasSubstr("vector_store.qdrant.ca_file"));
}

}  // namespace
}  // namespace memfuse
