// SqliteRoundStore: rounds in SQLite, the relational leg of a flush.
//
// Synchronous by design: callers run it through the BlockingWork port (a
// pool thread in production, inline with modelled latency in simulation), so
// the event loop never waits on SQLite. One connection; calls are serialised
// by the caller (one flush attempt at a time per store) and guarded by a
// mutex all the same.
//
// Guarantees:
//   - schema and migrations at open, recorded in a schema_version table;
//   - WAL, `synchronous` as configured (FULL: an acknowledged put survives
//     power loss), a busy timeout;
//   - put() is one transaction and idempotent: INSERT ... ON CONFLICT(id) DO
//     NOTHING, so a retry after an unknown outcome never duplicates a round;
//   - prepared statements only: session ids and contents are bound, never
//     spliced into SQL, and stored byte for byte (NUL bytes included);
//   - get() and list() read per session in seq order, on a second
//     connection: in WAL mode a read never waits for a write, so a flush
//     stalled inside SQLite does not hold up reads;
//   - interrupt() (thread-safe) aborts the write statement running now,
//     through sqlite3_interrupt: a timed-out flush attempt stops burning the
//     pool. interrupt_reads() does the same for the read connection.
//
// Errors: SQLITE_BUSY/LOCKED -> Unavailable (retryable); I/O errors and a
// full disk -> Io (retryable); SQLITE_INTERRUPT -> Cancelled; corruption ->
// Corrupt (final); anything else -> Io (final).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "memfuse/config.h"
#include "memfuse/error.h"
#include "memfuse/round.h"

namespace memfuse {

struct SqliteStoreOptions {
  std::string path = "memfuse.db";
  SqliteSynchronous synchronous = SqliteSynchronous::Normal;
  int busy_timeout_ms = 5000;
  std::string vfs;  // a registered SQLite VFS name; empty: the default (a real file)
  // Stores of one process that write the same file (the embedded default's
  // rounds and vectors) share this lock around each write transaction, so
  // they queue on it instead of in SQLite's busy handler, which sleeps in
  // steps of milliseconds. Other processes still meet busy_timeout_ms. Null:
  // no shared lock.
  std::shared_ptr<std::mutex> write_lock;

  [[nodiscard]] static SqliteStoreOptions from(const SqliteConfig& c) {
    return {c.path, c.synchronous, c.busy_timeout_ms, {}, nullptr};
  }
};

class SqliteRoundStore {
 public:
  [[nodiscard]] static Result<std::unique_ptr<SqliteRoundStore>> open(SqliteStoreOptions options);
  ~SqliteRoundStore();
  SqliteRoundStore(const SqliteRoundStore&) = delete;
  SqliteRoundStore& operator=(const SqliteRoundStore&) = delete;

  // Stores every round in one transaction; rounds already stored (by id) are
  // left as they are. Returns how many were new.
  [[nodiscard]] Result<std::size_t> put(std::span<const Round> rounds);
  [[nodiscard]] Result<std::optional<Round>> get(const RoundId& id);
  // The `limit` rounds of `session` with the highest seq, in ascending seq order.
  [[nodiscard]] Result<std::vector<Round>> list(std::string_view session, std::size_t limit);
  [[nodiscard]] Result<std::uint64_t> count();
  // The highest seq stored (0 when empty): a restarted buffer continues after it.
  [[nodiscard]] Result<std::uint64_t> max_seq();

  // Aborts the write (put) running now, if any. Thread-safe.
  void interrupt() noexcept;
  // Aborts the read running now, if any. Thread-safe.
  void interrupt_reads() noexcept;


 private:
  struct Impl;
  explicit SqliteRoundStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace memfuse
