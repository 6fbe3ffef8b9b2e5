#include "memfuse/sqlite_vector_store.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "memfuse/embedder.h"
#include "sqlite_common.h"

namespace memfuse {

using detail::column_bytes;
using detail::sqlite_error;
using detail::Statement;

struct SqliteVectorStore::Impl {
  sqlite3* db = nullptr;       // writes
  sqlite3* read_db = nullptr;  // search and count: never wait for a write (WAL)
  int dimension = 0;
  std::mutex mutex;
  std::shared_ptr<std::mutex> write_lock;  // shared with the other store of the file, or null
  std::mutex read_mutex;
  Statement insert, begin, commit, rollback;
  Statement select_session, count;  // on read_db
  ~Impl() {  // close_v2 waits for the statements, finalised after this body
    sqlite3_close_v2(db);
    sqlite3_close_v2(read_db);
  }
};

SqliteVectorStore::SqliteVectorStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteVectorStore::~SqliteVectorStore() = default;

Result<std::unique_ptr<SqliteVectorStore>> SqliteVectorStore::open(SqliteStoreOptions options,
                                                                   int dimension) {
  auto impl = std::make_unique<Impl>();
  impl->write_lock = options.write_lock;
  auto db = detail::open_database(options);
  if (!db) return Unexpected(db.error());
  impl->db = *db;
  auto read_db = detail::open_database(options);
  if (!read_db) return Unexpected(read_db.error());
  impl->read_db = *read_db;
  impl->dimension = dimension;
  if (auto ok = detail::prepare_all(impl->db, {
      {&impl->insert,
       "INSERT INTO chunks(round_id, idx, session_id, text, vector) VALUES (?1, ?2, ?3, ?4, ?5) "
       "ON CONFLICT(round_id, idx) DO NOTHING"},
      {&impl->begin, "BEGIN IMMEDIATE"},
      {&impl->commit, "COMMIT"},
      {&impl->rollback, "ROLLBACK"},
      });
      !ok) {
    return Unexpected(ok.error());
  }
  if (auto ok = detail::prepare_all(impl->read_db, {
      {&impl->select_session, "SELECT round_id, idx, text, vector FROM chunks WHERE session_id = ?1"},
      {&impl->count, "SELECT count(*) FROM chunks"},
      });
      !ok) {
    return Unexpected(ok.error());
  }
  return std::unique_ptr<SqliteVectorStore>(new SqliteVectorStore(std::move(impl)));
}

Result<std::size_t> SqliteVectorStore::put(std::span<const EmbeddedChunk> chunks) {
  for (const auto& c : chunks) {
    if (auto ok = validate_embedding(c.vector, impl_->dimension); !ok) {
      return fail(ErrorCode::InvalidArgument, false,
                  fmt::format("chunk {}: {}", c.chunk.id.to_string(), ok.error().message()));
    }
  }
  std::lock_guard lock(impl_->mutex);
  std::unique_lock<std::mutex> file_lock;
  if (impl_->write_lock) file_lock = std::unique_lock(*impl_->write_lock);
  sqlite3* db = impl_->db;
  if (!sqlite3_get_autocommit(db)) (void)detail::run(db, impl_->rollback, "ROLLBACK");
  if (auto ok = detail::run(db, impl_->begin, "BEGIN"); !ok) return Unexpected(ok.error());
  std::size_t inserted = 0;
  for (const auto& c : chunks) {
    sqlite3_stmt* s = impl_->insert.get();
    sqlite3_bind_blob(s, 1, c.chunk.round_id.uuid.bytes.data(), 16, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, c.chunk.index);
    sqlite3_bind_blob(s, 3, c.chunk.session_id.data(), static_cast<int>(c.chunk.session_id.size()),
                      SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, c.chunk.text.data(), static_cast<int>(c.chunk.text.size()), SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, c.vector.data(), static_cast<int>(c.vector.size() * sizeof(float)),
                      SQLITE_STATIC);
    const int rc = sqlite3_step(s);
    impl_->insert.reset();
    if (rc != SQLITE_DONE) {
      Error e = sqlite_error(db, rc, "INSERT INTO chunks");
      (void)detail::run(db, impl_->rollback, "ROLLBACK");
      return Unexpected(std::move(e));
    }
    inserted += static_cast<std::size_t>(sqlite3_changes(db));
  }
  if (auto ok = detail::run(db, impl_->commit, "COMMIT"); !ok) {
    if (!sqlite3_get_autocommit(db)) (void)detail::run(db, impl_->rollback, "ROLLBACK");
    return Unexpected(ok.error());  // outcome unknown: a retry is harmless
  }
  return inserted;
}

Result<std::vector<ScoredChunk>> SqliteVectorStore::search(std::string_view session,
                                                           std::span<const float> query,
                                                           std::size_t top_k) {
  if (static_cast<int>(query.size()) != impl_->dimension) {
    return fail(ErrorCode::InvalidArgument, false,
                fmt::format("search: the query has {} values; embedding.dimension is {}", query.size(),
                            impl_->dimension));
  }
  std::lock_guard lock(impl_->read_mutex);
  sqlite3_stmt* s = impl_->select_session.get();
  sqlite3_bind_blob(s, 1, session.data(), static_cast<int>(session.size()), SQLITE_STATIC);
  std::vector<ScoredChunk> all;
  std::vector<float> v(static_cast<std::size_t>(impl_->dimension));
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const std::string_view id = column_bytes(s, 0);
    const std::string_view blob = column_bytes(s, 3);
    if (id.size() != 16 || blob.size() != v.size() * sizeof(float)) {
      impl_->select_session.reset();
      return fail(ErrorCode::Corrupt, false, "sqlite: a stored chunk has a malformed id or vector");
    }
    std::memcpy(v.data(), blob.data(), blob.size());
    ScoredChunk sc;
    std::copy(id.begin(), id.end(), sc.chunk.round_id.uuid.bytes.begin());
    sc.chunk.index = static_cast<std::uint32_t>(sqlite3_column_int64(s, 1));
    sc.chunk.id = make_chunk_id(sc.chunk.round_id, sc.chunk.index);
    sc.chunk.session_id = std::string(session);
    sc.chunk.text = std::string(column_bytes(s, 2));
    sc.score = cosine(query, v);
    all.push_back(std::move(sc));
  }
  impl_->select_session.reset();
  if (rc != SQLITE_DONE) return Unexpected(sqlite_error(impl_->read_db, rc, "SELECT a session's chunks"));
  const auto better = [](const ScoredChunk& a, const ScoredChunk& b) {
    return a.score != b.score ? a.score > b.score : a.chunk.id < b.chunk.id;
  };
  const std::size_t k = std::min(top_k, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(), better);
  all.resize(k);
  return all;
}

Result<std::uint64_t> SqliteVectorStore::count() {
  std::lock_guard lock(impl_->read_mutex);
  sqlite3_stmt* s = impl_->count.get();
  const int rc = sqlite3_step(s);
  const auto n = rc == SQLITE_ROW ? static_cast<std::uint64_t>(sqlite3_column_int64(s, 0)) : 0;
  impl_->count.reset();
  if (rc != SQLITE_ROW) return Unexpected(sqlite_error(impl_->read_db, rc, "SELECT count(*)"));
  return n;
}

void SqliteVectorStore::interrupt() noexcept { sqlite3_interrupt(impl_->db); }
void SqliteVectorStore::interrupt_reads() noexcept { sqlite3_interrupt(impl_->read_db); }

}  // namespace memfuse
