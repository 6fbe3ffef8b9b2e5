// AsioRuntime on real threads: the production side of the runtime seam.
//
// Nothing here asserts a timing threshold. Waits use futures fulfilled by the
// code under test; each has a generous bound only so that a bug fails the test
// instead of hanging CI. Run under the tsan preset (label tsan).
#include "memfuse/asio_runtime.h"

#include <atomic>
#include <future>
#include <latch>
#include <thread>

#include <sched.h>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <gtest/gtest.h>

#include "memfuse/executor.h"
#include "toy_workload.h"

namespace memfuse {
namespace {

using namespace std::chrono_literals;
constexpr auto kBound = 60s;  // a hang guard, not a performance assertion

TEST(AsioRuntime, ToyWorkloadRunsOnRealThreadsAndSeesOnlyWholeBatches) {
  AsioRuntime rt({.io_threads = 4, .blocking_threads = 2});
  for (int run = 0; run < 50; ++run) {
    std::promise<void> finished;
    auto toy = toy::ToyWorkload::create(
        rt, {.steps = 20, .observe_at = 10, .planted_bug = false,
             .on_finished = [&finished] { finished.set_value(); }});
    toy->start();
    ASSERT_EQ(finished.get_future().wait_for(kBound), std::future_status::ready) << "run " << run;
    const auto outcome = toy->outcome();
    EXPECT_TRUE(outcome.finished);
    EXPECT_EQ(outcome.persisted, 20);
    EXPECT_TRUE(outcome.observed == 0 || outcome.observed == 20) << outcome.observed;
    EXPECT_FALSE(outcome.bug_observed);
  }
}

TEST(AsioRuntime, TimerFiresOnItsStrandAndCancelCompletesAsCancelled) {
  AsioRuntime rt({.io_threads = 3});
  auto strand = boost::asio::make_strand(rt.executor().get());
  const Executor on_strand{boost::asio::any_io_executor(strand)};
  auto timer = rt.make_timer(on_strand);
  std::promise<bool> fired;
  const TimePoint before = rt.clock().now();
  timer->async_wait_until(before + 1ms, [&](std::error_code ec) {
    fired.set_value(!ec && strand.running_in_this_thread());
  });
  auto f = fired.get_future();
  ASSERT_EQ(f.wait_for(kBound), std::future_status::ready);
  EXPECT_TRUE(f.get());
  EXPECT_GE(rt.clock().now(), before + 1ms) << "fires no earlier than its deadline";

  auto long_timer = rt.make_timer(on_strand);
  std::promise<std::error_code> cancelled;
  long_timer->async_wait_until(rt.clock().now() + 1h,
                               [&](std::error_code ec) { cancelled.set_value(ec); });
  std::promise<bool> did_cancel;
  boost::asio::post(strand, [&] { did_cancel.set_value(long_timer->cancel()); });
  EXPECT_TRUE(did_cancel.get_future().get());
  auto c = cancelled.get_future();
  ASSERT_EQ(c.wait_for(kBound), std::future_status::ready);
  EXPECT_EQ(c.get(), std::errc::operation_canceled);
}

TEST(AsioRuntime, BlockingWorkRunsOffTheEventLoopAndCompletesOnTheExecutor) {
  AsioRuntime rt({.io_threads = 1, .blocking_threads = 2});
  std::promise<std::thread::id> loop_thread;
  boost::asio::post(rt.executor().get(), [&] { loop_thread.set_value(std::this_thread::get_id()); });
  const auto loop_id = loop_thread.get_future().get();
  std::thread::id work_thread;
  std::promise<std::pair<std::error_code, std::thread::id>> done;
  rt.blocking().submit("test.work", rt.executor(),
                       [&](const CancelToken&) { work_thread = std::this_thread::get_id(); },
                       [&](std::error_code ec) { done.set_value({ec, std::this_thread::get_id()}); });
  auto [ec, done_thread] = done.get_future().get();
  EXPECT_FALSE(ec);
  EXPECT_NE(work_thread, loop_id);
  EXPECT_EQ(done_thread, loop_id) << "completion runs on the event loop's thread";
}

// The runtime's threads are background threads (SCHED_BATCH on Linux) unless
// the option says otherwise; the caller's own thread is left alone.
TEST(AsioRuntime, ItsThreadsRunAsBackgroundThreadsUnlessToldOtherwise) {
  const int caller_policy = sched_getscheduler(0);
  for (const bool background : {true, false}) {
    SCOPED_TRACE(background ? "background_scheduling = true" : "background_scheduling = false");
    AsioRuntime rt({.io_threads = 1, .blocking_threads = 1, .background_scheduling = background});
    std::promise<int> io_policy;
    boost::asio::post(rt.executor().get(), [&] { io_policy.set_value(sched_getscheduler(0)); });
    std::promise<int> blocking_policy;
    std::promise<void> done;
    rt.blocking().submit(
        "test.policy", rt.executor(),
        [&](const CancelToken&) { blocking_policy.set_value(sched_getscheduler(0)); },
        [&](std::error_code) { done.set_value(); });
    done.get_future().wait();
    const int expected = background ? SCHED_BATCH : SCHED_OTHER;
    EXPECT_EQ(io_policy.get_future().get(), expected) << "io thread";
    EXPECT_EQ(blocking_policy.get_future().get(), expected) << "blocking-work thread";
  }
  EXPECT_EQ(sched_getscheduler(0), caller_policy);
}

TEST(AsioRuntime, CancellingQueuedWorkSkipsItAndRunningWorkSeesTheToken) {
  std::latch started(1);
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<bool> interrupted{false};
  std::promise<std::error_code> first_done;
  std::atomic<bool> queued_ran{false};
  std::promise<std::error_code> queued_done;
  AsioRuntime rt({.io_threads = 1, .blocking_threads = 1});
  auto running = rt.blocking().submit(
      "test.block", rt.executor(),
      [&](const CancelToken& token) {
        token.on_cancel([&] { interrupted = true; });
        started.count_down();
        released.wait();
      },
      [&](std::error_code ec) { first_done.set_value(ec); });
  started.wait();
  auto queued = rt.blocking().submit("test.queued", rt.executor(),
                                     [&](const CancelToken&) { queued_ran = true; },
                                     [&](std::error_code ec) { queued_done.set_value(ec); });
  queued->cancel();
  EXPECT_EQ(queued_done.get_future().get(), std::errc::operation_canceled);
  running->cancel();
  EXPECT_TRUE(interrupted.load()) << "cancelling running work calls its interrupt";
  release.set_value();
  EXPECT_EQ(first_done.get_future().get(), std::errc::operation_canceled);
  EXPECT_FALSE(queued_ran.load()) << "queued work that was cancelled never runs";
}

TEST(AsioRuntime, AFullBlockingQueueRefusesInsteadOfGrowing) {
  // Declared before the runtime: completions may still run while it shuts down.
  std::latch started(1);
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<int> completions{0};
  auto count = [&](std::error_code) { ++completions; };
  std::promise<std::error_code> refused;
  AsioRuntime rt({.io_threads = 1, .blocking_threads = 1, .blocking_queue_limit = 2});
  rt.blocking().submit("b", rt.executor(), [&](const CancelToken&) {
    started.count_down();
    released.wait();
  }, count);
  started.wait();
  rt.blocking().submit("q1", rt.executor(), [](const CancelToken&) {}, count);
  rt.blocking().submit("q2", rt.executor(), [](const CancelToken&) {}, count);
  rt.blocking().submit("q3", rt.executor(), [](const CancelToken&) {},
                       [&](std::error_code ec) { refused.set_value(ec); });
  EXPECT_EQ(refused.get_future().get(), std::errc::resource_unavailable_try_again);
  release.set_value();
}

TEST(AsioRuntime, DestructionIsOrderlyWithPendingTimersAndQueuedWork) {
  std::atomic<int> ran{0};
  {
    AsioRuntime rt({.io_threads = 2, .blocking_threads = 1});
    auto timer = rt.make_timer(rt.executor());
    timer->async_wait_until(rt.clock().now() + 1h, [](std::error_code) {});
    for (int i = 0; i < 100; ++i) {
      rt.blocking().submit("q", rt.executor(), [&](const CancelToken&) { ++ran; },
                           [](std::error_code) {});
    }
    timer.reset();
  }  // must not hang or crash
  EXPECT_LE(ran.load(), 100);
}

TEST(AsioRuntime, SeededRandomIsReproducible) {
  AsioRuntime a({.io_threads = 1, .seed = 42});
  AsioRuntime b({.io_threads = 1, .seed = 42});
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.random().next_u64(), b.random().next_u64());
}

}  // namespace
}  // namespace memfuse
