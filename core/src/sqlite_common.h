// Internal: what both SQLite stores share - opening a connection with the
// configured pragmas, the schema and its migrations, error mapping, and a
// prepared-statement holder. Not installed.
#pragma once

#include <sqlite3.h>

#include <initializer_list>
#include <string_view>
#include <utility>

#include "memfuse/error.h"
#include "memfuse/sqlite_round_store.h"

namespace memfuse::detail {

// The schema version this build writes; migrations run up to it at open.
inline constexpr int kSqliteSchemaVersion = 2;

// Maps a SQLite result code to an Error: BUSY/LOCKED -> Unavailable and I/O
// or a full disk -> Io (both retryable), INTERRUPT -> Cancelled, corruption
// -> Corrupt, the rest -> Io (final).
[[nodiscard]] Error sqlite_error(sqlite3* db, int rc, std::string_view what);

// Opens `options.path` (on `options.vfs` if set) in WAL mode with the
// configured synchronous mode and busy timeout, and migrates the schema.
[[nodiscard]] Result<sqlite3*> open_database(const SqliteStoreOptions& options);

// A prepared statement, finalised on destruction; reset() after each use.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }
  [[nodiscard]] int prepare(sqlite3* db, const char* sql) {
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  }
  [[nodiscard]] sqlite3_stmt* get() const { return stmt_; }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// Prepares every statement in the list; the first failure is the error.
[[nodiscard]] Result<void> prepare_all(
    sqlite3* db, std::initializer_list<std::pair<Statement*, const char*>> statements);

// Runs a statement that returns no rows (or ignores them), then resets it.
[[nodiscard]] Result<void> run(sqlite3* db, Statement& s, std::string_view what);

// The bytes of a BLOB or TEXT column.
[[nodiscard]] std::string_view column_bytes(sqlite3_stmt* s, int i);

}  // namespace memfuse::detail
