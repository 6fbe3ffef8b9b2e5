// FakeQdrant: an in-process model of Qdrant v1.x's REST API behind the
// HttpTransport port, with the real paths, request bodies and response
// shapes, and injected faults.
//
// Faults the pipeline must survive (all injectable, per FaultPlan::qdrant):
//   - 400 for a valid request (a broken peer), and real 400s: a malformed
//     body, a vector of the wrong dimension, a body over 32 MiB;
//   - 404 for an unknown collection;
//   - 408 (wait_timeout), 429 (rate limit), 500 and 503;
//   - no response at all until the caller cancels (a hung server);
//   - the write applied but its response lost (the caller cannot know);
//   - a wait=false write acknowledged, then lost in a crash before it applied;
//   - latency drawn from a distribution.
// Faults it need not survive, and why:
//   - a server that acknowledges wait=true writes it then loses: Qdrant's
//     WAL makes completed writes durable; we do not model its bugs;
//   - responses that are valid JSON with wrong contents (scores, ids): we
//     cannot tell a lying server from a correct one without a second copy;
//   - Byzantine behaviour in general.
//
// QdrantModel is the server's state machine: synchronous and fault-free, so
// the Beast loopback server (qdrant_server.h) can serve it over real TCP.
// FakeQdrant wraps it for the simulator: latency, faults and cancellation on
// virtual time, all randomness from the run's fault generator, and a trace
// event for every injected fault.
//
// Thread-safety: QdrantModel is not thread-safe (the server locks it);
// FakeQdrant runs on the simulator's one thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "memfuse/fakes/fault_plan.h"
#include "memfuse/http_transport.h"
#include "memfuse/sim/sim_runtime.h"

namespace memfuse::fakes {

inline constexpr std::size_t kQdrantMaxBodyBytes = 32u << 20;

class QdrantModel {
 public:
  struct Point {
    std::vector<float> vector;  // normalised at upsert (Cosine), as Qdrant does
    std::string payload_json;   // the payload object, serialised
  };
  struct Collection {
    int size = 0;
    std::map<std::string, Point> points;  // by id (canonical text): deterministic order
  };

  // Handles one request as the real server would, applying its effect.
  // A wait=false upsert or delete is queued and answered "acknowledged"; it
  // applies at apply_pending() (or is lost at crash()).
  [[nodiscard]] HttpResponse handle(const HttpRequest& request);
  void apply_pending();
  // Loses every acknowledged but unapplied operation.
  void crash();

  [[nodiscard]] const Collection* collection(const std::string& name) const;
  [[nodiscard]] std::size_t pending_operations() const noexcept { return pending_.size(); }
  [[nodiscard]] std::uint64_t requests() const noexcept { return requests_; }

 private:
  struct Pending {
    std::string collection;
    HttpRequest request;
  };
  HttpResponse apply(const std::string& collection, const std::string& action,
                     const HttpRequest& request);

  std::map<std::string, Collection> collections_;
  std::vector<Pending> pending_;
  std::uint64_t next_operation_ = 1;
  std::uint64_t requests_ = 0;
};

class FakeQdrant final : public HttpTransport {
 public:
  FakeQdrant(sim::SimRuntime& runtime, QdrantFaultPlan plan = {});
  ~FakeQdrant() override;

  std::shared_ptr<HttpCall> async_request(HttpRequest request, const Executor& completion,
                                          HttpHandler done) override;

  void set_plan(QdrantFaultPlan plan) { plan_ = plan; }
  // The transport's request timeout, as BeastHttpTransport applies it: a
  // request whose answer never comes (the timeout and response-lost faults)
  // completes with Timeout (retryable) this long after it was sent. Unset
  // (the default): it never completes until cancelled.
  void set_request_timeout(std::optional<Duration> timeout) { request_timeout_ = timeout; }
  [[nodiscard]] QdrantModel& model() noexcept { return model_; }
  // A server crash: acknowledged wait=false writes not yet applied may be lost
  // (each with probability lose_acknowledged_on_crash).
  void crash();
  [[nodiscard]] std::uint64_t faults_injected() const noexcept { return faults_; }

 private:
  class Call;
  void fault(std::string_view label);

  sim::SimRuntime& runtime_;
  QdrantFaultPlan plan_;
  QdrantModel model_;
  std::uint64_t faults_ = 0;
  std::optional<Duration> request_timeout_;
  std::vector<std::weak_ptr<Call>> calls_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for scheduled work
};

}  // namespace memfuse::fakes
