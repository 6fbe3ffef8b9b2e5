// Properties of the fakes: the fake Qdrant's upsert is idempotent by point id,
// and a run driven by a swarm FaultPlan over both fakes is a function of its seed.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <sqlite3.h>

#include <map>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "memfuse/executor.h"
#include "memfuse/fakes/fake_qdrant.h"
#include "memfuse/fakes/fault_vfs.h"
#include "memfuse/fakes/sim_faults.h"

namespace memfuse::fakes {
namespace {

using nlohmann::json;

std::string uuid_of(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-5000-8000-%012d", n);
  return buf;
}

RC_GTEST_PROP(FakeQdrantProperties, UpsertIsIdempotentByIdAndTheLastWriteWins, ()) {
  // A sequence of upserts drawing ids from a small pool, so ids repeat.
  const auto writes = *rc::gen::container<std::vector<std::pair<int, int>>>(
      rc::gen::pair(rc::gen::inRange(0, 8), rc::gen::inRange(0, 1000)));
  sim::SimRuntime rt({.seed = 1});
  FakeQdrant q(rt);
  auto send = [&](std::string method, std::string target, json body) {
    std::optional<Result<HttpResponse>> out;
    q.async_request(HttpRequest{std::move(method), std::move(target), {}, body.dump()}, rt.executor(),
                    [&](Result<HttpResponse> r) { out = std::move(r); });
    (void)rt.run_until_quiescent(1000);
    RC_ASSERT(out.has_value() && out->has_value() && (*out)->status == 200);
    return json::parse((*out)->body)["result"];
  };
  send("PUT", "/collections/c", {{"vectors", {{"size", 2}, {"distance", "Cosine"}}}});
  std::map<int, int> last;
  for (const auto& [id, value] : writes) {
    json point = {{"id", uuid_of(id)}, {"vector", {1.0, 0.5}}, {"payload", {{"v", value}}}};
    json body = json::object();
    body["points"] = json::array({point});
    send("PUT", "/collections/c/points?wait=true", body);
    last[id] = value;
  }
  RC_ASSERT(send("POST", "/collections/c/points/count", json::object())["count"] == last.size());
  const auto* c = q.model().collection("c");
  for (const auto& [id, value] : last) {
    RC_ASSERT(json::parse(c->points.at(uuid_of(id)).payload_json)["v"] == value);
  }
}

// One run: SQLite over FaultVfs and requests to FakeQdrant, under the swarm
// plan of `seed`, interleaved by the random scheduler. Returns the trace hash.
std::uint64_t run_faulty_workload(std::uint64_t seed) {
  const FaultPlan plan = FaultPlan::swarm(seed);
  sim::SimRuntime rt({.seed = seed, .strategy = sim::Strategy::Random,
                      .trace_mode = sim::Trace::Mode::HashOnly});
  rt.set_blocking_model(sqlite_blocking_model(plan, rt));
  seed_sqlite_prng(static_cast<std::uint32_t>(seed));
  FaultVfs vfs("fakes-prop-" + std::to_string(seed) + "-" + std::to_string(rt.trace().count()),
               rt.fault_random(), &rt.clock());
  trace_faults(vfs, rt);
  FakeQdrant q(rt, plan.qdrant);
  sqlite3* db = nullptr;
  sqlite3_open_v2("/db", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs.name().c_str());
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(x)", nullptr, nullptr, nullptr);
  vfs.set_faults(plan.vfs_faults());
  std::vector<std::shared_ptr<HttpCall>> calls;
  for (int i = 0; i < 20; ++i) {
    boost::asio::post(rt.executor().get(), [&, i] {
      rt.blocking().submit(
          "sqlite.write", rt.executor(),
          [&, i](const CancelToken&) {
            const int rc = sqlite3_exec(db, ("INSERT INTO t VALUES (" + std::to_string(i) + ")").c_str(),
                                        nullptr, nullptr, nullptr);
            rt.app_event("sqlite insert", rc);
          },
          [](std::error_code) {});
      calls.push_back(q.async_request(
          HttpRequest{"GET", "/collections/c", {}, ""}, rt.executor(),
          [&](Result<HttpResponse> r) { rt.app_event("qdrant answered", r ? r->status : -1); }));
    });
  }
  (void)rt.run_for(std::chrono::seconds(120));
  for (auto& c : calls) c->cancel();  // the hung ones
  (void)rt.run_until_quiescent(100'000);
  vfs.heal();
  sqlite3_close_v2(db);
  return rt.trace().hash();
}

RC_GTEST_PROP(FakesDeterminism, TheSameSeedGivesTheSameTrace, ()) {
  const auto seed = *rc::gen::inRange<std::uint64_t>(1, 1'000'000);
  const std::uint64_t first = run_faulty_workload(seed);
  const std::uint64_t second = run_faulty_workload(seed);
  if (first != second) {
    RC_FAIL("two runs of seed " + std::to_string(seed) +
            " gave different trace hashes under this fault plan:\n" + FaultPlan::swarm(seed).to_json());
  }
}

}  // namespace
}  // namespace memfuse::fakes
