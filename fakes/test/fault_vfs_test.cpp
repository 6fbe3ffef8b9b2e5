// FaultVfs: each fault kind, WAL in normal locking mode, crash and recovery,
// with raw sqlite3 calls (the same engine the stores use).
#include "memfuse/fakes/fault_vfs.h"

#include <sqlite3.h>

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace memfuse::fakes {
namespace {

using ::testing::HasSubstr;

// A connection over a FaultVfs, closed on destruction.
class Db {
 public:
  Db(const FaultVfs& vfs, const std::string& path) {
    rc_ = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                          vfs.name().c_str());
    sqlite3_extended_result_codes(db_, 1);
  }
  ~Db() { sqlite3_close_v2(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  int open_rc() const { return rc_; }
  int exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    last_error_ = err != nullptr ? err : "";
    sqlite3_free(err);
    return rc;
  }
  // The first column of every row, as text.
  std::vector<std::string> column(const std::string& sql) {
    std::vector<std::string> out;
    sqlite3_stmt* stmt = nullptr;
    if (const int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr); rc != SQLITE_OK) {
      return {"<error " + std::to_string(rc) + " in prepare>"};
    }
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      const auto* t = sqlite3_column_text(stmt, 0);
      out.emplace_back(t != nullptr ? reinterpret_cast<const char*>(t) : "NULL");
    }
    if (rc != SQLITE_DONE) out.push_back("<error " + std::to_string(rc) + ">");
    sqlite3_finalize(stmt);
    return out;
  }
  const std::string& last_error() const { return last_error_; }
  sqlite3* raw() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
  int rc_ = SQLITE_ERROR;
  std::string last_error_;
};

struct Fixture : ::testing::Test {
  Fixture() : random(7), vfs("fault-vfs-test-" + std::to_string(counter++), random) {
    seed_sqlite_prng(7);
    vfs.on_fault = [this](std::string_view label) { faults.emplace_back(label); };
  }
  static inline int counter = 0;
  SeededRandom random;
  FaultVfs vfs;
  std::vector<std::string> faults;
};

void create_wal_table(Db& db, const char* sync = "FULL") {
  ASSERT_EQ(db.open_rc(), SQLITE_OK);
  ASSERT_EQ(db.column("PRAGMA journal_mode=WAL"), std::vector<std::string>{"wal"})
      << "WAL needs the shared-memory methods in normal locking mode";
  ASSERT_EQ(db.exec(std::string("PRAGMA synchronous=") + sync), SQLITE_OK);
  ASSERT_EQ(db.exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)"), SQLITE_OK);
}

TEST_F(Fixture, RunsSqliteInWalModeWithTwoConnections) {
  Db writer(vfs, "/db");
  create_wal_table(writer);
  Db reader(vfs, "/db");
  ASSERT_EQ(writer.exec("INSERT INTO t VALUES (1, 'a'), (2, 'b')"), SQLITE_OK);
  EXPECT_EQ(reader.column("SELECT v FROM t ORDER BY id"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(vfs.exists("/db-wal"));
  EXPECT_EQ(writer.column("PRAGMA integrity_check"), std::vector<std::string>{"ok"});
}

TEST_F(Fixture, ATransientReadErrorFailsOneQueryOnly) {
  Db db(vfs, "/db");
  create_wal_table(db);
  ASSERT_EQ(db.exec("INSERT INTO t VALUES (1, 'a')"), SQLITE_OK);
  Db fresh(vfs, "/db");  // an empty page cache, so the query must read
  vfs.set_faults({.read = {.countdown = 1}});
  const auto failed = fresh.column("SELECT v FROM t");
  ASSERT_FALSE(failed.empty());
  EXPECT_THAT(failed.back(), HasSubstr("<error"));
  EXPECT_EQ(fresh.column("SELECT v FROM t"), std::vector<std::string>{"a"});
  EXPECT_THAT(faults, ::testing::Contains("vfs.read: SQLITE_IOERR_READ"));
}

TEST_F(Fixture, APersistentWriteErrorFailsEveryCommitUntilHealed) {
  Db db(vfs, "/db");
  create_wal_table(db);
  vfs.set_faults({.write = {.countdown = 1, .persistent = true}});
  EXPECT_EQ(db.exec("INSERT INTO t VALUES (1, 'a')") & 0xff, SQLITE_IOERR);
  EXPECT_EQ(db.exec("INSERT INTO t VALUES (2, 'b')") & 0xff, SQLITE_IOERR);
  vfs.heal();
  EXPECT_EQ(db.exec("INSERT INTO t VALUES (3, 'c')"), SQLITE_OK);
  EXPECT_EQ(db.column("SELECT id FROM t"), std::vector<std::string>{"3"});
}

TEST_F(Fixture, AFailedSyncFailsTheCommit) {
  Db db(vfs, "/db");
  create_wal_table(db);
  vfs.set_faults({.sync = {.countdown = 1}});
  const int rc = db.exec("INSERT INTO t VALUES (1, 'a')");
  EXPECT_EQ(rc & 0xff, SQLITE_IOERR);
  EXPECT_EQ(rc, SQLITE_IOERR_FSYNC);
  EXPECT_THAT(faults, ::testing::Contains("vfs.sync: SQLITE_IOERR_FSYNC"));
}

TEST_F(Fixture, AFullDiskAnswersSqliteFull) {
  Db db(vfs, "/db");
  create_wal_table(db);
  vfs.set_faults({.full = {.countdown = 1}});
  EXPECT_EQ(db.exec("INSERT INTO t VALUES (1, 'a')"), SQLITE_FULL);
  EXPECT_THAT(db.last_error(), HasSubstr("full"));
}

TEST_F(Fixture, LockContentionAnswersSqliteBusy) {
  Db db(vfs, "/db");
  create_wal_table(db);
  Db other(vfs, "/db");
  vfs.set_faults({.busy = {.probability = 1.0}});
  EXPECT_EQ(other.exec("SELECT * FROM t"), SQLITE_BUSY);
  vfs.heal();
  EXPECT_EQ(other.exec("SELECT * FROM t"), SQLITE_OK);
}

TEST_F(Fixture, ProbabilisticFaultsFireAtRoughlyTheirRate) {
  FaultRule rule{.probability = 0.25};
  int fired = 0;
  for (int i = 0; i < 4000; ++i) fired += vfs.fire(rule, "x") ? 1 : 0;
  EXPECT_GT(fired, 850);
  EXPECT_LT(fired, 1150);
}

TEST_F(Fixture, WithSynchronousFullACommittedRowSurvivesPowerLossAndUncommittedWorkDoesNot) {
  {
    Db db(vfs, "/db");
    create_wal_table(db);
    ASSERT_EQ(db.exec("INSERT INTO t VALUES (1, 'committed')"), SQLITE_OK);
    ASSERT_EQ(db.exec("BEGIN; INSERT INTO t VALUES (2, 'uncommitted')"), SQLITE_OK);
    vfs.crash(CrashModel::DropUnsynced);
    EXPECT_NE(db.exec("COMMIT"), SQLITE_OK) << "the process is dead: its handle fails";
  }
  Db restarted(vfs, "/db");
  EXPECT_EQ(restarted.column("PRAGMA integrity_check"), std::vector<std::string>{"ok"});
  EXPECT_EQ(restarted.column("SELECT v FROM t ORDER BY id"),
            std::vector<std::string>{"committed"});
}

TEST_F(Fixture, WithSynchronousNormalTheLastCommitMayBeLostButNothingCorrupts) {
  {
    Db db(vfs, "/db");
    create_wal_table(db, "NORMAL");
    ASSERT_EQ(db.exec("INSERT INTO t VALUES (1, 'x')"), SQLITE_OK);
    vfs.crash(CrashModel::DropUnsynced);
  }
  Db restarted(vfs, "/db");
  EXPECT_EQ(restarted.column("PRAGMA integrity_check"), std::vector<std::string>{"ok"});
  EXPECT_LE(restarted.column("SELECT v FROM t").size(), 1u);
}

class CrashModels : public Fixture, public ::testing::WithParamInterface<CrashModel> {};

TEST_P(CrashModels, RecoveryLeavesAConsistentDatabaseWithEveryCommittedRow) {
  for (std::uint64_t point = 1; point <= 60; point += 3) {
    const std::string path = "/db" + std::to_string(point);
    int committed = 0;
    {
      Db db(vfs, path);
      create_wal_table(db);
      vfs.crash_after(point, GetParam());
      for (int i = 0; i < 30 && vfs.crash_pending(); ++i) {
        if (db.exec("INSERT INTO t(v) VALUES ('" + std::string(600, 'x') + "')") == SQLITE_OK &&
            vfs.crash_pending()) {
          ++committed;
        }
      }
      vfs.heal();
    }
    Db restarted(vfs, path);
    ASSERT_EQ(restarted.column("PRAGMA integrity_check"), std::vector<std::string>{"ok"})
        << to_string(GetParam()) << " at point " << point;
    const auto rows = restarted.column("SELECT count(*) FROM t");
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_GE(std::stoi(rows[0]), committed) << "every acknowledged commit survives";
    EXPECT_LE(std::stoi(rows[0]), committed + 1) << "at most the commit in flight is added";
  }
}

INSTANTIATE_TEST_SUITE_P(AllModels, CrashModels,
                         ::testing::Values(CrashModel::DropUnsynced, CrashModel::KeepRandomSubset,
                                           CrashModel::TearLastWrite),
                         [](const auto& p) { return std::string(to_string(p.param)); });

TEST_F(Fixture, TheSameSeedGivesTheSameFileBytes) {
  auto run = [](int instance) {
    SeededRandom r(99);
    seed_sqlite_prng(99);
    FaultVfs v("fault-vfs-determinism-" + std::to_string(instance), r);
    {
      Db db(v, "/db");
      create_wal_table(db);
      for (int i = 0; i < 20; ++i) db.exec("INSERT INTO t(v) VALUES (randomblob(16))");
      v.set_faults({.write = {.probability = 0.1}});
      for (int i = 0; i < 20; ++i) db.exec("INSERT INTO t(v) VALUES (randomblob(16))");
      v.heal();
    }
    return std::make_pair(v.contents("/db"), v.contents("/db-wal"));
  };
  EXPECT_EQ(run(1), run(2));
}

}  // namespace
}  // namespace memfuse::fakes
