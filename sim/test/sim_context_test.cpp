// SimContext and SimRuntime: Asio executor semantics on virtual time.
//
// Method: each test drives a fresh simulator with a fixed seed and asserts on
// the order handlers ran in (a log of integers) and on the virtual clock. The
// random and pct strategies are used where the property must hold under every
// interleaving (strand FIFO), fifo where an exact order is the point.
#include "memfuse/sim/sim_context.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "memfuse/sim/sim_runtime.h"
#include "memfuse/sim/small_task.h"

namespace memfuse::sim {
namespace {

namespace asio = boost::asio;
using ::testing::ElementsAre;
using namespace std::chrono_literals;

SimOptions with(Strategy strategy, std::uint64_t seed = 7) {
  SimOptions o;
  o.strategy = strategy;
  o.seed = seed;
  o.trace_mode = Trace::Mode::Full;
  return o;
}

TEST(SimExecutor, PostNeverRunsInline) {
  SimRuntime rt(with(Strategy::Fifo));
  std::vector<int> log;
  asio::post(rt.executor().get(), [&] {
    asio::post(rt.executor().get(), [&] { log.push_back(2); });
    log.push_back(1);
  });
  EXPECT_TRUE(log.empty()) << "post from outside must not run inline";
  EXPECT_TRUE(rt.run_until_quiescent(100).quiescent);
  EXPECT_THAT(log, ElementsAre(1, 2));
}

TEST(SimExecutor, DispatchRunsInlineInsideAHandlerAndQueuesOutside) {
  SimRuntime rt(with(Strategy::Fifo));
  std::vector<int> log;
  asio::dispatch(rt.executor().get(), [&] { log.push_back(0); });
  EXPECT_TRUE(log.empty()) << "dispatch from outside the context queues";
  asio::post(rt.executor().get(), [&] {
    asio::dispatch(rt.executor().get(), [&] { log.push_back(1); });
    log.push_back(2);
  });
  (void)rt.run_until_quiescent(100);
  EXPECT_THAT(log, ElementsAre(0, 1, 2));
}

TEST(SimExecutor, DeferQueuesLikePost) {
  SimRuntime rt(with(Strategy::Fifo));
  std::vector<int> log;
  asio::post(rt.executor().get(), [&] {
    asio::defer(rt.executor().get(), [&] { log.push_back(2); });
    log.push_back(1);
  });
  (void)rt.run_until_quiescent(100);
  EXPECT_THAT(log, ElementsAre(1, 2));
}

TEST(SimExecutor, WorksAsAnyIoExecutorAndDirectly) {
  SimContext ctx(SchedulerOptions{});
  asio::any_io_executor any = ctx.get_executor();
  int n = 0;
  asio::post(any, [&] { ++n; });
  asio::post(ctx.get_executor(), [&] { ++n; });
  EXPECT_EQ(&asio::query(any, asio::execution::context), &ctx);
  (void)ctx.run_until_quiescent(10);
  EXPECT_EQ(n, 2);
}

class StrandOrder : public ::testing::TestWithParam<Strategy> {};

TEST_P(StrandOrder, HandlersOnOneStrandRunInPostOrderUnderEveryStrategy) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    SimRuntime rt(with(GetParam(), seed));
    auto strand = asio::make_strand(rt.executor().get());
    std::vector<int> on_strand;
    std::vector<int> elsewhere;
    for (int i = 0; i < 50; ++i) {
      asio::post(strand, [&, i] { on_strand.push_back(i); });
      asio::post(rt.executor().get(), [&, i] { elsewhere.push_back(i); });
    }
    (void)rt.run_until_quiescent(10'000);
    ASSERT_EQ(on_strand.size(), 50u);
    for (int i = 0; i < 50; ++i) {
      ASSERT_EQ(on_strand[static_cast<std::size_t>(i)], i) << "seed " << seed;
    }
    ASSERT_EQ(elsewhere.size(), 50u);
  }
}

INSTANTIATE_TEST_SUITE_P(AllStrategies, StrandOrder,
                         ::testing::Values(Strategy::Fifo, Strategy::Random, Strategy::Pct),
                         [](const auto& p) { return std::string(to_string(p.param)); });

TEST(SimScheduler, RandomStrategyReordersUnrelatedHandlers) {
  std::set<std::vector<int>> orders;
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    SimRuntime rt(with(Strategy::Random, seed));
    std::vector<int> log;
    for (int i = 0; i < 5; ++i) asio::post(rt.executor().get(), [&, i] { log.push_back(i); });
    (void)rt.run_until_quiescent(100);
    orders.insert(log);
  }
  EXPECT_GT(orders.size(), 5u);
}

TEST(SimScheduler, FifoRunsInPostOrder) {
  SimRuntime rt(with(Strategy::Fifo, 99));
  std::vector<int> log;
  for (int i = 0; i < 5; ++i) asio::post(rt.executor().get(), [&, i] { log.push_back(i); });
  (void)rt.run_until_quiescent(100);
  EXPECT_THAT(log, ElementsAre(0, 1, 2, 3, 4));
}

TEST(SimTimers, FireInVirtualTimeOrderAndTheClockJumps) {
  SimRuntime rt(with(Strategy::Random));
  const TimePoint t0 = rt.now();
  std::vector<std::pair<int, Duration>> log;
  std::vector<std::unique_ptr<Timer>> timers;
  for (int ms : {30, 10, 20, 10, 0}) {
    timers.push_back(rt.make_timer(rt.executor()));
    timers.back()->async_wait_until(t0 + std::chrono::milliseconds(ms), [&, ms](std::error_code ec) {
      ASSERT_FALSE(ec);
      log.emplace_back(ms, rt.now() - t0);
    });
  }
  const RunResult r = rt.run_until_quiescent(100);
  ASSERT_TRUE(r.quiescent) << r.to_string();
  ASSERT_EQ(log.size(), 5u);
  for (std::size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(log[i].second, std::chrono::milliseconds(log[i].first)) << "fires exactly at its deadline";
    if (i > 0) {
      EXPECT_LE(log[i - 1].first, log[i].first) << "virtual-time order";
    }
  }
  EXPECT_EQ(rt.now() - t0, 30ms);
}

TEST(SimTimers, CancelCompletesWithOperationAborted) {
  SimRuntime rt(with(Strategy::Fifo));
  auto timer = rt.make_timer(rt.executor());
  std::error_code got;
  int calls = 0;
  timer->async_wait_until(rt.now() + 1s, [&](std::error_code ec) {
    got = ec;
    ++calls;
  });
  EXPECT_TRUE(timer->cancel());
  EXPECT_FALSE(timer->cancel()) << "nothing outstanding any more";
  EXPECT_EQ(calls, 0) << "the cancellation is posted, not run inline";
  (void)rt.run_until_quiescent(100);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got, std::errc::operation_canceled);
  EXPECT_EQ(got.value(), boost::asio::error::operation_aborted) << "the same errno as Asio's";
  EXPECT_EQ(rt.now(), rt.options().start) << "a cancelled timer does not move the clock";
}

TEST(SimTimers, ATimerCompletesOnTheStrandItWasMadeFor) {
  SimRuntime rt(with(Strategy::Random, 3));
  auto strand = asio::make_strand(rt.executor().get());
  Executor on_strand{asio::any_io_executor(strand)};
  auto timer = rt.make_timer(on_strand);
  bool ran_on_strand = false;
  timer->async_wait_until(rt.now() + 5ms,
                          [&](std::error_code) { ran_on_strand = strand.running_in_this_thread(); });
  (void)rt.run_until_quiescent(100);
  EXPECT_TRUE(ran_on_strand);
}

TEST(SimTimers, DestroyingAPendingTimerCancelsIt) {
  SimRuntime rt(with(Strategy::Fifo));
  std::error_code got;
  {
    auto timer = rt.make_timer(rt.executor());
    timer->async_wait_until(rt.now() + 1s, [&](std::error_code ec) { got = ec; });
  }
  (void)rt.run_until_quiescent(100);
  EXPECT_EQ(got, std::errc::operation_canceled);
}

// Regression: a deadline that has fired but whose handler has not run yet is
// still delivered with success when the timer is re-armed or destroyed first
// (found by the FlushManager properties; asio::steady_timer behaves so).
TEST(SimTimers, AFiredWaitIsDeliveredEvenIfTheTimerIsReArmedOrDestroyedFirst) {
  SimRuntime rt(with(Strategy::Fifo));
  auto timer = rt.make_timer(rt.executor());
  auto doomed = rt.make_timer(rt.executor());
  std::vector<std::string> log;
  const TimePoint t = rt.now() + 1s;
  // The first event due at t re-arms `timer` and destroys `doomed`, whose
  // deadlines (also t) have already fired into the ready set.
  rt.context().schedule_at(t, [&] {
    EXPECT_FALSE(timer->cancel()) << "already fired: not cancellable";
    timer->async_wait_until(rt.now() + 1s, [&](std::error_code ec) {
      log.push_back(ec ? "second cancelled" : "second ok");
    });
    doomed.reset();
  }, "test");
  timer->async_wait_until(t, [&](std::error_code ec) { log.push_back(ec ? "first cancelled" : "first ok"); });
  doomed->async_wait_until(t, [&](std::error_code ec) { log.push_back(ec ? "doomed cancelled" : "doomed ok"); });
  (void)rt.run_until_quiescent(100);
  EXPECT_THAT(log, ElementsAre("first ok", "doomed ok", "second ok"));
}

TEST(SimClock, NeverGoesBackwards) {
  SimRuntime rt(with(Strategy::Random, 11));
  TimePoint last = rt.now();
  bool monotonic = true;
  std::vector<std::unique_ptr<Timer>> timers;
  for (int i = 0; i < 200; ++i) {
    timers.push_back(rt.make_timer(rt.executor()));
    const auto at = rt.now() + std::chrono::microseconds(rt.random().uniform(10'000));
    timers.back()->async_wait_until(at, [&](std::error_code) {
      monotonic = monotonic && rt.now() >= last;
      last = rt.now();
    });
  }
  (void)rt.run_until_quiescent(10'000);
  EXPECT_TRUE(monotonic);
}

TEST(SimRun, RunForAdvancesExactlyAndRunsOnlyWhatIsDue) {
  SimRuntime rt(with(Strategy::Fifo));
  const TimePoint t0 = rt.now();
  int fired = 0;
  auto a = rt.make_timer(rt.executor());
  auto b = rt.make_timer(rt.executor());
  a->async_wait_until(t0 + 1s, [&](std::error_code) { ++fired; });
  b->async_wait_until(t0 + 3s, [&](std::error_code) { ++fired; });
  RunResult r = rt.run_for(2s);
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(rt.now(), t0 + 2s);
  EXPECT_FALSE(r.quiescent);
  r = rt.run_for(2s);
  EXPECT_EQ(fired, 2);
  EXPECT_EQ(rt.now(), t0 + 4s);
  EXPECT_TRUE(r.quiescent);
}

TEST(SimRun, AnEndlessWorkloadIsALivenessFailureListingWhatWaits) {
  SimRuntime rt(with(Strategy::Random));
  auto timer = rt.make_timer(rt.executor());
  std::function<void(std::error_code)> tick = [&](std::error_code) {
    timer->async_wait_until(rt.now() + 1s, [&](std::error_code ec) { tick(ec); });
  };
  tick({});
  const RunResult r = rt.run_until_quiescent(1000);
  EXPECT_FALSE(r.quiescent);
  EXPECT_TRUE(r.budget_exhausted);
  EXPECT_EQ(r.events, 1000u);
  ASSERT_FALSE(r.pending.empty());
  EXPECT_THAT(r.to_string(), ::testing::HasSubstr("LIVENESS FAILURE"));
  EXPECT_THAT(r.pending.front(), ::testing::HasSubstr("timer at t="));
}

TEST(SimBlocking, CompletesAfterTheModelledLatencyOnTheCallersExecutor) {
  SimRuntime rt(with(Strategy::Fifo));
  rt.set_blocking_model([](std::string_view kind, Random&) {
    return BlockingPlan{kind == "slow" ? Duration(45s) : Duration(2ms)};
  });
  const TimePoint t0 = rt.now();
  std::vector<std::pair<std::string, Duration>> done;
  bool ran = false;
  rt.blocking().submit("slow", rt.executor(), [&](const CancelToken&) { ran = true; },
                       [&](std::error_code ec) {
                         EXPECT_FALSE(ec);
                         done.emplace_back("slow", rt.now() - t0);
                       });
  EXPECT_TRUE(ran) << "in simulation the work runs inline, at submission";
  rt.blocking().submit("fast", rt.executor(), [](const CancelToken&) {},
                       [&](std::error_code) { done.emplace_back("fast", rt.now() - t0); });
  (void)rt.run_until_quiescent(100);
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0], std::make_pair(std::string("fast"), Duration(2ms)));
  EXPECT_EQ(done[1], std::make_pair(std::string("slow"), Duration(45s)));
}

TEST(SimBlocking, AHangNeverCompletesUntilCancelled) {
  SimRuntime rt(with(Strategy::Fifo));
  rt.set_blocking_model([](std::string_view, Random&) { return BlockingPlan{{}, true, false}; });
  bool ran = false;
  int calls = 0;
  std::error_code got;
  bool interrupted = false;
  auto handle = rt.blocking().submit(
      "sqlite.write", rt.executor(),
      [&](const CancelToken&) { ran = true; },
      [&](std::error_code ec) {
        got = ec;
        ++calls;
      });
  RunResult r = rt.run_until_quiescent(100);
  EXPECT_TRUE(r.quiescent);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(rt.hung_operations(), 1u);
  ASSERT_EQ(r.pending.size(), 1u);
  EXPECT_THAT(r.pending[0], ::testing::HasSubstr("hung blocking op #1: sqlite.write"));
  EXPECT_FALSE(ran) << "run_work=false: the call hung before its effect";
  handle->cancel();
  handle->cancel();  // idempotent
  (void)rt.run_until_quiescent(100);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got, std::errc::operation_canceled);
  EXPECT_EQ(rt.hung_operations(), 0u);
  (void)interrupted;
}

TEST(SimBlocking, CancelBeforeTheLatencyEndsCompletesOnceWithCancelledAndRunsTheInterrupt) {
  SimRuntime rt(with(Strategy::Fifo));
  rt.set_blocking_model([](std::string_view, Random&) { return BlockingPlan{10s}; });
  int calls = 0;
  std::error_code got;
  bool interrupted = false;
  auto handle = rt.blocking().submit(
      "sqlite.write", rt.executor(),
      [&](const CancelToken& token) { token.on_cancel([&] { interrupted = true; }); },
      [&](std::error_code ec) {
        got = ec;
        ++calls;
      });
  (void)rt.run_for(1s);
  handle->cancel();
  (void)rt.run_until_quiescent(100);
  EXPECT_EQ(calls, 1) << "exactly once, even though the latency timer was armed";
  EXPECT_EQ(got, std::errc::operation_canceled);
  EXPECT_TRUE(interrupted);
  EXPECT_EQ(rt.now() - rt.options().start, 1s) << "the cancelled latency timer never fired";
}

TEST(SimTrace, ExportsValidChromeTraceJson) {
  SimRuntime rt(with(Strategy::Random));
  rt.trace().name_track(1, "writer");
  asio::post(rt.executor().get(), [&] {
    rt.app_event("flush started", 5);
    rt.fault_event("sqlite.write: SQLITE_IOERR");
  });
  auto timer = rt.make_timer(rt.executor());
  timer->async_wait_until(rt.now() + 1ms, [](std::error_code) {});
  rt.blocking().submit("sqlite.write", rt.executor(), [](const CancelToken&) {},
                       [](std::error_code) {});
  (void)rt.run_until_quiescent(100);
  const auto path = std::filesystem::temp_directory_path() / "memfuse_sim_trace_test.json";
  ASSERT_TRUE(rt.trace().write_chrome_json(path).has_value());
  std::ifstream file(path);
  const auto doc = nlohmann::json::parse(file);  // throws (fails the test) if not valid JSON
  std::filesystem::remove(path);
  ASSERT_TRUE(doc.contains("traceEvents"));
  ASSERT_TRUE(doc["traceEvents"].is_array());
  std::set<std::string> phases;
  bool fault_is_instant = false;
  bool named_writer = false;
  for (const auto& e : doc["traceEvents"]) {
    ASSERT_TRUE(e.contains("ph") && e.contains("pid") && e.contains("tid") && e.contains("name"));
    phases.insert(e["ph"].get<std::string>());
    if (e["ph"] != "M") {
      ASSERT_TRUE(e["ts"].is_number());
    }
    if (e["name"] == "sqlite.write: SQLITE_IOERR") fault_is_instant = e["ph"] == "i";
    if (e["ph"] == "M" && e["args"]["name"] == "writer") named_writer = true;
  }
  EXPECT_TRUE(phases.contains("X"));
  EXPECT_TRUE(phases.contains("i"));
  EXPECT_TRUE(phases.contains("M"));
  EXPECT_TRUE(fault_is_instant);
  EXPECT_TRUE(named_writer);
  EXPECT_EQ(doc["otherData"]["trace_hash"], fmt::format("{:#018x}", rt.trace().hash()));
}

TEST(SimTrace, BoundedModeKeepsTheLastEventsButHashesAll) {
  Trace bounded(Trace::Mode::Bounded, 4);
  Trace full(Trace::Mode::Full);
  Trace hash_only(Trace::Mode::HashOnly);
  for (std::uint64_t i = 0; i < 10; ++i) {
    for (Trace* t : {&bounded, &full, &hash_only}) {
      t->record(EventKind::Run, TimePoint(std::chrono::nanoseconds(i)), i, 1, 0);
    }
  }
  bounded.record(EventKind::App, TimePoint(10ns), 10, 1, 0, "label");
  full.record(EventKind::App, TimePoint(10ns), 10, 1, 0, "label");
  hash_only.record(EventKind::App, TimePoint(10ns), 10, 1, 0, "label");
  const auto kept = bounded.events();
  ASSERT_EQ(kept.size(), 4u);
  EXPECT_EQ(kept[0].seq, 7u);
  EXPECT_EQ(kept[3].seq, 10u);
  EXPECT_EQ(kept[3].label, "label");
  EXPECT_EQ(full.events().size(), 11u);
  EXPECT_TRUE(hash_only.events().empty());
  EXPECT_EQ(bounded.hash(), full.hash());
  EXPECT_EQ(full.hash(), hash_only.hash());
  Trace other(Trace::Mode::HashOnly);
  other.record(EventKind::App, TimePoint(10ns), 10, 1, 0, "labe1");
  Trace same(Trace::Mode::HashOnly);
  same.record(EventKind::App, TimePoint(10ns), 10, 1, 0, "label");
  EXPECT_NE(other.hash(), same.hash()) << "the label's text enters the hash";
}

TEST(SimLogger, StampsVirtualTime) {
  SimRuntime rt(with(Strategy::Fifo));
  const Logger log = rt.make_logger("sim", LogLevel::Info);
  EXPECT_TRUE(log.enabled(LogLevel::Info));
  EXPECT_FALSE(log.enabled(LogLevel::Debug));
  testing::internal::CaptureStderr();
  log.info("hello");
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, ::testing::HasSubstr("[t=1750168589.000000s] [sim] [info] hello"));
}

TEST(SmallTask, HoldsSmallAndLargeCallablesAndMovesThem) {
  int calls = 0;
  SmallTask small([&calls] { ++calls; });
  std::array<char, 200> big{};
  big[0] = 1;
  SmallTask large([&calls, big] { calls += big[0]; });
  SmallTask moved = std::move(large);
  EXPECT_FALSE(static_cast<bool>(large));  // NOLINT(bugprone-use-after-move)
  small();
  moved();
  EXPECT_EQ(calls, 2);
  auto counter = std::make_shared<int>(0);
  {
    SmallTask holds([counter] {});
    EXPECT_EQ(counter.use_count(), 2);
  }
  EXPECT_EQ(counter.use_count(), 1) << "destroying a task destroys its callable";
}

}  // namespace
}  // namespace memfuse::sim
