// FlushManager. See the header for the contract.
//
// Structure. Submissions reach the strand without a lock: submit() takes a
// place in the bound with one compare-and-swap on the gate (the bound's
// counts in one word) and pushes the task onto the inbox (a stack of tasks,
// whose low bit closes it for a drain) with another; the strand takes the
// whole inbox at once. The intake lock guards only attempt results reported
// off the strand. Everything else lives behind the manager's mutex and is
// used by handlers on one strand (and read by stats()), so timers (which are
// used from one strand at a time) and user callbacks are serialised. The
// order is mutex, then intake. (With one lock for both, submitters and the
// strand queued on it: a quarter of a no-op task's time went to futex sleeps
// and wake-ups. With the submissions behind the intake lock, its cache line
// crossed between the submitter and the strand on every no-op task: a third
// of the submitter's time.) User code (attempt functions, completion
// callbacks, cancel hooks, the tick, drain reports) is never called with the
// mutex held: handlers collect it in an Actions list and run it after
// unlocking. Handlers hold a weak_ptr to Impl, so a destroyed manager turns
// late timer firings and late completions into no-ops.
//
// The queue orders Keys (priority, sequence, no payload), so ordering cannot
// touch a payload: a lane per priority, most urgent first by urgency_rank()
// (priority.h has the only definition of urgency), each in sequence order
// (see TaskQueue).
#include "memfuse/flush_manager.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <charconv>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "adaptive_mutex.h"
#include "latency_histogram.h"
#include "memfuse/assert.h"
#include "memfuse/executor.h"

namespace memfuse {
namespace asio = boost::asio;

std::string_view to_string(TaskStatus s) noexcept {
  switch (s) {
    case TaskStatus::Success: return "success";
    case TaskStatus::Failed: return "failed";
    case TaskStatus::TimedOut: return "timed_out";
    case TaskStatus::Cancelled: return "cancelled";
  }
  return "?";
}

namespace {

// User code collected under the lock, to run after unlocking. Typed lists
// rather than one list of closures: a start or a completion is the hot path,
// and a closure big enough to carry one costs a heap allocation each.
// run() keeps the order every producer relies on: completion callbacks, then
// the rest (drain reports come after the outcomes of the tasks they report
// on), then attempt starts.
struct Actions {
  struct Completion {
    CompletionFn callback;
    TaskOutcome outcome;
    std::shared_ptr<void> payload;
  };
  struct Start {
    AttemptFn* attempt;  // in a Task, which only a strand handler erases: us, later
    std::shared_ptr<Attempt> handle;
  };
  std::vector<Completion> completions;
  std::vector<std::move_only_function<void()>> other;
  std::vector<Start> starts;

  [[nodiscard]] bool empty() const noexcept {
    return completions.empty() && other.empty() && starts.empty();
  }
  void push_back(std::move_only_function<void()> fn) { other.push_back(std::move(fn)); }
  // Runs everything and leaves the lists empty, their capacity kept.
  void run() {
    for (auto& c : completions) c.callback(c.outcome, std::move(c.payload));
    completions.clear();
    for (auto& f : other) f();
    other.clear();
    for (auto& st : starts) (*st.attempt)(std::move(st.handle));
    starts.clear();
  }
};

void run_all(Actions& actions) { actions.run(); }

// The queue's ordering: (priority, sequence) and nothing else. `task` is
// where the queued task lives (never compared): starting it needs no lookup.
struct Key {
  Priority priority;
  std::uint64_t seq;
  void* task = nullptr;
};

// True when a must run before b.
bool runs_before(const Key& a, const Key& b) noexcept {
  if (a.priority != b.priority) return more_urgent(a.priority, b.priority);
  return a.seq < b.seq;
}

// The queued tasks, by runs_before(): a lane per priority, and in a lane,
// sequence order. New submissions reach a lane in rising sequence (nearly
// always: two submitters may hand theirs in out of order), so a lane is a
// FIFO, plus a small heap for the keys that arrive below its newest: a retry
// keeps its original sequence number. Taking the next task costs a look at
// four lanes, not a sift through a heap of every queued task: with 20 000
// queued that heap was 480 KB, and its sift a cache miss per level.
class TaskQueue {
 public:
  void push(const Key& k) {
    Lane& lane = lanes_[lane_of(k.priority)];
    if (lane.fifo.empty() || lane.fifo.back().seq < k.seq) {
      lane.fifo.push_back(k);
    } else {
      lane.late.push_back(k);
      std::push_heap(lane.late.begin(), lane.late.end(), LaterSeq{});
    }
    ++size_;
  }

  // REQUIRES: !empty(). The task that runs next.
  const Key& top() const noexcept {
    const Lane& lane = lanes_[first_busy_lane()];
    return lane.late_first() ? lane.late.front() : lane.fifo.front();
  }

  // REQUIRES: !empty(). Takes top().
  Key pop() {
    Lane& lane = lanes_[first_busy_lane()];
    Key k;
    if (lane.late_first()) {
      std::pop_heap(lane.late.begin(), lane.late.end(), LaterSeq{});
      k = lane.late.back();
      lane.late.pop_back();
    } else {
      k = lane.fifo.front();
      lane.fifo.pop_front();
    }
    --size_;
    return k;
  }

  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t size_of(Priority p) const noexcept {
    const Lane& lane = lanes_[lane_of(p)];
    return lane.fifo.size() + lane.late.size();
  }
  void clear() {
    for (Lane& lane : lanes_) {
      lane.fifo.clear();
      lane.late.clear();
    }
    size_ = 0;
  }

 private:
  // std::push_heap keeps the "largest" on top: here the lowest sequence.
  struct LaterSeq {
    bool operator()(const Key& a, const Key& b) const noexcept { return a.seq > b.seq; }
  };
  struct Lane {
    std::deque<Key> fifo;  // rising seq
    std::vector<Key> late;  // heap, lowest seq on top
    // REQUIRES: the lane is not empty.
    [[nodiscard]] bool late_first() const noexcept {
      return !late.empty() && (fifo.empty() || late.front().seq < fifo.front().seq);
    }
    [[nodiscard]] bool empty() const noexcept { return fifo.empty() && late.empty(); }
  };
  // Lane 0 is the most urgent: urgency_rank() is the order.
  static std::size_t lane_of(Priority p) noexcept {
    return static_cast<std::size_t>(urgency_rank(p));
  }
  std::size_t first_busy_lane() const noexcept {
    std::size_t i = 0;
    while (i + 1 < lanes_.size() && lanes_[i].empty()) ++i;
    MEMFUSE_ASSERT(!lanes_[i].empty());  // callers check size_ > 0
    return i;
  }
  std::array<Lane, kPriorityCount> lanes_;
  std::size_t size_ = 0;
};

bool valid_kind(std::string_view kind) {
  return !kind.empty() && kind.size() <= 64 &&
         std::all_of(kind.begin(), kind.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
         });
}

std::size_t prio_index(Priority p) { return static_cast<std::size_t>(urgency_rank(p)); }

// The longest TaskId: a 64-character kind and two numbers of up to 20
// characters each (a negative millisecond count has its sign), with the dashes.
constexpr std::size_t kMaxTaskIdSize = 64 + 1 + 20 + 1 + 20;

// A task's id, "<kind>-<ms>-<seq>", held in the task itself: most ids are
// past the 15 characters a std::string keeps in place, and a heap buffer was
// a second cold line to chase, on the strand, for every attempt it starts
// (the attempt copies the id) and every outcome (which copies it again).
class InlineTaskId {
 public:
  // Writes the id without a format string: this is on every submit.
  void assign(std::string_view kind, std::int64_t ms, std::uint64_t seq) noexcept {
    MEMFUSE_ASSERT(kind.size() <= kMaxTaskIdSize - 2 * 21);
    char* p = std::copy(kind.begin(), kind.end(), chars_.data());
    char* const end = chars_.data() + chars_.size();
    *p++ = '-';
    p = std::to_chars(p, end, ms).ptr;
    *p++ = '-';
    p = std::to_chars(p, end, seq).ptr;
    size_ = static_cast<std::uint8_t>(p - chars_.data());
  }
  [[nodiscard]] std::string_view view() const noexcept { return {chars_.data(), size_}; }
  [[nodiscard]] TaskId str() const { return TaskId(view()); }

 private:
  std::array<char, kMaxTaskIdSize> chars_;
  std::uint8_t size_ = 0;
};
static_assert(kMaxTaskIdSize <= 255);

}  // namespace

class AttemptImpl;

struct FlushManager::Impl : std::enable_shared_from_this<FlushManager::Impl> {
  enum class State { WaitingAdmission, Queued, Running, BackingOff };

  struct Task {
    std::uint64_t seq = 0;
    InlineTaskId id;
    std::string kind;
    Priority priority = Priority::Normal;
    Duration timeout{};
    TimePoint delivery_deadline{};
    std::shared_ptr<void> payload;
    AttemptFn attempt;
    CompletionFn on_complete;
    State state = State::Queued;
    int attempts = 0;
    std::optional<Error> last_error;
    bool last_was_timeout = false;
    std::shared_ptr<AttemptImpl> current;  // while Running
    std::size_t slot = 0;                  // while Running: its worker slot
    std::size_t index = 0;                 // while the strand holds it: its place in table_
    std::unique_ptr<Timer> timer;          // backoff or admission wait
    // The next task in the inbox (newer first) or in a free chain; a task is
    // in at most one of them.
    Task* next = nullptr;
    bool counted = false;  // strand only: counted in population_
  };

  // Asks for a task's cache lines ahead of use (a hint; no effect on what runs).
  static void prefetch_task(const Task& task) noexcept {
    const char* p = reinterpret_cast<const char*>(&task);
    for (std::size_t off = 0; off < sizeof(Task); off += 64) __builtin_prefetch(p + off, 1);
  }
  static constexpr std::size_t kPrefetchAhead = 4;
  // Two lines, not one: a core's adjacent-line prefetcher fetches pairs, so
  // members written on different cores keep 128 bytes apart.
  static constexpr std::size_t kCacheLine = 128;

  Impl(Runtime& rt, FlushManagerConfig cfg, Logger log);
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Any thread.
  Result<TaskId> submit(TaskSpec spec);
  FlushStats stats() const;
  void set_tick_handler(std::move_only_function<void()> fn);
  void observe(FlushEvent::Kind kind, const Task& task, std::size_t slot = 0) {
    if (!observer_) return;
    FlushEvent e;
    e.kind = kind;
    e.seq = task.seq;
    e.priority = task.priority;
    e.attempt = task.attempts;
    e.slot = slot;
    e.at = runtime_.clock().now();
    if (kind != FlushEvent::Kind::Queued && kind != FlushEvent::Kind::Finished) {
      e.deadline = slot_deadline_[slot];
    }
    observer_(e);
  }
  void drain(TimePoint deadline, std::move_only_function<void(DrainReport)> done, bool now);

  // Strand only.
  // The strand's work loop: takes every attempt result that has arrived,
  // gives free workers the most urgent tasks, runs the attempt functions and
  // callbacks that produced, and goes round again while that made more work
  // (an attempt that completes at once, a submission meanwhile). It posts
  // itself again after kYieldAfter of work or kMaxRounds rounds, so the
  // strand's timers get their turn.
  void pump();
  void take_in_and_start(TimePoint now, Actions& actions);
  void start_ready_attempts(TimePoint now, Actions& actions);
  void enqueue(Task& task);
  void schedule_pump();
  // Any thread. True when the caller is the one to post pump(), which it
  // does after unlocking what it holds (post_pump()).
  bool claim_pump() { return !pump_posted_.exchange(true); }
  void post_pump() {
    post([](Impl& m) { m.pump(); });
  }
  void start_attempt(Task& task, std::size_t slot, TimePoint now, Actions& actions);
  struct Completion;  // below, with the intake
  void finish_attempt(Completion& c, TimePoint now, Actions& actions);  // takes c.result
  void deliver_completion(std::size_t index, std::uint64_t seq, int number, Result<void> result);
  // The task the strand holds at `index`, if it is still the one numbered
  // `seq`; null if that task has finished (its place may hold another now).
  Task* held(std::size_t index, std::uint64_t seq) const noexcept {
    if (index >= table_.size()) return nullptr;
    Task* t = table_[index].get();
    return t != nullptr && t->seq == seq ? t : nullptr;
  }
  void take_intake(TimePoint now, Actions& actions);
  void release(std::unique_ptr<Task> task, Actions& actions);
  // REQUIRES: mutex_ held, on the strand. Hands finished tasks and their
  // places in the bound back: the places to the gate, the tasks to the free
  // stack. True when the gate then counts no unfinished task.
  bool hand_back_now();
  // REQUIRES: mutex_ held, on the strand. hand_back_now(), if anything waits
  // to be handed back.
  void hand_back();
  void on_deadline_timer(std::uint64_t generation);
  void time_out_slot(std::size_t slot, std::vector<std::function<void()>>& hooks,
                     Actions& actions);
  void rearm_deadline_timer();
  void after_failure(Task& task, Error error, bool timeout, Actions& actions);
  void on_backoff_done(std::size_t index, std::uint64_t seq);
  void on_admission_timeout(std::size_t index, std::uint64_t seq);
  void finish_task(Task& task, TaskStatus status, std::optional<Error> error, Actions& actions);
  void admit_waiters();
  void check_drained(bool all_finished, Actions& actions);
  void on_drain_deadline();
  void arm_tick();
  void on_late_completion();

  template <typename F>
  void post(F&& f) {
    asio::post(strand_, [w = weak_from_this(), f = std::forward<F>(f)]() mutable {
      if (auto self = w.lock()) f(*self);
    });
  }
  Duration backoff_for(int retry);

  Runtime& runtime_;
  const FlushManagerConfig config_;
  Logger log_;
  asio::strand<asio::any_io_executor> strand_;
  Executor strand_executor_;

  // Attempt results waiting for the strand. complete() may come from any
  // thread; one posted handler takes every result that has arrived, so a
  // burst of completions costs one wake-up, not one each.
  struct Completion {
    std::size_t index;  // the task's place in table_ when the attempt began
    std::uint64_t seq;
    int number;
    Result<void> result;
  };

  // The gate: the bound's counts in one word, so that submit() checks and
  // takes a place with one compare-and-swap. Low half: tasks accepted and
  // unfinished (queued, running, backing off, or not yet taken by the
  // strand); high half: submissions waiting for space (wait policy).
  static constexpr std::uint64_t kWaitingOne = std::uint64_t{1} << 32;
  static std::uint64_t admitted_of(std::uint64_t gate) noexcept { return gate & (kWaitingOne - 1); }
  static std::uint64_t waiting_of(std::uint64_t gate) noexcept { return gate >> 32; }
  // The inbox word: the newest accepted task not yet taken by the strand
  // (each links to the one accepted before it), or 0; kClosed once a drain
  // has begun, after which no push succeeds. A push and the closed check are
  // one compare-and-swap, so every task accepted before the close is in the
  // inbox when the strand looks after it.
  static constexpr std::uintptr_t kClosed = 1;
  static_assert(alignof(Task) > 1, "the inbox keeps its flag in a task pointer's low bit");

  // REQUIRES: mutex_ held. Moves what submitters pushed onto the inbox to
  // the end of arrived_, in the order they were accepted, and counts them as
  // submitted. stats() calls it too, so that its counts add up.
  void take_inbox() const;
  // Submitters: a finished task to fill, or null (allocate one).
  Task* take_free_task();
  // Any thread. Pushes the chain newest -> ... -> oldest onto the free stack.
  void push_free(Task* newest, Task* oldest) noexcept {
    oldest->next = free_head_.load(std::memory_order_relaxed);
    while (!free_head_.compare_exchange_weak(oldest->next, newest, std::memory_order_release,
                                             std::memory_order_relaxed)) {
    }
  }
  // Strand: after an accepted submission was refused by a close that raced
  // it, the drain may be waiting for its place.
  void recheck_drained();

  // The members below come in groups, each on cache lines of its own: the
  // inbox and the gate (written by submitters and the strand), finished
  // tasks coming back, what only submitters write, attempt results (under
  // intake_mutex_), and what only the strand uses. Sharing a line, each
  // submit() took the line of the strand's arrived_ away from it (perf: a
  // sixth of take_intake's samples on the load of arrived_ beside next_seq_).
  // The inbox replaced a mutex-guarded vector: its lock moved between the
  // submitter and the strand on every no-op task, and perf had a third of
  // the submitter's time in pthread_mutex_lock.
  alignas(kCacheLine) mutable std::atomic<std::uintptr_t> inbox_{0};
  std::atomic<std::uint64_t> gate_{0};
  // True from the post of pump() until a round of it finds nothing to do:
  // submissions and results arriving meanwhile need no wake-up of their own.
  std::atomic<bool> pump_posted_{false};
  // Finished tasks kept for reuse, at most max_queue_size in all (population_):
  // a few hundred bytes each, a small part of what those tasks held at the
  // peak (their payloads). The strand pushes chains; a submitter takes the
  // whole stack into stash_ at once (one submitter at a time, so a pop never
  // meets a task that left and came back). A task built by a submitter and
  // freed by the strand cost two threads a malloc arena lock each; perf
  // showed a sixth of a no-op task's time in that lock.
  alignas(kCacheLine) std::atomic<Task*> free_head_{nullptr};
  // Submitters only. taking_free_ guards stash_: a submitter that finds it
  // set allocates rather than waits.
  alignas(kCacheLine) std::atomic<bool> taking_free_{false};
  Task* stash_ = nullptr;
  // Sequence numbers are drawn before the task is handed in, so the id is
  // built first; a rejected submission leaves a gap in the sequence.
  std::atomic<std::uint64_t> next_seq_{1};
  std::atomic<std::uint64_t> rejected_queue_full_{0};
  std::atomic<std::uint64_t> rejected_shutting_down_{0};
  std::atomic<std::uint64_t> rejected_invalid_{0};
  // Attempt results reported off the strand, under intake_mutex_.
  alignas(kCacheLine) mutable detail::AdaptiveMutex intake_mutex_;
  std::vector<Completion> completions_;
  // Under mutex_: tasks taken from the inbox (by the strand, or by stats()),
  // in total and by priority, and the tasks alive (held or free).
  mutable std::uint64_t submitted_ = 0;
  mutable std::array<std::uint64_t, kPriorityCount> submitted_by_priority_{};
  mutable std::size_t population_ = 0;
  // Under mutex_: taken from the inbox, not yet queued; they keep their capacity.
  alignas(kCacheLine) mutable std::vector<std::unique_ptr<Task>> arrived_;
  std::vector<Completion> inbox_batch_;
  // Strand only: results reported on the strand while pump() runs the
  // attempts it started (an attempt that completes at once); the next round
  // takes them without the intake lock.
  bool in_pump_ = false;
  std::vector<Completion> strand_completions_;
  // Strand only: finished tasks not yet handed back (to the free stack), and
  // the places in the bound (the gate) they free. release() defers the
  // hand-back while nothing waits for space and no drain runs; the next
  // take_intake() hands back the round's tasks at once, or hand_back() before
  // the handler's actions run, so a completion callback always sees its
  // task's place free. A hand-back per finished task was a second write per
  // no-op task to lines submit() uses.
  std::vector<std::unique_ptr<Task>> released_;
  std::size_t released_admitted_ = 0;
  std::size_t released_waiting_ = 0;

  mutable detail::AdaptiveMutex mutex_;
  // The tasks the strand holds (taken from intake, not finished), each at
  // the place it was given when taken: Task::index. A place is given again
  // once its task finishes, most recently freed first, so the table is as
  // long as the most tasks held at once and its busy end stays in cache.
  // Results and timers name a task by (index, seq); held() checks that the
  // place still holds that task, without touching a task the strand gave
  // back (a submitter may be refilling it). Iterated only where order cannot
  // matter (admit_waiters picks by (priority, seq); the drain report is
  // sorted by seq first). A hash map by seq cost a cold node per lookup: a
  // tenth of a no-op task's time on real threads.
  std::vector<std::unique_ptr<Task>> table_;
  std::vector<std::size_t> free_places_;
  TaskQueue queue_;                                       // Queued tasks
  std::vector<Task*> slot_task_;                          // per worker slot: its task, null if free
  std::vector<TimePoint> slot_started_;
  std::vector<TimePoint> slot_deadline_;
  std::size_t busy_slots_ = 0;
  // One timer serves every attempt's deadline: it is armed for the earliest
  // deadline of the running attempts, re-armed only when an earlier one
  // appears, and cancelled when no attempt runs. (A timer per attempt cost an
  // arm and a cancel per task.)
  std::unique_ptr<Timer> deadline_timer_;
  std::optional<TimePoint> armed_deadline_;
  // Bumped at every arming. A firing whose deadline had already passed when
  // the timer was re-armed is still delivered (timers work so); its stale
  // generation tells the handler to ignore it.
  std::uint64_t deadline_generation_ = 0;
  std::size_t waiting_ = 0;  // tasks in table_ in WaitingAdmission
  std::size_t backing_off_ = 0;
  // A yield re-posts pump(); with several io threads the strand then moves
  // to another thread, which must be woken (perf stat: a context switch per
  // yield, a third of the throughput at one yield per 64 rounds). A deadline
  // or backoff timer waits for at most one period.
  static constexpr int kMaxRounds = 1024;
  static constexpr Duration kYieldAfter = std::chrono::microseconds(200);
  bool draining_ = false;
  bool drain_deadline_passed_ = false;
  std::vector<std::move_only_function<void(DrainReport)>> drain_waiters_;
  std::unique_ptr<Timer> drain_timer_;
  std::optional<TimePoint> drain_deadline_;  // armed drain deadline (strand only)
  std::unique_ptr<Timer> tick_timer_;
  std::move_only_function<void()> tick_handler_;
  FlushObserver observer_;  // under mutex_
  bool tick_running_ = false;
  FlushStats counters_;
  detail::LatencyHistogram latency_;
};

// One attempt. Its state (pending -> completed | cancelled) decides races
// between complete(), the timeout and cancellation: the first wins.
class AttemptImpl final : public Attempt {
 public:
  // The id is copied into the attempt, which may outlive the task (whose
  // object the manager reuses): in place, as a std::string
  // copy of an id past 15 characters cost an allocation per attempt.
  AttemptImpl(std::weak_ptr<FlushManager::Impl> owner, std::size_t index, std::uint64_t seq,
              std::string_view id, int number, TimePoint deadline)
      : owner_(std::move(owner)), index_(index), seq_(seq),
        id_size_(std::min(id.size(), id_.size())),
        number_(number), deadline_(deadline) {
    MEMFUSE_ASSERT(id.size() <= id_.size());
    std::memcpy(id_.data(), id.data(), id_size_);
  }

  std::string_view task_id() const noexcept override { return {id_.data(), id_size_}; }
  int number() const noexcept override { return number_; }
  TimePoint deadline() const noexcept override { return deadline_; }

  void complete(Result<void> result) override {
    std::vector<std::function<void()>> unused;  // never run now; destroyed outside the lock
    {
      std::lock_guard lock(mutex_);
      if (state_ != Pending) {
        late = true;
      } else {
        state_ = Completed;
        unused.swap(hooks_);  // hooks often hold the attempt itself: drop them, no cycle
      }
    }
    auto owner = owner_.lock();
    if (!owner) return;
    if (late) {
      owner->post([](FlushManager::Impl& m) { m.on_late_completion(); });
      return;
    }
    owner->deliver_completion(index_, seq_, number_, std::move(result));
  }

  void on_cancel(std::function<void()> fn) override {
    std::unique_lock lock(mutex_);
    if (state_ == Cancelled) {
      lock.unlock();
      if (fn) fn();
      return;
    }
    if (state_ == Completed) {  // it can never be cancelled now
      lock.unlock();
      return;
    }
    hooks_.push_back(std::move(fn));
  }

  bool cancelled() const noexcept override {
    std::lock_guard lock(mutex_);
    return state_ == Cancelled;
  }

  // Moves pending -> cancelled. False if complete() came first. The hooks
  // are returned to run outside every lock.
  bool try_cancel(std::vector<std::function<void()>>& hooks) {
    std::lock_guard lock(mutex_);
    if (state_ != Pending) return false;
    state_ = Cancelled;
    hooks.swap(hooks_);
    return true;
  }

  bool late = false;

 private:
  enum State { Pending, Completed, Cancelled };
  std::weak_ptr<FlushManager::Impl> owner_;
  const std::size_t index_;
  const std::uint64_t seq_;
  std::array<char, kMaxTaskIdSize> id_;
  const std::size_t id_size_;
  const int number_;
  const TimePoint deadline_;
  mutable std::mutex mutex_;
  State state_ = Pending;
  std::vector<std::function<void()>> hooks_;
};

FlushManager::Impl::Impl(Runtime& rt, FlushManagerConfig cfg, Logger log)
    : runtime_(rt),
      config_(std::move(cfg)),
      log_(std::move(log)),
      strand_(asio::make_strand(rt.executor().get())),
      strand_executor_(asio::any_io_executor(strand_)),
      slot_task_(static_cast<std::size_t>(config_.max_workers), nullptr),
      slot_started_(static_cast<std::size_t>(config_.max_workers)),
      slot_deadline_(static_cast<std::size_t>(config_.max_workers)) {
  deadline_timer_ = rt.make_timer(strand_executor_);
  drain_timer_ = rt.make_timer(strand_executor_);
  tick_timer_ = rt.make_timer(strand_executor_);
}

Result<TaskId> FlushManager::Impl::submit(TaskSpec spec) {
  const auto reject = [&](ErrorCode code, std::string message) -> Result<TaskId> {
    if (code == ErrorCode::InvalidArgument) rejected_invalid_.fetch_add(1, std::memory_order_relaxed);
    return fail(code, false, std::move(message));
  };
  if (!valid_kind(spec.kind)) {
    return reject(ErrorCode::InvalidArgument,
                  fmt::format("task kind \"{}\" must be 1..64 characters of a-z, 0-9 and _",
                              spec.kind));
  }
  if (urgency_rank(spec.priority) < 0 || urgency_rank(spec.priority) >= kPriorityCount) {
    return reject(ErrorCode::InvalidArgument,
                  fmt::format("priority value {} is out of range (allowed 0..3)",
                              urgency_rank(spec.priority)));
  }
  const Duration timeout = spec.timeout.value_or(config_.default_timeout);
  if (timeout <= Duration::zero()) {
    return reject(ErrorCode::InvalidArgument,
                  fmt::format("task timeout {} s must be more than 0",
                              duration_to_seconds(timeout)));
  }
  if (!spec.attempt) return reject(ErrorCode::InvalidArgument, "task has no attempt function");

  const auto shutting_down = [&]() -> Result<TaskId> {
    rejected_shutting_down_.fetch_add(1, std::memory_order_relaxed);
    return fail(ErrorCode::ShuttingDown, false,
                "the flush manager is draining and accepts no new tasks");
  };
  // A draining manager refuses at once, full or not.
  if ((inbox_.load(std::memory_order_acquire) & kClosed) != 0) return shutting_down();
  // A place in the bound, or in the line of those waiting for one.
  // Submissions that wait for space keep their turn: a new one waits behind them.
  const auto max = static_cast<std::uint64_t>(config_.max_queue_size);
  bool wait = false;
  for (std::uint64_t gate = gate_.load(std::memory_order_relaxed);;) {
    const bool full = admitted_of(gate) >= max || waiting_of(gate) > 0;
    wait = full && config_.queue_full_policy == QueueFullPolicy::Wait;
    if (full && (!wait || waiting_of(gate) >= max)) {
      rejected_queue_full_.fetch_add(1, std::memory_order_relaxed);
      return fail(ErrorCode::QueueFull, true,
                  fmt::format("the flush queue holds its maximum of {} unfinished tasks "
                              "(buffer.flush_manager.max_queue_size); retry later",
                              config_.max_queue_size));
    }
    if (gate_.compare_exchange_weak(gate, gate + (wait ? kWaitingOne : 1),
                                    std::memory_order_relaxed, std::memory_order_relaxed)) {
      break;
    }
  }

  const TimePoint now = runtime_.clock().now();
  std::unique_ptr<Task> task(take_free_task());
  if (!task) task = std::make_unique<Task>();
  task->seq = next_seq_.fetch_add(1, std::memory_order_relaxed);
  task->id.assign(spec.kind, to_millis(now), task->seq);
  task->kind.assign(spec.kind);
  task->priority = spec.priority;
  task->timeout = timeout;
  task->delivery_deadline = now + config_.delivery_deadline;
  task->payload = std::move(spec.payload);
  task->attempt = std::move(spec.attempt);
  task->on_complete = std::move(spec.on_complete);
  task->state = wait ? State::WaitingAdmission : State::Queued;  // the strand arms a waiter's timer
  TaskId id = task->id.str();

  // The push: one compare-and-swap, refused once a drain has closed the inbox.
  Task* raw = task.get();
  std::uintptr_t head = inbox_.load(std::memory_order_relaxed);
  for (;;) {
    if ((head & kClosed) != 0) break;
    raw->next = reinterpret_cast<Task*>(head);
    if (inbox_.compare_exchange_weak(head, reinterpret_cast<std::uintptr_t>(raw),
                                     std::memory_order_seq_cst, std::memory_order_relaxed)) {
      (void)task.release();  // the inbox owns it now
      break;
    }
  }
  if (task != nullptr) {
    // A drain began after the place was taken: give it back (the task goes
    // to the free stack: the strand counts it as alive). The drain may have
    // counted the place as unfinished, so the strand looks again.
    task->payload.reset();
    task->attempt = nullptr;
    task->on_complete = nullptr;
    Task* back = task.release();
    push_free(back, back);
    gate_.fetch_sub(wait ? kWaitingOne : 1, std::memory_order_relaxed);
    post([](Impl& m) { m.recheck_drained(); });
    return shutting_down();
  }
  // After the push (both sequentially consistent): either this sees the
  // strand's "no pump", or the strand, looking after it cleared the flag,
  // sees this task (pump()).
  if (!pump_posted_.load(std::memory_order_seq_cst) && claim_pump()) post_pump();
  return id;
}

FlushManager::Impl::Task* FlushManager::Impl::take_free_task() {
  if (taking_free_.exchange(true, std::memory_order_acquire)) return nullptr;  // another submitter is
  Task* t = stash_;
  if (t == nullptr) t = free_head_.exchange(nullptr, std::memory_order_acquire);
  if (t != nullptr) {
    stash_ = t->next;
    t->next = nullptr;
    // The next submit() overwrites it; the strand touched it last, on another
    // core. (Only the address is used: a prefetch never faults.)
    if (stash_ != nullptr) prefetch_task(*stash_);
  }
  taking_free_.store(false, std::memory_order_release);
  return t;
}

void FlushManager::Impl::take_inbox() const {
  std::uintptr_t head = inbox_.load(std::memory_order_relaxed);
  if ((head & ~kClosed) == 0) return;
  while (!inbox_.compare_exchange_weak(head, head & kClosed, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
  }
  const std::size_t first = arrived_.size();
  for (Task* t = reinterpret_cast<Task*>(head & ~kClosed); t != nullptr;) {
    Task* older = std::exchange(t->next, nullptr);
    arrived_.emplace_back(t);
    ++submitted_;
    ++submitted_by_priority_[prio_index(t->priority)];
    if (!t->counted) {
      t->counted = true;
      ++population_;
    }
    t = older;
  }
  std::reverse(arrived_.begin() + static_cast<std::ptrdiff_t>(first), arrived_.end());
}

void FlushManager::Impl::recheck_drained() {
  Actions actions;
  {
    std::lock_guard lock(mutex_);
    check_drained(gate_.load(std::memory_order_relaxed) == 0, actions);
  }
  run_all(actions);
}

FlushManager::Impl::~Impl() {
  const auto free_chain = [](Task* t) {
    while (t != nullptr) delete std::exchange(t, t->next);
  };
  free_chain(reinterpret_cast<Task*>(inbox_.load(std::memory_order_acquire) & ~kClosed));
  free_chain(free_head_.load(std::memory_order_acquire));
  free_chain(stash_);
}

void FlushManager::Impl::pump() {
  Actions actions;
  std::optional<TimePoint> started;
  in_pump_ = true;
  struct Leave {
    bool& flag;
    ~Leave() { flag = false; }
  } leave{in_pump_};
  for (int round = 1;; ++round) {
    bool again = true;
    {
      std::lock_guard lock(mutex_);
      const TimePoint now = runtime_.clock().now();  // one reading per round: a clock read per task showed in profiles
      if (!started) started = now;
      take_in_and_start(now, actions);  // freed workers take the most urgent tasks now
      // Disarm only when nothing runs at all (an armed deadline that is too
      // early costs one harmless firing; a disarm and re-arm per task costs more).
      if (busy_slots_ == 0 && armed_deadline_) rearm_deadline_timer();
      if (actions.empty()) {
        MEMFUSE_ASSERT(strand_completions_.empty());  // only run_all() below adds to it
        // No pump from here on, unless something was handed in meanwhile
        // (submit() pushes, then looks at the flag; this clears it, then looks).
        pump_posted_.store(false, std::memory_order_seq_cst);
        bool empty = (inbox_.load(std::memory_order_seq_cst) & ~kClosed) == 0;
        if (empty) {
          std::lock_guard intake(intake_mutex_);
          empty = completions_.empty();
        }
        if (empty || !claim_pump()) return;  // claimed by a submitter: its pump runs next
        continue;  // handed in since this round took the intake: take it
      }
      if (round == kMaxRounds || now - *started >= kYieldAfter) {
        again = false;
        post_pump();  // pump_posted stays true: this is the posted pump
      }
    }
    run_all(actions);
    if (!again) return;
  }
}

// REQUIRES: mutex_ held, on the strand. Takes what other threads handed in:
// accepted tasks join the queue (or wait for space, under the wait policy),
// and attempt results finish their attempts.
void FlushManager::Impl::take_intake(TimePoint now, Actions& actions) {
  // Results reported on the strand first: the tasks they finish are handed
  // back with the rest before the inbox is taken.
  for (auto& c : strand_completions_) finish_attempt(c, now, actions);
  strand_completions_.clear();
  if (!released_.empty()) (void)hand_back_now();  // nothing waits, no drain: see release()
  take_inbox();
  {
    std::lock_guard lock(intake_mutex_);
    if (!completions_.empty()) inbox_batch_.swap(completions_);
  }
  if (!arrived_.empty()) {
    bool waiters = false;
    for (std::size_t i = 0; i < arrived_.size(); ++i) {
      // The tasks were written on the submitters' threads: their lines are
      // in another core's cache, or in none when thousands arrive at once.
      // Fetching a few tasks ahead overlaps those misses (they were half of
      // this loop and of starting the task).
      if (i + kPrefetchAhead < arrived_.size()) prefetch_task(*arrived_[i + kPrefetchAhead]);
      auto& owned = arrived_[i];
      Task& task = *owned;
      const std::uint64_t seq = task.seq;
      if (free_places_.empty()) {
        task.index = table_.size();
        table_.push_back(std::move(owned));
      } else {
        task.index = free_places_.back();
        free_places_.pop_back();
        MEMFUSE_ASSERT(table_[task.index] == nullptr);
        table_[task.index] = std::move(owned);
      }
      if (task.state != State::WaitingAdmission) {
        enqueue(task);
        continue;
      }
      ++waiting_;
      waiters = true;
      task.timer = runtime_.make_timer(strand_executor_);
      task.timer->async_wait_until(now + config_.queue_full_wait,
                                   [w = weak_from_this(), index = task.index, seq](std::error_code ec) {
                                     if (auto self = w.lock(); self && !ec) {
                                       self->on_admission_timeout(index, seq);
                                     }
                                   });
    }
    arrived_.clear();
    if (waiters) admit_waiters();  // space may have been freed before they arrived
  }
  for (auto& c : inbox_batch_) finish_attempt(c, now, actions);
  inbox_batch_.clear();
}

// REQUIRES: mutex_ held, on the strand. Takes in what was handed in, then
// gives every free worker the most urgent queued task. The two go together:
// a task handed in is ranked with the queued ones before any worker starts
// one (started without the intake, a freed worker took a task queued
// earlier while a more urgent one waited there: invariant 4,
// FlushManagerProperties.StrictPriorityOrder).
void FlushManager::Impl::take_in_and_start(TimePoint now, Actions& actions) {
  take_intake(now, actions);
  start_ready_attempts(now, actions);
  hand_back();  // what the results taken from intake finished
}

// REQUIRES: mutex_ held, on the strand; called by take_in_and_start only.
// Gives every free worker the most urgent queued task.
void FlushManager::Impl::start_ready_attempts(TimePoint now, Actions& actions) {
  for (std::size_t slot = 0; slot < slot_task_.size() && !queue_.empty(); ++slot) {
    if (slot_task_[slot] != nullptr) continue;
    const Key key = queue_.pop();
    Task& task = *static_cast<Task*>(key.task);  // in table_ while queued
    if (!queue_.empty()) prefetch_task(*static_cast<Task*>(queue_.top().task));  // the next to start
    MEMFUSE_ASSERT(task.seq == key.seq);
    MEMFUSE_ASSERT(task.state == State::Queued);
    start_attempt(task, slot, now, actions);
  }
}

// REQUIRES: mutex_ held. Puts the task in the queue under its own sequence number.
void FlushManager::Impl::enqueue(Task& task) {
  task.state = State::Queued;
  queue_.push(Key{task.priority, task.seq, &task});
  counters_.queue_depth_max = std::max(counters_.queue_depth_max, queue_.size());
  observe(FlushEvent::Kind::Queued, task);
}

// One pump handler in flight is enough for any number of tasks.
void FlushManager::Impl::schedule_pump() {
  if (claim_pump()) post_pump();
}

// REQUIRES: mutex_ held, on the strand, slot free.
void FlushManager::Impl::start_attempt(Task& task, std::size_t slot, TimePoint now, Actions& actions) {
  task.state = State::Running;
  ++task.attempts;
  ++counters_.started;
  if (task.attempts > 1) ++counters_.retried;
  slot_task_[slot] = &task;
  task.slot = slot;
  slot_started_[slot] = now;
  const TimePoint deadline = now + task.timeout;
  slot_deadline_[slot] = deadline;
  ++busy_slots_;
  task.current = std::make_shared<AttemptImpl>(weak_from_this(), task.index, task.seq, task.id.view(),
                                               task.attempts, deadline);
  observe(FlushEvent::Kind::Started, task, slot);
  if (!armed_deadline_ || deadline < *armed_deadline_) rearm_deadline_timer();
  // The attempt function is user code: run it after unlocking. The task
  // cannot be erased before then: only strand handlers erase, and we are one.
  actions.starts.push_back(Actions::Start{&task.attempt, task.current});
}

void FlushManager::Impl::deliver_completion(std::size_t index, std::uint64_t seq, int number,
                                            Result<void> result) {
  // On the strand inside pump(): its next round takes the result.
  if (strand_.running_in_this_thread() && in_pump_) {
    strand_completions_.push_back(Completion{index, seq, number, std::move(result)});
    return;
  }
  bool must_post = false;
  {
    std::lock_guard lock(intake_mutex_);
    completions_.push_back(Completion{index, seq, number, std::move(result)});
    must_post = claim_pump();
  }
  if (must_post) post_pump();
}

// REQUIRES: mutex_ held, on the strand.
void FlushManager::Impl::finish_attempt(Completion& c, TimePoint now, Actions& actions) {
  Task* held_task = held(c.index, c.seq);
  if (held_task == nullptr) return;
  Task& task = *held_task;
  if (task.state != State::Running || task.attempts != c.number) return;
  const std::size_t slot = task.slot;
  MEMFUSE_ASSERT(slot_task_[slot] == &task);
  latency_.add(now - slot_started_[slot]);
  observe(FlushEvent::Kind::Completed, task, slot);
  slot_task_[slot] = nullptr;
  --busy_slots_;
  task.current.reset();
  if (c.result) {
    finish_task(task, TaskStatus::Success, std::nullopt, actions);
  } else {
    after_failure(task, std::move(c.result.error()), false, actions);
  }
}

// REQUIRES: mutex_ held, on the strand. Arms the deadline timer for the
// earliest running attempt's deadline, or disarms it when none runs.
void FlushManager::Impl::rearm_deadline_timer() {
  std::optional<TimePoint> earliest;
  for (std::size_t slot = 0; slot < slot_task_.size(); ++slot) {
    if (slot_task_[slot] != nullptr && (!earliest || slot_deadline_[slot] < *earliest)) {
      earliest = slot_deadline_[slot];
    }
  }
  if (earliest == armed_deadline_) return;
  if (armed_deadline_) deadline_timer_->cancel();
  armed_deadline_ = earliest;
  ++deadline_generation_;
  if (!earliest) return;
  deadline_timer_->async_wait_until(
      *earliest, [w = weak_from_this(), g = deadline_generation_](std::error_code ec) {
        if (auto self = w.lock(); self && !ec) self->on_deadline_timer(g);
      });
}

void FlushManager::Impl::on_deadline_timer(std::uint64_t generation) {
  Actions actions;
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard lock(mutex_);
    if (generation != deadline_generation_) return;  // superseded by a later arming
    armed_deadline_.reset();
    const TimePoint now = runtime_.clock().now();
    for (std::size_t slot = 0; slot < slot_task_.size(); ++slot) {
      if (slot_task_[slot] != nullptr && slot_deadline_[slot] <= now) {
        time_out_slot(slot, hooks, actions);
      }
    }
    take_in_and_start(now, actions);
    rearm_deadline_timer();
  }
  for (auto& h : hooks) {
    if (h) h();
  }
  run_all(actions);
}

// REQUIRES: mutex_ held, on the strand; the slot's attempt is at its deadline.
void FlushManager::Impl::time_out_slot(std::size_t slot, std::vector<std::function<void()>>& hooks,
                                       Actions& actions) {
  Task& task = *slot_task_[slot];
  MEMFUSE_ASSERT(task.state == State::Running);
  // If complete() came first, its result is already on its way: let it decide.
  if (!task.current->try_cancel(hooks)) return;
  ++counters_.attempt_timeouts;
  latency_.add(runtime_.clock().now() - slot_started_[slot]);
  observe(FlushEvent::Kind::TimedOut, task, slot);
  slot_task_[slot] = nullptr;  // the worker is free at the deadline itself
  --busy_slots_;
  const int number = task.attempts;
  task.current.reset();
  after_failure(task,
                Error(ErrorCode::Timeout, true,
                      fmt::format("attempt {} of task {} passed its {} s timeout", number,
                                  task.id.view(), duration_to_seconds(task.timeout))),
                true, actions);
}

Duration FlushManager::Impl::backoff_for(int retry) {
  const auto& r = config_.retry;
  const double base = static_cast<double>(r.backoff_base.count());
  double d = base * std::ldexp(1.0, std::min(retry - 1, 60));
  d = std::min(d, static_cast<double>(r.backoff_cap.count()));
  const double factor = 1.0 + r.jitter * (2.0 * runtime_.random().uniform01() - 1.0);
  return Duration(static_cast<std::int64_t>(std::max(0.0, d * factor)));
}

// REQUIRES: mutex_ held, on the strand. The task's attempt has ended.
void FlushManager::Impl::after_failure(Task& task, Error error, bool timeout, Actions& actions) {
  task.last_was_timeout = timeout;
  const bool retryable = error.retryable();
  task.last_error = std::move(error);
  const int retries_so_far = task.attempts - 1;
  if (!retryable || retries_so_far >= config_.retry.max_retries || drain_deadline_passed_) {
    finish_task(task, timeout ? TaskStatus::TimedOut : TaskStatus::Failed, task.last_error,
                actions);
    return;
  }
  const TimePoint now = runtime_.clock().now();
  const Duration backoff = backoff_for(task.attempts);
  if (now + backoff >= task.delivery_deadline) {
    finish_task(task, timeout ? TaskStatus::TimedOut : TaskStatus::Failed, task.last_error,
                actions);
    return;
  }
  task.state = State::BackingOff;
  ++backing_off_;
  if (!task.timer) task.timer = runtime_.make_timer(strand_executor_);
  task.timer->async_wait_until(now + backoff,
                               [w = weak_from_this(), index = task.index,
                                seq = task.seq](std::error_code ec) {
                                 if (auto self = w.lock(); self && !ec) {
                                   self->on_backoff_done(index, seq);
                                 }
                               });
}

void FlushManager::Impl::on_backoff_done(std::size_t index, std::uint64_t seq) {
  {
    std::lock_guard lock(mutex_);
    Task* task = held(index, seq);
    if (task == nullptr || task->state != State::BackingOff) return;
    --backing_off_;
    enqueue(*task);  // with its original sequence number
  }
  pump();
}

void FlushManager::Impl::on_admission_timeout(std::size_t index, std::uint64_t seq) {
  Actions actions;
  {
    std::lock_guard lock(mutex_);
    Task* held_task = held(index, seq);
    if (held_task == nullptr || held_task->state != State::WaitingAdmission) return;
    Task& task = *held_task;
    --waiting_;
    finish_task(task, TaskStatus::Failed,
                Error(ErrorCode::QueueFull, true,
                      fmt::format("task {} waited {} s for space in the flush queue "
                                  "(buffer.flush_manager.queue_full_wait_s) and got none",
                                  task.id.view(), duration_to_seconds(config_.queue_full_wait))),
                actions);
    hand_back();
  }
  run_all(actions);
}

// REQUIRES: mutex_ held, on the strand. Gives the task its one final outcome.
void FlushManager::Impl::finish_task(Task& task, TaskStatus status, std::optional<Error> error,
                                     Actions& actions) {
  if (observer_) {
    FlushEvent e;
    e.kind = FlushEvent::Kind::Finished;
    e.seq = task.seq;
    e.priority = task.priority;
    e.attempt = task.attempts;
    e.at = runtime_.clock().now();
    e.status = status;
    observer_(e);
  }
  switch (status) {
    case TaskStatus::Success:
      ++counters_.succeeded;
      ++counters_.succeeded_by_priority[prio_index(task.priority)];
      break;
    case TaskStatus::Failed: ++counters_.failed; break;
    case TaskStatus::TimedOut: ++counters_.timed_out; break;
    case TaskStatus::Cancelled: ++counters_.cancelled; break;
  }
  if (status != TaskStatus::Success && status != TaskStatus::Cancelled) {
    log_.warn("flush task {} {} after {} attempt(s): {}", task.id.view(), to_string(status),
              task.attempts, error ? error->to_string() : std::string("?"));
  }
  if (task.on_complete) {
    // The id is copied out: the task object is reused.
    actions.completions.push_back(
        Actions::Completion{std::move(task.on_complete),
                            TaskOutcome{task.id.str(), status, task.attempts, std::move(error)},
                            std::move(task.payload)});
  }
  const std::size_t index = task.index;
  MEMFUSE_ASSERT(table_[index].get() == &task);
  std::unique_ptr<Task> owned = std::move(table_[index]);
  free_places_.push_back(index);
  release(std::move(owned), actions);  // `task` is gone from here on
}

// REQUIRES: mutex_ held, on the strand; `task` has its final outcome. Gives
// its place in the bound back to intake, admits a waiting submission into it,
// and reports a drain that this finish completes.
void FlushManager::Impl::release(std::unique_ptr<Task> task, Actions& actions) {
  const bool was_waiting = task->state == State::WaitingAdmission;
  // Everything the user gave it goes now; the strings keep their buffers.
  task->payload.reset();
  task->attempt = nullptr;
  task->on_complete = nullptr;
  task->state = State::Queued;
  task->attempts = 0;
  task->last_error.reset();
  task->last_was_timeout = false;
  task->current.reset();
  task->timer.reset();
  ++(was_waiting ? released_waiting_ : released_admitted_);
  released_.push_back(std::move(task));
  // Waiters want the place now, and a drain may end with this task: hand
  // back at once. Otherwise the next take_intake() (or hand_back()) does.
  if (waiting_ == 0 && !draining_) return;
  const bool all_finished = hand_back_now();
  admit_waiters();
  check_drained(all_finished, actions);
}

bool FlushManager::Impl::hand_back_now() {
  const std::uint64_t given = released_admitted_ + released_waiting_ * kWaitingOne;
  const std::uint64_t before = gate_.fetch_sub(given, std::memory_order_relaxed);
  MEMFUSE_ASSERT(admitted_of(before) >= released_admitted_ && waiting_of(before) >= released_waiting_);
  released_admitted_ = 0;
  released_waiting_ = 0;
  // Kept for reuse while the tasks alive number at most max_queue_size;
  // clear() frees the rest.
  const auto keep = static_cast<std::size_t>(config_.max_queue_size);
  Task* newest = nullptr;
  Task* oldest = nullptr;
  for (auto& t : released_) {
    if (population_ > keep) {
      --population_;
      continue;
    }
    Task* r = t.release();
    r->next = newest;
    newest = r;
    if (oldest == nullptr) oldest = r;
  }
  released_.clear();
  if (newest != nullptr) push_free(newest, oldest);
  return before == given;
}

void FlushManager::Impl::hand_back() {
  if (released_.empty()) return;
  (void)hand_back_now();
}

// REQUIRES: mutex_ held, on the strand. Admits the most urgent waiting
// submissions the strand has taken while there is space.
void FlushManager::Impl::admit_waiters() {
  const auto max = static_cast<std::uint64_t>(config_.max_queue_size);
  while (waiting_ > 0) {
    for (std::uint64_t gate = gate_.load(std::memory_order_relaxed);;) {
      if (admitted_of(gate) >= max) return;
      MEMFUSE_ASSERT(waiting_of(gate) > 0);
      if (gate_.compare_exchange_weak(gate, gate + 1 - kWaitingOne, std::memory_order_relaxed,
                                      std::memory_order_relaxed)) {
        break;
      }
    }
    Task* best = nullptr;
    for (const auto& t : table_) {
      if (t == nullptr || t->state != State::WaitingAdmission) continue;
      if (best == nullptr || runs_before(Key{t->priority, t->seq}, Key{best->priority, best->seq})) {
        best = t.get();
      }
    }
    MEMFUSE_ASSERT(best != nullptr);
    --waiting_;
    if (best->timer) best->timer->cancel();
    enqueue(*best);
    schedule_pump();
  }
}

// REQUIRES: mutex_ held. `all_finished`: intake counts no unfinished task.
void FlushManager::Impl::check_drained(bool all_finished, Actions& actions) {
  if (!draining_ || !all_finished || drain_waiters_.empty()) return;
  drain_timer_->cancel();
  for (auto& done : drain_waiters_) {
    actions.push_back([done = std::move(done), in_time = !drain_deadline_passed_]() mutable {
      done(DrainReport{in_time, {}});
    });
  }
  drain_waiters_.clear();
}

void FlushManager::Impl::drain(TimePoint deadline,
                               std::move_only_function<void(DrainReport)> done, bool now) {
  {
    std::lock_guard lock(mutex_);
    draining_ = true;
    drain_waiters_.push_back(std::move(done));
    inbox_.fetch_or(kClosed, std::memory_order_seq_cst);
  }
  post([deadline, now](Impl& m) {
    Actions actions;
    {
      std::lock_guard lock(m.mutex_);
      m.tick_timer_->cancel();
      m.tick_running_ = false;
      // Several drains share one deadline: the earliest asked for.
      if (!now && (!m.drain_deadline_ || deadline < *m.drain_deadline_)) {
        if (m.drain_deadline_) m.drain_timer_->cancel();
        m.drain_deadline_ = deadline;
        m.drain_timer_->async_wait_until(deadline, [w = m.weak_from_this()](std::error_code ec) {
          if (auto self = w.lock(); self && !ec) self->on_drain_deadline();
        });
      }
      m.check_drained(m.gate_.load(std::memory_order_relaxed) == 0, actions);
    }
    run_all(actions);
    if (now) m.on_drain_deadline();
  });
}

// Cancels everything that remains and reports it, with payloads.
void FlushManager::Impl::on_drain_deadline() {
  Actions actions;
  std::vector<std::function<void()>> hooks;
  DrainReport report;
  {
    std::lock_guard lock(mutex_);
    drain_deadline_passed_ = true;
    if (drain_waiters_.empty()) return;  // already reported
    // Taken first: finishing the tasks below must not report an empty drain.
    auto waiters = std::move(drain_waiters_);
    drain_waiters_.clear();
    // Every task accepted before the drain began joins table_ first.
    take_intake(runtime_.clock().now(), actions);
    const Error cancelled(ErrorCode::Cancelled, false,
                          "the drain deadline passed before the task could finish");
    std::vector<Task*> held_tasks;
    held_tasks.reserve(table_.size());
    for (const auto& t : table_) {
      if (t != nullptr) held_tasks.push_back(t.get());
    }
    // The report lists tasks in submission order.
    std::sort(held_tasks.begin(), held_tasks.end(),
              [](const Task* a, const Task* b) { return a->seq < b->seq; });
    for (Task* t : held_tasks) {
      Task& task = *t;
      if (task.state == State::Running) {
        std::vector<std::function<void()>> h;
        task.current->try_cancel(h);  // a complete() racing us becomes a late completion
        for (auto& f : h) hooks.push_back(std::move(f));
        MEMFUSE_ASSERT(slot_task_[task.slot] == &task);
        slot_task_[task.slot] = nullptr;
        --busy_slots_;
      } else if (task.state == State::BackingOff || task.state == State::WaitingAdmission) {
        if (task.timer) task.timer->cancel();
      }
      report.unfinished.push_back(
          UnfinishedTask{task.id.str(), task.kind, task.priority, task.attempts, task.payload});
    }
    queue_.clear();
    backing_off_ = 0;
    waiting_ = 0;
    rearm_deadline_timer();  // disarms: nothing runs any more
    // finish_task gives each task back (for reuse, or freed): each is used once, before.
    for (Task* t : held_tasks) {
      Task& task = *t;
      task.last_error = cancelled;
      finish_task(task, TaskStatus::Cancelled, cancelled, actions);
    }
    report.completed_in_time = report.unfinished.empty();
    for (auto& done : waiters) {
      actions.push_back([done = std::move(done), report]() mutable { done(std::move(report)); });
    }
  }
  for (auto& h : hooks) {
    if (h) h();
  }
  run_all(actions);
}

void FlushManager::Impl::set_tick_handler(std::move_only_function<void()> fn) {
  std::lock_guard lock(mutex_);
  tick_handler_ = std::move(fn);
}

void FlushManager::Impl::arm_tick() {
  std::lock_guard lock(mutex_);
  if (draining_ || !config_.enable_auto_flush) return;
  tick_running_ = true;
  tick_timer_->async_wait_until(
      runtime_.clock().now() + config_.flush_interval, [w = weak_from_this()](std::error_code ec) {
        auto self = w.lock();
        if (!self || ec) return;
        std::move_only_function<void()> handler;
        {
          std::lock_guard guard(self->mutex_);
          if (self->draining_) return;
          handler = std::move(self->tick_handler_);
        }
        if (handler) {
          handler();
          std::lock_guard guard(self->mutex_);
          if (!self->tick_handler_) self->tick_handler_ = std::move(handler);
        }
        self->arm_tick();
      });
}

void FlushManager::Impl::on_late_completion() {
  std::lock_guard lock(mutex_);
  ++counters_.late_completions;
}

FlushStats FlushManager::Impl::stats() const {
  std::lock_guard lock(mutex_);
  // What the inbox holds joins arrived_ (taken, not yet queued), so that
  // every task counted as submitted is counted once below.
  take_inbox();
  FlushStats s = counters_;
  s.submitted = submitted_;
  s.submitted_by_priority = submitted_by_priority_;
  s.rejected_queue_full = rejected_queue_full_.load(std::memory_order_relaxed);
  s.rejected_shutting_down = rejected_shutting_down_.load(std::memory_order_relaxed);
  s.rejected_invalid = rejected_invalid_.load(std::memory_order_relaxed);
  s.queue_depth = queue_.size();
  for (const Priority p : kPrioritiesByUrgency) s.queued_by_priority[prio_index(p)] = queue_.size_of(p);
  s.waiting_admission = waiting_;
  for (const auto& t : arrived_) {  // accepted, not yet queued by the strand
    if (t->state == State::WaitingAdmission) {
      ++s.waiting_admission;
    } else {
      ++s.queue_depth;
      ++s.queued_by_priority[prio_index(t->priority)];
    }
  }
  s.active_workers = busy_slots_;
  s.backing_off = backing_off_;
  s.attempt_latency = latency_.summary();
  return s;
}

// ---------------------------------------------------------------------------

Result<std::unique_ptr<FlushManager>> FlushManager::create(Runtime& runtime,
                                                           FlushManagerConfig config,
                                                           Logger logger) {
  Config whole;
  whole.buffer.flush_manager = config;
  if (auto ok = whole.validate(); !ok) return Unexpected(ok.error());
  auto impl = std::make_shared<Impl>(runtime, std::move(config), std::move(logger));
  impl->post([](Impl& m) { m.arm_tick(); });
  return std::unique_ptr<FlushManager>(new FlushManager(std::move(impl)));
}

FlushManager::FlushManager(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

FlushManager::~FlushManager() {
  std::lock_guard lock(impl_->mutex_);
  const std::uint64_t gate = impl_->gate_.load(std::memory_order_relaxed);
  if (const std::uint64_t n = Impl::admitted_of(gate) + Impl::waiting_of(gate); n > 0) {
    impl_->log_.error("FlushManager destroyed with {} unfinished task(s) and no outcome for them; "
                      "call drain() or stop() first",
                      n);
  }
}

Result<TaskId> FlushManager::submit(TaskSpec task) { return impl_->submit(std::move(task)); }
void FlushManager::set_tick_handler(std::move_only_function<void()> on_tick) {
  impl_->set_tick_handler(std::move(on_tick));
}

void FlushManager::set_observer(FlushObserver observer) {
  std::lock_guard lock(impl_->mutex_);
  impl_->observer_ = std::move(observer);
}
void FlushManager::drain(TimePoint deadline, std::move_only_function<void(DrainReport)> done) {
  impl_->drain(deadline, std::move(done), false);
}
void FlushManager::stop(std::move_only_function<void(DrainReport)> done) {
  impl_->drain(TimePoint{}, std::move(done), true);
}
FlushStats FlushManager::stats() const { return impl_->stats(); }

std::string FlushStats::to_json() const {
  using nlohmann::json;
  auto ns = [](Duration d) { return d.count(); };
  json by_priority = json::object();
  for (Priority p : kPrioritiesByUrgency) {
    by_priority[std::string(to_string(p))] = {
        {"queued", queued_by_priority[prio_index(p)]},
        {"submitted", submitted_by_priority[prio_index(p)]},
        {"succeeded", succeeded_by_priority[prio_index(p)]}};
  }
  json j = {
      {"submitted", submitted},
      {"started", started},
      {"succeeded", succeeded},
      {"failed", failed},
      {"timed_out", timed_out},
      {"cancelled", cancelled},
      {"retried", retried},
      {"attempt_timeouts", attempt_timeouts},
      {"late_completions", late_completions},
      {"rejected",
       {{"total", rejected()},
        {"queue_full", rejected_queue_full},
        {"shutting_down", rejected_shutting_down},
        {"invalid_argument", rejected_invalid}}},
      {"queue_depth", queue_depth},
      {"queue_depth_max", queue_depth_max},
      {"active_workers", active_workers},
      {"backing_off", backing_off},
      {"waiting_admission", waiting_admission},
      {"by_priority", by_priority},
      {"attempt_latency_ns",
       {{"count", attempt_latency.count},
        {"min", ns(attempt_latency.min)},
        {"mean", ns(attempt_latency.mean)},
        {"max", ns(attempt_latency.max)},
        {"p50", ns(attempt_latency.p50)},
        {"p99", ns(attempt_latency.p99)}}},
  };
  return j.dump();
}

}  // namespace memfuse
