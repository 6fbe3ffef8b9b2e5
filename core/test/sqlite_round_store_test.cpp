// SqliteRoundStore on a real file and over the fault-injecting VFS.
#include "memfuse/sqlite_round_store.h"

#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "memfuse/fakes/fault_vfs.h"

namespace memfuse {
namespace {

using ::testing::HasSubstr;

Round make_round(std::uint64_t seq, std::string session, std::string content) {
  Round r;
  r.id = make_round_id(static_cast<std::int64_t>(1000 + seq), seq, seq * 7);
  r.session_id = std::move(session);
  r.seq = seq;
  r.created_at = TimePoint(std::chrono::milliseconds(static_cast<std::int64_t>(seq)));
  r.messages = {{"user", std::move(content)}, {"assistant", "ok"}};
  return r;
}

struct TempDir {
  TempDir() : path(std::filesystem::temp_directory_path() / ("memfuse-store-test-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::filesystem::path path;
};

TEST(SqliteRoundStore, StoresGetsAndListsRoundsOnARealFile) {
  TempDir dir;
  auto store = SqliteRoundStore::open({(dir.path / "m.db").string(), SqliteSynchronous::Full, 1000, {}});
  ASSERT_TRUE(store.has_value()) << store.error().to_string();
  const std::vector<Round> rounds = {make_round(1, "a", "one"), make_round(2, "b", "two"),
                                     make_round(3, "a", "three")};
  ASSERT_EQ((*store)->put(rounds).value(), 3u);
  EXPECT_EQ((*store)->get(rounds[1].id).value(), rounds[1]);
  EXPECT_FALSE((*store)->get(make_round_id(1, 2, 3)).value().has_value());
  const auto a = (*store)->list("a", 10).value();
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0], rounds[0]);
  EXPECT_EQ(a[1], rounds[2]);
  EXPECT_EQ((*store)->list("a", 1).value(), std::vector<Round>{rounds[2]}) << "the latest, by seq";
  EXPECT_EQ((*store)->max_seq().value(), 3u);
}

TEST(SqliteRoundStore, PutIsIdempotentById) {
  TempDir dir;
  auto store = SqliteRoundStore::open({(dir.path / "m.db").string(), SqliteSynchronous::Normal, 1000, {}});
  ASSERT_TRUE(store.has_value());
  const std::vector<Round> rounds = {make_round(1, "s", "x"), make_round(2, "s", "y")};
  EXPECT_EQ((*store)->put(rounds).value(), 2u);
  EXPECT_EQ((*store)->put(rounds).value(), 0u) << "a retry inserts nothing";
  EXPECT_EQ((*store)->count().value(), 2u);
}

TEST(SqliteRoundStore, StoresHostileBytesExactly) {
  TempDir dir;
  auto store = SqliteRoundStore::open({(dir.path / "m.db").string(), SqliteSynchronous::Normal, 1000, {}});
  ASSERT_TRUE(store.has_value());
  Round r = make_round(1, std::string("s'; DROP TABLE rounds; --\0x", 28), std::string("a\0b \"q\" ; SELECT 1", 19));
  r.user_id = std::string("u\0'", 3);
  ASSERT_TRUE((*store)->put(std::vector<Round>{r}).has_value());
  EXPECT_EQ((*store)->get(r.id).value(), r);
  EXPECT_EQ((*store)->list(r.session_id, 5).value().size(), 1u);
  EXPECT_EQ((*store)->count().value(), 1u) << "the table survived the session id";
}

TEST(SqliteRoundStore, MigratesOnceAndRefusesANewerSchema) {
  TempDir dir;
  const std::string path = (dir.path / "m.db").string();
  {
    auto store = SqliteRoundStore::open({path, SqliteSynchronous::Normal, 1000, {}});
    ASSERT_TRUE(store.has_value());
    ASSERT_TRUE((*store)->put(std::vector<Round>{make_round(1, "s", "x")}).has_value());
  }
  {
    auto reopened = SqliteRoundStore::open({path, SqliteSynchronous::Normal, 1000, {}});
    ASSERT_TRUE(reopened.has_value()) << reopened.error().to_string();
    EXPECT_EQ((*reopened)->count().value(), 1u);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "SELECT count(*), max(version) FROM schema_version", -1, &s, nullptr);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), 2) << "each migration recorded once";
  EXPECT_EQ(sqlite3_column_int(s, 1), 2) << "schema version 2: rounds, then chunks";
  sqlite3_finalize(s);
  sqlite3_exec(db, "INSERT INTO schema_version VALUES (99)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto newer = SqliteRoundStore::open({path, SqliteSynchronous::Normal, 1000, {}});
  ASSERT_FALSE(newer.has_value());
  EXPECT_EQ(newer.error().code(), ErrorCode::Corrupt);
  EXPECT_THAT(newer.error().message(), HasSubstr("schema version 99"));
}

TEST(SqliteRoundStore, ACantOpenPathIsAClearError) {
  auto store = SqliteRoundStore::open({"/nonexistent-dir/x/m.db", SqliteSynchronous::Normal, 1000, {}});
  ASSERT_FALSE(store.has_value());
  EXPECT_THAT(store.error().message(), HasSubstr("check sqlite.path"));
}

struct OverFaultVfs : ::testing::Test {
  OverFaultVfs() : random(11), vfs("round-store-test-" + std::to_string(counter++), random) {}
  std::unique_ptr<SqliteRoundStore> open() {
    auto s = SqliteRoundStore::open({"/m.db", SqliteSynchronous::Full, 0, vfs.name()});
    EXPECT_TRUE(s.has_value()) << s.error().to_string();
    return s ? std::move(*s) : nullptr;
  }
  static inline int counter = 0;
  SeededRandom random;
  fakes::FaultVfs vfs;
};

TEST_F(OverFaultVfs, IoErrorsAreRetryableIoAndLeaveNothingHalfDone) {
  auto store = open();
  vfs.set_faults({.write = {.countdown = 1}});
  const std::vector<Round> rounds = {make_round(1, "s", "x"), make_round(2, "s", "y")};
  auto failed = store->put(rounds);
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code(), ErrorCode::Io);
  EXPECT_TRUE(failed.error().retryable());
  EXPECT_EQ(store->count().value(), 0u) << "one transaction: all or nothing";
  EXPECT_EQ(store->put(rounds).value(), 2u) << "the retry succeeds";
}

TEST_F(OverFaultVfs, BusyIsRetryableUnavailable) {
  auto store = open();
  vfs.set_faults({.busy = {.probability = 1.0}});
  auto failed = store->put(std::vector<Round>{make_round(1, "s", "x")});
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code(), ErrorCode::Unavailable);
  EXPECT_TRUE(failed.error().retryable());
}

TEST_F(OverFaultVfs, WithSynchronousFullAcknowledgedRoundsSurviveACrash) {
  std::vector<Round> acknowledged;
  {
    auto store = open();
    bool armed = false;
    for (std::uint64_t i = 1; i <= 20; ++i) {
      if (i == 15) {
        vfs.crash_after(3, fakes::CrashModel::TearLastWrite);
        armed = true;
      }
      const std::vector<Round> one = {make_round(i, "s", std::string(300, 'x'))};
      const bool ok = store->put(one).has_value();
      const bool power_on = !armed || vfs.crash_pending();
      if (ok && power_on) acknowledged.push_back(one[0]);
      if (!power_on) break;  // the process died with the power
    }
    vfs.heal();
  }
  auto restarted = open();
  ASSERT_NE(restarted, nullptr);
  for (const Round& r : acknowledged) EXPECT_EQ(restarted->get(r.id).value(), r) << r.seq;
  EXPECT_GE(restarted->count().value(), acknowledged.size());
  EXPECT_LE(restarted->count().value(), acknowledged.size() + 1);
}

}  // namespace
}  // namespace memfuse

namespace memfuse {
namespace {

// interrupt() from another thread aborts the running put: the transaction
// rolls back (nothing stored), the error is Cancelled, and the connection
// stays usable. The interrupter spins from before put() starts until it
// returns. SQLite drops an interrupt that arrives between two statements (the
// put runs 50 000), so on a loaded machine one landing inside a statement is
// likely, not certain: a put that completed is checked for being whole, and
// the test tries again on a fresh file, up to 20 times.
TEST(SqliteRoundStore, InterruptAbortsTheRunningPutAndRollsBack) {
  std::vector<Round> rounds;
  for (std::uint64_t i = 1; i <= 50'000; ++i) rounds.push_back(make_round(i, "s", "content"));
  int tries = 0;
  bool interrupted = false;
  while (!interrupted && tries < 20) {
    ++tries;
    TempDir dir;
    auto store = SqliteRoundStore::open({(dir.path / "m.db").string(), SqliteSynchronous::Normal, 1000, {}});
    ASSERT_TRUE(store.has_value());
    std::atomic<bool> spinning{false}, stop{false};
    std::thread interrupter([&] {
      while (!stop.load()) {
        spinning.store(true);
        (*store)->interrupt();
      }
    });
    while (!spinning.load()) std::this_thread::yield();
    auto r = (*store)->put(rounds);
    stop.store(true);
    interrupter.join();
    if (r.has_value()) {  // no interrupt landed inside a statement: the put is whole
      EXPECT_EQ(*r, rounds.size());
      EXPECT_EQ((*store)->count().value(), rounds.size());
      continue;
    }
    interrupted = true;
    EXPECT_EQ(r.error().code(), ErrorCode::Cancelled) << r.error().to_string();
    EXPECT_EQ((*store)->count().value(), 0u) << "rolled back";
    EXPECT_EQ((*store)->put(std::span(rounds).first(10)).value(), 10u) << "the connection still works";
  }
  EXPECT_TRUE(interrupted) << "no put was interrupted in " << tries << " tries";
}

// Stored messages are read without trusting them: any other shape is a
// Corrupt error naming what is wrong, never an exception or a wrong round.
TEST(SqliteRoundStore, MalformedStoredMessagesAreCorruptNotExceptions) {
  TempDir dir;
  const std::string path = (dir.path / "m.db").string();
  auto store = SqliteRoundStore::open({path, SqliteSynchronous::Normal, 1000, {}});
  ASSERT_TRUE(store.has_value()) << store.error().to_string();
  Round odd = make_round(1, "s", std::string("q\"uote\\ \n\t\x01 caf\xc3\xa9 NUL:\0 end", 27));
  odd.messages.push_back({"system", ""});
  ASSERT_TRUE((*store)->put(std::vector<Round>{odd}).has_value());
  auto back = (*store)->get(odd.id);
  ASSERT_TRUE(back.has_value() && back->has_value());
  EXPECT_EQ((*back)->messages, odd.messages) << "every byte, every message, in order";

  auto store_text = [&](std::string_view text) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "UPDATE rounds SET messages = ?1", -1, &s, nullptr), SQLITE_OK);
    sqlite3_bind_text(s, 1, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    sqlite3_close(db);
  };
  // Valid JSON in another writer's shape (spaces, the other key order,
  // escapes our writer does not use) is read as what it means.
  struct Valid {
    std::string stored;
    std::vector<Message> means;
  };
  for (const Valid& v : {Valid{R"([ {"role": "user", "content": "hi"} ])", {{"user", "hi"}}},
                         Valid{R"([{"content":"caf\u00e9 \ud83d\ude00 \/ \u0041","role":"u"}])",
                               {{"u", "caf\xc3\xa9 \xf0\x9f\x98\x80 / A"}}},
                         Valid{R"([{"content":"a","role":"u"},{"role":"v","content":"b"}])", {{"u", "a"}, {"v", "b"}}},
                         Valid{"[]", {}}}) {
    store_text(v.stored);
    auto read = (*store)->get(odd.id);
    ASSERT_TRUE(read.has_value()) << v.stored << ": " << read.error().to_string();
    ASSERT_TRUE(read->has_value());
    EXPECT_EQ((*read)->messages, v.means) << v.stored;
  }

  struct Case {
    const char* stored;
    const char* says;
  };
  for (const Case c : {Case{"", "not a JSON array"}, Case{"{}", "not a JSON array"}, Case{"5", "not a JSON array"},
                       Case{"[1]", "lacks role or content"}, Case{R"([{"role":"user"}])", "lacks role or content"},
                       Case{R"([{"role":7,"content":"x"}])", "lacks role or content"},
                       Case{R"([{"role":"u","content":{"a":1}}])", "lacks role or content"},
                       Case{R"([{"role":"u","content":"x","extra":"y"}])", "a field other than role and content"},
                       Case{R"([{"role":"u","content":"x"})", "not a JSON array"},
                       Case{R"([[{"role":"u","content":"x"}]])", "lacks role or content"},
                       // Our writer's shape, but not JSON: a raw control character, text
                       // that is not UTF-8, something after the array.
                       Case{"[{\"content\":\"a\x01" "b\",\"role\":\"u\"}]", "not a JSON array"},
                       Case{"[{\"content\":\"\xc3\x28\",\"role\":\"u\"}]", "not a JSON array"},
                       Case{R"([{"content":"x","role":"u"}]x)", "not a JSON array"}}) {
    store_text(c.stored);
    auto one = (*store)->get(odd.id);
    ASSERT_FALSE(one.has_value()) << c.stored;
    EXPECT_EQ(one.error().code(), ErrorCode::Corrupt) << c.stored;
    EXPECT_THAT(one.error().message(), HasSubstr(c.says)) << c.stored;
    auto listed = (*store)->list("s", 10);
    ASSERT_FALSE(listed.has_value()) << c.stored;
    EXPECT_EQ(listed.error().code(), ErrorCode::Corrupt) << c.stored;
  }
}

}  // namespace
}  // namespace memfuse
