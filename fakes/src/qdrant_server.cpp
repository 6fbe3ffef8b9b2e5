#include "memfuse/fakes/qdrant_server.h"

#include <sys/socket.h>

#include <deque>
#include <mutex>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace memfuse::fakes {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct QdrantServer::Impl {
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::thread accept_thread;
  std::mutex mutex;
  QdrantModel model;                       // guarded by mutex
  std::deque<ServerFault> faults;          // guarded by mutex
  std::uint64_t served = 0;                // guarded by mutex
  std::vector<std::pair<std::string, std::string>> last_headers;  // guarded by mutex
  std::vector<std::thread> sessions;       // guarded by mutex
  struct Connection {
    explicit Connection(asio::io_context& ioc) : socket(ioc) {}
    tcp::socket socket;
    bool closed = false;  // guarded by mutex: closing races with the destructor's shutdown
  };
  std::vector<std::shared_ptr<Connection>> connections;  // guarded by mutex
  bool stopping = false;                   // guarded by mutex
  std::uint64_t accepted = 0;              // guarded by mutex

  void accept_loop() {
    while (true) {
      auto connection = std::make_shared<Connection>(ioc);
      beast::error_code ec;
      acceptor.accept(connection->socket, ec);
      std::lock_guard lock(mutex);
      if (ec || stopping) return;
      connections.push_back(connection);
      ++accepted;
      sessions.emplace_back([this, connection] { serve(*connection); });
    }
  }

  // One connection: read a request, answer it, until the peer closes.
  void serve(Connection& connection) {
    tcp::socket& socket = connection.socket;
    beast::flat_buffer buffer;
    while (true) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(kQdrantMaxBodyBytes + 1024);
      beast::error_code ec;
      http::read(socket, buffer, parser, ec);
      if (ec) return;
      const auto& req = parser.get();
      HttpRequest request{std::string(req.method_string()), std::string(req.target()), {}, req.body()};
      for (const auto& field : req) {
        request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
      }
      std::optional<ServerFault> fault;
      HttpResponse response;
      {
        std::lock_guard lock(mutex);
        ++served;
        last_headers = request.headers;
        if (!faults.empty()) {
          fault = faults.front();
          faults.pop_front();
        }
        if (!fault || (!fault->status && !fault->reset && !fault->body_bytes && !fault->stall_mid_body)) {
          response = model.handle(request);
        }
      }
      if (fault && fault->delay.count() > 0) std::this_thread::sleep_for(fault->delay);
      if (fault && fault->reset) {
        std::lock_guard lock(mutex);
        connection.closed = true;
        socket.close(ec);
        return;
      }
      if (fault && fault->stall_mid_body) {
        // A response that never finishes: 1000 bytes promised, 10 sent, then
        // silence until the client gives up and closes.
        const std::string head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            "{\"result\":";
        asio::write(socket, asio::buffer(head), ec);
        char sink[256];
        while (!ec) (void)socket.read_some(asio::buffer(sink), ec);
        return;
      }
      if (fault && fault->body_bytes) {
        response.status = 200;
        response.body = std::string(*fault->body_bytes, ' ');
      }
      if (fault && fault->status) {
        response.status = *fault->status;
        response.body = R"({"status":{"error":"injected by the test server"},"time":0.0})";
      }
      http::response<http::string_body> res{static_cast<http::status>(response.status), req.version()};
      res.set(http::field::content_type, "application/json");
      if (fault && fault->location) res.set(http::field::location, *fault->location);
      res.keep_alive(req.keep_alive());
      res.body() = std::move(response.body);
      res.prepare_payload();
      http::write(socket, res, ec);
      if (ec || !req.keep_alive()) return;
    }
  }
};

QdrantServer::QdrantServer() : impl_(std::make_unique<Impl>()) {
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen();
  impl_->accept_thread = std::thread([this] { impl_->accept_loop(); });
}

QdrantServer::~QdrantServer() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
    // Unblock every session's read. A plain shutdown(2) on the descriptor:
    // the session thread owns the socket object itself.
    for (auto& c : impl_->connections) {
      if (!c->closed) ::shutdown(c->socket.native_handle(), SHUT_RDWR);
    }
  }
  {
    // Wake the blocking accept with a connection of our own.
    beast::error_code ec;
    tcp::socket poke(impl_->ioc);
    poke.connect(impl_->acceptor.local_endpoint(), ec);
  }
  impl_->accept_thread.join();
  std::vector<std::thread> sessions;
  {
    std::lock_guard lock(impl_->mutex);
    sessions.swap(impl_->sessions);
  }
  for (auto& t : sessions) t.join();
}

std::uint16_t QdrantServer::port() const noexcept { return impl_->acceptor.local_endpoint().port(); }
std::string QdrantServer::url() const { return "http://127.0.0.1:" + std::to_string(port()); }

void QdrantServer::inject(ServerFault fault) {
  std::lock_guard lock(impl_->mutex);
  impl_->faults.push_back(fault);
}

void QdrantServer::with_model(const std::function<void(QdrantModel&)>& f) {
  std::lock_guard lock(impl_->mutex);
  f(impl_->model);
}

std::uint64_t QdrantServer::requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->served;
}

std::uint64_t QdrantServer::connections() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->accepted;
}

std::vector<std::pair<std::string, std::string>> QdrantServer::last_headers() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->last_headers;
}

}  // namespace memfuse::fakes
