// QdrantServer: the fake Qdrant model served over HTTP/1.1 on a loopback
// socket (Boost.Beast), so integration tests drive the real HTTP client over
// real TCP.
//
// It listens on 127.0.0.1 at an ephemeral port and serves every connection
// (keep-alive) on its own thread until destroyed. Faults for the client to
// survive are queued per request: answer with a status instead of handling,
// delay the answer (real time), or reset the connection without answering.
//
// Thread-safety: every member may be called from any thread; the model is
// guarded by the server's mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "memfuse/fakes/fake_qdrant.h"

namespace memfuse::fakes {

struct ServerFault {
  std::optional<int> status;                    // answer this status; apply nothing
  std::chrono::milliseconds delay{0};           // wait before answering
  bool reset = false;                           // close the connection without answering
  std::optional<std::size_t> body_bytes;        // answer 200 with a body this large
  bool stall_mid_body = false;                  // send the headers and part of the body, then nothing
  std::optional<std::string> location;          // with `status`: a Location header (a redirect)
};

class QdrantServer {
 public:
  QdrantServer();
  ~QdrantServer();
  QdrantServer(const QdrantServer&) = delete;
  QdrantServer& operator=(const QdrantServer&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept;
  [[nodiscard]] std::string url() const;  // "http://127.0.0.1:<port>"

  // The fault for the next request not yet answered (FIFO).
  void inject(ServerFault fault);
  // Runs `f` on the model under the server's lock.
  void with_model(const std::function<void(QdrantModel&)>& f);
  // Requests served so far, and the last request's headers (to check api-key).
  [[nodiscard]] std::uint64_t requests() const;
  [[nodiscard]] std::uint64_t connections() const;
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> last_headers() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace memfuse::fakes
