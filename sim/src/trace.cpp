#include "memfuse/sim/trace.h"

#include <fstream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "memfuse/assert.h"

namespace memfuse::sim {

std::string_view to_string(EventKind kind) noexcept {
  switch (kind) {
    case EventKind::Run: return "run";
    case EventKind::TimerFire: return "timer_fire";
    case EventKind::TimerCancel: return "timer_cancel";
    case EventKind::ClockAdvance: return "clock_advance";
    case EventKind::BlockingStart: return "blocking_start";
    case EventKind::BlockingDone: return "blocking_done";
    case EventKind::App: return "app";
    case EventKind::Fault: return "fault";
  }
  return "?";
}

Trace::Trace(Mode mode, std::size_t bound) : mode_(mode), bound_(bound) {
  MEMFUSE_ASSERT(mode != Mode::Bounded || bound > 0);
  if (mode_ == Mode::Bounded) ring_.reserve(bound_);
}

void Trace::record(EventKind kind, TimePoint t, std::uint64_t seq, std::uint32_t track,
                   std::int64_t value, std::string_view label) {
  account(kind, t, seq, track, value);
  std::uint64_t word = 0;
  std::size_t n = 0;
  for (char c : label) {
    word = word << 8 | static_cast<unsigned char>(c);
    if (++n % 8 == 0) mix(word);
  }
  mix(word ^ label.size());
  if (mode_ != Mode::HashOnly) {
    store(TraceEvent{t.time_since_epoch().count(), seq, track, kind, value, std::string(label)});
  }
}

std::vector<TraceEvent> Trace::events() const {
  if (mode_ != Mode::Bounded || ring_.size() < bound_) return ring_;
  std::vector<TraceEvent> out;
  out.reserve(bound_);
  const std::size_t oldest = count_ % bound_;
  for (std::size_t i = 0; i < bound_; ++i) out.push_back(ring_[(oldest + i) % bound_]);
  return out;
}

void Trace::name_track(std::uint32_t track, std::string name) {
  track_names_[track] = std::move(name);
}

std::string Trace::to_chrome_json() const {
  using nlohmann::json;
  json events = json::array();
  std::set<std::uint32_t> tracks;
  for (const TraceEvent& e : this->events()) {
    const double ts_us = static_cast<double>(e.time_ns) / 1000.0;
    json j = {{"pid", 1}, {"tid", e.track}, {"ts", ts_us}, {"cat", std::string(to_string(e.kind))}};
    switch (e.kind) {
      case EventKind::Run:
        j["name"] = fmt::format("handler #{}", e.seq);
        j["ph"] = "X";
        j["dur"] = 0;
        j["args"] = {{"ready", e.value}};
        break;
      case EventKind::BlockingStart:
        j["name"] = e.label.empty() ? std::string("blocking") : e.label;
        j["ph"] = "X";
        j["dur"] = e.value < 0 ? 0.0 : static_cast<double>(e.value) / 1000.0;
        j["args"] = {{"op", e.seq}, {"hang", e.value < 0}};
        break;
      case EventKind::Fault:
        j["name"] = e.label;
        j["ph"] = "i";
        j["s"] = "g";  // global instant: a vertical line across every track
        break;
      default:
        j["name"] = e.label.empty() ? std::string(to_string(e.kind)) : e.label;
        j["ph"] = "i";
        j["s"] = "t";
        j["args"] = {{"seq", e.seq}, {"value", e.value}};
        break;
    }
    tracks.insert(e.track);
    events.push_back(std::move(j));
  }
  for (std::uint32_t t : tracks) {
    auto it = track_names_.find(t);
    const std::string name = it != track_names_.end() ? it->second
                             : t == 0                 ? std::string("simulator")
                                                      : fmt::format("chain {}", t);
    events.push_back({{"pid", 1}, {"tid", t}, {"ph", "M"}, {"name", "thread_name"},
                      {"args", {{"name", name}}}});
  }
  json doc = {{"traceEvents", std::move(events)},
              {"displayTimeUnit", "ms"},
              {"otherData", {{"trace_hash", fmt::format("{:#018x}", hash_)},
                             {"events_recorded", count_}}}};
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<void> Trace::write_chrome_json(const std::filesystem::path& path) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    return fail(ErrorCode::Io, false, fmt::format("cannot open {} for writing", path.string()));
  }
  out << to_chrome_json();
  out.close();
  if (!out) return fail(ErrorCode::Io, false, fmt::format("writing {} failed", path.string()));
  return {};
}

}  // namespace memfuse::sim
