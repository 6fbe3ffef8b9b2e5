#include "memfuse/sim/sim_runtime.h"

#include <typeinfo>

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

namespace memfuse::sim {
namespace asio = boost::asio;
namespace {

constexpr std::uint64_t kAppStream = 0x4150504c49434154ull;    // "APPLICAT"
constexpr std::uint64_t kFaultStream = 0x4641554c54494e4aull;  // "FAULTINJ"

std::error_code canceled() { return std::make_error_code(std::errc::operation_canceled); }

// True when `e` is this context's own executor: a completion can then run in
// the event that produced it instead of costing a second event.
bool is_direct(const Executor& e, const SimContext& context) {
  // Boost 1.74's any_executor::target<T>() casts without checking the type:
  // compare target_type() first.
  if (!e.get() || e.get().target_type() != typeid(SimExecutor)) return false;
  const SimExecutor* target = e.get().target<SimExecutor>();
  return target != nullptr &&
         &target->query(asio::execution::context) == &context;
}

void deliver(const Executor& completion, bool direct, const SimContext& context,
             WaitHandler handler, std::error_code ec) {
  if (direct && context.running_in_this_thread()) {
    handler(ec);
    return;
  }
  asio::post(completion.get(), [handler = std::move(handler), ec]() mutable { handler(ec); });
}

// Delivers `handler(ec)` on `completion`: inline when the completion executor is
// the context itself (we already run as an event of it), else posted.
void deliver(const Executor& completion, const SimContext& context, WaitHandler handler,
             std::error_code ec) {
  deliver(completion, is_direct(completion, context), context, std::move(handler), ec);
}

// A wait's state is shared with the context's scheduled event, so that a
// deadline that has fired is delivered even if the Timer is destroyed or
// re-armed before the event runs (as asio::steady_timer does).
class SimTimer final : public Timer {
 public:
  SimTimer(SimContext& context, Executor completion)
      : context_(context), completion_(std::move(completion)),
        direct_(is_direct(completion_, context_)) {}
  ~SimTimer() override { cancel(); }

  void async_wait_until(TimePoint deadline, WaitHandler handler) override {
    // One outstanding wait at a time; a wait whose deadline fired is no
    // longer outstanding, even if its handler has not run yet.
    MEMFUSE_ASSERT(!wait_ || !context_.timer_pending(id_));
    // Reuse the wait's state unless a fired, undelivered wait still holds it.
    if (!wait_ || wait_.use_count() > 1) wait_ = std::make_shared<Wait>(Wait{{}, completion_});
    wait_->handler = std::move(handler);
    id_ = context_.schedule_at(
        deadline,
        [context = &context_, direct = direct_, wait = wait_] {
          if (wait->handler) deliver(wait->completion, direct, *context, std::move(wait->handler), {});
        },
        "timer");
  }

  bool cancel() noexcept override {
    if (!wait_ || !context_.cancel_timer(id_)) return false;
    auto h = std::move(wait_->handler);
    wait_.reset();
    asio::post(completion_.get(), [h = std::move(h)]() mutable { h(canceled()); });
    return true;
  }

 private:
  struct Wait {
    WaitHandler handler;
    Executor completion;
  };

  SimContext& context_;
  Executor completion_;
  bool direct_;
  std::shared_ptr<Wait> wait_;
  std::uint64_t id_ = 0;
};

}  // namespace

class SimRuntime::VirtualClock final : public Clock {
 public:
  explicit VirtualClock(const SimContext& context) : context_(context) {}
  TimePoint now() const noexcept override { return context_.now(); }

 private:
  const SimContext& context_;
};

// Blocking work in simulation. Each operation completes exactly once: on its
// latency timer, or on cancel(), whichever comes first.
class SimRuntime::Blocking final : public BlockingWork {
 public:
  struct Op final : BlockingHandle, CancelToken {
    Op(Blocking& owner_in, std::uint64_t id_in, std::string_view kind_in, Executor completion_in,
       WaitHandler done_in)
        : owner(&owner_in), id(id_in), kind(kind_in), completion(std::move(completion_in)),
          done(std::move(done_in)) {}

    bool cancelled() const noexcept override { return cancel_requested; }
    void on_cancel(std::function<void()> fn) const override {
      if (cancel_requested) {
        if (fn) fn();
      } else {
        interrupt = std::move(fn);
      }
    }
    void cancel() noexcept override {
      if (cancel_requested) return;
      cancel_requested = true;
      if (interrupt) std::exchange(interrupt, nullptr)();
      if (owner == nullptr || finished) return;
      if (timer_id != 0) owner->runtime_.context().cancel_timer(timer_id);
      finish(canceled());
    }
    void finish(std::error_code ec) {
      finished = true;
      owner->hung_.erase(id);
      auto& rt = owner->runtime_;
      rt.trace().record(EventKind::BlockingDone, rt.now(), id, rt.context().current_chain(),
                        ec ? 1 : 0, kind);
      deliver(completion, rt.context(), std::move(done), ec);
    }

    Blocking* owner;  // null once the runtime is gone
    std::uint64_t id;
    std::string_view kind;
    Executor completion;
    WaitHandler done;
    mutable std::function<void()> interrupt;
    std::uint64_t timer_id = 0;
    bool cancel_requested = false;
    bool finished = false;
  };

  explicit Blocking(SimRuntime& runtime) : runtime_(runtime) {}
  ~Blocking() override {
    for (auto& [id, op] : hung_) {
      if (auto o = op.lock()) o->owner = nullptr;
    }
  }

  std::shared_ptr<BlockingHandle> submit(std::string_view kind, const Executor& completion,
                                         BlockingFunction work, WaitHandler done) override {
    const BlockingPlan plan = model_ ? model_(kind, runtime_.fault_random()) : BlockingPlan{};
    auto op = std::make_shared<Op>(*this, next_id_++, kind, completion, std::move(done));
    runtime_.trace().record(EventKind::BlockingStart, runtime_.now(), op->id,
                            runtime_.context().current_chain(),
                            plan.hang ? -1 : plan.latency.count(), kind);
    if (plan.run_work) work(*op);
    if (plan.hang) {
      hung_[op->id] = op;
    } else {
      op->timer_id = runtime_.context().schedule_at(
          runtime_.now() + plan.latency, [op] { if (!op->finished) op->finish({}); }, kind);
    }
    return op;
  }

  void set_model(BlockingModel model) { model_ = std::move(model); }
  std::size_t hung() const noexcept { return hung_.size(); }
  void describe(std::vector<std::string>& out) const {
    for (const auto& [id, op] : hung_) {
      if (auto o = op.lock()) out.push_back(fmt::format("hung blocking op #{}: {}", id, o->kind));
    }
  }

 private:
  SimRuntime& runtime_;
  BlockingModel model_;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, std::weak_ptr<Op>> hung_;  // ordered by id: deterministic listing
};

SimRuntime::SimRuntime(SimOptions options)
    : options_(options),
      trace_(options.trace_mode, options.trace_bound),
      context_(SchedulerOptions{options.strategy, options.seed, options.pct_depth,
                                options.pct_steps, options.start},
               &trace_),
      executor_(asio::any_io_executor(context_.get_executor())),
      clock_(std::make_unique<VirtualClock>(context_)),
      random_(options.seed ^ kAppStream),
      fault_random_(options.seed ^ kFaultStream),
      blocking_(std::make_unique<Blocking>(*this)) {}

SimRuntime::~SimRuntime() = default;

Clock& SimRuntime::clock() noexcept { return *clock_; }
BlockingWork& SimRuntime::blocking() noexcept { return *blocking_; }
std::unique_ptr<Timer> SimRuntime::make_timer(const Executor& completion) {
  return std::make_unique<SimTimer>(context_, completion);
}
void SimRuntime::set_blocking_model(BlockingModel model) { blocking_->set_model(std::move(model)); }

void SimRuntime::app_event(std::string_view label, std::int64_t value) {
  trace_.record(EventKind::App, now(), 0, context_.current_chain(), value, label);
}
void SimRuntime::fault_event(std::string_view label, std::int64_t value) {
  trace_.record(EventKind::Fault, now(), 0, context_.current_chain(), value, label);
  if (on_fault) on_fault(label);
}

std::size_t SimRuntime::hung_operations() const noexcept { return blocking_->hung(); }

void SimRuntime::add_hung(RunResult& result) const {
  if (result.budget_exhausted || (result.quiescent && blocking_->hung() > 0)) {
    blocking_->describe(result.pending);
  }
}

RunResult SimRuntime::run_until_quiescent(std::uint64_t event_budget) {
  RunResult r = context_.run_until_quiescent(event_budget);
  add_hung(r);
  return r;
}

RunResult SimRuntime::run_for(Duration d, std::uint64_t event_budget) {
  RunResult r = context_.run_for(d, event_budget);
  add_hung(r);
  return r;
}

namespace {
class VirtualTimeFlag final : public spdlog::custom_flag_formatter {
 public:
  explicit VirtualTimeFlag(const SimContext& context) : context_(context) {}
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    fmt::format_to(std::back_inserter(dest), "t={:.6f}s",
                   duration_to_seconds(context_.now().time_since_epoch()));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<VirtualTimeFlag>(context_);
  }

 private:
  const SimContext& context_;
};
}  // namespace

Logger SimRuntime::make_logger(std::string name, LogLevel level) {
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_st>();
  auto logger = std::make_shared<spdlog::logger>(std::move(name), std::move(sink));
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<VirtualTimeFlag>('*', context_).set_pattern("[%*] [%n] [%l] %v");
  logger->set_formatter(std::move(formatter));
  switch (level) {
    case LogLevel::Trace: logger->set_level(spdlog::level::trace); break;
    case LogLevel::Debug: logger->set_level(spdlog::level::debug); break;
    case LogLevel::Info: logger->set_level(spdlog::level::info); break;
    case LogLevel::Warn: logger->set_level(spdlog::level::warn); break;
    case LogLevel::Error: logger->set_level(spdlog::level::err); break;
    case LogLevel::Off: logger->set_level(spdlog::level::off); break;
  }
  return Logger(std::move(logger));
}

}  // namespace memfuse::sim
