#include "memfuse/sim/sim_context.h"

#include <algorithm>
#include <functional>

#include <fmt/format.h>

namespace memfuse::sim {
namespace {

// Streams of the run's seed: the scheduler's choices never shift the
// application's random numbers, and vice versa.
constexpr std::uint64_t kSchedulerStream = 0x5343484544554c45ull;  // "SCHEDULE"

double seconds_of(TimePoint t) { return duration_to_seconds(t.time_since_epoch()); }

}  // namespace

std::string_view to_string(Strategy s) noexcept {
  switch (s) {
    case Strategy::Fifo: return "fifo";
    case Strategy::Random: return "random";
    case Strategy::Pct: return "pct";
  }
  return "?";
}

Result<Strategy> parse_strategy(std::string_view name) {
  for (Strategy s : {Strategy::Fifo, Strategy::Random, Strategy::Pct}) {
    if (to_string(s) == name) return s;
  }
  return fail(ErrorCode::InvalidArgument, false,
              fmt::format("scheduler strategy \"{}\" is unknown (allowed: fifo, random, pct)",
                          name));
}

std::string RunResult::to_string() const {
  std::string out = fmt::format("{} after {} events at t={:.6f}s",
                                quiescent ? "quiescent"
                                : budget_exhausted ? "LIVENESS FAILURE: event budget exhausted"
                                                   : "stopped",
                                events, seconds_of(now));
  for (const auto& p : pending) out += "\n  pending: " + p;
  return out;
}

SimContext::SimContext(SchedulerOptions options, Trace* trace)
    : options_(options),
      trace_(trace),
      random_(options.seed ^ kSchedulerStream),
      now_(options.start),
      owner_(std::this_thread::get_id()) {
  MEMFUSE_ASSERT(options_.pct_depth >= 1);
  MEMFUSE_ASSERT(options_.pct_steps >= 1);
  if (options_.strategy == Strategy::Pct) {
    for (int i = 0; i + 1 < options_.pct_depth; ++i) {
      change_points_.push_back(1 + random_.uniform(options_.pct_steps));
    }
    std::sort(change_points_.begin(), change_points_.end());
  }
  chain_priority_.push_back(0);  // chain 0: "outside any handler", never scheduled
}

SimContext::~SimContext() {
  // Handlers may hold strand implementations and other service objects:
  // destroy them while the services still exist, as io_context does.
  ready_.clear();
  timer_slots_.clear();
  shutdown();
  destroy();
}

std::uint32_t SimContext::chain_for_new_work() {
  if (in_handler_) return current_chain_;
  const std::uint32_t chain = next_chain_++;
  if (options_.strategy == Strategy::Pct) {
    // Initial priorities are d..; change points lower a chain to 0..d-2.
    const std::uint64_t base = static_cast<std::uint64_t>(options_.pct_depth);
    chain_priority_.push_back(base + (random_.next_u64() >> 2));
  }
  return chain;
}

void SimContext::enqueue(SmallTask task, std::string_view label) {
  MEMFUSE_ASSERT(std::this_thread::get_id() == owner_);
  ready_.push_back(Ready{std::move(task), next_seq_++, chain_for_new_work(), label});
}

std::size_t SimContext::choose() {
  switch (options_.strategy) {
    case Strategy::Fifo:
      return 0;
    case Strategy::Random:
      return static_cast<std::size_t>(random_.uniform(ready_.size()));
    case Strategy::Pct: {
      std::size_t best = 0;
      for (std::size_t i = 1; i < ready_.size(); ++i) {
        const std::uint64_t pi = chain_priority_[ready_[i].chain];
        const std::uint64_t pb = chain_priority_[ready_[best].chain];
        if (pi > pb || (pi == pb && ready_[i].seq < ready_[best].seq)) best = i;
      }
      return best;
    }
  }
  return 0;
}

void SimContext::run_ready(std::size_t index) {
  const std::size_t ready_before = ready_.size();
  Ready item = std::move(ready_[index]);
  if (index == 0) {
    ready_.pop_front();
  } else {
    if (index != ready_.size() - 1) ready_[index] = std::move(ready_.back());
    ready_.pop_back();
  }
  ++steps_;
  if (next_change_point_ < change_points_.size() &&
      steps_ >= change_points_[next_change_point_]) {
    // The chain running at a change point drops below every other.
    // There are d-1 change points, so this is d-2 .. 0: below every initial priority (>= d).
    chain_priority_[item.chain] =
        static_cast<std::uint64_t>(options_.pct_depth) - 2 - next_change_point_;
    ++next_change_point_;
  }
  if (trace_ != nullptr) {
    trace_->record(EventKind::Run, now_, item.seq, item.chain,
                   static_cast<std::int64_t>(ready_before));
  }
  current_chain_ = item.chain;
  in_handler_ = true;
  item.task();
  in_handler_ = false;
  current_chain_ = 0;
  ++events_run_;
}

bool SimContext::timer_live(std::uint64_t timer_id) const noexcept {
  const auto slot = static_cast<std::uint32_t>(timer_id);
  const auto generation = static_cast<std::uint32_t>(timer_id >> 32);
  return slot < timer_slots_.size() && timer_slots_[slot].live &&
         timer_slots_[slot].generation == generation;
}

std::uint64_t SimContext::schedule_at(TimePoint deadline, SmallTask fn, std::string_view label) {
  MEMFUSE_ASSERT(std::this_thread::get_id() == owner_);
  std::uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(timer_slots_.size());
    timer_slots_.emplace_back();
  }
  TimerSlot& s = timer_slots_[slot];
  s.task = std::move(fn);
  s.chain = chain_for_new_work();
  s.label = label;
  s.live = true;
  const std::uint64_t timer_id = static_cast<std::uint64_t>(s.generation) << 32 | slot;
  timer_heap_.push_back(TimerEntry{std::max(deadline, now_), timer_order_++, timer_id});
  std::push_heap(timer_heap_.begin(), timer_heap_.end(), std::greater<>{});
  ++live_timers_;
  return timer_id;
}

bool SimContext::cancel_timer(std::uint64_t timer_id) noexcept {
  if (!timer_live(timer_id)) return false;
  const auto slot = static_cast<std::uint32_t>(timer_id);
  TimerSlot& s = timer_slots_[slot];
  s.task.reset();
  s.live = false;
  ++s.generation;
  free_slots_.push_back(slot);
  --live_timers_;
  if (trace_ != nullptr) trace_->record(EventKind::TimerCancel, now_, timer_id, current_chain_, 0);
  return true;
}

void SimContext::drop_dead_timers() {
  while (!timer_heap_.empty() && !timer_live(timer_heap_.front().timer_id)) {
    std::pop_heap(timer_heap_.begin(), timer_heap_.end(), std::greater<>{});
    timer_heap_.pop_back();
  }
}

// Nothing is ready: jump the clock to the earliest live timer and make every
// timer due at that instant ready. False when no timer is pending.
bool SimContext::advance_to_next_timers() {
  drop_dead_timers();
  if (timer_heap_.empty()) return false;
  const TimePoint next = timer_heap_.front().deadline;
  MEMFUSE_ASSERT(next >= now_);
  if (next > now_) {
    if (trace_ != nullptr) {
      trace_->record(EventKind::ClockAdvance, next, 0, 0, (next - now_).count());
    }
    now_ = next;
  }
  while (!timer_heap_.empty() && timer_heap_.front().deadline == now_) {
    const std::uint64_t timer_id = timer_heap_.front().timer_id;
    std::pop_heap(timer_heap_.begin(), timer_heap_.end(), std::greater<>{});
    timer_heap_.pop_back();
    if (!timer_live(timer_id)) continue;
    const auto slot = static_cast<std::uint32_t>(timer_id);
    TimerSlot& s = timer_slots_[slot];
    if (trace_ != nullptr) trace_->record(EventKind::TimerFire, now_, timer_id, s.chain, 0);
    ready_.push_back(Ready{std::move(s.task), next_seq_++, s.chain, s.label});
    s.task.reset();
    s.live = false;
    ++s.generation;
    free_slots_.push_back(slot);
    --live_timers_;
  }
  return true;
}

bool SimContext::run_one() {
  if (ready_.empty() && !advance_to_next_timers()) return false;
  if (ready_.empty()) return true;  // only dead timers were due
  run_ready(choose());
  return true;
}

RunResult SimContext::run_until_quiescent(std::uint64_t event_budget) {
  RunResult result;
  const std::uint64_t start = events_run_;
  while (events_run_ - start < event_budget) {
    if (!run_one()) {
      result.quiescent = true;
      break;
    }
  }
  result.events = events_run_ - start;
  result.now = now_;
  if (!result.quiescent) {
    result.budget_exhausted = true;
    result.pending = describe_pending();
  }
  return result;
}

RunResult SimContext::run_for(Duration d, std::uint64_t event_budget) {
  MEMFUSE_ASSERT(d >= Duration::zero());
  RunResult result;
  const TimePoint end = now_ + d;
  const std::uint64_t start = events_run_;
  while (events_run_ - start < event_budget) {
    if (ready_.empty()) {
      drop_dead_timers();
      if (timer_heap_.empty() || timer_heap_.front().deadline > end) break;
      advance_to_next_timers();
      continue;
    }
    run_ready(choose());
  }
  result.events = events_run_ - start;
  if (events_run_ - start >= event_budget) {
    result.budget_exhausted = true;
    result.pending = describe_pending();
  } else if (now_ < end) {
    if (trace_ != nullptr) trace_->record(EventKind::ClockAdvance, end, 0, 0, (end - now_).count());
    now_ = end;
  }
  result.quiescent = ready_.empty() && live_timers_ == 0;
  result.now = now_;
  return result;
}

std::vector<std::string> SimContext::describe_pending() const {
  constexpr std::size_t kShown = 20;
  std::vector<std::string> out;
  for (std::size_t i = 0; i < ready_.size() && i < kShown; ++i) {
    const Ready& r = ready_[i];
    out.push_back(fmt::format("ready handler #{} on chain {}{}{}", r.seq, r.chain,
                              r.label.empty() ? "" : ": ", r.label));
  }
  if (ready_.size() > kShown) out.push_back(fmt::format("... {} more ready", ready_.size() - kShown));
  std::vector<TimerEntry> timers;
  for (const auto& e : timer_heap_) {
    if (timer_live(e.timer_id)) timers.push_back(e);
  }
  std::sort(timers.begin(), timers.end(), [](const auto& a, const auto& b) { return b > a; });
  for (std::size_t i = 0; i < timers.size() && i < kShown; ++i) {
    const TimerSlot& s = timer_slots_[static_cast<std::uint32_t>(timers[i].timer_id)];
    out.push_back(fmt::format("timer at t={:.6f}s on chain {}{}{}", seconds_of(timers[i].deadline),
                              s.chain, s.label.empty() ? "" : ": ", s.label));
  }
  if (timers.size() > kShown) out.push_back(fmt::format("... {} more timers", timers.size() - kShown));
  return out;
}

}  // namespace memfuse::sim
