// FlushManager properties over random workloads on the simulated runtime.
//
// Method: RapidCheck generates a configuration, a scheduler strategy (random
// or pct), a seed and a list of tasks, each with a priority, a submission
// time, a timeout and a script per attempt (succeed, fail retryable, fail
// final, hang, complete late, with a latency). The workload runs on the
// simulator; optionally a drain starts at a random time. Observations are
// taken from outside the manager (attempt starts, cancel hooks, outcomes,
// submit results) and from stats() after every simulator step. Each property
// asserts one family of invariants over those observations. A failure prints
// the counterexample and its RC_PARAMS replay string.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "memfuse/flush_manager.h"
#include "memfuse/sim/sim_runtime.h"
#include "scripted_sink.h"

namespace memfuse {
namespace {

using namespace std::chrono_literals;
using testing::Behaviour;
using testing::Script;

struct TaskGen {
  Priority priority = Priority::Normal;
  int submit_at_ms = 0;
  int timeout_ms = 1000;
  int latency_ms = 10;
  std::vector<Behaviour> script;
};

struct Workload {
  FlushManagerConfig config;
  sim::Strategy strategy = sim::Strategy::Random;
  std::uint64_t seed = 1;
  std::vector<TaskGen> tasks;
  std::optional<int> drain_at_ms;  // drain starts here, deadline drain_window_ms later
  int drain_window_ms = 0;
};

// How RapidCheck prints a counterexample (found by ADL).
void showValue(const TaskGen& t, std::ostream& os) {
  static constexpr const char* kB[] = {"ok", "retryable", "final", "hang", "late"};
  os << "{" << to_string(t.priority) << " at=" << t.submit_at_ms << "ms timeout=" << t.timeout_ms
     << "ms latency=" << t.latency_ms << "ms script=[";
  for (auto b : t.script) os << kB[static_cast<int>(b)] << " ";
  os << "]}";
}

void showValue(const Workload& w, std::ostream& os) {
  os << "workers=" << w.config.max_workers << " queue=" << w.config.max_queue_size
     << " retries=" << w.config.retry.max_retries
     << " policy=" << to_string(w.config.queue_full_policy)
     << " strategy=" << sim::to_string(w.strategy) << " seed=" << w.seed;
  if (w.drain_at_ms) os << " drain_at=" << *w.drain_at_ms << "ms window=" << w.drain_window_ms << "ms";
  os << "\n";
  for (const auto& t : w.tasks) {
    showValue(t, os);
    os << "\n";
  }
}

rc::Gen<TaskGen> gen_task() {
  return rc::gen::build<TaskGen>(
      rc::gen::set(&TaskGen::priority,
                   rc::gen::element(Priority::Critical, Priority::High, Priority::Normal,
                                    Priority::Low)),
      rc::gen::set(&TaskGen::submit_at_ms, rc::gen::inRange(0, 2000)),
      rc::gen::set(&TaskGen::timeout_ms, rc::gen::inRange(50, 2000)),
      rc::gen::set(&TaskGen::latency_ms, rc::gen::inRange(0, 1500)),
      rc::gen::set(&TaskGen::script,
                   rc::gen::resize(4, rc::gen::container<std::vector<Behaviour>>(rc::gen::element(
                                          Behaviour::Succeed, Behaviour::Succeed,
                                          Behaviour::FailRetryable, Behaviour::FailFinal,
                                          Behaviour::Hang, Behaviour::CompleteLate)))));
}

rc::Gen<Workload> gen_workload(bool many_equal_priorities = false) {
  return rc::gen::exec([many_equal_priorities] {
    Workload w;
    w.config.max_workers = *rc::gen::inRange(1, 5);
    w.config.max_queue_size = *rc::gen::inRange(1, 30);
    w.config.enable_auto_flush = false;
    w.config.default_timeout = 2s;
    w.config.retry.max_retries = *rc::gen::inRange(0, 4);
    w.config.retry.backoff_base = std::chrono::milliseconds(*rc::gen::inRange(1, 200));
    w.config.retry.backoff_cap = 1s;
    w.config.retry.jitter = 0.25;
    w.config.delivery_deadline = std::chrono::seconds(*rc::gen::inRange(2, 20));
    w.config.queue_full_policy =
        *rc::gen::element(QueueFullPolicy::Reject, QueueFullPolicy::Wait);
    w.config.queue_full_wait = std::chrono::milliseconds(*rc::gen::inRange(1, 3000));
    w.strategy = *rc::gen::element(sim::Strategy::Random, sim::Strategy::Pct);
    w.seed = *rc::gen::arbitrary<std::uint64_t>();
    w.tasks = *rc::gen::resize(40, rc::gen::container<std::vector<TaskGen>>(gen_task()));
    if (many_equal_priorities) {
      for (auto& t : w.tasks) t.priority = Priority::Normal;
    }
    if (*rc::gen::inRange(0, 3) == 0) {
      w.drain_at_ms = *rc::gen::inRange(0, 3000);
      w.drain_window_ms = *rc::gen::inRange(0, 5000);
    }
    return w;
  });
}

struct AttemptRecord {
  std::size_t task = 0;
  int number = 0;
  Priority priority = Priority::Normal;
  TimePoint start{};
  TimePoint deadline{};
  std::optional<TimePoint> cancelled_at;
  bool more_urgent_was_queued = false;
};

struct Observed {
  std::vector<std::optional<TaskId>> accepted;  // per task: its id, or nothing if rejected
  std::vector<std::uint64_t> submit_order;      // accepted task indices, in submission order
  std::vector<AttemptRecord> attempts;          // in start order
  std::map<std::size_t, std::vector<TaskOutcome>> outcomes;
  std::optional<DrainReport> report;
  bool bounds_held = true;
  bool counters_added_up = true;
  std::string first_violation;
  bool quiescent = false;
  FlushStats final_stats;
};

Observed run(const Workload& w) {
  sim::SimRuntime rt({.seed = w.seed, .strategy = w.strategy, .pct_depth = 3, .pct_steps = 2000,
                      .trace_mode = sim::Trace::Mode::HashOnly});
  auto created = FlushManager::create(rt, w.config);
  RC_ASSERT(created.has_value());
  FlushManager& m = **created;
  Observed o;
  o.accepted.resize(w.tasks.size());
  std::vector<std::unique_ptr<Timer>> timers;

  for (std::size_t i = 0; i < w.tasks.size(); ++i) {
    const TaskGen& g = w.tasks[i];
    timers.push_back(rt.make_timer(rt.executor()));
    timers.back()->async_wait_until(
        rt.now() + std::chrono::milliseconds(g.submit_at_ms), [&, i](std::error_code) {
          const TaskGen& t = w.tasks[i];
          TaskSpec spec;
          spec.kind = "prop";
          spec.priority = t.priority;
          spec.timeout = std::chrono::milliseconds(t.timeout_ms);
          spec.payload = std::make_shared<std::size_t>(i);
          spec.attempt = [&, i, inner = testing::scripted_attempt(
                                    rt, Script{t.script, std::chrono::milliseconds(t.latency_ms)})](
                             std::shared_ptr<Attempt> a) mutable {
            AttemptRecord rec{i, a->number(), w.tasks[i].priority, rt.now(), a->deadline(), {}};
            const FlushStats s = m.stats();
            for (Priority p : kPrioritiesByUrgency) {
              if (more_urgent(p, rec.priority) && s.queued_by_priority[static_cast<std::size_t>(urgency_rank(p))] > 0) {
                rec.more_urgent_was_queued = true;
              }
            }
            const std::size_t index = o.attempts.size();
            o.attempts.push_back(rec);
            a->on_cancel([&, index] { o.attempts[index].cancelled_at = rt.now(); });
            inner(std::move(a));
          };
          spec.on_complete = [&, i](const TaskOutcome& out, std::shared_ptr<void> payload) {
            RC_ASSERT(*std::static_pointer_cast<std::size_t>(payload) == i);
            o.outcomes[i].push_back(out);
          };
          auto id = m.submit(std::move(spec));
          if (id) {
            o.accepted[i] = *id;
            o.submit_order.push_back(i);
          }
        });
  }
  if (w.drain_at_ms) {
    timers.push_back(rt.make_timer(rt.executor()));
    timers.back()->async_wait_until(
        rt.now() + std::chrono::milliseconds(*w.drain_at_ms), [&](std::error_code) {
          m.drain(rt.now() + std::chrono::milliseconds(w.drain_window_ms),
                  [&](DrainReport r) { o.report = std::move(r); });
        });
  }
  auto check_step = [&] {
    const FlushStats s = m.stats();
    if (s.queue_depth > static_cast<std::size_t>(w.config.max_queue_size) ||
        s.active_workers > static_cast<std::size_t>(w.config.max_workers) ||
        s.queue_depth + s.active_workers + s.backing_off >
            static_cast<std::size_t>(w.config.max_queue_size) ||
        s.waiting_admission > static_cast<std::size_t>(w.config.max_queue_size)) {
      if (o.bounds_held) o.first_violation = "bounds: " + s.to_json();
      o.bounds_held = false;
    }
    if (s.submitted != s.succeeded + s.failed + s.timed_out + s.cancelled + s.queue_depth +
                           s.active_workers + s.backing_off + s.waiting_admission) {
      if (o.counters_added_up) o.first_violation = "counters: " + s.to_json();
      o.counters_added_up = false;
    }
  };
  std::uint64_t steps = 0;
  while (steps < 2'000'000 && rt.context().run_one()) {
    ++steps;
    check_step();
  }
  o.quiescent = steps < 2'000'000;
  if (!o.report) {  // always end drained, so every task has its outcome
    m.stop([&](DrainReport r) { o.report = std::move(r); });
    while (rt.context().run_one()) check_step();
  }
  o.final_stats = m.stats();
  return o;
}

std::size_t accepted_count(const Observed& o) {
  std::size_t n = 0;
  for (const auto& a : o.accepted) n += a.has_value() ? 1 : 0;
  return n;
}

RC_GTEST_PROP(FlushManagerProperties, StrictPriorityOrder, ()) {
  const Workload w = *gen_workload();
  const Observed o = run(w);
  for (const auto& a : o.attempts) {
    RC_ASSERT(!a.more_urgent_was_queued);
  }
}

// The case the property above found (seed 2351): at 451 ms a hung attempt's
// deadline frees its worker in the same instant a critical task is handed
// in; the freed worker must take the critical task, not the normal one queued
// earlier. (The deadline handler started attempts without first taking what
// had been handed in.)
TEST(FlushManagerProperties, AWorkerFreedByATimeoutTakesATaskHandedInAtThatInstant) {
  Workload w;
  w.config.max_workers = 2;
  w.config.max_queue_size = 5;
  w.config.enable_auto_flush = false;
  w.config.default_timeout = 2s;
  w.config.retry.max_retries = 1;
  w.config.retry.backoff_base = 1ms;
  w.config.retry.backoff_cap = 1s;
  w.config.retry.jitter = 0.25;
  w.config.delivery_deadline = 2s;
  w.config.queue_full_policy = QueueFullPolicy::Reject;
  w.config.queue_full_wait = 1ms;
  w.strategy = sim::Strategy::Random;
  w.seed = 2351;
  w.drain_at_ms = 451;
  w.drain_window_ms = 0;
  w.tasks = {{Priority::Critical, 451, 50, 0, {}},
             {Priority::Normal, 60, 50, 0, {}},
             {Priority::High, 7, 444, 0, {Behaviour::Hang}},
             {Priority::Normal, 61, 50, 0, {}},
             {Priority::Critical, 8, 50, 51, {}},
             {Priority::Critical, 62, 342, 342, {}}};
  const Observed o = run(w);
  for (const auto& a : o.attempts) {
    EXPECT_FALSE(a.more_urgent_was_queued) << "task " << a.task << " attempt " << a.number << " started at "
                                           << (a.start - TimePoint{}).count() << " ns (virtual clock) with a more urgent task queued";
  }
}

// First attempts of equal priority start in submission order.
void check_fifo_within_priority(const Observed& o) {
  std::map<std::size_t, std::size_t> first_start;  // task -> index of its first attempt
  for (std::size_t k = 0; k < o.attempts.size(); ++k) {
    if (o.attempts[k].number == 1) first_start.emplace(o.attempts[k].task, k);
  }
  for (std::size_t x = 0; x < o.submit_order.size(); ++x) {
    for (std::size_t y = x + 1; y < o.submit_order.size(); ++y) {
      const auto a = o.submit_order[x];
      const auto b = o.submit_order[y];
      if (!first_start.contains(a) || !first_start.contains(b)) continue;
      if (o.attempts[first_start[a]].priority != o.attempts[first_start[b]].priority) continue;
      RC_ASSERT(first_start[a] < first_start[b]);
    }
  }
}

RC_GTEST_PROP(FlushManagerProperties, FifoWithinPriority, ()) {
  check_fifo_within_priority(run(*gen_workload()));
}

RC_GTEST_PROP(FlushManagerProperties, NoPayloadComparisonWithManyEqualPriorities, ()) {
  // Every task has the same priority: only the sequence orders them. (The
  // payload type, std::size_t behind a void pointer, is never compared: the
  // queue holds keys only.)
  const Observed o = run(*gen_workload(true));
  check_fifo_within_priority(o);
  RC_ASSERT(o.quiescent);
}

RC_GTEST_PROP(FlushManagerProperties, TimeoutCancelsAndReleasesTheWorker, ()) {
  const Workload w = *gen_workload();
  const Observed o = run(w);
  for (const auto& a : o.attempts) {
    if (a.cancelled_at) {
      RC_ASSERT(*a.cancelled_at <= a.deadline);
    }
  }
  const std::int64_t max_timeout_ns = [&] {
    std::int64_t mx = 0;
    for (const auto& t : w.tasks) mx = std::max<std::int64_t>(mx, t.timeout_ms * 1'000'000LL);
    return mx;
  }();
  RC_ASSERT(o.final_stats.attempt_latency.max.count() <= max_timeout_ns);
  RC_ASSERT(o.final_stats.active_workers == 0u);
  RC_ASSERT(o.quiescent);
}

RC_GTEST_PROP(FlushManagerProperties, ExactlyOneFinalOutcomePerTaskAndCountersAddUp, ()) {
  const Workload w = *gen_workload();
  const Observed o = run(w);
  RC_ASSERT(o.counters_added_up);
  for (std::size_t i = 0; i < w.tasks.size(); ++i) {
    const auto it = o.outcomes.find(i);
    const std::size_t n = it == o.outcomes.end() ? 0 : it->second.size();
    RC_ASSERT(n == (o.accepted[i].has_value() ? 1u : 0u));
    if (n == 1) RC_ASSERT(it->second[0].id == *o.accepted[i]);
  }
  const FlushStats& s = o.final_stats;
  RC_ASSERT(s.submitted == accepted_count(o));
  RC_ASSERT(s.submitted == s.succeeded + s.failed + s.timed_out + s.cancelled);
  RC_ASSERT(s.submitted + s.rejected() == w.tasks.size());
  RC_ASSERT(s.started == o.attempts.size());
  RC_ASSERT(s.retried + (s.started - s.retried) == s.started);
}

RC_GTEST_PROP(FlushManagerProperties, BoundsHoldAtEveryStep, ()) {
  const Observed o = run(*gen_workload());
  RC_ASSERT(o.bounds_held);
}

RC_GTEST_PROP(FlushManagerProperties, DrainHandsBackExactlyTheUnfinishedTasks, ()) {
  Workload w = *gen_workload();
  if (!w.drain_at_ms) {
    w.drain_at_ms = *rc::gen::inRange(0, 3000);
    w.drain_window_ms = *rc::gen::inRange(0, 5000);
  }
  const Observed o = run(w);
  RC_ASSERT(o.report.has_value());
  std::set<TaskId> unfinished;
  for (const auto& u : o.report->unfinished) {
    RC_ASSERT(static_cast<bool>(u.payload));
    const auto index = *std::static_pointer_cast<std::size_t>(u.payload);
    RC_ASSERT(o.accepted[index].has_value());
    RC_ASSERT(*o.accepted[index] == u.id);
    unfinished.insert(u.id);
  }
  RC_ASSERT(unfinished.size() == o.report->unfinished.size());
  for (const auto& [i, outs] : o.outcomes) {
    const bool cancelled = outs.at(0).status == TaskStatus::Cancelled;
    RC_ASSERT(cancelled == unfinished.contains(outs.at(0).id));
  }
  RC_ASSERT(o.report->completed_in_time == unfinished.empty());
}

}  // namespace
}  // namespace memfuse
