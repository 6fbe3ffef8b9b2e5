// The production HTTP transport. Each call runs as one C++20 coroutine on a
// strand of its own: take an idle keep-alive connection or open one (TCP,
// then TLS), write the request, read the response within the deadline, and
// give the connection back if both sides keep it alive. cancel() closes the
// call's connection on that strand, which ends the coroutine's pending
// operation; the completion is delivered exactly once either way.
#include "memfuse/beast_http_transport.h"

#include <atomic>
#include <mutex>
#include <optional>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>

#include "memfuse/executor.h"

namespace memfuse {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

namespace {

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
};

Result<Url> parse_url(std::string_view url) {
  Url u;
  std::string_view rest;
  if (url.starts_with("https://")) {
    u.tls = true;
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("\"{}\" is not an http:// or https:// URL", url));
  }
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) rest = rest.substr(0, slash);
  const auto colon = rest.rfind(':');
  u.host = std::string(rest.substr(0, colon));
  u.port = colon == std::string_view::npos ? (u.tls ? "443" : "80") : std::string(rest.substr(colon + 1));
  if (u.host.empty() || u.port.empty()) {
    return fail(ErrorCode::InvalidArgument, false, fmt::format("\"{}\" has no host", url));
  }
  return u;
}

std::chrono::nanoseconds to_chrono(Duration d) { return std::chrono::nanoseconds(d.count()); }

Error transport_error(const beast::error_code& ec, std::string_view stage) {
  const std::string what = fmt::format("http: {}: {}", stage, ec.message());
  if (ec == beast::error::timeout) return Error(ErrorCode::Timeout, true, what);
  if (ec == http::error::body_limit || ec == http::error::header_limit) {
    return Error(ErrorCode::InvalidArgument, false,
                 what + " (the response is larger than vector_store.qdrant.max_response_bytes)");
  }
  if (ec == asio::error::operation_aborted) return Error(ErrorCode::Cancelled, false, what);
  if (ec.category() == asio::error::get_ssl_category() || ec.category() == ssl::error::get_stream_category()) {
    return Error(ErrorCode::Unavailable, false,
                 what + " (TLS failed; if the server's certificate is self-signed, pass its CA in "
                        "vector_store.qdrant.ca_file)");
  }
  return Error(ErrorCode::Unavailable, true, what);
}

}  // namespace

// One connection, plain or TLS. Used by one call at a time.
struct Connection {
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  beast::tcp_stream& tcp() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
};

class BeastCall final : public HttpCall {
 public:
  BeastCall(asio::strand<asio::any_io_executor> strand, Executor completion, HttpHandler done)
      : strand_(std::move(strand)), completion_(std::move(completion)), done_(std::move(done)) {}

  void cancel() noexcept override {
    if (!finish(fail(ErrorCode::Cancelled, false, "the HTTP call was cancelled"))) return;
    asio::post(strand_, [this_ = shared_from_this_()] {
      if (auto c = this_->connection_.lock()) {
        beast::error_code ec;
        c->tcp().socket().close(ec);
      }
    });
  }

  // Delivers the result unless one was delivered. True if this call did it.
  bool finish(Result<HttpResponse> result) {
    HttpHandler done;
    {
      std::lock_guard lock(mutex_);
      if (!done_) return false;
      done = std::move(done_);
      done_ = nullptr;
    }
    asio::post(completion_.get(),
               [done = std::move(done), r = std::move(result)]() mutable { done(std::move(r)); });
    return true;
  }
  bool finished() {
    std::lock_guard lock(mutex_);
    return !done_;
  }

  const asio::strand<asio::any_io_executor>& strand() const { return strand_; }
  std::weak_ptr<Connection> connection_;  // touched on the strand only
  std::weak_ptr<BeastCall> self_;

 private:
  std::shared_ptr<BeastCall> shared_from_this_() { return self_.lock(); }
  asio::strand<asio::any_io_executor> strand_;
  Executor completion_;
  std::mutex mutex_;
  HttpHandler done_;  // guarded by mutex_
};

struct BeastHttpTransport::Impl : std::enable_shared_from_this<BeastHttpTransport::Impl> {
  Impl(Runtime& rt, HttpTransportOptions o, Url u)
      : runtime(rt), options(std::move(o)), url(std::move(u)), ssl_ctx(ssl::context::tls_client) {}

  std::shared_ptr<Connection> take_idle() {
    std::lock_guard lock(mutex);
    if (idle.empty()) return nullptr;
    auto c = std::move(idle.back());
    idle.pop_back();
    return c;
  }
  void give_back(std::shared_ptr<Connection> c) {
    std::lock_guard lock(mutex);
    if (idle.size() < options.max_idle_connections) idle.push_back(std::move(c));
  }

  asio::awaitable<Result<std::shared_ptr<Connection>>> connect(asio::any_io_executor ex);
  template <typename Stream>
  asio::awaitable<Result<HttpResponse>> exchange(Stream& stream, Connection& c,
                                                 const http::request<http::string_body>& req,
                                                 bool& keep_alive);
  // Static, owning its Impl: the transport may be destroyed while calls run.
  static asio::awaitable<void> run(std::shared_ptr<Impl> self, std::shared_ptr<BeastCall> call,
                                   HttpRequest request);

  Runtime& runtime;
  HttpTransportOptions options;
  Url url;
  ssl::context ssl_ctx;
  std::mutex mutex;
  std::vector<std::shared_ptr<Connection>> idle;  // guarded by mutex
  std::atomic<std::uint64_t> opened{0};
};

asio::awaitable<Result<std::shared_ptr<Connection>>> BeastHttpTransport::Impl::connect(
    asio::any_io_executor ex) {
  beast::error_code ec;
  tcp::resolver resolver(ex);
  auto endpoints = co_await resolver.async_resolve(url.host, url.port,
                                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Unexpected(transport_error(ec, "resolving " + url.host));
  auto c = std::make_shared<Connection>();
  if (url.tls) {
    c->tls.emplace(ex, ssl_ctx);
    // SSL_set_tlsext_host_name, without the macro's C-style cast.
    if (SSL_ctrl(c->tls->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 static_cast<void*>(const_cast<char*>(url.host.c_str()))) != 1) {
      co_return fail(ErrorCode::Unavailable, false, "http: TLS: cannot set the server name (SNI)");
    }
    c->tls->set_verify_mode(ssl::verify_peer);
    c->tls->set_verify_callback(ssl::host_name_verification(url.host));
  } else {
    c->plain.emplace(ex);
  }
  c->tcp().expires_after(to_chrono(options.connect_timeout));
  co_await c->tcp().async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Unexpected(transport_error(ec, fmt::format("connecting to {}:{}", url.host, url.port)));
  if (c->tls) {
    co_await c->tls->async_handshake(ssl::stream_base::client,
                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return Unexpected(transport_error(ec, "TLS handshake"));
  }
  ++opened;
  co_return c;
}

template <typename Stream>
asio::awaitable<Result<HttpResponse>> BeastHttpTransport::Impl::exchange(
    Stream& stream, Connection& c, const http::request<http::string_body>& req, bool& keep_alive) {
  beast::error_code ec;
  c.tcp().expires_after(to_chrono(options.request_timeout));
  co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Unexpected(transport_error(ec, "writing the request"));
  http::response_parser<http::string_body> parser;
  parser.body_limit(options.max_response_bytes);
  parser.header_limit(64 * 1024);
  // The header first: Beast 1.74 checks Content-Length against body_limit
  // when it parses the header alone, but not when async_read parses eagerly.
  co_await http::async_read_header(stream, c.buffer, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Unexpected(transport_error(ec, "reading the response header"));
  if (const auto length = parser.content_length(); length && *length > options.max_response_bytes) {
    co_return Unexpected(transport_error(http::error::body_limit, "reading the response"));
  }
  co_await http::async_read(stream, c.buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Unexpected(transport_error(ec, "reading the response"));
  const auto& res = parser.get();
  HttpResponse out;
  out.status = static_cast<int>(res.result_int());
  for (const auto& field : res) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  out.body = res.body();
  keep_alive = res.keep_alive();
  co_return out;
}

asio::awaitable<void> BeastHttpTransport::Impl::run(std::shared_ptr<Impl> self,
                                                    std::shared_ptr<BeastCall> call,
                                                    HttpRequest request) {
  Impl& m = *self;
  const Url& url = m.url;
  http::request<http::string_body> req{http::string_to_verb(request.method), request.target, 11};
  req.set(http::field::host, url.host + ":" + url.port);
  req.set(http::field::user_agent, "memfuse-flush");
  if (!request.body.empty()) req.set(http::field::content_type, "application/json");
  for (const auto& [k, v] : request.headers) req.set(k, v);
  req.keep_alive(true);
  req.body() = std::move(request.body);
  req.prepare_payload();

  // A reused connection the server has closed meanwhile fails at once; then
  // try once more on a fresh one. (Memfuse's requests are idempotent.)
  auto conn = m.take_idle();
  bool reused = conn != nullptr;
  for (int round = 0; round < 2 && !call->finished(); ++round) {
    if (!conn) {
      auto fresh = co_await m.connect(call->strand());
      if (!fresh) {
        call->finish(Unexpected(fresh.error()));
        co_return;
      }
      conn = std::move(*fresh);
      reused = false;
    }
    call->connection_ = conn;
    bool keep_alive = false;
    // Not a ?: with co_await in both arms: g++ 12 miscompiles that.
    Result<HttpResponse> result = fail(ErrorCode::Unavailable, "no exchange");
    if (conn->tls) {
      result = co_await m.exchange(*conn->tls, *conn, req, keep_alive);
    } else {
      result = co_await m.exchange(*conn->plain, *conn, req, keep_alive);
    }
    if (!result && reused && result.error().code() == ErrorCode::Unavailable) {
      conn.reset();  // stale keep-alive connection
      continue;
    }
    if (result && keep_alive) m.give_back(conn);
    call->finish(std::move(result));
    co_return;
  }
}

Result<std::unique_ptr<BeastHttpTransport>> BeastHttpTransport::create(Runtime& runtime,
                                                                       HttpTransportOptions options) {
  auto url = parse_url(options.base_url);
  if (!url) return Unexpected(url.error());
  auto impl = std::make_shared<Impl>(runtime, std::move(options), std::move(*url));
  beast::error_code ec;
  impl->ssl_ctx.set_default_verify_paths(ec);
  if (!impl->options.ca_file.empty()) {
    impl->ssl_ctx.load_verify_file(impl->options.ca_file, ec);
    if (ec) {
      return fail(ErrorCode::InvalidArgument, false,
                  fmt::format("vector_store.qdrant.ca_file: cannot load {}: {}", impl->options.ca_file,
                              ec.message()));
    }
  }
  return std::unique_ptr<BeastHttpTransport>(new BeastHttpTransport(std::move(impl)));
}

BeastHttpTransport::BeastHttpTransport(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
BeastHttpTransport::~BeastHttpTransport() = default;

std::shared_ptr<HttpCall> BeastHttpTransport::async_request(HttpRequest request,
                                                            const Executor& completion,
                                                            HttpHandler done) {
  auto call = std::make_shared<BeastCall>(asio::make_strand(impl_->runtime.executor().get()),
                                          completion, std::move(done));
  call->self_ = call;
  asio::co_spawn(call->strand(), Impl::run(impl_, call, std::move(request)), asio::detached);
  return call;
}

std::uint64_t BeastHttpTransport::connections_opened() const noexcept { return impl_->opened.load(); }

}  // namespace memfuse
