// memfuse-sim: runs the production pipeline in the deterministic simulator.
//
//   memfuse-sim run --seed N [--scenario FILE] [--trace out.json]
//   memfuse-sim campaign --seeds A..B [--shard i/n] [--jobs J] [--json F] [--junit F] ...
//   memfuse-sim shrink --seed N [--scenario FILE] [--out FILE]
//   memfuse-sim seed-report [--json F] [--markdown F]
//
// Exit codes: 0 pass, 1 a violation (or a failing seed), 2 a usage error.
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "memfuse/sim/seed_report.h"
#include "memfuse/sim/world.h"

using namespace memfuse;
using namespace memfuse::sim;
using nlohmann::json;

namespace {

constexpr int kUsage = 2;

std::string scenario_text(const std::string& path) {
  if (path.empty()) return "{}";
  auto t = read_text_file(path);
  if (!t) {
    fmt::print(stderr, "memfuse-sim: {}\n", t.error().message());
    std::exit(kUsage);
  }
  return *t;
}

Scenario resolve_or_exit(const std::string& text, std::uint64_t seed) {
  auto s = resolve_scenario(text, seed);
  if (!s) {
    fmt::print(stderr, "memfuse-sim: {}\n", s.error().message());
    std::exit(kUsage);
  }
  return *s;
}

std::string replay_command(std::uint64_t seed, const std::string& scenario_path) {
  return scenario_path.empty() ? fmt::format("memfuse-sim run --seed {}", seed)
                               : fmt::format("memfuse-sim run --seed {} --scenario {}", seed, scenario_path);
}

void print_violation(const RunReport& r, const Scenario& sc, const std::string& scenario_path) {
  const Violation& v = *r.violation;
  fmt::print("seed {}: FAIL - invariant {} ({})\n", r.seed, v.invariant, invariant_name(v.invariant));
  fmt::print("  at t={:.6f}s: {}\n", duration_to_seconds(v.at), v.event);
  if (!v.ids.empty()) fmt::print("  ids: {}\n", fmt::join(v.ids, ", "));
  fmt::print("  fault plan: {}\n", json::parse(sc.faults.to_json()).dump());
  fmt::print("  scheduler: {} (pct depth {})\n", to_string(sc.scheduler.strategy), sc.scheduler.pct_depth);
  fmt::print("  replay: {}\n", replay_command(r.seed, scenario_path));
  fmt::print("  trace:  {} --trace seed-{}.json\n", replay_command(r.seed, scenario_path), r.seed);
}

// ---- run -------------------------------------------------------------------

int cmd_run(std::uint64_t seed, const std::string& scenario_path, const std::string& trace,
            bool verbose, bool twice, const std::string& dump_scenario) {
  const Scenario sc = resolve_or_exit(scenario_text(scenario_path), seed);
  if (!dump_scenario.empty()) std::ofstream(dump_scenario) << sc.to_json() << "\n";
  RunReport r = twice ? run_world_twice(seed, sc) : run_world(seed, sc, RunOptions{trace, verbose});
  if (twice && !trace.empty()) (void)run_world(seed, sc, RunOptions{trace, verbose});
  std::uint64_t faults = 0;
  for (const auto& [k, n] : r.faults) faults += n;
  if (r.passed()) {
    fmt::print("seed {}: pass - {} rounds acknowledged, {} reads, {} faults injected, {} events, "
               "{:.1f} s virtual in {:.3f} s, trace hash {:016x}\n",
               seed, r.rounds_acked, r.reads, faults, r.events, duration_to_seconds(r.virtual_time),
               r.wall_seconds, r.trace_hash);
  } else {
    print_violation(r, sc, scenario_path);
  }
  if (!trace.empty()) fmt::print("trace written to {}\n", trace);
  return r.passed() ? 0 : 1;
}

// ---- campaign ----------------------------------------------------------------

struct Range {
  std::uint64_t first = 0, last = 0;
};

bool parse_range(const std::string& s, Range& out) {
  const auto dots = s.find("..");
  try {
    if (dots == std::string::npos) {
      out.first = out.last = std::stoull(s);
    } else {
      out.first = std::stoull(s.substr(0, dots));
      out.last = std::stoull(s.substr(dots + 2));
    }
  } catch (...) {
    return false;
  }
  return out.first <= out.last;
}

// Runs `seeds` in `jobs` forked worker processes (seed i of the list goes to
// worker (i + rotate) % jobs); `on_report` sees each report as it arrives.
// Workers are processes, not threads: SQLite's PRNG is process-global.
template <typename OnReport>
bool run_in_workers(const std::vector<std::uint64_t>& seeds, int jobs, int rotate,
                    const std::string& text, OnReport on_report) {
  struct Worker {
    pid_t pid = -1;
    int fd = -1;
    std::string pending;
  };
  std::vector<Worker> workers(static_cast<std::size_t>(jobs));
  for (int k = 0; k < jobs; ++k) {
    int fds[2];
    if (pipe(fds) != 0) return false;
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      close(fds[0]);
      for (std::size_t i = 0; i < seeds.size(); ++i) {
        if (static_cast<int>((i + static_cast<std::size_t>(rotate)) % static_cast<std::size_t>(jobs)) != k) continue;
        const Scenario sc = resolve_or_exit(text, seeds[i]);
        const std::string line = run_world(seeds[i], sc).to_json() + "\n";
        std::size_t off = 0;
        while (off < line.size()) {
          const ssize_t n = write(fds[1], line.data() + off, line.size() - off);
          if (n <= 0) _exit(3);
          off += static_cast<std::size_t>(n);
        }
      }
      close(fds[1]);
      _exit(0);
    }
    close(fds[1]);
    workers[static_cast<std::size_t>(k)] = Worker{pid, fds[0], {}};
  }
  std::size_t open = workers.size();
  bool ok = true;
  while (open > 0) {
    std::vector<pollfd> pfds;
    std::vector<Worker*> who;
    for (auto& w : workers) {
      if (w.fd >= 0) {
        pfds.push_back({w.fd, POLLIN, 0});
        who.push_back(&w);
      }
    }
    if (poll(pfds.data(), pfds.size(), -1) < 0) continue;
    for (std::size_t i = 0; i < pfds.size(); ++i) {
      if ((pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      Worker& w = *who[i];
      char buf[65536];
      const ssize_t n = read(w.fd, buf, sizeof buf);
      if (n <= 0) {
        close(w.fd);
        w.fd = -1;
        --open;
        int status = 0;
        waitpid(w.pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ok = false;
        continue;
      }
      w.pending.append(buf, static_cast<std::size_t>(n));
      std::size_t nl;
      while ((nl = w.pending.find('\n')) != std::string::npos) {
        auto r = RunReport::from_json(std::string_view(w.pending).substr(0, nl));
        w.pending.erase(0, nl + 1);
        if (r) on_report(*r);
      }
    }
  }
  return ok;
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

int cmd_campaign(const std::string& seeds_arg, const std::string& scenario_path, const std::string& shard,
                 int jobs, const std::string& json_out, const std::string& junit_out, bool stop_on_failure,
                 bool rerun) {
  Range range;
  if (!parse_range(seeds_arg, range)) {
    fmt::print(stderr, "memfuse-sim: --seeds: expected A..B with A <= B, got \"{}\"\n", seeds_arg);
    return kUsage;
  }
  std::uint64_t shard_i = 0, shard_n = 1;
  if (!shard.empty()) {
    const auto slash = shard.find('/');
    try {
      shard_i = std::stoull(shard.substr(0, slash));
      shard_n = std::stoull(shard.substr(slash + 1));
    } catch (...) {
      shard_n = 0;
    }
    if (slash == std::string::npos || shard_n == 0 || shard_i >= shard_n) {
      fmt::print(stderr, "memfuse-sim: --shard: expected i/n with 0 <= i < n, got \"{}\"\n", shard);
      return kUsage;
    }
  }
  const std::string text = scenario_text(scenario_path);
  (void)resolve_or_exit(text, range.first);  // a malformed scenario is a usage error up front
  std::vector<std::uint64_t> seeds;
  for (std::uint64_t s = range.first;; ++s) {
    if ((s - range.first) % shard_n == shard_i) seeds.push_back(s);
    if (s == range.last) break;
  }
  const bool tty = isatty(STDOUT_FILENO) != 0;
  fmt::print("campaign: {} seeds ({}..{}, shard {}/{}), {} job(s){}\n", seeds.size(), range.first, range.last,
             shard_i, shard_n, jobs, rerun ? ", each re-run in a second process" : "");
  std::map<std::uint64_t, RunReport> reports;
  std::size_t done = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto progress = [&](const RunReport& r) {
    ++done;
    if (tty) {
      const int width = 40;
      const auto filled = static_cast<int>(width * done / std::max<std::size_t>(seeds.size(), 1));
      fmt::print("\r[{}{}] {}/{}  failures: {}", std::string(static_cast<std::size_t>(filled), '#'),
                 std::string(static_cast<std::size_t>(width - filled), '.'), done, seeds.size(),
                 std::count_if(reports.begin(), reports.end(), [](const auto& kv) { return !kv.second.passed(); }));
      std::fflush(stdout);
    } else if (!r.passed() || done % std::max<std::size_t>(seeds.size() / 10, 1) == 0 || done == seeds.size()) {
      fmt::print("  {}/{} seeds{}\n", done, seeds.size(),
                 r.passed() ? "" : fmt::format(" - seed {} FAILED invariant {}", r.seed, r.violation->invariant));
    }
  };
  bool workers_ok = true;
  if (stop_on_failure) {
    // One process per batch of `jobs` seeds, stopping after the first failing batch.
    for (std::size_t i = 0; i < seeds.size(); i += static_cast<std::size_t>(jobs)) {
      std::vector<std::uint64_t> batch(seeds.begin() + static_cast<std::ptrdiff_t>(i),
                                       seeds.begin() + static_cast<std::ptrdiff_t>(std::min(seeds.size(), i + static_cast<std::size_t>(jobs))));
      workers_ok &= run_in_workers(batch, static_cast<int>(batch.size()), 0, text, [&](const RunReport& r) {
        reports[r.seed] = r;
        progress(r);
      });
      if (std::any_of(reports.begin(), reports.end(), [](const auto& kv) { return !kv.second.passed(); })) break;
    }
  } else {
    workers_ok = run_in_workers(seeds, jobs, 0, text, [&](const RunReport& r) {
      reports[r.seed] = r;
      progress(r);
    });
  }
  // A worker that crashed left seeds without a report: run each of those in
  // a process of its own, so the crashing seed is named and the rest still run.
  for (std::uint64_t s : seeds) {
    if (reports.contains(s)) continue;
    if (stop_on_failure && std::any_of(reports.begin(), reports.end(), [](const auto& kv) { return !kv.second.passed(); })) break;
    bool got = false;
    (void)run_in_workers({s}, 1, 0, text, [&](const RunReport& r) {
      reports[r.seed] = r;
      got = true;
      progress(r);
    });
    if (!got) {
      RunReport crash;
      crash.seed = s;
      crash.violation = Violation{0, {}, "the process crashed while running this seed (an assertion or a signal)", {}};
      reports[s] = crash;
      progress(crash);
    }
  }
  workers_ok = true;
  std::size_t mismatches = 0;
  if (rerun && workers_ok) {
    if (tty) fmt::print("\n");
    fmt::print("re-running every seed in other processes to compare trace hashes\n");
    done = 0;
    workers_ok = run_in_workers(seeds, jobs, std::max(1, jobs / 2 + 1), text, [&](const RunReport& r) {
      auto it = reports.find(r.seed);
      if (it != reports.end() && it->second.trace_hash != r.trace_hash) {
        ++mismatches;
        if (it->second.passed()) {
          it->second.violation = Violation{12, {},
                                           fmt::format("trace hash {:016x} in one process, {:016x} in another",
                                                       it->second.trace_hash, r.trace_hash),
                                           {}};
        }
      }
      progress(r);
    });
  }
  if (tty) fmt::print("\n");
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!workers_ok) fmt::print("campaign: a worker process failed (crashed or could not write)\n");

  // Summary.
  std::uint64_t events = 0;
  std::array<std::uint64_t, kInvariantCount + 1> per_invariant{};
  std::map<std::string, std::uint64_t> fault_seeds;
  const RunReport* slowest = nullptr;
  std::vector<const RunReport*> failing;
  for (const auto& [seed, r] : reports) {
    events += r.events;
    if (!r.passed()) {
      ++per_invariant[static_cast<std::size_t>(std::clamp(r.violation->invariant, 0, kInvariantCount))];
      failing.push_back(&r);
    }
    for (const auto& [kind, n] : r.faults) {
      if (n > 0) ++fault_seeds[kind];
    }
    if (slowest == nullptr || r.wall_seconds > slowest->wall_seconds) slowest = &r;
  }
  const double passes = rerun ? 2.0 : 1.0;
  fmt::print("\nsummary: {} seeds in {:.2f} s: {:.1f} seeds/s, {:.0f} events/s{}\n", reports.size(), wall,
             passes * static_cast<double>(reports.size()) / wall, passes * static_cast<double>(events) / wall,
             rerun ? " (both passes)" : "");
  if (per_invariant[0] > 0) fmt::print("crashed seeds: {}\n", per_invariant[0]);
  fmt::print("violations by invariant:\n");
  for (int i = 1; i <= kInvariantCount; ++i) {
    fmt::print("  {:>2} {:<24} {}\n", i, invariant_name(i), per_invariant[static_cast<std::size_t>(i)]);
  }
  fmt::print("faults injected (kind: seeds that hit it):\n");
  for (const auto& [kind, n] : fault_seeds) fmt::print("  {:<48} {}\n", kind, n);
  if (slowest != nullptr) {
    fmt::print("slowest seed: {} ({:.3f} s wall, {} events, {:.1f} s virtual)\n", slowest->seed,
               slowest->wall_seconds, slowest->events, duration_to_seconds(slowest->virtual_time));
  }
  if (rerun) fmt::print("determinism: {} of {} seeds gave a different hash in a second process\n", mismatches, reports.size());
  for (const auto* r : failing) {
    fmt::print("FAILED seed {}: invariant {} ({}) at t={:.3f}s: {}\n  replay: {}\n", r->seed, r->violation->invariant,
               invariant_name(r->violation->invariant), duration_to_seconds(r->violation->at), r->violation->event,
               replay_command(r->seed, scenario_path));
  }

  if (!json_out.empty()) {
    json j;
    j["seeds"] = reports.size();
    j["range"] = {range.first, range.last};
    j["shard"] = {shard_i, shard_n};
    j["wall_s"] = wall;
    j["seeds_per_s"] = passes * static_cast<double>(reports.size()) / wall;
    j["events_per_s"] = passes * static_cast<double>(events) / wall;
    j["events"] = events;
    json inv = json::object();
    for (int i = 1; i <= kInvariantCount; ++i) inv[std::string(invariant_name(i))] = per_invariant[static_cast<std::size_t>(i)];
    j["violations_by_invariant"] = inv;
    j["crashed_seeds"] = per_invariant[0];
    j["fault_kinds_seeds"] = fault_seeds;
    if (slowest != nullptr) j["slowest_seed"] = {{"seed", slowest->seed}, {"wall_s", slowest->wall_seconds}};
    j["determinism_mismatches"] = mismatches;
    json f = json::array();
    for (const auto* r : failing) f.push_back(json::parse(r->to_json()));
    j["failing_seeds"] = f;
    // For scripts (no JSON parser needed): the lowest failing seed, or null.
    j["first_failing_seed"] = failing.empty() ? json() : json(failing.front()->seed);
    j["first_failing_invariant"] =
        failing.empty() ? json() : json(std::string(invariant_name(failing.front()->violation->invariant)));
    j["trace_hashes"] = json::object();
    for (const auto& [seed, r] : reports) j["trace_hashes"][std::to_string(seed)] = fmt::format("{:016x}", r.trace_hash);
    std::ofstream(json_out) << j.dump(2) << "\n";
    fmt::print("summary JSON written to {}\n", json_out);
  }
  if (!junit_out.empty()) {
    std::ofstream o(junit_out);
    o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    o << fmt::format("<testsuite name=\"memfuse-sim campaign\" tests=\"{}\" failures=\"{}\" time=\"{:.3f}\">\n",
                     reports.size(), failing.size(), wall);
    for (const auto& [seed, r] : reports) {
      o << fmt::format("  <testcase classname=\"memfuse-sim\" name=\"seed {}\" time=\"{:.3f}\"", seed, r.wall_seconds);
      if (r.passed()) {
        o << "/>\n";
      } else {
        o << fmt::format(">\n    <failure message=\"invariant {} ({})\">{}\nreplay: {}</failure>\n  </testcase>\n",
                         r.violation->invariant, xml_escape(std::string(invariant_name(r.violation->invariant))),
                         xml_escape(r.violation->event), xml_escape(replay_command(seed, scenario_path)));
      }
    }
    o << "</testsuite>\n";
    fmt::print("JUnit XML written to {}\n", junit_out);
  }
  return failing.empty() && workers_ok ? 0 : 1;
}

// ---- shrink ------------------------------------------------------------------

std::size_t size_of(const Scenario& s) {
  const json f = json::parse(s.faults.to_json());
  std::size_t faults = 0;
  for (const auto& [group, kinds] : f.items()) {
    for (const auto& [k, v] : kinds.items()) {
      if (v.is_number() && v.get<double>() > 0 && k != "hang_after_effect") ++faults;
    }
  }
  return static_cast<std::size_t>(s.workload.rounds) + faults;
}

int cmd_shrink(std::uint64_t seed, const std::string& scenario_path, std::string out) {
  Scenario best = resolve_or_exit(scenario_text(scenario_path), seed);
  RunReport first = run_world(seed, best);
  if (first.passed()) {
    fmt::print("seed {}: passes; nothing to shrink\n", seed);
    return 0;
  }
  const int invariant = first.violation->invariant;
  fmt::print("seed {}: fails invariant {} ({}); shrinking\n", seed, invariant, invariant_name(invariant));
  const std::size_t size_before = size_of(best);
  const std::uint64_t events_before = first.events;
  std::uint64_t events_after = first.events;
  int tries = 0;
  auto still_fails = [&](const Scenario& candidate) {
    ++tries;
    const RunReport r = run_world(seed, candidate);
    if (!r.passed() && r.violation->invariant == invariant) {
      events_after = r.events;
      return true;
    }
    return false;
  };
  bool progress = true;
  while (progress) {
    progress = false;
    // Fewer operations: halve, then step down.
    for (int target : {best.workload.rounds / 2, best.workload.rounds * 3 / 4, best.workload.rounds - 1}) {
      if (target < 0 || target >= best.workload.rounds) continue;
      Scenario c = best;
      c.workload.rounds = target;
      if (still_fails(c)) {
        best = c;
        progress = true;
        break;
      }
    }
    // Fewer faults: each rate to zero.
    json f = json::parse(best.faults.to_json());
    std::vector<std::pair<std::string, std::string>> rates;  // (group, kind) of every fault that is on
    for (const auto& [group, kinds] : f.items()) {
      for (const auto& [k, v] : kinds.items()) {
        if (v.is_number() && v.get<double>() > 0 && k != "hang_after_effect") rates.emplace_back(group, k);
      }
    }
    for (const auto& [group, k] : rates) {
      {
        json g = f;
        g[group][k] = 0;
        auto plan = fakes::FaultPlan::from_json(g.dump());
        if (!plan) continue;
        Scenario c = best;
        c.faults = *plan;
        if (still_fails(c)) {
          best = c;
          f = g;
          progress = true;
        }
      }
    }
    // Fewer reads, flushes and sessions.
    for (auto mutate : {+[](Scenario& s) { s.workload.reads_per_add = s.workload.reads_per_add < 0.05 ? 0.0 : s.workload.reads_per_add / 2; },
                        +[](Scenario& s) { s.workload.flushes_per_add = s.workload.flushes_per_add < 0.05 ? 0.0 : s.workload.flushes_per_add / 2; },
                        +[](Scenario& s) { s.workload.sessions = std::max(1, s.workload.sessions - 1); }}) {
      Scenario c = best;
      mutate(c);
      if (c.workload == best.workload) continue;
      if (still_fails(c)) {
        best = c;
        progress = true;
      }
    }
  }
  if (out.empty()) out = fmt::format("shrunk-seed-{}.json", seed);
  std::ofstream(out) << best.to_json() << "\n";
  fmt::print("shrunk in {} runs: size (rounds + fault kinds) {} -> {}; events {} -> {}\n", tries, size_before,
             size_of(best), events_before, events_after);
  fmt::print("wrote {}; it still fails invariant {}:\n  memfuse-sim run --seed {} --scenario {}\n", out, invariant,
             seed, out);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"memfuse-sim: the production flush pipeline in the deterministic simulator.\n"
               "Exit codes: 0 pass, 1 a violation, 2 a usage error."};
  app.require_subcommand(1);

  std::uint64_t seed = 1;
  std::string scenario, trace, dump;
  bool verbose = false, twice = false;
  auto* run = app.add_subcommand("run", "Runs one seed; prints pass, or the violation and how to replay it");
  run->add_option("--seed", seed, "the run's seed")->required();
  run->add_option("--scenario", scenario, "a scenario file (docs/scenario.md); left-out fields come from the seed");
  run->add_option("--trace", trace, "write the Chrome trace (chrome://tracing, Perfetto) to this file");
  run->add_option("--dump-scenario", dump, "write the resolved scenario to this file");
  run->add_flag("--verbose", verbose, "print the pipeline's logs, stamped with virtual time");
  run->add_flag("--twice", twice, "run it twice in this process and compare trace hashes (invariant 12)");

  std::string seeds = "1..100", shard, json_out, junit_out;
  int jobs = 1;
  bool stop = false, rerun = false;
  auto* camp = app.add_subcommand("campaign", "Runs a range of seeds and summarises them");
  camp->add_option("--seeds", seeds, "inclusive range A..B")->required();
  camp->add_option("--scenario", scenario, "a scenario file; left-out fields come from each seed");
  camp->add_option("--shard", shard, "i/n: only the seeds whose offset in the range is i modulo n (0 <= i < n)");
  camp->add_option("--jobs", jobs, "worker processes")->check(CLI::Range(1, 256));
  camp->add_option("--json", json_out, "write the summary, with every failing seed, as JSON");
  camp->add_option("--junit", junit_out, "write JUnit XML, one test case per seed");
  camp->add_flag("--stop-on-failure", stop, "stop after the first batch with a failing seed");
  camp->add_flag("--rerun", rerun, "re-run every seed in another process and compare trace hashes");

  std::string out;
  auto* shr = app.add_subcommand("shrink", "Minimises a failing run into a scenario file that still fails");
  shr->add_option("--seed", seed, "the failing seed")->required();
  shr->add_option("--scenario", scenario, "the scenario it fails with");
  shr->add_option("--out", out, "where to write the shrunk scenario (default shrunk-seed-N.json)");

  std::string report_json, report_md;
  auto* rep = app.add_subcommand("seed-report", "Re-derives the seed document's comparison by simulation");
  rep->add_option("--json", report_json, "write the report as JSON");
  rep->add_option("--markdown", report_md, "write the report as markdown");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : kUsage;
  }
  if (run->parsed()) return cmd_run(seed, scenario, trace, verbose, twice, dump);
  if (camp->parsed()) return cmd_campaign(seeds, scenario, shard, jobs, json_out, junit_out, stop, rerun);
  if (shr->parsed()) return cmd_shrink(seed, scenario, out);
  if (rep->parsed()) return run_seed_report(report_json, report_md);
  return kUsage;
}
