#include "sqlite_common.h"

#include <fmt/format.h>

namespace memfuse::detail {
namespace {

// Each migration takes the schema from version i to i + 1. Append only: a
// stored database at version i runs migrations i.. at open.
constexpr const char* kMigrations[] = {
    // 0 -> 1: rounds, clustered by their time-ordered id; a per-session index by seq.
    "CREATE TABLE rounds("
    "  id BLOB PRIMARY KEY,"          // 16 bytes, UUIDv7 layout
    "  session_id BLOB NOT NULL,"     // bytes as given (NUL bytes allowed)
    "  user_id BLOB,"
    "  seq INTEGER NOT NULL,"
    "  created_at_ns INTEGER NOT NULL,"
    "  messages TEXT NOT NULL"        // JSON [{"role": ..., "content": ...}]
    ") WITHOUT ROWID;"
    "CREATE INDEX rounds_by_session_seq ON rounds(session_id, seq);",
    // 1 -> 2: chunk vectors (the embedded vector store), keyed by (round, index).
    "CREATE TABLE chunks("
    "  round_id BLOB NOT NULL,"
    "  idx INTEGER NOT NULL,"
    "  session_id BLOB NOT NULL,"
    "  text BLOB NOT NULL,"
    "  vector BLOB NOT NULL,"         // float32, host byte order
    "  PRIMARY KEY(round_id, idx)"
    ") WITHOUT ROWID;"
    "CREATE INDEX chunks_by_session ON chunks(session_id);",
};
static_assert(std::size(kMigrations) == kSqliteSchemaVersion);

Result<void> exec(sqlite3* db, const char* sql, std::string_view what) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Unexpected(sqlite_error(db, rc, what));
  return {};
}

Result<void> migrate(sqlite3* db, const std::string& path) {
  if (auto ok = exec(db, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)",
                     "creating schema_version");
      !ok) {
    return ok;
  }
  Statement read;
  if (int r = read.prepare(db, "SELECT coalesce(max(version), 0) FROM schema_version"); r != SQLITE_OK) {
    return Unexpected(sqlite_error(db, r, "reading schema_version"));
  }
  if (int r = sqlite3_step(read.get()); r != SQLITE_ROW) {
    return Unexpected(sqlite_error(db, r, "reading schema_version"));
  }
  const int version = sqlite3_column_int(read.get(), 0);
  if (version > kSqliteSchemaVersion) {
    return fail(ErrorCode::Corrupt, false,
                fmt::format("sqlite: {} has schema version {}, newer than this build's {}; "
                            "upgrade memfuse-flush",
                            path, version, kSqliteSchemaVersion));
  }
  for (int v = version; v < kSqliteSchemaVersion; ++v) {
    if (auto ok = exec(db, kMigrations[v], "migrating the schema"); !ok) return ok;
    const std::string record = fmt::format("INSERT INTO schema_version VALUES ({})", v + 1);
    if (auto ok = exec(db, record.c_str(), "recording the schema version"); !ok) return ok;
  }
  return {};
}

}  // namespace

Error sqlite_error(sqlite3* db, int rc, std::string_view what) {
  const std::string message = fmt::format("sqlite: {} failed: {} ({})", what,
                                          db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Error(ErrorCode::Unavailable, true, message + "; the database is locked, retry later");
    case SQLITE_IOERR:
    case SQLITE_FULL:
      return Error(ErrorCode::Io, true, message);
    case SQLITE_INTERRUPT:
      return Error(ErrorCode::Cancelled, false, message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Error(ErrorCode::Corrupt, false, message + "; the database file is damaged");
    case SQLITE_CANTOPEN:
      return Error(ErrorCode::Io, false, message + "; check sqlite.path and its directory");
    default:
      return Error(ErrorCode::Io, false, message);
  }
}

Result<sqlite3*> open_database(const SqliteStoreOptions& options) {
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(options.path.c_str(), &db, flags,
                           options.vfs.empty() ? nullptr : options.vfs.c_str());
  auto fail_closed = [&](Error e) -> Result<sqlite3*> {
    sqlite3_close_v2(db);
    return Unexpected(std::move(e));
  };
  if (rc != SQLITE_OK) return fail_closed(sqlite_error(db, rc, fmt::format("opening {}", options.path)));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  {
    // WAL: readers never block the writer. An in-memory database answers "memory".
    Statement mode;
    rc = mode.prepare(db, "PRAGMA journal_mode=WAL");
    if (rc == SQLITE_OK) rc = sqlite3_step(mode.get());
    if (rc != SQLITE_ROW) return fail_closed(sqlite_error(db, rc, "PRAGMA journal_mode"));
    const std::string got(reinterpret_cast<const char*>(sqlite3_column_text(mode.get(), 0)));
    if (got != "wal" && got != "memory") {
      return fail_closed(Error(ErrorCode::Io, false,
                               fmt::format("sqlite: {} refused WAL mode (got {})", options.path, got)));
    }
  }
  const char* sync = options.synchronous == SqliteSynchronous::Full ? "PRAGMA synchronous=FULL"
                                                                    : "PRAGMA synchronous=NORMAL";
  if (auto ok = exec(db, sync, "PRAGMA synchronous"); !ok) return fail_closed(ok.error());
  if (auto ok = exec(db, "BEGIN IMMEDIATE", "BEGIN (migrations)"); !ok) return fail_closed(ok.error());
  if (auto ok = migrate(db, options.path); !ok) {
    (void)exec(db, "ROLLBACK", "ROLLBACK (migrations)");
    return fail_closed(ok.error());
  }
  if (auto ok = exec(db, "COMMIT", "COMMIT (migrations)"); !ok) return fail_closed(ok.error());
  return db;
}

Result<void> prepare_all(sqlite3* db,
                         std::initializer_list<std::pair<Statement*, const char*>> statements) {
  for (const auto& [stmt, sql] : statements) {
    if (const int rc = stmt->prepare(db, sql); rc != SQLITE_OK) {
      return Unexpected(sqlite_error(db, rc, "preparing a statement"));
    }
  }
  return {};
}

Result<void> run(sqlite3* db, Statement& s, std::string_view what) {
  const int rc = sqlite3_step(s.get());
  s.reset();
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Unexpected(sqlite_error(db, rc, what));
  return {};
}

std::string_view column_bytes(sqlite3_stmt* s, int i) {
  const void* p = sqlite3_column_blob(s, i);
  const int n = sqlite3_column_bytes(s, i);
  return p == nullptr ? std::string_view{}
                      : std::string_view(static_cast<const char*>(p), static_cast<std::size_t>(n));
}

}  // namespace memfuse::detail
