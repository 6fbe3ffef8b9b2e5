// FaultVfs: the real SQLite engine over a fault-injecting, in-memory VFS, in
// the style of SQLite's own crash tests (test6.c, test_vfs.c).
//
// Files live in memory. A write is volatile until xSync: a crash (power loss)
// keeps only what was synced, or a random subset of what was not, or tears
// the last unsynced write at sector granularity. After a crash, reopening the
// files lets SQLite run its real recovery (hot journal, WAL replay). The
// shared-memory methods are implemented, so WAL works in normal locking mode,
// with several connections.
//
// Faults the pipeline must survive (every one is injectable here):
//   - I/O errors on read, write and sync, transient or persistent, chosen by
//     countdown or by probability (SQLITE_IOERR_READ/_WRITE/_FSYNC/_TRUNCATE);
//   - a full disk on write (SQLITE_FULL);
//   - lock contention (SQLITE_BUSY from xLock, and from the exclusive
//     shared-memory locks that WAL writers take);
//   - power loss at any write or sync, with any of the crash models, and a
//     COMMIT whose outcome is unknown to its caller (the crash hit during it).
//
// Faults it need not survive, and why:
//   - silent corruption of synced data (bit flips inside pages, misdirected
//     writes): SQLite has no page checksums here; surviving them needs a
//     checksum layer we do not have;
//   - a sync that reports success without making data durable (a lying
//     disk): no software above the disk can detect it;
//   - loss of a file deletion or creation on power loss (directory-entry
//     durability): deletions here are immediate and durable, a simplification
//     that errs towards SQLite's journal protocol, which syncs directories;
//   - another process writing the same files: one process owns them.
//
// Randomness (fault probabilities, crash subsets, xRandomness) comes from the
// Random passed in, i.e. the simulation's generator. SQLite's own PRNG is
// process-global: call seed_sqlite_prng() once per run for determinism.
//
// Thread-safety: none. One thread (the simulator's) drives every connection
// over a FaultVfs. Every injected fault is reported through on_fault.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "memfuse/runtime.h"

struct sqlite3_vfs;

namespace memfuse::fakes {

// When an injected fault fires for one kind of operation.
struct FaultRule {
  std::optional<std::uint64_t> countdown;  // fire at the n-th matching operation (1: the next)
  double probability = 0.0;                // else fire with this probability per operation
  bool persistent = false;                 // once fired, keep firing until heal()
  bool tripped = false;                    // state: a persistent rule has fired
};

struct VfsFaults {
  FaultRule read;   // SQLITE_IOERR_READ
  FaultRule write;  // SQLITE_IOERR_WRITE (and _TRUNCATE for truncation)
  FaultRule sync;   // SQLITE_IOERR_FSYNC: the data does not become durable
  FaultRule full;   // SQLITE_FULL on write
  FaultRule busy;   // SQLITE_BUSY from xLock and from exclusive xShmLock (WAL writers)
};

enum class CrashModel : std::uint8_t {
  DropUnsynced,      // every unsynced write is lost
  KeepRandomSubset,  // each unsynced write survives or not, independently, in order
  TearLastWrite,     // all unsynced writes but the last survive; the last, sector by sector
};

[[nodiscard]] std::string_view to_string(CrashModel m) noexcept;

struct VfsCounters {
  std::uint64_t reads = 0, writes = 0, syncs = 0, locks = 0;
  std::uint64_t faults = 0;   // injected faults of every kind
  std::uint64_t crashes = 0;
};

class FaultVfs {
 public:
  // Registers a VFS with SQLite under `name` (which must be unique in the
  // process). `random` must outlive this object; `clock` (optional) gives
  // xCurrentTime, else a fixed time.
  FaultVfs(std::string name, Random& random, const Clock* clock = nullptr);
  // Unregisters. REQUIRES: every connection over it is closed.
  ~FaultVfs();
  FaultVfs(const FaultVfs&) = delete;
  FaultVfs& operator=(const FaultVfs&) = delete;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }

  void set_faults(VfsFaults faults) { faults_ = std::move(faults); }
  // Removes every fault rule and any pending crash countdown.
  void heal();

  // Power loss now: every file keeps its synced bytes and, per `model`, some
  // of its unsynced ones; shared memory is lost. Handles opened before the
  // crash belong to a dead process: every call on them but xClose fails with
  // SQLITE_IOERR. Close them and reopen (restart) to let SQLite recover.
  void crash(CrashModel model);
  // Power loss at the `ops`-th write, truncate or sync from now (1: the next):
  // that operation never happens and fails, then crash(model).
  void crash_after(std::uint64_t ops, CrashModel model);
  [[nodiscard]] bool crash_pending() const noexcept { return crash_countdown_.has_value(); }

  // Called with a short label ("vfs.write: SQLITE_IOERR_WRITE") for every
  // injected fault and crash: the simulator records them in its trace.
  std::function<void(std::string_view)> on_fault;

  [[nodiscard]] const VfsCounters& counters() const noexcept { return counters_; }
  [[nodiscard]] bool exists(const std::string& path) const { return files_.contains(path); }
  // The file's current (not necessarily durable) bytes.
  [[nodiscard]] std::vector<std::uint8_t> contents(const std::string& path) const;

  struct File;  // implementation detail, public for the C callbacks
  struct Handle;

  // Used by the C callbacks.
  [[nodiscard]] bool fire(FaultRule& rule, std::string_view label);
  [[nodiscard]] bool power_fails_now();
  Random& random() noexcept { return random_; }
  const Clock* clock() const noexcept { return clock_; }
  std::shared_ptr<File> open_file(const std::string& path, bool create, bool& existed);
  void remove_file(const std::string& path) { files_.erase(path); }
  VfsCounters& mutable_counters() noexcept { return counters_; }
  VfsFaults& faults() noexcept { return faults_; }
  std::uint64_t epoch() const noexcept { return epoch_; }

 private:
  std::string name_;
  Random& random_;
  const Clock* clock_;
  std::unique_ptr<sqlite3_vfs> vfs_;
  std::map<std::string, std::shared_ptr<File>> files_;  // ordered: deterministic crash order
  VfsFaults faults_;
  std::optional<std::uint64_t> crash_countdown_;
  CrashModel pending_model_ = CrashModel::DropUnsynced;
  std::uint64_t epoch_ = 0;  // bumped by every crash; older handles are dead
  VfsCounters counters_;
};

// Seeds SQLite's process-global PRNG (SQLITE_TESTCTRL_PRNG_SEED), so that
// journal names and other random choices repeat for a seed.
void seed_sqlite_prng(std::uint32_t seed);

}  // namespace memfuse::fakes
