#include "memfuse/sim/scenario.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "memfuse/runtime.h"

namespace memfuse::sim {

using nlohmann::json;

namespace {

constexpr std::uint64_t kScenarioStream = 0x5ce7a410f00dULL;

Duration log_uniform(Random& r, Duration lo, Duration hi) {
  const double a = std::log(static_cast<double>(lo.count()));
  const double b = std::log(static_cast<double>(hi.count()));
  return Duration(static_cast<std::int64_t>(std::exp(a + (b - a) * r.uniform01())));
}
int between(Random& r, int lo, int hi) { return lo + static_cast<int>(r.uniform(static_cast<std::uint64_t>(hi - lo + 1))); }

Scenario swarm(std::uint64_t seed) {
  SeededRandom r(seed ^ kScenarioStream);
  using namespace std::chrono_literals;
  Scenario s;
  Workload& w = s.workload;
  w.sessions = between(r, 1, 5);
  w.rounds = between(r, 5, 60);
  w.add_gap_mean = log_uniform(r, 20ms, 2s);
  w.max_messages = between(r, 1, 4);
  w.max_message_bytes = between(r, 20, 600);
  w.reads_per_add = 1.5 * r.uniform01();
  w.flushes_per_add = 0.2 * r.uniform01();

  Config& c = s.config;
  auto& fm = c.buffer.flush_manager;
  fm.max_workers = between(r, 1, 4);
  fm.max_queue_size = between(r, 2, 40);
  fm.queue_full_policy = r.chance(0.25) ? QueueFullPolicy::Wait : QueueFullPolicy::Reject;
  fm.queue_full_wait = log_uniform(r, 100ms, 5s);
  fm.default_timeout = log_uniform(r, 1s, 10s);
  fm.enable_auto_flush = r.chance(0.5);
  fm.flush_interval = log_uniform(r, 5s, 60s);
  fm.retry.max_retries = between(r, 0, 5);
  fm.retry.backoff_base = log_uniform(r, 10ms, 500ms);
  fm.retry.backoff_cap = 5s;
  fm.retry.jitter = 0.5 * r.uniform01();
  fm.delivery_deadline = std::max(fm.default_timeout, log_uniform(r, 30s, 300s));
  auto& hb = c.buffer.hybrid_buffer;
  hb.max_size = between(r, 1, 8);
  hb.enable_auto_flush = r.chance(0.7);
  hb.auto_flush_interval = log_uniform(r, 1s, 30s);
  hb.max_message_bytes = 4096;
  hb.max_pending_rounds = static_cast<std::size_t>(between(r, std::max(hb.max_size, 10), 400));
  hb.max_pending_bytes = static_cast<std::size_t>(between(r, 8 << 10, 1 << 20));
  c.sqlite.path = "memfuse.db";
  c.sqlite.synchronous = r.chance(0.5) ? SqliteSynchronous::Full : SqliteSynchronous::Normal;
  c.vector_store.kind = r.chance(0.5) ? VectorStoreKind::Qdrant : VectorStoreKind::Sqlite;
  c.vector_store.qdrant.url = "http://qdrant.sim:6333";
  c.vector_store.qdrant.api_key = "sim-api-key-never-logged";
  c.vector_store.qdrant.request_timeout = fm.default_timeout / 2;
  c.vector_store.qdrant.connect_timeout = std::min<Duration>(c.vector_store.qdrant.request_timeout, 5s);
  c.embedding.dimension = between(r, 8, 48);
  c.chunking.chunk_size_bytes = static_cast<std::size_t>(between(r, 32, 512));

  s.faults = fakes::FaultPlan::swarm(seed);
  const double pick = r.uniform01();
  s.scheduler.strategy = pick < 0.4 ? Strategy::Random : pick < 0.8 ? Strategy::Pct : Strategy::Fifo;
  s.scheduler.pct_depth = between(r, 1, 4);
  return s;
}

json workload_json(const Workload& w) {
  return {{"sessions", w.sessions},
          {"rounds", w.rounds},
          {"add_gap_mean_s", duration_to_seconds(w.add_gap_mean)},
          {"max_messages", w.max_messages},
          {"max_message_bytes", w.max_message_bytes},
          {"reads_per_add", w.reads_per_add},
          {"flushes_per_add", w.flushes_per_add},
          {"liveness_budget_s", duration_to_seconds(w.liveness_budget)}};
}

// Reads one workload field with its type and range; errors name it.
class Fields {
 public:
  explicit Fields(const json& j, std::string prefix) : j_(j), prefix_(std::move(prefix)) {}
  void integer(const char* key, int& out, int lo, int hi) {
    if (!j_.contains(key)) return;
    const json& v = j_.at(key);
    if (!v.is_number_integer() || v.get<long long>() < lo || v.get<long long>() > hi) {
      errors_.push_back(fmt::format("{}.{}: must be an integer in [{}, {}]", prefix_, key, lo, hi));
      return;
    }
    out = v.get<int>();
  }
  void number(const char* key, double& out, double lo, double hi) {
    if (!j_.contains(key)) return;
    const json& v = j_.at(key);
    if (!v.is_number() || !(v.get<double>() >= lo && v.get<double>() <= hi)) {
      errors_.push_back(fmt::format("{}.{}: must be a number in [{}, {}]", prefix_, key, lo, hi));
      return;
    }
    out = v.get<double>();
  }
  void seconds(const char* key, Duration& out, double lo, double hi) {
    double s = duration_to_seconds(out);
    const std::size_t before = errors_.size();
    number(key, s, lo, hi);
    if (errors_.size() == before) out = seconds_to_duration(s);
  }
  void unknown(std::initializer_list<const char*> known) {
    for (const auto& [k, v] : j_.items()) {
      bool ok = false;
      for (const char* n : known) ok = ok || k == n;
      if (!ok) errors_.push_back(fmt::format("{}.{}: unknown field", prefix_, k));
    }
  }
  std::vector<std::string> errors_;

 private:
  const json& j_;
  std::string prefix_;
};

}  // namespace

std::string Scenario::to_json(int indent) const {
  json j;
  j["workload"] = workload_json(workload);
  j["config"] = json::parse(config.to_json());
  j["faults"] = json::parse(faults.to_json());
  j["scheduler"] = {{"strategy", std::string(sim::to_string(scheduler.strategy))},
                    {"pct_depth", scheduler.pct_depth}};
  return j.dump(indent);
}

Result<Scenario> resolve_scenario(std::string_view json_text, std::uint64_t seed) {
  const json root = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (root.is_discarded()) {
    return fail(ErrorCode::InvalidArgument, false, "scenario: not valid JSON");
  }
  if (!root.is_object()) return fail(ErrorCode::InvalidArgument, false, "scenario: must be a JSON object");
  Scenario s = swarm(seed);
  std::vector<std::string> errors;
  for (const auto& [k, v] : root.items()) {
    if (k != "workload" && k != "config" && k != "faults" && k != "scheduler") {
      errors.push_back(fmt::format("{}: unknown field (expected workload, config, faults, scheduler)", k));
    } else if (!v.is_object()) {
      errors.push_back(fmt::format("{}: must be an object", k));
    }
  }
  if (!errors.empty()) return fail(ErrorCode::InvalidArgument, false, fmt::format("scenario: {}", fmt::join(errors, "; ")));

  if (root.contains("workload")) {
    Fields f(root["workload"], "workload");
    f.unknown({"sessions", "rounds", "add_gap_mean_s", "max_messages", "max_message_bytes",
               "reads_per_add", "flushes_per_add", "liveness_budget_s"});
    Workload& w = s.workload;
    f.integer("sessions", w.sessions, 1, 64);
    f.integer("rounds", w.rounds, 0, 100'000);
    f.seconds("add_gap_mean_s", w.add_gap_mean, 0.000001, 3600);
    f.integer("max_messages", w.max_messages, 1, 20);
    f.integer("max_message_bytes", w.max_message_bytes, 1, 1 << 20);
    f.number("reads_per_add", w.reads_per_add, 0, 100);
    f.number("flushes_per_add", w.flushes_per_add, 0, 100);
    f.seconds("liveness_budget_s", w.liveness_budget, 1, 86400 * 7);
    errors.insert(errors.end(), f.errors_.begin(), f.errors_.end());
  }
  if (root.contains("scheduler")) {
    const json& j = root["scheduler"];
    Fields f(j, "scheduler");
    f.unknown({"strategy", "pct_depth"});
    if (j.contains("strategy")) {
      auto st = j["strategy"].is_string() ? parse_strategy(j["strategy"].get<std::string>())
                                          : Result<Strategy>(fail(ErrorCode::InvalidArgument, "not a string"));
      if (st) {
        s.scheduler.strategy = *st;
      } else {
        errors.push_back("scheduler.strategy: must be \"fifo\", \"random\" or \"pct\"");
      }
    }
    f.integer("pct_depth", s.scheduler.pct_depth, 1, 16);
    errors.insert(errors.end(), f.errors_.begin(), f.errors_.end());
  }
  if (root.contains("config")) {
    json merged = json::parse(s.config.to_json());
    merged.merge_patch(root["config"]);
    auto c = Config::from_json(merged.dump());
    if (c) {
      s.config = *c;
    } else {
      errors.push_back("config: " + c.error().message());
    }
  }
  if (root.contains("faults")) {
    json merged = json::parse(s.faults.to_json());
    merged.merge_patch(root["faults"]);
    auto f = fakes::FaultPlan::from_json(merged.dump());
    if (f) {
      s.faults = *f;
    } else {
      errors.push_back("faults: " + f.error().message());
    }
  }
  if (errors.empty()) {
    if (auto ok = s.config.validate(); !ok) errors.push_back("config: " + ok.error().message());
  }
  if (!errors.empty()) {
    return fail(ErrorCode::InvalidArgument, false, fmt::format("scenario: {}", fmt::join(errors, "; ")));
  }
  return s;
}

Result<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::NotFound, false, fmt::format("{}: cannot open the file", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace memfuse::sim
