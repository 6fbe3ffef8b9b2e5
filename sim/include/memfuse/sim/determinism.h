// Cross-process determinism checks.
//
// Running one seed twice in one process can hide nondeterminism that only
// shows between processes: ordering by pointer value (ASLR moves the heap),
// hashing addresses, or reading the real clock or random_device. These
// helpers run a program twice as separate processes and compare the trace
// hashes they print (a line containing "trace_hash=0x<16 hex digits>").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "memfuse/error.h"

namespace memfuse::sim {

struct ProcessOutput {
  int exit_code = -1;  // the exit status, or 128 + signal
  std::string output;  // standard output
};

// Runs argv[0] (a path) with the rest as arguments, capturing standard output.
[[nodiscard]] Result<ProcessOutput> run_process(const std::vector<std::string>& argv);

// The first "trace_hash=0x..." value in `output`.
[[nodiscard]] Result<std::uint64_t> parse_trace_hash(std::string_view output);

struct DeterminismReport {
  std::uint64_t first = 0;
  std::uint64_t second = 0;
  [[nodiscard]] bool same() const noexcept { return first == second; }
  [[nodiscard]] std::string to_string() const;
};

// Runs argv twice, in two processes, and compares the printed trace hashes.
// An error if either run fails or prints no hash.
[[nodiscard]] Result<DeterminismReport> compare_across_processes(
    const std::vector<std::string>& argv);

}  // namespace memfuse::sim
