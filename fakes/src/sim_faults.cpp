#include "memfuse/fakes/sim_faults.h"

namespace memfuse::fakes {

sim::BlockingModel sqlite_blocking_model(const FaultPlan& plan, sim::SimRuntime& runtime) {
  return [p = plan.sqlite, &runtime](std::string_view kind, Random& random) {
    sim::BlockingPlan out;
    if (!kind.starts_with("sqlite.")) return out;
    if (random.chance(p.hang)) {
      out.hang = true;
      out.run_work = random.chance(p.hang_after_effect);
      runtime.fault_event(out.run_work ? "sqlite: hang after effect (outcome unknown)"
                                       : "sqlite: hang before effect");
      return out;
    }
    if (random.chance(p.stall)) {
      out.latency = p.stall_latency.draw(random);
      runtime.fault_event("sqlite: stall", out.latency.count());
      return out;
    }
    out.latency = kind.starts_with("sqlite.read") ? p.read_latency.draw(random)
                                                  : p.write_latency.draw(random);
    return out;
  };
}

void trace_faults(FaultVfs& vfs, sim::SimRuntime& runtime) {
  vfs.on_fault = [&runtime](std::string_view label) { runtime.fault_event(label); };
}

}  // namespace memfuse::fakes
