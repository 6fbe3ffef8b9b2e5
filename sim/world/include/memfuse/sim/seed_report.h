// The seed-document report: the comparison in
// ../shared/seed/000_1f1eb0e68ae682a6.txt ("Performance Benchmarks"),
// re-derived by simulation rather than copied.
//
// Two designs run the same workload under the same latency model:
//   legacy      the original synchronous buffer (sim/legacy/): one lock held
//               across the SQLite and Qdrant writes of a flush;
//   production  the production Pipeline (HybridBuffer + FlushManager + SQLite
//               over the in-memory VFS + Qdrant through FakeQdrant).
// Workload: API clients, each running the seed's 5-round conversation that
// switches context between two sessions (a, b, a, b, a), over and over; each
// request stores a round (add) and then reads the session's context (list).
// Requests arrive open-loop (Poisson per client) so a stall piles them up, as
// in the production log. A client gives up after 30 s (a timeout); the server
// still finishes the request.
//
// The model's parameters are printed next to the results. They are not tuned
// toward the seed's numbers.
#pragma once

#include <string>

#include "memfuse/time.h"

namespace memfuse::sim {

struct SeedReportModel {
  std::uint64_t seed = 20250617;
  int clients = 10;
  Duration request_interval_mean = std::chrono::seconds(3);  // per client
  Duration duration = std::chrono::minutes(20);              // of arrivals
  Duration client_timeout = std::chrono::seconds(30);
  int max_size = 5;  // the seed's hybrid_buffer.max_size
  // Latencies, uniform in [min, max].
  Duration sqlite_write_min = std::chrono::milliseconds(5), sqlite_write_max = std::chrono::milliseconds(20);
  Duration sqlite_read_min = std::chrono::milliseconds(1), sqlite_read_max = std::chrono::milliseconds(5);
  Duration qdrant_min = std::chrono::milliseconds(30), qdrant_max = std::chrono::milliseconds(120);
  // The production log's "Buffer flush taking 45+ seconds": a SQLite write
  // stalls this long with this probability.
  double stall_probability = 0.02;
  Duration stall_min = std::chrono::seconds(45), stall_max = std::chrono::seconds(50);
};

// Runs both designs and writes the table as markdown and JSON (when paths are
// given); prints the markdown. Returns 0, or 1 if the production design lost
// a round.
int run_seed_report(const std::string& json_path, const std::string& markdown_path,
                    const SeedReportModel& model = {});

}  // namespace memfuse::sim
