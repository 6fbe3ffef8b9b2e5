// Crash recovery of real SQLite over FaultVfs, at any point.
//
// Method: RapidCheck generates a list of transactions (each inserts a few rows
// of random sizes, tagged with the transaction's number), a crash model and
// several crash points (the n-th write or sync). For each crash point the
// transactions run on a fresh file in WAL mode with synchronous=FULL until the
// power fails; the file is then reopened, letting SQLite recover, and checked:
//   - PRAGMA integrity_check is ok;
//   - every transaction whose COMMIT returned success is there, entirely;
//   - every transaction that never reached COMMIT is absent;
//   - the one whose COMMIT failed (outcome unknown) is there entirely or not at all.
// Each case checks 10 crash points: 1000 at RapidCheck's default 100 cases,
// 3000 in CI (300 cases).
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <sqlite3.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "memfuse/fakes/fault_vfs.h"

namespace memfuse::fakes {
namespace {

std::atomic<int> g_vfs_counter{0};
std::atomic<int> g_crash_points{0};
std::atomic<int> g_crashed{0};  // crash points the workload actually reached

struct Txn {
  std::vector<int> row_sizes;
};

// How RapidCheck prints a transaction (found by ADL).
[[maybe_unused]] void showValue(const Txn& t, std::ostream& os) {
  os << "txn of " << t.row_sizes.size() << " rows";
}

int exec(sqlite3* db, const std::string& sql) {
  return sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
}

std::map<int, int> rows_by_txn(sqlite3* db) {
  std::map<int, int> out;
  sqlite3_stmt* stmt = nullptr;
  RC_ASSERT(sqlite3_prepare_v2(db, "SELECT txn, count(*) FROM t GROUP BY txn", -1, &stmt,
                               nullptr) == SQLITE_OK);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    out[sqlite3_column_int(stmt, 0)] = sqlite3_column_int(stmt, 1);
  }
  sqlite3_finalize(stmt);
  return out;
}

std::string integrity(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) != SQLITE_OK) {
    return "prepare failed";
  }
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    out += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  return out;
}

void check_one_crash_point(const std::vector<Txn>& txns, CrashModel model, std::uint64_t point,
                           std::uint64_t seed) {
  SeededRandom random(seed);
  seed_sqlite_prng(static_cast<std::uint32_t>(seed));
  FaultVfs vfs("crash-prop-" + std::to_string(g_vfs_counter++), random);
  std::set<int> committed;
  std::optional<int> unknown;  // COMMIT returned an error
  {
    sqlite3* db = nullptr;
    RC_ASSERT(sqlite3_open_v2("/db", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              vfs.name().c_str()) == SQLITE_OK);
    RC_ASSERT(exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                       "CREATE TABLE t(id INTEGER PRIMARY KEY, txn INTEGER, body BLOB)") == SQLITE_OK);
    vfs.crash_after(point, model);
    for (std::size_t i = 0; i < txns.size() && vfs.crash_pending(); ++i) {
      const int id = static_cast<int>(i) + 1;
      bool ok = exec(db, "BEGIN") == SQLITE_OK;
      for (int size : txns[i].row_sizes) {
        ok = ok && exec(db, "INSERT INTO t(txn, body) VALUES (" + std::to_string(id) +
                                ", zeroblob(" + std::to_string(size) + "))") == SQLITE_OK;
      }
      if (!ok) break;  // the power failed before COMMIT: this transaction must be absent
      if (exec(db, "COMMIT") == SQLITE_OK) {
        committed.insert(id);
      } else {
        unknown = id;
        break;
      }
    }
    if (!vfs.crash_pending()) ++g_crashed;
    vfs.heal();
    sqlite3_close_v2(db);
  }
  sqlite3* db = nullptr;
  RC_ASSERT(sqlite3_open_v2("/db", &db, SQLITE_OPEN_READWRITE, vfs.name().c_str()) == SQLITE_OK);
  const std::string check = integrity(db);
  const auto present = rows_by_txn(db);
  sqlite3_close_v2(db);
  ++g_crash_points;
  RC_ASSERT(check == "ok");
  for (int id : committed) {
    RC_ASSERT(present.contains(id));
    RC_ASSERT(present.at(id) == static_cast<int>(txns[static_cast<std::size_t>(id - 1)].row_sizes.size()));
  }
  for (const auto& [id, count] : present) {
    if (committed.contains(id)) continue;
    RC_ASSERT(unknown.has_value());
    RC_ASSERT(id == *unknown);  // nothing but the commit whose outcome was unknown
    RC_ASSERT(count == static_cast<int>(txns[static_cast<std::size_t>(id - 1)].row_sizes.size()));
  }
}

RC_GTEST_PROP(FaultVfsCrash, CommittedSurvivesUncommittedVanishesUnknownIsAllOrNothing, ()) {
  const auto txns = *rc::gen::resize(
      12, rc::gen::nonEmpty(rc::gen::container<std::vector<Txn>>(rc::gen::build<Txn>(
              rc::gen::set(&Txn::row_sizes, rc::gen::nonEmpty(rc::gen::container<std::vector<int>>(
                                                 rc::gen::inRange(1, 3000))))))));
  const auto model = *rc::gen::element(CrashModel::DropUnsynced, CrashModel::KeepRandomSubset,
                                       CrashModel::TearLastWrite);
  const auto seed = *rc::gen::arbitrary<std::uint32_t>();
  // 10 crash points a case: at least 1000 per run even at RapidCheck's
  // default 100 cases (CI runs 300: 3000).
  for (int k = 0; k < 10; ++k) {
    const auto point = *rc::gen::inRange<std::uint64_t>(1, 120);
    check_one_crash_point(txns, model, point, seed + static_cast<std::uint64_t>(k));
  }
}

struct ReportCrashPoints : ::testing::Environment {
  void TearDown() override {
    std::printf("FaultVfs crash property: %d crash points checked, %d of them reached by the "
                "workload (the others ran it to the end without a crash)\n",
                g_crash_points.load(), g_crashed.load());
  }
};
const auto* const kReport = ::testing::AddGlobalTestEnvironment(new ReportCrashPoints);

}  // namespace
}  // namespace memfuse::fakes
