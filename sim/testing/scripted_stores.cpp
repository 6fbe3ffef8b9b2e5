#include "scripted_stores.h"

#include <algorithm>
#include <atomic>

#include <boost/asio/post.hpp>

#include "memfuse/embedder.h"
#include "memfuse/executor.h"

namespace memfuse::testing {
namespace {

class TimerCall final : public StoreCall {
 public:
  explicit TimerCall(std::unique_ptr<Timer> t) : timer(std::move(t)) {}
  void cancel() noexcept override {
    std::lock_guard lock(mutex);
    if (timer) timer->cancel();
  }
  std::mutex mutex;
  std::unique_ptr<Timer> timer;
};

// A hung call: reports only when cancelled (no timer, so a simulated clock
// never jumps to "forever").
class HangCall final : public StoreCall {
 public:
  HangCall(Executor e, std::move_only_function<void(bool)> f) : executor(std::move(e)), fn(std::move(f)) {}
  void cancel() noexcept override {
    std::move_only_function<void(bool)> f;
    {
      std::lock_guard lock(mutex);
      f = std::move(fn);
      fn = nullptr;
    }
    if (f) boost::asio::post(executor.get(), [f = std::move(f)]() mutable { f(true); });
  }
  std::mutex mutex;
  Executor executor;
  std::move_only_function<void(bool)> fn;
};

}  // namespace

StoreStep ScriptedStoreBase::next_step() {
  std::lock_guard lock(mutex_);
  ++put_calls_;
  if (script_.steps.empty()) return StoreStep::Succeed;
  const StoreStep s = script_.steps.front();
  script_.steps.pop_front();
  if (s == StoreStep::Hang) ++hung_;
  return s;
}

StoreCallPtr ScriptedStoreBase::later(const Executor& completion, bool hang,
                                      std::move_only_function<void(bool)> fn, bool read) {
  Duration latency;
  {
    std::lock_guard lock(mutex_);
    latency = read ? script_.read_latency : script_.latency;
    hang = hang || (read && script_.hang_reads);
  }
  if (hang) return std::make_shared<HangCall>(completion, std::move(fn));
  auto call = std::make_shared<TimerCall>(runtime_.make_timer(completion));
  const TimePoint deadline = runtime_.clock().now() + latency;
  std::lock_guard lock(call->mutex);
  call->timer->async_wait_until(deadline,
                                [call, fn = std::move(fn)](std::error_code ec) mutable {
                                  fn(static_cast<bool>(ec));
                                });
  return call;
}

namespace {
Result<void> outcome(StoreStep s, bool cancelled) {
  if (cancelled) return fail(ErrorCode::Cancelled, false, "scripted store: cancelled");
  switch (s) {
    case StoreStep::Succeed: return {};
    case StoreStep::FailFinal: return fail(ErrorCode::InvalidArgument, false, "scripted store: final failure");
    default: return fail(ErrorCode::Unavailable, true, "scripted store: retryable failure");
  }
}
bool applies(StoreStep s) { return s == StoreStep::Succeed || s == StoreStep::ApplyThenFail; }
}  // namespace

StoreCallPtr ScriptedRoundStore::put(RoundBatch rounds, const Executor& completion,
                                     StoreHandler<void> done) {
  const StoreStep s = next_step();
  return later(completion, s == StoreStep::Hang,
               [this, s, rounds = std::move(rounds), done = std::move(done)](bool cancelled) mutable {
                 if (!cancelled && applies(s)) {
                   std::lock_guard lock(mutex_);
                   for (const auto& r : *rounds) {
                     ++writes_[r.id];
                     rows_.try_emplace(r.id, r);
                   }
                 }
                 done(outcome(s, cancelled));
               });
}

StoreCallPtr ScriptedRoundStore::get(RoundId id, const Executor& completion,
                                     StoreHandler<std::optional<Round>> done) {
  return later(completion, false, [this, id, done = std::move(done)](bool cancelled) mutable {
    if (cancelled) return done(fail(ErrorCode::Cancelled, false, "cancelled"));
    std::lock_guard lock(mutex_);
    auto it = rows_.find(id);
    std::optional<Round> r;
    if (it != rows_.end()) r = it->second;
    done(std::move(r));
  }, true);
}

StoreCallPtr ScriptedRoundStore::list(std::string session, std::size_t limit,
                                      const Executor& completion,
                                      StoreHandler<std::vector<Round>> done) {
  return later(completion, false,
               [this, session = std::move(session), limit, done = std::move(done)](bool cancelled) mutable {
                 if (cancelled) return done(fail(ErrorCode::Cancelled, false, "cancelled"));
                 std::vector<Round> out;
                 {
                   std::lock_guard lock(mutex_);
                   for (const auto& [id, r] : rows_) {
                     if (r.session_id == session) out.push_back(r);
                   }
                 }
                 std::sort(out.begin(), out.end(), [](const Round& a, const Round& b) { return a.seq < b.seq; });
                 if (out.size() > limit) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(limit));
                 done(std::move(out));
               }, true);
}

std::map<RoundId, Round> ScriptedRoundStore::rows() const {
  std::lock_guard lock(mutex_);
  return rows_;
}
std::map<RoundId, int> ScriptedRoundStore::writes() const {
  std::lock_guard lock(mutex_);
  return writes_;
}

StoreCallPtr ScriptedVectorStore::put(ChunkBatch chunks, const Executor& completion,
                                      StoreHandler<void> done) {
  const StoreStep s = next_step();
  return later(completion, s == StoreStep::Hang,
               [this, s, chunks = std::move(chunks), done = std::move(done)](bool cancelled) mutable {
                 if (!cancelled && applies(s)) {
                   std::lock_guard lock(mutex_);
                   for (const auto& c : *chunks) {
                     ++writes_[c.chunk.id];
                     rows_.try_emplace(c.chunk.id, c);
                   }
                 }
                 done(outcome(s, cancelled));
               });
}

StoreCallPtr ScriptedVectorStore::search(std::string session, std::vector<float> query,
                                         std::size_t top_k, const Executor& completion,
                                         StoreHandler<std::vector<ScoredChunk>> done) {
  return later(completion, false,
               [this, session = std::move(session), query = std::move(query), top_k,
                done = std::move(done)](bool cancelled) mutable {
                 if (cancelled) return done(fail(ErrorCode::Cancelled, false, "cancelled"));
                 std::vector<ScoredChunk> out;
                 {
                   std::lock_guard lock(mutex_);
                   for (const auto& [id, c] : rows_) {
                     if (c.chunk.session_id == session) out.push_back({c.chunk, cosine(query, c.vector)});
                   }
                 }
                 std::sort(out.begin(), out.end(), [](const ScoredChunk& a, const ScoredChunk& b) {
                   return a.score != b.score ? a.score > b.score : a.chunk.id < b.chunk.id;
                 });
                 if (out.size() > top_k) out.resize(top_k);
                 done(std::move(out));
               }, true);
}

std::map<ChunkId, EmbeddedChunk> ScriptedVectorStore::rows() const {
  std::lock_guard lock(mutex_);
  return rows_;
}
std::map<ChunkId, int> ScriptedVectorStore::writes() const {
  std::lock_guard lock(mutex_);
  return writes_;
}

}  // namespace memfuse::testing
