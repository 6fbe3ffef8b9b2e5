// Stateful properties of the whole pipeline (HybridBuffer, FlushManager,
// SQLite over the fault-injecting VFS, Qdrant through FakeQdrant) on the
// simulator.
//
// Method: RapidCheck generates a configuration, a seed and a sequence of
// commands - Add, Get, List, Search, ManualFlush, AdvanceTime, InjectFault
// (SQLite I/O error, fsync error, SQLITE_BUSY, Qdrant 429/503, hang, response
// lost), Heal - and every run ends with Drain (heal, liveness, at-rest check,
// drain). SimSystem runs them against its model of what must be visible (every
// acknowledged round, to every read) and durable (every round a flush
// reported, and at rest every round and chunk exactly once), and checks the
// manager's events as they happen. Each property biases the generation
// towards the invariant it is named after and asserts that no invariant is
// violated. Shrinking removes commands: a failure prints a minimal command
// sequence, the violation, and RC_PARAMS to replay it.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "memfuse/sim/world.h"

namespace memfuse::sim {
namespace {

using namespace std::chrono_literals;

enum class Cmd : std::uint8_t { Add, Get, List, Search, ManualFlush, AdvanceTime, InjectFault, Heal };

struct Command {
  Cmd cmd = Cmd::Add;
  int millis = 0;  // AdvanceTime
  InjectedFault fault = InjectedFault::SqliteIoError;
};

void showValue(const Command& c, std::ostream& os) {
  static constexpr const char* kNames[] = {"Add", "Get", "List", "Search", "ManualFlush", "AdvanceTime",
                                           "InjectFault", "Heal"};
  os << kNames[static_cast<int>(c.cmd)];
  if (c.cmd == Cmd::AdvanceTime) os << "(" << c.millis << " ms)";
  if (c.cmd == Cmd::InjectFault) os << "(" << to_string(c.fault) << ")";
}

struct Weights {
  int add = 6, read = 4, flush = 1, advance = 3, inject = 1, heal = 1;
  int max_advance_ms = 5000;
  std::vector<InjectedFault> faults = {InjectedFault::SqliteIoError, InjectedFault::SqliteFsyncError,
                                       InjectedFault::SqliteBusy,    InjectedFault::Qdrant429,
                                       InjectedFault::Qdrant503,     InjectedFault::Hang,
                                       InjectedFault::ResponseLost};
};

rc::Gen<Command> gen_command(const Weights& w) {
  using rc::gen::just;
  using rc::gen::map;
  return rc::gen::weightedOneOf<Command>({
      {static_cast<std::size_t>(w.add), just(Command{Cmd::Add})},
      {static_cast<std::size_t>(w.read), map(rc::gen::element(Cmd::Get, Cmd::List, Cmd::Search),
                                             [](Cmd c) { return Command{c}; })},
      {static_cast<std::size_t>(w.flush), just(Command{Cmd::ManualFlush})},
      {static_cast<std::size_t>(w.advance), map(rc::gen::inRange(1, w.max_advance_ms),
                                                [](int ms) { return Command{Cmd::AdvanceTime, ms}; })},
      {static_cast<std::size_t>(w.inject), map(rc::gen::elementOf(w.faults),
                                               [](InjectedFault f) { return Command{Cmd::InjectFault, 0, f}; })},
      {static_cast<std::size_t>(w.heal), just(Command{Cmd::Heal})},
  });
}

struct Knobs {
  int max_retries_max = 3;
  int timeout_ms_min = 500, timeout_ms_max = 5000;
  int max_size_max = 6;
  int workers_max = 4;
};

// Runs the commands, then Drain; returns the violation's description, or "".
std::string run(std::uint64_t seed, const Knobs& k, const std::vector<Command>& commands, bool qdrant) {
  auto sc = resolve_scenario("{}", seed);
  RC_ASSERT(sc.has_value());
  auto& fm = sc->config.buffer.flush_manager;
  fm.retry.max_retries = *rc::gen::inRange(0, k.max_retries_max + 1);
  fm.default_timeout = std::chrono::milliseconds(*rc::gen::inRange(k.timeout_ms_min, k.timeout_ms_max + 1));
  fm.max_workers = *rc::gen::inRange(1, k.workers_max + 1);
  sc->config.vector_store.qdrant.request_timeout = fm.default_timeout / 2;
  sc->config.vector_store.qdrant.connect_timeout = fm.default_timeout / 2;
  sc->config.buffer.hybrid_buffer.max_size = *rc::gen::inRange(1, k.max_size_max + 1);
  sc->config.vector_store.kind = qdrant ? VectorStoreKind::Qdrant : VectorStoreKind::Sqlite;
  RC_ASSERT(sc->config.validate().has_value());
  SimSystem sys(seed, *sc);
  for (const Command& c : commands) {
    switch (c.cmd) {
      case Cmd::Add: sys.add(); break;
      case Cmd::Get: sys.get(); break;
      case Cmd::List: sys.list(); break;
      case Cmd::Search: sys.search(); break;
      case Cmd::ManualFlush: sys.flush(); break;
      case Cmd::AdvanceTime: sys.advance(std::chrono::milliseconds(c.millis)); break;
      case Cmd::InjectFault: sys.inject(c.fault); break;
      case Cmd::Heal: sys.heal(); break;
    }
    if (sys.violation()) break;
  }
  sys.finish();
  if (!sys.violation()) return {};
  const Violation& v = *sys.violation();
  return "invariant " + std::to_string(v.invariant) + " (" + std::string(invariant_name(v.invariant)) +
         ") at t=" + std::to_string(duration_to_seconds(v.at)) + "s: " + v.event;
}

void property(const Weights& w, const Knobs& k) {
  const auto seed = *rc::gen::inRange<std::uint64_t>(1, 1'000'000);
  const bool qdrant = *rc::gen::arbitrary<bool>();
  const auto commands = *rc::gen::container<std::vector<Command>>(gen_command(w));
  const std::string violation = run(seed, k, commands, qdrant);
  RC_ASSERT(violation == std::string());
}

// A final failure (retries exhausted) puts the batch back, ahead of newer
// rounds: no round is ever in neither the buffer, a flight nor the store.
RC_GTEST_PROP(PipelineProperties, NoDataLossOnRollback, ()) {
  Weights w;
  w.inject = 3;
  w.faults = {InjectedFault::SqliteIoError, InjectedFault::SqliteFsyncError, InjectedFault::Qdrant503,
              InjectedFault::Hang};
  property(w, Knobs{.max_retries_max = 1, .timeout_ms_min = 200, .timeout_ms_max = 2000});
}

// Flushes of one priority start in submission order, more urgent ones first.
RC_GTEST_PROP(PipelineProperties, FifoWithinPriority, ()) {
  Weights w;
  w.add = 10;
  w.flush = 3;
  w.max_advance_ms = 500;
  property(w, Knobs{.max_size_max = 2, .workers_max = 2});
}

// A hung store call times out at its deadline, frees its worker then, and
// the batch is retried or restored.
RC_GTEST_PROP(PipelineProperties, TimeoutCancelsAndReleasesWorker, ()) {
  Weights w;
  w.inject = 3;
  w.faults = {InjectedFault::Hang};
  property(w, Knobs{.timeout_ms_min = 100, .timeout_ms_max = 1000, .workers_max = 2});
}

// Many flushes of equal priority: the queue orders them by sequence number
// and never looks at (compares) their payloads.
RC_GTEST_PROP(PipelineProperties, NoComparisonOfEqualPriorityTasks, ()) {
  Weights w;
  w.add = 12;
  w.read = 1;
  w.flush = 0;
  w.inject = 0;
  w.max_advance_ms = 50;
  property(w, Knobs{.max_size_max = 1, .workers_max = 1});
}

// Every read sees every acknowledged round, buffered, in flight or stored.
RC_GTEST_PROP(PipelineProperties, NoReadGap, ()) {
  Weights w;
  w.read = 8;
  w.inject = 2;
  property(w, Knobs{});
}

// Retries after lost responses and hangs after the effect duplicate nothing.
RC_GTEST_PROP(PipelineProperties, ExactlyOnceAtRest, ()) {
  Weights w;
  w.inject = 3;
  w.faults = {InjectedFault::ResponseLost, InjectedFault::Hang, InjectedFault::SqliteFsyncError};
  property(w, Knobs{.timeout_ms_min = 200, .timeout_ms_max = 2000});
}

// add() never lets virtual time pass, whatever storage does.
RC_GTEST_PROP(PipelineProperties, AddNeverBlocks, ()) {
  Weights w;
  w.add = 10;
  w.inject = 3;
  w.faults = {InjectedFault::Hang, InjectedFault::SqliteBusy, InjectedFault::Qdrant429};
  property(w, Knobs{});
}

}  // namespace
}  // namespace memfuse::sim
