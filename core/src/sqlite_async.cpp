// The SQLite stores behind the asynchronous store ports, on BlockingWork.
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "memfuse/executor.h"
#include "memfuse/sqlite_round_store.h"
#include "memfuse/sqlite_vector_store.h"
#include "memfuse/store.h"

namespace memfuse {
namespace {

// Serialises the calls made through one adapter and scopes cancellation to
// the call that is running: a cancel() that arrives after its call finished
// (or before it started) never interrupts another call's statement.
class Gate : public std::enable_shared_from_this<Gate> {
 public:
  explicit Gate(std::function<void()> interrupt) : interrupt_(std::move(interrupt)) {}

  template <typename T, typename F>
  Result<T> run(const CancelToken& token, F& f) {
    std::lock_guard run_lock(run_mutex_);
    std::uint64_t generation;
    {
      std::lock_guard lock(current_mutex_);
      if (token.cancelled()) {
        return fail(ErrorCode::Cancelled, false, "the store call was cancelled before it ran");
      }
      generation = ++generation_;
      running_ = generation;
    }
    token.on_cancel([self = shared_from_this(), generation] {
      std::lock_guard lock(self->current_mutex_);
      if (self->running_ == generation) self->interrupt_();
    });
    Result<T> result = f();
    std::lock_guard lock(current_mutex_);
    running_ = 0;
    return result;
  }

  // What interrupt_ points into: kept alive by the gate.
  std::shared_ptr<void> keep_alive_;

 private:
  std::function<void()> interrupt_;
  std::mutex run_mutex_;
  std::mutex current_mutex_;
  std::uint64_t generation_ = 0;
  std::uint64_t running_ = 0;  // the generation of the running call; 0: none
};

class BlockingCall final : public StoreCall {
 public:
  void cancel() noexcept override {
    std::shared_ptr<BlockingHandle> h;
    {
      std::lock_guard lock(mutex_);
      cancelled_ = true;
      h = handle_;
    }
    if (h) h->cancel();
  }
  void set(std::shared_ptr<BlockingHandle> handle) {
    bool cancel_now;
    {
      std::lock_guard lock(mutex_);
      handle_ = handle;
      cancel_now = cancelled_;
    }
    if (cancel_now) handle->cancel();
  }

 private:
  std::mutex mutex_;
  bool cancelled_ = false;
  std::shared_ptr<BlockingHandle> handle_;
};

// Runs `work` (returning Result<T>) through the gate on the blocking port.
template <typename T, typename Work>
StoreCallPtr submit(Runtime& runtime, std::string_view kind, const std::shared_ptr<Gate>& gate,
                    const Executor& completion, Work work, StoreHandler<T> done) {
  struct State {
    std::optional<Result<T>> result;
    StoreHandler<T> done;
  };
  auto state = std::make_shared<State>();
  state->done = std::move(done);
  auto call = std::make_shared<BlockingCall>();
  auto handle = runtime.blocking().submit(
      kind, completion,
      [state, gate, work = std::move(work)](const CancelToken& token) mutable {
        state->result.emplace(gate->run<T>(token, work));
      },
      [state](std::error_code ec) {
        // Release the handler (and what it holds) once it has run.
        auto done_now = std::move(state->done);
        if (!ec && state->result) {
          done_now(std::move(*state->result));
        } else if (ec == std::errc::resource_unavailable_try_again) {
          done_now(fail(ErrorCode::Unavailable, true,
                        "sqlite: the blocking-work pool's queue is full; retry later"));
        } else {
          done_now(fail(ErrorCode::Cancelled, false, "sqlite: the store call was cancelled"));
        }
      });
  call->set(std::move(handle));
  return call;
}

// What both adapters hold: the store, a gate for its write connection and
// one for its read connection (reads never queue behind a write).
template <typename Store>
class Gated {
 public:  // inherited by the adapters' using-declarations, which keep this access
  Gated(Runtime& runtime, std::shared_ptr<Store> store)
      : runtime_(runtime),
        store_(std::move(store)),
        gate_(std::make_shared<Gate>([s = store_.get()] { s->interrupt(); })),
        read_gate_(std::make_shared<Gate>([s = store_.get()] { s->interrupt_reads(); })) {
    gate_->keep_alive_ = store_;
    read_gate_->keep_alive_ = store_;
  }

 protected:
  // put(batch) on the write gate; its row count is not needed.
  template <typename Batch>
  StoreCallPtr write(std::string_view kind, const Executor& completion, Batch batch,
                     StoreHandler<void> done) {
    return submit<void>(
        runtime_, kind, gate_, completion,
        [s = store_, batch = std::move(batch)]() -> Result<void> {
          auto n = s->put(*batch);
          if (!n) return Unexpected(n.error());
          return {};
        },
        std::move(done));
  }

  // `work()` on the read gate.
  template <typename T, typename Work>
  StoreCallPtr read(std::string_view kind, const Executor& completion, Work work,
                    StoreHandler<T> done) {
    return submit<T>(runtime_, kind, read_gate_, completion, std::move(work), std::move(done));
  }

  Runtime& runtime_;
  std::shared_ptr<Store> store_;
  std::shared_ptr<Gate> gate_;
  std::shared_ptr<Gate> read_gate_;
};

class SqliteRoundStoreAdapter final : public RoundStore, private Gated<SqliteRoundStore> {
 public:
  using Gated::Gated;

  StoreCallPtr put(RoundBatch rounds, const Executor& completion,
                   StoreHandler<void> done) override {
    return write("sqlite.write", completion, std::move(rounds), std::move(done));
  }

  StoreCallPtr get(RoundId id, const Executor& completion,
                   StoreHandler<std::optional<Round>> done) override {
    return read<std::optional<Round>>("sqlite.read", completion,
                                      [s = store_, id] { return s->get(id); }, std::move(done));
  }

  StoreCallPtr list(std::string session, std::size_t limit, const Executor& completion,
                    StoreHandler<std::vector<Round>> done) override {
    return read<std::vector<Round>>(
        "sqlite.read", completion,
        [s = store_, session = std::move(session), limit] { return s->list(session, limit); },
        std::move(done));
  }
};

class SqliteVectorStoreAdapter final : public VectorStore, private Gated<SqliteVectorStore> {
 public:
  using Gated::Gated;

  StoreCallPtr put(ChunkBatch chunks, const Executor& completion,
                   StoreHandler<void> done) override {
    return write("sqlite.write.vectors", completion, std::move(chunks), std::move(done));
  }

  StoreCallPtr search(std::string session, std::vector<float> query, std::size_t top_k,
                      const Executor& completion,
                      StoreHandler<std::vector<ScoredChunk>> done) override {
    return read<std::vector<ScoredChunk>>(
        "sqlite.read.vectors", completion,
        [s = store_, session = std::move(session), query = std::move(query), top_k] {
          return s->search(session, query, top_k);
        },
        std::move(done));
  }
};

}  // namespace

std::unique_ptr<RoundStore> make_sqlite_round_store(Runtime& runtime,
                                                    std::shared_ptr<SqliteRoundStore> store) {
  return std::make_unique<SqliteRoundStoreAdapter>(runtime, std::move(store));
}

std::unique_ptr<VectorStore> make_sqlite_vector_store(Runtime& runtime,
                                                      std::shared_ptr<SqliteVectorStore> store) {
  return std::make_unique<SqliteVectorStoreAdapter>(runtime, std::move(store));
}

}  // namespace memfuse
