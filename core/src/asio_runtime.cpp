// The production runtime. This file and its header are the only places in
// core that read the real clock or std::random_device.
#include "memfuse/asio_runtime.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "memfuse/assert.h"
#include "memfuse/executor.h"

namespace memfuse {
namespace asio = boost::asio;
namespace {

// See AsioRuntimeOptions::background_scheduling. Runs on the thread itself.
void enter_background_scheduling(bool enabled) {
  if (!enabled) return;
  sched_param param{};
  param.sched_priority = 0;  // the only priority SCHED_BATCH has
  (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
}

std::error_code canceled() { return std::make_error_code(std::errc::operation_canceled); }

std::error_code to_std(const boost::system::error_code& ec) {
  if (!ec) return {};
  if (ec == asio::error::operation_aborted) return canceled();
  return std::error_code(ec.value(), std::system_category());
}

void post_done(const Executor& completion, WaitHandler done, std::error_code ec) {
  asio::post(completion.get(), [done = std::move(done), ec]() mutable { done(ec); });
}

// The steady clock, anchored once at construction to Unix time: monotonic
// like steady_clock, and its readings are meaningful across processes (round
// ids are UUIDv7, whose first 48 bits are Unix milliseconds; created_at is
// stored). Timers convert back to steady_clock with the same offset.
class SteadyClock final : public Clock {
 public:
  SteadyClock()
      : offset_(std::chrono::duration_cast<Duration>(
            std::chrono::system_clock::now().time_since_epoch() -
            std::chrono::steady_clock::now().time_since_epoch())) {}
  TimePoint now() const noexcept override {
    return TimePoint(std::chrono::duration_cast<Duration>(
                         std::chrono::steady_clock::now().time_since_epoch()) +
                     offset_);
  }
  [[nodiscard]] Duration offset() const noexcept { return offset_; }

 private:
  Duration offset_;
};

class LockedRandom final : public Random {
 public:
  explicit LockedRandom(std::uint64_t seed) : random_(seed) {}
  std::uint64_t next_u64() noexcept override {
    std::lock_guard lock(mutex_);
    return random_.next_u64();
  }

 private:
  std::mutex mutex_;
  SeededRandom random_;
};

class AsioTimer final : public Timer {
 public:
  AsioTimer(asio::io_context& ioc, Executor completion, Duration clock_offset)
      : timer_(ioc), completion_(std::move(completion)), offset_(clock_offset) {}
  ~AsioTimer() override { timer_.cancel(); }

  void async_wait_until(TimePoint deadline, WaitHandler handler) override {
    timer_.expires_at(std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            deadline.time_since_epoch() - offset_)));
    timer_.async_wait(asio::bind_executor(
        completion_.get(), [handler = std::move(handler)](const boost::system::error_code& ec) mutable {
          handler(to_std(ec));
        }));
  }
  bool cancel() noexcept override { return timer_.cancel() > 0; }

 private:
  asio::steady_timer timer_;
  Executor completion_;
  Duration offset_;
};

// One submitted function. Its state moves Queued -> Running -> Finished, or
// Queued -> Finished when cancelled first; whoever makes the move to Finished
// posts `done`, so it completes exactly once.
struct Job final : BlockingHandle, CancelToken {
  enum State : int { Queued, Running, Finished };

  Job(BlockingFunction f, WaitHandler d, Executor c)
      : work(std::move(f)), done(std::move(d)), completion(std::move(c)) {}

  bool cancelled() const noexcept override { return cancel_requested.load(); }
  void on_cancel(std::function<void()> fn) const override {
    std::unique_lock lock(mutex);
    interrupt = std::move(fn);
    if (cancel_requested.load()) {
      auto f = std::move(interrupt);
      lock.unlock();
      if (f) f();
    }
  }
  void cancel() noexcept override {
    cancel_requested.store(true);
    int expected = Queued;
    if (state.compare_exchange_strong(expected, Finished)) {
      post_done(completion, std::move(done), canceled());
      return;
    }
    std::function<void()> f;
    {
      std::lock_guard lock(mutex);
      f = std::move(interrupt);
    }
    if (f) f();
  }

  BlockingFunction work;
  WaitHandler done;
  Executor completion;
  std::atomic<int> state{Queued};
  std::atomic<bool> cancel_requested{false};
  mutable std::mutex mutex;
  mutable std::function<void()> interrupt;  // guarded by mutex
};

class ThreadPool final : public BlockingWork {
 public:
  ThreadPool(int threads, std::size_t queue_limit, bool background)
      : queue_limit_(queue_limit) {
    MEMFUSE_ASSERT(threads >= 1);
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, background] {
        enter_background_scheduling(background);
        loop();
      });
    }
  }
  ~ThreadPool() override { stop(); }

  std::shared_ptr<BlockingHandle> submit(std::string_view, const Executor& completion,
                                         BlockingFunction work, WaitHandler done) override {
    auto job = std::make_shared<Job>(std::move(work), std::move(done), completion);
    {
      std::lock_guard lock(mutex_);
      if (!stopping_ && queue_.size() < queue_limit_) {
        queue_.push_back(job);
        ready_.notify_one();
        return job;
      }
    }
    job->state.store(Job::Finished);
    post_done(completion, std::move(job->done),
              stopping() ? canceled()
                         : std::make_error_code(std::errc::resource_unavailable_try_again));
    return job;
  }

  void stop() {
    std::deque<std::shared_ptr<Job>> abandoned;
    {
      std::lock_guard lock(mutex_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
      abandoned.swap(queue_);
      ready_.notify_all();
    }
    for (auto& job : abandoned) job->cancel();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  bool stopping() {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

  void loop() {
    while (true) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      int expected = Job::Queued;
      if (!job->state.compare_exchange_strong(expected, Job::Running)) continue;  // cancelled
      job->work(*job);
      job->state.store(Job::Finished);
      post_done(job->completion, std::move(job->done),
                job->cancel_requested.load() ? canceled() : std::error_code{});
    }
  }

  const std::size_t queue_limit_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::shared_ptr<Job>> queue_;  // guarded by mutex_
  bool stopping_ = false;                   // guarded by mutex_
  std::vector<std::thread> threads_;
};

std::uint64_t seed_from(const AsioRuntimeOptions& options) {
  if (options.seed) return *options.seed;
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

}  // namespace

struct AsioRuntime::Impl {
  explicit Impl(const AsioRuntimeOptions& options)
      : guard(asio::make_work_guard(ioc)),
        executor(ioc.get_executor()),
        random(seed_from(options)),
        pool(options.blocking_threads, options.blocking_queue_limit,
             options.background_scheduling) {
    MEMFUSE_ASSERT(options.io_threads >= 1);
    for (int i = 0; i < options.io_threads; ++i) {
      threads.emplace_back([this, background = options.background_scheduling] {
        enter_background_scheduling(background);
        ioc.run();
      });
    }
  }

  void shutdown() {
    std::lock_guard lock(shutdown_mutex);
    if (stopped) return;
    stopped = true;
    pool.stop();
    guard.reset();
    ioc.stop();
    for (auto& t : threads) t.join();
    threads.clear();
  }

  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  Executor executor;
  SteadyClock clock;
  LockedRandom random;
  ThreadPool pool;
  std::vector<std::thread> threads;
  std::mutex shutdown_mutex;
  bool stopped = false;  // guarded by shutdown_mutex
};

AsioRuntime::AsioRuntime(AsioRuntimeOptions options) : impl_(std::make_unique<Impl>(options)) {}
AsioRuntime::~AsioRuntime() { impl_->shutdown(); }

void AsioRuntime::shutdown() { impl_->shutdown(); }
const Executor& AsioRuntime::executor() const noexcept { return impl_->executor; }
Clock& AsioRuntime::clock() noexcept { return impl_->clock; }
Random& AsioRuntime::random() noexcept { return impl_->random; }
BlockingWork& AsioRuntime::blocking() noexcept { return impl_->pool; }
std::unique_ptr<Timer> AsioRuntime::make_timer(const Executor& completion) {
  return std::make_unique<AsioTimer>(impl_->ioc, completion, impl_->clock.offset());
}

}  // namespace memfuse
