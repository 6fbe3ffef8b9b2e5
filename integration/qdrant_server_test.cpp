// The fake Qdrant served over a real loopback socket answers real HTTP
// requests (Boost.Beast client here; the production client comes with the
// Qdrant store), and injects transport faults on demand.
#include "memfuse/fakes/qdrant_server.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace memfuse::fakes {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct Client {
  explicit Client(std::uint16_t port) : socket(ioc) {
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }
  // Returns {status, body}, or status -1 when the connection broke.
  std::pair<int, std::string> send(http::verb verb, const std::string& target, const std::string& body) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set("api-key", "secret-test-key");
    req.set(http::field::content_type, "application/json");
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    beast::error_code ec;
    http::write(socket, req, ec);
    if (ec) return {-1, ec.message()};
    http::response<http::string_body> res;
    http::read(socket, buffer, res, ec);
    if (ec) return {-1, ec.message()};
    return {static_cast<int>(res.result_int()), res.body()};
  }
  asio::io_context ioc;
  tcp::socket socket;
  beast::flat_buffer buffer;
};

TEST(QdrantServer, ServesRealHttpRequestsOverLoopbackWithKeepAlive) {
  QdrantServer server;
  Client client(server.port());
  auto created = client.send(http::verb::put, "/collections/c",
                             R"({"vectors":{"size":2,"distance":"Cosine"}})");
  EXPECT_EQ(created.first, 200) << created.second;
  auto upsert = client.send(http::verb::put, "/collections/c/points?wait=true",
                            R"({"points":[{"id":1,"vector":[1,0],"payload":{"session_id":"s"}}]})");
  EXPECT_EQ(upsert.first, 200);
  EXPECT_EQ(nlohmann::json::parse(upsert.second)["result"]["status"], "completed");
  auto count = client.send(http::verb::post, "/collections/c/points/count", "{}");
  EXPECT_EQ(nlohmann::json::parse(count.second)["result"]["count"], 1);
  EXPECT_EQ(server.requests(), 3u) << "three requests on one keep-alive connection";
  bool saw_key = false;
  for (const auto& [k, v] : server.last_headers()) saw_key = saw_key || (k == "api-key" && v == "secret-test-key");
  EXPECT_TRUE(saw_key);
}

TEST(QdrantServer, InjectsStatusesAndConnectionResets) {
  QdrantServer server;
  server.inject({.status = 503});
  server.inject({.status = 429});
  server.inject({.reset = true});
  Client client(server.port());
  EXPECT_EQ(client.send(http::verb::get, "/collections/c", "").first, 503);
  EXPECT_EQ(client.send(http::verb::get, "/collections/c", "").first, 429);
  EXPECT_EQ(client.send(http::verb::get, "/collections/c", "").first, -1) << "reset";
  Client again(server.port());
  EXPECT_EQ(again.send(http::verb::get, "/collections/c", "").first, 404) << "no faults left";
}

}  // namespace
}  // namespace memfuse::fakes
