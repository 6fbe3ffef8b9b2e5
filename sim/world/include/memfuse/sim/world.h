// The simulation world: the production Pipeline (HybridBuffer, FlushManager,
// SQLite stores over the fault-injecting VFS, and Qdrant through FakeQdrant
// when the scenario says so) on the simulated runtime, driven by a workload
// and attacked by a fault plan, with a checker for each of DESIGN.md's twelve
// invariants.
//
// Phases: safety (the workload runs with faults on), heal (faults off; the
// client asks for a flush whenever rounds wait with nothing in flight), then
// liveness (everything acknowledged must reach both stores within the
// workload's liveness budget of virtual time), then an orderly drain.
//
// A run stops at the first violation and reports it with its virtual time,
// the event and the ids involved. Determinism (invariant 12) is checked by
// running a seed twice and comparing trace hashes: `check_determinism` does
// it in one process, `memfuse-sim campaign --rerun` in two.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "memfuse/sim/scenario.h"
#include "memfuse/time.h"

namespace memfuse::sim {

inline constexpr int kInvariantCount = 12;
[[nodiscard]] std::string_view invariant_name(int invariant) noexcept;  // 1..12

struct Violation {
  int invariant = 0;  // 1..12
  Duration at{};      // virtual time since the run began
  std::string event;  // what was observed
  std::vector<std::string> ids;
};

struct RunReport {
  std::uint64_t seed = 0;
  std::optional<Violation> violation;
  std::uint64_t events = 0;      // simulator events run
  std::uint64_t trace_hash = 0;
  Duration virtual_time{};
  double wall_seconds = 0;
  std::map<std::string, std::uint64_t> faults;  // injected faults by kind
  std::uint64_t rounds_acked = 0, rounds_rejected = 0, reads = 0, read_errors = 0,
                manual_flushes = 0;
  std::string scenario_json;  // the resolved scenario: replay with --scenario

  [[nodiscard]] bool passed() const noexcept { return !violation.has_value(); }
  [[nodiscard]] std::string to_json() const;  // one line
  [[nodiscard]] static std::optional<RunReport> from_json(std::string_view line);
};

struct RunOptions {
  std::string trace_path;  // when set, the full Chrome trace is written there
  bool verbose = false;    // production logs (virtual time) to stderr
};

[[nodiscard]] RunReport run_world(std::uint64_t seed, const Scenario& scenario,
                                  const RunOptions& options = {});

// Runs the seed twice in this process; a differing hash is an invariant-12
// violation in the returned report.
[[nodiscard]] RunReport run_world_twice(std::uint64_t seed, const Scenario& scenario);

// Faults a command can switch on (until heal()).
enum class InjectedFault : std::uint8_t {
  SqliteIoError,     // SQLITE_IOERR_WRITE on half the writes
  SqliteFsyncError,  // SQLITE_IOERR_FSYNC on half the syncs
  SqliteBusy,        // SQLITE_BUSY on half the locks
  Qdrant429,         // half the Qdrant requests rate limited
  Qdrant503,         // half the Qdrant requests unavailable
  Hang,              // a third of the SQLite calls hang (half of them after their effect)
  ResponseLost,      // half the Qdrant writes applied, their responses lost
};
inline constexpr int kInjectedFaultCount = 7;
[[nodiscard]] std::string_view to_string(InjectedFault f) noexcept;

// The same world, driven one command at a time (for stateful property
// tests). Faults start off; inject() switches one on, heal() all off. Every
// command first checks invariant 1; reads check 2 and 11 when they complete;
// the manager's events are checked as they happen. finish() heals, waits for
// liveness, checks the stores at rest and drains.
class SimSystem {
 public:
  SimSystem(std::uint64_t seed, Scenario scenario);
  ~SimSystem();
  SimSystem(const SimSystem&) = delete;
  SimSystem& operator=(const SimSystem&) = delete;

  void add();
  void get();
  void list();
  void search();
  void flush();
  void advance(Duration d);
  void inject(InjectedFault f);
  void heal();
  void finish();

  [[nodiscard]] const std::optional<Violation>& violation() const noexcept;
  [[nodiscard]] std::uint64_t rounds_acked() const noexcept;
  [[nodiscard]] const Scenario& scenario() const noexcept { return *scenario_; }

 private:
  std::unique_ptr<Scenario> scenario_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace memfuse::sim
