// BeastHttpTransport: the production HttpTransport, Boost.Beast over TCP,
// or over TLS for https:// URLs (how Qdrant Cloud is reached).
//
//   - HTTP/1.1 keep-alive: idle connections are reused, at most
//     `max_idle_connections` kept;
//   - a connect timeout (TCP connect and TLS handshake) and a request timeout
//     (writing the request and reading the whole response);
//   - the response is capped at `max_response_bytes`: a larger one is
//     refused with InvalidArgument and the connection dropped;
//   - redirects are not followed: a 3xx is returned like any other status;
//   - TLS verifies the certificate chain and the host name by default,
//     against the system's CAs plus `ca_file` when given.
// Errors follow the HttpTransport contract: refused, reset or closed
// connections are Unavailable (retryable), timeouts Timeout (retryable), a
// failed certificate check Unavailable (not retryable: fix the CA).
//
// It runs on the runtime's executor; use it with AsioRuntime (the simulator
// uses FakeQdrant behind the same port). Thread-safety: async_request() may
// be called from any thread.
#pragma once

#include <memory>
#include <string>

#include "memfuse/error.h"
#include "memfuse/http_transport.h"
#include "memfuse/runtime.h"
#include "memfuse/time.h"

namespace memfuse {

struct HttpTransportOptions {
  std::string base_url;                         // http://host[:port] or https://host[:port]
  Duration connect_timeout = std::chrono::seconds(5);
  Duration request_timeout = std::chrono::seconds(10);
  std::size_t max_response_bytes = 64u << 20;
  std::string ca_file;                          // extra trusted CAs (PEM), https only
  std::size_t max_idle_connections = 8;
};

class BeastHttpTransport final : public HttpTransport {
 public:
  // InvalidArgument for a malformed base URL or an unreadable ca_file.
  [[nodiscard]] static Result<std::unique_ptr<BeastHttpTransport>> create(Runtime& runtime,
                                                                          HttpTransportOptions options);
  ~BeastHttpTransport() override;

  std::shared_ptr<HttpCall> async_request(HttpRequest request, const Executor& completion,
                                          HttpHandler done) override;

  // Connections opened so far (to observe keep-alive reuse).
  [[nodiscard]] std::uint64_t connections_opened() const noexcept;

  struct Impl;

 private:
  explicit BeastHttpTransport(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace memfuse
