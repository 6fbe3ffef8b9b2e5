// HttpTransport: the port through which the Qdrant client speaks HTTP.
//
// Production: Boost.Beast over TCP (and TLS for https://), with keep-alive,
// timeouts and a response size cap. Simulation: an in-process Qdrant model
// (fakes/) that answers with the real server's paths and JSON shapes, and
// injects faults. The client's JSON encoding, status handling and retries are
// the same code on both.
//
// Contract: async_request() never completes inline; `done` is posted to
// `completion` exactly once, with a response (any HTTP status) or an error:
//   Unavailable (retryable)  connection refused, reset, or the peer vanished;
//   Timeout (retryable)      no response in time;
//   Cancelled                the returned handle was cancelled first;
//   InvalidArgument          the response broke a limit (size) or HTTP itself.
// Thread-safety: async_request() may be called from any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "memfuse/error.h"
#include "memfuse/runtime.h"

namespace memfuse {

struct HttpRequest {
  std::string method;  // "GET", "PUT", "POST", "DELETE"
  std::string target;  // path and query: "/collections/c/points?wait=true"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

class HttpCall {
 public:
  virtual ~HttpCall() = default;
  // Completes the call with Cancelled unless it has completed. Idempotent.
  virtual void cancel() noexcept = 0;
};

using HttpHandler = std::move_only_function<void(Result<HttpResponse>)>;

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual std::shared_ptr<HttpCall> async_request(HttpRequest request, const Executor& completion,
                                                  HttpHandler done) = 0;
};

}  // namespace memfuse
