// bench_report: reads the JSON that the benchmark programs wrote (Google
// Benchmark's --benchmark_out format), and prints the table as
// markdown: each figure, its baseline from the same run, the ratio, the
// goal, and whether the goal is met. Writes the same data as JSON.
//
//   bench_report --dir build/release/bench --json build/release/bench-report.json
//
// A benchmark that did not run (or skipped with an error) shows as "missing"
// and fails its goal; the exit status is 0 either way (a report, not a gate).
#include <cstdio>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>

#include "bench_report.h"

int main(int argc, char** argv) {
  CLI::App app{"Builds the benchmark table from the benchmark programs' JSON output"};
  std::string dir = "build/release/bench";
  std::string json_out = "build/release/bench-report.json";
  app.add_option("--dir", dir, "where the *_bench.json files are")->capture_default_str();
  app.add_option("--json", json_out, "the JSON report to write")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const auto rows = memfuse::bench::build_rows(dir);
  std::fputs(memfuse::bench::to_markdown(rows).c_str(), stdout);
  std::ofstream(json_out) << memfuse::bench::to_json(rows).dump(2) << "\n";
  std::fprintf(stderr, "bench_report: wrote %s\n", json_out.c_str());
  return 0;
}
