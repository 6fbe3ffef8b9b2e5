// The embedded pipeline (HybridBuffer, FlushManager, SQLite rounds and
// vectors in one file) on real threads: restart with synchronous FULL and
// NORMAL, add() returning while a flush is blocked inside SQLite, and reads
// racing the flushes.
// No timing thresholds: waits use futures and polls on state.
#include "memfuse/pipeline.h"

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "memfuse/asio_runtime.h"
#include "memfuse/chunker.h"

namespace memfuse {
namespace {

using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> n{0};
    path_ = std::filesystem::temp_directory_path() /
            ("memfuse_pipeline_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  [[nodiscard]] std::string file(const char* name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

template <typename T>
T wait(std::future<T> f) {
  EXPECT_EQ(f.wait_for(120s), std::future_status::ready);
  return f.get();
}

Config config_for(const std::string& path, SqliteSynchronous sync, int max_size = 4) {
  Config c;
  c.sqlite.path = path;
  c.sqlite.synchronous = sync;
  c.embedding.dimension = 64;
  c.buffer.hybrid_buffer.max_size = max_size;
  c.buffer.hybrid_buffer.enable_auto_flush = false;
  c.buffer.flush_manager.enable_auto_flush = false;
  return c;
}

HybridDrainReport drain(Runtime& rt, HybridBuffer& b) {
  std::promise<HybridDrainReport> p;
  b.drain(rt.clock().now() + 60s, [&](HybridDrainReport r) { p.set_value(std::move(r)); });
  return wait(p.get_future());
}

class Restart : public ::testing::TestWithParam<SqliteSynchronous> {};

TEST_P(Restart, EveryRoundAndChunkIsThereExactlyOnceAfterReopening) {
  TempDir dir;
  const Config config = config_for(dir.file("m.db"), GetParam());
  std::map<RoundId, AddReceipt> added;
  std::size_t chunks = 0;
  {
    AsioRuntime rt({.io_threads = 2, .blocking_threads = 2});
    auto p = Pipeline::open(rt, config);
    ASSERT_TRUE(p) << p.error().to_string();
    // Two threads adding at once, two sessions.
    std::vector<std::thread> threads;
    std::mutex mutex;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 25; ++i) {
          auto r = (*p)->buffer().add(NewRound{t == 0 ? "alpha" : "beta", std::nullopt,
                                               {{"user", "question " + std::to_string(i)},
                                                {"assistant", std::string(300 + i, 'a')}}});
          ASSERT_TRUE(r) << r.error().to_string();
          std::lock_guard lock(mutex);
          added.emplace(r->id, *r);
          chunks += r->chunks;
        }
      });
    }
    for (auto& th : threads) th.join();
    const auto report = drain(rt, (*p)->buffer());
    EXPECT_TRUE(report.completed_in_time);
    EXPECT_TRUE(report.unpersisted.empty());
  }
  AsioRuntime rt({.io_threads = 2, .blocking_threads = 2});
  auto p = Pipeline::open(rt, config);
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ((*p)->sqlite_rounds().count().value(), added.size());
  EXPECT_EQ((*p)->sqlite_vectors()->count().value(), chunks);
  for (const auto& [id, receipt] : added) {
    auto r = (*p)->sqlite_rounds().get(id);
    ASSERT_TRUE(r && r->has_value());
    EXPECT_EQ((*r)->seq, receipt.seq);
  }
  // Reads through the buffer see the stored rounds in seq order.
  std::promise<Result<std::vector<Round>>> listed;
  (*p)->buffer().list("alpha", 100, [&](auto r) { listed.set_value(std::move(r)); });
  auto alpha = wait(listed.get_future());
  ASSERT_TRUE(alpha);
  ASSERT_EQ(alpha->size(), 25u);
  for (std::size_t i = 1; i < alpha->size(); ++i) EXPECT_LT((*alpha)[i - 1].seq, (*alpha)[i].seq);
  // A new round continues after what is stored.
  std::uint64_t max_seq = 0;
  for (const auto& [id, r] : added) max_seq = std::max(max_seq, r.seq);
  auto next = (*p)->buffer().add(NewRound{"alpha", std::nullopt, {{"user", "after restart"}}});
  ASSERT_TRUE(next);
  EXPECT_EQ(next->seq, max_seq + 1);
  EXPECT_TRUE(drain(rt, (*p)->buffer()).completed_in_time);
  EXPECT_EQ((*p)->sqlite_rounds().count().value(), added.size() + 1);
}

INSTANTIATE_TEST_SUITE_P(, Restart,
                         ::testing::Values(SqliteSynchronous::Full, SqliteSynchronous::Normal),
                         [](const auto& param_info) {
                           return std::string(to_string(param_info.param));
                         });

// add() on this thread returns while a flush is blocked inside SQLite on a
// pool thread: another connection holds the write lock, so the flush's
// BEGIN IMMEDIATE waits in SQLite's busy handler until we let go.
TEST(NonBlockingAdd, AddReturnsWhileAFlushIsBlockedInsideSqlite) {
  TempDir dir;
  Config config = config_for(dir.file("m.db"), SqliteSynchronous::Full, 2);
  config.sqlite.busy_timeout_ms = 600'000;
  AsioRuntime rt({.io_threads = 2, .blocking_threads = 2});
  auto p = Pipeline::open(rt, config);
  ASSERT_TRUE(p) << p.error().to_string();

  sqlite3* blocker = nullptr;
  ASSERT_EQ(sqlite3_open(config.sqlite.path.c_str(), &blocker), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);

  auto& b = (*p)->buffer();
  ASSERT_TRUE(b.add(NewRound{"s", std::nullopt, {{"user", "one"}}}));
  ASSERT_TRUE(b.add(NewRound{"s", std::nullopt, {{"user", "two"}}}));  // size trigger: a flush starts
  // Wait until the flush's attempt is running (its SQLite write is on a pool
  // thread, waiting for the lock we hold).
  while (b.stats().flush_manager.active_workers == 0) std::this_thread::sleep_for(1ms);

  std::vector<RoundId> more;
  for (int i = 0; i < 100; ++i) {
    auto r = b.add(NewRound{"s", std::nullopt, {{"user", "while blocked " + std::to_string(i)}}});
    ASSERT_TRUE(r) << r.error().to_string();
    more.push_back(r->id);
  }
  // Every add returned, and the flush is still blocked: nothing is durable.
  const auto during = b.stats();
  EXPECT_EQ(during.total_successful_flushes, 0u);
  EXPECT_GE(during.in_flight_rounds, 2u);
  EXPECT_EQ(during.total_rounds_received, 102u);
  // The rounds added meanwhile are readable from memory.
  std::promise<Result<std::optional<Round>>> got;
  b.get(more.back(), [&](auto r) { got.set_value(std::move(r)); });
  auto r = wait(got.get_future());
  ASSERT_TRUE(r && r->has_value());

  ASSERT_EQ(sqlite3_exec(blocker, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(blocker);
  EXPECT_TRUE(drain(rt, b).completed_in_time);
  EXPECT_EQ((*p)->sqlite_rounds().count().value(), 102u);
}

// Reads race the flushes: one thread adds (a batch every 3 rounds, so
// batches are cut, attempted and retired all the time) while another
// searches, lists and gets. Every search result's text must be its round's
// chunk text, whether the chunk was buffered, in flight (where an attempt
// fills the texts in for the vector store) or stored. Under ThreadSanitizer
// this is also the race check for those fills.
TEST(ReadsDuringFlushes, EverySearchResultCarriesItsRoundsTextWhileBatchesFlush) {
  TempDir dir;
  Config config = config_for(dir.file("m.db"), SqliteSynchronous::Normal, 3);
  config.chunking.chunk_size_bytes = 64;
  AsioRuntime rt({.io_threads = 2, .blocking_threads = 2});
  auto p = Pipeline::open(rt, config);
  ASSERT_TRUE(p) << p.error().to_string();
  auto& b = (*p)->buffer();

  constexpr int kRounds = 300;
  std::atomic<bool> adding{true};
  std::thread writer([&] {
    for (int i = 0; i < kRounds; ++i) {
      std::string text = "round ";
      text.append(std::to_string(i)).append(" says something long enough to make two or three chunks");
      auto r = b.add(NewRound{i % 2 == 0 ? "even" : "odd", std::nullopt, {{"user", text}}});
      EXPECT_TRUE(r) << r.error().to_string();
    }
    adding.store(false);
  });

  auto check = [&](const ScoredChunk& hit) {
    std::promise<Result<std::optional<Round>>> got;
    b.get(hit.chunk.round_id, [&](auto r) { got.set_value(std::move(r)); });
    auto round = wait(got.get_future());
    ASSERT_TRUE(round && round->has_value());
    const auto texts = chunk_round(**round, config.chunking.chunk_size_bytes);
    ASSERT_LT(hit.chunk.index, texts.size());
    EXPECT_EQ(hit.chunk.text, texts[hit.chunk.index].text);
    EXPECT_EQ(hit.chunk.session_id, (*round)->session_id);
  };
  int searches = 0;
  std::size_t hits_seen = 0;
  while (adding.load() || searches < 20) {
    for (const char* session : {"even", "odd"}) {
      std::promise<Result<std::vector<ScoredChunk>>> found;
      b.search(session, "says something long", HybridBuffer::kMaxReadCount,
               [&](auto r) { found.set_value(std::move(r)); });
      auto hits = wait(found.get_future());
      ASSERT_TRUE(hits) << hits.error().to_string();
      for (const auto& hit : *hits) check(hit);
      hits_seen += hits->size();
      std::promise<Result<std::vector<Round>>> listed;
      b.list(session, 50, [&](auto r) { listed.set_value(std::move(r)); });
      auto rounds = wait(listed.get_future());
      ASSERT_TRUE(rounds) << rounds.error().to_string();
      for (std::size_t i = 1; i < rounds->size(); ++i) EXPECT_LT((*rounds)[i - 1].seq, (*rounds)[i].seq);
    }
    ++searches;
  }
  writer.join();
  EXPECT_GT(hits_seen, 0u);
  EXPECT_TRUE(drain(rt, b).completed_in_time);
  EXPECT_EQ((*p)->sqlite_rounds().count().value(), static_cast<std::size_t>(kRounds));
  EXPECT_GE(b.stats().total_successful_flushes, static_cast<std::uint64_t>(kRounds / 3));
}

}  // namespace
}  // namespace memfuse
