// memfuse-sim-toy: runs the toy workload on the simulator for one seed and
// prints its outcome and trace hash. Used by the cross-process determinism
// test and to produce a sample Chrome trace.
//
//   memfuse-sim-toy --seed N [--strategy fifo|random|pct] [--bug] [--trace out.json]
//
// Exit codes: 0 ran, 1 the planted bug was observed, 2 usage error.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "memfuse/sim/sim_runtime.h"
#include "toy_workload.h"

int main(int argc, char** argv) {
  CLI::App app{"Runs the toy workload on the deterministic simulator"};
  std::uint64_t seed = 1;
  std::string strategy = "random";
  std::string trace_path;
  bool bug = false;
  int steps = 20;
  app.add_option("--seed", seed, "run seed")->required();
  app.add_option("--strategy", strategy, "scheduler: fifo, random or pct")
      ->check(CLI::IsMember({"fifo", "random", "pct"}));
  app.add_option("--steps", steps, "writer steps")->check(CLI::Range(2, 100000));
  app.add_flag("--bug", bug, "plant the depth-2 ordering bug");
  app.add_option("--trace", trace_path, "write a Chrome Trace Event JSON file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  memfuse::sim::SimOptions options;
  options.seed = seed;
  options.strategy = *memfuse::sim::parse_strategy(strategy);
  options.pct_depth = 2;
  options.pct_steps = static_cast<std::uint64_t>(steps) + 4;
  options.trace_mode = trace_path.empty() ? memfuse::sim::Trace::Mode::HashOnly
                                          : memfuse::sim::Trace::Mode::Full;
  memfuse::sim::SimRuntime runtime(options);
  runtime.set_blocking_model([](std::string_view, memfuse::Random& r) {
    return memfuse::sim::BlockingPlan{std::chrono::microseconds(100 + r.uniform(900))};
  });
  auto toy = memfuse::toy::ToyWorkload::create(
      runtime, {.steps = steps, .observe_at = steps / 2, .planted_bug = bug});
  toy->start();
  const auto result = runtime.run_until_quiescent(1'000'000);
  const auto outcome = toy->outcome();
  std::printf("seed=%llu strategy=%s events=%llu finished=%d bug_observed=%d observed=%d "
              "trace_hash=%s\n",
              static_cast<unsigned long long>(seed), strategy.c_str(),
              static_cast<unsigned long long>(result.events), outcome.finished,
              outcome.bug_observed, outcome.observed,
              fmt::format("{:#018x}", runtime.trace().hash()).c_str());
  if (!trace_path.empty()) {
    if (auto ok = runtime.trace().write_chrome_json(trace_path); !ok) {
      std::fprintf(stderr, "%s\n", ok.error().to_string().c_str());
      return 2;
    }
  }
  if (!result.quiescent) {
    std::fprintf(stderr, "%s\n", result.to_string().c_str());
    return 1;
  }
  return outcome.bug_observed ? 1 : 0;
}
