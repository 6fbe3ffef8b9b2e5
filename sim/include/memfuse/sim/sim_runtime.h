// SimRuntime: the runtime ports on the deterministic simulator.
//
//   - executor: SimContext's, as asio::any_io_executor;
//   - clock: the virtual clock;
//   - timers: virtual-time timers on the context;
//   - random: xoshiro256** on the run's seed (a stream of its own, apart from
//     the scheduler's and the fault injector's);
//   - blocking work: runs inline, on the submitting handler's turn, then
//     completes after a latency the BlockingModel draws, or never (until
//     cancelled) when the model says it hangs. The model may also say the
//     work never reached its effect (a hang before the call got anywhere).
//
// Everything a run does follows from SimOptions::seed and the inputs; two
// runs of one seed give one trace hash, in one process or in two.
//
// Thread-safety: none; one thread drives a SimRuntime.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "memfuse/executor.h"
#include "memfuse/logger.h"
#include "memfuse/runtime.h"
#include "memfuse/sim/sim_context.h"
#include "memfuse/sim/trace.h"

namespace memfuse::sim {

struct SimOptions {
  std::uint64_t seed = 1;
  Strategy strategy = Strategy::Random;
  int pct_depth = 3;
  std::uint64_t pct_steps = 10'000;
  Trace::Mode trace_mode = Trace::Mode::Bounded;
  std::size_t trace_bound = 4096;
  // Virtual time at start: the seed document's production log (2025-06-17),
  // so task ids and round ids look like the ones in it.
  TimePoint start = TimePoint(std::chrono::milliseconds(1'750'168'589'000));
};

// What one blocking call does in simulation.
struct BlockingPlan {
  Duration latency{};    // from submission to completion
  bool hang = false;     // never completes until cancelled
  bool run_work = true;  // false: the function never runs (the call hung before its effect)
};

// Draws a plan for a call of `kind` ("sqlite.write", ...). Default: zero latency.
using BlockingModel = std::function<BlockingPlan(std::string_view kind, Random& random)>;

class SimRuntime final : public Runtime {
 public:
  explicit SimRuntime(SimOptions options = {});
  ~SimRuntime() override;
  SimRuntime(const SimRuntime&) = delete;
  SimRuntime& operator=(const SimRuntime&) = delete;

  [[nodiscard]] const Executor& executor() const noexcept override { return executor_; }
  [[nodiscard]] Clock& clock() noexcept override;
  [[nodiscard]] Random& random() noexcept override { return random_; }
  [[nodiscard]] BlockingWork& blocking() noexcept override;
  [[nodiscard]] std::unique_ptr<Timer> make_timer(const Executor& completion) override;

  [[nodiscard]] SimContext& context() noexcept { return context_; }
  [[nodiscard]] Trace& trace() noexcept { return trace_; }
  [[nodiscard]] const SimOptions& options() const noexcept { return options_; }
  [[nodiscard]] TimePoint now() const noexcept { return context_.now(); }

  // The generator fault injectors draw from (a stream of its own).
  [[nodiscard]] Random& fault_random() noexcept { return fault_random_; }
  void set_blocking_model(BlockingModel model);

  // Labelled events, recorded on the running chain at the current virtual time.
  void app_event(std::string_view label, std::int64_t value = 0);
  void fault_event(std::string_view label, std::int64_t value = 0);
  // Called with every fault_event's label (to count faults by kind).
  std::function<void(std::string_view)> on_fault;

  // As SimContext's, with hung blocking operations added to `pending`.
  RunResult run_until_quiescent(std::uint64_t event_budget);
  RunResult run_for(Duration d, std::uint64_t event_budget = 100'000'000);

  // Blocking operations that hang and have not been cancelled.
  [[nodiscard]] std::size_t hung_operations() const noexcept;

  // A logger whose lines carry virtual time ("[t=12.000250s]") instead of the wall clock.
  [[nodiscard]] Logger make_logger(std::string name, LogLevel level = LogLevel::Info);

 private:
  class VirtualClock;
  class Blocking;

  void add_hung(RunResult& result) const;

  SimOptions options_;
  Trace trace_;
  SimContext context_;
  Executor executor_;
  std::unique_ptr<VirtualClock> clock_;
  SeededRandom random_;
  SeededRandom fault_random_;
  std::unique_ptr<Blocking> blocking_;
};

}  // namespace memfuse::sim
