// FlushManager on the simulated runtime: exact virtual-time assertions about
// order, workers, timeouts, retries, admission, drain, the tick and stats.
//
// Method: attempts are scripted (sim/testing/scripted_sink.h) to succeed,
// fail, hang or complete late after a fixed latency; the simulator runs with
// the fifo scheduler unless the point is an interleaving, so every instant in
// the assertions is exact.
#include "memfuse/flush_manager.h"

#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "memfuse/sim/sim_runtime.h"
#include "scripted_sink.h"

namespace memfuse {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;
using testing::Behaviour;
using testing::Script;
using testing::scripted_attempt;

FlushManagerConfig quiet_config(int workers = 1) {
  FlushManagerConfig c;
  c.max_workers = workers;
  c.enable_auto_flush = false;
  c.retry.jitter = 0.0;
  return c;
}

struct Harness {
  explicit Harness(FlushManagerConfig config, sim::Strategy strategy = sim::Strategy::Fifo)
      : rt({.seed = 3, .strategy = strategy}) {
    auto m = FlushManager::create(rt, config);
    EXPECT_TRUE(m.has_value()) << m.error().to_string();
    manager = std::move(*m);
  }

  // Submits a task whose attempt logs its start, then plays `script`.
  Result<TaskId> submit(const std::string& name, Priority p, Script script,
                        std::optional<Duration> timeout = std::nullopt) {
    TaskSpec spec;
    spec.kind = "test";
    spec.priority = p;
    spec.timeout = timeout;
    spec.payload = std::make_shared<std::string>(name);
    spec.attempt = [this, name, inner = scripted_attempt(rt, std::move(script))](
                       std::shared_ptr<Attempt> a) mutable {
      starts.push_back(name);
      start_times[name].push_back(rt.now() - rt.options().start);
      inner(std::move(a));
    };
    spec.on_complete = [this, name](const TaskOutcome& o, std::shared_ptr<void> payload) {
      outcomes[name].push_back(o);
      EXPECT_EQ(*std::static_pointer_cast<std::string>(payload), name) << "payload handed back";
    };
    return manager->submit(std::move(spec));
  }

  void run() {
    const auto r = rt.run_until_quiescent(1'000'000);
    ASSERT_TRUE(r.quiescent) << r.to_string();
  }

  sim::SimRuntime rt;
  std::unique_ptr<FlushManager> manager;
  std::vector<std::string> starts;
  std::map<std::string, std::vector<Duration>> start_times;
  std::map<std::string, std::vector<TaskOutcome>> outcomes;
};

Script ok(Duration latency = 1s) { return Script{{Behaviour::Succeed}, latency}; }

// "t<i>". (Not "t" + std::to_string(i): g++ 12 at -O2 warns falsely, bug 105329.)
std::string task_name(int i) {
  std::string name = "t";
  name.append(std::to_string(i));
  return name;
}

TEST(FlushManager, TaskIdIsKindMillisecondsSequence) {
  Harness h(quiet_config());
  auto a = h.submit("a", Priority::Normal, ok());
  auto b = h.submit("b", Priority::Normal, ok());
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, "test-1750168589000-1");
  EXPECT_EQ(*b, "test-1750168589000-2");
  h.run();
}

// An attempt carries its task's id, and keeps it after the task has finished
// and the manager has reused the task's object (and its id buffer) for a
// later submission; the longest kind gives the longest id.
TEST(FlushManager, AnAttemptKeepsItsTaskIdAfterTheTaskIsReused) {
  Harness h(quiet_config(1));
  std::vector<std::shared_ptr<Attempt>> held;
  const auto submit = [&](std::string kind) {
    TaskSpec spec;
    spec.kind = std::move(kind);
    spec.attempt = [&](std::shared_ptr<Attempt> a) {
      held.push_back(a);
      a->complete({});
    };
    return h.manager->submit(std::move(spec));
  };
  const std::string longest(64, 'k');
  auto first = submit(longest);
  ASSERT_TRUE(first);
  h.run();
  auto second = submit("short");  // fills the finished first task's object
  ASSERT_TRUE(second);
  h.run();
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0]->task_id(), *first);
  EXPECT_EQ(held[0]->task_id().size(), 64u + 1 + 13 + 1 + 1);
  EXPECT_EQ(held[1]->task_id(), *second);
  EXPECT_EQ(h.manager->stats().succeeded, 2u);
}

TEST(FlushManager, RunsByPriorityThenSubmissionOrder) {
  Harness h(quiet_config(1));
  ASSERT_TRUE(h.submit("blocker", Priority::Low, ok()));
  (void)h.rt.run_for(0s);  // the blocker starts and occupies the only worker
  for (auto [name, p] : std::vector<std::pair<std::string, Priority>>{
           {"low1", Priority::Low}, {"high1", Priority::High}, {"normal1", Priority::Normal},
           {"critical1", Priority::Critical}, {"high2", Priority::High}, {"low2", Priority::Low},
           {"normal2", Priority::Normal}}) {
    ASSERT_TRUE(h.submit(name, p, ok()));
  }
  h.run();
  EXPECT_THAT(h.starts, ElementsAre("blocker", "critical1", "high1", "high2", "normal1",
                                    "normal2", "low1", "low2"));
}

// A payload with no ordering, no copy: it compiles and is never looked at.
struct Unordered {
  std::unique_ptr<int> value;
  bool operator<(const Unordered&) const = delete;
};

TEST(FlushManager, AcceptsAPayloadThatCannotBeCompared) {
  Harness h(quiet_config(1));
  std::vector<int> seen;
  for (int i = 0; i < 5; ++i) {
    auto payload = std::make_shared<Unordered>(Unordered{std::make_unique<int>(i)});
    auto spec = make_task(
        "typed", Priority::Normal, payload,
        [&](std::shared_ptr<Attempt> a, Unordered& p) {
          seen.push_back(*p.value);
          a->complete({});
        },
        [](const TaskOutcome& o, std::shared_ptr<Unordered> p) {
          EXPECT_EQ(o.status, TaskStatus::Success);
          EXPECT_NE(p, nullptr);
        });
    ASSERT_TRUE(h.manager->submit(std::move(spec)));
  }
  h.run();
  EXPECT_THAT(seen, ElementsAre(0, 1, 2, 3, 4)) << "equal priorities in submission order";
}

TEST(FlushManager, NeverRunsMoreThanMaxWorkersAtOnce) {
  Harness h(quiet_config(3));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(h.submit(task_name(i), Priority::Normal, ok(10s)));
  std::size_t max_active = 0;
  while (h.rt.context().run_one()) max_active = std::max(max_active, h.manager->stats().active_workers);
  EXPECT_EQ(max_active, 3u);
  // 10 tasks of 10 s on 3 workers: starts at 0, 0, 0, 10, 10, 10, 20, 20, 20, 30.
  EXPECT_EQ(h.start_times["t9"][0], 30s);
  EXPECT_EQ(h.manager->stats().succeeded, 10u);
}

TEST(FlushManager, ATimeoutFreesTheWorkerAtTheDeadlineAndALateCompletionChangesNothing) {
  auto config = quiet_config(1);
  config.retry.max_retries = 0;
  Harness h(config);
  ASSERT_TRUE(h.submit("slow", Priority::High, Script{{Behaviour::CompleteLate}, 50s}, 30s));
  ASSERT_TRUE(h.submit("next", Priority::Normal, ok()));
  h.run();
  ASSERT_EQ(h.outcomes["slow"].size(), 1u);
  EXPECT_EQ(h.outcomes["slow"][0].status, TaskStatus::TimedOut);
  EXPECT_EQ(h.outcomes["slow"][0].error->code(), ErrorCode::Timeout);
  EXPECT_EQ(h.start_times["next"][0], 30s) << "the worker is free at the deadline itself";
  EXPECT_EQ(h.outcomes["next"][0].status, TaskStatus::Success);
  const FlushStats s = h.manager->stats();
  EXPECT_EQ(s.late_completions, 1u);
  EXPECT_EQ(s.timed_out, 1u);
  EXPECT_EQ(s.attempt_timeouts, 1u);
}

TEST(FlushManager, AHungAttemptIsCancelledAtItsDeadline) {
  auto config = quiet_config(1);
  config.retry.max_retries = 0;
  Harness h(config);
  bool hook_ran = false;
  TaskSpec spec;
  spec.kind = "hang";
  spec.timeout = 5s;
  spec.attempt = [&](std::shared_ptr<Attempt> a) { a->on_cancel([&] { hook_ran = true; }); };
  ASSERT_TRUE(h.manager->submit(std::move(spec)));
  h.run();
  EXPECT_TRUE(hook_ran);
  EXPECT_EQ(h.rt.now() - h.rt.options().start, 5s);
  EXPECT_EQ(h.manager->stats().timed_out, 1u);
}

TEST(FlushManager, RetriesWithExponentialBackoffAndKeepsTheOriginalSequence) {
  auto config = quiet_config(1);
  config.retry.max_retries = 3;
  config.retry.backoff_base = 1s;
  Harness h(config);
  ASSERT_TRUE(h.submit("flaky", Priority::Normal,
                       Script{{Behaviour::FailRetryable, Behaviour::FailRetryable, Behaviour::Succeed},
                              100ms}));
  ASSERT_TRUE(h.submit("later", Priority::Normal, ok(5s)));
  h.run();
  // flaky: attempt at 0, fails at 0.1 s; "later" runs 0.1..5.1 s; flaky's retry
  // (due at 1.1 s) waits for the worker, then runs before anything submitted after it.
  EXPECT_THAT(h.starts, ElementsAre("flaky", "later", "flaky", "flaky"));
  ASSERT_EQ(h.outcomes["flaky"].size(), 1u);
  EXPECT_EQ(h.outcomes["flaky"][0].status, TaskStatus::Success);
  EXPECT_EQ(h.outcomes["flaky"][0].attempts, 3);
  EXPECT_EQ(h.start_times["flaky"][1], 5100ms);
  EXPECT_EQ(h.start_times["flaky"][2], 5200ms + 2s) << "second backoff is 2 s after the 5.2 s failure";
  EXPECT_EQ(h.manager->stats().retried, 2u);
}

TEST(FlushManager, ARetriedTaskRunsBeforeLaterWorkOfItsPriority) {
  auto config = quiet_config(1);
  config.retry.backoff_base = 1s;
  Harness h(config);
  ASSERT_TRUE(h.submit("first", Priority::Normal,
                       Script{{Behaviour::FailRetryable, Behaviour::Succeed}, 100ms}));
  (void)h.rt.run_for(0s);  // "first" starts; it fails at 0.1 s and is due again at 1.1 s
  ASSERT_TRUE(h.submit("blocker", Priority::High, ok(3s)));  // runs 0.1 .. 3.1 s
  ASSERT_TRUE(h.submit("later", Priority::Normal, ok()));
  h.run();
  // At 3.1 s the retry of "first" (sequence 1) and "later" (sequence 3) both
  // wait; the retry keeps its place ahead of later work of its priority.
  EXPECT_THAT(h.starts, ElementsAre("first", "blocker", "first", "later"));
}

TEST(FlushManager, ANonRetryableErrorFailsAtOnce) {
  Harness h(quiet_config(1));
  ASSERT_TRUE(h.submit("bad", Priority::Normal, Script{{Behaviour::FailFinal}, 1s}));
  h.run();
  ASSERT_EQ(h.outcomes["bad"].size(), 1u);
  EXPECT_EQ(h.outcomes["bad"][0].status, TaskStatus::Failed);
  EXPECT_EQ(h.outcomes["bad"][0].attempts, 1);
  EXPECT_EQ(h.outcomes["bad"][0].error->code(), ErrorCode::InvalidArgument);
}

TEST(FlushManager, RetriesStopAtMaxRetries) {
  auto config = quiet_config(1);
  config.retry.max_retries = 2;
  config.retry.backoff_base = 10ms;
  Harness h(config);
  ASSERT_TRUE(h.submit("down", Priority::Normal, Script{{Behaviour::FailRetryable}, 1s}));
  h.run();
  ASSERT_EQ(h.outcomes["down"].size(), 1u);
  EXPECT_EQ(h.outcomes["down"][0].status, TaskStatus::Failed);
  EXPECT_EQ(h.outcomes["down"][0].attempts, 3);
}

TEST(FlushManager, RetriesStopAtTheDeliveryDeadline) {
  auto config = quiet_config(1);
  config.retry.max_retries = 100;
  config.retry.backoff_base = 1s;
  config.retry.backoff_cap = 1s;
  config.delivery_deadline = 10s;
  config.default_timeout = 2s;
  Harness h(config);
  ASSERT_TRUE(h.submit("down", Priority::Normal, Script{{Behaviour::FailRetryable}, 1s}));
  h.run();
  ASSERT_EQ(h.outcomes["down"].size(), 1u);
  EXPECT_EQ(h.outcomes["down"][0].status, TaskStatus::Failed);
  EXPECT_EQ(h.outcomes["down"][0].attempts, 5) << "attempts at 0, 2, 4, 6, 8 s; the next would pass 10 s";
}

TEST(FlushManager, AFullQueueRejectsWithQueueFull) {
  auto config = quiet_config(1);
  config.max_queue_size = 2;
  Harness h(config);
  ASSERT_TRUE(h.submit("a", Priority::Normal, ok()));
  ASSERT_TRUE(h.submit("b", Priority::Normal, ok()));
  auto c = h.submit("c", Priority::Critical, ok());
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code(), ErrorCode::QueueFull);
  EXPECT_TRUE(c.error().retryable());
  EXPECT_THAT(c.error().message(), HasSubstr("buffer.flush_manager.max_queue_size"));
  h.run();
  EXPECT_EQ(h.manager->stats().rejected_queue_full, 1u);
  EXPECT_TRUE(h.submit("d", Priority::Normal, ok())) << "space again once tasks finish";
  h.run();
}

// A task's place in the bound is free by the time its completion callback
// runs: a callback that submits the next task into a queue of one is
// accepted, whether the attempt completed at once (inside the attempt
// function, on the strand) or later (from a timer, through intake), and
// whether it succeeded or failed.
TEST(FlushManager, ACompletionCallbackFindsItsTasksPlaceFree) {
  for (const bool at_once : {true, false}) {
    for (const bool succeed : {true, false}) {
      SCOPED_TRACE(::testing::Message() << (at_once ? "at once, " : "after 1 s, ")
                                      << (succeed ? "success" : "failure"));
      auto config = quiet_config(1);
      config.max_queue_size = 1;
      Harness h(config);
      const Result<void> result =
          succeed ? Result<void>{} : fail(ErrorCode::InvalidArgument, false, "final");
      std::vector<bool> accepted;
      int left = 3;
      std::function<void()> submit_one = [&] {
        TaskSpec spec;
        spec.kind = "chain";
        if (at_once) {
          spec.attempt = [&](std::shared_ptr<Attempt> a) { a->complete(result); };
        } else {
          spec.attempt = scripted_attempt(
              h.rt, Script{{succeed ? Behaviour::Succeed : Behaviour::FailFinal}, 1s});
        }
        spec.on_complete = [&](const TaskOutcome&, std::shared_ptr<void>) {
          if (--left > 0) submit_one();
        };
        accepted.push_back(h.manager->submit(std::move(spec)).has_value());
      };
      submit_one();
      h.run();
      EXPECT_THAT(accepted, ElementsAre(true, true, true));
      EXPECT_EQ(h.manager->stats().rejected_queue_full, 0u);
    }
  }
}

TEST(FlushManager, UnderTheWaitPolicyASubmissionCompletesWhenSpaceFrees) {
  auto config = quiet_config(1);
  config.max_queue_size = 1;
  config.queue_full_policy = QueueFullPolicy::Wait;
  config.queue_full_wait = 5s;
  Harness h(config);
  ASSERT_TRUE(h.submit("a", Priority::Normal, ok(2s)));
  auto b = h.submit("b", Priority::Normal, ok(1s));
  ASSERT_TRUE(b.has_value()) << "accepted: it waits for space instead of failing";
  EXPECT_EQ(h.manager->stats().waiting_admission, 1u);
  h.run();
  EXPECT_EQ(h.start_times["b"][0], 2s);
  EXPECT_EQ(h.outcomes["b"][0].status, TaskStatus::Success);
}

TEST(FlushManager, UnderTheWaitPolicyASubmissionFailsAtItsDeadline) {
  auto config = quiet_config(1);
  config.max_queue_size = 1;
  config.queue_full_policy = QueueFullPolicy::Wait;
  config.queue_full_wait = 5s;
  Harness h(config);
  ASSERT_TRUE(h.submit("a", Priority::Normal, ok(20s)));
  ASSERT_TRUE(h.submit("b", Priority::Normal, ok()));
  (void)h.rt.run_for(6s);  // past b's deadline, a still runs
  ASSERT_EQ(h.outcomes["b"].size(), 1u);
  EXPECT_EQ(h.manager->stats().waiting_admission, 0u);
  // b's place among the waiters is given back at its deadline: c may wait in it.
  EXPECT_TRUE(h.submit("c", Priority::Normal, ok()).has_value());
  h.run();
  ASSERT_EQ(h.outcomes["b"].size(), 1u);
  EXPECT_EQ(h.outcomes["b"][0].status, TaskStatus::Failed);
  EXPECT_EQ(h.outcomes["b"][0].error->code(), ErrorCode::QueueFull);
  EXPECT_EQ(h.outcomes["b"][0].attempts, 0);
  EXPECT_TRUE(h.start_times["b"].empty());
}

TEST(FlushManager, DrainRunsWhatIsQueuedAndThenReports) {
  Harness h(quiet_config(1));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(h.submit(task_name(i), Priority::Normal, ok()));
  std::optional<DrainReport> report;
  h.manager->drain(h.rt.now() + 1h, [&](DrainReport r) { report = std::move(r); });
  auto refused = h.submit("late", Priority::Critical, ok());
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), ErrorCode::ShuttingDown);
  h.run();
  ASSERT_TRUE(report.has_value());
  EXPECT_TRUE(report->completed_in_time);
  EXPECT_TRUE(report->unfinished.empty());
  EXPECT_EQ(h.manager->stats().succeeded, 3u);
  EXPECT_EQ(h.rt.now() - h.rt.options().start, 3s);
}

TEST(FlushManager, AtTheDrainDeadlineEveryUnfinishedTaskIsHandedBackWithItsPayload) {
  Harness h(quiet_config(1));
  ASSERT_TRUE(h.submit("running", Priority::Normal, Script{{Behaviour::Hang}, {}}));
  ASSERT_TRUE(h.submit("queued", Priority::Normal, ok()));
  std::optional<DrainReport> report;
  h.manager->drain(h.rt.now() + 10s, [&](DrainReport r) { report = std::move(r); });
  h.run();
  ASSERT_TRUE(report.has_value());
  EXPECT_FALSE(report->completed_in_time);
  ASSERT_EQ(report->unfinished.size(), 2u);
  EXPECT_EQ(*std::static_pointer_cast<std::string>(report->unfinished[0].payload), "running");
  EXPECT_EQ(report->unfinished[0].attempts, 1);
  EXPECT_EQ(*std::static_pointer_cast<std::string>(report->unfinished[1].payload), "queued");
  EXPECT_EQ(report->unfinished[1].attempts, 0);
  EXPECT_EQ(h.outcomes["running"][0].status, TaskStatus::Cancelled);
  EXPECT_EQ(h.outcomes["queued"][0].status, TaskStatus::Cancelled);
  EXPECT_EQ(h.rt.now() - h.rt.options().start, 10s);
}

TEST(FlushManager, ASecondDrainWithAnEarlierDeadlineWinsAndBothAreAnswered) {
  Harness h(quiet_config(1));
  ASSERT_TRUE(h.submit("hang", Priority::Normal, Script{{Behaviour::Hang}, {}}, 1h));
  std::vector<std::pair<int, Duration>> reports;
  h.manager->drain(h.rt.now() + 1h, [&](DrainReport r) {
    reports.emplace_back(1, h.rt.now() - h.rt.options().start);
    EXPECT_EQ(r.unfinished.size(), 1u);
  });
  h.manager->drain(h.rt.now() + 10s, [&](DrainReport r) {
    reports.emplace_back(2, h.rt.now() - h.rt.options().start);
    EXPECT_EQ(r.unfinished.size(), 1u);
  });
  h.manager->drain(h.rt.now() + 20s, [&](DrainReport) { reports.emplace_back(3, h.rt.now() - h.rt.options().start); });
  h.run();
  ASSERT_EQ(reports.size(), 3u);
  for (const auto& [which, at] : reports) EXPECT_EQ(at, 10s) << "drain " << which;
}

TEST(FlushManager, StopCancelsEverythingAtOnce) {
  Harness h(quiet_config(2));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(h.submit(task_name(i), Priority::Low, ok(5s)));
  (void)h.rt.run_for(1s);
  std::optional<DrainReport> report;
  h.manager->stop([&](DrainReport r) { report = std::move(r); });
  h.run();
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->unfinished.size(), 4u);
  EXPECT_EQ(h.manager->stats().cancelled, 4u);
  EXPECT_EQ(h.manager->stats().late_completions, 0u) << "cancelled attempts' timers were cancelled";
}

TEST(FlushManager, TheAutoFlushTickFiresEveryFlushInterval) {
  auto config = quiet_config();
  config.enable_auto_flush = true;
  config.flush_interval = 60s;
  Harness h(config);
  std::vector<Duration> ticks;
  h.manager->set_tick_handler([&] { ticks.push_back(h.rt.now() - h.rt.options().start); });
  (void)h.rt.run_for(200s);
  EXPECT_THAT(ticks, ElementsAre(60s, 120s, 180s));
  std::optional<DrainReport> report;
  h.manager->stop([&](DrainReport r) { report = std::move(r); });
  h.run();  // quiescent: the tick stops at drain
  EXPECT_TRUE(report.has_value());
}

TEST(FlushManager, NoTickWhenAutoFlushIsDisabled) {
  Harness h(quiet_config());
  int ticks = 0;
  h.manager->set_tick_handler([&] { ++ticks; });
  (void)h.rt.run_for(1000s);
  EXPECT_EQ(ticks, 0);
}

TEST(FlushManager, StatsAddUpAndSerialise) {
  auto config = quiet_config(2);
  config.retry.max_retries = 1;
  config.retry.backoff_base = 10ms;
  config.max_queue_size = 6;
  Harness h(config);
  ASSERT_TRUE(h.submit("ok", Priority::High, ok()));
  ASSERT_TRUE(h.submit("bad", Priority::Normal, Script{{Behaviour::FailFinal}, 1s}));
  ASSERT_TRUE(h.submit("flaky", Priority::Low, Script{{Behaviour::FailRetryable}, 1s}));
  ASSERT_TRUE(h.submit("slow", Priority::Low, Script{{Behaviour::Hang}, {}}, 3s));
  ASSERT_TRUE(h.submit("q1", Priority::Low, ok(10s)));
  ASSERT_TRUE(h.submit("q2", Priority::Low, ok(10s)));
  ASSERT_FALSE(h.submit("over", Priority::Low, ok()));
  auto adds_up = [](const FlushStats& s) {
    return s.submitted == s.succeeded + s.failed + s.timed_out + s.cancelled + s.queue_depth +
                              s.active_workers + s.backing_off + s.waiting_admission;
  };
  while (h.rt.context().run_one()) ASSERT_TRUE(adds_up(h.manager->stats()));
  const FlushStats s = h.manager->stats();
  EXPECT_EQ(s.submitted, 6u);
  EXPECT_EQ(s.succeeded, 3u);
  EXPECT_EQ(s.failed, 2u);
  EXPECT_EQ(s.timed_out, 1u);
  EXPECT_EQ(s.rejected_queue_full, 1u);
  EXPECT_EQ(s.rejected(), 1u);
  EXPECT_EQ(s.submitted_by_priority[0] + s.submitted_by_priority[1] + s.submitted_by_priority[2] +
                s.submitted_by_priority[3],
            s.submitted);
  EXPECT_EQ(s.attempt_latency.count, s.started);
  EXPECT_LE(s.attempt_latency.min, s.attempt_latency.p50);
  EXPECT_LE(s.attempt_latency.p50, s.attempt_latency.p99);
  EXPECT_LE(s.attempt_latency.p99, s.attempt_latency.max);
  const auto j = nlohmann::json::parse(s.to_json());
  EXPECT_EQ(j["submitted"], 6);
  EXPECT_EQ(j["rejected"]["queue_full"], 1);
  EXPECT_EQ(j["by_priority"]["high"]["succeeded"], 1);
  EXPECT_TRUE(j["attempt_latency_ns"].contains("p99"));
}

TEST(FlushManager, BadInputGetsAClearError) {
  sim::SimRuntime rt;
  auto config = quiet_config();
  config.max_workers = 0;
  auto m = FlushManager::create(rt, config);
  ASSERT_FALSE(m.has_value());
  EXPECT_THAT(m.error().message(), HasSubstr("buffer.flush_manager.max_workers: 0 is out of range"));
  config.max_workers = 1;
  config.default_timeout = -1s;
  m = FlushManager::create(rt, config);
  ASSERT_FALSE(m.has_value());
  EXPECT_THAT(m.error().message(), HasSubstr("buffer.flush_manager.default_timeout"));

  Harness h(quiet_config());
  auto zero = h.submit("z", Priority::Normal, ok(), Duration::zero());
  ASSERT_FALSE(zero.has_value());
  EXPECT_EQ(zero.error().code(), ErrorCode::InvalidArgument);
  EXPECT_THAT(zero.error().message(), HasSubstr("timeout"));
  auto bad_priority = h.submit("p", static_cast<Priority>(7), ok());
  ASSERT_FALSE(bad_priority.has_value());
  EXPECT_THAT(bad_priority.error().message(), HasSubstr("priority value 7 is out of range"));
  TaskSpec no_attempt;
  EXPECT_THAT(h.manager->submit(std::move(no_attempt)).error().message(), HasSubstr("no attempt"));
  TaskSpec bad_kind;
  bad_kind.kind = "Bad Kind";
  bad_kind.attempt = [](std::shared_ptr<Attempt>) {};
  EXPECT_THAT(h.manager->submit(std::move(bad_kind)).error().message(), HasSubstr("task kind"));
  EXPECT_EQ(h.manager->stats().rejected_invalid, 4u);
  EXPECT_EQ(h.manager->stats().submitted, 0u);
}

}  // namespace
}  // namespace memfuse

namespace memfuse {
namespace {

TEST(FlushManagerObserver, SeesQueueStartEndAndFinishInOrder) {
  Harness h(quiet_config(1));
  std::vector<std::string> events;
  h.manager->set_observer([&](const FlushEvent& e) {
    static constexpr const char* kNames[] = {"queued", "started", "completed", "timed_out", "finished"};
    events.push_back(std::string(kNames[static_cast<int>(e.kind)]) + ":" + std::to_string(e.seq) + "@" +
                     std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                        e.at - h.rt.options().start).count()));
  });
  ASSERT_TRUE(h.submit("a", Priority::Normal, Script{{Behaviour::Hang, Behaviour::Succeed}, 1s}, 2s));
  h.run();
  // Attempt 1 hangs and times out at 2 s; the retry is queued after the
  // backoff (100 ms, shown as 2 s) and completes 1 s later.
  EXPECT_THAT(events, ElementsAre("queued:1@0", "started:1@0", "timed_out:1@2", "queued:1@2",
                                  "started:1@2", "completed:1@3", "finished:1@3"));
}

}  // namespace
}  // namespace memfuse
