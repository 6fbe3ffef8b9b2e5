#include "memfuse/hybrid_buffer.h"

#include <algorithm>
#include <atomic>
#include <iterator>
#include <map>
#include <mutex>
#include <unordered_set>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "memfuse/assert.h"
#include "memfuse/chunker.h"
#include "memfuse/executor.h"
#include "memfuse/validation.h"

namespace memfuse {

namespace asio = boost::asio;

std::string_view to_string(FlushTrigger t) noexcept {
  switch (t) {
    case FlushTrigger::Size: return "size";
    case FlushTrigger::Timer: return "timer";
    case FlushTrigger::Manual: return "manual";
    case FlushTrigger::Drain: return "drain";
  }
  return "?";
}

Priority priority_of(FlushTrigger t) noexcept {
  switch (t) {
    case FlushTrigger::Size: return Priority::Normal;
    case FlushTrigger::Timer: return Priority::Low;
    case FlushTrigger::Manual: return Priority::High;
    case FlushTrigger::Drain: return Priority::Critical;
  }
  return Priority::Normal;
}

std::string HybridBufferStats::to_json() const {
  nlohmann::json j = {
      {"total_rounds_received", total_rounds_received},
      {"total_chunks_created", total_chunks_created},
      {"total_flushes", total_flushes},
      {"total_auto_flushes", total_auto_flushes},
      {"total_manual_flushes", total_manual_flushes},
      {"pending_flush_tasks", pending_flush_tasks},
      {"current_buffer_size", {{"rounds", buffer_rounds}, {"chunks", buffer_chunks}}},
      {"last_flush_time",
       last_flush_time ? nlohmann::json(std::chrono::duration<double>(
                                            last_flush_time->time_since_epoch())
                                            .count())
                       : nlohmann::json()},
      {"total_successful_flushes", total_successful_flushes},
      {"total_failed_flushes", total_failed_flushes},
      {"flushes_by_trigger",
       {{"size", flushes_by_trigger[0]},
        {"timer", flushes_by_trigger[1]},
        {"manual", flushes_by_trigger[2]},
        {"drain", flushes_by_trigger[3]}}},
      {"rounds_persisted", rounds_persisted},
      {"rounds_restored", rounds_restored},
      {"leg_writes_skipped", leg_writes_skipped},
      {"flush_submit_rejected", flush_submit_rejected},
      {"rejected_invalid", rejected_invalid},
      {"rejected_overloaded", rejected_overloaded},
      {"rejected_shutting_down", rejected_shutting_down},
      {"prepared_runs_started", prepared_runs_started},
      {"prepared_vectors_used", prepared_vectors_used},
      {"prepared_vectors_ready", prepared_vectors_ready},
      {"in_flight_rounds", in_flight_rounds},
      {"pending_rounds", pending_rounds},
      {"pending_bytes", pending_bytes},
      {"flush_manager_stats", nlohmann::json::parse(flush_manager.to_json())},
  };
  return j.dump(2);
}

namespace {

// A copy of `c` with `text` for its text, made without reading c.text: the
// first attempt of an in-flight batch may be filling that in on another
// thread (see store_chunks).
Chunk with_text(const Chunk& c, std::string text) {
  return Chunk{c.id, c.round_id, c.session_id, c.index, std::move(text)};
}

// Calls f(round, its first chunk, its chunk count) for every round of a
// batch-shaped sequence, in order.
template <typename F>
void for_each_round(const std::vector<Round>& rounds, const std::vector<EmbeddedChunk>& chunks,
                    const std::vector<std::size_t>& chunk_counts, F&& f) {
  std::size_t c = 0;
  for (std::size_t i = 0; i < rounds.size(); ++i) {
    f(rounds[i], chunks.data() + c, chunk_counts[i]);
    c += chunk_counts[i];
  }
}

// The buffered rounds, kept in a batch's shape (a Run) so that a cut hands
// them to the batch whole: three vectors move, under the data lock, instead of
// every round and chunk (that loop held the lock ~30 us per batch of 100
// rounds, most of it cache misses on rounds added milliseconds before).
//
// Rounds go into runs with room for a size-triggered batch, so that add()
// does not grow a vector (a growth moves every round of the run under the
// lock). The run after a cut is made ahead (a spare), so that the next add()
// does not allocate it. When the buffer outgrows a run (the flush queue
// refused, or the size trigger is larger than a run), another run starts (of
// at least 1 024 rounds); a cut then joins the runs, which is what every cut
// did before.
//
// A buffer that grows takes fresh memory, and the first touch of a fresh page
// is a page fault: on a virtual machine, 5-30 us, in the add() that touched it
// (the one-in-three add() that got a new page for its embedding, and the
// add() that reached a new page of a run). So memory for growth is touched
// ahead, off the callers' threads: the first run at create(), and each further
// run (its arrays and a vector per expected chunk) by a job on the runtime's
// executor (prepared runs): spares, asked for by the add() that cuts, right
// after it woke that executor for the flush; and growth runs, asked for when
// the current run is half full and will fill before a cut. add() copies its
// embedding into a prepared vector and frees its own, which the next add()
// then reuses.
//
// Chunks keep their ids and vectors but no text: a chunk's text is derived
// from its round (chunk_round), and holding it twice cost a third of the
// buffer's memory. The stores and search results get it back from the round.
class Buffered {
 public:
  struct Run {
    std::vector<Round> rounds;              // by seq
    std::vector<EmbeddedChunk> chunks;      // grouped by round, in round order; chunk.text empty
    std::vector<std::size_t> chunk_counts;  // per round
    // A prepared run's embedding vectors, touched, to be filled by add()
    // (moved to the buffer's stock when the run starts).
    std::vector<std::vector<float>> vectors;
  };
  struct RunSize {
    std::size_t rounds = 0;
    std::size_t chunks = 0;
  };

  [[nodiscard]] static Run make_run(RunSize size) {
    Run run;
    run.rounds.reserve(size.rounds);
    run.chunk_counts.reserve(size.rounds);
    run.chunks.reserve(size.chunks);
    return run;
  }

  // A run whose arrays, and `dimension` floats per expected chunk, are
  // touched now (see above): default-constructed elements written over every
  // page, then destroyed; the capacity stays.
  [[nodiscard]] static Run make_prepared_run(RunSize size, std::size_t dimension) {
    Run run;
    run.rounds.resize(size.rounds);
    run.rounds.clear();
    run.chunk_counts.resize(size.rounds);
    run.chunk_counts.clear();
    run.chunks.resize(size.chunks);
    run.chunks.clear();
    run.vectors.reserve(size.chunks);
    for (std::size_t i = 0; i < size.chunks; ++i) run.vectors.emplace_back(dimension, 0.0f);
    return run;
  }

  explicit Buffered(std::size_t run_rounds) : run_rounds_(std::max<std::size_t>(run_rounds, 1)) {}

  [[nodiscard]] bool empty() const noexcept { return rounds_ == 0; }
  [[nodiscard]] std::size_t size() const noexcept { return rounds_; }
  [[nodiscard]] std::size_t chunk_count() const noexcept { return chunks_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }

  // REQUIRES: `round` comes after every buffered round in seq order.
  // Each chunk's vector moves into prepared memory while there is some: the
  // vector it came in is handed back in round_chunks, for the caller to free
  // after the lock, as are prepared vectors beyond what a run can use
  // (`released`). Returns how many chunks went into prepared memory.
  std::size_t append(Round round, std::vector<EmbeddedChunk>& round_chunks, std::size_t round_bytes,
                     std::vector<std::vector<float>>& released) {
    if (runs_.empty() || runs_.back().rounds.size() == runs_.back().rounds.capacity()) start_run(released);
    Run& run = runs_.back();
    run.chunk_counts.push_back(round_chunks.size());
    const std::size_t first = run.chunks.size();
    run.chunks.insert(run.chunks.end(), std::make_move_iterator(round_chunks.begin()),
                      std::make_move_iterator(round_chunks.end()));
    std::size_t stocked = 0;
    for (std::size_t i = 0; i < round_chunks.size() && !stock_.empty(); ++i) {
      std::vector<float>& held = run.chunks[first + i].vector;
      std::vector<float>& prepared = stock_.back();
      if (prepared.size() != held.size()) break;  // another dimension: keep the vector as it is
      std::copy(held.begin(), held.end(), prepared.begin());
      held.swap(prepared);
      round_chunks[i].vector = std::move(prepared);  // moved-from above: the caller frees it
      stock_.pop_back();
      ++stocked;
    }
    run.rounds.push_back(std::move(round));
    ++rounds_;
    chunks_ += round_chunks.size();
    bytes_ += round_bytes;
    return stocked;
  }

  // Calls f(round, its first chunk, its chunk count) for every round, by seq.
  template <typename F>
  void for_each(F&& f) const {
    for (const Run& run : runs_) for_each_round(run.rounds, run.chunks, run.chunk_counts, f);
  }

  // Empties the buffer into one run: a move when one run holds it all.
  Run take() {
    if (rounds_ > 0) chunks_per_round_ = std::max<std::size_t>(1, (chunks_ + rounds_ - 1) / rounds_);
    Run out;
    if (runs_.size() == 1) {
      out = std::move(runs_.front());
    } else {
      out.rounds.reserve(rounds_);
      out.chunk_counts.reserve(rounds_);
      out.chunks.reserve(chunks_);
      for (Run& run : runs_) {
        std::move(run.rounds.begin(), run.rounds.end(), std::back_inserter(out.rounds));
        std::move(run.chunks.begin(), run.chunks.end(), std::back_inserter(out.chunks));
        out.chunk_counts.insert(out.chunk_counts.end(), run.chunk_counts.begin(), run.chunk_counts.end());
      }
    }
    runs_.clear();
    rounds_ = chunks_ = bytes_ = 0;
    return out;
  }

  // The size of a spare run to prepare, if one is wanted: the runs that
  // follow cuts, kept two ahead, so that the one asked for at a cut is ready
  // by the next cut (the add() after this cut takes the other).
  [[nodiscard]] std::optional<RunSize> spare_wanted() {
    if (spares_.size() + spares_asked_ >= kSpares) return std::nullopt;
    ++spares_asked_;
    return first_run_size();
  }
  // A run asked for by spare_wanted() (asked), or made at create().
  void give_spare(Run run, bool asked) {
    if (asked && spares_asked_ > 0) --spares_asked_;
    if (spares_.size() < kSpares) spares_.push_back(std::move(run));
  }

  // The size of a prepared run to ask for, if one is wanted now: the current
  // run is half full and will fill before a cut (the size trigger is further
  // away than its room, or blocked), and none is ready or asked for.
  [[nodiscard]] std::optional<RunSize> next_wanted(std::size_t max_size, bool size_trigger_blocked) {
    if (next_ || next_asked_ || runs_.empty()) return std::nullopt;
    const Run& run = runs_.back();
    const std::size_t room = run.rounds.capacity() - run.rounds.size();
    if (2 * run.rounds.size() < run.rounds.capacity()) return std::nullopt;
    if (!size_trigger_blocked && rounds_ + room >= max_size) return std::nullopt;
    next_asked_ = true;
    return growth_run_size();
  }
  void give_next(Run run) {
    next_asked_ = false;
    if (!next_) next_ = std::move(run);
  }
  [[nodiscard]] RunSize run_size() const { return first_run_size(); }
  [[nodiscard]] std::uint64_t prepared_runs_started() const noexcept { return prepared_started_; }
  [[nodiscard]] std::size_t prepared_vectors_ready() const noexcept { return stock_.size(); }

  // REQUIRES: empty(). Makes `run` (of `bytes` payload bytes) the buffer.
  void assign(Run run, std::size_t bytes) {
    MEMFUSE_ASSERT(empty());
    rounds_ = run.rounds.size();
    chunks_ = run.chunks.size();
    bytes_ = bytes;
    if (rounds_ > 0) runs_.push_back(std::move(run));
  }

 private:
  [[nodiscard]] RunSize first_run_size() const { return {run_rounds_, run_rounds_ * chunks_per_round_}; }
  // Runs after the first, when the buffer grows past it: at least 1 024
  // rounds, so that a small size trigger does not ask for a run (a wake-up of
  // the executor's thread) every few add()s.
  [[nodiscard]] RunSize growth_run_size() const {
    const std::size_t rounds = std::max(run_rounds_, kGrowthRunRounds);
    return {rounds, rounds * chunks_per_round_};
  }
  static constexpr std::size_t kGrowthRunRounds = 1'024;
  [[nodiscard]] RunSize inline_growth_run_size() const {
    return {kInlineGrowthRunRounds, kInlineGrowthRunRounds * chunks_per_round_};
  }
  static constexpr std::size_t kInlineGrowthRunRounds = 64;

  void start_run(std::vector<std::vector<float>>& released) {
    Run run;
    if (runs_.empty() && !spares_.empty()) {
      run = std::move(spares_.back());
      spares_.pop_back();
    } else if (next_) {
      run = std::move(*next_);
      next_.reset();
    } else {
      // None prepared: allocated here. A growth run made here is short, so
      // that the prepared one asked for meanwhile (next_wanted) takes over soon.
      runs_.push_back(make_run(runs_.empty() ? first_run_size() : inline_growth_run_size()));
      return;
    }
    ++prepared_started_;
    // The prepared vectors join the stock (what a cut left of it stays there),
    // up to what this run's chunks can use: rounds with fewer chunks than the
    // estimate leave some over at every cut, which must not pile up.
    const std::size_t cap = run.chunks.capacity();
    for (auto& v : run.vectors) {
      if (stock_.size() < cap) {
        stock_.push_back(std::move(v));
      } else {
        released.push_back(std::move(v));
      }
    }
    run.vectors.clear();
    runs_.push_back(std::move(run));
  }

  std::size_t run_rounds_;
  std::size_t chunks_per_round_ = 1;  // of the last cut: sizes the next runs' chunk vectors
  std::vector<Run> runs_;
  static constexpr std::size_t kSpares = 2;
  std::vector<Run> spares_;                 // prepared, for after a cut
  std::size_t spares_asked_ = 0;
  std::optional<Run> next_;                 // prepared, for growth
  bool next_asked_ = false;
  std::vector<std::vector<float>> stock_;   // prepared vectors not used yet
  std::uint64_t prepared_started_ = 0;
  std::size_t rounds_ = 0, chunks_ = 0, bytes_ = 0;
};

// Waits for a set of batches to become durable (flush()'s handler).
struct FlushWaiter {
  std::size_t remaining = 0;
  bool done = false;
  std::move_only_function<void(Result<void>)> handler;
};

struct Batch {
  std::uint64_t number = 0;
  FlushTrigger trigger = FlushTrigger::Size;
  RoundBatch rounds;  // in seq order
  // Grouped by round, in round order. chunk.text is empty (see Buffered) until
  // the first attempt fills it in for the vector store (store_chunks); reads
  // never look at it.
  std::shared_ptr<std::vector<EmbeddedChunk>> chunks;
  std::vector<std::size_t> chunk_counts;  // per round
  bool texts_filled = false;              // on the manager's strand only
  std::size_t bytes = 0;
  // Set by a leg's success, even a late one: the data is durable, whoever
  // asked. Read by later attempts to skip the leg.
  std::atomic<bool> rounds_acked{false};
  std::atomic<bool> vectors_acked{false};
  std::vector<std::shared_ptr<FlushWaiter>> waiters;  // under the buffer's mutex
};

using Callback = std::move_only_function<void()>;

}  // namespace

struct HybridBuffer::Impl : std::enable_shared_from_this<Impl> {
  Impl(Runtime& rt, FlushManager& fm, RoundStore& rs, VectorStore& vs, const Embedder& e,
       HybridBufferOptions o, Logger l)
      : runtime(rt),
        manager(fm),
        round_store(rs),
        vector_store(vs),
        embedder(e),
        options(std::move(o)),
        log(std::move(l)),
        strand(asio::make_strand(rt.executor().get())),
        strand_executor(asio::any_io_executor(strand)),
        next_seq(options.first_seq) {}

  Runtime& runtime;
  FlushManager& manager;
  RoundStore& round_store;
  VectorStore& vector_store;
  const Embedder& embedder;
  HybridBufferOptions options;
  Logger log;
  asio::strand<asio::any_io_executor> strand;
  Executor strand_executor;
  std::unique_ptr<Timer> timer;  // strand only
  std::unique_ptr<Timer> drain_timer;  // strand only: the drain's deadline while it waits for space
  // The last id's (milliseconds << 12 | counter): see next_id_tick.
  std::atomic<std::uint64_t> id_clock{0};

  // Round ids are UUIDv7 and strictly increasing within the buffer: the
  // 12-bit rand_a counts the rounds of one millisecond (RFC 9562, 6.2,
  // method 1; past 4096 in a millisecond the count runs into the next one,
  // and a clock that steps back does not take the ids back). Ids that
  // arrive in order append to the stores' B-trees; with a random rand_a,
  // rounds of the same millisecond landed mid-tree and split pages (13%
  // more page writes in the durable benchmark). rand_b stays random, for
  // uniqueness across processes.
  std::uint64_t next_id_tick(std::int64_t now_ms) {
    const std::uint64_t floor = static_cast<std::uint64_t>(std::max<std::int64_t>(now_ms, 0)) << 12;
    std::uint64_t last = id_clock.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint64_t next = std::max(floor, last + 1);
      if (id_clock.compare_exchange_weak(last, next, std::memory_order_relaxed)) return next;
    }
  }

  mutable std::mutex mutex;  // the data lock: no I/O, no callbacks under it
  // Runs with room for a size-triggered batch, capped: a size trigger of
  // millions must not reserve millions.
  Buffered buffer{std::min<std::size_t>(static_cast<std::size_t>(std::max(options.buffer.max_size, 1)), 1024)};
  std::map<std::uint64_t, std::shared_ptr<Batch>> in_flight;  // by batch number
  std::vector<Round> handed_back;  // drain: batches cancelled at the deadline
  std::uint64_t next_seq;
  std::uint64_t next_batch = 1;
  std::size_t pending_rounds = 0, pending_bytes = 0;
  bool size_trigger_blocked = false;  // the queue refused; wait for a completion
  bool draining = false;
  bool drained = false;
  // drain(): the flush queue refused the drain's batch while batches of ours
  // were in flight; the next outcome cuts and submits again (until the deadline).
  bool drain_waiting_for_space = false;
  TimePoint drain_deadline{};
  std::vector<std::move_only_function<void(HybridDrainReport)>> drain_handlers;
  HybridBufferStats counters;

  // Runs `f` on the strand, later.
  void post(Callback f) {
    asio::post(strand, [self = shared_from_this(), f = std::move(f)]() mutable { f(); });
  }

  // Touches the memory of a run on the runtime's executor, off the caller's
  // thread, and hands it to the buffer as a spare (for after a cut) or as
  // the next run (for growth); see Buffered.
  void prepare_run(Buffered::RunSize size, bool spare) {
    const auto dimension = static_cast<std::size_t>(embedder.dimension());
    asio::post(runtime.executor().get(), [w = weak_from_this(), size, dimension, spare] {
      Buffered::Run run = Buffered::make_prepared_run(size, dimension);
      auto self = w.lock();
      if (!self) return;
      std::lock_guard lock(self->mutex);
      if (spare) {
        self->buffer.give_spare(std::move(run), true);
      } else {
        self->buffer.give_next(std::move(run));
      }
    });
  }

  // REQUIRES: mutex held. Moves the whole buffer into a new in-flight batch:
  // a constant number of moves and allocations, whatever its size.
  std::shared_ptr<Batch> cut(FlushTrigger trigger) {
    if (buffer.empty()) return nullptr;
    auto b = std::make_shared<Batch>();
    b->number = next_batch++;
    b->trigger = trigger;
    b->bytes = buffer.bytes();
    Buffered::Run run = buffer.take();
    b->rounds = std::make_shared<const std::vector<Round>>(std::move(run.rounds));
    b->chunks = std::make_shared<std::vector<EmbeddedChunk>>(std::move(run.chunks));
    b->chunk_counts = std::move(run.chunk_counts);
    in_flight.emplace(b->number, b);
    ++counters.total_flushes;
    ++counters.flushes_by_trigger[static_cast<std::size_t>(trigger)];
    if (trigger == FlushTrigger::Size || trigger == FlushTrigger::Timer) ++counters.total_auto_flushes;
    if (trigger == FlushTrigger::Manual) ++counters.total_manual_flushes;
    return b;
  }

  // REQUIRES: mutex held; `b` was in flight. Puts its rounds back into the
  // buffer ahead of newer ones, in seq order (copies: an attempt that is
  // still running may read the batch). Returns its waiters.
  std::vector<std::shared_ptr<FlushWaiter>> restore(const std::shared_ptr<Batch>& b) {
    in_flight.erase(b->number);
    const auto& back_rounds = *b->rounds;
    const auto& back_chunks = *b->chunks;
    const std::size_t newer_bytes = buffer.bytes();
    Buffered::Run newer = buffer.take();
    Buffered::Run merged;
    merged.rounds.reserve(back_rounds.size() + newer.rounds.size());
    merged.chunk_counts.reserve(back_rounds.size() + newer.rounds.size());
    merged.chunks.reserve(back_chunks.size() + newer.chunks.size());
    std::size_t i = 0, j = 0, ci = 0, cj = 0;
    while (i < back_rounds.size() || j < newer.rounds.size()) {
      const bool from_batch = j == newer.rounds.size() ||
                              (i < back_rounds.size() && back_rounds[i].seq < newer.rounds[j].seq);
      if (from_batch) {
        const std::size_t n = b->chunk_counts[i];
        for (std::size_t k = ci; k < ci + n; ++k) {  // buffered chunks hold no text
          merged.chunks.push_back(EmbeddedChunk{with_text(back_chunks[k].chunk, {}), back_chunks[k].vector});
        }
        merged.chunk_counts.push_back(n);
        merged.rounds.push_back(back_rounds[i]);
        ci += n;
        ++i;
      } else {
        const std::size_t n = newer.chunk_counts[j];
        const auto first = newer.chunks.begin() + static_cast<std::ptrdiff_t>(cj);
        merged.chunks.insert(merged.chunks.end(), std::make_move_iterator(first),
                             std::make_move_iterator(first + static_cast<std::ptrdiff_t>(n)));
        merged.chunk_counts.push_back(n);
        merged.rounds.push_back(std::move(newer.rounds[j]));
        cj += n;
        ++j;
      }
    }
    buffer.assign(std::move(merged), b->bytes + newer_bytes);
    return std::move(b->waiters);
  }

  // REQUIRES: mutex held; `b` was in flight. It leaves without returning to
  // the buffer (persisted, or handed back by a drain).
  std::vector<std::shared_ptr<FlushWaiter>> retire(const std::shared_ptr<Batch>& b) {
    in_flight.erase(b->number);
    pending_rounds -= b->rounds->size();
    pending_bytes -= b->bytes;
    return std::move(b->waiters);
  }

  void notify(std::vector<std::shared_ptr<FlushWaiter>> waiters, const Result<void>& result) {
    std::vector<Callback> calls;
    {
      std::lock_guard lock(mutex);
      for (auto& w : waiters) {
        if (w->done) continue;
        if (result) {
          if (--w->remaining > 0) continue;
        }
        w->done = true;
        if (w->handler) {
          calls.push_back([h = std::move(w->handler), result]() mutable { h(result); });
        }
      }
    }
    for (auto& c : calls) post(std::move(c));
  }

  // Hands a cut batch to the FlushManager; if it refuses, the rounds go back
  // and the refusal's code is returned.
  std::optional<ErrorCode> submit(const std::shared_ptr<Batch>& b) {
    TaskSpec spec;
    spec.kind = "hybrid";
    spec.priority = priority_of(b->trigger);
    spec.timeout = options.flush_timeout;
    spec.payload = b;
    std::weak_ptr<Impl> weak = weak_from_this();
    spec.attempt = [weak, b](std::shared_ptr<Attempt> a) {
      if (auto self = weak.lock()) {
        self->run_attempt(b, std::move(a));
      } else {
        a->complete(fail(ErrorCode::ShuttingDown, false, "the buffer is gone"));
      }
    };
    spec.on_complete = [weak, b](const TaskOutcome& outcome, std::shared_ptr<void>) {
      if (auto self = weak.lock()) self->on_outcome(b, outcome);
    };
    auto id = manager.submit(std::move(spec));
    if (id) return std::nullopt;
    std::vector<std::shared_ptr<FlushWaiter>> waiters;
    {
      std::lock_guard lock(mutex);
      if (!in_flight.contains(b->number)) return id.error().code();
      waiters = restore(b);
      ++counters.flush_submit_rejected;
      size_trigger_blocked = true;
    }
    log.warn("hybrid buffer: the flush queue refused a batch of {} rounds ({}); they stay buffered",
             b->rounds->size(), id.error().to_string());
    notify(std::move(waiters), Unexpected(id.error()));
    return id.error().code();
  }

  // drain(), after the cut: submits the drain's batch and then drains the
  // manager. A full queue is not the end of a drain that has time left: while
  // batches of ours are in flight, their outcomes free space, and the next
  // outcome submits again (or the deadline ends the wait).
  void continue_drain(std::shared_ptr<Batch> b) {
    for (int tries = 0; b && tries < 3; ++tries) {
      const auto refused = submit(b);
      if (refused != ErrorCode::QueueFull) break;
      std::lock_guard lock(mutex);
      b.reset();
      if (runtime.clock().now() >= drain_deadline) break;
      if (!in_flight.empty()) {
        drain_waiting_for_space = true;
        post([self = shared_from_this()] { self->arm_drain_deadline(); });  // timers: strand only
        return;
      }
      b = cut(FlushTrigger::Drain);  // everything of ours just finished: room again
    }
    drain_manager();
  }

  // On the strand. Ends the wait for space at the drain's deadline.
  void arm_drain_deadline() {
    drain_timer->async_wait_until(drain_deadline, [w = weak_from_this()](std::error_code ec) {
      auto self = w.lock();
      if (!self || ec) return;
      {
        std::lock_guard guard(self->mutex);
        if (!self->drain_waiting_for_space) return;  // an outcome went on with the drain
        self->drain_waiting_for_space = false;
      }
      self->drain_manager();
    });
  }

  void drain_manager() {
    manager.drain(drain_deadline, [self = shared_from_this()](DrainReport report) mutable {
      self->post([self, report = std::move(report)]() mutable { self->finish_drain(std::move(report)); });
    });
  }

  // The batch's chunks with their texts, for the vector store: the first
  // attempt fills the texts in place, from the rounds (a copy of the chunks,
  // vectors and all, cost ~100 us per batch of 100 rounds on the event loop and
  // held every in-flight vector twice). No lock: attempts run one at a time on
  // the manager's strand, and nothing else reads the text of an in-flight
  // chunk (search and restore copy it with with_text; search derives the text
  // from the round, and buffered chunks hold none).
  ChunkBatch store_chunks(Batch& b) const {
    if (!b.texts_filled) {
      auto& out = *b.chunks;
      std::size_t c = 0;
      for (std::size_t i = 0; i < b.rounds->size(); ++i) {
        auto chunks = chunk_round((*b.rounds)[i], options.chunking.chunk_size_bytes);
        MEMFUSE_ASSERT(chunks.size() == b.chunk_counts[i]);
        for (std::size_t k = 0; k < b.chunk_counts[i]; ++k) out[c + k].chunk.text = std::move(chunks[k].text);
        c += b.chunk_counts[i];
      }
      b.texts_filled = true;
    }
    return b.chunks;
  }

  void run_attempt(const std::shared_ptr<Batch>& b, std::shared_ptr<Attempt> attempt) {
    struct Legs {
      std::mutex mutex;
      int remaining = 0;
      std::optional<Error> error;
    };
    auto legs = std::make_shared<Legs>();
    const bool do_rounds = !b->rounds_acked.load();
    const bool do_vectors = !b->vectors_acked.load();
    legs->remaining = (do_rounds ? 1 : 0) + (do_vectors ? 1 : 0);
    if (attempt->number() > 1 && (!do_rounds || !do_vectors)) {
      std::lock_guard lock(mutex);
      ++counters.leg_writes_skipped;
    }
    if (legs->remaining == 0) {
      attempt->complete({});
      return;
    }
    auto leg_done = [legs, attempt](Result<void> r) {
      int left;
      std::optional<Error> error;
      {
        std::lock_guard lock(legs->mutex);
        if (!r && !legs->error) legs->error = r.error();
        left = --legs->remaining;
        error = legs->error;
      }
      if (left > 0) return;
      if (error) {
        attempt->complete(Unexpected(*error));
      } else {
        attempt->complete({});
      }
    };
    std::vector<StoreCallPtr> calls;
    if (do_rounds) {
      calls.push_back(round_store.put(b->rounds, strand_executor, [b, leg_done](Result<void> r) mutable {
        if (r) b->rounds_acked.store(true);
        leg_done(std::move(r));
      }));
    }
    if (do_vectors) {
      calls.push_back(vector_store.put(store_chunks(*b), strand_executor, [b, leg_done](Result<void> r) mutable {
        if (r) b->vectors_acked.store(true);
        leg_done(std::move(r));
      }));
    }
    attempt->on_cancel([calls] {
      for (const auto& c : calls) c->cancel();
    });
  }

  void on_outcome(const std::shared_ptr<Batch>& b, const TaskOutcome& outcome) {
    std::vector<std::shared_ptr<FlushWaiter>> waiters;
    std::optional<FlushFailure> failure;
    Result<void> result;
    bool retry_drain = false;
    std::shared_ptr<Batch> drain_batch;
    {
      std::lock_guard lock(mutex);
      if (!in_flight.contains(b->number)) return;  // a drain handed it back already
      size_trigger_blocked = false;
      retry_drain = drain_waiting_for_space;
      drain_waiting_for_space = false;
      switch (outcome.status) {
        case TaskStatus::Success:
          waiters = retire(b);
          ++counters.total_successful_flushes;
          counters.rounds_persisted += b->rounds->size();
          counters.last_flush_time = runtime.clock().now();
          break;
        case TaskStatus::Failed:
        case TaskStatus::TimedOut: {
          waiters = restore(b);
          ++counters.total_failed_flushes;
          counters.rounds_restored += b->rounds->size();
          FlushFailure f{outcome.id, b->trigger,
                         outcome.error.value_or(Error(ErrorCode::Timeout, "the flush timed out")),
                         {}};
          for (const auto& r : *b->rounds) f.rounds.push_back(r.id);
          result = Unexpected(f.error);
          failure = std::move(f);
          break;
        }
        case TaskStatus::Cancelled:
          waiters = retire(b);
          handed_back.insert(handed_back.end(), b->rounds->begin(), b->rounds->end());
          result = Unexpected(
              outcome.error.value_or(Error(ErrorCode::Cancelled, "the flush was cancelled")));
          break;
      }
      if (retry_drain) drain_batch = cut(FlushTrigger::Drain);
    }
    if (retry_drain) continue_drain(std::move(drain_batch));
    if (failure) {
      log.error("hybrid buffer: flush {} of {} rounds failed for good ({}); the rounds are back in "
                "the buffer, ahead of newer ones",
                failure->task, failure->rounds.size(), failure->error.to_string());
      if (options.on_flush_failed) {
        post([self = shared_from_this(), f = std::move(*failure)] {
          if (self->options.on_flush_failed) self->options.on_flush_failed(f);
        });
      }
    }
    notify(std::move(waiters), result);
  }

  // Starts a store read through `start(handler)` and gives `done` its result,
  // or Timeout after read_timeout (the store call is then cancelled).
  template <typename T, typename Start>
  void timed_read(Start start, std::move_only_function<void(Result<T>)> done) {
    struct State {
      std::mutex mutex;
      bool finished = false;
      std::move_only_function<void(Result<T>)> done;
      StoreCallPtr call;
      std::unique_ptr<Timer> timer;
    };
    auto st = std::make_shared<State>();
    st->done = std::move(done);
    auto finish = [st](Result<T> r) {
      std::move_only_function<void(Result<T>)> d;
      {
        std::lock_guard lock(st->mutex);
        if (st->finished) return false;
        st->finished = true;
        d = std::move(st->done);
      }
      d(std::move(r));
      return true;
    };
    st->timer = runtime.make_timer(strand_executor);
    st->timer->async_wait_until(runtime.clock().now() + options.read_timeout,
                                [st, finish, timeout = options.read_timeout](std::error_code ec) mutable {
                                  if (ec) return;  // the read finished first
                                  StoreCallPtr c;
                                  {
                                    std::lock_guard lock(st->mutex);
                                    c = std::move(st->call);
                                  }
                                  (void)finish(fail(ErrorCode::Timeout, true,
                                                    fmt::format("read: the store did not answer within {} s",
                                                                duration_to_seconds(timeout))));
                                  if (c) c->cancel();
                                });
    StoreCallPtr call = start([st, finish](Result<T> r) mutable {
      if (finish(std::move(r))) st->timer->cancel();  // on the strand, as the timer is
      std::lock_guard lock(st->mutex);
      st->call.reset();  // the call may hold this handler: no cycle
    });
    std::lock_guard lock(st->mutex);
    if (!st->finished) st->call = std::move(call);
  }

  void on_timer() {
    std::shared_ptr<Batch> b;
    {
      std::lock_guard lock(mutex);
      if (draining) return;
      size_trigger_blocked = false;
      b = cut(FlushTrigger::Timer);
    }
    if (b) submit(b);
  }

  void arm_timer() {
    if (!options.buffer.enable_auto_flush) return;
    timer->async_wait_until(runtime.clock().now() + options.buffer.auto_flush_interval,
                            [w = weak_from_this()](std::error_code ec) {
                              auto self = w.lock();
                              if (!self || ec) return;
                              {
                                std::lock_guard lock(self->mutex);
                                if (self->draining) return;
                              }
                              self->on_timer();
                              self->arm_timer();
                            });
  }

  void finish_drain(DrainReport report) {
    HybridDrainReport out;
    std::vector<std::move_only_function<void(HybridDrainReport)>> handlers;
    std::vector<std::shared_ptr<FlushWaiter>> waiters;
    {
      std::lock_guard lock(mutex);
      // Batches the manager handed back: their Cancelled outcomes may come
      // later; take them now (on_outcome then finds them gone).
      for (auto& u : report.unfinished) {
        auto b = std::static_pointer_cast<Batch>(u.payload);
        if (b && in_flight.contains(b->number)) {
          auto w = retire(b);
          waiters.insert(waiters.end(), w.begin(), w.end());
          handed_back.insert(handed_back.end(), b->rounds->begin(), b->rounds->end());
        }
      }
      out.unpersisted = std::move(handed_back);
      handed_back.clear();
      pending_rounds -= buffer.size();
      pending_bytes -= buffer.bytes();
      Buffered::Run rest = buffer.take();
      out.unpersisted.insert(out.unpersisted.end(), std::make_move_iterator(rest.rounds.begin()),
                             std::make_move_iterator(rest.rounds.end()));
      for (auto& [n, b] : in_flight) {  // none expected: the manager has finished every task
        out.unpersisted.insert(out.unpersisted.end(), b->rounds->begin(), b->rounds->end());
        pending_rounds -= b->rounds->size();
        pending_bytes -= b->bytes;
        waiters.insert(waiters.end(), b->waiters.begin(), b->waiters.end());
      }
      in_flight.clear();
      std::sort(out.unpersisted.begin(), out.unpersisted.end(),
                [](const Round& x, const Round& y) { return x.seq < y.seq; });
      out.completed_in_time = report.completed_in_time && out.unpersisted.empty();
      drained = true;
      handlers = std::move(drain_handlers);
    }
    if (!out.unpersisted.empty()) {
      log.warn("hybrid buffer: drain handed back {} rounds it could not persist",
               out.unpersisted.size());
    }
    notify(std::move(waiters),
           fail(ErrorCode::ShuttingDown, false, "the buffer drained before the flush finished"));
    for (auto& h : handlers) {
      post([h = std::move(h), out]() mutable { h(std::move(out)); });
    }
  }
};

HybridBuffer::HybridBuffer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HybridBuffer::~HybridBuffer() {
  if (!impl_) return;
  std::lock_guard lock(impl_->mutex);
  MEMFUSE_ASSERT(impl_->drained || (impl_->pending_rounds == 0 && impl_->in_flight.empty()));
}

Result<std::unique_ptr<HybridBuffer>> HybridBuffer::create(Runtime& runtime, FlushManager& manager,
                                                           RoundStore& rounds, VectorStore& vectors,
                                                           const Embedder& embedder,
                                                           HybridBufferOptions options,
                                                           Logger logger) {
  Config c;
  c.buffer.hybrid_buffer = options.buffer;
  c.chunking = options.chunking;
  c.embedding.dimension = embedder.dimension();
  if (auto ok = c.validate(); !ok) return Unexpected(ok.error());
  if (options.first_seq == 0) {
    return fail(ErrorCode::InvalidArgument, false, "first_seq: must be at least 1");
  }
  if (options.flush_timeout && *options.flush_timeout <= Duration::zero()) {
    return fail(ErrorCode::InvalidArgument, false, "flush_timeout: must be positive");
  }
  if (options.read_timeout <= Duration::zero()) {
    return fail(ErrorCode::InvalidArgument, false, "read_timeout: must be positive");
  }
  auto impl = std::make_shared<Impl>(runtime, manager, rounds, vectors, embedder,
                                     std::move(options), std::move(logger));
  // The first run's memory, touched here rather than by the first add()s
  // (a run of at most 1 024 rounds; see Buffered).
  impl->buffer.give_spare(Buffered::make_prepared_run(impl->buffer.run_size(),
                                                      static_cast<std::size_t>(embedder.dimension())),
                          false);
  impl->timer = runtime.make_timer(impl->strand_executor);
  impl->drain_timer = runtime.make_timer(impl->strand_executor);
  impl->post([impl = impl.get()] { impl->arm_timer(); });
  manager.set_tick_handler([w = std::weak_ptr<Impl>(impl)] {
    if (auto self = w.lock()) self->post([self] { self->on_timer(); });
  });
  return std::unique_ptr<HybridBuffer>(new HybridBuffer(std::move(impl)));
}

Result<AddReceipt> HybridBuffer::add(NewRound input) {
  Impl& m = *impl_;
  auto count_rejection = [&m](std::uint64_t HybridBufferStats::*field) {
    std::lock_guard lock(m.mutex);
    ++(m.counters.*field);
  };
  Round round;
  round.session_id = std::move(input.session_id);
  round.user_id = std::move(input.user_id);
  round.messages = std::move(input.messages);
  if (auto ok = validate_round(round, RoundLimits{m.options.buffer.max_message_bytes,
                                                  m.options.buffer.max_messages_per_round});
      !ok) {
    count_rejection(&HybridBufferStats::rejected_invalid);
    return Unexpected(ok.error());
  }
  // Id, chunks and vectors outside the lock: they need no shared state.
  const TimePoint now = m.runtime.clock().now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  const std::uint64_t tick = m.next_id_tick(ms.count());
  round.id = make_round_id(static_cast<std::int64_t>(tick >> 12), tick & 0xFFF, m.runtime.random().next_u64());
  round.created_at = now;
  // The buffer may hold the round for a while: no slack capacity a caller's
  // string building left behind (parsers append), only the bytes.
  for (auto& msg : round.messages) msg.content.shrink_to_fit();
  const std::size_t bytes = round.payload_bytes();
  std::vector<Chunk> chunks = chunk_round(round, m.options.chunking.chunk_size_bytes);
  // Freed after the lock is released: its elements move into the buffer.
  std::vector<EmbeddedChunk> embedded;
  embedded.reserve(chunks.size());
  for (Chunk& c : chunks) {
    auto v = m.embedder.embed(c.text);
    if (!v) {
      count_rejection(&HybridBufferStats::rejected_invalid);
      return fail(ErrorCode::InvalidArgument, false,
                  fmt::format("embedder: chunk {} of the round: {}", c.index, v.error().message()));
    }
    if (auto ok = validate_embedding(*v, m.embedder.dimension()); !ok) {
      count_rejection(&HybridBufferStats::rejected_invalid);
      return fail(ErrorCode::InvalidArgument, false,
                  fmt::format("embedder: chunk {} of the round: {}", c.index, ok.error().message()));
    }
    std::string().swap(c.text);  // derived from the round: not held twice (see Buffered)
    embedded.push_back(EmbeddedChunk{std::move(c), std::move(*v)});
  }

  std::vector<std::vector<float>> released;  // prepared vectors let go: freed after the lock
  std::shared_ptr<Batch> batch;
  std::optional<Buffered::RunSize> spare;
  std::optional<Buffered::RunSize> next;
  AddReceipt receipt;
  {
    std::lock_guard lock(m.mutex);
    if (m.draining) {
      ++m.counters.rejected_shutting_down;
      return fail(ErrorCode::ShuttingDown, false,
                  "add: the buffer is draining and accepts no more rounds");
    }
    if (m.pending_rounds + 1 > m.options.buffer.max_pending_rounds ||
        m.pending_bytes + bytes > m.options.buffer.max_pending_bytes) {
      ++m.counters.rejected_overloaded;
      return fail(ErrorCode::Overloaded, true,
                  fmt::format("add: {} rounds / {} bytes are pending (limits "
                              "buffer.hybrid_buffer.max_pending_rounds = {}, max_pending_bytes = {}); "
                              "retry when flushes catch up",
                              m.pending_rounds, m.pending_bytes, m.options.buffer.max_pending_rounds,
                              m.options.buffer.max_pending_bytes));
    }
    round.seq = m.next_seq++;
    receipt = AddReceipt{round.id, round.seq, embedded.size()};
    m.pending_rounds += 1;
    m.pending_bytes += bytes;
    ++m.counters.total_rounds_received;
    m.counters.total_chunks_created += embedded.size();
    m.counters.prepared_vectors_used += m.buffer.append(std::move(round), embedded, bytes, released);
    const auto max_size = static_cast<std::size_t>(m.options.buffer.max_size);
    if (!m.size_trigger_blocked && m.buffer.size() >= max_size) {
      batch = m.cut(FlushTrigger::Size);
      spare = m.buffer.spare_wanted();
    } else {
      next = m.buffer.next_wanted(max_size, m.size_trigger_blocked);
    }
  }
  if (batch) m.submit(batch);
  // After the submit: the flush starts first, and the executor's thread,
  // woken for it, takes these too.
  if (spare) m.prepare_run(*spare, true);
  if (next) m.prepare_run(*next, false);
  return receipt;
}

void HybridBuffer::flush(std::move_only_function<void(Result<void>)> on_durable) {
  Impl& m = *impl_;
  auto waiter = std::make_shared<FlushWaiter>();
  waiter->handler = std::move(on_durable);
  std::shared_ptr<Batch> batch;
  {
    std::lock_guard lock(m.mutex);
    if (m.draining) {
      waiter->done = true;
      if (waiter->handler) {
        m.post([h = std::move(waiter->handler)]() mutable {
          h(fail(ErrorCode::ShuttingDown, false, "flush: the buffer is draining"));
        });
      }
      return;
    }
    batch = m.cut(FlushTrigger::Manual);
    waiter->remaining = m.in_flight.size();
    for (auto& [n, b] : m.in_flight) b->waiters.push_back(waiter);
    if (waiter->remaining == 0) {
      waiter->done = true;
      if (waiter->handler) m.post([h = std::move(waiter->handler)]() mutable { h({}); });
    }
  }
  if (batch) m.submit(batch);
}

void HybridBuffer::get(RoundId id, std::move_only_function<void(Result<std::optional<Round>>)> done) {
  Impl& m = *impl_;
  std::optional<Round> found;
  {
    std::lock_guard lock(m.mutex);
    m.buffer.for_each([&](const Round& r, const EmbeddedChunk*, std::size_t) {
      if (!found && r.id == id) found = r;
    });
    for (auto it = m.in_flight.begin(); !found && it != m.in_flight.end(); ++it) {
      for (const auto& r : *it->second->rounds) {
        if (r.id == id) {
          found = r;
          break;
        }
      }
    }
  }
  if (found) {
    m.post([done = std::move(done), r = std::move(*found)]() mutable { done(std::move(r)); });
    return;
  }
  m.timed_read<std::optional<Round>>(
      [&m, id](StoreHandler<std::optional<Round>> h) { return m.round_store.get(id, m.strand_executor, std::move(h)); },
      std::move(done));
}

namespace {

// The arguments every read shares: a session add() would accept, a count in
// 1..kMaxReadCount.
Result<void> check_read(std::string_view what, std::string_view session, std::string_view count_name,
                        std::size_t count) {
  if (auto ok = validate_session_id(session); !ok) {
    return fail(ErrorCode::InvalidArgument, false, fmt::format("{}: {}", what, ok.error().message()));
  }
  if (count < 1 || count > HybridBuffer::kMaxReadCount) {
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("{}: {} is {}; it must be 1..{}", what, count_name, count,
                            HybridBuffer::kMaxReadCount));
  }
  return {};
}

}  // namespace

void HybridBuffer::list(std::string session, std::size_t limit,
                        std::move_only_function<void(Result<std::vector<Round>>)> done) {
  Impl& m = *impl_;
  if (auto ok = check_read("list", session, "limit", limit); !ok) {
    m.post([done = std::move(done), e = ok.error()]() mutable { done(Unexpected(std::move(e))); });
    return;
  }
  std::vector<Round> memory;
  {
    std::lock_guard lock(m.mutex);
    m.buffer.for_each([&](const Round& r, const EmbeddedChunk*, std::size_t) {
      if (r.session_id == session) memory.push_back(r);
    });
    for (const auto& [n, b] : m.in_flight) {
      for (const auto& r : *b->rounds) {
        if (r.session_id == session) memory.push_back(r);
      }
    }
  }
  m.timed_read<std::vector<Round>>(
      [&m, session = std::move(session), limit](StoreHandler<std::vector<Round>> h) mutable {
        return m.round_store.list(std::move(session), limit, m.strand_executor, std::move(h));
      },
      [memory = std::move(memory), limit, done = std::move(done)](
          Result<std::vector<Round>> stored) mutable {
        if (!stored) return done(Unexpected(stored.error()));
        std::vector<Round> all = std::move(memory);
        all.insert(all.end(), std::make_move_iterator(stored->begin()),
                   std::make_move_iterator(stored->end()));
        std::stable_sort(all.begin(), all.end(),
                         [](const Round& x, const Round& y) { return x.seq < y.seq; });
        all.erase(std::unique(all.begin(), all.end(),
                              [](const Round& x, const Round& y) { return x.id == y.id; }),
                  all.end());
        if (all.size() > limit) all.erase(all.begin(), all.end() - static_cast<std::ptrdiff_t>(limit));
        done(std::move(all));
      });
}

void HybridBuffer::search(std::string session, std::string text, std::size_t top_k,
                          std::move_only_function<void(Result<std::vector<ScoredChunk>>)> done) {
  Impl& m = *impl_;
  Result<void> args = check_read("search", session, "top_k", top_k);
  if (args && (text.empty() || !is_valid_utf8(text) || text.size() > m.options.buffer.max_message_bytes)) {
    args = fail(ErrorCode::InvalidArgument, false,
              fmt::format("search: the text must be 1..{} bytes of UTF-8 "
                          "(buffer.hybrid_buffer.max_message_bytes); got {} bytes{}",
                          m.options.buffer.max_message_bytes, text.size(),
                          is_valid_utf8(text) ? "" : " that are not UTF-8"));
  }
  if (!args) {
    m.post([done = std::move(done), e = args.error()]() mutable { done(Unexpected(std::move(e))); });
    return;
  }
  auto query = m.embedder.embed(text);
  if (query) {
    if (auto ok = validate_embedding(*query, m.embedder.dimension()); !ok) {
      query = Unexpected(ok.error());
    }
  }
  if (!query) {
    m.post([done = std::move(done), e = query.error()]() mutable {
      done(fail(ErrorCode::InvalidArgument, false, "search: the embedder failed: " + e.message()));
    });
    return;
  }
  std::vector<ScoredChunk> memory;
  {
    std::lock_guard lock(m.mutex);
    // A round's chunks share its session; their texts come from the round.
    auto consider = [&](const Round& r, const EmbeddedChunk* first, std::size_t count) {
      if (r.session_id != session) return;
      const std::vector<Chunk> texts = chunk_round(r, m.options.chunking.chunk_size_bytes);
      for (std::size_t k = 0; k < count; ++k) {
        const Chunk& c = first[k].chunk;
        MEMFUSE_ASSERT(c.index < texts.size());
        ScoredChunk sc{with_text(c, texts[c.index].text), cosine(*query, first[k].vector)};
        memory.push_back(std::move(sc));
      }
    };
    m.buffer.for_each(consider);
    for (const auto& [n, b] : m.in_flight) for_each_round(*b->rounds, *b->chunks, b->chunk_counts, consider);
  }
  m.timed_read<std::vector<ScoredChunk>>(
      [&m, session = std::move(session), q = std::move(*query), top_k](
          StoreHandler<std::vector<ScoredChunk>> h) mutable {
        return m.vector_store.search(std::move(session), std::move(q), top_k, m.strand_executor, std::move(h));
      },
      [memory = std::move(memory), top_k, done = std::move(done)](
          Result<std::vector<ScoredChunk>> stored) mutable {
        if (!stored) return done(Unexpected(stored.error()));
        std::vector<ScoredChunk> all = std::move(memory);
        std::unordered_set<ChunkId> seen;
        for (const auto& c : all) seen.insert(c.chunk.id);
        for (auto& c : *stored) {
          if (seen.insert(c.chunk.id).second) all.push_back(std::move(c));
        }
        std::sort(all.begin(), all.end(), [](const ScoredChunk& x, const ScoredChunk& y) {
          if (x.score != y.score) return x.score > y.score;
          return x.chunk.id.to_string() < y.chunk.id.to_string();
        });
        if (all.size() > top_k) all.resize(top_k);
        done(std::move(all));
      });
}

void HybridBuffer::drain(TimePoint deadline, std::move_only_function<void(HybridDrainReport)> done) {
  Impl& m = *impl_;
  std::shared_ptr<Batch> batch;
  {
    std::lock_guard lock(m.mutex);
    m.drain_handlers.push_back(std::move(done));
    if (m.draining) {
      if (m.drained) {
        auto handlers = std::move(m.drain_handlers);
        for (auto& h : handlers) {
          m.post([h = std::move(h)]() mutable { h(HybridDrainReport{true, {}}); });
        }
      }
      return;
    }
    m.draining = true;
    m.drain_deadline = deadline;
    batch = m.cut(FlushTrigger::Drain);
  }
  m.post([self = impl_] { self->timer->cancel(); });
  m.continue_drain(std::move(batch));
}

HybridBuffer::Pending HybridBuffer::pending() const {
  const Impl& m = *impl_;
  Pending p;
  std::lock_guard lock(m.mutex);
  p.buffered.reserve(m.buffer.size());
  m.buffer.for_each([&](const Round& r, const EmbeddedChunk*, std::size_t) { p.buffered.push_back(r.id); });
  std::vector<const Round*> flying;
  for (const auto& [n, b] : m.in_flight) {
    for (const auto& r : *b->rounds) flying.push_back(&r);
  }
  std::sort(flying.begin(), flying.end(), [](const Round* x, const Round* y) { return x->seq < y->seq; });
  for (const Round* r : flying) p.in_flight.push_back(r->id);
  return p;
}

HybridBufferStats HybridBuffer::stats() const {
  const Impl& m = *impl_;
  HybridBufferStats s;
  {
    std::lock_guard lock(m.mutex);
    s = m.counters;
    s.pending_flush_tasks = m.in_flight.size();
    s.buffer_rounds = m.buffer.size();
    s.buffer_chunks = m.buffer.chunk_count();
    s.prepared_runs_started = m.buffer.prepared_runs_started();
    s.prepared_vectors_ready = m.buffer.prepared_vectors_ready();
    s.in_flight_rounds = 0;
    for (const auto& [n, b] : m.in_flight) s.in_flight_rounds += b->rounds->size();
    s.pending_rounds = m.pending_rounds;
    s.pending_bytes = m.pending_bytes;
  }
  s.flush_manager = m.manager.stats();
  return s;
}

}  // namespace memfuse
