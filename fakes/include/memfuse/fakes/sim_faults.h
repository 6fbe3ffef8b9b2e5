// Wiring a FaultPlan into a simulated run: the blocking-work latency model
// for SQLite calls, and fault events into the run's trace.
#pragma once

#include "memfuse/fakes/fault_plan.h"
#include "memfuse/fakes/fault_vfs.h"
#include "memfuse/sim/sim_runtime.h"

namespace memfuse::fakes {

// The BlockingModel for SQLite calls under `plan` (kinds starting "sqlite."):
//   - latency from read_latency ("sqlite.read*") or write_latency (others);
//   - with probability `stall`, a stall from stall_latency instead (the seed's 45 s flushes);
//   - with probability `hang`, no completion until cancelled; of those, a
//     fraction hang_after_effect ran their effect first ("commit outcome unknown").
// Other kinds complete at once. Every hang and stall is a trace event.
[[nodiscard]] sim::BlockingModel sqlite_blocking_model(const FaultPlan& plan, sim::SimRuntime& runtime);

// Records every fault the VFS injects as a Fault event in the run's trace.
void trace_faults(FaultVfs& vfs, sim::SimRuntime& runtime);

}  // namespace memfuse::fakes
