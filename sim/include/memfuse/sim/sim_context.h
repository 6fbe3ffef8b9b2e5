// SimContext: a deterministic, single-threaded Asio execution context on a
// virtual clock.
//
// Handlers posted to its executor (directly, through asio::strand, or through
// asio::any_io_executor) wait in a ready set. Each step, a seeded scheduler
// chooses one ready handler and runs it:
//   - fifo:   the oldest (what a one-thread io_context does);
//   - random: uniformly among all ready handlers;
//   - pct:    probabilistic concurrency testing (Burckhardt et al., ASPLOS
//             2010). Each chain gets a random priority; the highest-priority
//             ready chain runs (its oldest handler first); at d-1 change
//             points, drawn uniformly from [1, pct_steps], the running chain
//             drops below every other. A bug of depth d is found with
//             probability >= 1/(n * k^(d-1)) per run.
// A chain is a logical thread: a handler posted while another runs joins that
// handler's chain; one posted from outside any handler starts a new chain.
// Timers and blocking work complete on the chain that started them.
//
// Strands keep their own FIFO whatever the strategy: the scheduler only
// chooses among what Asio has made ready.
//
// Virtual time never goes backwards. When nothing is ready the clock jumps to
// the earliest timer; timers due at the same instant become ready together,
// and the scheduler orders them with everything else.
//
// Thread-safety: none. Everything runs on the thread that calls run_*(); a
// post from another thread is a bug (asserted).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>

#include "memfuse/assert.h"
#include "memfuse/runtime.h"
#include "memfuse/sim/small_task.h"
#include "memfuse/sim/trace.h"

namespace memfuse::sim {

enum class Strategy : std::uint8_t { Fifo, Random, Pct };

[[nodiscard]] std::string_view to_string(Strategy s) noexcept;
[[nodiscard]] Result<Strategy> parse_strategy(std::string_view name);

struct SchedulerOptions {
  Strategy strategy = Strategy::Random;
  std::uint64_t seed = 1;
  int pct_depth = 3;                 // d: bugs of depth d get d-1 change points
  std::uint64_t pct_steps = 10'000;  // k: the expected number of steps of a run
  TimePoint start{};                 // virtual time at construction
};

// The outcome of a run_* call. A run that exhausts its event budget is a
// liveness failure: `pending` lists what was still waiting.
struct RunResult {
  bool quiescent = false;        // nothing ready and no timer pending
  bool budget_exhausted = false;
  std::uint64_t events = 0;      // events run by this call
  TimePoint now{};
  std::vector<std::string> pending;  // set when the budget ran out

  [[nodiscard]] std::string to_string() const;
};

class SimContext;

// The executor: Asio's executor model over a SimContext. Cheap to copy.
class SimExecutor {
 public:
  explicit SimExecutor(SimContext& context, bool possibly_blocking = false) noexcept
      : context_(&context), possibly_blocking_(possibly_blocking) {}

  template <typename F>
  void execute(F&& f) const;

  [[nodiscard]] SimContext& query(boost::asio::execution::context_t) const noexcept {
    return *context_;
  }
  [[nodiscard]] boost::asio::execution::blocking_t query(
      boost::asio::execution::blocking_t) const noexcept {
    return possibly_blocking_ ? boost::asio::execution::blocking_t(boost::asio::execution::blocking.possibly)
                              : boost::asio::execution::blocking_t(boost::asio::execution::blocking.never);
  }
  [[nodiscard]] SimExecutor require(boost::asio::execution::blocking_t::never_t) const noexcept {
    return SimExecutor(*context_, false);
  }
  [[nodiscard]] SimExecutor require(boost::asio::execution::blocking_t::possibly_t) const noexcept {
    return SimExecutor(*context_, true);
  }

  friend bool operator==(const SimExecutor& a, const SimExecutor& b) noexcept {
    return a.context_ == b.context_ && a.possibly_blocking_ == b.possibly_blocking_;
  }
  friend bool operator!=(const SimExecutor& a, const SimExecutor& b) noexcept { return !(a == b); }

 private:
  SimContext* context_;
  bool possibly_blocking_;
};

class SimContext : public boost::asio::execution_context {
 public:
  using executor_type = SimExecutor;

  explicit SimContext(SchedulerOptions options, Trace* trace = nullptr);
  ~SimContext();
  SimContext(const SimContext&) = delete;
  SimContext& operator=(const SimContext&) = delete;

  [[nodiscard]] executor_type get_executor() noexcept { return SimExecutor(*this); }
  [[nodiscard]] TimePoint now() const noexcept { return now_; }
  [[nodiscard]] const SchedulerOptions& options() const noexcept { return options_; }
  [[nodiscard]] Trace* trace() const noexcept { return trace_; }

  // Runs until nothing is ready and no timer is pending, or until
  // `event_budget` events have run (a liveness failure). Never hangs.
  RunResult run_until_quiescent(std::uint64_t event_budget);
  // Runs everything due up to now() + d, then sets the clock to now() + d.
  RunResult run_for(Duration d, std::uint64_t event_budget = 100'000'000);
  // Runs one step: a ready handler, or the next timers' firing. False when quiescent.
  bool run_one();

  // Timers: `fn` becomes ready at `deadline` (or now, if that is past) on the
  // current chain. Returns an id for cancel_timer. `label` must outlive the
  // timer (a string literal).
  std::uint64_t schedule_at(TimePoint deadline, SmallTask fn, std::string_view label);
  // True if the timer was pending (it will not run); false if it already fired.
  bool cancel_timer(std::uint64_t timer_id) noexcept;
  // True while the timer is armed and its deadline has not fired.
  [[nodiscard]] bool timer_pending(std::uint64_t timer_id) const noexcept {
    return timer_live(timer_id);
  }

  // The chain of the handler now running (0 outside any handler).
  [[nodiscard]] std::uint32_t current_chain() const noexcept { return current_chain_; }
  [[nodiscard]] bool running_in_this_thread() const noexcept { return in_handler_; }
  [[nodiscard]] std::size_t ready_count() const noexcept { return ready_.size(); }
  [[nodiscard]] std::size_t timer_count() const noexcept { return live_timers_; }
  [[nodiscard]] std::uint64_t events_run() const noexcept { return events_run_; }

  // Used by SimExecutor; enqueues a ready handler on the current chain.
  void enqueue(SmallTask task, std::string_view label);

 private:
  struct Ready {
    SmallTask task;
    std::uint64_t seq;
    std::uint32_t chain;
    std::string_view label;
  };
  // Timer ids pack (generation << 32 | slot). Slots are reused through a free
  // list (in a deterministic order); a cancelled timer's heap entry stays
  // until it reaches the top and is discarded because its generation moved on.
  struct TimerEntry {
    TimePoint deadline;
    std::uint64_t order;  // arming order: ties at one deadline fire in it
    std::uint64_t timer_id;
    friend bool operator>(const TimerEntry& a, const TimerEntry& b) noexcept {
      return a.deadline != b.deadline ? a.deadline > b.deadline : a.order > b.order;
    }
  };
  struct TimerSlot {
    SmallTask task;
    std::uint32_t chain = 0;
    std::uint32_t generation = 1;  // ids are never 0: 0 means "no timer"
    std::string_view label;
    bool live = false;
  };

  std::uint32_t chain_for_new_work();
  std::size_t choose();
  void run_ready(std::size_t index);
  bool advance_to_next_timers();
  void drop_dead_timers();
  bool timer_live(std::uint64_t timer_id) const noexcept;
  std::vector<std::string> describe_pending() const;

  SchedulerOptions options_;
  Trace* trace_;
  SeededRandom random_;
  TimePoint now_;
  std::deque<Ready> ready_;
  std::vector<TimerEntry> timer_heap_;  // min-heap by (deadline, seq)
  std::vector<TimerSlot> timer_slots_;
  std::vector<std::uint32_t> free_slots_;
  std::uint64_t timer_order_ = 0;
  std::size_t live_timers_ = 0;
  std::uint64_t next_seq_ = 1;
  std::uint32_t next_chain_ = 1;
  std::uint32_t current_chain_ = 0;
  bool in_handler_ = false;
  std::uint64_t events_run_ = 0;
  std::uint64_t steps_ = 0;
  std::vector<std::uint64_t> chain_priority_;  // pct: indexed by chain
  std::vector<std::uint64_t> change_points_;   // pct: sorted steps
  std::size_t next_change_point_ = 0;
  std::thread::id owner_;
};

template <typename F>
void SimExecutor::execute(F&& f) const {
  if (possibly_blocking_ && context_->running_in_this_thread()) {
    // dispatch() from inside the context runs inline, as on an io_context.
    std::decay_t<F> local(std::forward<F>(f));
    local();
    return;
  }
  context_->enqueue(SmallTask(std::forward<F>(f)), {});
}

}  // namespace memfuse::sim
