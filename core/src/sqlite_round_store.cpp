#include "memfuse/sqlite_round_store.h"

#include <sqlite3.h>

#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "memfuse/assert.h"

namespace memfuse {
namespace {

using nlohmann::json;

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
};
static_assert(std::size(kMigrations) == SqliteRoundStore::kSchemaVersion);

Error sqlite_error(sqlite3* db, int rc, std::string_view what) {
  const std::string message =
      fmt::format("sqlite: {} failed: {} ({})", what, db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
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

// A prepared statement, finalised on destruction and reset after each use.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }
  int prepare(sqlite3* db, const char* sql) { return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr); }
  sqlite3_stmt* get() const { return stmt_; }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

std::string encode_messages(const std::vector<Message>& messages) {
  json a = json::array();
  for (const auto& m : messages) a.push_back({{"role", m.role}, {"content", m.content}});
  return a.dump();
}

Result<std::vector<Message>> decode_messages(std::string_view text) {
  const json a = json::parse(text, nullptr, false);
  if (a.is_discarded() || !a.is_array()) {
    return fail(ErrorCode::Corrupt, false, "sqlite: a stored round's messages are not a JSON array");
  }
  std::vector<Message> out;
  for (const auto& m : a) {
    if (!m.is_object() || !m.contains("role") || !m.contains("content")) {
      return fail(ErrorCode::Corrupt, false, "sqlite: a stored message lacks role or content");
    }
    out.push_back(Message{m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return out;
}

std::string_view column_bytes(sqlite3_stmt* s, int i) {
  const void* p = sqlite3_column_blob(s, i);
  const int n = sqlite3_column_bytes(s, i);
  return p == nullptr ? std::string_view{} : std::string_view(static_cast<const char*>(p), static_cast<std::size_t>(n));
}

}  // namespace

struct SqliteRoundStore::Impl {
  sqlite3* db = nullptr;
  std::mutex mutex;  // one statement at a time
  Statement insert, select_one, select_session, count, max_seq, begin, commit, rollback;

  // sqlite3_close_v2 waits for the statements, finalised after this body.
  ~Impl() { sqlite3_close_v2(db); }

  Result<void> exec(const char* sql, std::string_view what) {
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return std::unexpected(sqlite_error(db, rc, what));
    return {};
  }

  Result<Round> read_round(sqlite3_stmt* s) {
    Round r;
    const std::string_view id = column_bytes(s, 0);
    if (id.size() != 16) return fail(ErrorCode::Corrupt, false, "sqlite: a stored round id is not 16 bytes");
    std::copy(id.begin(), id.end(), r.id.uuid.bytes.begin());
    r.session_id = std::string(column_bytes(s, 1));
    if (sqlite3_column_type(s, 2) != SQLITE_NULL) r.user_id = std::string(column_bytes(s, 2));
    r.seq = static_cast<std::uint64_t>(sqlite3_column_int64(s, 3));
    r.created_at = TimePoint(Duration(sqlite3_column_int64(s, 4)));
    auto messages = decode_messages(column_bytes(s, 5));
    if (!messages) return std::unexpected(messages.error());
    r.messages = std::move(*messages);
    return r;
  }
};

SqliteRoundStore::SqliteRoundStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteRoundStore::~SqliteRoundStore() = default;

Result<std::unique_ptr<SqliteRoundStore>> SqliteRoundStore::open(SqliteStoreOptions options) {
  auto impl = std::make_unique<Impl>();
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(options.path.c_str(), &impl->db, flags,
                           options.vfs.empty() ? nullptr : options.vfs.c_str());
  if (rc != SQLITE_OK) return std::unexpected(sqlite_error(impl->db, rc, fmt::format("opening {}", options.path)));
  sqlite3_extended_result_codes(impl->db, 1);
  sqlite3_busy_timeout(impl->db, options.busy_timeout_ms);

  // WAL: readers never block the writer. An in-memory database answers "memory".
  {
    Statement mode;
    rc = mode.prepare(impl->db, "PRAGMA journal_mode=WAL");
    if (rc != SQLITE_OK) return std::unexpected(sqlite_error(impl->db, rc, "PRAGMA journal_mode"));
    rc = sqlite3_step(mode.get());
    if (rc != SQLITE_ROW) return std::unexpected(sqlite_error(impl->db, rc, "PRAGMA journal_mode"));
    const std::string got(reinterpret_cast<const char*>(sqlite3_column_text(mode.get(), 0)));
    if (got != "wal" && got != "memory") {
      return fail(ErrorCode::Io, false, fmt::format("sqlite: {} refused WAL mode (got {})", options.path, got));
    }
  }
  const char* sync = options.synchronous == SqliteSynchronous::Full ? "PRAGMA synchronous=FULL"
                                                                    : "PRAGMA synchronous=NORMAL";
  if (auto ok = impl->exec(sync, "PRAGMA synchronous"); !ok) return std::unexpected(ok.error());

  // Migrations, in one transaction.
  if (auto ok = impl->exec("BEGIN IMMEDIATE", "BEGIN (migrations)"); !ok) return std::unexpected(ok.error());
  auto migrate = [&]() -> Result<void> {
    if (auto ok = impl->exec("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)",
                             "creating schema_version");
        !ok) {
      return ok;
    }
    Statement read;
    if (int r = read.prepare(impl->db, "SELECT coalesce(max(version), 0) FROM schema_version"); r != SQLITE_OK) {
      return std::unexpected(sqlite_error(impl->db, r, "reading schema_version"));
    }
    if (int r = sqlite3_step(read.get()); r != SQLITE_ROW) {
      return std::unexpected(sqlite_error(impl->db, r, "reading schema_version"));
    }
    const int version = sqlite3_column_int(read.get(), 0);
    if (version > kSchemaVersion) {
      return fail(ErrorCode::Corrupt, false,
                  fmt::format("sqlite: {} has schema version {}, newer than this build's {}; "
                              "upgrade memfuse-flush",
                              options.path, version, kSchemaVersion));
    }
    for (int v = version; v < kSchemaVersion; ++v) {
      if (auto ok = impl->exec(kMigrations[v], "migrating the schema"); !ok) return ok;
      const std::string record = fmt::format("INSERT INTO schema_version VALUES ({})", v + 1);
      if (auto ok = impl->exec(record.c_str(), "recording the schema version"); !ok) return ok;
    }
    return {};
  };
  if (auto ok = migrate(); !ok) {
    (void)impl->exec("ROLLBACK", "ROLLBACK (migrations)");
    return std::unexpected(ok.error());
  }
  if (auto ok = impl->exec("COMMIT", "COMMIT (migrations)"); !ok) return std::unexpected(ok.error());

  const std::pair<Statement*, const char*> statements[] = {
      {&impl->insert,
       "INSERT INTO rounds(id, session_id, user_id, seq, created_at_ns, messages) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO NOTHING"},
      {&impl->select_one,
       "SELECT id, session_id, user_id, seq, created_at_ns, messages FROM rounds WHERE id = ?1"},
      {&impl->select_session,
       "SELECT * FROM (SELECT id, session_id, user_id, seq, created_at_ns, messages FROM rounds "
       "WHERE session_id = ?1 ORDER BY seq DESC LIMIT ?2) ORDER BY seq ASC"},
      {&impl->count, "SELECT count(*) FROM rounds"},
      {&impl->max_seq, "SELECT coalesce(max(seq), 0) FROM rounds"},
      {&impl->begin, "BEGIN IMMEDIATE"},
      {&impl->commit, "COMMIT"},
      {&impl->rollback, "ROLLBACK"},
  };
  for (const auto& [stmt, sql] : statements) {
    if (int r = stmt->prepare(impl->db, sql); r != SQLITE_OK) {
      return std::unexpected(sqlite_error(impl->db, r, "preparing a statement"));
    }
  }
  return std::unique_ptr<SqliteRoundStore>(new SqliteRoundStore(std::move(impl)));
}

Result<std::size_t> SqliteRoundStore::put(std::span<const Round> rounds) {
  std::lock_guard lock(impl_->mutex);
  sqlite3* db = impl_->db;
  auto step = [&](Statement& s, std::string_view what) -> Result<void> {
    const int rc = sqlite3_step(s.get());
    s.reset();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return std::unexpected(sqlite_error(db, rc, what));
    return {};
  };
  if (auto ok = step(impl_->begin, "BEGIN"); !ok) return std::unexpected(ok.error());
  std::size_t inserted = 0;
  for (const Round& r : rounds) {
    sqlite3_stmt* s = impl_->insert.get();
    const std::string messages = encode_messages(r.messages);
    sqlite3_bind_blob(s, 1, r.id.uuid.bytes.data(), 16, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, r.session_id.data(), static_cast<int>(r.session_id.size()), SQLITE_STATIC);
    if (r.user_id) {
      sqlite3_bind_blob(s, 3, r.user_id->data(), static_cast<int>(r.user_id->size()), SQLITE_STATIC);
    } else {
      sqlite3_bind_null(s, 3);
    }
    sqlite3_bind_int64(s, 4, static_cast<sqlite3_int64>(r.seq));
    sqlite3_bind_int64(s, 5, r.created_at.time_since_epoch().count());
    sqlite3_bind_text(s, 6, messages.data(), static_cast<int>(messages.size()), SQLITE_STATIC);
    const int rc = sqlite3_step(s);
    impl_->insert.reset();
    if (rc != SQLITE_DONE) {
      Error e = sqlite_error(db, rc, "INSERT INTO rounds");
      (void)step(impl_->rollback, "ROLLBACK");
      return std::unexpected(std::move(e));
    }
    inserted += static_cast<std::size_t>(sqlite3_changes(db));
  }
  if (auto ok = step(impl_->commit, "COMMIT"); !ok) {
    // The outcome of a failed COMMIT is unknown: the caller retries, and the
    // ON CONFLICT clause makes that harmless.
    if (!sqlite3_get_autocommit(db)) (void)step(impl_->rollback, "ROLLBACK");
    return std::unexpected(ok.error());
  }
  return inserted;
}

Result<std::optional<Round>> SqliteRoundStore::get(const RoundId& id) {
  std::lock_guard lock(impl_->mutex);
  sqlite3_stmt* s = impl_->select_one.get();
  sqlite3_bind_blob(s, 1, id.uuid.bytes.data(), 16, SQLITE_STATIC);
  const int rc = sqlite3_step(s);
  std::optional<Round> out;
  Result<std::optional<Round>> result = out;
  if (rc == SQLITE_ROW) {
    auto r = impl_->read_round(s);
    result = r ? Result<std::optional<Round>>(std::move(*r)) : std::unexpected(r.error());
  } else if (rc != SQLITE_DONE) {
    result = std::unexpected(sqlite_error(impl_->db, rc, "SELECT a round"));
  }
  impl_->select_one.reset();
  return result;
}

Result<std::vector<Round>> SqliteRoundStore::list(std::string_view session, std::size_t limit) {
  std::lock_guard lock(impl_->mutex);
  sqlite3_stmt* s = impl_->select_session.get();
  sqlite3_bind_blob(s, 1, session.data(), static_cast<int>(session.size()), SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(std::min<std::size_t>(limit, INT64_MAX)));
  std::vector<Round> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    auto r = impl_->read_round(s);
    if (!r) {
      impl_->select_session.reset();
      return std::unexpected(r.error());
    }
    out.push_back(std::move(*r));
  }
  impl_->select_session.reset();
  if (rc != SQLITE_DONE) return std::unexpected(sqlite_error(impl_->db, rc, "SELECT a session's rounds"));
  return out;
}

namespace {
Result<std::uint64_t> scalar(sqlite3* db, Statement& s, std::string_view what) {
  const int rc = sqlite3_step(s.get());
  const auto v = rc == SQLITE_ROW ? static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 0)) : 0;
  s.reset();
  if (rc != SQLITE_ROW) return std::unexpected(sqlite_error(db, rc, what));
  return v;
}
}  // namespace

Result<std::uint64_t> SqliteRoundStore::count() {
  std::lock_guard lock(impl_->mutex);
  return scalar(impl_->db, impl_->count, "SELECT count(*)");
}

Result<std::uint64_t> SqliteRoundStore::max_seq() {
  std::lock_guard lock(impl_->mutex);
  return scalar(impl_->db, impl_->max_seq, "SELECT max(seq)");
}

void SqliteRoundStore::interrupt() noexcept { sqlite3_interrupt(impl_->db); }

}  // namespace memfuse
