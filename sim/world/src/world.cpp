#include "memfuse/sim/world.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "memfuse/chunker.h"
#include "memfuse/fakes/fake_qdrant.h"
#include "memfuse/fakes/fault_vfs.h"
#include "memfuse/fakes/sim_faults.h"
#include "memfuse/pipeline.h"
#include "memfuse/sim/sim_runtime.h"

namespace memfuse::sim {

using nlohmann::json;
using namespace std::chrono_literals;

std::string_view invariant_name(int invariant) noexcept {
  static constexpr std::string_view kNames[] = {
      "crash", "no loss", "no read gap", "exactly once at rest", "priority", "FIFO within a priority",
      "timeout cancellation", "bounded", "non-blocking add", "liveness", "orderly shutdown",
      "sessions never mix", "determinism"};
  return invariant >= 0 && invariant <= kInvariantCount ? kNames[invariant] : kNames[0];
}

std::string RunReport::to_json() const {
  json j = {{"seed", seed},
            {"passed", passed()},
            {"events", events},
            {"trace_hash", fmt::format("{:016x}", trace_hash)},
            {"virtual_s", duration_to_seconds(virtual_time)},
            {"wall_s", wall_seconds},
            {"faults", faults},
            {"rounds_acked", rounds_acked},
            {"rounds_rejected", rounds_rejected},
            {"reads", reads},
            {"read_errors", read_errors},
            {"manual_flushes", manual_flushes}};
  if (violation) {
    j["violation"] = {{"invariant", violation->invariant},
                      {"name", std::string(invariant_name(violation->invariant))},
                      {"at_s", duration_to_seconds(violation->at)},
                      {"event", violation->event},
                      {"ids", violation->ids}};
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<RunReport> RunReport::from_json(std::string_view line) {
  const json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("seed")) return std::nullopt;
  RunReport r;
  r.seed = j.value("seed", std::uint64_t{0});
  r.events = j.value("events", std::uint64_t{0});
  r.trace_hash = std::stoull(j.value("trace_hash", std::string("0")), nullptr, 16);
  r.virtual_time = seconds_to_duration(j.value("virtual_s", 0.0));
  r.wall_seconds = j.value("wall_s", 0.0);
  r.faults = j.value("faults", std::map<std::string, std::uint64_t>{});
  r.rounds_acked = j.value("rounds_acked", std::uint64_t{0});
  r.rounds_rejected = j.value("rounds_rejected", std::uint64_t{0});
  r.reads = j.value("reads", std::uint64_t{0});
  r.read_errors = j.value("read_errors", std::uint64_t{0});
  r.manual_flushes = j.value("manual_flushes", std::uint64_t{0});
  if (j.contains("violation")) {
    const json& v = j["violation"];
    r.violation = Violation{v.value("invariant", 0), seconds_to_duration(v.value("at_s", 0.0)),
                            v.value("event", std::string()),
                            v.value("ids", std::vector<std::string>{})};
  }
  return r;
}

namespace {

constexpr std::uint64_t kWorkloadStream = 0x3017c0adedULL;

int rank(Priority p) { return static_cast<int>(p); }  // 0 = most urgent

const std::vector<std::string>& words() {
  static const std::vector<std::string> w = {
      "lisbon", "may", "egg", "minutes", "flush", "buffer", "qdrant", "sqlite", "timeout", "round",
      "session", "vector", "memory", "lighthouse", "north", "quiet", "cafe", "tram", "boil", "soft",
      "o'brien", "drop;table", "\"quoted\"", "naïve", "日本", "--", "%", "_"};
  return w;
}

struct Acked {
  Round round;
  std::vector<ChunkId> chunks;
  bool handed_back = false;
};

class World {
 public:
  World(std::uint64_t seed, const Scenario& sc, const RunOptions& options)
      : seed_(seed),
        sc_(sc),
        options_(options),
        rt_(SimOptions{.seed = seed,
                       .strategy = sc.scheduler.strategy,
                       .pct_depth = sc.scheduler.pct_depth,
                       .trace_mode = options.trace_path.empty() ? Trace::Mode::HashOnly : Trace::Mode::Full}),
        vfs_(fmt::format("memfuse-world-{}", next_vfs_id()), rt_.fault_random(), &rt_.clock()),
        qdrant_(rt_, sc.faults.qdrant),
        wl_(seed ^ kWorkloadStream) {
    fakes::seed_sqlite_prng(static_cast<std::uint32_t>(seed));
    qdrant_.set_request_timeout(sc.config.vector_store.qdrant.request_timeout);
    rt_.on_fault = [this](std::string_view label) { ++report_.faults[std::string(label)]; };
    fakes::trace_faults(vfs_, rt_);
  }

  ~World() {
    if (checker_db_ != nullptr) sqlite3_close(checker_db_);
    if (leak_pipeline_) (void)pipeline_.release();  // a broken run: its destructors would assert
  }

  RunReport run() {
    const auto wall0 = std::chrono::steady_clock::now();
    report_.seed = seed_;
    report_.scenario_json = sc_.to_json(-1);
    setup();
    if (pipeline_) {
      safety();
      if (!violated()) heal_and_liveness();
      if (!violated()) shutdown();
      else teardown_after_violation();
    }
    report_.events = rt_.context().events_run();
    report_.trace_hash = rt_.trace().hash();
    report_.virtual_time = rt_.now() - rt_.options().start;
    report_.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    if (!options_.trace_path.empty()) (void)rt_.trace().write_chrome_json(options_.trace_path);
    return report_;
  }

  // The rest is public only to SimSystem::Impl (World is local to this file),
  // which drives the world one command at a time.
  static int next_vfs_id() {
    static std::atomic<int> n{0};
    return n++;
  }

  // ---- setup ----------------------------------------------------------------

  void setup() {
    vfs_.set_faults(sc_.faults.vfs_faults());
    rt_.set_blocking_model(fakes::sqlite_blocking_model(sc_.faults, rt_));
    PipelineOptions po;
    po.transport = &qdrant_;
    po.sqlite_vfs = vfs_.name();
    Logger log = options_.verbose ? rt_.make_logger("memfuse", LogLevel::Info) : Logger();
    // Opening runs before any fault may hit it: a store that cannot open is
    // an operator's problem, not the flush path's.
    const fakes::VfsFaults saved = vfs_.faults();
    vfs_.set_faults({});
    auto p = Pipeline::open(rt_, sc_.config, log, std::move(po));
    const int rc = sqlite3_open_v2(sc_.config.sqlite.path.c_str(), &checker_db_, SQLITE_OPEN_READWRITE,
                                   vfs_.name().c_str());
    vfs_.set_faults(saved);
    if (!p) {
      violate(1, fmt::format("the pipeline did not open: {}", p.error().to_string()), {});
      return;
    }
    pipeline_ = std::move(*p);
    pipeline_->manager().set_observer([this](const FlushEvent& e) { on_flush_event(e); });
    if (rc != SQLITE_OK) violate(1, "the checker could not open the database", {});
  }

  // ---- the workload ---------------------------------------------------------

  void safety() {
    const Workload& w = sc_.workload;
    Duration t{};
    const double gap_mean = static_cast<double>(w.add_gap_mean.count());
    for (int i = 0; i < w.rounds; ++i) {
      t += Duration(static_cast<std::int64_t>(-gap_mean * std::log(1.0 - wl_.uniform01())));
      at(t, "workload.add", [this] { op_add(); });
      double reads = w.reads_per_add;
      while (reads >= 1.0 || (reads > 0 && wl_.chance(reads))) {
        reads -= 1.0;
        const Duration r = t + Duration(static_cast<std::int64_t>(gap_mean * wl_.uniform01()));
        at(r, "workload.read", [this] { op_read(); });
      }
      if (wl_.chance(w.flushes_per_add)) {
        at(t + Duration(static_cast<std::int64_t>(gap_mean * wl_.uniform01())), "workload.flush",
           [this] { op_flush(); });
      }
    }
    safety_end_ = t + 1s;
    run_until(rt_.options().start + safety_end_);
  }

  void heal_and_liveness() {
    vfs_.heal();
    fakes::QdrantFaultPlan healed;
    qdrant_.set_plan(healed);
    rt_.set_blocking_model(fakes::sqlite_blocking_model(fakes::FaultPlan::none(), rt_));
    rt_.app_event("phase: heal");
    check_no_loss("at heal");
    const TimePoint deadline = rt_.now() + sc_.workload.liveness_budget;
    while (!violated()) {
      const auto p = pipeline_->buffer().pending();
      if (p.buffered.empty() && p.in_flight.empty()) break;
      if (rt_.now() >= deadline) {
        std::vector<std::string> ids;
        for (const auto& id : p.buffered) ids.push_back(id.to_string());
        for (const auto& id : p.in_flight) ids.push_back(id.to_string());
        if (ids.size() > 8) ids.resize(8);
        violate(9, fmt::format("{} rounds still buffered and {} in flight {} s after the faults stopped",
                               p.buffered.size(), p.in_flight.size(),
                               duration_to_seconds(sc_.workload.liveness_budget)),
                ids);
        return;
      }
      // The client asks for a flush whenever rounds wait with nothing in flight.
      if (!p.buffered.empty() && p.in_flight.empty()) op_flush();
      run_until(std::min(deadline, rt_.now() + 5s));
    }
    if (violated()) return;
    rt_.app_event("phase: at rest");
    check_at_rest();
  }

  void shutdown() {
    std::optional<HybridDrainReport> report;
    pipeline_->buffer().drain(rt_.now() + 60s, [&](HybridDrainReport r) { report = std::move(r); });
    const RunResult r = rt_.run_until_quiescent(5'000'000);
    if (!report) {
      violate(10, fmt::format("drain never reported ({})", r.to_string()), {});
      leak_pipeline_ = true;
      return;
    }
    if (!report->completed_in_time || !report->unpersisted.empty()) {
      std::vector<std::string> ids;
      for (const auto& u : report->unpersisted) ids.push_back(u.id.to_string());
      violate(10, fmt::format("drain after healing left {} rounds unpersisted (completed_in_time={})",
                              report->unpersisted.size(), report->completed_in_time),
              ids);
      return;
    }
    check_at_rest();
  }

  void teardown_after_violation() {
    bool drained = false;
    pipeline_->buffer().drain(rt_.now(), [&](HybridDrainReport) { drained = true; });
    vfs_.heal();
    qdrant_.set_plan(fakes::QdrantFaultPlan{});
    const RunResult r = rt_.run_until_quiescent(5'000'000);
    if (!drained || !r.quiescent) leak_pipeline_ = true;
  }

  template <typename F>
  void at(Duration offset, std::string_view label, F f) {
    rt_.context().schedule_at(rt_.options().start + offset,
                              [this, f = std::move(f)]() mutable {
                                if (violated()) return;
                                check_no_loss("before a workload operation");
                                if (!violated()) f();
                              },
                              label);
  }

  void run_until(TimePoint t) {
    while (!violated() && rt_.now() < t) {
      const RunResult r = rt_.run_for(std::min<Duration>(t - rt_.now(), 1s), 2'000'000);
      if (r.budget_exhausted) {
        violate(9, "the event budget ran out (a livelock?)", {});
        return;
      }
    }
  }

  std::string session_name() {
    static const char* kNames[] = {"alice", "bob", "o'brien; DROP TABLE rounds;--", "日本語", "s%_\"5\""};
    const auto i = wl_.uniform(static_cast<std::uint64_t>(sc_.workload.sessions));
    return i < 5 ? kNames[i] : fmt::format("session-{}", i);
  }

  std::string content() {
    const auto len = 1 + wl_.uniform(static_cast<std::uint64_t>(sc_.workload.max_message_bytes));
    std::string s;
    while (s.size() < len) {
      if (!s.empty()) s += ' ';
      s += words()[wl_.uniform(words().size())];
    }
    // Never cut inside a UTF-8 sequence.
    while (s.size() > len && s.size() > 1) {
      s.pop_back();
      while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();
      if (!s.empty() && static_cast<unsigned char>(s.back()) >= 0xC0) s.pop_back();
    }
    return s.empty() ? std::string("x") : s;
  }

  void op_add() {
    NewRound nr;
    nr.session_id = session_name();
    const auto n = 1 + wl_.uniform(static_cast<std::uint64_t>(sc_.workload.max_messages));
    for (std::uint64_t i = 0; i < n; ++i) nr.messages.push_back({i % 2 ? "assistant" : "user", content()});
    const TimePoint before = rt_.now();
    const std::string session = nr.session_id;
    std::vector<Message> messages = nr.messages;
    auto r = pipeline_->buffer().add(std::move(nr));
    if (rt_.now() != before) {
      violate(8, "add() let virtual time pass", {});
      return;
    }
    if (!r) {
      ++report_.rounds_rejected;
      if (r.error().code() != ErrorCode::Overloaded) {
        violate(7, "add() refused a valid round with " + r.error().to_string(), {});
      }
      return;
    }
    ++report_.rounds_acked;
    rt_.app_event("add", static_cast<std::int64_t>(r->seq));
    Acked a;
    a.round.id = r->id;
    a.round.session_id = session;
    a.round.seq = r->seq;
    a.round.messages = std::move(messages);
    for (const auto& c : chunk_round(a.round, sc_.config.chunking.chunk_size_bytes)) a.chunks.push_back(c.id);
    if (a.chunks.size() != r->chunks) {
      violate(1, fmt::format("add() reported {} chunks; the round has {}", r->chunks, a.chunks.size()),
              {r->id.to_string()});
      return;
    }
    order_.push_back(r->id);
    acked_.emplace(r->id, std::move(a));
    check_bounds();
  }

  std::vector<RoundId> live_ids(const std::string* session = nullptr) const {
    std::vector<RoundId> out;
    for (const auto& id : order_) {
      const Acked& a = acked_.at(id);
      if (a.handed_back) continue;
      if (session != nullptr && a.round.session_id != *session) continue;
      out.push_back(id);
    }
    return out;
  }

  void op_read(int forced_kind = -1) {
    ++report_.reads;
    const auto kind = forced_kind >= 0 ? static_cast<std::uint64_t>(forced_kind) : wl_.uniform(3);
    auto& b = pipeline_->buffer();
    if (kind == 0) {
      const auto live = live_ids();
      if (live.empty() || wl_.chance(0.1)) {
        const RoundId unknown = make_round_id(1, wl_.next_u64(), wl_.next_u64());
        b.get(unknown, [this, unknown](Result<std::optional<Round>> r) {
          if (r && r->has_value()) violate(2, "get() of an id never added found a round", {unknown.to_string()});
          if (!r) ++report_.read_errors;
        });
        return;
      }
      const RoundId id = live[wl_.uniform(live.size())];
      b.get(id, [this, id](Result<std::optional<Round>> r) {
        if (!r) {
          ++report_.read_errors;
          return;
        }
        if (!r->has_value()) {
          violate(2, "get() did not find an acknowledged round", {id.to_string()});
          return;
        }
        const Acked& a = acked_.at(id);
        if ((*r)->session_id != a.round.session_id) {
          violate(11, fmt::format("get() returned the round under session \"{}\", added under \"{}\"",
                                  (*r)->session_id, a.round.session_id),
                  {id.to_string()});
        } else if ((*r)->messages != a.round.messages || (*r)->seq != a.round.seq) {
          violate(1, "get() returned a round whose contents differ from what was added", {id.to_string()});
        }
      });
      return;
    }
    const std::string session = session_name();
    const auto expected = live_ids(&session);
    if (kind == 1) {
      b.list(session, 1'000'000, [this, session, expected](Result<std::vector<Round>> r) {
        if (!r) {
          ++report_.read_errors;
          return;
        }
        std::unordered_set<RoundId> seen;
        std::uint64_t last = 0;
        for (const auto& round : *r) {
          if (round.session_id != session) {
            violate(11, fmt::format("list(\"{}\") returned a round of session \"{}\"", session, round.session_id),
                    {round.id.to_string()});
            return;
          }
          if (!seen.insert(round.id).second || round.seq <= last) {
            violate(2, "list() returned a duplicate or out-of-order round", {round.id.to_string()});
            return;
          }
          last = round.seq;
        }
        for (const auto& id : expected) {
          if (!seen.contains(id)) {
            violate(2, fmt::format("list(\"{}\") missed an acknowledged round", session), {id.to_string()});
            return;
          }
        }
      });
      return;
    }
    std::unordered_set<ChunkId> want;
    for (const auto& id : expected) {
      for (const auto& c : acked_.at(id).chunks) want.insert(c);
    }
    b.search(session, content(), 1'000'000, [this, session, want](Result<std::vector<ScoredChunk>> r) {
      if (!r) {
        ++report_.read_errors;
        return;
      }
      std::unordered_set<ChunkId> seen;
      for (const auto& c : *r) {
        if (c.chunk.session_id != session) {
          violate(11, fmt::format("search(\"{}\") returned a chunk of session \"{}\"", session, c.chunk.session_id),
                  {c.chunk.id.to_string()});
          return;
        }
        if (!seen.insert(c.chunk.id).second) {
          violate(2, "search() returned a chunk twice", {c.chunk.id.to_string()});
          return;
        }
      }
      for (const auto& id : want) {
        if (!seen.contains(id)) {
          violate(2, fmt::format("search(\"{}\") missed a chunk of an acknowledged round", session),
                  {id.to_string()});
          return;
        }
      }
    });
  }

  void op_flush() {
    ++report_.manual_flushes;
    const auto expected = live_ids();
    pipeline_->buffer().flush([this, expected](Result<void> r) {
      if (!r || violated()) return;
      // Reported durable: every round acknowledged before the call is stored.
      const auto stored = stored_round_ids();
      for (const auto& id : expected) {
        if (!acked_.at(id).handed_back && !stored.contains(id)) {
          violate(1, "flush() reported the data durable, but a round it covered is not in SQLite",
                  {id.to_string()});
          return;
        }
      }
    });
  }

  // ---- checkers -------------------------------------------------------------

  bool violated() const { return report_.violation.has_value(); }

  void violate(int invariant, std::string event, std::vector<std::string> ids) {
    if (violated()) return;
    report_.violation = Violation{invariant, rt_.now() - rt_.options().start, std::move(event), std::move(ids)};
    rt_.app_event("violation", invariant);
  }

  // Reads the database through the checker's own connection, faults off.
  template <typename F>
  void with_checker_db(F f) {
    const fakes::VfsFaults saved = vfs_.faults();
    vfs_.set_faults({});
    f(checker_db_);
    vfs_.set_faults(saved);
  }

  std::unordered_map<RoundId, Round> stored_rounds() {
    std::unordered_map<RoundId, Round> out;
    with_checker_db([&](sqlite3* db) {
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v2(db, "SELECT id, session_id, seq, count(*) OVER (PARTITION BY id) FROM rounds",
                             -1, &s, nullptr) != SQLITE_OK) {
        violate(3, fmt::format("the checker could not read rounds: {}", sqlite3_errmsg(db)), {});
        return;
      }
      while (sqlite3_step(s) == SQLITE_ROW) {
        Round r;
        const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(s, 0));
        if (sqlite3_column_bytes(s, 0) == 16) std::copy(p, p + 16, r.id.uuid.bytes.begin());
        const auto* sp = static_cast<const char*>(sqlite3_column_blob(s, 1));
        r.session_id.assign(sp != nullptr ? sp : "", static_cast<std::size_t>(sqlite3_column_bytes(s, 1)));
        r.seq = static_cast<std::uint64_t>(sqlite3_column_int64(s, 2));
        if (sqlite3_column_int64(s, 3) != 1) violate(3, "a round is stored more than once", {r.id.to_string()});
        out.emplace(r.id, std::move(r));
      }
      sqlite3_finalize(s);
    });
    return out;
  }

  std::unordered_set<RoundId> stored_round_ids() {
    std::unordered_set<RoundId> ids;
    for (auto& [id, r] : stored_rounds()) ids.insert(id);
    return ids;
  }

  // Chunk id -> (session, copies stored).
  std::unordered_map<ChunkId, std::pair<std::string, int>> stored_chunks() {
    std::unordered_map<ChunkId, std::pair<std::string, int>> out;
    if (sc_.config.vector_store.kind == VectorStoreKind::Sqlite) {
      with_checker_db([&](sqlite3* db) {
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(db, "SELECT round_id, idx, session_id FROM chunks", -1, &s, nullptr) != SQLITE_OK) {
          violate(3, fmt::format("the checker could not read chunks: {}", sqlite3_errmsg(db)), {});
          return;
        }
        while (sqlite3_step(s) == SQLITE_ROW) {
          RoundId rid;
          const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(s, 0));
          if (sqlite3_column_bytes(s, 0) == 16) std::copy(p, p + 16, rid.uuid.bytes.begin());
          const auto* sp = static_cast<const char*>(sqlite3_column_blob(s, 2));
          auto& e = out[make_chunk_id(rid, static_cast<std::uint32_t>(sqlite3_column_int64(s, 1)))];
          e.first.assign(sp != nullptr ? sp : "", static_cast<std::size_t>(sqlite3_column_bytes(s, 2)));
          ++e.second;
        }
        sqlite3_finalize(s);
      });
      return out;
    }
    const auto* c = qdrant_.model().collection(sc_.config.vector_store.qdrant.collection);
    if (c == nullptr) return out;
    for (const auto& [pid, point] : c->points) {
      const json pl = json::parse(point.payload_json, nullptr, false);
      auto rid = RoundId::parse(pl.value("round_id", std::string()));
      if (!rid) {
        violate(3, "a Qdrant point has no valid round_id", {pid});
        continue;
      }
      const ChunkId cid = make_chunk_id(*rid, pl.value("chunk_index", 0u));
      if (point_id_for(cid).to_string() != pid) {
        violate(3, "a Qdrant point's id is not the one derived from its chunk id", {pid});
      }
      auto& e = out[cid];
      e.first = pl.value("session_id", std::string());
      ++e.second;
    }
    return out;
  }

  // Invariant 1: every acknowledged round is buffered, in flight, or stored.
  void check_no_loss(std::string_view when) {
    if (violated() || acked_.empty()) return;
    const auto p = pipeline_->buffer().pending();
    std::unordered_set<RoundId> buffered(p.buffered.begin(), p.buffered.end());
    std::unordered_set<RoundId> flying(p.in_flight.begin(), p.in_flight.end());
    std::unordered_set<RoundId> stored;  // read lazily: most rounds are in memory
    bool stored_read = false;
    for (const auto& id : order_) {
      const Acked& a = acked_.at(id);
      if (a.handed_back) continue;
      const bool b = buffered.contains(id), f = flying.contains(id);
      if (b && f) {
        violate(1, fmt::format("{}: a round is both buffered and in flight", when), {id.to_string()});
        return;
      }
      if (b || f) continue;
      if (!stored_read) {
        stored = stored_round_ids();
        stored_read = true;
      }
      if (!stored.contains(id)) {
        violate(1, fmt::format("{}: an acknowledged round is in neither the buffer, a flight nor SQLite", when),
                {id.to_string()});
        return;
      }
    }
  }

  // Invariant 7, for the buffer's bounds.
  void check_bounds() {
    const auto s = pipeline_->buffer().stats();
    const auto& hb = sc_.config.buffer.hybrid_buffer;
    if (s.pending_rounds > hb.max_pending_rounds || s.pending_bytes > hb.max_pending_bytes) {
      violate(7, fmt::format("{} rounds / {} bytes pending, over the bounds {} / {}", s.pending_rounds,
                             s.pending_bytes, hb.max_pending_rounds, hb.max_pending_bytes),
              {});
    }
  }

  // Invariants 3 and 11 at rest: each acknowledged round once in SQLite with
  // its own session; each of its chunks once in the vector store, same session;
  // nothing else stored.
  void check_at_rest() {
    const auto rounds = stored_rounds();
    const auto chunks = stored_chunks();
    if (violated()) return;
    std::size_t expected_chunks = 0;
    for (const auto& id : order_) {
      const Acked& a = acked_.at(id);
      if (a.handed_back) continue;
      auto it = rounds.find(id);
      if (it == rounds.end()) {
        violate(3, "at rest, an acknowledged round is not in SQLite", {id.to_string()});
        return;
      }
      if (it->second.session_id != a.round.session_id) {
        violate(11, fmt::format("round stored under session \"{}\", added under \"{}\"", it->second.session_id,
                                a.round.session_id),
                {id.to_string()});
        return;
      }
      for (const auto& c : a.chunks) {
        ++expected_chunks;
        auto ct = chunks.find(c);
        if (ct == chunks.end()) {
          violate(3, "at rest, a chunk of an acknowledged round is not in the vector store", {c.to_string()});
          return;
        }
        if (ct->second.second != 1) {
          violate(3, fmt::format("a chunk is stored {} times", ct->second.second), {c.to_string()});
          return;
        }
        if (ct->second.first != a.round.session_id) {
          violate(11, fmt::format("chunk stored under session \"{}\", its round's is \"{}\"", ct->second.first,
                                  a.round.session_id),
                  {c.to_string()});
          return;
        }
      }
    }
    if (rounds.size() != live_ids().size()) {
      violate(3, fmt::format("SQLite holds {} rounds; {} were acknowledged", rounds.size(), live_ids().size()), {});
    } else if (chunks.size() != expected_chunks) {
      violate(3, fmt::format("the vector store holds {} chunks; {} were expected", chunks.size(), expected_chunks), {});
    }
  }

  // Invariants 4, 5, 6 and the worker bound of 7, from the manager's events.
  void on_flush_event(const FlushEvent& e) {
    if (violated()) return;
    const auto& fm = sc_.config.buffer.flush_manager;
    switch (e.kind) {
      case FlushEvent::Kind::Queued:
        queued_.insert({rank(e.priority), e.seq});
        if (queued_.size() > static_cast<std::size_t>(fm.max_queue_size)) {
          violate(7, fmt::format("{} tasks queued, over max_queue_size {}", queued_.size(), fm.max_queue_size), {});
        }
        break;
      case FlushEvent::Kind::Started: {
        const std::pair<int, std::uint64_t> key{rank(e.priority), e.seq};
        if (!queued_.empty() && *queued_.begin() != key) {
          const auto& head = *queued_.begin();
          if (head.first < key.first) {
            violate(4, fmt::format("task {} (priority {}) started while task {} (priority {}) was queued",
                                   e.seq, key.first, head.second, head.first), {});
          } else {
            violate(5, fmt::format("task {} started before task {} of the same priority, submitted earlier",
                                   e.seq, head.second), {});
          }
          return;
        }
        queued_.erase(key);
        running_[e.slot] = e.seq;
        if (running_.size() > static_cast<std::size_t>(fm.max_workers)) {
          violate(7, fmt::format("{} attempts running, over max_workers {}", running_.size(), fm.max_workers), {});
        }
        break;
      }
      case FlushEvent::Kind::Completed:
        if (e.at > e.deadline) {
          violate(6, fmt::format("an attempt of task {} ran {} s past its deadline", e.seq,
                                 duration_to_seconds(e.at - e.deadline)), {});
        }
        running_.erase(e.slot);
        break;
      case FlushEvent::Kind::TimedOut:
        if (e.at != e.deadline) {
          violate(6, fmt::format("a timed-out attempt of task {} freed its worker {} s after its deadline",
                                 e.seq, duration_to_seconds(e.at - e.deadline)), {});
        }
        running_.erase(e.slot);
        break;
      case FlushEvent::Kind::Finished:
        break;
    }
  }

  std::uint64_t seed_;
  const Scenario& sc_;
  RunOptions options_;
  SimRuntime rt_;
  fakes::FaultVfs vfs_;
  fakes::FakeQdrant qdrant_;
  SeededRandom wl_;
  sqlite3* checker_db_ = nullptr;
  std::unique_ptr<Pipeline> pipeline_;  // after the fakes: destroyed first
  bool leak_pipeline_ = false;
  Duration safety_end_{};
  std::unordered_map<RoundId, Acked> acked_;
  std::vector<RoundId> order_;  // acknowledged ids in add order
  std::set<std::pair<int, std::uint64_t>> queued_;
  std::map<std::size_t, std::uint64_t> running_;  // slot -> task
  RunReport report_;
};

}  // namespace

std::string_view to_string(InjectedFault f) noexcept {
  switch (f) {
    case InjectedFault::SqliteIoError: return "sqlite-io-error";
    case InjectedFault::SqliteFsyncError: return "sqlite-fsync-error";
    case InjectedFault::SqliteBusy: return "sqlite-busy";
    case InjectedFault::Qdrant429: return "qdrant-429";
    case InjectedFault::Qdrant503: return "qdrant-503";
    case InjectedFault::Hang: return "hang";
    case InjectedFault::ResponseLost: return "response-lost";
  }
  return "?";
}

struct SimSystem::Impl {
  Impl(std::uint64_t seed, const Scenario& sc) : world(seed, sc, RunOptions{}) {
    world.report_.seed = seed;
    world.setup();
  }
  void apply() {
    world.vfs_.set_faults(active.vfs_faults());
    world.qdrant_.set_plan(active.qdrant);
    world.rt_.set_blocking_model(fakes::sqlite_blocking_model(active, world.rt_));
  }
  bool ready() { return world.pipeline_ && !world.violated() && !finished; }
  template <typename F>
  void command(F f) {
    if (!ready()) return;
    world.check_no_loss("before a command");
    if (!world.violated()) f();
    // Let what the command started run, without advancing time.
    if (!world.violated()) world.run_until(world.rt_.now());
    if (!world.violated()) (void)world.rt_.run_for(Duration::zero(), 2'000'000);
  }
  World world;
  fakes::FaultPlan active = fakes::FaultPlan::none();
  bool finished = false;
};

SimSystem::SimSystem(std::uint64_t seed, Scenario scenario)
    : scenario_(std::make_unique<Scenario>(std::move(scenario))) {
  scenario_->faults = fakes::FaultPlan::none();
  impl_ = std::make_unique<Impl>(seed, *scenario_);
}

SimSystem::~SimSystem() {
  if (impl_->world.pipeline_ && !impl_->finished) impl_->world.teardown_after_violation();
}

void SimSystem::add() { impl_->command([&] { impl_->world.op_add(); }); }
void SimSystem::get() { impl_->command([&] { impl_->world.op_read(0); }); }
void SimSystem::list() { impl_->command([&] { impl_->world.op_read(1); }); }
void SimSystem::search() { impl_->command([&] { impl_->world.op_read(2); }); }
void SimSystem::flush() { impl_->command([&] { impl_->world.op_flush(); }); }

void SimSystem::advance(Duration d) {
  if (!impl_->ready()) return;
  impl_->world.check_no_loss("before advancing time");
  impl_->world.run_until(impl_->world.rt_.now() + d);
}

void SimSystem::inject(InjectedFault f) {
  if (!impl_->ready()) return;
  auto& a = impl_->active;
  switch (f) {
    case InjectedFault::SqliteIoError: a.sqlite.write_error = 0.5; break;
    case InjectedFault::SqliteFsyncError: a.sqlite.sync_error = 0.5; break;
    case InjectedFault::SqliteBusy: a.sqlite.busy = 0.5; break;
    case InjectedFault::Qdrant429: a.qdrant.status_429 = 0.5; break;
    case InjectedFault::Qdrant503: a.qdrant.status_503 = 0.5; break;
    case InjectedFault::Hang: a.sqlite.hang = 0.33; break;
    case InjectedFault::ResponseLost: a.qdrant.response_lost = 0.5; break;
  }
  impl_->apply();
}

void SimSystem::heal() {
  if (!impl_->ready()) return;
  impl_->active = fakes::FaultPlan::none();
  impl_->apply();
  impl_->world.vfs_.heal();
}

void SimSystem::finish() {
  if (!impl_->ready()) return;
  impl_->finished = true;
  impl_->world.heal_and_liveness();
  if (!impl_->world.violated()) {
    impl_->world.shutdown();
  } else {
    impl_->world.teardown_after_violation();
  }
}

const std::optional<Violation>& SimSystem::violation() const noexcept { return impl_->world.report_.violation; }
std::uint64_t SimSystem::rounds_acked() const noexcept { return impl_->world.report_.rounds_acked; }

RunReport run_world(std::uint64_t seed, const Scenario& scenario, const RunOptions& options) {
  World w(seed, scenario, options);
  return w.run();
}

RunReport run_world_twice(std::uint64_t seed, const Scenario& scenario) {
  RunReport a = run_world(seed, scenario);
  const RunReport b = run_world(seed, scenario);
  if (a.trace_hash != b.trace_hash && !a.violation) {
    a.violation = Violation{12, {},
                            fmt::format("two runs of seed {} gave trace hashes {:016x} and {:016x}", seed,
                                        a.trace_hash, b.trace_hash),
                            {}};
  }
  return a;
}

}  // namespace memfuse::sim
