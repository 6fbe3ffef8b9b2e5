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

// The bytes a crash leaves, against the plain definition of the crash
// models: a durable copy of the file, and every write and truncation since
// the last sync kept aside with its data, applied to that copy as the model
// says (the FaultVfs keeps an undo log instead, and works the same out
// backwards). The operations go straight to the VFS's file methods: random
// offsets (inside, across the end of and past the end of the file), sizes,
// truncations that shrink and grow, syncs, and then a crash with each model.
struct FileOp {
  enum Kind { Write, Truncate, Sync } kind;
  std::int64_t offset;  // for Truncate: the new size
  std::vector<std::uint8_t> data;
};

[[maybe_unused]] void showValue(const FileOp& op, std::ostream& os) {
  os << (op.kind == FileOp::Write ? "write " : op.kind == FileOp::Truncate ? "truncate " : "sync")
     << (op.kind == FileOp::Sync ? "" : std::to_string(op.offset))
     << (op.kind == FileOp::Write ? " +" + std::to_string(op.data.size()) : "");
}

struct ReferenceFile {
  std::vector<std::uint8_t> current, durable;
  std::vector<FileOp> unsynced;

  static void apply(std::vector<std::uint8_t>& bytes, const FileOp& op) {
    if (op.kind == FileOp::Write) {
      const auto end = static_cast<std::size_t>(op.offset) + op.data.size();
      if (bytes.size() < end) bytes.resize(end, 0);
      std::copy(op.data.begin(), op.data.end(), bytes.begin() + op.offset);
    } else {
      bytes.resize(static_cast<std::size_t>(op.offset));
    }
  }
  void run(const FileOp& op) {
    if (op.kind == FileOp::Sync) {
      durable = current;
      unsynced.clear();
      return;
    }
    apply(current, op);
    unsynced.push_back(op);
  }
  std::vector<std::uint8_t> crash(CrashModel model, Random& random) const {
    std::vector<std::uint8_t> out = durable;
    for (std::size_t i = 0; i < unsynced.size(); ++i) {
      const FileOp& op = unsynced[i];
      const bool last = i + 1 == unsynced.size();
      if (model == CrashModel::KeepRandomSubset) {
        if (random.chance(0.5)) apply(out, op);
      } else if (model == CrashModel::TearLastWrite) {
        if (!last) {
          apply(out, op);
        } else if (op.kind == FileOp::Write) {
          for (std::size_t s = 0; s < op.data.size(); s += 512) {
            if (!random.chance(0.5)) continue;
            const std::size_t n = std::min<std::size_t>(512, op.data.size() - s);
            FileOp piece{FileOp::Write, op.offset + static_cast<std::int64_t>(s),
                         std::vector<std::uint8_t>(op.data.begin() + static_cast<std::ptrdiff_t>(s),
                                                   op.data.begin() + static_cast<std::ptrdiff_t>(s + n))};
            apply(out, piece);
          }
        }
      }
    }
    return out;
  }
};

RC_GTEST_PROP(FaultVfsCrash, ACrashLeavesTheBytesTheModelDefines, ()) {
  const auto gen_op = rc::gen::mapcat(rc::gen::inRange(0, 10), [](int k) {
    if (k == 0) return rc::gen::just(FileOp{FileOp::Sync, 0, {}});
    if (k == 1) {
      return rc::gen::map(rc::gen::inRange<std::int64_t>(0, 6000),
                          [](std::int64_t size) { return FileOp{FileOp::Truncate, size, {}}; });
    }
    return rc::gen::map(
        rc::gen::pair(rc::gen::inRange<std::int64_t>(0, 5000),
                      rc::gen::container<std::vector<std::uint8_t>>(rc::gen::arbitrary<std::uint8_t>())),
        [](const std::pair<std::int64_t, std::vector<std::uint8_t>>& p) {
          return FileOp{FileOp::Write, p.first, p.second};
        });
  });
  const auto ops = *rc::gen::resize(600, rc::gen::container<std::vector<FileOp>>(gen_op));
  const auto model = *rc::gen::element(CrashModel::DropUnsynced, CrashModel::KeepRandomSubset,
                                       CrashModel::TearLastWrite);
  const auto seed = *rc::gen::arbitrary<std::uint32_t>();

  SeededRandom vfs_random(seed);
  FaultVfs vfs("bytes-prop-" + std::to_string(g_vfs_counter++), vfs_random);
  sqlite3_vfs* v = sqlite3_vfs_find(vfs.name().c_str());
  RC_ASSERT(v != nullptr);
  std::vector<std::uint8_t> handle(static_cast<std::size_t>(v->szOsFile));
  auto* file = reinterpret_cast<sqlite3_file*>(handle.data());
  int out_flags = 0;
  RC_ASSERT(v->xOpen(v, "/f", file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_MAIN_DB,
                     &out_flags) == SQLITE_OK);
  ReferenceFile reference;
  for (const auto& op : ops) {
    int rc = SQLITE_OK;
    if (op.kind == FileOp::Write) {
      if (op.data.empty()) continue;  // SQLite never writes nothing
      rc = file->pMethods->xWrite(file, op.data.data(), static_cast<int>(op.data.size()), op.offset);
    } else if (op.kind == FileOp::Truncate) {
      rc = file->pMethods->xTruncate(file, op.offset);
    } else {
      rc = file->pMethods->xSync(file, SQLITE_SYNC_NORMAL);
    }
    RC_ASSERT(rc == SQLITE_OK);
    reference.run(op);
    if (op.kind != FileOp::Write) RC_ASSERT(vfs.contents("/f") == reference.current);
  }
  RC_ASSERT(vfs.contents("/f") == reference.current);
  vfs.crash(model);
  file->pMethods->xClose(file);
  SeededRandom reference_random(seed);
  RC_ASSERT(vfs.contents("/f") == reference.crash(model, reference_random));
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
