#include "memfuse/fakes/fake_qdrant.h"

#include <algorithm>
#include <cmath>

#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "memfuse/executor.h"
#include "memfuse/ids.h"

namespace memfuse::fakes {
namespace {

using nlohmann::json;

HttpResponse respond(int status, json body) {
  HttpResponse r;
  r.status = status;
  r.headers = {{"content-type", "application/json"}};
  r.body = body.dump();
  return r;
}

HttpResponse ok(json result) {
  return respond(200, json{{"result", std::move(result)}, {"status", "ok"}, {"time", 0.0001}});
}

HttpResponse error(int status, const std::string& message) {
  return respond(status, json{{"status", {{"error", message}}}, {"time", 0.0001}});
}

struct Target {
  std::vector<std::string> path;  // "/collections/c/points/query" -> collections, c, points, query
  std::map<std::string, std::string> query;
};

Target parse_target(const std::string& target) {
  Target t;
  const auto q = target.find('?');
  const std::string path = target.substr(0, q);
  std::size_t start = 1;
  while (start <= path.size()) {
    const auto slash = path.find('/', start);
    const std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (!part.empty()) t.path.push_back(part);
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (q != std::string::npos) {
    std::string rest = target.substr(q + 1);
    std::size_t pos = 0;
    while (pos < rest.size()) {
      const auto amp = rest.find('&', pos);
      const std::string kv = rest.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
      const auto eq = kv.find('=');
      t.query[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
      if (amp == std::string::npos) break;
      pos = amp + 1;
    }
  }
  return t;
}

// Qdrant accepts unsigned integers and UUIDs (any case) as point ids.
std::optional<std::string> point_id(const json& id) {
  if (id.is_number_unsigned() || (id.is_number_integer() && id.get<long long>() >= 0)) {
    return std::to_string(id.get<unsigned long long>());
  }
  if (id.is_string()) {
    if (auto u = Uuid::parse(id.get<std::string>())) return u->to_string();
  }
  return std::nullopt;
}

json id_to_json(const std::string& id) {
  if (!id.empty() && std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::stoull(id);
  }
  return id;
}

// Only the filter memfuse sends: {"must": [{"key": K, "match": {"value": V}}, ...]}.
bool matches(const json& filter, const std::string& payload_json) {
  if (filter.is_null()) return true;
  const json payload = json::parse(payload_json);
  for (const auto& cond : filter.value("must", json::array())) {
    const std::string key = cond.value("key", "");
    if (!payload.contains(key) || payload[key] != cond["match"]["value"]) return false;
  }
  return true;
}

bool valid_filter(const json& filter) {
  if (filter.is_null()) return true;
  if (!filter.is_object() || !filter.contains("must") || !filter["must"].is_array()) return false;
  return std::all_of(filter["must"].begin(), filter["must"].end(), [](const json& c) {
    return c.is_object() && c.contains("key") && c["key"].is_string() && c.contains("match") &&
           c["match"].is_object() && c["match"].contains("value");
  });
}

}  // namespace

const QdrantModel::Collection* QdrantModel::collection(const std::string& name) const {
  auto it = collections_.find(name);
  return it == collections_.end() ? nullptr : &it->second;
}

HttpResponse QdrantModel::handle(const HttpRequest& request) {
  ++requests_;
  if (request.body.size() > kQdrantMaxBodyBytes) {
    return error(400, fmt::format("Payload error: JSON payload ({} bytes) is larger than allowed "
                                  "(limit: {} bytes).",
                                  request.body.size(), kQdrantMaxBodyBytes));
  }
  const Target t = parse_target(request.target);
  if (t.path.size() < 2 || t.path[0] != "collections") return error(404, "Not found");
  const std::string& name = t.path[1];
  if (t.path.size() == 2) {
    if (request.method == "GET") {
      auto it = collections_.find(name);
      if (it == collections_.end()) {
        return error(404, fmt::format("Not found: Collection `{}` doesn't exist!", name));
      }
      return ok({{"status", "green"},
                 {"points_count", it->second.points.size()},
                 {"config", {{"params", {{"vectors", {{"size", it->second.size}, {"distance", "Cosine"}}}}}}}});
    }
    if (request.method == "PUT") {
      const json body = json::parse(request.body, nullptr, false);
      if (body.is_discarded() || !body.contains("vectors") || !body["vectors"].is_object() ||
          !body["vectors"].contains("size") || !body["vectors"]["size"].is_number_unsigned() ||
          body["vectors"].value("distance", "") != "Cosine") {
        return error(400, "Format error in JSON body: expected {\"vectors\": {\"size\": N, \"distance\": \"Cosine\"}}");
      }
      if (collections_.contains(name)) {
        return error(409, fmt::format("Wrong input: Collection `{}` already exists!", name));
      }
      collections_[name].size = body["vectors"]["size"].get<int>();
      return ok(true);
    }
    return error(405, "Method Not Allowed");
  }
  if (!collections_.contains(name)) {
    return error(404, fmt::format("Not found: Collection `{}` doesn't exist!", name));
  }
  if (t.path[2] != "points") return error(404, "Not found");
  const std::string action = t.path.size() > 3 ? t.path[3] : "";
  const bool wait = t.query.contains("wait") && t.query.at("wait") == "true";
  const bool writes = (action.empty() && request.method == "PUT") || action == "delete";
  if (writes && !wait) {
    // Validate now, as the server does, then queue: "acknowledged".
    const HttpResponse check = apply(name, action + "?dry-run", request);
    if (check.status != 200) return check;
    pending_.push_back(Pending{name, request});
    return ok({{"operation_id", next_operation_++}, {"status", "acknowledged"}});
  }
  return apply(name, action, request);
}

HttpResponse QdrantModel::apply(const std::string& name, const std::string& action_in,
                                const HttpRequest& request) {
  const bool dry_run = action_in.ends_with("?dry-run");
  const std::string action = dry_run ? action_in.substr(0, action_in.size() - 8) : action_in;
  Collection& c = collections_.at(name);
  const json body = json::parse(request.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return error(400, "Format error in JSON body: not a JSON object");

  if (action.empty() && request.method == "PUT") {  // upsert
    if (!body.contains("points") || !body["points"].is_array()) {
      return error(400, "Format error in JSON body: missing field `points`");
    }
    if (body.contains("ordering") && !body["ordering"].is_string()) {
      return error(400, "Format error in JSON body: `ordering` must be weak, medium or strong");
    }
    std::vector<std::pair<std::string, Point>> batch;
    for (const auto& p : body["points"]) {
      if (!p.is_object() || !p.contains("id") || !p.contains("vector") || !p["vector"].is_array()) {
        return error(400, "Format error in JSON body: a point needs `id` and `vector`");
      }
      auto id = point_id(p["id"]);
      if (!id) return error(400, "Format error in JSON body: point id must be an unsigned integer or a UUID");
      if (static_cast<int>(p["vector"].size()) != c.size) {
        return error(400, fmt::format("Wrong input: Vector dimension error: expected dim: {}, got {}",
                                      c.size, p["vector"].size()));
      }
      Point point;
      double norm = 0;
      for (const auto& x : p["vector"]) {
        if (!x.is_number()) return error(400, "Format error in JSON body: vector must hold numbers");
        point.vector.push_back(x.get<float>());
        norm += static_cast<double>(point.vector.back()) * point.vector.back();
      }
      norm = std::sqrt(norm);
      if (norm > 0) {
        for (auto& x : point.vector) x = static_cast<float>(x / norm);
      }
      point.payload_json = p.value("payload", json::object()).dump();
      batch.emplace_back(std::move(*id), std::move(point));
    }
    if (!dry_run) {
      for (auto& [id, point] : batch) c.points[id] = std::move(point);
    }
    return ok({{"operation_id", next_operation_++}, {"status", "completed"}});
  }
  if (action == "delete" && request.method == "POST") {
    if (body.contains("points") && body["points"].is_array()) {
      std::vector<std::string> ids;
      for (const auto& id : body["points"]) {
        auto pid = point_id(id);
        if (!pid) return error(400, "Format error in JSON body: bad point id");
        ids.push_back(*pid);
      }
      if (!dry_run) {
        for (const auto& id : ids) c.points.erase(id);
      }
    } else if (body.contains("filter") && valid_filter(body["filter"])) {
      if (!dry_run) {
        std::erase_if(c.points, [&](const auto& kv) { return matches(body["filter"], kv.second.payload_json); });
      }
    } else {
      return error(400, "Format error in JSON body: expected `points` or `filter`");
    }
    return ok({{"operation_id", next_operation_++}, {"status", "completed"}});
  }
  if (action == "query" && request.method == "POST") {
    const json filter = body.value("filter", json());
    if (!body.contains("query") || !body["query"].is_array() || !valid_filter(filter)) {
      return error(400, "Format error in JSON body: expected `query` (a vector) and an optional `filter`");
    }
    if (static_cast<int>(body["query"].size()) != c.size) {
      return error(400, fmt::format("Wrong input: Vector dimension error: expected dim: {}, got {}",
                                    c.size, body["query"].size()));
    }
    std::vector<double> q;
    double norm = 0;
    for (const auto& x : body["query"]) {
      q.push_back(x.get<double>());
      norm += q.back() * q.back();
    }
    norm = std::sqrt(norm);
    const auto limit = static_cast<std::size_t>(body.value("limit", 10));
    std::vector<std::pair<double, const std::string*>> scored;
    for (const auto& [id, point] : c.points) {
      if (!matches(filter, point.payload_json)) continue;
      double dot = 0;
      for (std::size_t i = 0; i < q.size(); ++i) dot += q[i] * point.vector[i];
      scored.emplace_back(norm > 0 ? dot / norm : 0.0, &id);
    }
    std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : *a.second < *b.second;
    });
    json points = json::array();
    const bool with_payload = body.value("with_payload", false);
    for (std::size_t i = 0; i < scored.size() && i < limit; ++i) {
      json p = {{"id", id_to_json(*scored[i].second)}, {"version", 0}, {"score", scored[i].first}};
      if (with_payload) p["payload"] = json::parse(c.points.at(*scored[i].second).payload_json);
      points.push_back(std::move(p));
    }
    return ok({{"points", std::move(points)}});
  }
  if (action == "count" && request.method == "POST") {
    const json filter = body.value("filter", json());
    if (!valid_filter(filter)) return error(400, "Format error in JSON body: bad `filter`");
    std::size_t n = 0;
    for (const auto& [id, point] : c.points) n += matches(filter, point.payload_json) ? 1 : 0;
    return ok({{"count", n}});
  }
  return error(404, "Not found");
}

void QdrantModel::apply_pending() {
  auto pending = std::move(pending_);
  pending_.clear();
  for (const auto& p : pending) {
    const Target t = parse_target(p.request.target);
    (void)apply(p.collection, t.path.size() > 3 ? t.path[3] : "", p.request);
  }
}

void QdrantModel::crash() { pending_.clear(); }

// ---------------------------------------------------------------------------

class FakeQdrant::Call final : public HttpCall {
 public:
  Call(FakeQdrant& owner, Executor completion, HttpHandler done)
      : owner_(&owner), completion_(std::move(completion)), done_(std::move(done)) {}

  void cancel() noexcept override {
    if (owner_ == nullptr || !done_) return;
    if (timer_id_ != 0) owner_->runtime_.context().cancel_timer(timer_id_);
    finish(fail(ErrorCode::Cancelled, false, "the HTTP call was cancelled"));
  }

  void respond_after(Duration latency, Result<HttpResponse> result) {
    timer_id_ = owner_->runtime_.context().schedule_at(
        owner_->runtime_.now() + latency,
        [self = self_.lock(), r = std::move(result)]() mutable {
          if (self && self->done_) self->finish(std::move(r));
        },
        "qdrant.response");
  }
  void finish(Result<HttpResponse> result) {
    auto done = std::move(done_);
    done_ = nullptr;
    boost::asio::post(completion_.get(),
                      [done = std::move(done), r = std::move(result)]() mutable { done(std::move(r)); });
  }
  void detach() noexcept { owner_ = nullptr; }

  std::weak_ptr<Call> self_;

 private:
  FakeQdrant* owner_;
  Executor completion_;
  HttpHandler done_;
  std::uint64_t timer_id_ = 0;
};

FakeQdrant::FakeQdrant(sim::SimRuntime& runtime, QdrantFaultPlan plan)
    : runtime_(runtime), plan_(plan) {}

FakeQdrant::~FakeQdrant() {
  *alive_ = false;
  for (auto& w : calls_) {
    if (auto c = w.lock()) c->detach();
  }
}

void FakeQdrant::fault(std::string_view label) {
  ++faults_;
  runtime_.fault_event(label);
}

std::shared_ptr<HttpCall> FakeQdrant::async_request(HttpRequest request, const Executor& completion,
                                                    HttpHandler done) {
  auto call = std::make_shared<Call>(*this, completion, std::move(done));
  call->self_ = call;
  std::erase_if(calls_, [](const auto& w) { return w.expired(); });
  calls_.push_back(call);
  Random& r = runtime_.fault_random();
  const Duration latency = plan_.latency.draw(r);
  struct Injected {
    double p;
    int status;
    const char* label;
    const char* message;
  };
  const Injected statuses[] = {
      {plan_.status_400, 400, "qdrant: 400 injected", "Bad request (injected)"},
      {plan_.status_408, 408, "qdrant: 408 wait_timeout", "Timeout error: wait_timeout expired"},
      {plan_.status_429, 429, "qdrant: 429 rate limited", "Too many requests"},
      {plan_.status_500, 500, "qdrant: 500", "Service internal error"},
      {plan_.status_503, 503, "qdrant: 503", "Service unavailable"},
  };
  for (const auto& s : statuses) {
    if (r.chance(s.p)) {
      fault(s.label);
      call->respond_after(latency, error(s.status, s.message));
      return call;
    }
  }
  auto no_answer = [&] {
    if (request_timeout_) {
      call->respond_after(*request_timeout_,
                          fail(ErrorCode::Timeout, true, "qdrant: no response within the request timeout"));
    }
    return call;  // without a request timeout: never answers; the caller's cancel ends it
  };
  if (r.chance(plan_.timeout)) {
    fault("qdrant: no response (timeout)");
    return no_answer();
  }
  const bool lose_response = r.chance(plan_.response_lost);
  HttpResponse response = model_.handle(request);
  if (model_.pending_operations() > 0) {
    // Acknowledged wait=false writes apply a little later, unless a crash comes first.
    runtime_.context().schedule_at(
        runtime_.now() + plan_.latency.draw(r),
        [this, alive = alive_] {
          if (*alive) model_.apply_pending();
        },
        "qdrant.apply_pending");
  }
  if (lose_response) {
    fault("qdrant: applied, response lost");
    return no_answer();
  }
  call->respond_after(latency, std::move(response));
  return call;
}

void FakeQdrant::crash() {
  if (model_.pending_operations() > 0 && runtime_.fault_random().chance(plan_.lose_acknowledged_on_crash)) {
    fault("qdrant: crash lost acknowledged writes");
    model_.crash();
  } else {
    model_.apply_pending();
  }
}

}  // namespace memfuse::fakes
