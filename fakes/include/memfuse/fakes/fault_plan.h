// FaultPlan: every fault probability and latency of a simulated run, in one
// JSON-serialisable struct, printed with every failure so a run can be read
// and replayed.
//
// A swarm generator (TigerBeetle's VOPR style) draws a plan from a seed: each
// fault kind is switched on or off at random, and an enabled kind gets a rate
// uniform between 0 and its maximum. Different seeds therefore explore very
// different mixes (no faults, one fault hammered, everything at once), which
// finds more bugs than one fixed mix.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "memfuse/error.h"
#include "memfuse/fakes/fault_vfs.h"
#include "memfuse/runtime.h"
#include "memfuse/time.h"

namespace memfuse::fakes {

// Latency drawn uniformly from [min, max].
struct LatencyRange {
  Duration min{};
  Duration max{};
  [[nodiscard]] Duration draw(Random& random) const;
  friend bool operator==(const LatencyRange&, const LatencyRange&) = default;
};

struct SqliteFaultPlan {
  double read_error = 0;    // per read: SQLITE_IOERR_READ
  double write_error = 0;   // per write: SQLITE_IOERR_WRITE
  double sync_error = 0;    // per sync: SQLITE_IOERR_FSYNC
  double disk_full = 0;     // per write: SQLITE_FULL
  double busy = 0;          // per lock: SQLITE_BUSY
  double hang = 0;          // per call: never completes until cancelled
  double hang_after_effect = 0.5;  // of hangs: the call's effect happened (commit outcome unknown)
  LatencyRange read_latency{std::chrono::microseconds(20), std::chrono::microseconds(200)};
  LatencyRange write_latency{std::chrono::microseconds(100), std::chrono::milliseconds(2)};
  // A stall like the seed's production log ("Buffer flush taking 45+ seconds").
  double stall = 0;
  LatencyRange stall_latency{std::chrono::seconds(45), std::chrono::seconds(50)};
  friend bool operator==(const SqliteFaultPlan&, const SqliteFaultPlan&) = default;
};

struct QdrantFaultPlan {
  double status_400 = 0;      // a bad-request answer for a valid request (a broken peer)
  double status_408 = 0;      // request timeout (wait_timeout)
  double status_429 = 0;      // rate limited
  double status_500 = 0;
  double status_503 = 0;
  double timeout = 0;         // no response until cancelled
  double response_lost = 0;   // applied, but the response never arrives
  double lose_acknowledged_on_crash = 0;  // wait=false writes not yet applied are lost at crash()
  LatencyRange latency{std::chrono::milliseconds(1), std::chrono::milliseconds(20)};
  friend bool operator==(const QdrantFaultPlan&, const QdrantFaultPlan&) = default;
};

struct FaultPlan {
  SqliteFaultPlan sqlite;
  QdrantFaultPlan qdrant;

  // The rates of the swarm: every kind on, each at its maximum.
  [[nodiscard]] static FaultPlan maximum();
  // No faults, default latencies (the heal phase).
  [[nodiscard]] static FaultPlan none() { return FaultPlan{}; }
  // Each kind on or off with probability 1/2; if on, a rate uniform in [0, its maximum).
  [[nodiscard]] static FaultPlan swarm(std::uint64_t seed);

  [[nodiscard]] std::string to_json(int indent = 2) const;
  // Errors name the field (InvalidArgument).
  [[nodiscard]] static Result<FaultPlan> from_json(std::string_view json);

  // The VFS rules this plan implies.
  [[nodiscard]] VfsFaults vfs_faults() const;

  friend bool operator==(const FaultPlan&, const FaultPlan&) = default;
};

}  // namespace memfuse::fakes
