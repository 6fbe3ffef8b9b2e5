#include "memfuse/fakes/fault_plan.h"

#include <functional>
#include <set>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace memfuse::fakes {
namespace {

using nlohmann::json;

// One schema for both directions: visit every field with its JSON name.
template <typename P, typename V>
void visit(P& p, V& v) {
  v.rate("sqlite.read_error", p.sqlite.read_error, 0.05);
  v.rate("sqlite.write_error", p.sqlite.write_error, 0.05);
  v.rate("sqlite.sync_error", p.sqlite.sync_error, 0.05);
  v.rate("sqlite.disk_full", p.sqlite.disk_full, 0.02);
  v.rate("sqlite.busy", p.sqlite.busy, 0.10);
  v.rate("sqlite.hang", p.sqlite.hang, 0.02);
  v.fraction("sqlite.hang_after_effect", p.sqlite.hang_after_effect);
  v.latency("sqlite.read_latency", p.sqlite.read_latency);
  v.latency("sqlite.write_latency", p.sqlite.write_latency);
  v.rate("sqlite.stall", p.sqlite.stall, 0.02);
  v.latency("sqlite.stall_latency", p.sqlite.stall_latency);
  v.rate("qdrant.status_400", p.qdrant.status_400, 0.02);
  v.rate("qdrant.status_408", p.qdrant.status_408, 0.05);
  v.rate("qdrant.status_429", p.qdrant.status_429, 0.10);
  v.rate("qdrant.status_500", p.qdrant.status_500, 0.05);
  v.rate("qdrant.status_503", p.qdrant.status_503, 0.10);
  v.rate("qdrant.timeout", p.qdrant.timeout, 0.02);
  v.rate("qdrant.response_lost", p.qdrant.response_lost, 0.05);
  v.rate("qdrant.lose_acknowledged_on_crash", p.qdrant.lose_acknowledged_on_crash, 1.0);
  v.latency("qdrant.latency", p.qdrant.latency);
}

std::pair<std::string, std::string> split(std::string_view path) {
  const auto dot = path.find('.');
  return {std::string(path.substr(0, dot)), std::string(path.substr(dot + 1))};
}

double ms(Duration d) { return static_cast<double>(d.count()) / 1e6; }

struct Writer {
  json root = json::object();
  void rate(std::string_view path, double v, double) { put(path, v); }
  void fraction(std::string_view path, double v) { put(path, v); }
  void latency(std::string_view path, const LatencyRange& r) {
    put(path, json{{"min_ms", ms(r.min)}, {"max_ms", ms(r.max)}});
  }
  void put(std::string_view path, json value) {
    auto [section, key] = split(path);
    root[section][key] = std::move(value);
  }
};

struct Maximum {
  void rate(std::string_view, double& v, double max) { v = max; }
  void fraction(std::string_view, double&) {}
  void latency(std::string_view, LatencyRange&) {}
};

struct Swarm {
  Random& random;
  void rate(std::string_view, double& v, double max) {
    v = random.chance(0.5) ? random.uniform01() * max : 0.0;
  }
  void fraction(std::string_view, double& v) { v = random.uniform01(); }
  void latency(std::string_view, LatencyRange&) {}
};

struct Reader {
  const json& root;
  std::vector<std::string>& problems;
  std::set<std::string> known;

  const json* find(std::string_view path) {
    known.insert(std::string(path));
    auto [section, key] = split(path);
    if (!root.contains(section) || !root[section].is_object() || !root[section].contains(key)) {
      return nullptr;
    }
    return &root[section][key];
  }
  void number(std::string_view path, double& v, double lo, double hi) {
    const json* j = find(path);
    if (j == nullptr) return;
    if (!j->is_number() || j->get<double>() < lo || j->get<double>() > hi) {
      problems.push_back(fmt::format("fault plan: {}: expected a number in [{}, {}]", path, lo, hi));
      return;
    }
    v = j->get<double>();
  }
  void rate(std::string_view path, double& v, double) { number(path, v, 0.0, 1.0); }
  void fraction(std::string_view path, double& v) { number(path, v, 0.0, 1.0); }
  void latency(std::string_view path, LatencyRange& r) {
    const json* j = find(path);
    if (j == nullptr) return;
    if (!j->is_object() || !j->contains("min_ms") || !j->contains("max_ms") ||
        !(*j)["min_ms"].is_number() || !(*j)["max_ms"].is_number() ||
        (*j)["min_ms"].get<double>() < 0 ||
        (*j)["min_ms"].get<double>() > (*j)["max_ms"].get<double>()) {
      problems.push_back(fmt::format(
          "fault plan: {}: expected {{\"min_ms\": a, \"max_ms\": b}} with 0 <= a <= b", path));
      return;
    }
    r.min = seconds_to_duration((*j)["min_ms"].get<double>() / 1000.0);
    r.max = seconds_to_duration((*j)["max_ms"].get<double>() / 1000.0);
  }
};

}  // namespace

Duration LatencyRange::draw(Random& random) const {
  if (max <= min) return min;
  return min + Duration(static_cast<std::int64_t>(
                   random.uniform(static_cast<std::uint64_t>((max - min).count()) + 1)));
}

FaultPlan FaultPlan::maximum() {
  FaultPlan p;
  Maximum m;
  visit(p, m);
  return p;
}

FaultPlan FaultPlan::swarm(std::uint64_t seed) {
  SeededRandom random(seed ^ 0x535741524d504c4eull);  // "SWARMPLN": a stream of its own
  FaultPlan p;
  Swarm s{random};
  visit(p, s);
  return p;
}

std::string FaultPlan::to_json(int indent) const {
  Writer w;
  visit(*this, w);
  return w.root.dump(indent);
}

Result<FaultPlan> FaultPlan::from_json(std::string_view text) {
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("fault plan: not valid JSON (byte {})", e.byte));
  }
  if (!root.is_object()) {
    return fail(ErrorCode::InvalidArgument, false, "fault plan: the top level must be an object");
  }
  FaultPlan p;
  std::vector<std::string> problems;
  Reader r{root, problems, {}};
  visit(p, r);
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (!it->is_object()) {
      problems.push_back(fmt::format("fault plan: {}: expected an object", it.key()));
      continue;
    }
    for (auto f = it->begin(); f != it->end(); ++f) {
      const std::string path = it.key() + "." + f.key();
      if (!r.known.contains(path)) problems.push_back(fmt::format("fault plan: {}: unknown field", path));
    }
  }
  if (!problems.empty()) {
    std::string message;
    for (const auto& pr : problems) message += (message.empty() ? "" : "\n") + pr;
    return fail(ErrorCode::InvalidArgument, false, std::move(message));
  }
  return p;
}

VfsFaults FaultPlan::vfs_faults() const {
  VfsFaults f;
  f.read.probability = sqlite.read_error;
  f.write.probability = sqlite.write_error;
  f.sync.probability = sqlite.sync_error;
  f.full.probability = sqlite.disk_full;
  f.busy.probability = sqlite.busy;
  return f;
}

}  // namespace memfuse::fakes
