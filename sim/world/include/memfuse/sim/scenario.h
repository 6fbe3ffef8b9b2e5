// Scenario: everything one simulation run needs besides its seed - the
// workload, the configuration, the fault plan and the scheduler - read from a
// JSON file (schema: docs/scenario.md).
//
// Any field left out is drawn from the seed (the swarm): `{}` is the full
// swarm, and a file that sets only "faults" keeps the seed's workload and
// configuration. Drawing is deterministic: a seed and a file give one
// resolved scenario, printed by `memfuse-sim run` so that a failing run can
// be replayed from the resolved file alone.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "memfuse/config.h"
#include "memfuse/error.h"
#include "memfuse/fakes/fault_plan.h"
#include "memfuse/sim/sim_context.h"
#include "memfuse/time.h"

namespace memfuse::sim {

struct Workload {
  int sessions = 3;                 // 1..64
  int rounds = 40;                  // add() calls; 0..100,000
  Duration add_gap_mean = std::chrono::milliseconds(500);  // exponential gaps between adds
  int max_messages = 3;             // per round, 1..20
  int max_message_bytes = 300;      // content length drawn in [1, this]
  double reads_per_add = 0.5;       // get/list/search calls per add, on average
  double flushes_per_add = 0.05;    // manual flush() calls per add
  Duration liveness_budget = std::chrono::seconds(900);  // virtual time to drain after healing
  friend bool operator==(const Workload&, const Workload&) = default;
};

struct SchedulerSpec {
  Strategy strategy = Strategy::Random;
  int pct_depth = 3;
  friend bool operator==(const SchedulerSpec&, const SchedulerSpec&) = default;
};

struct Scenario {
  Workload workload;
  Config config;
  fakes::FaultPlan faults;
  SchedulerSpec scheduler;

  [[nodiscard]] std::string to_json(int indent = 2) const;
};

// Parses a scenario file's text and fills what it leaves out from `seed`.
// A malformed file is InvalidArgument naming the field ("workload.rounds: ...").
[[nodiscard]] Result<Scenario> resolve_scenario(std::string_view json_text, std::uint64_t seed);
[[nodiscard]] Result<std::string> read_text_file(const std::string& path);

}  // namespace memfuse::sim
