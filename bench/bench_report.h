// The benchmark table of scripts/bench-report: reads the JSON that the
// benchmark programs wrote (Google Benchmark's --benchmark_out format) and
// builds the rows - each figure, its baseline from the same run, the
// ratio and the goal, and whether the goal is met. bench_report_main.cpp
// prints them; bench_report_test.cpp checks them on made-up runs.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace memfuse::bench {

struct Row {
  std::string figure;
  std::optional<double> value;
  std::string unit;
  std::string baseline_name;
  std::optional<double> baseline;
  std::optional<double> ratio;  // as the goal reads it
  std::string goal;
  bool met = false;
  std::string detail;  // what the figure is made of, when the run measured it
};

// The rows from the *_bench.json files in `dir`. A benchmark that did not run
// (or skipped with an error) shows as missing and fails its goal.
std::vector<Row> build_rows(const std::string& dir);

// A figure in its unit, "missing" when absent.
std::string number(std::optional<double> v, const std::string& unit);

// The markdown table, and the same rows as JSON ({"rows": [...]}).
std::string to_markdown(const std::vector<Row>& rows);
nlohmann::json to_json(const std::vector<Row>& rows);

}  // namespace memfuse::bench
